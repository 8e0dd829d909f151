"""Fitting an LMM from summed cross-product blocks: the client side of a chunked fit.

After the two passes (:mod:`interlace.scale.design`, :mod:`interlace.scale.blocks`)
the fit is the in-memory one: the summed blocks are the
:class:`~interlace.linalg.crossprod.CrossProducts` the same PLS engines are built from
(:func:`interlace.linalg.engines.engine_for_products`), with the same criterion
(:class:`~interlace.objective.lmm.LMMDeviance`), optimizer and checks.
:func:`fit_chunks` runs the whole pipeline over any re-iterable source of
pandas chunks (the parquet path uses it; the Dask path runs the same two
passes on the cluster).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..errors import InterlaceError, RankDeficiencyWarning, warn_user
from ..inference.ddf import parse_df_method
from ..linalg.crossprod import CrossProducts
from ..linalg.engines import engine_for_products, parse_engine
from ..linalg.threads import blas_limits
from ..models.lmm import parse_method
from ..objective.lmm import LMMDeviance, fit_criterion
from .blocks import CrossBlocks, chunk_blocks
from .design import ChunkedDesign, ScanSummary, build_design, make_plan, scan_chunk

if TYPE_CHECKING:
    from .results import ChunkedLMEResult

__all__ = ["fit_blocks", "fit_chunks", "independent_columns_gram", "kept_columns", "check_options"]


def independent_columns_gram(G: np.ndarray, n: int, tol: float = 1e-7) -> np.ndarray:
    """Columns kept by R's ``qr(X, tol, LAPACK = FALSE)`` computed from ``G = XᵀX``.

    The same left-to-right rule as :func:`interlace.design.fixed._independent_columns`:
    a column whose norm after projecting out the kept columns falls below ``tol``
    times its own norm is dropped.  The projected norm comes from a Cholesky
    factor of the kept columns' Gram matrix (exact collinearity leaves about
    1e-8 of the norm, well below ``tol``).
    """
    p = G.shape[0]
    norm0 = np.sqrt(np.maximum(np.diag(G), 0.0))
    norm0 = np.where(norm0 > 0, norm0, 1.0)
    kept: list[int] = []
    L = np.zeros((p, p))
    from scipy.linalg import solve_triangular

    for j in range(p):
        k = len(kept)
        if k:
            z = solve_triangular(L[:k, :k], G[kept, j], lower=True, check_finite=False)
            r2 = G[j, j] - float(z @ z)
        else:
            z = np.zeros(0)
            r2 = G[j, j]
        nr = np.sqrt(max(r2, 0.0))
        if nr >= tol * norm0[j] and nr > 0 and k < n:
            L[k, :k] = z
            L[k, k] = nr
            kept.append(j)
    return np.asarray(kept, dtype=np.intp)


def kept_columns(design: ChunkedDesign, G: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """The full fixed-effects matrix's columns kept, in R's order, from its Gram matrix ``G = XᵀX``,
    and the names of those dropped as aliased (with lme4's :class:`~interlace.errors.RankDeficiencyWarning`)."""
    P = design.n_x
    keep = np.arange(P)
    dropped: list[str] = []
    if P:
        order = design.r_order
        kept = order[independent_columns_gram(G[np.ix_(order, order)], n)]
        keep = order
        if kept.size < P:
            dropped = [design.x_names[i] for i in order if i not in set(kept)]
            warn_user(
                f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                f"column{'s' if len(dropped) > 1 else ''} / coefficient{'s' if len(dropped) > 1 else ''}: "
                + ", ".join(dropped),
                RankDeficiencyWarning,
            )
            keep = kept
    return np.asarray(keep, np.intp), dropped


def check_options(method: str, engine: str, df_method: str) -> tuple[bool, str]:
    """Validate the options shared by the chunked entry points; returns ``(reml, df_method)``."""
    reml = parse_method(method)
    parse_engine(engine)
    dfm = parse_df_method(df_method)
    if dfm == "kenward-roger":
        raise InterlaceError("df_method='kenward-roger' is not available for chunked data "
                             "(use 'satterthwaite' or 'normal')")
    return reml, dfm


def fit_blocks(design: ChunkedDesign, blocks: CrossBlocks, reml: bool = True, engine: str = "auto",
               optimizer: str = "auto", start: npt.ArrayLike | None = None, maxiter: int | None = None,
               check_conv: bool = True, df_method: str = "satterthwaite", optimizer_options: dict | None = None,
               blas_threads: int | None = None, timings: dict | None = None) -> ChunkedLMEResult:
    """Optimize on the client from the summed blocks, exactly as the in-memory fit.

    Parameters
    ----------
    design : ChunkedDesign
    blocks : CrossBlocks
        The sum over every chunk.
    reml, engine, optimizer, start, maxiter, check_conv, df_method
        As in :func:`interlace.fit`.
    timings : dict, optional
        Receives ``"optimize"`` (seconds).

    Returns
    -------
    ChunkedLMEResult
    """
    from .results import ChunkedLMEResult

    t0 = time.perf_counter()
    P = design.n_x
    G = blocks.XtX if blocks.XtX is not None else blocks.A33[:P, :P]
    keep, dropped = kept_columns(design, G, blocks.n)
    idx = np.concatenate([keep, [P]]).astype(np.intp)
    re = design.re
    cp = CrossProducts.from_blocks(re, blocks.n, blocks.A11, blocks.A21, blocks.A22, blocks.A31[idx],
                                   blocks.A32[idx], blocks.A33[np.ix_(idx, idx)])
    dev = LMMDeviance(engine_for_products(cp, engine), reml, blocks.sum_log_w, zero_weights=blocks.min_w <= 0)
    x0 = dev.x0 if start is None else np.asarray(start, float)
    with blas_limits(re, blas_threads):
        opt, sol = fit_criterion(dev, x0, optimizer=optimizer, maxfun=maxiter, options=optimizer_options,
                                 check_conv=check_conv)
    if timings is not None:
        timings["optimize"] = time.perf_counter() - t0
    return ChunkedLMEResult(design, keep, dropped, dev, sol, opt, df_method=df_method, min_w=blocks.min_w)


def fit_chunks(formula: str, chunks: Callable[[], Iterable], columns: Sequence[str],
               groups: str | Sequence[str] | None = None, random: str | Sequence[str] | None = None,
               method: str = "REML", weights: str | None = None, offset: str | None = None, engine: str = "auto",
               optimizer: str = "auto", start: npt.ArrayLike | None = None, check_conv: bool = True,
               maxiter: int | None = None, df_method: str = "satterthwaite", blas_threads: int | None = None,
               optimizer_options: dict | None = None) -> ChunkedLMEResult:
    """Fit an LMM over a source read chunk by chunk, twice (levels, then blocks).

    Parameters
    ----------
    formula : str
    chunks : callable
        Called once per pass; returns an iterable of pandas DataFrames (the chunks).
    columns : sequence of str
        The source's column names.
    groups, random, method, weights, offset, engine, optimizer, start, check_conv, maxiter, df_method
        As in :func:`interlace.fit` (``weights`` and ``offset`` as column names).
    blas_threads : int, optional
        BLAS threads during the optimization.
    optimizer_options : dict, optional
        Passed to the optimizer (as in :meth:`interlace.CrossedLME.fit`).

    Returns
    -------
    ChunkedLMEResult
    """
    reml, dfm = check_options(method, engine, df_method)
    plan = make_plan(formula, columns, groups, random, weights, offset)
    timings = {}
    t0 = time.perf_counter()
    summary = ScanSummary()
    n_chunks = 0
    for df in chunks():
        summary = summary.merge(scan_chunk(df, plan))
        n_chunks += 1
    design = build_design(plan, summary)
    t1 = time.perf_counter()
    total = None
    for df in chunks():
        b = chunk_blocks(df, design)
        total = b if total is None else total + b
    t2 = time.perf_counter()
    timings.update(levels_pass=t1 - t0, blocks_pass=t2 - t1)
    res = fit_blocks(design, total, reml, engine, optimizer, start, maxiter, check_conv, dfm,
                     optimizer_options=optimizer_options, blas_threads=blas_threads, timings=timings)
    res.timings = timings
    res.n_chunks = n_chunks
    return res
