"""The BLAS thread policy of a fit: one thread for small factors, the library's default for large ones."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["THREADED_DENSE_COLUMNS", "blas_limits", "limit_blas_threads"]

#: Fits whose dense block has more columns than this keep the BLAS library's threads
#: (smaller ones run BLAS on one thread: threading slows small factorizations).
THREADED_DENSE_COLUMNS = 2500

_CONTROLLER: ThreadpoolController | None = None


def limit_blas_threads(limit: int | None) -> Any:
    """Context limiting the BLAS thread pools to ``limit`` (None: leave them as they are).

    The loaded libraries are found once per process (threadpoolctl's scan of the loaded
    shared objects costs ~1.5 ms, a tenth of a small fit).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    if limit is None or all(lib.get_num_threads() == limit for lib in _CONTROLLER.lib_controllers
                            if lib.user_api == "blas"):
        return nullcontext()  # nothing to change (threadpoolctl's context would read and set every pool)
    return _CONTROLLER.limit(limits=limit, user_api="blas")


def blas_limits(re: Any, blas_threads: int | None = None) -> Any:
    """Context limiting BLAS threads while a model with random effects ``re`` is fitted.

    Default: one thread unless the dense part of the factor (the columns after the
    first term) has more than :data:`THREADED_DENSE_COLUMNS` columns.
    """
    if blas_threads is None:
        q2 = re.q - re.terms[0].q if re.terms else 0
        blas_threads = 1 if q2 <= THREADED_DENSE_COLUMNS else None
    return limit_blas_threads(blas_threads)
