"""Parametric bootstrap of a linear mixed model (lme4's ``bootMer``).

Each replicate simulates a response from the fitted model (as ``result.simulate``: new
random effects and new residuals, lme4's default ``use.u = FALSE``), refits the same
model to it (same criterion, REML or ML) and records a statistic, by default every
parameter: the standard deviations and correlations of the random effects, σ and the
fixed effects (the rows of ``confint``).  The refits go through the model's
:meth:`~interlace.models.lmm.CrossedLME.refitter` (:mod:`interlace.objective.refit`):
one engine for the fitted rows, per replicate only the cross-products with the new
response, a start at θ̂ and steps scaled to θ̂'s standard errors, and no model or
result object unless a ``statistic`` asks for the refitted result (it is then made at
the refit's estimate, :meth:`~interlace.models.lmm.CrossedLME.fitted_at`).  Other
families (a GLMM's bootstrap in ``pb_modcomp``) refit through
:meth:`~interlace.models.base.MixedModel.refit`.  The fitted model is left as it was.

Replicate ``i`` draws from its own random stream, ``SeedSequence(seed).spawn(n)[i]``,
so the replicates are the same whatever ``n_jobs`` is.

This is not :meth:`~interlace.results.lmm.CrossedLMEResult.bootstrap_se`, which
resamples whole clusters of the data (a nonparametric cluster bootstrap of a
statistic of the response) and refits nothing.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError
from ..objective.refit import theta_scale
from ..optimize import is_singular
from .parameters import param_names, percent_labels, theta_to_sdcor
from .replicates import ReplicateWorker, run_replicates

__all__ = ["BootstrapResult", "parametric_bootstrap"]


@dataclass
class BootstrapResult:
    """Replicates of a parametric bootstrap (lme4's ``bootMer`` object).

    Attributes
    ----------
    replicates : DataFrame
        One row per replicate, one column per statistic (NaN rows for failed refits).
    estimate : Series
        The statistic on the fitted model (lme4's ``t0``).
    seed : int or None
    kind : str
        ``"parametric"``.
    converged : ndarray of bool
        Per replicate: the optimizer reported success.
    singular : ndarray of bool
        Per replicate: the refit is singular (a bounded θ below 1e-4).
    errors : dict
        Replicate index → error message, for refits that raised.
    """

    replicates: pd.DataFrame
    estimate: pd.Series
    seed: int | None
    kind: str = "parametric"
    converged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    singular: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    errors: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of replicates."""
        return len(self.replicates)

    @property
    def n_failed(self) -> int:
        """Replicates whose refit raised (their rows are NaN)."""
        return len(self.errors)

    @property
    def se(self) -> pd.Series:
        """Bootstrap standard errors: the standard deviation (ddof=1) of each column."""
        return self.replicates.std(ddof=1).rename("se")

    @property
    def bias(self) -> pd.Series:
        """Mean of the replicates minus the estimate."""
        return (self.replicates.mean() - self.estimate).rename("bias")

    def conf_int(self, level: float = 0.95, method: str = "percentile") -> pd.DataFrame:
        """Bootstrap confidence intervals (lme4's ``confint(bootMer(...), type = ...)``).

        Parameters
        ----------
        level : float
        method : {"percentile", "basic", "normal"}
            ``"percentile"``: the α/2 and 1 − α/2 quantiles of the replicates (numpy's
            linear interpolation; lme4/boot's ``"perc"`` interpolates order statistics
            on the normal scale, a difference far below the Monte-Carlo error);
            ``"basic"``: ``2 t0 − q(1 − α/2)``, ``2 t0 − q(α/2)``;
            ``"normal"``: ``t0 − bias ∓ z se``.

        Returns
        -------
        DataFrame
            Rows as the statistic, columns ``"2.5 %"``, ``"97.5 %"`` (for level 0.95).
        """
        a = (1.0 - level) / 2.0
        R = self.replicates
        t0 = self.estimate.reindex(R.columns)
        if method == "percentile":
            lo, hi = R.quantile(a), R.quantile(1 - a)
        elif method == "basic":
            lo, hi = 2 * t0 - R.quantile(1 - a), 2 * t0 - R.quantile(a)
        elif method == "normal":
            z = st.norm.ppf(1 - a)
            centre = t0 - (R.mean() - t0)
            lo, hi = centre - z * self.se, centre + z * self.se
        else:
            raise InterlaceError(f"method must be 'percentile', 'basic' or 'normal', got {method!r}")
        return pd.DataFrame(np.column_stack([lo.to_numpy(float), hi.to_numpy(float)]), index=R.columns,
                            columns=percent_labels(level))

    def __repr__(self) -> str:
        return (f"<BootstrapResult: {self.kind}, n={self.n}, statistics={self.replicates.shape[1]}, "
                f"failed={self.n_failed}, singular={int(self.singular.sum())}>")


# ---------------------------------------------------------------------------- refitting
class _Refitter(ReplicateWorker):
    """Refits one fitted model to simulated responses (:meth:`refit` of its model)."""

    def __init__(self, res, statistic, use_u: bool, old_names: bool) -> None:
        self.res = res
        self.model = res.model
        self.re = self.model.random_effects_structure
        self.theta0 = np.asarray(res.theta, float)
        self.lower = self.re.lower
        self.optimizer = res.opt_summary.optimizer
        self.statistic = statistic
        self.use_u = use_u
        self.names = param_names(self.re, res._names, old=old_names)
        self.draw = res.response_sampler(use_u)
        # LMMs: refits that form only the response's products; the default statistic needs no result object
        self.refitter = None
        if hasattr(self.model, "refitter") and getattr(self.model, "residual", None) is None:
            self.refitter = self.model.refitter(self.theta0, theta_scale(self.theta0, res.opt_summary.derivs),
                                                self.optimizer)

    def default_stat(self, theta, sigma2, beta) -> np.ndarray:
        sig = float(np.sqrt(sigma2))
        return np.concatenate([theta_to_sdcor(self.re, theta, sig), [sig], beta])

    def one(self, seedseq):
        """(statistic, converged, singular, error) for one replicate."""
        try:
            y = self.draw(np.random.default_rng(seedseq))
            if self.refitter is None:  # other families: a refitted model and result
                fit = self.model.refit(endog=y, start=self.theta0, method=self.optimizer, check_conv=False)
                r = fit._results
                val = (self.default_stat(r.theta, r.scale, np.asarray(r.params, float)) if self.statistic is None
                       else self.statistic(fit))
                return val, bool(r.opt_summary.converged), is_singular(r.theta, self.lower), None
            est = self.refitter(y)
            if self.statistic is None:
                val = self.default_stat(est.theta, est.sigma2, est.beta)
            else:  # the statistic receives the refitted result: made at the refitter's estimate
                val = self.statistic(self.model.clone(endog=y).fitted_at(est))
            return val, est.converged, is_singular(est.theta, self.lower), None
        except Exception as exc:  # noqa: BLE001 - a failed refit is recorded, as bootMer does
            return None, False, False, f"{type(exc).__name__}: {exc}"


def _to_row(val):
    if isinstance(val, pd.Series):
        return val.to_numpy(float), list(val.index)
    if isinstance(val, dict):
        return np.asarray(list(val.values()), float), list(val.keys())
    arr = np.atleast_1d(np.asarray(val, float)).ravel()
    return arr, (["statistic"] if np.ndim(val) == 0 else list(range(arr.size)))


def parametric_bootstrap(result: Any, n: int = 1000, seed: int | None = 42,
                         statistic: Callable[[Any], float | pd.Series | dict | np.ndarray] | None = None,
                         kind: str = "parametric", n_jobs: int = 1, progress: bool = True, use_u: bool = False,
                         old_names: bool = True) -> BootstrapResult:
    """Parametric bootstrap of a fitted linear mixed model (lme4's ``bootMer``).

    Parameters
    ----------
    result : CrossedLMEResult
    n : int
        Number of replicates.
    seed : int, optional
        Seed of the replicates' random streams (replicate i uses
        ``SeedSequence(seed).spawn(n)[i]``); None draws fresh entropy.
    statistic : callable, optional
        Receives each refitted result (a ``CrossedLMEResult`` whose model shares the
        fitted design; its response is the simulated one) and returns a float, a
        Series, a dict or an array.  Default: every parameter (SDs and correlations,
        σ, fixed effects) named as in ``conf_int_all``.
    kind : {"parametric"}
    n_jobs : int
        Worker processes (forked; replicates are identical whatever ``n_jobs``).
    progress : bool
        tqdm progress bar.
    use_u : bool
        Condition on the fitted random effects (lme4's ``use.u = TRUE``) instead of
        drawing new ones.
    old_names : bool
        Default statistic's names: ``.sig01 … .sigma`` (True) or ``sd_…|group`` (False).
    """
    if kind != "parametric":
        raise InterlaceError(f"only kind='parametric' is implemented, got {kind!r}")
    if int(n) < 1:
        raise InterlaceError("n must be at least 1")
    n = int(n)
    res = getattr(result, "_results", result)
    ref = _Refitter(res, statistic, use_u, old_names)
    seeds = np.random.SeedSequence(seed).spawn(n)
    if statistic is None:
        t0 = pd.Series(ref.default_stat(res.theta, res.scale, np.asarray(res.params, float)), index=ref.names)
    else:
        v, names = _to_row(statistic(result))
        t0 = pd.Series(v, index=names)
    out = run_replicates(ref, seeds, n_jobs, progress, "parametric bootstrap")
    cols = list(t0.index)
    vals = np.full((n, len(cols)), np.nan)
    conv = np.zeros(n, bool)
    sing = np.zeros(n, bool)
    errors = {}
    for i, val, c, s, err in out:
        conv[i], sing[i] = c, s
        if err is not None:
            errors[i] = err
            continue
        if isinstance(val, (pd.Series, dict)):  # aligned by name
            val = pd.Series(val, dtype=float).reindex(cols)
        row, _ = _to_row(val)
        if row.size != len(cols):
            errors[i] = f"statistic returned {row.size} values, expected {len(cols)}"
            continue
        vals[i] = row
    if errors:
        warnings.warn(f"{len(errors)} of {n} bootstrap refits failed (see .errors)", RuntimeWarning, stacklevel=2)
    reps = pd.DataFrame(vals, columns=cols)
    return BootstrapResult(reps, t0, seed, kind, conv, sing, errors)
