"""Exceptions and warnings raised by interlace.

The warnings subclass statsmodels' (``statsmodels.tools.sm_exceptions``), so a filter on
statsmodels' class also catches interlace's: :class:`ConvergenceWarning` is statsmodels'
``ConvergenceWarning``, :class:`RankDeficiencyWarning` its ``CollinearityWarning``,
:class:`UnseenLevelWarning` its ``ValueWarning``, and the others its ``ModelWarning``
(all are ``UserWarning``).
"""
from __future__ import annotations

from statsmodels.tools import sm_exceptions as _sm


class InterlaceError(ValueError):
    """Base class for input errors; a ValueError so generic handlers catch it."""


class FormulaError(InterlaceError):
    """A formula or random-effects term that does not parse."""


class DataError(InterlaceError):
    """A column, value or level in the data that cannot be used."""


class ConvergenceWarning(_sm.ConvergenceWarning):
    """The optimizer stopped without satisfying lme4's convergence checks."""


class SingularFitWarning(_sm.ModelWarning):
    """A fit on the boundary of the parameter space (lme4's isSingular)."""


class MissingDataWarning(_sm.ModelWarning):
    """Rows with missing values were dropped before fitting."""


class RankDeficiencyWarning(_sm.CollinearityWarning):
    """Fixed-effect columns were dropped because the model matrix is rank deficient."""


class UnseenLevelWarning(_sm.ValueWarning):
    """New data hold levels of a grouping factor not seen in fitting: their random effects are 0."""


class DataWarning(_sm.ValueWarning):
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


def renamed_option(new_value: object, old_value: object, new: str, old: str, default: object = None) -> object:
    """The value of an option whose old name ``old`` still works, with a ``FutureWarning``.

    ``new_value`` is the value given under the new name (``default`` when not given), ``old_value``
    the one under the old name (None when not given).  Giving both (differently) is an error.
    """
    if old_value is None:
        return new_value
    if new_value is not default and new_value != old_value:
        raise InterlaceError(f"{old}= is the old name of {new}=: give {new}= only")
    warn_user(f"{old}= is now spelled {new}= (the old name will be removed in a future version)", FutureWarning)
    return old_value

