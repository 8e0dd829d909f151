"""One chunk of rows encoded as the in-memory path encodes the whole data: :class:`EncodedChunk`.

:func:`encode_chunk` keeps the chunk's complete rows and evaluates, with the design
of the first pass (:class:`~interlace.scale.design.ChunkedDesign`), the response, the
full fixed-effects matrix, the prior weights and offset, and per random-effects term
its level codes and model matrix: the arrays a pass over the data computes with, in
the layout of the random-effects structure's terms.  A chunk that brings a level, a
categorical value or a column type the first pass did not see is refused with an
error that names it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import patsy

from ..design.fixed import _NO_NA_CHECK, _check_response, check_magnitude
from ..design.terms import group_labels
from ..errors import DataError
from .design import ChunkedDesign, check_kinds, complete_rows

__all__ = ["EncodedChunk", "encode_chunk", "design_matrix", "level_codes"]


def design_matrix(info: patsy.DesignInfo, frame: pd.DataFrame, where: str) -> np.ndarray:
    """``info``'s matrix on ``frame`` (float), with a :class:`~interlace.errors.DataError` naming ``where``."""
    try:
        with np.errstate(all="ignore"):  # non-finite results are refused by the callers
            (m,) = patsy.build_design_matrices([info], frame, NA_action=_NO_NA_CHECK)
    except patsy.PatsyError as exc:
        raise DataError(f"cannot encode a chunk for {where}: {str(exc).splitlines()[0]}") from None
    return np.asarray(m, dtype=float)


def _scalar(v: Any) -> Any:
    """A numpy scalar as the Python value (its repr reads as the data)."""
    return v.item() if isinstance(v, np.generic) else v


def level_codes(levels: pd.Index, labels: pd.Series, name: str) -> np.ndarray:
    """Positions of ``labels`` among the first pass's ``levels``; an unseen level is an error."""
    codes = levels.get_indexer(labels)
    miss = codes < 0
    if miss.any():  # match on labels, as predict does (1 and 1.0, 308 and "308")
        by_str = {str(v): i for i, v in enumerate(levels)}
        codes[miss] = [by_str.get(str(v), -1) for v in np.asarray(labels)[miss]]
        if (codes < 0).any():
            bad = _scalar(np.asarray(labels)[codes < 0][0])
            raise DataError(f"level {bad!r} of {name!r} was not seen in the first pass (the data changed "
                            "between the passes?)")
    return codes.astype(np.int64)


