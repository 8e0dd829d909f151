"""Verdicts on a fitted mixed model that a user can act on: :func:`check_model`.

Each check gives a :class:`CheckItem` (name, ``"ok"``/``"warning"``, a sentence on what
was found, the figures behind it and one sentence of advice):

* **singular fit** — a variance or correlation on its boundary: a bounded θ below
  1e-4 (lme4's ``isSingular``, :func:`interlace.optimize.is_singular`).
* **convergence** — the optimizer's own success flag and the gradient / Hessian checks
  run at fit time (lme4's ``check.conv.grad``), from ``result.opt_summary.messages``.
* **overdispersion** — Poisson GLMMs and binomial GLMMs with more than one trial per
  row: Pearson χ² = Σ rᵢ² (Pearson residuals at the conditional modes), residual df =
  n − (fixed effects + θ parameters), ratio χ²/df and the upper-tail χ² p-value (Bolker's
  GLMM FAQ ``overdisp_fun``, ``performance::check_overdispersion``); a warning when
  p < ``alpha``.
* **collinearity** — variance inflation factors of the fixed effects from the
  correlation matrix R of vcov(β̂) without the intercept (``car::vif`` on a merMod,
  ``performance::check_collinearity``): per model term t with columns s,
  GVIF_t = det(R_ss) det(R_s̄s̄) / det(R), the VIF itself for a one-column term; a
  warning when GVIF^(1/Df) ≥ ``vif_threshold`` for some term (for one-column terms that
  is VIF ≥ 5 by default, performance's "moderate" correlation).

Checks that do not apply (overdispersion of a linear mixed model or of Bernoulli
responses, VIFs with fewer than two terms) are listed in ``report.skipped`` with the
reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..optimize import is_singular

__all__ = ["CheckItem", "CheckReport", "check_model", "overdispersion", "vif"]

SINGULAR_TOL = 1e-4


@dataclass
class CheckItem:
    """One verdict.

    Attributes
    ----------
    name : str
    status : {"ok", "warning"}
    message : str
        What was found, in one sentence.
    figures : dict
        The numbers behind the verdict.
    advice : str
        What to do about it, in one sentence.
    """

    name: str
    status: str
    message: str
    figures: dict = field(default_factory=dict)
    advice: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class CheckReport:
    """The verdicts of :func:`check_model`.

    Attributes
    ----------
    model : str
        A description of the checked model.
    items : list of CheckItem
    skipped : dict
        Check name → why it does not apply.
    """

    model: str
    items: list
    skipped: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check warns."""
        return all(i.ok for i in self.items)

    @property
    def warnings(self) -> list:
        """The items that warn."""
        return [i for i in self.items if not i.ok]

    def __getitem__(self, name: str) -> CheckItem:
        for i in self.items:
            if i.name == name:
                return i
        raise KeyError(f"no check {name!r}; checks: {[i.name for i in self.items]}")

    def to_frame(self) -> pd.DataFrame:
        """One row per check: status, message, advice."""
        return pd.DataFrame([(i.status, i.message, i.advice) for i in self.items],
                            index=pd.Index([i.name for i in self.items], name="check"),
                            columns=["status", "message", "advice"])

    def __str__(self) -> str:
        lines = [f"Model checks: {self.model}"]
        for i in self.items:
            lines.append(f"  {i.status.upper():<8} {i.name}: {i.message}")
            lines.append(f"  {'':<8} -> {i.advice}")
        for name, why in self.skipped.items():
            lines.append(f"  {'SKIPPED':<8} {name}: {why}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


# ----------------------------------------------------------------------------- helpers
def _results(result):
    return getattr(result, "_results", result)


def _family(res) -> str | None:
    fam = getattr(res, "family", None)
    return getattr(fam, "name", None)


def _describe(res) -> str:
    model = res.model
    formula = getattr(model, "formula", None) or type(res).__name__
    fam = _family(res)
    if fam:
        kind = f"{fam} GLMM"
    elif type(res).__name__ == "CrossedLMEResult":
        kind = "LMM, REML" if res.reml else "LMM, ML"
    else:
        kind = type(res).__name__
    return f"{formula} ({kind}, n = {res.nobs})"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# ----------------------------------------------------------------------------- singular fit
def _singular_item(res) -> CheckItem:
    re = res.model.random_effects_structure
    theta, lower = np.asarray(res.theta, float), np.asarray(re.lower, float)
    bounded = lower == 0
    at_bound = bounded & (theta < SINGULAR_TOL)
    terms = [t.name for k, t in enumerate(re.terms) if np.any(at_bound[re.theta_slice(k)])]
    smallest = float(np.min(theta[bounded])) if np.any(bounded) else float("nan")
    figures = {"singular": bool(is_singular(theta, lower, SINGULAR_TOL)), "smallest_bounded_theta": smallest,
               "terms_at_boundary": terms}
    if not figures["singular"]:
        detail = f" (smallest bounded θ {_fmt(smallest)})" if np.any(bounded) else ""
        return CheckItem("singular fit", "ok", f"no variance or correlation on its boundary{detail}",
                         figures, "nothing to do.")
    return CheckItem("singular fit", "warning",
                     f"a variance or correlation of {', '.join(dict.fromkeys(terms))} is on its boundary "
                     f"(θ < {SINGULAR_TOL:g})", figures,
                     "simplify the random effects of that term (drop the slope or the correlation, or the "
                     "term) unless the boundary estimate is what you expect.")


# ----------------------------------------------------------------------------- convergence
_PROBLEMS = ("Model failed", "optimizer", "PIRLS", "unable", "Newton")


def _convergence_item(res) -> CheckItem:
    opt = res.opt_summary
    msgs = [m for m in opt.messages if m.startswith(_PROBLEMS)]
    figures = {"optimizer": opt.optimizer, "evaluations": int(opt.n_evals), "optimizer_converged": bool(opt.converged),
               "messages": list(msgs)}
    if opt.converged and not msgs:
        return CheckItem("convergence", "ok", "the optimizer converged and no convergence check failed",
                         figures, "nothing to do.")
    return CheckItem("convergence", "warning", "; ".join(msgs) or f"{opt.optimizer}: {opt.message}", figures,
                     "rescale or centre the covariates and refit with another optimizer (optimizer='Nelder-Mead' "
                     "or 'L-BFGS-B'); if the estimates agree, the warning was a false alarm.")


# ----------------------------------------------------------------------------- overdispersion
def overdispersion(result: Any) -> dict:
    """Pearson overdispersion figures of a GLMM (Bolker's ``overdisp_fun``).

    Returns
    -------
    dict
        ``chisq`` (Σ Pearson residuals²), ``rdf`` (n − fixed effects − θ parameters, lme4's
        ``df.residual``), ``ratio`` (chisq / rdf) and ``p_value`` (upper χ² tail).
    """
    res = _results(result)
    r = np.asarray(res.resid_pearson(), float)
    chisq = float(np.sum(r * r))
    rdf = int(res.nobs - res.df_modelwc)
    return {"chisq": chisq, "rdf": rdf, "ratio": chisq / rdf, "p_value": float(st.chi2.sf(chisq, rdf))}


def _overdispersion_applies(res) -> str | None:
    """None when the check applies, else why not."""
    fam = _family(res)
    if fam is None:
        return "a linear mixed model estimates its residual variance"
    if fam == "poisson":
        return None
    if fam == "binomial":
        if np.all(np.asarray(res.model.weights, float) <= 1):
            return "binary (one-trial) responses cannot be overdispersed"
        return None
    return f"only for Poisson and binomial GLMMs (the {fam} family has its own dispersion)"


def _overdispersion_item(res, alpha: float) -> CheckItem:
    f = overdispersion(res)
    msg = (f"Pearson χ² = {_fmt(f['chisq'])} on {f['rdf']} df, ratio {f['ratio']:.3f}, "
           f"p = {_fmt(f['p_value'])}")
    if f["p_value"] >= alpha:
        return CheckItem("overdispersion", "ok", msg, f, "nothing to do.")
    return CheckItem("overdispersion", "warning", msg, f,
                     "the counts vary more than the family allows: add an observation-level random effect "
                     "(1 | obs) or use a negative binomial model (interlace.glmer_nb); otherwise the standard "
                     "errors are too small.")


# ----------------------------------------------------------------------------- collinearity
def _term_assignment(res) -> tuple[list[str], np.ndarray] | None:
    """Per fixed-effect column, the index of its model term (term names in R's order)."""
    fx = getattr(res.model, "fixed_design", None)
    if fx is None:
        return None
    info = fx.design_info
    names, assign = [], []
    for col in fx.keep:
        term = next(t for t, sl in info.term_slices.items() if sl.start <= col < sl.stop)
        name = term.name()
        if name not in names:
            names.append(name)
        assign.append(names.index(name))
    return names, np.asarray(assign)


def vif(result: Any) -> pd.DataFrame:
    """Generalized variance inflation factors of the fixed-effect terms (``car::vif``).

    From R, the correlation matrix of vcov(β̂) without the intercept: per term t with
    columns s, GVIF = det(R_ss) det(R_s̄s̄) / det(R) (the VIF for a one-column term).

    Returns
    -------
    DataFrame
        Index: model terms; columns ``GVIF``, ``Df``, ``GVIF^(1/(2*Df))`` (car's names).
    """
    res = _results(result)
    V = res.cov_fe.to_numpy()
    names, assign = _term_assignment(res) or (list(res._names), np.arange(len(res._names)))
    cols = np.arange(V.shape[0])
    if "Intercept" in names:
        k = names.index("Intercept")
        cols, assign = cols[assign != k], assign[assign != k]
        assign = np.where(assign > k, assign - 1, assign)
        names = names[:k] + names[k + 1:]
    sd = np.sqrt(np.diag(V)[cols])
    R = V[np.ix_(cols, cols)] / np.outer(sd, sd)
    det_all = np.linalg.det(R)
    out = []
    for t in range(len(names)):
        s = assign == t
        g = np.linalg.det(R[np.ix_(s, s)]) * np.linalg.det(R[np.ix_(~s, ~s)]) / det_all
        out.append((g, int(s.sum()), g ** (1 / (2 * s.sum()))))
    return pd.DataFrame(out, index=pd.Index(names, name="term"), columns=["GVIF", "Df", "GVIF^(1/(2*Df))"])


def _vif_applies(res) -> str | None:
    names = [n for n in (_term_assignment(res) or (list(res._names),))[0] if n != "Intercept"]
    if len(names) < 2:
        return "fewer than two fixed-effect terms besides the intercept"
    return None


def _vif_item(res, threshold: float) -> CheckItem:
    table = vif(res)
    scaled = table["GVIF^(1/(2*Df))"] ** 2  # GVIF^(1/Df): the VIF for one-column terms
    worst = scaled.idxmax()
    figures = {"gvif": table["GVIF"].to_dict(), "df": table["Df"].to_dict(),
               "gvif_adj": table["GVIF^(1/(2*Df))"].to_dict(), "threshold": threshold}
    high = [t for t in table.index if scaled[t] >= threshold]
    msg = f"largest VIF {_fmt(scaled[worst])} ({worst})" + (
        "" if (table["Df"] == 1).all() else ", as GVIF^(1/Df) for multi-column terms")
    if not high:
        return CheckItem("collinearity", "ok", msg, figures, "nothing to do.")
    return CheckItem("collinearity", "warning", msg + f"; {', '.join(high)} at or above {threshold:g}", figures,
                     "centre covariates that enter interactions or polynomials, and drop or combine predictors "
                     "that measure the same thing; their standard errors are inflated.")


# ----------------------------------------------------------------------------- entry point
def check_model(result: Any, alpha: float = 0.05, vif_threshold: float = 5.0) -> CheckReport:
    """Run the checks that apply to a fitted mixed model (see the module docstring).

    Parameters
    ----------
    result : fitted mixed-model result
    alpha : float
        Level of the overdispersion test.
    vif_threshold : float
        Warn when a term's GVIF^(1/Df) (its VIF when it has one column) reaches it.

    Returns
    -------
    CheckReport
        ``print(report)`` lists the verdicts; ``report["overdispersion"].figures`` holds
        the numbers.
    """
    res = _results(result)
    items = [_singular_item(res), _convergence_item(res)]
    skipped = {}
    why = _overdispersion_applies(res)
    if why is None:
        items.append(_overdispersion_item(res, alpha))
    else:
        skipped["overdispersion"] = why
    why = _vif_applies(res)
    if why is None:
        items.append(_vif_item(res, vif_threshold))
    else:
        skipped["collinearity"] = why
    return CheckReport(_describe(res), items, skipped)
