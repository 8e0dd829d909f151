"""Sparse linear algebra: the only package that knows CHOLMOD versus numpy/scipy.

Cross-products of ``[Z X y]`` (:mod:`.crossprod`) feed the PLS engines (:mod:`.pls`,
:mod:`.blocked` with :mod:`.dense_gram` for vector-valued crossed terms and :mod:`.scalar_crossed` for
scalar ones, :mod:`.cholmod`,
:mod:`.fixed_only`), which :mod:`.engines` builds;
:mod:`.arrowhead` factors the non-PLS random-effects blocks of Cox models, and
:mod:`.threads` holds the BLAS thread policy.
"""
from .crossprod import CrossProducts, RowProducts
from .engines import (
                      BLOCKED_DENSE_LIMIT,
                      ENGINES,
                      PLS_ENGINES,
                      RowEngines,
                      choose_engine,
                      engine_for_products,
                      make_engine,
                      parse_engine,
)
from .pls import HAVE_CHOLMOD, Factorization, PLSSystem
from .threads import THREADED_DENSE_COLUMNS, blas_limits, limit_blas_threads

__all__ = ["BLOCKED_DENSE_LIMIT", "ENGINES", "HAVE_CHOLMOD", "PLS_ENGINES", "THREADED_DENSE_COLUMNS", "CrossProducts",
           "Factorization", "PLSSystem", "RowEngines", "RowProducts", "blas_limits", "choose_engine",
           "engine_for_products", "limit_blas_threads", "make_engine", "parse_engine"]
