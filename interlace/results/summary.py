"""statsmodels-style summary tables carrying lme4's summary information."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st
from statsmodels.iolib.summary2 import Summary

__all__ = ["lmm_summary", "glmm_summary", "random_effects_table", "residual_quartiles", "varcorr_rows"]


def residual_quartiles(values: pd.Series) -> np.ndarray:
    """Min, quartiles and max of residuals (the summaries' residual row)."""
    return np.quantile(values.to_numpy(), [0, 0.25, 0.5, 0.75, 1])


def varcorr_rows(res: Any) -> Iterator[tuple[str, str, float, float, np.ndarray]]:
    """Per random coefficient: (group name on its first row else "", coefficient, variance, SD,
    correlations with the group's earlier coefficients)."""
    for name, C in res.random_effects_cov.items():
        sd = np.sqrt(np.diag(C.values))
        for i, coef in enumerate(C.index):
            with np.errstate(invalid="ignore", divide="ignore"):
                r = C.values[i, :i] / (sd[i] * sd[:i])
            yield (name if i == 0 else "", coef, float(C.values[i, i]), float(sd[i]), r)


def random_effects_table(res: Any) -> pd.DataFrame:
    """Groups / Name / Variance / Std.Dev. / Corr rows, as lme4 prints ``VarCorr``."""
    rows = []
    for name, coef, var, sd, r in varcorr_rows(res):
        corr = " ".join("  .  " if np.isnan(v) else f"{v:5.2f}" for v in r)
        rows.append((name, coef, f"{var:.4g}", f"{sd:.4g}", corr))
    if res._residual_variance is not None:
        v = res._residual_variance
        rows.append(("Residual", "", f"{v:.4g}", f"{np.sqrt(v):.4g}", ""))
    return pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])


def residual_structure_table(res: Any) -> pd.DataFrame | None:
    """Structure / Group / Parameter / Estimate / 95% interval rows of a residual structure (None without one)."""
    model = res.model
    if getattr(model, "residual", None) is None:
        return None
    ci = res.residual_conf_int()
    rows = []
    for part in model.residual.parts:
        spec = part.spec
        within = getattr(spec, "by", None) or getattr(spec, "group", None) or "(all rows)"
        how = f"{spec.name} ({spec.r_name})"
        if getattr(spec, "time", None):
            how += f", time {spec.time}"
        for name in part.param_names:
            key = f"{spec.r_name}: {name}"
            r = ci.loc[key]
            rows.append((how, within, name, f"{r['est.']:.4g}", f"[{r['lower']:.4g}, {r['upper']:.4g}]"))
    return pd.DataFrame(rows, columns=["Residual structure", "Within / by", "Parameter", "Estimate",
                                       "95% Wald interval"])


def lmm_info(res: Any) -> dict:
    """The header of an LMM summary: formula, method, sizes, criterion, llf, AIC, BIC, σ², convergence."""
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
    return info


def lmm_summary(res: Any, alpha: float = 0.05) -> Summary:
    """Build the summary of a :class:`~interlace.results.lmm.CrossedLMEResult`."""
    s = Summary()
    kind = "REML" if res.reml else "maximum likelihood"
    s.add_title(f"Linear mixed model fit by {kind} (interlace CrossedLME)")
    info = lmm_info(res)
    s.add_dict(info, ncols=2)
    q = res._kept("scaled_residual_quantiles", lambda: residual_quartiles(res.resid_pearson))
    s.add_df(pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=["Scaled residuals"]),
             float_format="%.4f")
    s.add_df(random_effects_table(res), index=False)
    structure = residual_structure_table(res)
    if structure is not None:
        s.add_df(structure, index=False)
    notes = [_add_lmm_fixed_effects(s, res, alpha)]
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s


_LMM_FE_NOTES = {
    "satterthwaite": "Fixed effects: t tests with Satterthwaite's degrees of freedom (lmerTest's "
                     "summary); intervals use the same t quantiles.",
    "kenward-roger": "Fixed effects: t tests with Kenward-Roger degrees of freedom and adjusted "
                     "standard errors (lmerTest's summary(m, ddf = \"Kenward-Roger\")); intervals use "
                     "the same t quantiles.",
    "containment": "Fixed effects: t tests with nlme's containment degrees of freedom; intervals use "
                   "the same t quantiles.",
    "normal": "p-values and intervals for fixed effects: Wald z (normal approximation).",
}


