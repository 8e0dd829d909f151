"""Generalized linear mixed models on data that are never in memory at once (lme4's ``glmer``).

:func:`glmer_dask` (a Dask DataFrame on a ``distributed`` cluster), :func:`glmer_parquet`
(a parquet file or directory read in batches on this machine) and :func:`glmer_chunks`
(any re-iterable source of pandas chunks) compute the in-memory fit of
:func:`interlace.glmer` — binomial (0/1, two-level, proportions with weights,
``cbind(successes, failures)``) and Poisson, with weights and offsets, Laplace
(``nAGQ=1``) or PIRLS only (``nAGQ=0``) — with the same code:

1. **levels** (one pass): complete rows, the levels of every grouping factor and of every
   categorical fixed-effect factor, the type of every column (:mod:`interlace.scale.design`);
2. **setup** (one pass): every chunk is encoded and kept where it is (on its Dask
   worker; in a temporary directory, or in memory, on one machine: :mod:`interlace.scale.runners`);
   ``XᵀX`` gives the columns aliased with earlier ones, which lme4 drops;
3. **PIRLS** (one pass per iteration): lme4's two stages (:func:`~interlace.models.glmm.fit_stages`)
   run on the client with the PIRLS of the in-memory fit, whose rows are the chunks
   (:class:`~interlace.scale.points.ChunkedRows`): each iteration is one pass that sums
   the working weights' cross-products ``[Z X z]ᵀW[Z X z]`` and the deviance pieces at
   the new point, and the penalized solve runs on the client on those model-sized blocks.

The estimates are the in-memory ones: every row's η, μ, working weight and response are
computed as in memory; only the order of the sums differs (rounding), and the optimizer,
its start, steps, warm starts and stopping rules are the same.  The number of passes
is the in-memory fit's number of PIRLS iterations (step-halving trials included): see
``result.passes`` and ``docs/scale.md``.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design.response import split_cbind
from ..errors import FormulaError, InterlaceError
from ..families import GLMFamily, resolve_family
from ..formula import model_terms
from ..linalg.engines import engine_for_products, parse_engine
from ..linalg.threads import blas_limits
from ..models.glmm import fit_stages
from ..objective.pirls import PIRLS
from ..response.base import Response
from .core import kept_columns
from .design import ChunkedDesign, ScanPlan, ScanSummary, build_design, plan_for_terms, scan_chunk
from .glmm_results import ChunkedGLMMResult
from .points import ChunkedResponse, ChunkedRows, ChunkLayout, SetupSums, chunk_setup
from .runners import LocalRunner

if TYPE_CHECKING:
    import dask.dataframe as dd
    import statsmodels.genmod.families as smf_fam
    from distributed import Client

__all__ = ["glmer_chunks", "glmer_parquet", "glmer_dask", "glmm_plan", "fit_glmm_runner"]


def glmm_plan(formula: str, columns: Sequence[str], family: GLMFamily, groups: str | Sequence[str] | None = None,
              random: str | Sequence[str] | None = None, weights: str | None = None,
              offset: str | None = None) -> ScanPlan:
    """The scan plan of a GLMM: the columns its formula reads, and how its response is coded."""
    fixed, specs = model_terms(formula, groups, random)
    design_formula, s_expr, f_expr = split_cbind(fixed)
    if f_expr is not None and family.name != "binomial":
        raise FormulaError(f"cbind() on the left of {fixed!r} is only for the binomial family")
    column_formula = None
    if f_expr is not None:
        column_formula = f"I({s_expr}) + I({f_expr}) ~ {design_formula.split('~', 1)[1]}"
    return plan_for_terms(formula, design_formula, specs, columns, weights, offset, column_formula=column_formula,
                          failures=f_expr, binary=family.name == "binomial" and f_expr is None, glmm=True)


def _check_glmm_options(family: Any, link: str | None, nAGQ: int, engine: str) -> GLMFamily:
    fam = resolve_family(family, link)
    if fam.has_dispersion or fam.name == "negative_binomial":
        raise InterlaceError(f"a chunked GLMM is fitted for the binomial and Poisson families, not {fam.name!r} "
                             "(its dispersion or shape needs the rows at every step): fit it in memory with "
                             "interlace.glmer / glmer_nb")
    if int(nAGQ) not in (0, 1):
        raise InterlaceError(f"nAGQ must be 0 or 1 for chunked data, got {nAGQ} (adaptive quadrature is "
                             "available in memory with interlace.glmer)")
    parse_engine(engine)
    return fam


def fit_glmm_runner(design: ChunkedDesign, family: GLMFamily, runner: Any, nAGQ: int = 1, engine: str = "auto",
                    optimizer: str = "bobyqa", start: npt.ArrayLike | None = None, check_conv: bool = True,
                    maxiter: int | None = None, progress: bool = True, blas_threads: int | None = None,
                    timings: dict | None = None) -> ChunkedGLMMResult:
    """The setup pass and lme4's two stages over a runner's chunks (the client side of every chunked GLMM).

    Parameters
    ----------
    design : ChunkedDesign
        From the levels pass.
    family : GLMFamily
    runner : LocalRunner or DaskRunner
        Runs the passes (:mod:`interlace.scale.runners`); closed at the end.
    nAGQ, engine, optimizer, start, check_conv, maxiter
        As in :func:`interlace.glmer`.
    progress : bool
        A tqdm bar counting the passes.
    blas_threads : int, optional
        BLAS threads on the client.
    timings : dict, optional
        Receives ``setup_pass`` and ``optimize`` (seconds).
    """
    timings = {} if timings is None else timings
    layout = ChunkLayout.of(design)
    rows = None
    try:
        t0 = time.perf_counter()
        setup: SetupSums = runner.map_reduce(chunk_setup, family, layout)
        keep, dropped = kept_columns(design, setup.XtX, setup.n)
        t1 = time.perf_counter()
        # the engine's choice from the pattern of Z's products, as for rows
        assert setup.blocks is not None, "no rows"  # build_design refuses data without complete rows
        name = engine_for_products(ChunkedRows.cross_products_of(design.re, setup.blocks), engine).engine
        rows = ChunkedRows(runner, design, keep, name, progress)
        rows.start_factor = setup.start_factor
        pirls = PIRLS(rows, cast(Response, ChunkedResponse(family)))
        with blas_limits(design.re, blas_threads), np.errstate(all="ignore"):
            fit = fit_stages(pirls, family, nAGQ, start, optimizer, maxiter, check_conv)
        res = ChunkedGLMMResult.from_fit(design, keep, dropped, family, nAGQ, fit, name)
        t2 = time.perf_counter()
    finally:
        if rows is not None:
            rows.close()
        runner.close()
    timings.update(setup_pass=t1 - t0, optimize=t2 - t1)
    res.passes = {"levels": 1, "setup": 1, **rows.passes}
    res.passes["total"] = 2 + rows.n_passes
    res.n_chunks = runner.n_chunks
    res.timings = timings
    return res


def _levels_pass(chunks: Iterable[pd.DataFrame], plan: ScanPlan) -> tuple[ChunkedDesign, int]:
    summary = ScanSummary()
    n = 0
    for df in chunks:
        summary = summary.merge(scan_chunk(df, plan))
        n += 1
    return build_design(plan, summary), n


def glmer_chunks(formula: str, chunks: Callable[[], Iterable[pd.DataFrame]], columns: Sequence[str],
                 family: str | GLMFamily | smf_fam.Family = "binomial", link: str | None = None,
                 groups: str | Sequence[str] | None = None, random: str | Sequence[str] | None = None,
                 weights: str | None = None, offset: str | None = None, nAGQ: int = 1, engine: str = "auto",
                 optimizer: str = "bobyqa", start: npt.ArrayLike | None = None, check_conv: bool = True,
                 maxiter: int | None = None, cache: str = "disk", cache_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True, blas_threads: int | None = None) -> ChunkedGLMMResult:
    """Fit a GLMM over a source read chunk by chunk (see the module docstring).

    Parameters
    ----------
    formula : str
        As in :func:`interlace.glmer` (``cbind(successes, failures) ~ ...`` for binomial counts).
    chunks : callable
        Returns an iterable of pandas DataFrames; called for the levels pass and the setup pass
        (and for every pass with ``cache="none"``).
    columns : sequence of str
        The source's column names.
    family, link, groups, random, nAGQ, engine, optimizer, start, check_conv, maxiter
        As in :func:`interlace.glmer` (binomial or Poisson; ``nAGQ`` 0 or 1).
    weights, offset : str, optional
        Column names of the prior weights (binomial trials for proportions) and an offset.
    cache : {"disk", "memory", "none"}
        Where the encoded chunks are kept between passes (:class:`~interlace.scale.runners.LocalRunner`).
    cache_dir : str, optional
        Directory for the disk cache's temporary directory.
    progress : bool
        A tqdm bar counting the passes.
    blas_threads : int, optional
        BLAS threads on this machine during the optimization.

    Returns
    -------
    ChunkedGLMMResult
    """
    fam = _check_glmm_options(family, link, nAGQ, engine)
    plan = glmm_plan(formula, columns, fam, groups, random, weights, offset)
    timings: dict = {}
    t0 = time.perf_counter()
    design, _ = _levels_pass(chunks(), plan)
    timings["levels_pass"] = time.perf_counter() - t0
    runner = LocalRunner(chunks, design, cache, cache_dir)
    return fit_glmm_runner(design, fam, runner, nAGQ, engine, optimizer, start, check_conv, maxiter, progress,
                           blas_threads, timings)


def glmer_parquet(formula: str, path: str | os.PathLike[str], family: str | GLMFamily | smf_fam.Family = "binomial",
                  link: str | None = None, groups: str | Sequence[str] | None = None,
                  random: str | Sequence[str] | None = None, weights: str | None = None, offset: str | None = None,
                  nAGQ: int = 1, engine: str = "auto", optimizer: str = "bobyqa", start: npt.ArrayLike | None = None,
                  check_conv: bool = True, maxiter: int | None = None, batch_size: int | None = None,
                  cache: str = "disk", cache_dir: str | os.PathLike[str] | None = None, progress: bool = True,
                  blas_threads: int | None = None) -> ChunkedGLMMResult:
    """Fit a GLMM to a parquet file (or directory of files) read in batches on this machine.

    Parameters are those of :func:`glmer_chunks`, with ``path`` (a parquet file or a directory)
    and ``batch_size`` (rows per batch, default 1,000,000: peak memory grows with it).

    Examples
    --------
    >>> import os, tempfile
    >>> from interlace import datasets
    >>> from interlace.scale import glmer_parquet
    >>> cbpp = datasets.load("cbpp").astype({"period": str})
    >>> cbpp["failures"] = cbpp["size"] - cbpp["incidence"]
    >>> path = os.path.join(tempfile.mkdtemp(), "cbpp.parquet")
    >>> cbpp.to_parquet(path, row_group_size=14)
    >>> res = glmer_parquet("cbind(incidence, failures) ~ period + (1 | herd)", path, progress=False)
    >>> round(float(res.llf), 4), res.n_chunks
    (-92.0263, 4)
    """
    from .parquet import DEFAULT_BATCH_SIZE, _check_schemas, _dataset, _integer_columns_with_nulls, iter_parquet

    fam = _check_glmm_options(family, link, nAGQ, engine)
    ds = _dataset(path)
    names = list(ds.schema.names)
    plan = glmm_plan(formula, names, fam, groups, random, weights, offset)
    cols = plan.read_columns
    _check_schemas(ds, cols)
    as_float = _integer_columns_with_nulls(ds, cols)
    size = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)

    def chunks():
        return iter_parquet(path, cols, size, as_float)

    return glmer_chunks(formula, chunks, names, family=fam, groups=groups, random=random, weights=weights,
                        offset=offset, nAGQ=nAGQ, engine=engine, optimizer=optimizer, start=start,
                        check_conv=check_conv, maxiter=maxiter, cache=cache, cache_dir=cache_dir, progress=progress,
                        blas_threads=blas_threads)


def glmer_dask(formula: str, data: dd.DataFrame, family: str | GLMFamily | smf_fam.Family = "binomial",
               link: str | None = None, groups: str | Sequence[str] | None = None,
               random: str | Sequence[str] | None = None, weights: str | None = None, offset: str | None = None,
               nAGQ: int = 1, engine: str = "auto", optimizer: str = "bobyqa", start: npt.ArrayLike | None = None,
               check_conv: bool = True, maxiter: int | None = None, client: Client | None = None,
               split_every: int = 8, progress: bool = True, blas_threads: int | None = None) -> ChunkedGLMMResult:
    """Fit a GLMM to a Dask DataFrame: every pass runs on the partitions' workers.

    The partitions are encoded once on their workers and kept there for the fit's passes
    (released at the end); each pass sends β and ``Λθu`` (model-sized) and gets back the
    summed blocks, added on the workers in a tree of ``split_every``.  Without a
    ``distributed`` client (Dask's local schedulers) the encoded partitions are kept in
    this process.

    Parameters
    ----------
    formula : str
    data : dask.dataframe.DataFrame
    family, link, groups, random, weights, offset, nAGQ, engine, optimizer, start, check_conv, maxiter
        As in :func:`glmer_chunks`.
    client : distributed.Client, optional
        Default: the active client, if any.
    split_every : int
        Partial results added per reduction task.
    progress : bool
        A tqdm bar counting the passes.
    blas_threads : int, optional
        BLAS threads on the client during the optimization.

    Returns
    -------
    ChunkedGLMMResult
    """
    from .dask import _compute, _merge_summaries, _tree, check_dask_input

    check_dask_input(data, split_every, "glmer_dask", "interlace.glmer")
    import dask
    from dask import delayed

    from .runners import DaskRunner, _encode_partition

    fam = _check_glmm_options(family, link, nAGQ, engine)
    plan = glmm_plan(formula, list(data.columns), fam, groups, random, weights, offset)
    parts = data[plan.read_columns].to_delayed()
    if client is None:
        client = _active_client()
    timings: dict = {}
    t0 = time.perf_counter()
    dplan = delayed(plan, pure=True)
    scans = [delayed(scan_chunk, pure=True)(p, dplan) for p in parts]
    summary = _compute(_tree(scans, _merge_summaries, int(split_every)), client)
    design = build_design(plan, summary)
    timings["levels_pass"] = time.perf_counter() - t0
    runner: Any
    if client is not None:
        runner = DaskRunner(parts, plan, summary, client, split_every)
    else:  # Dask's local schedulers: the encoded partitions stay in this process
        dsummary = delayed(summary, pure=True)
        encoded = dask.compute(*[delayed(_encode_partition, pure=True)(p, dplan, dsummary) for p in parts])
        runner = LocalRunner.of_encoded(list(encoded), design)
    return fit_glmm_runner(design, fam, runner, nAGQ, engine, optimizer, start, check_conv, maxiter, progress,
                           blas_threads, timings)


def _active_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - depends on the machine
        return None
    try:
        return default_client()
    except ValueError:
        return None
