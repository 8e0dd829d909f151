"""Steps every model class shares: selecting rows, and the BLAS thread policy of a fit."""
from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from ..design.terms import RandomEffects
from ..errors import DataError
from ..linalg import THREADED_DENSE_COLUMNS

__all__ = ["select_rows", "blas_limits", "limit_blas_threads"]


def select_rows(data: pd.DataFrame, subset) -> pd.DataFrame:
    """``data`` restricted to a boolean ``subset`` (None: all rows), with a clear length check."""
    if subset is None:
        return data
    subset = np.asarray(subset, bool)
    if subset.shape != (len(data),):
        raise DataError(f"subset has {subset.size} elements but the data have {len(data)} rows")
    return data.loc[subset]


def blas_limits(re: RandomEffects, blas_threads: int | None):
    """Context limiting BLAS threads during a fit.

    Default: one thread unless the dense part of the factor has more than
    :data:`~interlace.linalg.THREADED_DENSE_COLUMNS` columns (threaded BLAS slows small
    factorizations, badly so on a busy machine).
    """
    if blas_threads is None:
        q2 = re.q - re.terms[0].q if re.terms else 0
        blas_threads = 1 if q2 <= THREADED_DENSE_COLUMNS else None
    return limit_blas_threads(blas_threads)


_CONTROLLER: ThreadpoolController | None = None


def limit_blas_threads(limit: int | None):
    """Context limiting the BLAS thread pools to ``limit`` (None: leave them as they are).

    The loaded libraries are found once per process (threadpoolctl's scan of the loaded
    shared objects costs ~1.5 ms, a tenth of a small fit).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=limit, user_api="blas")
