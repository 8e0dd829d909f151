"""Likelihood profiles and profile confidence intervals of linear mixed models.

The method is lme4's (``profile.merMod`` and ``confint.thpr``), implemented here on
interlace's PLS engines:

* **Parameters.**  The variance parameters are reported on the standard-deviation
  scale: for every θ element, in θ order, the standard deviation (σ-scaled, i.e. in
  the response's units) of a random coefficient or the correlation of two; then σ;
  then the fixed effects β.  lme4 calls them ``.sig01, .sig02, …, .sigma`` (or
  ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sigma``).
* **Criterion.**  The profiled quantity is the ML deviance, also for REML fits (lme4
  profiles the ML refit of a REML fit): with σ explicit,
  ``d(θ, σ) = log|L_θ|² − Σ log w + r²(θ) / σ² + n log(2πσ²)`` where ``r²(θ)`` is the
  penalized residual sum of squares at the conditional optimum of β and u (one PLS
  factorization, :meth:`~interlace.linalg.pls.PLSSystem.factor`).
* **Profile.**  Each variance parameter is fixed on a grid and the deviance
  minimized over the other variance parameters and σ (β and u are profiled out by
  the PLS solve); each fixed effect β_j is fixed by moving ``X_j β_j`` into the
  offset and re-optimizing θ (σ then has its closed form).  The statistic is
  ``ζ = sign(value − estimate) √(d_min(value) − d̂)``.
* **Grid.**  lme4's: start 1 % above the estimate (0.001 for a standard deviation at
  0, the estimate plus ``δ·SE`` for β), then steps that aim at increments of
  ``δ = cutoff / 8`` in ζ by linear extrapolation of the last two points (at most 10
  times the last step), until ``|ζ| > cutoff = √χ²_k(1 − alphamax)`` (k = all
  parameters), a bound (0 for a standard deviation, ±1 for a correlation) is
  reached, or ``maxpts`` points are used, on both sides.
* **Intervals.**  An interpolating natural cubic spline of ζ against the parameter,
  inverted as lme4's ``backSpline`` does (a cubic Hermite piece per interval with
  slopes 1/ζ′, quadratic end pieces), evaluated at ``ζ = Φ⁻¹(α/2)`` and
  ``Φ⁻¹(1 − α/2)``.  A limit outside the profiled range (the profile stopped at a
  bound first, e.g. a standard deviation estimated at 0) is that bound: lower limit
  0 for a standard deviation, ±1 for a correlation.

Nuisance optimizations use interlace's BOBYQA (:func:`interlace.optimize.minimize`)
on rescaled variables: standard deviations and σ divided by their estimates
(bounded below by 0), correlations through ``ρ = sin(x)`` so the box ``[-1, 1]``
needs no upper bound.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from scipy.interpolate import CubicSpline

from ..errors import InterlaceError
from ..linalg.threads import blas_limits
from ..optimize import minimize
from .parameters import param_names, percent_labels, sdcor_to_theta, theta_to_sdcor, var_params

__all__ = ["ProfiledDeviance", "lmm_conf_int", "ml_fit", "profile_conf_int", "profile_lmm", "profile_zeta"]


# ============================================================================ criterion
class ProfiledDeviance:
    """The ML deviance as a function of (standard deviations and correlations, σ); β, u profiled out.

    lme4's ``devfun2``.  Evaluations go through the ML fit's PLS system
    (``model.deviance_function().pls``).

    Parameters
    ----------
    ml_result : CrossedLMEResult
        An ML fit (the criterion is evaluated on its model's PLS system).
    """

    def __init__(self, ml_result: Any) -> None:
        self.result = ml_result
        self.re = ml_result.model.random_effects_structure
        dev = ml_result.model.deviance_function()
        self.pls, self.ldW, self.n = dev.pls, dev.ldW, dev.n

    def theta(self, pars: np.ndarray) -> np.ndarray | None:
        return sdcor_to_theta(self.re, pars[:-1], pars[-1])

    def __call__(self, pars: np.ndarray) -> float:
        pars = np.asarray(pars, float)
        sigma = pars[-1]
        if not np.isfinite(sigma) or sigma <= 0:
            return np.inf
        theta = self.theta(pars)
        if theta is None:
            return np.inf
        f = self.pls.factor(theta)
        if not f.ok or not np.isfinite(f.pwrss):
            return np.inf
        s2 = sigma * sigma
        return float(f.ldL2 - self.ldW + f.pwrss / s2 + self.n * np.log(2.0 * np.pi * s2))

    def beta(self, pars: np.ndarray) -> np.ndarray:
        """β̂ at the θ the parameters imply."""
        self.pls.factor(self.theta(np.asarray(pars, float)))
        return self.pls.solve()[0]


# ============================================================================ profiling
def _as_results(result):
    return getattr(result, "_results", result)


def ml_fit(result: Any) -> Any:
    """The ML fit behind a profile: ``result`` itself, or its ML refit started at its θ (lme4's ``refitML``)."""
    res = _as_results(result)
    if not res.reml:
        return res
    return _as_results(res.model.refit(reml=False, start=res.theta, check_conv=False,
                                     method=res.opt_summary.optimizer))


def _select(parm, names: list[str], n_var: int) -> list[int]:
    """Indices of the parameters chosen by ``parm`` (names, positions, "theta_", "beta_")."""
    if parm is None:
        return list(range(len(names)))
    if isinstance(parm, (str, int, np.integer)):
        parm = [parm]
    idx: list[int] = []
    for p in parm:
        if isinstance(p, (int, np.integer)):
            if not 0 <= int(p) < len(names):
                raise InterlaceError(f"parameter index {p} out of range (0..{len(names) - 1})")
            idx.append(int(p))
        elif p == "theta_":
            idx.extend(range(n_var))
        elif p == "beta_":
            idx.extend(range(n_var, len(names)))
        elif p in names:
            idx.append(names.index(p))
        else:
            raise InterlaceError(f"unknown parameter {p!r}; parameters are {', '.join(names)}")
    return sorted(set(idx))


class _Profiler:
    """Builds the profile table of one ML fit (see the module docstring)."""

    def __init__(self, ml, alphamax: float, maxpts: int, delta: float | None, delta_cutoff: float,
                 maxmult: float, optimizer: str) -> None:
        self.ml = ml
        self.re = ml.model.random_effects_structure
        self.dd = ProfiledDeviance(ml)
        self.vps = var_params(self.re)
        self.nv = len(self.vps) + 1  # variance parameters and σ
        sig = ml.sigma
        beta = np.asarray(ml.params, float)
        self.p = beta.size
        self.opt = np.concatenate([theta_to_sdcor(self.re, ml.theta, sig), [sig], beta])
        self.base = float(ml.objective)
        check = self.dd(self.opt[:self.nv])
        if not np.isclose(check, self.base, rtol=1e-7, atol=1e-6):
            raise InterlaceError(f"profiled deviance {check!r} does not reproduce the ML deviance {self.base!r}")
        self.nptot = self.opt.size
        self.cutoff = float(np.sqrt(st.chi2.ppf(1.0 - alphamax, self.nptot)))
        self.delta = self.cutoff * delta_cutoff if delta is None else float(delta)
        self.maxpts = int(maxpts)
        self.maxmult = float(maxmult)
        self.optimizer = optimizer
        kinds = [v.kind for v in self.vps] + ["sigma"]
        self.kinds = kinds
        self.lower = np.array([-1.0 if k == "cor" else 0.0 for k in kinds] + [-np.inf] * self.p)
        self.upper = np.array([1.0 if k == "cor" else np.inf for k in kinds] + [np.inf] * self.p)
        # optimizer scales: SDs and σ relative to their estimates (σ̂ for an SD estimated at 0)
        self.scale = np.array([(self.opt[i] if self.opt[i] > 0 else sig) if k != "cor" else 1.0
                               for i, k in enumerate(kinds)])
        self.se = np.asarray(ml.bse, float) if self.p else np.zeros(0)
        self.warnings: list[str] = []

    # -------------------------------------------------------------- variance parameters
    def _to_x(self, vals: np.ndarray, idx: np.ndarray) -> np.ndarray:
        x = np.empty(idx.size)
        for n, i in enumerate(idx):
            x[n] = np.arcsin(np.clip(vals[n], -1, 1)) if self.kinds[i] == "cor" else vals[n] / self.scale[i]
        return x

    def _from_x(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        v = np.empty(idx.size)
        for n, i in enumerate(idx):
            v[n] = np.sin(x[n]) if self.kinds[i] == "cor" else x[n] * self.scale[i]
        return v

    def _var_zeta(self, w: int, value: float, start: np.ndarray) -> np.ndarray:
        """Row [ζ, all parameters] with variance parameter ``w`` fixed at ``value``."""
        nv = self.nv
        others = np.array([i for i in range(nv) if i != w])
        lower = np.array([-np.inf if self.kinds[i] == "cor" else 0.0 for i in others])
        pars = np.empty(nv)
        pars[w] = value

        def fun(x):
            pars[others] = self._from_x(x, others)
            return self.dd(pars)

        x0 = np.maximum(self._to_x(start[1:][others], others), lower)
        res = minimize(fun, x0, lower, optimizer=self.optimizer)
        pars[others] = self._from_x(res.x, others)
        fval = self.dd(pars)
        return self._row(fval, value, self.opt[w], np.concatenate([pars, self.dd.beta(pars)]))

    def _row(self, fval: float, value: float, est: float, params: np.ndarray) -> np.ndarray:
        if not np.isfinite(fval):
            return np.concatenate([[np.nan], params])
        diff = fval - self.base
        if diff < -1e-6 * max(1.0, abs(self.base)):
            self.warnings.append(f"profiling found a deviance {-diff:.3g} below the ML optimum")
        z = np.sign(value - est) * np.sqrt(max(diff, 0.0))
        return np.concatenate([[z], params])

    # -------------------------------------------------------------- fixed effects
    def _fe_setup(self, j: int):
        """The ML model without column j (β_j then enters as an offset), made once per β_j."""
        model = self.ml.model
        keep = [k for k in range(self.p) if k != j]
        exog = model.data.orig_exog
        exog = exog.iloc[:, keep] if isinstance(exog, pd.DataFrame) else np.asarray(exog)[:, keep]
        off = np.zeros(int(model.nobs)) if model.offset is None else model.offset
        return model.clone(exog=exog), np.asarray(model.exog, float)[:, j], off, keep

    def _fe_zeta(self, j: int, setup, value: float, last: np.ndarray) -> np.ndarray:
        """Row [ζ, all parameters] with β_j fixed at ``value`` (θ re-optimized from the ``last`` row's)."""
        sub, xj, off, keep = setup
        nv = self.nv
        theta0 = sdcor_to_theta(self.re, last[1:nv], last[nv]) if np.all(np.isfinite(last[1:nv + 1])) else None
        theta0 = self.ml.theta if theta0 is None else np.maximum(theta0, self.re.lower)
        fit = _as_results(sub.refit(offset=off + xj * value, start=theta0, method=self.optimizer,
                                    check_conv=False))
        sig = fit.sigma
        beta = np.empty(self.p)
        beta[keep] = np.asarray(fit.params, float)
        beta[j] = value
        params = np.concatenate([theta_to_sdcor(self.re, fit.theta, sig), [sig], beta])
        return self._row(fit.objective, value, self.opt[nv + j], params)

    # -------------------------------------------------------------- grid
    def _walk(self, rows: list, col: int, lo: float, hi: float, step_fun) -> list:
        """Extend ``rows`` (≥ 2, the last two set the direction) as lme4's ``fillmat``."""
        minstep = 1e-6
        while len(rows) < self.maxpts:
            last = rows[-1]
            z = last[0]
            if not (lo < last[1 + col] < hi) or (np.isfinite(z) and abs(z) > self.cutoff):
                break
            prev = rows[-2]
            num = last[1 + col] - prev[1 + col]
            den = last[0] - prev[0]
            if not np.isfinite(den) or den == 0:
                step = minstep
            else:
                step = self.delta * num / den
                if step < 0:
                    self.warnings.append("unexpected decrease in profile: using minstep")
                    step = minstep
                elif abs(step) > self.maxmult * abs(num):
                    step = self.maxmult * abs(num)
            new = min(hi, max(lo, last[1 + col] + np.sign(num) * step))
            rows.append(step_fun(new, last))
        return rows

    def profile_var(self, w: int) -> np.ndarray:
        row0 = np.concatenate([[0.0], self.opt])
        pw = self.opt[w]
        lo, hi = self.lower[w], self.upper[w]
        shift = 0.001 if pw == 0 else pw * 1.01
        if not lo <= shift <= hi:  # a correlation estimated at ±1: start inside the bounds
            shift = pw * 0.99
        def step(v: float, last: np.ndarray) -> np.ndarray:
            return self._var_zeta(w, v, last)

        first = step(shift, row0)
        up = self._walk([row0, first], w, lo, hi, step)
        down = self._walk([first, row0], w, lo, hi, step) if pw > lo else []
        return np.vstack(up + down)

    def profile_fixed(self, j: int) -> np.ndarray:
        setup = self._fe_setup(j)
        col = self.nv + j
        row0 = np.concatenate([[0.0], self.opt])
        def step(v: float, last: np.ndarray) -> np.ndarray:
            return self._fe_zeta(j, setup, v, last)

        first = step(self.opt[col] + self.delta * self.se[j], row0)
        up = self._walk([row0, first], col, -np.inf, np.inf, step)
        down = self._walk([first, row0], col, -np.inf, np.inf, step)
        return np.vstack(up + down)


def profile_lmm(result: Any, parm: str | int | Sequence[str | int] | None = None, alphamax: float = 0.01,
                maxpts: int = 100, delta: float | None = None, delta_cutoff: float = 0.125, maxmult: float = 10.0,
                old_names: bool = True, optimizer: str | None = None, progress: bool = False) -> pd.DataFrame:
    """The likelihood profile of a linear mixed model (lme4's ``profile``).

    Parameters
    ----------
    result : CrossedLMEResult
    parm : str, int or list, optional
        Parameters to profile (names, 0-based positions, ``"theta_"`` for every
        variance parameter and σ, ``"beta_"`` for every fixed effect); default all.
    alphamax, maxpts, delta, delta_cutoff, maxmult
        lme4's grid controls (see the module docstring).
    old_names : bool
        ``.sig01`` … (True, lme4's default in ``confint``) or ``sd_…|group`` names.
    optimizer : str, optional
        Optimizer of the nuisance parameters (default: the fit's).
    progress : bool
        tqdm bar over the parameters.

    Returns
    -------
    DataFrame
        One row per profile point: ``parameter`` (the profiled parameter), ``value``
        (its value), ``zeta`` (signed square root of the deviance increase), then
        every parameter's value at that point.  ``attrs`` holds ``lower`` and
        ``upper`` (the parameter bounds), ``names`` (all parameters in order),
        ``estimates`` (the ML estimates) and ``deviance`` (the ML deviance).
    """
    res = _as_results(result)
    with blas_limits(res.model.random_effects_structure):
        return _profile_table(res, parm, alphamax, maxpts, delta, delta_cutoff, maxmult, old_names, optimizer,
                              progress)


def _profile_table(res, parm, alphamax, maxpts, delta, delta_cutoff, maxmult, old_names, optimizer, progress):
    from tqdm.auto import tqdm

    ml = ml_fit(res)
    prof = _Profiler(ml, alphamax, maxpts, delta, delta_cutoff, maxmult,
                     optimizer or res.opt_summary.optimizer)
    names = param_names(prof.re, res._names, old=old_names)
    which = _select(parm, names, prof.nv)
    pieces = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in tqdm(which, disable=not progress, desc="profile"):
            tab = prof.profile_var(i) if i < prof.nv else prof.profile_fixed(i - prof.nv)
            df = pd.DataFrame(tab[:, 1:], columns=names)
            df.insert(0, "zeta", tab[:, 0])
            df.insert(0, "value", tab[:, 1 + i])
            df.insert(0, "parameter", names[i])
            df = df.drop_duplicates().sort_values("value", kind="stable")
            pieces.append(df)
    out = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=["parameter", "value", "zeta"])
    out.attrs["names"] = names
    out.attrs["lower"] = dict(zip(names, prof.lower.tolist()))
    out.attrs["upper"] = dict(zip(names, prof.upper.tolist()))
    out.attrs["estimates"] = dict(zip(names, prof.opt.tolist()))
    out.attrs["deviance"] = prof.base
    for msg in dict.fromkeys(prof.warnings):
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
    return out


# ============================================================================ intervals
def _natural_slopes(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """dζ/dx at the knots of the interpolating natural cubic spline (R's ``interpSpline``)."""
    return CubicSpline(x, z, bc_type="natural")(x, 1)


def _back_spline(x: np.ndarray, z: np.ndarray):
    """lme4's inverse spline x(ζ): knots and (n, 4) Taylor coefficients, or None if ζ is not monotone.

    The inverse of the natural spline through (x, ζ): on each interval the cubic in ζ
    matching x and dx/dζ = 1/ζ′ at both ends; the two end intervals are quadratics
    matching the inner end's slope, made linear if they would turn back (R's
    ``splines::backSpline``).
    """
    slopes = _natural_slopes(x, z)
    nk = x.size
    kdiff = np.diff(x)
    adiff = np.diff(z)
    if np.all(adiff < 0):
        rev = True
    elif np.all(adiff > 0):
        rev = False
    else:
        return None
    c = np.zeros((nk, 4))
    c[:, 0] = x
    with np.errstate(divide="ignore"):
        c[:, 1] = 1.0 / slopes
    for i in range(nk - 1):
        a = adiff[i]
        A = np.array([[a * a, a ** 3], [2 * a, 3 * a * a]])
        b = np.array([kdiff[i] - a * c[i, 1], c[i + 1, 1] - c[i, 1]])
        c[i, 2:4] = np.linalg.solve(A, b)
    c[nk - 1, 1:] = np.nan
    if nk > 2:
        c[0, 3] = c[nk - 2, 3] = 0.0
        a0 = adiff[0]
        c[0, 1:3] = np.linalg.solve(np.array([[a0, a0 * a0], [1.0, 2 * a0]]), np.array([kdiff[0], c[1, 1]]))
        c[nk - 2, 2] = (kdiff[-1] - adiff[-1] * c[nk - 2, 1]) / adiff[-1] ** 2
    if c[0, 2] > 0:
        c[0, 2] = 0.0
        c[0, 1] = kdiff[0] / adiff[0]
    if c[nk - 2, 2] < 0:
        c[nk - 2, 2] = 0.0
        c[nk - 2, 1] = kdiff[-1] / adiff[-1]
    knots = z.copy()
    if rev:
        knots, c = knots[::-1], c[::-1]
    return knots, c


def _eval_poly_spline(knots: np.ndarray, coef: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Evaluate a piecewise polynomial on intervals (k_i, k_{i+1}] (R's ``predict.polySpline``); NaN outside."""
    at = np.atleast_1d(np.asarray(at, float))
    out = np.full(at.shape, np.nan)
    for n, v in enumerate(at):
        if not (knots[0] <= v <= knots[-1]):
            continue
        i = 0 if v == knots[0] else int(np.searchsorted(knots, v, side="left")) - 1
        d = v - knots[i]
        out[n] = coef[i, 0] + d * (coef[i, 1] + d * (coef[i, 2] + d * coef[i, 3]))
    return out


def _limits(values: np.ndarray, zeta: np.ndarray, zq: np.ndarray, name: str) -> tuple[np.ndarray, str | None]:
    """Parameter values where the profile reaches ζ = ``zq`` (NaN where it does not)."""
    ok = np.isfinite(values) & np.isfinite(zeta)
    x, z = values[ok], zeta[ok]
    order = np.argsort(x, kind="stable")
    x, z = x[order], z[order]
    keep = np.concatenate([[True], np.diff(x) > 0])
    x, z = x[keep], z[keep]
    if x.size >= 4:
        bs = _back_spline(x, z)
        if bs is not None:
            return _eval_poly_spline(*bs, zq), None
    if x.size < 2 or np.any(np.diff(z) < -0.01):
        return np.full(zq.shape, np.nan), f"non-monotonic profile for {name}"
    o = np.argsort(z, kind="stable")
    return np.interp(zq, z[o], x[o], left=np.nan, right=np.nan), \
        f"bad spline fit for {name}: falling back to linear interpolation"


def profile_conf_int(table: pd.DataFrame, level: float = 0.95, parm: Sequence[str] | None = None) -> pd.DataFrame:
    """Profile confidence intervals from a profile table (lme4's ``confint`` of a ``profile``).

    Parameters
    ----------
    table : DataFrame
        From :func:`profile_lmm` (``result.profile()``).
    level : float
    parm : list of str, optional
        Parameters (default: every profiled one, in model order).
    """
    names = table.attrs.get("names") or list(dict.fromkeys(table["parameter"]))
    lower = table.attrs.get("lower", {})
    upper = table.attrs.get("upper", {})
    present = set(table["parameter"])
    rows = [n for n in names if n in present] if parm is None else list(parm)
    a = (1.0 - level) / 2.0
    zq = st.norm.ppf([a, 1.0 - a])
    out = np.full((len(rows), 2), np.nan)
    for r, name in enumerate(rows):
        sub = table[table["parameter"] == name]
        if sub.empty:
            continue
        lim, msg = _limits(sub["value"].to_numpy(float), sub["zeta"].to_numpy(float), zq, name)
        if msg is not None:
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        if msg is None or not msg.startswith("non-monotonic"):
            if np.isnan(lim[0]):
                lim[0] = lower.get(name, np.nan) if np.isfinite(lower.get(name, np.nan)) else np.nan
            if np.isnan(lim[1]):
                lim[1] = upper.get(name, np.nan) if np.isfinite(upper.get(name, np.nan)) else np.nan
        out[r] = lim
    return pd.DataFrame(out, index=rows, columns=percent_labels(level))


# ============================================================================ all parameters
def lmm_conf_int(result: Any, method: str = "profile", level: float = 0.95,
                 parm: str | int | Sequence[str | int] | None = None, n_boot: int = 500,
                 seed: int | None = 42, old_names: bool = True, boot_method: str = "percentile",
                 n_jobs: int = 1, progress: bool = False) -> pd.DataFrame:
    """Confidence intervals for every parameter of a linear mixed model (lme4's ``confint(m)``).

    Rows: the standard deviations and correlations of the random effects in θ order
    (``.sig01`` …), ``.sigma``, the fixed effects; columns ``"2.5 %"``, ``"97.5 %"``
    (for ``level=0.95``).  See ``CrossedLMEResult.conf_int_all``.
    """
    res = _as_results(result)
    re = res.model.random_effects_structure
    names = param_names(re, res._names, old=old_names)
    n_var = len(var_params(re)) + 1
    which = _select(parm, names, n_var)
    rows = [names[i] for i in which]
    m = str(method).lower()
    if m == "wald":
        a = (1.0 - level) / 2.0
        z = st.norm.ppf(1.0 - a)
        out = np.full((len(names), 2), np.nan)
        b, se = np.asarray(res.params, float), np.asarray(res.bse, float)
        out[n_var:, 0], out[n_var:, 1] = b - z * se, b + z * se
        return pd.DataFrame(out, index=names, columns=percent_labels(level)).loc[rows]
    if m == "profile":
        tab = profile_lmm(res, parm=rows, old_names=old_names, progress=progress)
        return profile_conf_int(tab, level, parm=rows)
    if m in ("boot", "bootstrap"):
        from .parametric_bootstrap import parametric_bootstrap

        bt = parametric_bootstrap(res, n=n_boot, seed=seed, n_jobs=n_jobs, progress=progress, old_names=old_names)
        return bt.conf_int(level, method=boot_method).loc[rows]
    raise InterlaceError(f"method must be 'wald', 'profile' or 'boot', got {method!r}")


def profile_zeta(result: Any, parameter: str, values: npt.ArrayLike, old_names: bool = True) -> np.ndarray:
    """ζ of one parameter at given values (each point optimized from the ML estimates).

    The profile statistic without lme4's grid: for checking a profile at chosen
    points (e.g. lme4's own), or evaluating it where the grid has no point.
    """
    res = _as_results(result)
    with blas_limits(res.model.random_effects_structure), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = _Profiler(ml_fit(res), 0.01, 100, None, 0.125, 10.0, res.opt_summary.optimizer)
        names = param_names(prof.re, res._names, old=old_names)
        i = _select(parameter, names, prof.nv)[0]
        row0 = np.concatenate([[0.0], prof.opt])
        setup = prof._fe_setup(i - prof.nv) if i >= prof.nv else None
        out = []
        for v in np.atleast_1d(np.asarray(values, float)):
            row = prof._var_zeta(i, v, row0) if setup is None else prof._fe_zeta(i - prof.nv, setup, v, row0)
            out.append(row[0])
    return np.array(out)