@dataclass
class EncodedChunk:
    """The complete rows of one chunk, encoded.

    Attributes
    ----------
    n : int
        Complete rows.
    y : ndarray (n,)
        The response as the design evaluates it (a binomial response: successes, or 0/1).
    failures : ndarray (n,) or None
        A ``cbind(successes, failures)`` response's failures.
    weights : ndarray (n,) or None
        Prior weights (None: none given).
    offset : ndarray (n,) or None
    X : ndarray (n, P)
        The full fixed-effects matrix (patsy's columns; aliased ones are dropped later).
    codes, Zx : list of ndarray
        Per random-effects term, the level of each row and the term's model matrix (n, p_k).
    saved : dict
        Arrays computed from these rows once that are kept with them, in memory and on disk
        (a GLM response's proportions, trials and μ-free terms).
    cache : dict
        Things computed from these rows once and reused by later passes where the chunk
        stays in memory (a Dask worker, a cached chunk): never pickled.
    """

    n: int
    y: np.ndarray
    failures: np.ndarray | None
    weights: np.ndarray | None
    offset: np.ndarray | None
    X: np.ndarray
    codes: list
    Zx: list
    saved: dict = field(default_factory=dict, repr=False, compare=False)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["cache"] = {}
        return state

    @property
    def nbytes(self) -> int:
        """Memory of the arrays (not of the cache)."""
        arrays = [self.y, self.failures, self.weights, self.offset, self.X, *self.codes, *self.Zx]
        return sum(a.nbytes for a in arrays if a is not None)

    def terms(self, col_offsets: Sequence[int], q: int) -> SimpleNamespace:
        """The rows' random-effects structure as :class:`~interlace.linalg.crossprod.RowProducts` reads it
        (``col_offsets``: the first column of each term in Z, and Z's width ``q`` last)."""
        terms = []
        for k, (codes, Zx) in enumerate(zip(self.codes, self.Zx)):
            p = Zx.shape[1]
            qk = int(col_offsets[k + 1]) - int(col_offsets[k])
            terms.append(SimpleNamespace(codes=codes, X=Zx, p=p, nlevels=qk // p, q=qk))
        return SimpleNamespace(terms=terms, col_offsets=list(col_offsets), q=int(q))

    def zb(self, b: np.ndarray, col_offsets: Any) -> np.ndarray:
        """``Z b``: each row's nonzeros added in column order from 0, as a CSR product adds them (a
        column of ones is added without its multiplications, which change nothing)."""
        cols = self.cache.get("zb_columns")
        if cols is None:  # per nonzero column of Z: the positions in b, and the values (None: ones)
            cols = []
            for k, (codes, Zx) in enumerate(zip(self.codes, self.Zx)):
                p = Zx.shape[1]
                base = col_offsets[k] + codes * p
                for j in range(p):
                    v = Zx[:, j]
                    cols.append((base + j, None if np.all(v == 1.0) else v))
            self.cache["zb_columns"] = cols
        out = np.zeros(self.n)
        for idx, v in cols:
            out += b.take(idx) if v is None else v * b.take(idx)
        return out


def _binary_codes(col: pd.Series, levels: list, name: str) -> np.ndarray:
    """A non-numeric binomial response as 0/1 with the first pass's levels (the second is the success)."""
    values = col.to_numpy()
    known = pd.Index(levels)
    pos = known.get_indexer(values)
    if (pos < 0).any():
        bad = _scalar(values[pos < 0][0])
        raise DataError(f"response {name!r} has the value {bad!r}, which the first pass did not see "
                        f"(levels {levels}; the data changed between the passes?)")
    return (pos == 1).astype(float)


def encode_chunk(df: pd.DataFrame, design: ChunkedDesign) -> EncodedChunk:
    """Encode one chunk's complete rows with the first pass's design.

    Parameters
    ----------
    df : DataFrame
        A chunk of the data (any rows; incomplete ones are dropped as in the first pass).
    design : ChunkedDesign
    """
    plan = design.plan
    check_kinds(df, design)
    frame, _, _ = complete_rows(df, plan)
    n = len(frame)
    if plan.binary and design.response_levels is not None:
        frame = frame.copy()
        frame[design.response] = _binary_codes(frame[design.response], design.response_levels, design.response)
    else:
        frame = _check_response(plan.fixed.split("~", 1)[0], frame)  # a logical response as 0/1, as in the scan
    y = design_matrix(design.y_info, frame, f"the response {design.response!r}")[:, 0] if n else np.zeros(0)
    if not np.all(np.isfinite(y)):
        raise DataError(f"response {design.response!r} has {int(np.sum(~np.isfinite(y)))} non-finite values")
    failures = None
    if design.f_info is not None:
        failures = design_matrix(design.f_info, frame, "the failures")[:, 0] if n else np.zeros(0)
    X = design_matrix(design.x_info, frame, "the fixed effects") if design.n_x and n else np.zeros((n, design.n_x))
    bad_cols = [design.x_names[j] for j in range(X.shape[1]) if not np.all(np.isfinite(X[:, j]))]
    if bad_cols:
        raise DataError(f"fixed-effects column(s) {', '.join(map(repr, bad_cols))} have non-finite values")
    check_magnitude(y, [design.response], "response")
    check_magnitude(X, design.x_names, "fixed-effects column")
    offset = frame[plan.offset].to_numpy(float) if plan.offset is not None else None
    weights = frame[plan.weights].to_numpy(float) if plan.weights is not None else None
    codes, Zx = [], []
    for t in design.re.terms:
        if n:
            codes.append(level_codes(t.levels, group_labels(frame, t.spec.group), t.name))
            Zk = design_matrix(t.design_info, frame, f"random-effects term {t.spec.source!r}")
            if not np.all(np.isfinite(Zk)):
                raise DataError(f"a column of term {t.spec.source!r} has non-finite values")
            check_magnitude(Zk, list(t.coef_names), f"column of term {t.spec.source!r}")
            Zx.append(Zk)
        else:
            codes.append(np.zeros(0, np.int64))
            Zx.append(np.zeros((0, t.p)))
    return EncodedChunk(n, y, failures, weights, offset, X, codes, Zx)
