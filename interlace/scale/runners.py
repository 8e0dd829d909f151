"""Passes over the chunks: run a function on every encoded chunk and add the results.

A chunked GLMM makes many passes (one per PIRLS iteration), so the chunks are
encoded once (:func:`~interlace.scale.encode.encode_chunk`) and kept where they are:

* :class:`LocalRunner` — chunks read on this machine (a parquet file, any re-iterable
  source).  The first pass encodes them; with ``cache="disk"`` (the default) each
  encoded chunk is written to a temporary directory and later passes read it back
  one chunk at a time (memory holds one chunk, whatever the data's size); with
  ``cache="memory"`` they stay in memory (with their row patterns: fastest, for data
  that fit); with ``cache="none"`` every pass reads and encodes the source again.
* :class:`DaskRunner` — a Dask DataFrame on a ``distributed`` cluster: every partition
  is encoded on its worker and kept there (``client.compute``), a pass is one task per
  partition and a tree of additions on the workers (``split_every`` at a time) until at
  most ``split_every`` partial sums remain, which the client adds: what comes back per
  pass is a few model-sized objects, never rows.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InterlaceError
from .design import ChunkedDesign, ScanPlan, ScanSummary, build_design
from .encode import EncodedChunk, encode_chunk

__all__ = ["LocalRunner", "DaskRunner", "CACHES", "add_all"]

#: how a :class:`LocalRunner` keeps the encoded chunks between passes
CACHES = ("disk", "memory", "none")


def add_all(*parts: Any) -> Any:
    """The sum of the parts (None for none)."""
    out = None
    for p in parts:
        out = p if out is None else out + p
    return out


@dataclass(frozen=True)
class _Constant:
    """An array whose entries are all equal, as written to the disk cache (columns of ones, unit weights)."""

    value: Any
    shape: tuple
    dtype: str


def _pack(obj: Any) -> Any:
    """What is written for ``obj``: constant arrays as :class:`_Constant`, level codes as int32."""
    if isinstance(obj, np.ndarray):
        if obj.size > 1 and obj.dtype.kind in "fiub":
            bits = np.ascontiguousarray(obj).view(f"u{obj.dtype.itemsize}")  # equal bits: -0.0 is not 0.0
            if bool(np.all(bits == bits.flat[0])):
                return _Constant(obj.flat[0].item(), obj.shape, obj.dtype.str)
        if obj.dtype == np.int64 and obj.size and -2**31 < obj.min() and obj.max() < 2**31:
            return obj.astype(np.int32)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pack(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, _Constant):
        return np.full(obj.shape, obj.value, dtype=np.dtype(obj.dtype))
    if isinstance(obj, np.ndarray):
        return obj.astype(np.int64) if obj.dtype == np.int32 else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unpack(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _unpack(v) for k, v in obj.items()}
    return obj


_FIELDS = ("n", "y", "failures", "weights", "offset", "X", "codes", "Zx", "saved")


def _save(path: str, enc: EncodedChunk) -> None:
    """Write an encoded chunk (its arrays and ``saved``, not its cache), packed, with pickle (fast to read)."""
    with open(path, "wb") as fh:
        pickle.dump({f: _pack(getattr(enc, f)) for f in _FIELDS}, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: str) -> EncodedChunk:
    with open(path, "rb") as fh:
        state = pickle.load(fh)  # noqa: S301 - a file this process wrote
    return EncodedChunk(**{f: _unpack(state[f]) for f in _FIELDS})


class LocalRunner:
    """Passes over chunks read on this machine (see the module docstring).

    Parameters
    ----------
    chunks : callable
        Returns an iterable of pandas DataFrames (called for the first pass, and for every pass
        with ``cache="none"``).
    design : ChunkedDesign
    cache : {"disk", "memory", "none"}
    cache_dir : str, optional
        Where the disk cache's temporary directory is made (default: the system's).
    """

    def __init__(self, chunks: Callable[[], Iterable[pd.DataFrame]], design: ChunkedDesign, cache: str = "disk",
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        if cache not in CACHES:
            raise InterlaceError(f"cache must be one of {', '.join(map(repr, CACHES))}, got {cache!r}")
        self.chunks, self.design, self.cache = chunks, design, cache
        self._dir: str | None = None
        if cache == "disk":
            self._dir = tempfile.mkdtemp(prefix="interlace-chunks-", dir=None if cache_dir is None else
                                         os.fspath(cache_dir))
        self._stored: list | None = None
        self.n_chunks = 0
        self.cache_bytes = 0

    def _encoded(self) -> Iterator[EncodedChunk]:
        if self._stored is None or self.cache == "none":
            stored: list = []
            count = 0
            for i, df in enumerate(self.chunks()):
                count += 1
                enc = encode_chunk(df, self.design)
                yield enc
                # saved after the first pass's function ran on it: what it keeps with the rows goes too
                if self.cache == "memory":
                    stored.append(enc)
                elif self.cache == "disk":
                    assert self._dir is not None
                    path = os.path.join(self._dir, f"chunk{i:06d}.pkl")
                    _save(path, enc)
                    self.cache_bytes += os.path.getsize(path)
                    stored.append(path)
            self._stored = stored
            self.n_chunks = count
            return
        for item in self._stored:
            yield _load(item) if isinstance(item, str) else item

    @classmethod
    def of_encoded(cls, encoded: list[EncodedChunk], design: ChunkedDesign) -> LocalRunner:
        """A runner over chunks already encoded and kept in memory."""
        self = cls(lambda: iter(()), design, cache="memory")
        self._stored = list(encoded)
        self.n_chunks = len(encoded)
        return self

    def map_reduce(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(chunk, *args)`` over every chunk, added."""
        total = None
        for enc in self._encoded():
            r = func(enc, *args)
            total = r if total is None else total + r
        return total

    def close(self) -> None:
        """Remove the disk cache and drop the chunks kept in memory."""
        self._stored = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __del__(self) -> None:  # pragma: no cover - a safety net; fits call close()
        path = getattr(self, "_dir", None)
        if path:
            shutil.rmtree(path, ignore_errors=True)


