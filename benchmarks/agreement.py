"""Worst disagreement with R per quantity, over every committed reference case.

Fits each case of ``interlace/tests/reference/lmer`` (lme4 ``lmer``),
``interlace/tests/reference/glmer`` (lme4 ``glmer``/``glmer.nb``) and
``interlace/tests/reference/clmm`` (ordinal ``clmm``) on every engine and
reports, per quantity, the largest relative error (absolute for log-likelihoods) and the
case where it occurs.  Writes ``docs/agreement.md``.

Run from the repository root::

    python3 benchmarks/agreement.py
"""
from __future__ import annotations

import datetime
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import interlace  # noqa: E402
from interlace.tests import test_clmm_reference as C  # noqa: E402
from interlace.tests import test_glmer_reference as G  # noqa: E402
from interlace.tests import test_lmer_reference as L  # noqa: E402
from interlace.tests.conftest import case_names, fit_lmer_case, load_case  # noqa: E402


def _rel(a, b, floor: float) -> float:
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))) if a.size else 0.0


def _track(worst: dict, key: str, value: float, where: str) -> None:
    if value > worst.get(key, (-1.0, ""))[0]:
        worst[key] = (value, where)


def lmer_case(case: str, engine: str, worst: dict) -> None:
    d = load_case("lmer", case)
    res = fit_lmer_case(d, engine)
    where = f"{case} ({engine})"
    _track(worst, "LMM fixed effects (rel.)", _rel(res.fe_params, d["fixef"]["values"], 1e-8), where)
    _track(worst, "LMM standard errors (rel.)", _rel(res.fe_bse, d["se"], 1e-12), where)
    covs = res.random_effects_cov
    vc = []
    for row in d["varcorr"]:
        if row["grp"] == "Residual":
            vc.append(_rel(res.scale, row["vcov"], 1e-12))
            continue
        C = covs[L._match_group(row["grp"], covs)]
        i = L._coef_key(row["var1"], C.index)
        j = i if row["var2"] is None else L._coef_key(row["var2"], C.index)
        vc.append(abs(C.loc[i, j] - row["vcov"]) / max(abs(row["vcov"]), 1e-6 * res.scale))
    _track(worst, "LMM variance components (rel.)", max(vc), where)
    _track(worst, "LMM log-likelihood / REML criterion (abs.)", abs(res.llf - d["loglik"]), where)
    ours = res.random_effects
    errs = []
    for g, block in d["ranef"].items():
        k = L._match_group(g, ours)
        ob = ours[k].to_frame() if ours[k].ndim == 1 else ours[k]
        idx = {str(v): i for i, v in enumerate(ob.index)}
        rows = [idx[lv] for lv in block["levels"]]  # lme4's level labels (a:A for cask a of batch A)
        for coef, vals in block["columns"].items():
            col = ob.columns[0] if ob.shape[1] == 1 else L._coef_key(coef, ob.columns)
            errs.append(_rel(ob[col].to_numpy()[rows], vals, max(0.01 * np.max(np.abs(vals)), 1e-6 * res.sigma)))
    _track(worst, "LMM BLUPs (rel.; values under 1% of the column's largest: abs./1%)", max(errs), where)
    scale = np.max(np.abs(d["fitted"]))
    _track(worst, "LMM fitted values (abs./max|fitted|)",
           float(np.max(np.abs(res.fittedvalues.to_numpy() - d["fitted"]))) / scale, where)


def glmer_case(case: str, engine: str, worst: dict) -> None:
    d = load_case("glmer", case)
    res = G._fit(d, engine)
    where = f"{case} ({engine})"
    _track(worst, "GLMM fixed effects (rel.)", _rel(res.fe_params, d["fixef"]["values"], 1e-6), where)
    _track(worst, "GLMM standard errors (rel., vs precise Hessian)",
           _rel(res.fe_bse, d.get("se_precise") or d["se"], 1e-12), where)
    _track(worst, "GLMM θ (rel.)", _rel(res.theta, d["theta"], 1e-5), where)
    llf = res.llf - G._saturated_llf(res) if d["nAGQ"] > 1 else res.llf
    _track(worst, "GLMM log-likelihood (abs.)", abs(llf - d["loglik"]), where)
    errs = []
    for g, block in d["ranef"].items():
        ob = res.random_effects[g]
        ob = ob.to_frame() if ob.ndim == 1 else ob
        idx = {str(v): i for i, v in enumerate(ob.index)}
        rows = [idx[lv] for lv in block["levels"]]
        for j, vals in enumerate(block["columns"].values()):
            errs.append(_rel(ob.iloc[rows, j].to_numpy(), vals, 0.01 * np.max(np.abs(vals))))
    _track(worst, "GLMM conditional modes (rel.; same floor as BLUPs)", max(errs), where)


