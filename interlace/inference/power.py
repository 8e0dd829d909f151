"""Power by simulation (R's simr: ``powerSim`` and ``powerCurve``).

Each replicate simulates a response from the fitted model (new random effects and
residuals, the fitted variance parameters) with the fixed effects of ``fixef`` in
place of the estimates (simr's ``fixef(m)["x"] <- value``; results'
:meth:`~interlace.results.base.MixedResultsBase.simulate_fixef`), refits the model to
it (:meth:`~interlace.models.base.MixedModel.refit` warm-started at the estimates:
the refits of the same rows share the model's engines, so they only pay for the
optimizer) and tests the term ``test``.  The power is the share of replicates with
p < ``alpha``, with a Clopper-Pearson interval (simr's ``binom.test`` interval).

Tests (``method``):

* linear mixed models: the t test of a single coefficient or the F test of a term's
  coefficients with Satterthwaite's (``"satterthwaite"``, default unless the result
  uses another ``df_method``) or Kenward-Roger's (``"kenward-roger"``) df, as lmerTest's
  ``contest``; ``"normal"`` for Wald z;
* GLMMs: Wald z / χ² (``"z"``, default);
* any: ``"lr"``, the likelihood-ratio test against the model without the term's
  columns (both fitted by ML; twice the refits).

:func:`power_curve` simulates on all rows and refits on the rows of the first k levels
of ``along`` (in the order they appear) for each k in ``breaks``, as simr's
``powerCurve`` does; each subset model is made once (:meth:`~interlace.models.base.MixedModel.clone`)
and refitted per replicate.  Replicate i draws from ``SeedSequence(seed).spawn(nsim)[i]``
whatever ``n_jobs`` is; a refit that raises counts as a failure to reject and is
recorded in ``errors`` (simr counts such errors too).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError
from .anova import fixed_terms
from .replicates import ReplicateWorker, run_replicates

__all__ = ["PowerCurve", "PowerResult", "power_curve", "power_sim"]

_METHODS = ("satterthwaite", "kenward-roger", "normal", "z", "lr")


def _ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    ci = st.binomtest(k, n).proportion_ci(level, method="exact")
    return float(ci.low), float(ci.high)


@dataclass
class PowerResult:
    """Power of a test by simulation (simr's ``powerSim``).

    Attributes
    ----------
    power : float
        Share of replicates with p < ``alpha``.
    lower, upper : float
        95 % Clopper-Pearson interval.
    pvalues : ndarray
        Per replicate (NaN where the refit failed).
    successes, nsim : int
    alpha : float
    test, method : str
    fixef : Series
        The fixed effects the responses were simulated with.
    errors : dict
        Replicate → error message.
    seconds : float
    """

    power: float
    lower: float
    upper: float
    pvalues: np.ndarray
    successes: int
    nsim: int
    alpha: float
    test: str
    method: str
    fixef: pd.Series
    errors: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (f"Power for {self.test!r} ({self.method}), (95% confidence interval): "
                f"{100 * self.power:.2f}% ({100 * self.lower:.2f}, {100 * self.upper:.2f}); "
                f"{self.successes} of {self.nsim} simulations rejected at alpha = {self.alpha:g}"
                + (f", {len(self.errors)} failed" if self.errors else ""))


@dataclass
class PowerCurve:
    """Power over sample sizes (simr's ``powerCurve``).

    Attributes
    ----------
    table : DataFrame
        One row per break: ``levels`` (of ``along``), ``nrows``, ``successes``, ``nsim``,
        ``power``, ``lower``, ``upper``.
    pvalues : ndarray (nsim, breaks)
    along, test, method : str
    errors : dict
    seconds : float
    """

    table: pd.DataFrame
    pvalues: np.ndarray
    along: str
    test: str
    method: str
    errors: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __repr__(self) -> str:
        return f"<PowerCurve for {self.test!r} along {self.along!r}:\n{self.table.to_string(index=False)}>"


# ---------------------------------------------------------------------------- the test
def _columns(model: Any, names: list[str], test: str) -> np.ndarray:
    """Columns of X tested: a formula term's (``"period"``, ``"A:B"``) or one coefficient's."""
    try:
        terms = {t.name: t.columns for t in fixed_terms(model)[1]}
    except InterlaceError:
        terms = {}
    if test in terms:
        cols = np.asarray(terms[test], np.intp)
        if cols.size:
            return cols
    if test in names:
        return np.array([names.index(test)], np.intp)
    raise InterlaceError(f"test {test!r} is neither a fixed-effect term ({list(terms)}) nor a coefficient ({names})")


def _method(res: Any, method: str | None) -> str:
    lmm = hasattr(res, "fe_df")
    if method is None:
        return res.df_method if lmm and res.df_method in ("satterthwaite", "kenward-roger", "normal") else \
            ("satterthwaite" if lmm else "z")
    m = str(method).lower().replace("_", "-")
    m = {"kr": "kenward-roger", "wald": "z", "lrt": "lr", "chisq": "lr"}.get(m, m)
    if m not in _METHODS:
        raise InterlaceError(f"method must be one of {_METHODS}, got {method!r}")
    if m == "normal" and not lmm:
        m = "z"
    if m == "z" and lmm:
        m = "normal"
    if m in ("satterthwaite", "kenward-roger") and not lmm:
        raise InterlaceError(f"method={method!r} is for linear mixed models; use 'z' or 'lr'")
    if m == "kenward-roger" and not res.reml:
        raise InterlaceError("Kenward-Roger needs a REML fit")
    return m


def _pvalue(fit: Any, cols: np.ndarray, method: str) -> float:
    r = getattr(fit, "_results", fit)
    p = len(r._names)
    L = np.eye(p)[cols]
    if method in ("satterthwaite", "kenward-roger", "normal"):
        eng = r._ddf_engine(method)
        return float(eng.contest1d(L[0]).p if cols.size == 1 else eng.contest_md(L).p)
    if method == "z":
        beta = np.asarray(r.params, float)[r._fe]
        V = np.asarray(r.cov_params(), float)[r._fe, r._fe]
        d = L @ beta
        stat = float(d @ np.linalg.solve(L @ V @ L.T, d))
        return float(st.chi2.sf(stat, cols.size))
    full = r if not getattr(r, "reml", False) else getattr(r.model.refit(reml=False), "_results", None)
    exog = full.model.data.orig_exog
    X = exog if isinstance(exog, pd.DataFrame) else pd.DataFrame(np.asarray(exog))
    keep = [j for j in range(X.shape[1]) if j not in set(cols.tolist())]
    reduced = full.model.refit(exog=X.iloc[:, keep], check_conv=False)
    lr = max(2.0 * (full.llf - float(reduced.llf)), 0.0)
    return float(st.chi2.sf(lr, cols.size))


class _PowerWorker(ReplicateWorker):
    """One replicate: simulate on all rows, refit each (sub)model, p-value per model."""

    def __init__(self, res: Any, beta: np.ndarray, models: list, rows: list, cols: np.ndarray, method: str) -> None:
        self.res, self.beta, self.models, self.rows, self.cols, self.method = res, beta, models, rows, cols, method
        self.theta0 = np.asarray(res.theta, float)
        self.optimizer = res.opt_summary.optimizer
        self.re = res.model.random_effects_structure

    def one(self, seedseq: Any) -> tuple[list[float], str | None]:
        y = self.res.simulate_fixef(self.beta, 1, np.random.default_rng(seedseq))[:, 0]
        out, err = [], None
        for model, rows in zip(self.models, self.rows):
            try:
                yy = y if rows is None else y[rows]
                fit = model.refit(endog=yy, start=self.theta0, method=self.optimizer, check_conv=False)
                out.append(_pvalue(fit, self.cols, self.method))
            except Exception as exc:  # noqa: BLE001 - a failed refit counts as no rejection, as in simr
                out.append(np.nan)
                err = f"{type(exc).__name__}: {exc}"
        return out, err


def _setup(result: Any, test: str, fixef: dict | None, method: str | None, alpha: float, nsim: int):
    res = getattr(result, "_results", result)
    if not 0 < alpha < 1:
        raise InterlaceError(f"alpha must lie in (0, 1), got {alpha!r}")
    if int(nsim) < 1:
        raise InterlaceError("nsim must be at least 1")
    names = list(res._names)
    beta = pd.Series(np.asarray(res.params, float)[res._fe], index=names)
    for k, v in (fixef or {}).items():
        if k not in beta.index:
            raise InterlaceError(f"fixef: {k!r} is not a coefficient ({names})")
        beta[k] = float(v)
    cols = _columns(res.model, names, test)
    return res, beta, cols, _method(res, method)


def _run(worker: _PowerWorker, nsim: int, seed: int | None, n_jobs: int, progress: bool, desc: str):
    seeds = np.random.SeedSequence(seed).spawn(int(nsim))
    rows = run_replicates(worker, seeds, n_jobs, progress, desc)
    P = np.array([r[1] for r in rows], float).reshape(len(rows), -1)
    errors = {r[0]: r[2] for r in rows if r[2] is not None}
    return P, errors


def power_sim(result: Any, test: str, nsim: int = 1000, alpha: float = 0.05, fixef: dict | None = None,
              method: str | None = None, seed: int | None = 42, n_jobs: int = 1, progress: bool = True
              ) -> PowerResult:
    """Power to detect a fixed-effect term by simulation (simr's ``powerSim``).

    Parameters
    ----------
    result : fitted LMM or GLMM
        The model to simulate from and refit.
    test : str
        A formula term (``"Days"``, ``"period"``, ``"A:B"``) or a coefficient name.
    nsim : int
    alpha : float
    fixef : dict, optional
        Coefficient → value used instead of the estimate when simulating (the effect size).
    method : {"satterthwaite", "kenward-roger", "normal", "z", "lr"}, optional
        See the module docstring.
    seed : int, optional
    n_jobs : int
        Worker processes (forked).
    progress : bool
        tqdm bar.

    Returns
    -------
    PowerResult
    """
    t0 = time.perf_counter()
    res, beta, cols, m = _setup(result, test, fixef, method, alpha, nsim)
    worker = _PowerWorker(res, beta.to_numpy(), [res.model], [None], cols, m)
    P, errors = _run(worker, nsim, seed, n_jobs, progress, "powerSim")
    p = P[:, 0]
    k = int(np.sum(p < alpha))
    lo, hi = _ci(k, int(nsim))
    return PowerResult(k / int(nsim), lo, hi, p, k, int(nsim), float(alpha), test, m, beta, errors,
                       time.perf_counter() - t0)


def power_curve(result: Any, test: str, along: str, breaks: list[int] | None = None, nsim: int = 1000,
                alpha: float = 0.05, fixef: dict | None = None, method: str | None = None, seed: int | None = 42,
                n_jobs: int = 1, progress: bool = True) -> PowerCurve:
    """Power over sample sizes: the first k levels of ``along`` for each k in ``breaks`` (simr's
    ``powerCurve``).

    Parameters
    ----------
    along : str
        A column of the model frame (usually a grouping factor).
    breaks : list of int, optional
        Numbers of levels; default up to 10 values evenly spaced from 3 to all levels.
    test, nsim, alpha, fixef, method, seed, n_jobs, progress
        As in :func:`power_sim`.

    Returns
    -------
    PowerCurve
    """
    t0 = time.perf_counter()
    res, beta, cols, m = _setup(result, test, fixef, method, alpha, nsim)
    frame = res.model.model_frame.data if res.model.model_frame is not None else None
    if frame is None or along not in frame.columns:
        raise InterlaceError(f"along={along!r} is not a column of the model frame")
    values = frame[along].to_numpy()
    levels = list(dict.fromkeys(values.tolist()))
    nlev = len(levels)
    if breaks is None:
        breaks = sorted({int(x) for x in np.floor(np.linspace(min(3, nlev), nlev, max(1, min(10, nlev - 2))))})
    breaks = [int(b) for b in breaks]
    if any(b < 1 or b > nlev for b in breaks):
        raise InterlaceError(f"breaks must lie in 1..{nlev} (the levels of {along!r})")
    rows = [np.flatnonzero(np.isin(values, levels[:b])) for b in breaks]
    models = [res.model.clone(rows=r) for r in rows]
    worker = _PowerWorker(res, beta.to_numpy(), models, rows, cols, m)
    P, errors = _run(worker, nsim, seed, n_jobs, progress, "powerCurve")
    recs = []
    for j, b in enumerate(breaks):
        k = int(np.sum(P[:, j] < alpha))
        lo, hi = _ci(k, int(nsim))
        recs.append({"levels": b, "nrows": int(rows[j].size), "successes": k, "nsim": int(nsim),
                     "power": k / int(nsim), "lower": lo, "upper": hi})
    return PowerCurve(pd.DataFrame(recs), P, along, test, m, errors, time.perf_counter() - t0)
