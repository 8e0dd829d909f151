"""statsmodels MixedLM's random effects laid out as random-effects terms.

MixedLM's model, ``g`` the ``groups`` factor: the random effects of group ``i`` are
``γ_i = [a_i | c_i1 | c_i2 | …]``, with ``a_i ~ N(0, σ² Ψ)`` on the columns of
``exog_re`` and, for each variance component ``j``, ``c_ij ~ N(0, σ² v_j I)`` on the
``p_ij`` columns of that component's design in group ``i``; groups are independent.

:func:`layout_mixedlm` lays this model out on the shared
:class:`~interlace.design.terms.RandomEffects` structure in one of two ways (the same
model, the same likelihood):

* **grouped** — one term grouped by ``g`` with the columns ``[exog_re | vc_1 | vc_2 …]``
  and a :class:`~interlace.design.covariance.BlockDiagonal` covariance (``Ψ``'s
  structure, then a :class:`~interlace.design.covariance.ScaledIdentity` per
  component).  Column ``k`` of a component is the term's column ``k`` in every group;
  groups with fewer columns leave the rest at zero (random effects without data, which
  change neither the likelihood nor the estimates).  ΛᵀZᵀZΛ + I stays block-diagonal by
  group, which is cheapest when the groups are many and narrow (nested designs).
* **factor terms** — a component whose design has at most one nonzero per row in every
  group (the indicator columns of a factor: ``"0 + C(cask)"`` within batches, or the
  factors of the crossed idiom, one all-rows group with ``"0 + C(a)"`` and
  ``"0 + C(b)"``) becomes a scalar term of its own, grouped by (group, column): lme4's
  ``(1 | batch:cask)``, or ``(1 | a)`` and ``(1 | b)`` when there is one group.  Crossed
  factors then reach the engines as crossed terms, which the blocked and CHOLMOD
  engines factor sparsely.

``layout="auto"`` makes the factor terms when they are cheaper for the blocked engine:
it compares the dense work of the grouped term (groups × width³) with that of the block
left dense after the factor terms' first term is eliminated (its columns³).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from ..formula import RandomTermSpec
from .covariance import BlockDiagonal, CovarianceStructure, ScaledIdentity, Unstructured
from .terms import RandomEffects, RandomEffectsTerm

__all__ = ["LAYOUTS", "VCLayout", "free_masks", "layout_mixedlm", "single_nonzero"]

#: Accepted values of ``layout``.
LAYOUTS = ("auto", "grouped", "factors")


@dataclass
class VCLayout:
    """MixedLM's random effects on a :class:`RandomEffects` structure.

    Attributes
    ----------
    re : RandomEffects
        The terms (fitting order).
    re_cov : CovarianceStructure or None
        Structure of ``Ψ`` (``cov_re / scale``); None without ``exog_re``.
    re_theta : ndarray of int
        Positions in θ of ``re_cov``'s parameters.
    vc_theta : ndarray of int
        Position in θ of each component's parameter (``θ² = v_j``).
    b_index : list of ndarray of int
        For each group, the positions in the stacked random-effects vector of that
        group's ``[exog_re | vc_1 | vc_2 …]`` effects, in MixedLM's order.
    factor_terms : tuple of bool
        Which components are terms of their own.
    """

    re: RandomEffects
    re_cov: CovarianceStructure | None
    re_theta: np.ndarray
    vc_theta: np.ndarray
    b_index: list[np.ndarray]
    factor_terms: tuple[bool, ...]

    def theta(self, cov_re: np.ndarray, vcomp: np.ndarray) -> np.ndarray:
        """θ from MixedLM's profile parameters ``cov_re / scale`` and ``vcomp / scale``."""
        th = np.zeros(self.re.n_theta)
        if self.re_cov is not None:
            th[self.re_theta] = self.re_cov.theta_from_covariance(np.asarray(cov_re, float), 1.0)
        th[self.vc_theta] = np.sqrt(np.clip(np.asarray(vcomp, float).ravel(), 0.0, None))
        return th

    def components(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cov_re / scale, vcomp / scale)`` from θ."""
        theta = np.asarray(theta, float)
        if self.re_cov is None:
            cov = np.zeros((0, 0))
        else:
            cov = self.re_cov.covariance(theta[self.re_theta], 1.0)
        return cov, theta[self.vc_theta] ** 2

    def group_effects(self, b: np.ndarray, i: int) -> np.ndarray:
        """Group ``i``'s random effects, MixedLM's order, from the stacked vector ``b``."""
        return np.asarray(b)[self.b_index[i]]


def free_masks(free: Any, k_fe: int, k_re: int, k_vc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsmodels MixedLM's ``free`` pattern (a MixedLMParams-like mask) as boolean masks.

    Returns
    -------
    fe : ndarray of bool (k_fe,)
    cov_re : ndarray of bool (k_re, k_re)
    vcomp : ndarray of bool (k_vc,)
        True where the parameter is estimated, False where it is held at its start value.
    """
    def part(name: str, shape: tuple[int, ...]) -> np.ndarray:
        v = getattr(free, name, None)
        if v is None:
            return np.ones(shape)
        v = np.asarray(v, dtype=float)
        if v.size != int(np.prod(shape)):
            raise DataError(f"free.{name} has {v.size} entries; the model needs {int(np.prod(shape))}")
        return v.reshape(shape)

    fe, cov, vc = part("fe_params", (k_fe,)), part("cov_re", (k_re, k_re)), part("vcomp", (k_vc,))
    return fe != 0, cov != 0, vc != 0