def clmm_case(case: str, engine: str, worst: dict) -> None:
    d = load_case("clmm", case)
    res = C._fit(d, engine)
    where = f"{case} ({engine})"
    _track(worst, "CLMM thresholds and coefficients (rel.)",
           _rel(np.asarray(res.params), d["alpha"]["values"] + d["beta"]["values"], 1e-6), where)
    _track(worst, "CLMM standard errors (rel.)", _rel(np.asarray(res.bse), d["se"], 1e-12), where)
    vc = [abs(res.variance_components[r["grp"], "Intercept"] - r["vcov"]) / r["vcov"] for r in d["variance_components"]]
    _track(worst, "CLMM variance components (rel.)", max(vc), where)
    _track(worst, "CLMM log-likelihood (abs.)", abs(res.llf - d["loglik"]), where)


def nlme_case(case: str, engine: str, worst: dict) -> None:
    """A residual correlation / variance structure against nlme (``reference/nlme``)."""
    from interlace.tests import test_correlation as N

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d, res = N.fit_case(case, engine)
    where = f"{case} ({engine})"
    _track(worst, "nlme: fixed effects (rel.)", _rel(res.fe_params, d["fixef"]["values"], 1e-8), where)
    _track(worst, "nlme: covariance of the fixed effects (rel.)", _rel(res.cov_params(), d["vcov"], 1e-12), where)
    par = (d["corstruct"] or {}).get("value") or (d["varident"] or {}).get("ratios", [None])[1:]
    _track(worst, "nlme: correlation / variance parameter (rel.)", _rel(res.residual_params.iloc[-1:], par[-1:], 1e-12),
           where)
    _track(worst, "nlme: residual SD (rel.)", _rel(res.sigma, d["sigma"], 1e-12), where)
    _track(worst, "nlme: log-likelihood (abs.)", abs(res.llf - d["loglik"]), where)
    block = d["intervals_relstep_1e4"].get("corStruct") or d["intervals_relstep_1e4"].get("varStruct")
    ci = res.residual_conf_int().iloc[-1:]
    _track(worst, "nlme: structure interval bounds (rel.; nlme at .relStep = 1e-4)",
           max(_rel(ci["lower"], block["lower"], 1e-12), _rel(ci["upper"], block["upper"], 1e-12)), where)


def main() -> None:
    engines = ["blocked"] + (["cholmod"] if interlace.linalg.HAVE_CHOLMOD else [])
    worst: dict = {}
    for case in case_names("lmer"):
        for e in engines:
            lmer_case(case, e, worst)
    for case in case_names("glmer"):
        for e in engines:
            glmer_case(case, e, worst)
    for case in case_names("clmm"):
        for e in engines:
            clmm_case(case, e, worst)
    from interlace.tests.test_correlation import CASES as NLME_CASES

    for case in NLME_CASES:
        for e in (engines if case.startswith("lme") else engines[:1]):
            nlme_case(case, e, worst)
    lines = ["# Agreement with R", "",
             f"Measured {datetime.date.today()} by `python3 benchmarks/agreement.py` over "
             f"{len(case_names('lmer'))} lme4 `lmer`, {len(case_names('glmer'))} `glmer` and "
             f"{len(case_names('clmm'))} ordinal `clmm` and {len(NLME_CASES)} nlme `gls`/`lme` reference cases "
             f"(`interlace/tests/reference/`), engines: {', '.join(engines)}.", "",
             "| quantity | worst error | case |", "|---|---:|---|"]
    for key, (val, where) in worst.items():
        lines.append(f"| {key} | {val:.2e} | {where} |")
    text = "\n".join(lines) + "\n"
    (ROOT / "docs" / "agreement.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
