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


class DataWarning(UserWarning):
    """Data that R accepts with a warning (non-integer counts or successes)."""


def warn_user(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the caller's code, not to interlace's internals.

    Walks up the stack to the first frame outside the installed ``interlace``
    package (its tests count as outside), so the reported line is the user's call.
    """
    import os
    import sys
    import warnings

    pkg = os.path.dirname(os.path.abspath(__file__))
    tests = os.path.join(pkg, "tests")
    level = 2  # stacklevel 2 is the frame that called warn_user
    frame = sys._getframe(1)
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        if not fname.startswith(pkg + os.sep) or fname.startswith(tests + os.sep):
            break
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


class EngineUnavailableError(InterlaceError, ImportError):
    """A linear-algebra engine was asked for whose library is not installed (CHOLMOD)."""