def single_nonzero(mats: Sequence[Any], group_rows: Sequence[np.ndarray], n: int
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Column and value of each row's only nonzero in a component's designs (-1, 0: none).

    ``mats[i]`` is the design of group ``i`` for the rows ``group_rows[i]``.  Returns
    None when some row has two nonzeros (the component is not the indicators of a factor).
    """
    col = np.full(n, -1, dtype=np.int64)
    val = np.zeros(n)
    for rows, m in zip(group_rows, mats):
        if sp.issparse(m):
            m = sp.csr_matrix(m, dtype=float)
            m.eliminate_zeros()
            cnt = np.diff(m.indptr)
            if np.any(cnt > 1):
                return None
            has = cnt == 1
            col[rows[has]] = m.indices
            val[rows[has]] = m.data
            continue
        m = np.asarray(m, dtype=float)
        if m.ndim == 1:
            m = m[:, None]
        if m.shape[1] == 0:
            continue
        nz = m != 0
        cnt = nz.sum(axis=1)
        if np.any(cnt > 1):
            return None
        has = cnt == 1
        c = nz.argmax(axis=1)
        col[rows[has]] = c[has]
        val[rows[has]] = m[np.flatnonzero(has), c[has]]
    return col, val


def _dense_block(mats: Sequence[Any], group_rows: Sequence[np.ndarray], n: int, p: int) -> np.ndarray:
    """The component's columns in the grouped term: group ``i``'s column ``k`` → column ``k``."""
    X = np.zeros((n, p))
    for rows, m in zip(group_rows, mats):
        m = m.toarray() if sp.issparse(m) else np.asarray(m, dtype=float)
        if m.ndim == 1:
            m = m[:, None]
        X[rows, :m.shape[1]] = m
    return X


def _dense_cost(n_groups: int, k_re: int, pmax: list[int], widths: list[np.ndarray],
                factor: list[bool]) -> tuple[float, float]:
    """Dense work of the grouped layout and of the factor-term layout (blocked engine, per θ)."""
    grouped = float(n_groups) * float(k_re + sum(pmax)) ** 3
    p0 = k_re + sum(p for p, f in zip(pmax, factor) if not f)
    qs = [(n_groups, n_groups * p0, p0)] if p0 else []  # (levels, columns, width)
    qs += [(int(w.sum()), int(w.sum()), 1) for w, f in zip(widths, factor) if f]
    qs.sort(key=lambda t: -t[0])
    first_levels, first_q, first_p = qs[0]
    rest = sum(q for _, q, _ in qs[1:])
    return grouped, float(first_levels) * float(first_p) ** 3 + float(rest) ** 3


def layout_mixedlm(codes: np.ndarray, group_rows: Sequence[np.ndarray], group_name: str,
                   exog_re: np.ndarray | None, re_cov: CovarianceStructure | None, re_names: Sequence[str],
                   vc_names: Sequence[str], vc_mats: Sequence[Sequence[Any]], layout: str = "auto") -> VCLayout:
    """Lay out MixedLM's random effects as terms (see the module docstring).

    Parameters
    ----------
    codes : ndarray of int (n,)
        Group index of each row (groups in sorted order).
    group_rows : list of ndarray of int
        Rows of each group.
    group_name : str
        Name of the groups factor (for the terms' names).
    exog_re : ndarray (n, k_re) or None
        Design of the correlated coefficients.
    re_cov : CovarianceStructure or None
        Structure of their relative covariance (``Unstructured(k_re)`` by default).
    re_names : list of str
        Names of ``exog_re``'s columns.
    vc_names : list of str
        Component names.
    vc_mats : list of list
        ``vc_mats[j][i]``: design of component ``j`` in group ``i`` (dense or sparse).
    layout : {"auto", "grouped", "factors"}
        ``"factors"`` makes every component whose rows have at most one nonzero a term of
        its own; ``"grouped"`` none; ``"auto"`` decides by cost.

    Returns
    -------
    VCLayout
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown variance-component layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    n = codes.shape[0]
    n_groups = len(group_rows)
    k_re = 0 if exog_re is None else exog_re.shape[1]
    if k_re and re_cov is None:
        re_cov = Unstructured(k_re)
    widths = [np.array([np.shape(m)[1] if np.ndim(m) == 2 else 1 for m in mats], dtype=np.int64)
              for mats in vc_mats]
    pmax = [int(w.max()) if w.size else 0 for w in widths]
    for name, p in zip(vc_names, pmax):
        if p == 0:
            raise DataError(f"variance component {name!r} has no columns")
    single = [single_nonzero(m, group_rows, n) if layout != "grouped" and (p > 1 or layout == "factors") else None
              for m, p in zip(vc_mats, pmax)]
    factor = [s is not None for s in single]
    if layout == "auto" and any(factor):
        grouped, split = _dense_cost(n_groups, k_re, pmax, widths, factor)
        if split >= grouped:
            factor = [False] * len(factor)

    terms: list[RandomEffectsTerm] = []
    group_term = None
    blocks, covs, names, col_off = [], [], [], []
    if k_re:
        assert exog_re is not None and re_cov is not None
        blocks.append(np.asarray(exog_re, float))
        covs.append(re_cov)
        names += list(re_names)
    for j, vname in enumerate(vc_names):
        if factor[j]:
            col_off.append(-1)
            continue
        col_off.append(sum(b.shape[1] for b in blocks))
        blocks.append(_dense_block(vc_mats[j], group_rows, n, pmax[j]))
        covs.append(ScaledIdentity(pmax[j]))
        names += [f"{vname}[{k}]" for k in range(pmax[j])]
    if blocks:
        spec = RandomTermSpec(lhs="<array>", group=(group_name,),
                              source=f"MixedLM random effects within {group_name!r}")
        levels = pd.Index(np.arange(n_groups), name=group_name)
        group_term = RandomEffectsTerm(spec, levels, codes.astype(np.int64), np.hstack(blocks), names, None,
                                       BlockDiagonal(covs))
        terms.append(group_term)
    starts: dict[int, np.ndarray] = {}
    factor_terms: dict[int, RandomEffectsTerm] = {}
    for j, vname in enumerate(vc_names):
        if not factor[j]:
            continue
        sn = single[j]
        assert sn is not None
        col, val = sn
        start = np.concatenate([[0], np.cumsum(widths[j])]).astype(np.int64)
        lev = np.where(col >= 0, start[codes] + col, np.minimum(start[codes], start[-1] - 1))
        name = f"{group_name}:{vname}" if n_groups > 1 else str(vname)
        spec = RandomTermSpec(lhs="<array>", group=(name,),
                              source=f"MixedLM variance component {vname!r} within {group_name!r}")
        t = RandomEffectsTerm(spec, pd.Index(np.arange(int(start[-1])), name=name), lev.astype(np.int64),
                              val[:, None], [str(vname)], None, Unstructured(1))
        terms.append(t)
        starts[j], factor_terms[j] = start, t
    if not terms:
        raise DataError("the model has no random effects")
    re = RandomEffects(terms)
    pos = {id(t): k for k, t in enumerate(re.terms)}

    re_theta = np.zeros(0, dtype=np.int64)
    vc_theta = np.zeros(len(vc_names), dtype=np.int64)
    if group_term is not None:
        kg = pos[id(group_term)]
        cov = group_term.cov
        assert isinstance(cov, BlockDiagonal)
        t0 = int(re.theta_offsets[kg])
        blk = 0
        if k_re:
            assert re_cov is not None
            re_theta = t0 + int(cov.theta_offsets[0]) + np.arange(re_cov.n_theta)
            blk = 1
        for j in range(len(vc_names)):
            if not factor[j]:
                vc_theta[j] = t0 + int(cov.theta_offsets[blk])
                blk += 1
    for j, t in factor_terms.items():
        vc_theta[j] = int(re.theta_offsets[pos[id(t)]])

    b_index = []
    for i in range(n_groups):
        parts = []
        if group_term is not None:
            base = int(re.col_offsets[pos[id(group_term)]]) + i * group_term.p
            if k_re:
                parts.append(base + np.arange(k_re))
        for j in range(len(vc_names)):
            p = int(widths[j][i])
            if factor[j]:
                k = pos[id(factor_terms[j])]
                parts.append(int(re.col_offsets[k]) + int(starts[j][i]) + np.arange(p))
            else:
                parts.append(base + col_off[j] + np.arange(p))
        b_index.append(np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64))
    return VCLayout(re, re_cov if k_re else None, re_theta.astype(np.int64), vc_theta, b_index, tuple(factor))
