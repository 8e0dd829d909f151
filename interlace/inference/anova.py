"""F tests for the fixed-effect terms of a linear mixed model (lmerTest's ``anova``).

Each formula term (a factor with several levels is one term) is tested with a
contrast matrix L whose rows span the hypothesis "this term has no effect":

* type I (sequential): rows of the unit upper-triangular factor of XᵀX
  (lmerTest's ``doolittle``), so each term is adjusted for the terms before it;
* type III: lmerTest's construction.  With X coded by treatment contrasts and R̃X
  the over-parameterized design (an intercept, then for every term all its
  cells: every level combination of its factors, times its numeric variables),
  the columns of ``L̃ = (X⁺ R̃X)ᵀ`` that belong to a term are made orthogonal to
  the columns of the terms that *contain* it, higher-order terms first; a term
  F₂ contains F₁ when F₁'s variables are among F₂'s, F₂ has more, and both have
  the same numeric variables (so in ``angle ~ recipe * temp`` the ``temp`` slope
  is averaged over recipes but ``recipe`` is tested at ``temp = 0``, as in
  lmerTest).  The rows of L̃ for X's own columns, restricted to a term's columns
  and transposed, are that term's contrasts.  Other codings (``Sum``, ``Poly``…)
  are handled as lmerTest does: the contrasts are built in treatment coding and
  mapped with ``X_treatment⁺ X``.

Rows and columns follow lmerTest exactly (also R's ``zapsmall`` rounding), since
a Satterthwaite F test's denominator df depends on the basis of L, not only on
its row space.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy
from patsy.contrasts import ContrastMatrix
from patsy.design_info import SubtermInfo

from ..errors import InterlaceError

__all__ = ["FixedTerm", "contrasts_type1", "contrasts_type3", "doolittle", "fixed_terms", "ftest_frame", "term_names",
           "zapsmall"]


@dataclass
class FixedTerm:
    """A fixed-effects formula term: its name, patsy term, and its columns of X (may be empty)."""

    name: str
    term: patsy.Term
    columns: np.ndarray

    @property
    def factors(self) -> tuple:
        return tuple(self.term.factors)


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall`` (R 4.2): round to ``digits − log10(max |x|)`` decimals (R rounds that half up)."""
    x = np.asarray(x, float)
    mx = np.max(np.abs(x)) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, int(np.floor(digits - np.log10(mx) + 0.5))))


def _design(model):
    fx = getattr(model, "fixed_design", None)
    if fx is None or getattr(model, "model_frame", None) is None:
        raise InterlaceError("F tests of formula terms need a model built from a formula "
                             "(interlace.fit or CrossedLME.from_formula)")
    return fx


def fixed_terms(model: Any) -> tuple[bool, list[FixedTerm]]:
    """Whether the model has an intercept, and its other terms in R's order (by interaction order)."""
    fx = _design(model)
    di = fx.design_info
    pos = {int(c): j for j, c in enumerate(fx.keep)}
    has_intercept = False
    terms = []
    for i, t in enumerate(di.terms):
        sl = di.term_slices[t]
        cols = np.array([pos[c] for c in range(sl.start, sl.stop) if c in pos], dtype=np.intp)
        if not t.factors:
            has_intercept = cols.size > 0
            continue
        key = (len(t.factors), int(cols.min()) if cols.size else fx.X.shape[1] + i)
        terms.append((key, FixedTerm(t.name(), t, cols)))
    terms.sort(key=lambda kt: kt[0])
    return has_intercept, [ft for _, ft in terms]


