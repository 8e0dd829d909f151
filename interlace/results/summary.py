"""statsmodels-style summary tables carrying lme4's summary information."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats as st
from statsmodels.iolib.summary2 import Summary

__all__ = ["lmm_summary", "glmm_summary", "random_effects_table"]


def random_effects_table(res) -> pd.DataFrame:
    """Groups / Name / Variance / Std.Dev. / Corr rows, as lme4 prints ``VarCorr``."""
    rows = []
    for name, C in res.random_effects_cov.items():
        sd = np.sqrt(np.diag(C.values))
        for i, coef in enumerate(C.index):
            corr = ""
            if i > 0:
                with np.errstate(invalid="ignore", divide="ignore"):
                    r = C.values[i, :i] / (sd[i] * sd[:i])
                corr = " ".join("  .  " if np.isnan(v) else f"{v:5.2f}" for v in r)
            rows.append((name if i == 0 else "", coef, f"{C.values[i, i]:.4g}", f"{sd[i]:.4g}", corr))
    if res._residual_variance is not None:
        v = res._residual_variance
        rows.append(("Residual", "", f"{v:.4g}", f"{np.sqrt(v):.4g}", ""))
    return pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])


def lmm_summary(res, alpha: float = 0.05) -> Summary:
    """Build the summary of a :class:`~interlace.results.lmm.CrossedLMEResult`."""
    s = Summary()
    kind = "REML" if res.reml else "maximum likelihood"
    s.add_title(f"Linear mixed model fit by {kind} (interlace CrossedLME)")
    groups = ", ".join(f"{k} ({v})" for k, v in res.ngroups.items())
    crit_name = "REML criterion:" if res.reml else "Deviance:"
    info = {
        "Formula:": str(res.model.formula),
        "Method:": "REML" if res.reml else "ML",
        "No. Observations:": str(res.nobs),
        "Groups (levels):": groups,
        crit_name: f"{res.objective:.4f}",
        "Log-Likelihood:": f"{res.llf:.4f}",
        "AIC:": f"{res.aic:.4f}",
        "BIC:": f"{res.bic:.4f}",
        "Scale (sigma^2):": f"{res.scale:.6g}",
        "Converged:": "Yes" if res.converged else "No",
    }
    if res.n_dropped:
        info["Dropped (missing):"] = str(res.n_dropped)
    s.add_dict(info, ncols=2)
    q = np.quantile(res.resid_pearson.to_numpy(), [0, 0.25, 0.5, 0.75, 1])
    s.add_df(pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=["Scaled residuals"]),
             float_format="%.4f")
    s.add_df(random_effects_table(res), index=False)
    _add_fixed_effects(s, res, alpha)
    notes = ["p-values and intervals for fixed effects: Wald z (normal approximation)."]
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s


def _add_fixed_effects(s: Summary, res, alpha: float) -> None:
    z = st.norm.isf(alpha / 2)
    fe = pd.DataFrame({
        "Coef.": res.fe_params, "Std.Err.": res.fe_bse, "z": res.fe_tvalues, "P>|z|": res.fe_pvalues,
        f"[{alpha / 2:g}": res.fe_params - z * res.fe_bse, f"{1 - alpha / 2:g}]": res.fe_params + z * res.fe_bse,
    })
    s.add_df(fe, float_format="%.4f")


def glmm_summary(res, alpha: float = 0.05) -> Summary:
    """Build the summary of a :class:`~interlace.results.glmm.GLMMResult`."""
    s = Summary()
    approx = {0: "PIRLS only (nAGQ = 0)", 1: "Laplace approximation"}.get(
        res.nAGQ, f"adaptive Gauss-Hermite quadrature, nAGQ = {res.nAGQ}")
    s.add_title(f"Generalized linear mixed model fit by maximum likelihood ({approx})")
    info = {
        "Formula:": str(res.model.formula),
        "Family:": f"{res.family.name} ({res.family.link_name})",
        "No. Observations:": str(res.nobs),
        "Groups (levels):": ", ".join(f"{k} ({v})" for k, v in res.ngroups.items()),
        "Log-Likelihood:": f"{res.llf:.4f}",
        "-2 log-likelihood:": f"{res.minus2llf:.4f}",
        "AIC:": f"{res.aic:.4f}",
        "BIC:": f"{res.bic:.4f}",
        "Converged:": "Yes" if res.converged else "No",
    }
    if res.n_dropped:
        info["Dropped (missing):"] = str(res.n_dropped)
    s.add_dict(info, ncols=2)
    q = np.quantile(res.resid_pearson().to_numpy(), [0, 0.25, 0.5, 0.75, 1])
    s.add_df(pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=["Pearson residuals"]),
             float_format="%.4f")
    s.add_df(random_effects_table(res), index=False)
    _add_fixed_effects(s, res, alpha)
    notes = ["p-values and intervals for fixed effects: Wald z; SEs from the Hessian of the deviance."]
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s
