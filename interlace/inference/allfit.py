"""``all_fit``: the model refitted with every available optimizer (lme4's ``allFit``).

Each optimizer of :data:`interlace.optimize.OPTIMIZERS` that is installed (Py-BOBYQA,
NLopt's BOBYQA when ``nlopt`` is present, scipy's L-BFGS-B, Nelder-Mead and Powell)
refits the model from its default start through
:meth:`~interlace.models.base.MixedModel.refit`, with lme4's convergence checks; an
optimizer that fails is recorded with its error.  Agreement of the log-likelihoods
and estimates across optimizers is the usual evidence that a fit with convergence
warnings is nevertheless at the optimum (lme4's ``?convergence``).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InterlaceError
from ..optimize.optimizers import HAVE_NLOPT
from .parameters import param_names, theta_to_sdcor

__all__ = ["AllFitResult", "all_fit", "available_optimizers"]


def available_optimizers() -> list[str]:
    """The optimizers installed here, each implementation once (``"bobyqa"`` is one of the first two)."""
    out = ["pybobyqa"] + (["nlopt_bobyqa"] if HAVE_NLOPT else [])
    return out + ["L-BFGS-B", "Nelder-Mead", "Powell"]


@dataclass
class AllFitResult:
    """Fits of one model by several optimizers (lme4's ``allFit`` and its ``summary``).

    Attributes
    ----------
    fits : dict
        Optimizer → fitted result (optimizers that raised are absent; see ``errors``).
    table : DataFrame
        One row per optimizer: ``ok`` (ran without error), ``converged`` (the optimizer's
        success and no convergence warning), ``llf``, ``n_evals``, ``seconds``, ``messages``.
    fixef, theta, sdcor : DataFrame
        One row per optimizer that ran: the fixed effects, θ, and the random-effect SDs
        and correlations (with σ for models that have one), lme4's ``fixef``, ``theta``
        and ``sdcor`` of ``summary(allFit(m))``.
    errors : dict
        Optimizer → error message.
    """

    fits: dict
    table: pd.DataFrame
    fixef: pd.DataFrame
    theta: pd.DataFrame
    sdcor: pd.DataFrame
    errors: dict = field(default_factory=dict)

    @property
    def llf_spread(self) -> float:
        """Largest minus smallest log-likelihood over the optimizers that converged."""
        ll = self.table.loc[self.table["converged"], "llf"]
        return float(ll.max() - ll.min()) if len(ll) else float("nan")

    def summary(self) -> dict:
        """lme4's ``summary(allFit(m))`` as a dict: ``which_ok``, ``msgs``, ``fixef``, ``llik``, ``sdcor``,
        ``theta``, ``times``, ``feval``."""
        t = self.table
        return {"which_ok": t["ok"], "msgs": t["messages"], "fixef": self.fixef, "llik": t["llf"],
                "sdcor": self.sdcor, "theta": self.theta, "times": t["seconds"], "feval": t["n_evals"]}

    def __repr__(self) -> str:
        t = self.table
        return (f"<AllFitResult: {len(t)} optimizers, {int(t['converged'].sum())} converged, "
                f"llf spread {self.llf_spread:.3g}>")


def _sdcor(res: Any) -> tuple[np.ndarray, list[str]]:
    re = res.model.random_effects_structure
    sigma = float(getattr(res, "sigma", 1.0))
    has_sigma = res._residual_variance is not None
    scale = sigma if has_sigma else 1.0
    vals = theta_to_sdcor(re, np.asarray(res.theta, float), scale)
    names = param_names(re, [], old=False)
    if has_sigma:
        return np.append(vals, sigma), names
    return vals, names[:-1]


def all_fit(result: Any, optimizers: list[str] | None = None, progress: bool = False) -> AllFitResult:
    """Refit a model with every available optimizer (lme4's ``allFit``).

    Parameters
    ----------
    result : fitted LMM, GLMM or CLMM
    optimizers : list of str, optional
        Default :func:`available_optimizers`.
    progress : bool
        tqdm bar over the optimizers.

    Returns
    -------
    AllFitResult
    """
    res = getattr(result, "_results", result)
    model = res.model
    names = available_optimizers() if optimizers is None else list(optimizers)
    if not names:
        raise InterlaceError("give at least one optimizer")
    fits, errors, rows = {}, {}, []
    fix, th, sd = {}, {}, {}
    sd_names: list[str] = []
    from tqdm.auto import tqdm  # imported when used: a fit does not need it

    for opt in tqdm(names, disable=not progress, desc="allFit"):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = model.refit(method=opt)
            except Exception as exc:  # noqa: BLE001 - a failing optimizer is reported, as lme4's allFit does
                errors[opt] = f"{type(exc).__name__}: {exc}"
                rows.append((opt, False, False, np.nan, np.nan, time.perf_counter() - t0, [errors[opt]]))
                continue
        r = getattr(fit, "_results", fit)
        fits[opt] = fit
        o = r.opt_summary
        rows.append((opt, True, bool(r.converged), float(r.llf), int(o.n_evals), time.perf_counter() - t0,
                     list(o.messages)))
        fix[opt] = np.asarray(r.params, float)[r._fe]
        th[opt] = np.asarray(r.theta, float)
        sd[opt], sd_names = _sdcor(r)
    table = pd.DataFrame(rows, columns=["optimizer", "ok", "converged", "llf", "n_evals", "seconds", "messages"]
                         ).set_index("optimizer")
    re = model.random_effects_structure
    theta_names = [f"theta{i + 1}" for i in range(re.n_theta)]
    return AllFitResult(fits, table,
                        pd.DataFrame.from_dict(fix, orient="index", columns=list(res._names)),
                        pd.DataFrame.from_dict(th, orient="index", columns=theta_names),
                        pd.DataFrame.from_dict(sd, orient="index", columns=sd_names or None), errors)
