"""Estimated marginal means and contrasts (R's ``emmeans`` 1.8).

**Reference grid.**  Every variable of the fixed effects takes part: a factor (a
column patsy codes as categorical) at each of its levels, a numeric covariate at its
mean over the fitted rows (or the values given in ``at``; a transformed covariate such
as ``np.log(x)`` is evaluated at the mean of ``x``, as emmeans does).  The grid's
model matrix comes from the fitted design, so it is coded as the fit was.

**Marginal means.**  The EMM of each combination of the ``specs`` (and ``by``)
variables is the equally weighted mean of the grid predictions over the other
variables: a linear function ``l`` of the parameters, with estimate ``l·β̂``, standard
error ``√(lᵀVl)`` and degrees of freedom:

* linear mixed models: Kenward-Roger (``df_method="kenward-roger"``, emmeans' default
  for ``lmer`` fits, with pbkrtest's adjusted covariance), Satterthwaite (lmerTest's)
  or ``"normal"`` (asymptotic); default the result's ``df_method``;
* GLMMs and CLMMs: asymptotic (z, ``df = inf``).

For a GLMM, ``type="response"`` back-transforms the means with the inverse link (SE by
the delta method, intervals back-transformed from the link scale) and reports
contrasts of log and logit links as ratios (``exp`` of the difference: rate or odds
ratios, tested on the link scale, ``null = 1``); other links keep contrasts on the
link scale.  For a CLMM, ``mode`` is emmeans' ``"latent"`` (default: Xβ minus the mean
threshold), ``"linear.predictor"`` (α_j − Xβ per cut point, with a ``cut`` variable),
``"cum.prob"`` (P(Y ≤ j) per cut) or ``"prob"`` (P(Y = j) per category, with the
response as a variable); the probability modes average probabilities over the grid and
use the delta method with symmetric intervals, as emmeans does.

**Contrasts** (:meth:`EMMGrid.contrast`, :meth:`EMMGrid.pairs`) are linear functions of
the EMMs within each ``by`` group: ``"pairwise"`` (i − j for i < j, Tukey adjusted),
``"revpairwise"`` (j − i), ``"trt.vs.ctrl"`` (each level − the reference, emmeans'
``dunnettx`` adjustment), ``"eff"`` (each level − the mean, FDR), ``"consec"`` (each
level − the one before; Šidák here, where emmeans uses its multivariate-t ``mvt``),
``"poly"`` (orthogonal polynomials, unadjusted) or a dict of coefficient vectors
(unadjusted).  Adjustments follow emmeans' rules: ``"tukey"`` (studentized range with
the family's number of means, only for pairwise families, else Šidák), ``"sidak"``,
``"bonferroni"``, ``"holm"``, ``"hochberg"``, ``"hommel"``, ``"fdr"``/``"BH"``,
``"BY"`` (statsmodels' ``multipletests``), ``"scheffe"``, ``"dunnettx"`` and ``"none"``;
a family of one contrast is not adjusted; intervals use the method's critical value
(Bonferroni for the step-down and FDR methods, as emmeans).
"""
from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from scipy.optimize import brentq
from scipy.stats import studentized_range
from statsmodels.stats.multitest import multipletests

from ..design.fixed import new_matrix
from ..errors import InterlaceError
from .anova import zapsmall

__all__ = ["EMMGrid", "emmeans"]

_P_ADJUST = {"holm": "holm", "hochberg": "simes-hochberg", "hommel": "hommel", "fdr": "fdr_bh", "bh": "fdr_bh",
             "by": "fdr_by", "bonferroni": "bonferroni"}
_ADJUST = ("none", "tukey", "sidak", "scheffe", "dunnettx", *_P_ADJUST)
_DEFAULT_ADJUST = {"pairwise": "tukey", "revpairwise": "tukey", "tukey": "tukey", "trt.vs.ctrl": "dunnettx",
                   "dunnett": "dunnettx", "eff": "fdr", "consec": "sidak", "poly": "none"}
_CLMM_MODES = ("latent", "linear.predictor", "cum.prob", "prob")


