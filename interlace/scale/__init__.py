"""Linear and generalized linear mixed models on data that do not fit in memory at once.

* :func:`fit_dask` — a Dask DataFrame: the cross-product blocks of ``[Z X y]`` are
  summed partition by partition on the cluster (map, then a tree of additions),
  the optimization runs on the client.
* :func:`fit_parquet` — a parquet file or directory on one machine, read in
  batches with pyarrow (out of core).
* :func:`fit_chunks` — any source that can be iterated twice as pandas chunks.

GLMMs (binomial, Poisson; lme4's ``glmer``): :func:`glmer_dask`, :func:`glmer_parquet`,
:func:`glmer_chunks` (:mod:`interlace.scale.glmm`), one pass over the chunks per PIRLS
iteration (:class:`ChunkedGLMMResult`).

All give the estimates of :func:`interlace.fit` / :func:`interlace.glmer` on the same data in memory
(:class:`ChunkedLMEResult`, see :mod:`interlace.scale.results` for what it
offers and why it is not :class:`~interlace.results.lmm.CrossedLMEResult`).
Memory on the client is bounded by the summed blocks, not by the rows: see
``docs/scale.md``.  Dask and pyarrow are optional (``interlace[dask]``,
``interlace[parquet]``); nothing else imports them.
"""
from .blocks import CrossBlocks, chunk_blocks
from .core import fit_blocks, fit_chunks
from .dask import fit_dask, is_dask_dataframe
from .design import build_design, make_plan, scan_chunk
from .glmm import glmer_chunks, glmer_dask, glmer_parquet
from .glmm_results import ChunkedGLMMResult
from .parquet import fit_parquet, iter_parquet
from .results import ChunkedLMEResult

__all__ = ["fit_dask", "fit_parquet", "fit_chunks", "fit_blocks", "ChunkedLMEResult", "CrossBlocks",
           "chunk_blocks", "build_design", "make_plan", "scan_chunk", "iter_parquet", "is_dask_dataframe",
           "glmer_dask", "glmer_parquet", "glmer_chunks", "ChunkedGLMMResult"]
