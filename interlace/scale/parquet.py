"""Out-of-core fitting on one machine: an LMM over a parquet file read in batches (pyarrow).

Only the columns the model uses are read, ``batch_size`` rows at a time, twice
(levels, then cross-product blocks); peak memory is one batch and its design
matrices plus the summed blocks, not the file.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import DataError, InterlaceError
from .core import fit_chunks

if TYPE_CHECKING:
    from .results import ChunkedLMEResult

__all__ = ["fit_parquet", "iter_parquet"]

#: Rows per batch by default.
DEFAULT_BATCH_SIZE = 1_000_000


def _dataset(path):
    try:
        import pyarrow.dataset as pads
    except ImportError:  # pragma: no cover - depends on the machine
        raise ImportError("fit_parquet needs pyarrow: pip install 'interlace[parquet]'") from None
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
        raise InterlaceError(f"no such parquet file or directory: {os.fspath(path)!r}")
    return pads.dataset(path, format="parquet")


def _integer_columns_with_nulls(ds, columns) -> set[str]:
    """Integer columns that hold a null somewhere: pandas reads them as float64 for the whole
    file, so every batch is cast the same way (else a batch without nulls would give ints).

    Null counts come from the row-group statistics when every row group has them, else
    from reading the column.
    """
    import pyarrow as pa

    out = set()
    for c in columns:
        if not pa.types.is_integer(ds.schema.field(c).type):
            continue
        n_null = _null_count_from_metadata(ds, c)
        if n_null is None:
            n_null = 0
            for batch in ds.to_batches(columns=[c]):
                n_null += batch.column(0).null_count
                if n_null:
                    break
        if n_null:
            out.add(c)
    return out


def _null_count_from_metadata(ds, column: str) -> int | None:
    total = 0
    try:
        for frag in ds.get_fragments():
            md = frag.metadata
            j = md.schema.to_arrow_schema().get_field_index(column)
            for i in range(md.num_row_groups):
                stats = md.row_group(i).column(j).statistics
                if stats is None or not stats.has_null_count:
                    return None
                total += stats.null_count
    except Exception:  # noqa: BLE001 - any metadata problem: read the column instead
        return None
    return total


def _check_schemas(ds, columns: Sequence[str]) -> None:
    """Refuse files that store a used column with another type than the first file (each
    file would be encoded on its own, e.g. numbers in one and strings in another)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first: dict[str, tuple[pa.DataType, str]] = {}
    for file in ds.files:
        schema = pq.read_schema(file)
        for c in columns:
            if c not in schema.names:
                raise DataError(f"column {c!r} is not in the parquet file {file!r}")
            t = schema.field(c).type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if c not in first:
                first[c] = (t, file)
                continue
            t0, f0 = first[c]
            same = t == t0 or (_number(t) and _number(t0)) or (_text(t) and _text(t0))
            if not same:
                raise DataError(f"column {c!r} has type {t0} in {f0!r} but {t} in {file!r}: the files of a "
                                "dataset must store a column with one type (cast it when writing)")


def _number(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _text(t) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view",
                                                                          lambda _: False)(t)


def _files(path) -> list[str]:
    ds = _dataset(path)
    return list(ds.files)


def iter_parquet(path: str | os.PathLike[str], columns: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE,
                 as_float: set | None = None) -> Iterator[pd.DataFrame]:
    """pandas chunks of a parquet file or directory, only ``columns``, at most ``batch_size`` rows each.

    Row groups are read one at a time (``ParquetFile.read_row_group``) and cut into
    ``batch_size`` pieces, so memory holds one row group and its pandas copy, whatever
    the file's size (pyarrow's dataset scanner reads ahead of a slow consumer, up to
    the whole file).  Integer columns with nulls anywhere (or those in ``as_float``)
    come out as float64 in every chunk, as ``pandas.read_parquet`` of the whole file
    gives them.
    """
    import pyarrow.parquet as pq

    if as_float is None:
        as_float = _integer_columns_with_nulls(_dataset(path), columns)
    batch_size = max(1, int(batch_size))
    for file in _files(path):
        pf = pq.ParquetFile(file)
        for i in range(pf.num_row_groups):
            table = pf.read_row_group(i, columns=list(columns))
            for start in range(0, table.num_rows, batch_size):
                df = table.slice(start, batch_size).to_pandas()
                for c in as_float:
                    if c in df.columns:
                        df[c] = df[c].astype(np.float64)
                yield df
            del table


def fit_parquet(formula: str, path: str | os.PathLike[str], groups: str | Sequence[str] | None = None,
                random: str | Sequence[str] | None = None, method: str = "REML", weights: str | None = None,
                offset: str | None = None, engine: str = "auto", optimizer: str = "auto",
                start: npt.ArrayLike | None = None, check_conv: bool = True, maxiter: int | None = None,
                df_method: str = "satterthwaite", batch_size: int = DEFAULT_BATCH_SIZE,
                blas_threads: int | None = None, optimizer_options: dict | None = None) -> ChunkedLMEResult:
    """Fit a linear mixed model to a parquet file (or directory of files) read in batches.

    Two passes over the used columns: the first finds the complete rows, the levels of
    every grouping factor and of every categorical fixed-effect factor; the second sums
    the cross-product blocks of ``[Z X y]`` batch by batch.  The optimization then runs
    exactly as :func:`interlace.fit` on the same data in memory, with the same estimates.

    Parameters
    ----------
    formula : str
        As in :func:`interlace.fit` (``"y ~ x + (1 | g)"``).
    path : str or path-like
        A parquet file or a directory of parquet files (pyarrow dataset).
    groups, random, method, engine, optimizer, start, check_conv, maxiter, df_method
        As in :func:`interlace.fit` (``df_method`` "satterthwaite" or "normal").
    weights, offset : str, optional
        Column names of prior weights and an offset.
    batch_size : int
        Rows per batch: peak memory grows with it.
    blas_threads : int, optional
        BLAS threads during the optimization (as in :meth:`CrossedLME.fit`).
    optimizer_options : dict, optional
        Passed to the optimizer (as in :meth:`interlace.CrossedLME.fit`).

    Returns
    -------
    ChunkedLMEResult
        ``n_chunks`` and ``timings`` (levels pass, blocks pass, optimization) are set.

    Examples
    --------
    >>> import tempfile, os
    >>> from interlace import datasets
    >>> from interlace.scale import fit_parquet
    >>> path = os.path.join(tempfile.mkdtemp(), "sleep.parquet")
    >>> datasets.load("sleepstudy").to_parquet(path)
    >>> res = fit_parquet("Reaction ~ Days + (Days | Subject)", path, batch_size=50)
    >>> float(round(res.fe_params["Days"], 4))
    10.4673
    """
    from .design import make_plan

    ds = _dataset(path)
    names = list(ds.schema.names)
    cols = make_plan(formula, names, groups, random, weights, offset).read_columns
    _check_schemas(ds, cols)
    as_float = _integer_columns_with_nulls(ds, cols)

    def chunks():
        return iter_parquet(path, cols, batch_size, as_float)

    return fit_chunks(formula, chunks, names, groups=groups, random=random, method=method, weights=weights,
                      offset=offset, engine=engine, optimizer=optimizer, start=start, check_conv=check_conv,
                      maxiter=maxiter, df_method=df_method, blas_threads=blas_threads,
                      optimizer_options=optimizer_options)