def _res(result: Any) -> Any:
    return getattr(result, "_results", result)


# ---------------------------------------------------------------------------- the reference grid
def _factor_columns(fx: Any, frame: pd.DataFrame) -> list[tuple[str, str, Any]]:
    """(column, kind, levels) of the data columns behind the fixed effects, in formula order:
    kind "factor" (levels in patsy's order) or "numeric"."""
    out: list[tuple[str, str, Any]] = []
    seen: set[str] = set()
    for factor, info in fx.design_info.factor_infos.items():
        code = factor.code if hasattr(factor, "code") else factor.name()
        try:
            names = [n.id for n in ast.walk(ast.parse(code, mode="eval")) if isinstance(n, ast.Name)]
        except SyntaxError:
            names = []
        cols = [n for n in names if n in frame.columns]
        if info.type == "categorical":
            if len(cols) != 1:
                raise InterlaceError(f"cannot tell which data column the factor {code!r} is made from")
            if cols[0] not in seen:
                out.append((cols[0], "factor", list(info.categories)))
                seen.add(cols[0])
            continue
        for c in cols:
            if c not in seen:
                out.append((c, "numeric", None))
                seen.add(c)
    return out


@dataclass
class _Rows:
    """EMM rows: their labels, and per row a linear function ``L`` of the parameters (linear
    modes) or a value and gradient (probability modes)."""

    table: pd.DataFrame
    L: np.ndarray | None = None
    value: np.ndarray | None = None
    grad: np.ndarray | None = None


