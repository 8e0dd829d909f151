"""Parametric bootstrap likelihood-ratio test of nested mixed models (pbkrtest's ``PBmodcomp``).

Both models are used as maximum-likelihood fits (REML fits are refitted by ML, as
pbkrtest does).  The observed statistic is ``tobs = 2 (llf_large − llf_small)``.  Its
reference distribution is simulated under the small model: ``nsim`` responses are
drawn from the small ML fit (new random effects and residuals, ``simulate``), and both
models are refitted to each (:meth:`~interlace.models.base.MixedModel.refit`, warm
started at their estimates, sharing their engines), through
:func:`~interlace.inference.parametric_bootstrap.parametric_bootstrap` (seeded streams
per replicate, worker processes, a tqdm bar).

As pbkrtest's ``summary(PBmodcomp(...))``, with the positive replicates ``ref`` (npos
of them) of mean E and variance V:

* ``LRT``: χ² with the difference in parameters as df;
* ``PBtest``: ``(1 + #{ref > tobs}) / (1 + npos)``;
* ``Gamma``: the upper tail of a gamma distribution with mean E and variance V;
* ``Bartlett``: ``df · tobs / E`` against χ²(df);
* ``F``: ``tobs / df`` against F(df, 2E/(E − 1)).

The PBtest p-value has Monte-Carlo standard error ``√(p (1 − p) / npos)`` (``se``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError, warn_user
from .lrt import _same_data, as_ml
from .parametric_bootstrap import parametric_bootstrap

__all__ = ["PBModComp", "pb_modcomp"]


@dataclass
class PBModComp:
    """A parametric bootstrap LR test (pbkrtest's ``PBmodcomp`` and its ``summary``).

    Attributes
    ----------
    test : DataFrame
        Rows ``LRT``, ``PBtest``, ``Gamma``, ``Bartlett``, ``F``; columns ``stat``, ``df``,
        ``ddf``, ``p.value``.
    tobs : float
    df : int
    ref : ndarray
        The simulated statistics (NaN where a refit failed).
    n_extreme : int
        Positive replicates above ``tobs``.
    npos : int
    se : float
        Monte-Carlo standard error of the PBtest p-value.
    seed : int or None
    """

    test: pd.DataFrame
    tobs: float
    df: int
    ref: np.ndarray
    n_extreme: int
    npos: int
    se: float
    seed: int | None

    @property
    def pvalue(self) -> float:
        """The parametric bootstrap p-value (the ``PBtest`` row)."""
        return float(self.test.loc["PBtest", "p.value"])

    def __repr__(self) -> str:
        return (f"<PBModComp: LRT {self.tobs:.4g} on {self.df} df, p (chi2) "
                f"{self.test.loc['LRT', 'p.value']:.4g}, p (PB) {self.pvalue:.4g} "
                f"± {self.se:.2g} from {self.npos} samples>")


def _summarize(tobs: float, ndf: int, ref: np.ndarray) -> tuple[pd.DataFrame, int, int, float]:
    ok = ref[np.isfinite(ref)]
    pos = ok[ok > 0]
    npos = pos.size
    if npos < 2:
        raise InterlaceError("fewer than two simulated statistics are positive: increase nsim")
    E, V = float(np.mean(pos)), float(np.var(pos, ddof=1))
    n_extreme = int(np.sum(tobs < pos))
    p_pb = (1 + n_extreme) / (1 + npos)
    se = float(np.sqrt(p_pb * (1 - p_pb) / npos))
    bc = ndf * tobs / E
    ddf = 2 * E / (E - 1)
    rows = {"LRT": (tobs, ndf, np.nan, st.chi2.sf(tobs, ndf)),
            "PBtest": (tobs, np.nan, np.nan, p_pb),
            "Gamma": (tobs, np.nan, np.nan, st.gamma.sf(tobs, E * E / V, scale=V / E)),
            "Bartlett": (bc, ndf, np.nan, st.chi2.sf(bc, ndf)),
            "F": (tobs / ndf, ndf, ddf, st.f.sf(tobs / ndf, ndf, ddf) if ddf > 0 else np.nan)}
    test = pd.DataFrame.from_dict(rows, orient="index", columns=["stat", "df", "ddf", "p.value"])
    return test, n_extreme, npos, se


def pb_modcomp(large: Any, small: Any, nsim: int = 1000, seed: int | None = 42, n_jobs: int = 1,
               progress: bool = True) -> PBModComp:
    """Parametric bootstrap test of ``small`` against ``large`` (pbkrtest's ``PBmodcomp``).

    Parameters
    ----------
    large, small : fitted LMM or GLMM results
        Nested models fitted to the same rows and response (either order).
    nsim : int
        Simulated responses.
    seed : int, optional
        Replicate i draws from ``SeedSequence(seed).spawn(nsim)[i]`` (the same whatever ``n_jobs``).
    n_jobs : int
        Worker processes.
    progress : bool
        tqdm bar.

    Returns
    -------
    PBModComp
    """
    a, b = getattr(large, "_results", large), getattr(small, "_results", small)
    if not _same_data(a, b):
        raise InterlaceError("the models were not fitted to the same data (rows or response differ)")
    if a.df_modelwc == b.df_modelwc:
        raise InterlaceError("the models have the same number of parameters: they are not nested")
    if a.df_modelwc < b.df_modelwc:
        a, b = b, a
    if getattr(a, "reml", False) or getattr(b, "reml", False):
        warn_user("refitting model(s) with ML (instead of REML) for the parametric bootstrap test", UserWarning)
        a, b = getattr(as_ml(a), "_results", as_ml(a)), getattr(as_ml(b), "_results", as_ml(b))
    ndf = int(a.df_modelwc - b.df_modelwc)
    tobs = max(2.0 * (a.llf - b.llf), 0.0)
    large_model = a.model
    theta_large = np.asarray(a.theta, float)
    optimizer = a.opt_summary.optimizer

    def statistic(fit: Any) -> float:
        r = getattr(fit, "_results", fit)
        lg = large_model.refit(endog=np.asarray(r.model.endog, float), start=theta_large, method=optimizer,
                               check_conv=False)
        return 2.0 * (float(lg.llf) - float(r.llf))

    boot = parametric_bootstrap(b, n=nsim, seed=seed, statistic=statistic, n_jobs=n_jobs, progress=progress)
    ref = boot.replicates.iloc[:, 0].to_numpy(float)
    test, n_extreme, npos, se = _summarize(tobs, ndf, ref)
    return PBModComp(test, float(tobs), ndf, ref, n_extreme, npos, se, seed)