def _add_lmm_fixed_effects(s: Summary, res, alpha: float) -> str:
    """The LMM fixed-effects table, t tests with ``res.df_method`` (z tests for "normal"); returns its note."""
    method = res.df_method
    if method == "normal":
        _add_fixed_effects(s, res, alpha)
        return _LMM_FE_NOTES[method]
    tab = res._fe_tests()
    ci = res.fe_conf_int(alpha)
    label = {"satterthwaite": "df Satt.", "kenward-roger": "df KR", "containment": "df"}[method]
    fe = pd.DataFrame({
        "Coef.": tab["Estimate"], "Std.Err.": tab["Std. Error"], label: tab["df"],
        "t": tab["t value"], "P>|t|": tab["Pr(>|t|)"],
        f"[{alpha / 2:g}": ci["lower"], f"{1 - alpha / 2:g}]": ci["upper"],
    })
    s.add_df(fe, float_format="%.4f")
    return _LMM_FE_NOTES[method]


def _add_fixed_effects(s: Summary, res, alpha: float) -> None:
    z = st.norm.isf(alpha / 2)
    fe = pd.DataFrame({
        "Coef.": res.fe_params, "Std.Err.": res.fe_bse, "z": res.fe_tvalues, "P>|z|": res.fe_pvalues,
        f"[{alpha / 2:g}": res.fe_params - z * res.fe_bse, f"{1 - alpha / 2:g}]": res.fe_params + z * res.fe_bse,
    })
    s.add_df(fe, float_format="%.4f")


def _ml_fit_info(res: Any, family: tuple[str, str], after_llf: dict, after_bic: dict) -> dict:
    """The fit-information block of the GLMM and CLMM summaries."""
    return {"Formula:": str(res.model.formula), family[0]: family[1], "No. Observations:": str(res.nobs),
            "Groups (levels):": ", ".join(f"{k} ({v})" for k, v in res.ngroups.items()),
            "Log-Likelihood:": f"{res.llf:.4f}", **after_llf, "AIC:": f"{res.aic:.4f}", "BIC:": f"{res.bic:.4f}",
            **after_bic, "Converged:": "Yes" if res.converged else "No"}


def glmm_summary(res: Any, alpha: float = 0.05) -> Summary:
    """Build the summary of a :class:`~interlace.results.glmm.GLMMResult`."""
    s = Summary()
    approx = {0: "PIRLS only (nAGQ = 0)", 1: "Laplace approximation"}.get(
        res.nAGQ, f"adaptive Gauss-Hermite quadrature, nAGQ = {res.nAGQ}")
    s.add_title(f"Generalized linear mixed model fit by maximum likelihood ({approx})")
    info = _ml_fit_info(res, ("Family:", f"{res.family.name} ({res.family.link_name})"),
                        {"-2 log-likelihood:": f"{res.minus2llf:.4f}"}, {})
    if res.n_dropped:
        info["Dropped (missing):"] = str(res.n_dropped)
    s.add_dict(info, ncols=2)
    rows_kept = getattr(res, "keeps_rows", True)  # a chunked fit (interlace.scale) has no rows
    if rows_kept:
        q = res._kept("pearson_residual_quantiles", lambda: residual_quartiles(res.resid_pearson()))
        s.add_df(pd.DataFrame([q], columns=["Min", "1Q", "Median", "3Q", "Max"], index=["Pearson residuals"]),
                 float_format="%.4f")
    s.add_df(random_effects_table(res), index=False)
    _add_fixed_effects(s, res, alpha)
    notes = ["p-values and intervals for fixed effects: Wald z; SEs from the Hessian of the deviance."]
    if not rows_kept:
        notes.append("Pearson residuals are not shown: the rows are not kept on the client (chunked data).")
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s


def clmm_summary(res: Any, alpha: float = 0.05) -> Summary:
    """Build the summary of a :class:`~interlace.results.clmm.CLMMResult` (ordinal's ``summary(clmm)``)."""
    s = Summary()
    approx = "Laplace approximation" if res.nAGQ <= 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {res.nAGQ}"
    s.add_title(f"Cumulative link mixed model fitted with the {approx}")
    info = _ml_fit_info(res, ("Link / threshold:", f"{res.link} / {res.threshold}"), {},
                        {"cond.H:": f"{res.cond_H:.2e}"})
    s.add_dict(info, ncols=2)
    s.add_df(random_effects_table(res), index=False)
    tab = res.coef_table
    na = res.model.n_alpha
    s.add_df(tab.iloc[na:], float_format="%.4f")
    s.add_df(tab.iloc[:na], float_format="%.4f")
    notes = ["Coefficients: Wald z; SEs from the Hessian of the log-likelihood. Threshold parameters below."]
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s
