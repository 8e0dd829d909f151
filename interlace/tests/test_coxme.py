"""interlace.coxme: response parsing, errors, prediction, summaries, comparisons, and the
risk-set algebra behind it (checked against the dense n × n Hessian on small data)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import DataError, FormulaError, MissingDataWarning, SingularFitWarning
from interlace.families.cox import parse_surv
from interlace.response.survival import CoxData
from interlace.tests.conftest import REF
from interlace.tests.cox_checks import assert_risk_set_algebra


@pytest.fixture(scope="module")
def lung():
    return pd.read_csv(REF / "coxme" / "lung_inst" / "data.csv")


@pytest.fixture(scope="module")
def retino():
    return pd.read_csv(REF / "coxme" / "retinopathy_id" / "data.csv")


def quiet_fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return interlace.coxme(*args, **kw)


@pytest.fixture(scope="module")
def lung_fit(lung):
    return quiet_fit("Surv(time, status) ~ age + sex + (1 | inst)", lung)


# ------------------------------------------------------------------ response
def test_parse_surv():
    s = parse_surv("Surv(time, status)")
    assert (s.start, s.time, s.event) == (None, ("col", "time"), ("col", "status"))
    assert parse_surv(" Surv( t , d == 2 ) ").names == (None, "t", "d == 2")
    assert parse_surv("Surv(time = t, event = d)").names == (None, "t", "d")
    assert parse_surv("y") is None
    c = parse_surv("Surv(start, stop, status)")
    assert c.counting and c.names == ("start", "stop", "status") and c.columns == ["start", "stop", "status"]
    assert parse_surv("Surv(time = a, time2 = b, event = d)").names == ("a", "b", "d")
    with pytest.raises(FormulaError, match="Surv\\(time, status\\)"):
        parse_surv("Surv(time)")


def test_duration_event_columns_and_groups(lung, lung_fit):
    res = quiet_fit("~ age + sex", lung, groups="inst", duration_col="time", event_col="status")
    np.testing.assert_allclose(res.params, lung_fit.params, rtol=1e-12)
    assert res.llf == pytest.approx(lung_fit.llf, abs=1e-10)


def test_boolean_and_expression_status(lung, lung_fit):
    d = lung.assign(dead=lung["status"] == 1, status2=lung["status"] + 1)
    a = quiet_fit("Surv(time, dead) ~ age + sex + (1 | inst)", d)
    b = quiet_fit("Surv(time, status2 == 2) ~ age + sex + (1 | inst)", d)
    for r in (a, b):
        np.testing.assert_allclose(r.params, lung_fit.params, rtol=1e-12)


def test_boolean_status_with_missing_values(lung):
    d = lung.assign(dead=(lung["status"] == 1).astype(object))
    d.loc[5, "dead"] = None
    with pytest.warns(MissingDataWarning, match="'dead': 1"):
        res = quiet_fit("Surv(time, dead) ~ age + sex + (1 | inst)", d)
    assert res.nobs == 226


def test_missing_times_dropped_and_reported(lung, lung_fit):
    d = lung.copy()
    d.loc[[3, 10], "time"] = np.nan
    d.loc[20, "sex"] = np.nan
    with pytest.warns(MissingDataWarning, match="3 of 227 rows dropped") as rec:
        res = quiet_fit("Surv(time, status) ~ age + sex + (1 | inst)", d)
    msg = str(next(w.message for w in rec if issubclass(w.category, MissingDataWarning)))
    assert "'time': 2" in msg and "'sex': 1" in msg
    assert res.nobs == 224 and res.n_dropped == 3
    assert "Dropped (missing):" in str(res.summary())


@pytest.mark.parametrize("change, match", [
    (lambda d: d.assign(time=d["time"] - 400), "negative"),
    (lambda d: d.assign(status=d["status"] + 1), "must be 0/1.*status == 2"),
    (lambda d: d.assign(status=d["status"] * 3), "must be 0/1.*found \\[3.0\\]"),
    (lambda d: d.assign(status=np.where(d["status"] == 1, "dead", "alive")), "must be 0/1"),
    (lambda d: d.assign(status=0), "no events"),
])
def test_response_errors(lung, change, match):
    with pytest.raises(DataError, match=match):
        interlace.coxme("Surv(time, status) ~ age + sex + (1 | inst)", change(lung))


def test_formula_errors(lung):
    with pytest.raises(FormulaError, match="no response"):
        interlace.coxme("~ age + (1 | inst)", lung)
    with pytest.raises(FormulaError, match="Surv\\(time, status\\)"):
        interlace.coxme("time ~ age + (1 | inst)", lung)
    with pytest.raises(FormulaError, match="at least one random-effects term"):
        interlace.coxme("Surv(time, status) ~ age", lung)
    with pytest.raises(FormulaError, match="use one of the two"):
        interlace.coxme("Surv(time, status) ~ age", lung, groups="inst", duration_col="time", event_col="status")
    with pytest.raises(FormulaError, match="both"):
        interlace.coxme("~ age", lung, groups="inst", duration_col="time")
    with pytest.raises(DataError, match="event_col 'dead'"):
        interlace.coxme("~ age", lung, groups="inst", duration_col="time", event_col="dead")


def test_weights(lung, lung_fit):
    same = quiet_fit("Surv(time, status) ~ age + sex + (1 | inst)", lung, weights=np.ones(len(lung)))
    np.testing.assert_allclose(same.params, lung_fit.params, rtol=1e-12)
    with pytest.raises(DataError, match="positive"):
        interlace.coxme("Surv(time, status) ~ age + sex + (1 | inst)", lung,
                        weights=np.r_[0.0, np.ones(len(lung) - 1)])


def test_offset_shifts_the_coefficient(retino):
    d = retino.assign(off=0.3 * retino["risk"])
    a = interlace.coxme("Surv(futime, status) ~ trt + risk + (1 | id)", d)
    b = interlace.coxme("Surv(futime, status) ~ trt + risk + (1 | id)", d, offset="off")
    np.testing.assert_allclose(b.params["risk"], a.params["risk"] - 0.3, rtol=1e-6)
    assert b.llf == pytest.approx(a.llf, abs=1e-6)
    assert b.predict(d.iloc[:3]).to_numpy() == pytest.approx(a.predict(d.iloc[:3]).to_numpy(), abs=1e-6)


# ------------------------------------------------------------------ results
def test_predict(lung, lung_fit):
    res = lung_fit
    new = pd.DataFrame({"age": [60, 70], "sex": [1, 2], "inst": ["i3", "unseen"]})
    lp = res.predict(new)
    fixed = res.predict(new, include_re=False)
    b = res.random_effects["inst"]
    assert lp.iloc[0] == pytest.approx(60 * res.params["age"] + res.params["sex"] + b["i3"], abs=1e-12)
    assert lp.iloc[1] == pytest.approx(fixed.iloc[1], abs=1e-15)   # unseen level: frailty 0
    np.testing.assert_allclose(res.predict(new, type="risk"), np.exp(lp), rtol=1e-14)
    with pytest.raises(ValueError, match="'lp', 'risk', 'expected', 'survival'"):
        res.predict(new, type="response")


def test_result_quantities(lung_fit):
    res = lung_fit
    hr = res.hazard_ratios()
    assert list(hr.columns) == ["exp(coef)", "lower 95%", "upper 95%"]
    assert np.all(hr["lower 95%"] < hr["exp(coef)"]) and np.all(hr["exp(coef)"] < hr["upper 95%"])
    assert res.aic == pytest.approx(-2 * res.llf + 2 * 3)
    assert res.bic == pytest.approx(-2 * res.llf + np.log(164) * 3)
    assert res.penalty == pytest.approx(res.loglik_fitted - res.loglik_penalized)
    tab = res.coef_table
    assert list(tab.columns) == ["coef", "exp(coef)", "se(coef)", "z", "p"]
    sd = res.random_effects_condsd["inst"]
    assert sd.shape == (18,) and np.all(sd > 0)
    assert res.converged


def test_conditional_variances_match_the_inverse_hessian(retino):
    res = interlace.coxme("Surv(futime, status) ~ trt + risk + (1 | id)", retino)
    H = res.state.hessian
    full = H.inv_uu()                       # (H⁻¹)_uu, dense
    theta = res.theta[0]
    np.testing.assert_allclose(res.random_effects_condsd["id"].to_numpy(), theta * np.sqrt(np.diag(full)),
                               rtol=1e-12)


def test_summary(lung_fit):
    text = str(lung_fit.summary())
    for piece in ("Cox mixed-effects model", "Integrated loglik", "Penalized loglik", "exp(coef)", "inst",
                  "Events, n:", "164, 227", "boundary fit"):
        assert piece in text
    assert "CoxMEResult" in repr(lung_fit)


def test_slope_summary_and_varcorr():
    data = pd.read_csv(REF / "coxme" / "sim_slope" / "data.csv")
    res = interlace.coxme("Surv(time, status) ~ x + (1 + x | g)", data)
    vc = res.coxme_varcorr["g"]
    C = res.random_effects_cov["g"]
    assert vc.loc["x", "Intercept"] == pytest.approx(C.loc["x", "Intercept"] / np.sqrt(C.iloc[0, 0] * C.iloc[1, 1]))
    np.testing.assert_allclose(res.variance_components["g"], np.diag(C), rtol=1e-14)
    assert "Corr" in str(res.summary())
    assert list(res.random_effects["g"].columns) == ["Intercept", "x"]


def test_compare_lr_test_and_anova(lung, lung_fit):
    small = quiet_fit("Surv(time, status) ~ sex + (1 | inst)", lung)
    lr = lung_fit.compare_lr_test(small)
    assert lr.df == 1
    assert lr.statistic == pytest.approx(2 * (lung_fit.llf - small.llf))
    tab = interlace.anova(small=small, full=lung_fit)
    assert list(tab.index) == ["small", "full"]
    assert tab.loc["full", "Chisq"] == pytest.approx(lr.statistic)
    other = quiet_fit("Surv(time, status) ~ sex + (1 | inst)", lung.iloc[:200])
    with pytest.raises(interlace.InterlaceError, match="same data"):
        lung_fit.compare_lr_test(other)


def test_fit_without_fixed_effects(lung):
    """Against coxme(Surv(time, status) ~ (1 | inst), data = lung): reference/coxme_extra/
    lung_frailty_only.json (make_coxme_extra_reference.R); the issue's 1e-3 tolerances, with
    the frailties' absolute floor of 1e-6 (the variance is near zero, as for lung_inst)."""
    ref = json.loads((REF / "coxme_extra" / "lung_frailty_only.json").read_text())
    res = quiet_fit(ref["python_call"]["formula"], lung)
    assert len(res.params) == 0 and res.df_integrated == ref["df"]["integrated"] == 1
    assert abs(res.llf - ref["loglik"]["integrated"]) < 1e-3
    assert abs(res.loglik_penalized - ref["loglik"]["penalized"]) < 1e-3
    assert abs(res.loglik_null - ref["loglik"]["null"]) < 1e-6
    np.testing.assert_allclose(res.variance_components["inst"], ref["variance"], rtol=1e-3)
    np.testing.assert_allclose(res.df_penalized, ref["df"]["penalized"], rtol=1e-3)
    fr = res.random_effects["inst"]
    got = pd.Series(fr.to_numpy().ravel(), index=[str(i) for i in fr.index])
    np.testing.assert_allclose(got[ref["frailties"]["levels"]].to_numpy(), ref["frailties"]["values"],
                               rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------ the algebra
def _small(ties, weights):
    rng = np.random.default_rng(1)
    n = 40
    time = rng.integers(1, 12, n).astype(float)
    status = (rng.random(n) < 0.7).astype(float)
    w = rng.uniform(0.5, 2, n) if weights else None
    return CoxData(time, status, w, ties), rng


@pytest.mark.parametrize("ties", ["efron", "breslow"])
@pytest.mark.parametrize("weights", [False, True])
def test_risk_set_products_match_dense_hessian(ties, weights):
    cd, rng = _small(ties, weights)
    n = cd.n
    eta = rng.normal(size=n) * 0.5
    h = 1e-5
    num = np.array([(cd.loglik(eta + h * e) - cd.loglik(eta - h * e)) / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(cd.state(eta).grad, num, atol=1e-7)
    assert_risk_set_algebra(cd, eta, rng)


def test_sparse_approximation_is_coxmes(retino):
    """H̃: exact diagonal for the sparse levels, zeros between them, everything else exact."""
    mod = interlace.models.coxme.CoxME.from_formula("Surv(futime, status) ~ trt + risk + (1 | id)", retino)
    lap = mod.laplace_objective()
    assert lap.sparse_levels == 197 and lap.engine == "blocked"
    theta = np.array([0.8])
    beta = np.array([-0.5, 0.1])
    u = np.random.default_rng(0).normal(size=lap.q) * 0.3
    st = lap.cd.state(lap.eta(theta, beta, u))
    Hs = lap.hessian(theta, st)
    exact = interlace.objective.coxme.CoxLaplace(mod.random_effects_structure, np.asarray(mod.exog), mod.cox_data,
                                                 sparse=None)
    A = st.hessian_eta()
    Z = lap.Z.toarray()
    X = np.asarray(mod.exog)
    ZAZ = Z.T @ A @ Z
    approx = np.diag(np.diag(ZAZ))
    M = theta[0] ** 2 * approx + np.eye(lap.q)
    assert Hs.ldL2 == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-12)
    np.testing.assert_allclose(Hs.Hub, theta[0] * Z.T @ A @ X, atol=1e-12)
    He = exact.hessian(theta, st)
    assert He.ldL2 == pytest.approx(np.linalg.slogdet(theta[0] ** 2 * ZAZ + np.eye(lap.q))[1], rel=1e-12)
    assert abs(He.ldL2 - Hs.ldL2) > 1e-6   # the approximation is not a no-op


def test_coxme_sparse_rule():
    """≥ 50 levels (> 50 when nested) with some levels holding ≤ 2 % of the rows."""
    from interlace.design import build_random_effects
    from interlace.formula import parse_random
    from interlace.objective.coxme import coxme_sparse_block

    rng = np.random.default_rng(3)
    n = 1000
    d = pd.DataFrame({"g50": np.arange(n) % 50, "g49": np.arange(n) % 49, "big": np.arange(n) % 5,
                      "g60": np.arange(n) % 60, "x": rng.normal(size=n)})
    d["skew"] = np.where(np.arange(n) < 600, 0, np.arange(n) % 60 + 1)   # level 0 holds 60 %
    assert coxme_sparse_block(build_random_effects(parse_random("(1|g50)"), d)).levels.size == 50
    assert coxme_sparse_block(build_random_effects(parse_random("(1|g49)"), d)) is None
    sb = coxme_sparse_block(build_random_effects(parse_random("(1|skew)"), d))
    assert sb.levels.size == 60 and 0 not in sb.levels
    assert coxme_sparse_block(build_random_effects(parse_random("(1|g50)"), d), sparse=None) is None
    # only the first term written is a candidate
    assert coxme_sparse_block(build_random_effects(parse_random(["(1|big)", "(1|g50)"]), d)) is None
    # nested: the innermost factor, strictly more than 50 levels
    assert coxme_sparse_block(build_random_effects(parse_random("(1|big/g50)"), d)) is None   # 50 levels
    sb = coxme_sparse_block(build_random_effects(parse_random("(1|big/g60)"), d))            # 60 levels
    assert sb.levels.size == 60
    assert coxme_sparse_block(build_random_effects(parse_random("(0 + x|g50)"), d)) is None
