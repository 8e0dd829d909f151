"""Sparse linear algebra: the only package that knows CHOLMOD versus numpy/scipy."""
from .pls import BLOCKED_DENSE_LIMIT, HAVE_CHOLMOD, THREADED_DENSE_COLUMNS, Factorization, PLSSystem, make_pls

__all__ = ["BLOCKED_DENSE_LIMIT", "HAVE_CHOLMOD", "THREADED_DENSE_COLUMNS", "Factorization", "PLSSystem", "make_pls"]