def _encode_partition(df: pd.DataFrame, plan: ScanPlan, summary: ScanSummary) -> EncodedChunk:
    # patsy's design objects do not pickle: the task rebuilds the (small) design from the first pass's summary
    return encode_chunk(df, build_design(plan, summary, warn=False))


class DaskRunner:
    """Passes over a Dask DataFrame's partitions, encoded once and kept on the workers.

    Parameters
    ----------
    parts : list of dask.delayed.Delayed
        The partitions (``ddf.to_delayed()``).
    plan : ScanPlan
    summary : ScanSummary
        The levels pass's result (every partition's task rebuilds the design from it).
    client : distributed.Client
    split_every : int
        Partial results added per reduction task.
    """

    def __init__(self, parts: list, plan: ScanPlan, summary: ScanSummary, client: Any, split_every: int = 8) -> None:
        from dask import delayed

        self.client = client
        self.split_every = int(split_every)
        dplan, dsummary = delayed(plan, pure=True), delayed(summary, pure=True)
        encoded = [delayed(_encode_partition, pure=True)(p, dplan, dsummary) for p in parts]
        self._futures = client.compute(encoded)
        self.n_chunks = len(parts)

    def map_reduce(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(partition, *args)`` on every partition's worker, added in a tree on the workers (the last
        ``split_every`` partial sums on the client: one scheduling round less per pass)."""
        client = self.client
        level = [client.submit(_apply, func, f, args, pure=False) for f in self._futures]
        k = self.split_every
        while len(level) > k:
            level = [client.submit(add_all, *level[i:i + k], pure=False) for i in range(0, len(level), k)]
        return add_all(*client.gather(level))  # the last (at most split_every) partial sums are added here

    def close(self) -> None:
        """Release the encoded partitions on the workers."""
        if self._futures:
            self.client.cancel(self._futures)
            self._futures = []


def _apply(func: Callable[..., Any], chunk: EncodedChunk, args: tuple) -> Any:
    return func(chunk, *args)
