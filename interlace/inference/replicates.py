"""Running refit replicates (bootstraps, power simulations): in this process or in forked workers.

Replicate ``i`` draws from its own random stream (the caller's ``SeedSequence(seed).spawn(n)[i]``),
so the replicates are the same whatever the number of worker processes.
"""
from __future__ import annotations

import warnings
from typing import Any

from ..linalg.threads import blas_limits

__all__ = ["ReplicateWorker", "run_replicates"]


class ReplicateWorker:
    """One kind of replicate: subclasses set ``self.re`` (the random-effects structure) and
    implement ``one(seedseq) -> tuple`` (a row of results, failures recorded, never raised)."""

    re: Any

    def one(self, seedseq: Any) -> tuple:
        raise NotImplementedError

    def run(self, indices: list, seeds: list) -> list:
        """``[(i, *one(seed)), ...]`` with warnings silenced (each replicate's are not the user's)."""
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i, s in zip(indices, seeds):
                out.append((i, *self.one(s)))
        return out

    def blas_limits(self) -> Any:
        """BLAS threads during refits: 1 for small factors, as in ``fit``."""
        return blas_limits(self.re)


_WORKER: ReplicateWorker | None = None  # inherited by forked worker processes


def _init_worker() -> None:
    assert _WORKER is not None
    _WORKER.blas_limits()  # kept for the life of the worker process


def _run_chunk(indices: list, seeds: list) -> list:
    assert _WORKER is not None
    return _WORKER.run(indices, seeds)


def run_replicates(worker: Any, seeds: list, n_jobs: int = 1, progress: bool = True,
                   desc: str = "replicates") -> list:
    """Run ``worker.run(indices, seeds)`` over every replicate, in this process or in ``n_jobs``
    forked workers (the same replicates whatever ``n_jobs``), with a tqdm bar.

    ``worker`` has ``run(indices, seeds) -> [(i, ...), ...]`` and ``blas_limits()`` (a context
    manager kept for the life of a worker process).  Returns the rows sorted by replicate.
    """
    import multiprocessing  # imported here, with tqdm and the executor: a fit needs none of them
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    global _WORKER
    n = len(seeds)
    out: list = []
    n_jobs = max(1, int(n_jobs))
    ctx = None
    if n_jobs > 1:
        try:
            ctx = multiprocessing.get_context("fork")
        except ValueError:
            warnings.warn("n_jobs > 1 needs the 'fork' start method; running in one process", RuntimeWarning,
                          stacklevel=3)
    bar = tqdm(total=n, disable=not progress, desc=desc)
    try:
        if ctx is None:
            with worker.blas_limits():
                for i in range(n):
                    out.extend(worker.run([i], [seeds[i]]))
                    bar.update(1)
        else:
            _WORKER = worker
            size = max(1, min(50, n // (4 * n_jobs)))
            chunks = [list(range(a, min(n, a + size))) for a in range(0, n, size)]
            with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_init_worker) as ex:
                futs = [ex.submit(_run_chunk, c, [seeds[i] for i in c]) for c in chunks]
                for f in as_completed(futs):
                    part = f.result()
                    out.extend(part)
                    bar.update(len(part))
    finally:
        bar.close()
        _WORKER = None
    out.sort(key=lambda r: r[0])
    return out