# ---------------------------------------------------------------------------- type I
def doolittle(A: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit lower-triangular L of A = L U without pivoting; |entries| < ``eps`` set to 0 (lmerTest's)."""
    n = A.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = A[i, :] - L[i, :i] @ U[:i, :]
        for j in range(i + 1, n):
            v = A[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else v / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def contrasts_type1(model: Any) -> dict[str, np.ndarray]:
    """Sequential (type I) contrast matrices, one per term."""
    terms = fixed_terms(model)[1]
    X = np.asarray(model.exog, float)
    p = X.shape[1]
    if p == 1:
        L = np.ones((1, 1))
    else:
        L = doolittle(X.T @ X).T if p else np.zeros((0, 0))
    return {t.name: L[t.columns] for t in terms}


# ---------------------------------------------------------------------------- type III
def _r_factor_codes(terms: list[FixedTerm]) -> list[dict]:
    """R's ``attr(terms, "factors")``: per term, variable -> 1 (coded by contrasts) or 2 (by indicators)."""
    sets = [set(t.factors) for t in terms]
    out = []
    for i, t in enumerate(terms):
        codes = {}
        for f in t.factors:
            rest = sets[i] - {f}
            codes[f] = 1 if not rest or any(rest <= sets[j] for j in range(i)) else 2
        out.append(codes)
    return out


def _containment(terms: list[FixedTerm], numeric: set) -> dict[str, list[int]]:
    """lmerTest's ``containment``: for each term, the indices of the terms containing it."""
    codes = _r_factor_codes(terms)
    vars_ = [{f for f, c in cd.items() if c == 1} for cd in codes]
    nums = [v & numeric for v in vars_]
    out = {}
    for i, t in enumerate(terms):
        out[t.name] = [j for j in range(len(terms))
                       if vars_[i] <= vars_[j] and vars_[j] - vars_[i] and nums[i] == nums[j]]
    return out


def _full_design(model, terms: list[FixedTerm], has_int: bool):
    """R̃X (every cell of every term), and S with X_treatment = R̃X S (one column per column of X).

    Column j of X_treatment is column j of X recoded with treatment contrasts (first
    level as reference) for every categorical factor patsy coded with k − 1 columns,
    indicators for those coded with k columns; a categorical factor of the term absent
    from patsy's subterm is summed over its levels.
    """
    fx = _design(model)
    di = fx.design_info
    finfo = di.factor_infos
    size = {f: (len(finfo[f].categories) if finfo[f].type == "categorical" else finfo[f].num_columns)
            for f in finfo}
    codings, names, block_off = OrderedDict(), [], {}
    off = 1 if has_int else 0
    for t in terms:
        cm = {f: ContrastMatrix(np.eye(size[f]), [f"[{i}]" for i in range(size[f])])
              for f in t.factors if finfo[f].type == "categorical"}
        ncol = int(np.prod([size[f] for f in t.factors]))
        codings[t.term] = [SubtermInfo(t.factors, cm, ncol)]
        names += [f"{t.name}#{i}" for i in range(ncol)]
        block_off[t.term] = off
        off += ncol
    if terms:
        info = patsy.DesignInfo(names, factor_infos={f: finfo[f] for t in terms for f in t.factors},
                                term_codings=codings)
        (M,) = patsy.build_design_matrices([info], model.model_frame.data, NA_action="raise")
        M = np.asarray(M, float)
    else:
        M = np.zeros((int(model.nobs), 0))
    rdX = np.hstack([np.ones((M.shape[0], 1)), M]) if has_int else M
    S = np.zeros((rdX.shape[1], len(fx.keep)))
    pos = {int(c): j for j, c in enumerate(fx.keep)}
    for term, subs in di.term_codings.items():
        start = di.term_slices[term].start
        if not term.factors:
            if start in pos:
                S[0, pos[start]] = 1.0
            continue
        tf = tuple(term.factors)
        strides = np.cumprod([1] + [size[f] for f in tf[:-1]])
        for sub in subs:
            sizes = []
            for f in sub.factors:
                if f in sub.contrast_matrices:
                    sizes.append(sub.contrast_matrices[f].matrix.shape[1])
                else:
                    sizes.append(size[f])
            for c in range(sub.num_columns):
                if start + c in pos:
                    # per-factor column index, first factor varying fastest
                    idx, rem = {}, c
                    for f, s in zip(sub.factors, sizes):
                        idx[f] = rem % s
                        rem //= s
                    choices = []
                    for f in tf:
                        k = size[f]
                        if f not in idx:  # categorical factor absent from this subterm: all levels
                            choices.append(np.arange(k))
                        elif f in sub.contrast_matrices:
                            nc = sub.contrast_matrices[f].matrix.shape[1]
                            choices.append(np.array([idx[f] + (1 if nc == k - 1 else 0)]))
                        else:
                            choices.append(np.array([idx[f]]))
                    cells = np.zeros(1, dtype=np.intp)
                    for ch, s in zip(choices, strides):
                        cells = (cells[:, None] + ch[None, :] * s).ravel()
                    S[block_off[term] + cells, pos[start + c]] = 1.0
            start += sub.num_columns
    return rdX, S


def contrasts_type3(model: Any) -> dict[str, np.ndarray]:
    """lmerTest's type III contrast matrices, one per term (see the module docstring)."""
    has_int, terms = fixed_terms(model)
    X = np.asarray(model.exog, float)
    if X.shape[1] <= 1 or len(terms) <= 1:
        return contrasts_type1(model)
    fx = _design(model)
    finfo = fx.design_info.factor_infos
    numeric = {f for f, i in finfo.items() if i.type == "numerical" and i.num_columns == 1}
    rdX, S = _full_design(model, terms, has_int)
    Xt = rdX @ S
    Xt_pinv = np.linalg.pinv(Xt)
    L = zapsmall((Xt_pinv @ rdX).T)  # cells × p
    contains = _containment(terms, numeric)
    order = sorted(range(len(terms)), key=lambda i: -len(terms[i].factors))
    for i in order:
        t = terms[i]
        others = [terms[j].columns for j in contains[t.name]]
        if not others or t.columns.size == 0:
            continue
        A = L[:, np.concatenate(others)]
        Y = L[:, t.columns]
        U, s, _ = np.linalg.svd(A, full_matrices=False)
        keep = s > (s[0] * 1e-7 if s.size else 0)
        Uk = U[:, keep]
        L[:, t.columns] = zapsmall(Y - Uk @ (Uk.T @ Y))
    Lsel = S.T @ L  # rows of L̃ for X's own columns
    mapping = zapsmall(Xt_pinv @ X)
    out = {}
    for t in terms:
        Lt = Lsel[:, t.columns].T
        Lt = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
        out[t.name] = Lt @ mapping
    return out


def term_names(model: Any) -> list[str]:
    """Names of the fixed-effect terms other than the intercept, in R's order."""
    return [t.name for t in fixed_terms(model)[1]]


def ftest_frame(rows: dict, heading: str) -> pd.DataFrame:
    """An anova-style DataFrame from ``{name: FTest}``."""
    cols = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    data = [[r.sum_sq, r.mean_sq, r.ndf, r.ddf, r.F, r.p] for r in rows.values()]
    df = pd.DataFrame(data, index=list(rows), columns=cols)
    df["NumDF"] = df["NumDF"].astype(int)
    df.attrs["heading"] = heading
    return df
