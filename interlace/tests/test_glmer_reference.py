"""Every lme4 glmer reference case (``reference/glmer/*.json``, made by ``make_glmer_reference.R``).

The references are lme4 fits with PIRLS converged (tolPwrss = 1e-12) and tight optimizer
tolerances; lme4's default tolPwrss = 1e-7 leaves its Laplace deviance off by up to ~5e-4
(see test_glmer_cbpp.py).  Tolerances (issue: GLMMs): fixed effects, SEs, variance
components and conditional modes 1e-3 relative; log-likelihood 1e-3 absolute.
For nAGQ > 1 lme4's logLik omits the saturated log-likelihood; interlace reports the full
one, and the comparison adds it back.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("glmer")
RTOL = 1e-3


def _as_factors(data: pd.DataFrame, d: dict) -> pd.DataFrame:
    """Numeric-coded columns that R used as factors (seen in lme4's coefficient names) become strings."""
    data = data.copy()
    for col in data.columns:
        if pd.api.types.is_numeric_dtype(data[col]):
            vals = {str(v) for v in data[col].dropna().unique()}
            if any(n.startswith(col) and n[len(col):] in vals for n in d["fixef"]["names"]):
                data[col] = data[col].astype(str)
    return data


def glmer_inputs(d: dict) -> tuple[str, pd.DataFrame]:
    """A glmer case's formula (``cbind(successes, failures) ~ ...`` for a two-column response) and data
    (R's factors as strings)."""
    py = d["python"]
    formula = py["formula"]
    if py["response"]:
        rhs = formula.split("~", 1)[1]
        formula = f"cbind({py['response']['successes']}, {py['response']['failures']}) ~ {rhs}"
    return formula, _as_factors(case_data(d), d)


def _fit(d: dict, engine: str):
    py = d["python"]
    formula, data = glmer_inputs(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if py["family"] == "negative_binomial":
            return interlace.glmer_nb(formula, data, link=py["link"], random=py["random"], weights=py["weights"],
                                      offset=py["offset"], nAGQ=py["nAGQ"], engine=engine)
        return interlace.glmer(formula, data, family=py["family"], link=py["link"], random=py["random"],
                               weights=py["weights"], offset=py["offset"], nAGQ=py["nAGQ"], engine=engine)


@pytest.fixture(scope="module", params=[(c, e) for c in CASES for e in ("blocked", "cholmod")],
                ids=lambda p: "-".join(p))
def fitted(request):
    case, engine = request.param
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    d = load_case("glmer", case)
    return d, _fit(d, engine)


def _saturated_llf(res) -> float:
    y = np.asarray(res.model.endog, float)
    fam = res.family
    mu = np.clip(y, 1e-15, 1 - 1e-15) if fam.name == "binomial" else np.maximum(y, 1e-300)
    return float(np.sum(fam.loglik_obs(y, mu, res.model.weights)))


def test_fixed_effects(fitted):
    d, res = fitted
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL, atol=1e-6)
    # SEs: lme4's Hessian recomputed without PIRLS noise where available ("se_precise" in
    # make_glmer_reference.R); lme4's own vcov, from a noisier devfun, is checked at 1 %
    se = d.get("se_precise") or d["se"]
    np.testing.assert_allclose(res.fe_bse.to_numpy(), se, rtol=RTOL)
    np.testing.assert_allclose(res.fe_bse.to_numpy(), d["se"], rtol=1e-2)


def test_likelihood(fitted):
    d, res = fitted
    llf = res.llf - _saturated_llf(res) if d["nAGQ"] > 1 else res.llf
    assert abs(llf - d["loglik"]) < 1e-3
    assert res.df_modelwc == d["df"]
    assert res.nobs == d["nobs"]
    if d["nAGQ"] <= 1:
        assert abs(res.aic - d["aic"]) < 2e-3
        assert abs(res.bic - d["bic"]) < 2e-3


def test_variance_components(fitted):
    d, res = fitted
    np.testing.assert_allclose(res.theta, d["theta"], rtol=RTOL, atol=1e-5)
    vc = res.varcorr
    ours = {(r.grp, r.var1, None if pd.isna(r.var2) else r.var2): r.vcov for r in vc.itertuples()}
    for row in d["varcorr"]:
        if row["grp"] == "Residual":
            np.testing.assert_allclose(res.sigma ** 2, row["vcov"], rtol=RTOL)
            continue
        key = (row["grp"], "Intercept" if row["var1"] == "(Intercept)" else row["var1"],
               None if row["var2"] is None else ("Intercept" if row["var2"] == "(Intercept)" else row["var2"]))
        np.testing.assert_allclose(ours[key], row["vcov"], rtol=RTOL, atol=1e-8)
    if "nb_theta" in d and d["nb_theta"] is not None:
        np.testing.assert_allclose(res.nb_theta, d["nb_theta"], rtol=RTOL)


def test_conditional_modes(fitted):
    d, res = fitted
    ours, sds = res.random_effects, res.random_effects_condsd
    for g, block in d["ranef"].items():
        ob, osd = ours[g], sds[g]
        ob = ob.to_frame() if ob.ndim == 1 else ob
        osd = osd.to_frame() if osd.ndim == 1 else osd
        idx = {str(v): i for i, v in enumerate(ob.index)}
        rows = [idx[lv] for lv in block["levels"]]
        assert len(rows) == len(ob)
        for j, (coef, vals) in enumerate(block["columns"].items()):
            np.testing.assert_allclose(ob.iloc[rows, j].to_numpy(), vals, rtol=RTOL, atol=1e-4)
            np.testing.assert_allclose(osd.iloc[rows, j].to_numpy(), block["condsd"][coef], rtol=RTOL, atol=1e-5)


def test_fitted_residuals_predict(fitted):
    d, res = fitted
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), d["fitted"], rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.predict(type="link").to_numpy()[:10], d["eta_first10"], rtol=RTOL, atol=1e-4)
    r = d["residuals"]
    np.testing.assert_allclose(res.resid_response().to_numpy()[:10], r["response"], rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.resid_pearson().to_numpy()[:10], r["pearson"], rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.resid_deviance().to_numpy()[:10], r["deviance"], rtol=RTOL, atol=1e-5)
    nd = _as_factors(pd.DataFrame(d["predict"]["newdata"]), d)
    p = d["predict"]
    np.testing.assert_allclose(res.predict(nd, type="link").to_numpy(), p["link_with_re"], rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(res.predict(nd, type="link", include_re=False).to_numpy(), p["link_fixed_only"],
                               rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(res.predict(nd).to_numpy(), p["response_with_re"], rtol=RTOL, atol=1e-5)
