"""Exceptions and warnings raised by interlace."""
from __future__ import annotations


class InterlaceError(ValueError):
    """Base class for input errors; a ValueError so generic handlers catch it."""


class FormulaError(InterlaceError):
    """A formula or random-effects term that does not parse."""


class DataError(InterlaceError):
    """A column, value or level in the data that cannot be used."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped without satisfying lme4's convergence checks."""


class SingularFitWarning(UserWarning):
    """A fit on the boundary of the parameter space (lme4's isSingular)."""


class MissingDataWarning(UserWarning):
    """Rows with missing values were dropped before fitting."""


class RankDeficiencyWarning(UserWarning):
    """Fixed-effect columns were dropped because the model matrix is rank deficient."""