@dataclass
class EMMGrid:
    """Estimated marginal means (or contrasts of them) of a fitted model; see the module docstring.

    Use :meth:`summary` (also ``str()``), :meth:`confint`, :meth:`test`, :meth:`contrast`
    and :meth:`pairs`.

    Attributes
    ----------
    table : DataFrame
        The variables of each row (``by`` variables included), or ``contrast`` for contrasts.
    by : list of str
    estimate_name : str
        ``"emmean"``, ``"estimate"``, ``"prob"``, ``"rate"``, ``"cumprob"``, ...
    """

    result: Any
    table: pd.DataFrame
    by: list[str]
    L: np.ndarray | None
    value: np.ndarray | None
    grad: np.ndarray | None
    df_method: str | None
    estimate_name: str = "emmean"
    link: Any = None  # GLMM family whose inverse link gives type="response"
    is_contrast: bool = False
    default_adjust: str = "none"
    family_size: np.ndarray | None = None  # means per family (Tukey)
    pairwise: bool = False
    notes: list = field(default_factory=list)
    _type: str = "link"

    # ------------------------------------------------------------------ inference
    def _vcov(self) -> np.ndarray:
        return np.asarray(self.result.cov_params(), float)

    def _base(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Estimates, standard errors and df on the linear scale."""
        cache = self.__dict__.setdefault("_base_cache", None)
        if cache is not None:
            return cache
        res = self.result
        if self.L is not None and self.df_method is not None:
            eng = res._ddf_engine(self.df_method)
            rows = [eng.contest1d(self.L[i]) for i in range(self.L.shape[0])]
            out = (np.array([r.estimate for r in rows]), np.array([r.se for r in rows]),
                   np.array([r.df for r in rows]))
        elif self.L is not None:
            V = self._vcov()
            est = self.L @ np.asarray(res.params, float)
            se = np.sqrt(np.einsum("ij,jk,ik->i", self.L, V, self.L))
            out = (est, se, np.full(est.size, np.inf))
        else:
            V = self._vcov()
            se = np.sqrt(np.einsum("ij,jk,ik->i", self.grad, V, self.grad))
            out = (np.asarray(self.value, float), se, np.full(se.size, np.inf))
        self.__dict__["_base_cache"] = out
        return out

    def _families(self) -> list[np.ndarray]:
        if not self.by:
            return [np.arange(len(self.table))]
        keys = self.table[self.by].astype(str).agg("\x1f".join, axis=1)
        return [np.flatnonzero((keys == k).to_numpy()) for k in dict.fromkeys(keys)]

    def _resolve_adjust(self, adjust: str | None) -> str:
        a = self.default_adjust if adjust is None else str(adjust).lower()
        if a == "mvt":
            raise InterlaceError("adjust='mvt' (multivariate t) is not available; use 'dunnettx', 'sidak' or "
                                 "'bonferroni'")
        if a not in _ADJUST:
            raise InterlaceError(f"adjust must be one of {_ADJUST}, got {adjust!r}")
        if a == "tukey" and not self.pairwise:
            a = "sidak"  # emmeans: tukey is only appropriate for one set of pairwise comparisons
        return a

    def _pvalues(self, t: np.ndarray, df: np.ndarray, adjust: str) -> np.ndarray:
        p_raw = 2 * st.t.sf(np.abs(t), df)
        p = p_raw.copy()
        for rows in self._families():
            m = rows.size
            if m == 1 and adjust != "scheffe":
                continue
            pr, at, d = p_raw[rows], np.abs(t[rows]), df[rows]
            if adjust in _P_ADJUST:
                p[rows] = multipletests(pr, method=_P_ADJUST[adjust])[1]
            elif adjust == "sidak":
                p[rows] = 1 - (1 - pr) ** m
            elif adjust == "tukey":
                k = self.family_size[rows[0]]
                p[rows] = studentized_range.sf(np.sqrt(2) * at, k, zapsmall(d) if np.all(np.isfinite(d)) else d)
            elif adjust == "scheffe":
                r = self._rank(rows)
                p[rows] = st.f.sf(t[rows] ** 2 / r, r, d)
            elif adjust == "dunnettx":
                p[rows] = 1 - _pdunnx(at, m, d)
        return np.minimum(p, 1.0)

    def _rank(self, rows: np.ndarray) -> int:
        M = self.L[rows] if self.L is not None else self.grad[rows]
        return int(np.linalg.matrix_rank(zapsmall(M)))

    def _critical(self, level: float, df: np.ndarray, adjust: str) -> np.ndarray:
        cv = np.empty(df.size)
        for rows in self._families():
            m = rows.size
            a = adjust if (m > 1 or adjust == "scheffe") else "none"
            if a not in ("none", "sidak", "tukey", "scheffe", "dunnettx"):
                a = "bonferroni"  # emmeans: step-down and FDR methods give Bonferroni intervals
            d = df[rows]
            if a == "none":
                cv[rows] = st.t.isf((1 - level) / 2, d)
            elif a == "sidak":
                cv[rows] = st.t.isf((1 - level ** (1 / m)) / 2, d)
            elif a == "bonferroni":
                cv[rows] = st.t.isf((1 - level) / m / 2, d)
            elif a == "tukey":
                cv[rows] = studentized_range.ppf(level, self.family_size[rows[0]], d) / np.sqrt(2)
            elif a == "scheffe":
                r = self._rank(rows)
                cv[rows] = np.sqrt(r * st.f.ppf(level, r, d))
            else:
                cv[rows] = [_qdunnx(level, m, x) for x in d]
        return cv

    # ------------------------------------------------------------------ tables
    def _ratio(self) -> bool:
        return (self._type == "response" and self.is_contrast and self.link is not None
                and self.link.link_name in ("log", "logit"))

    def summary(self, infer: tuple[bool, bool] | None = None, level: float = 0.95, adjust: str | None = None,
                type: str | None = None) -> pd.DataFrame:
        """The table: estimate, SE, df, and intervals and/or tests.

        Parameters
        ----------
        infer : (bool, bool), optional
            (intervals, tests); default intervals for means, tests for contrasts (as emmeans).
        level : float
        adjust : str, optional
            Multiplicity adjustment (default: none for means, the contrast method's default).
        type : {"link", "response"}, optional
            GLMMs: the scale (default the one the grid was made with).

        Returns
        -------
        DataFrame
        """
        if infer is None:
            infer = (False, True) if self.is_contrast else (True, False)
        if type is not None:
            if type not in ("link", "response"):
                raise InterlaceError(f"type must be 'link' or 'response', got {type!r}")
            saved, self._type = self._type, type
            try:
                return self.summary(infer, level, adjust)
            finally:
                self._type = saved
        adj = self._resolve_adjust(adjust)
        est, se, df = self._base()
        out = self.table.copy().reset_index(drop=True)
        name = self.estimate_name
        response = self._type == "response" and self.link is not None
        asym = bool(np.all(np.isinf(df)))
        lo_name, hi_name = ("asymp.LCL", "asymp.UCL") if asym else ("lower.CL", "upper.CL")
        if response and not self.is_contrast:
            fam = self.link
            name = {"binomial": "prob", "poisson": "rate"}.get(fam.name, "response")
            out[name] = fam.linkinv(est)
            out["SE"] = se * np.abs(fam.mu_eta(est))
        elif self._ratio():
            name = "odds.ratio" if self.link.link_name == "logit" else "ratio"
            out[name] = np.exp(est)
            out["SE"] = np.exp(est) * se
        else:
            out[name] = est
            out["SE"] = se
        out["df"] = df
        if infer[0]:
            cv = self._critical(level, df, adj)
            lo, hi = est - cv * se, est + cv * se
            if response and not self.is_contrast:
                a, b = self.link.linkinv(lo), self.link.linkinv(hi)
                lo, hi = np.minimum(a, b), np.maximum(a, b)
            elif self._ratio():
                lo, hi = np.exp(lo), np.exp(hi)
            out[lo_name], out[hi_name] = lo, hi
        if infer[1]:
            if self._ratio():
                out["null"] = 1.0
            t = est / se
            out["z.ratio" if asym else "t.ratio"] = t
            out["p.value"] = self._pvalues(t, df, adj)
        out.attrs["adjust"] = adj
        out.attrs["df_method"] = "asymptotic" if asym else self.df_method
        return out

    def confint(self, level: float = 0.95, adjust: str | None = None, type: str | None = None) -> pd.DataFrame:
        """Estimates with confidence intervals (emmeans' ``confint``)."""
        return self.summary((True, False), level, adjust, type)

    def test(self, adjust: str | None = None, type: str | None = None) -> pd.DataFrame:
        """Estimates with t (or z) tests against 0 (emmeans' ``test``)."""
        return self.summary((False, True), 0.95, adjust, type)

    def __str__(self) -> str:
        return self.summary().to_string(index=False)

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks
        return self.summary()._repr_html_()

    # ------------------------------------------------------------------ contrasts
    def _labels(self, spec: list[str]) -> list[str]:
        tab = self.table
        parts = []
        for v in spec:
            vals = tab[v].astype(str)
            numeric = all(_is_number(x) for x in vals)
            parts.append((v + vals) if numeric else vals)
        if not parts:
            return ["."] * len(tab)
        return [" ".join(x) for x in zip(*parts)]

    def contrast(self, method: str | dict = "pairwise", by: str | list[str] | None = None,
                 adjust: str | None = None, ref: int | str = 0, reverse: bool = False) -> EMMGrid:
        """Contrasts of the means within each ``by`` group (emmeans' ``contrast``).

        Parameters
        ----------
        method : str or dict
            ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"`` (alias ``"dunnett"``), ``"eff"``,
            ``"consec"``, ``"poly"``, or ``{name: coefficients}`` with one coefficient per mean of a
            ``by`` group.
        by : str or list of str, optional
            Default the grid's ``by`` variables.
        adjust : str, optional
            Default: the method's (see the module docstring).
        ref : int or str
            ``trt.vs.ctrl``: the reference level (position or label), default the first.
        reverse : bool
            ``pairwise``: j − i instead of i − j.

        Returns
        -------
        EMMGrid
            Of the contrasts (its summary tests them by default).
        """
        if self.is_contrast:
            raise InterlaceError("contrasts of contrasts are not available; make the contrasts from the means")
        by_vars = self.by if by is None else ([by] if isinstance(by, str) else list(by))
        for v in by_vars:
            if v not in self.table.columns:
                raise InterlaceError(f"by variable {v!r} is not a variable of the grid ({list(self.table.columns)})")
        spec = [c for c in self.table.columns if c not in by_vars]
        labels = self._labels(spec)
        groups = [np.arange(len(self.table))] if not by_vars else \
            [np.flatnonzero((self.table[by_vars].astype(str).agg("\x1f".join, axis=1) == k).to_numpy())
             for k in dict.fromkeys(self.table[by_vars].astype(str).agg("\x1f".join, axis=1))]
        if isinstance(method, dict):
            mname, default = "custom", "none"
        else:
            mname = str(method)
            if mname == "pairwise" and reverse:
                mname = "revpairwise"
            if mname not in _DEFAULT_ADJUST:
                raise InterlaceError(f"unknown contrast method {method!r}: use 'pairwise', 'revpairwise', "
                                     "'trt.vs.ctrl', 'eff', 'consec', 'poly' or a dict of coefficients")
            default = _DEFAULT_ADJUST[mname]
        ratio = self._type == "response" and self.link is not None and self.link.link_name in ("log", "logit")
        sep = " / " if ratio else " - "
        rows, names, by_rows, fam = [], [], [], []
        for g in groups:
            k = g.size
            C, cn = _coefficients(method if isinstance(method, dict) else mname, [labels[i] for i in g], ref, sep)
            if C.shape[1] != k:
                raise InterlaceError(f"contrast coefficients have {C.shape[1]} entries; each group has {k} means")
            for r in range(C.shape[0]):
                full = np.zeros(len(self.table))
                full[g] = C[r]
                rows.append(full)
                names.append(cn[r])
                by_rows.append(self.table.iloc[g[0]][by_vars].to_dict() if by_vars else {})
                fam.append(k)
        Cm = np.array(rows)
        table = pd.DataFrame({"contrast": names})
        for v in by_vars:
            table[v] = [b[v] for b in by_rows]
        L = None if self.L is None else Cm @ self.L
        value = None if self.value is None else Cm @ self.value
        grad = None if self.grad is None else Cm @ self.grad
        adj = default if adjust is None else str(adjust).lower()
        pairwise = mname in ("pairwise", "revpairwise", "tukey")
        return EMMGrid(self.result, table, by_vars, L, value, grad, self.df_method, "estimate", self.link, True,
                       adj, np.array(fam), pairwise, [], self._type)

    def pairs(self, reverse: bool = False, adjust: str | None = None, by: str | list[str] | None = None) -> EMMGrid:
        """Pairwise differences (or ratios on the response scale) within each ``by`` group,
        Tukey-adjusted by default (emmeans' ``pairs``)."""
        return self.contrast("revpairwise" if reverse else "pairwise", by=by, adjust=adjust)


def _is_number(x: str) -> bool:
    try:
        float(x)
        return True
    except ValueError:
        return False


def _coefficients(method: str | dict, labels: list[str], ref: int | str, sep: str) -> tuple[np.ndarray, list[str]]:
    k = len(labels)
    if isinstance(method, dict):
        C = np.array([np.asarray(v, float) for v in method.values()])
        return np.atleast_2d(C), list(method)
    if method in ("pairwise", "tukey", "revpairwise"):
        C, names = [], []
        for i, j in itertools.combinations(range(k), 2):
            c = np.zeros(k)
            if method == "revpairwise":
                c[j], c[i] = 1, -1
                names.append(f"{labels[j]}{sep}{labels[i]}")
            else:
                c[i], c[j] = 1, -1
                names.append(f"{labels[i]}{sep}{labels[j]}")
            C.append(c)
        if method == "revpairwise":  # emmeans' order: (2,1), (3,1), (3,2), ...
            order = sorted(range(len(C)), key=lambda r: (int(np.argmax(C[r])), int(np.argmin(C[r]))))
            C, names = [C[r] for r in order], [names[r] for r in order]
        return np.array(C).reshape(-1, k), names
    if method in ("trt.vs.ctrl", "dunnett"):
        r = labels.index(ref) if isinstance(ref, str) else int(ref)
        if isinstance(ref, str) and ref not in labels:
            raise InterlaceError(f"reference level {ref!r} is not among {labels}")
        C, names = [], []
        for i in range(k):
            if i == r:
                continue
            c = np.zeros(k)
            c[i], c[r] = 1, -1
            C.append(c)
            names.append(f"{labels[i]}{sep}{labels[r]}")
        return np.array(C).reshape(-1, k), names
    if method == "eff":
        C = np.eye(k) - 1.0 / k
        return C, [f"{lab} effect" for lab in labels]
    if method == "consec":
        C = np.zeros((k - 1, k))
        for i in range(1, k):
            C[i - 1, i], C[i - 1, i - 1] = 1, -1
        return C, [f"{labels[i]}{sep}{labels[i - 1]}" for i in range(1, k)]
    if method == "poly":
        return _poly(k), ["linear", "quadratic", "cubic", "quartic"][:k - 1] + [f"degree {d}" for d in range(5, k)]
    raise InterlaceError(f"unknown contrast method {method!r}")  # pragma: no cover


def _poly(k: int) -> np.ndarray:
    """emmeans' ``poly.emmc``: orthogonal polynomial contrasts scaled to integer coefficients."""
    x = np.arange(1, k + 1, dtype=float)
    Q, _ = np.linalg.qr(np.vander(x - x.mean(), k, increasing=True))
    C = Q[:, 1:].T
    out = []
    for c in C:
        c = c / np.min(np.abs(c[np.abs(c) > 1e-8]))
        if c[-1] < 0:
            c = -c
        out.append(np.round(c, 8))
    return np.array(out)


def _pdunnx(x: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """emmeans' ``.pdunnx``: a weighted mix of the Tukey and Šidák distributions (Dunnett's approximation)."""
    twt = (k - 1) / k
    nm = (1 + np.sqrt(1 + 8 * k)) / 2
    tukey = studentized_range.cdf(np.sqrt(2) * x, nm, df)
    # F(1, df) of x² is P(|t_df| ≤ x) (scipy's F cdf is NaN at df = inf; the t form is not)
    sidak = (1.0 - 2.0 * st.t.sf(np.abs(x), df)) ** k
    return twt * tukey + (1 - twt) * sidak


def _qdunnx(p: float, k: int, df: float) -> float:
    """The quantile of :func:`_pdunnx` (emmeans' ``.qdunnx``, here solved to full precision)."""
    if k < 1.005:
        return float(st.t.isf((1 - p) / 2, df))
    nm = (1 + np.sqrt(1 + 8 * k)) / 2
    xtuk = float(studentized_range.ppf(p, nm, df) / np.sqrt(2))
    xsid = float(st.t.isf((1.0 - p ** (1 / k)) / 2.0, df))
    lo, hi = min(xtuk, xsid), max(xtuk, xsid)
    if hi - lo < 1e-12:
        return lo
    return float(brentq(lambda x: float(_pdunnx(np.array([x]), k, np.array([df]))[0]) - p, lo, hi, xtol=1e-12))


# ---------------------------------------------------------------------------- building the grid
def _parse_specs(specs: str | list[str], by: str | list[str] | None) -> tuple[list[str], list[str]]:
    if isinstance(specs, str):
        s = specs.strip().lstrip("~").strip()
        if "|" in s:
            s, b = s.split("|", 1)
            extra = [v.strip() for v in b.replace("*", "+").split("+") if v.strip()]
            by = (extra + ([by] if isinstance(by, str) else list(by or [])))
        spec = [v.strip() for v in s.replace("*", "+").replace(":", "+").split("+") if v.strip()]
    else:
        spec = list(specs)
    by_list = [] if by is None else ([by] if isinstance(by, str) else list(by))
    return spec, by_list


def emmeans(result: Any, specs: str | list[str], by: str | list[str] | None = None,
            at: dict[str, Any] | None = None, df_method: str | None = None, type: str = "link",
            mode: str = "latent") -> EMMGrid:
    """Estimated marginal means of a fitted LMM, GLMM or CLMM (R's ``emmeans``).

    Parameters
    ----------
    result : fitted result
    specs : str or list of str
        The variables of the means: ``"A"``, ``["A", "B"]``, ``"A * B"`` or ``"A | B"``
        (``B`` a ``by`` variable).
    by : str or list of str, optional
        Variables whose levels form separate families (contrasts are made within them).
    at : dict, optional
        Values of covariates (numeric covariates default to their mean; a list makes
        them a dimension of the grid) or a subset of a factor's levels.
    df_method : {"kenward-roger", "satterthwaite", "normal"}, optional
        Linear mixed models (default the result's ``df_method``).
    type : {"link", "response"}
        GLMMs: the scale of the means and contrasts.
    mode : {"latent", "linear.predictor", "cum.prob", "prob"}
        CLMMs (emmeans' modes; see the module docstring).

    Returns
    -------
    EMMGrid
    """
    res = _res(result)
    model = res.model
    fx = getattr(model, "fixed_design", None)
    if fx is None or model.model_frame is None:
        raise InterlaceError("emmeans needs a model built from a formula")
    frame = model.model_frame.data
    spec, by_list = _parse_specs(specs, by)
    at = dict(at or {})
    variables = _factor_columns(fx, frame)
    known = {v for v, _, _ in variables}
    is_clmm = hasattr(model, "levels") and hasattr(model, "threshold")
    extra = {"cut", model.endog_names} if is_clmm else set()
    for v in spec + by_list:
        if v not in known and v not in extra:
            raise InterlaceError(f"{v!r} is not a variable of the fixed effects ({sorted(known)})")
    for v in at:
        if v not in known:
            raise InterlaceError(f"at: {v!r} is not a variable of the fixed effects ({sorted(known)})")
    axes: dict[str, list] = {}
    for v, kind, levels in variables:
        if v in at:
            vals = at[v]
            vals = list(vals) if isinstance(vals, (list, tuple, np.ndarray, pd.Series)) else [vals]
            if kind == "factor":
                bad = [x for x in vals if x not in levels]
                if bad:
                    raise InterlaceError(f"at: {bad} are not levels of {v!r} ({levels})")
            axes[v] = vals
        elif kind == "factor":
            axes[v] = list(levels)
        else:
            axes[v] = [float(pd.to_numeric(frame[v]).mean())]
    names = list(axes)
    grid = pd.DataFrame(list(itertools.product(*[axes[v] for v in names])), columns=names)
    for v, kind, _ in variables:
        if kind == "factor":
            grid[v] = grid[v].astype(frame[v].dtype) if frame[v].dtype != object else grid[v]
    X = new_matrix(fx.design_info, grid, "the reference grid")[:, fx.keep] if len(names) else \
        np.ones((1, len(fx.keep)))
    keep_vars = spec + by_list
    df_m = None
    family = None
    if hasattr(res, "fe_df"):
        from .ddf import parse_df_method

        df_m = res.df_method if df_method is None else parse_df_method(df_method)
        if type != "link":
            raise InterlaceError("type='response' is for GLMMs (a linear mixed model's link is the identity)")
    else:
        if df_method is not None and str(df_method).lower() not in ("normal", "asymptotic"):
            raise InterlaceError("GLMM and CLMM means are asymptotic (df = inf): df_method applies to LMMs")
        if type not in ("link", "response"):
            raise InterlaceError(f"type must be 'link' or 'response', got {type!r}")
        family = getattr(model, "family", None)
        if type == "response" and family is None:
            raise InterlaceError("type='response' is for GLMMs; for a CLMM use mode='cum.prob' or 'prob'")
    if is_clmm:
        return _clmm_grid(res, grid, X, keep_vars, by_list, mode)
    if mode != "latent":
        raise InterlaceError("mode= is for cumulative link models")
    out_table, W = _average(grid, keep_vars)
    L = W @ X
    return EMMGrid(res, out_table, by_list, L, None, None, df_m, "emmean", family, False, "none",
                   None, False, [], type)


def _average(grid: pd.DataFrame, keep: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Equal-weight averaging matrix over the grid rows, one row per combination of ``keep``
    (first variable varying fastest, as emmeans orders its rows)."""
    if not keep:
        return pd.DataFrame({"1": ["overall"]}), np.full((1, len(grid)), 1.0 / len(grid))
    levels = [list(dict.fromkeys(grid[v].tolist())) for v in keep]
    combos = [tuple(reversed(c)) for c in itertools.product(*reversed(levels))]
    W = np.zeros((len(combos), len(grid)))
    keys = list(zip(*[grid[v].tolist() for v in keep]))
    index = {c: i for i, c in enumerate(combos)}
    for j, key in enumerate(keys):
        W[index[key], j] = 1.0
    W /= W.sum(axis=1, keepdims=True)
    return pd.DataFrame(combos, columns=keep), W


def _clmm_grid(res: Any, grid: pd.DataFrame, X: np.ndarray, keep: list[str], by: list[str], mode: str) -> EMMGrid:
    model = res.model
    if mode not in _CLMM_MODES:
        raise InterlaceError(f"mode must be one of {_CLMM_MODES}, got {mode!r}")
    J = np.asarray(model.J, float)  # thresholds = J @ threshold parameters
    K1 = J.shape[0]
    params = np.asarray(res.params, float)
    if mode == "latent":
        bad = [v for v in keep if v in ("cut", model.endog_names)]
        if bad:
            raise InterlaceError(f"{bad} are variables of mode='linear.predictor', 'cum.prob' or 'prob'")
        Lcell = np.hstack([-np.tile(J.mean(axis=0), (X.shape[0], 1)), X])
        table, W = _average(grid, keep)
        return EMMGrid(res, table, by, W @ Lcell, None, None, None, "emmean", None, False, "none", None, False, [])
    cuts = list(model.threshold_names)
    cats = list(model.levels)
    resp = model.endog_names
    rows_L, rows_v, rows_g, recs = [], [], [], []
    F, f = model.link.cdf, model.link.pdf
    for i in range(X.shape[0]):
        if mode in ("linear.predictor", "cum.prob"):
            for j, c in enumerate(cuts):
                Lj = np.concatenate([J[j], -X[i]])
                rec = dict(grid.iloc[i])
                rec["cut"] = c
                recs.append(rec)
                if mode == "linear.predictor":
                    rows_L.append(Lj)
                else:
                    z = float(Lj @ params)
                    rows_v.append(F(np.array([z]))[0])
                    rows_g.append(f(np.array([z]))[0] * Lj)
        else:
            for j, c in enumerate(cats):
                rec = dict(grid.iloc[i])
                rec[resp] = c
                recs.append(rec)
                val, g = 0.0, np.zeros(params.size)
                if j < K1:
                    Lj = np.concatenate([J[j], -X[i]])
                    z = float(Lj @ params)
                    val += F(np.array([z]))[0]
                    g += f(np.array([z]))[0] * Lj
                if j > 0:
                    Lj = np.concatenate([J[j - 1], -X[i]])
                    z = float(Lj @ params)
                    val -= F(np.array([z]))[0]
                    g -= f(np.array([z]))[0] * Lj
                rows_v.append(val if j < K1 else 1.0 + val)  # P(Y = last) = 1 − F(α_{K−1} − η)
                rows_g.append(g)
    full = pd.DataFrame(recs)
    table, W = _average(full, keep)
    name = {"linear.predictor": "emmean", "cum.prob": "cumprob", "prob": "prob"}[mode]
    if mode == "linear.predictor":
        return EMMGrid(res, table, by, W @ np.array(rows_L), None, None, None, name, None, False, "none", None,
                       False, [])
    return EMMGrid(res, table, by, None, W @ np.array(rows_v), W @ np.array(rows_g), None, name, None, False,
                   "none", None, False, [])
