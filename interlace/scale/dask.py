"""Data larger than one machine: an LMM over a Dask DataFrame, the blocks summed on the cluster.

Two distributed passes, each a map over the partitions and a tree reduction
(``split_every`` partial results added at a time, on the workers), so only one
small object comes back to the client each time:

1. levels: per partition the complete-row counts, missing values per column, the
   grouping-factor labels present and a few rows carrying every value of every
   categorical fixed-effect factor (:func:`~interlace.scale.design.scan_chunk`),
   merged into the global level sets;
2. blocks: per partition the weighted cross-products of ``[Z X y]``
   (:func:`~interlace.scale.blocks.chunk_blocks`), added.

The client then optimizes exactly as for in-memory data.  Client memory is
bounded by the summed blocks (see :mod:`interlace.scale.blocks`), whatever the
number of rows.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from ..errors import InterlaceError
from .blocks import CrossBlocks, chunk_blocks
from .core import check_options, fit_blocks
from .design import ScanPlan, ScanSummary, build_design, make_plan, scan_chunk

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from .results import ChunkedLMEResult

__all__ = ["fit_dask", "is_dask_dataframe"]


def is_dask_dataframe(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame (False, without importing dask, when dask is not loaded)."""
    import sys

    if "dask.dataframe" not in sys.modules:
        return False
    import dask.dataframe as dd

    return isinstance(data, dd.DataFrame)


def _merge_summaries(*parts: ScanSummary) -> ScanSummary:
    out = ScanSummary()
    for p in parts:
        out = out.merge(p)
    return out


def _sum_blocks(*parts: CrossBlocks) -> CrossBlocks:
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


def _blocks_of_partition(df, plan: ScanPlan, summary: ScanSummary) -> CrossBlocks:
    # patsy's design objects do not pickle: each task rebuilds the (small) design
    # from the first pass's summary, which gives the same columns on every worker
    design = build_design(plan, summary, warn=False)
    return chunk_blocks(df, design)


def _tree(delayed_parts: list, func, split_every: int):
    from dask import delayed

    level = list(delayed_parts)
    while len(level) > 1:
        level = [delayed(func, pure=True)(*level[i:i + split_every]) for i in range(0, len(level), split_every)]
    return level[0]


def _compute(obj, client):
    if client is not None:
        return client.compute(obj).result()
    import dask

    return dask.compute(obj)[0]


def check_dask_input(data: Any, split_every: int, who: str, in_memory: str) -> None:
    """Refuse what a Dask fit cannot take: dask missing, ``data`` not a Dask DataFrame (naming
    ``in_memory``, the function for pandas data), ``split_every`` below 2."""
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - depends on the machine
        raise ImportError(f"{who} needs dask: pip install 'interlace[dask]'") from None
    if not isinstance(data, dd.DataFrame):
        raise InterlaceError(f"{who} needs a dask DataFrame, got {type(data).__name__} "
                             f"(use {in_memory} for pandas data)")
    if int(split_every) < 2:
        raise InterlaceError("split_every must be at least 2")


def fit_dask(formula: str, data: dd.DataFrame, groups: str | Sequence[str] | None = None,
             random: str | Sequence[str] | None = None, method: str = "REML", weights: str | None = None,
             offset: str | None = None, engine: str = "auto", optimizer: str = "auto",
             start: npt.ArrayLike | None = None, check_conv: bool = True, maxiter: int | None = None,
             df_method: str = "satterthwaite", client: Client | None = None, split_every: int = 8,
             blas_threads: int | None = None, optimizer_options: dict | None = None) -> ChunkedLMEResult:
    """Fit a linear mixed model to a Dask DataFrame (lme4's ``lmer`` on data spread over a cluster).

    Parameters
    ----------
    formula : str
        As in :func:`interlace.fit`.
    data : dask.dataframe.DataFrame
    groups, random, method, engine, optimizer, start, check_conv, maxiter, df_method
        As in :func:`interlace.fit` (``df_method`` "satterthwaite" or "normal").
    weights, offset : str, optional
        Column names of prior weights and an offset.
    client : distributed.Client, optional
        Where to compute; default: Dask's current scheduler (the active client, if any).
    split_every : int
        Partial results added per reduction task.
    blas_threads : int, optional
        BLAS threads during the optimization on the client.
    optimizer_options : dict, optional
        Passed to the optimizer (as in :meth:`interlace.CrossedLME.fit`).

    Returns
    -------
    ChunkedLMEResult
        With the estimates of :func:`interlace.fit` on the same data in memory;
        ``timings`` holds the seconds of each pass and of the optimization.
    """
    check_dask_input(data, split_every, "fit_dask", "interlace.fit")
    from dask import delayed

    reml, dfm = check_options(method, engine, df_method)
    plan = make_plan(formula, list(data.columns), groups, random, weights, offset)
    parts = data[plan.read_columns].to_delayed()
    timings = {}
    t0 = time.perf_counter()
    dplan = delayed(plan, pure=True)
    scans = [delayed(scan_chunk, pure=True)(p, dplan) for p in parts]
    summary = _compute(_tree(scans, _merge_summaries, int(split_every)), client)
    design = build_design(plan, summary)
    t1 = time.perf_counter()
    dsummary = delayed(summary, pure=True)
    blocks = [delayed(_blocks_of_partition, pure=True)(p, dplan, dsummary) for p in parts]
    total = _compute(_tree(blocks, _sum_blocks, int(split_every)), client)
    t2 = time.perf_counter()
    timings.update(levels_pass=t1 - t0, blocks_pass=t2 - t1)
    res = fit_blocks(design, total, reml, engine, optimizer, start, maxiter, check_conv, dfm,
                     optimizer_options=optimizer_options, blas_threads=blas_threads, timings=timings)
    res.timings = timings
    res.n_chunks = len(parts)
    return res
