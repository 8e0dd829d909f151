"""statsmodels' t_test / f_test / wald_test / t_test_pairwise on LMMs, against lmerTest's contest.

Reference values: ``reference/lmertest/*.json`` (``make_lmertest_reference.R``): for each
case, ``contest(m, L)`` (contestMD: F, NumDF, DenDF, p) and ``contest(m, L, joint = FALSE)``
(contest1D per row: estimate, SE, df, t, p, 95 % interval), with Satterthwaite's and
Kenward-Roger's df; ``pairwise``: contest1D of every pair of levels of a factor.  Tolerances
as test_satterthwaite_kr.py: df, SE, F 1e-4 relative, p-values 1e-4 absolute.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st
from statsmodels.stats.contrast import ContrastResults, MultiCompResult
from statsmodels.stats.multitest import multipletests

import interlace
from interlace.errors import InterlaceError
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("lmertest")
PAIR_CASES = [c for c in CASES if load_case("lmertest", c).get("pairwise")]
RTOL = 1e-4
P_ATOL = 1e-4
DDF = {"satterthwaite": "satterthwaite", "kenward_roger": "kenward-roger"}


def _methods(d):
    return ["satterthwaite"] + (["kenward_roger"] if d["reml"] else [])


@pytest.fixture(scope="module", params=CASES)
def fitted(request):
    d = load_case("lmertest", request.param)
    py = d["python"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit(py["formula"], case_data(d), random=py["random"], method=py["method"])
    return d, res


def _check_rows(tt: ContrastResults, ref: dict) -> None:
    np.testing.assert_allclose(np.ravel(tt.effect), ref["Estimate"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(np.ravel(tt.sd), ref["Std. Error"], rtol=RTOL)
    np.testing.assert_allclose(np.ravel(tt.df_denom), ref["df"], rtol=RTOL)
    np.testing.assert_allclose(np.ravel(tt.tvalue), ref["t value"], rtol=RTOL)
    np.testing.assert_allclose(np.ravel(tt.pvalue), ref["Pr(>|t|)"], rtol=0, atol=P_ATOL)
    ci = tt.conf_int(alpha=0.05)
    np.testing.assert_allclose(ci[:, 0], ref["lower"], rtol=RTOL)
    np.testing.assert_allclose(ci[:, 1], ref["upper"], rtol=RTOL)


def test_t_test_is_contest1d(fitted):
    d, res = fitted
    L = np.array(d["contest"]["L"])
    for key in _methods(d):
        res.df_method = DDF[key]
        tt = res.t_test(L)
        assert isinstance(tt, ContrastResults) and tt.distribution == "t"
        _check_rows(tt, d["contest"][f"rows_{key}"])
    res.df_method = "satterthwaite"


def test_f_test_and_wald_test_are_contestmd(fitted):
    d, res = fitted
    L = np.array(d["contest"]["L"])
    for key in _methods(d):
        ref = d["contest"][key]
        res.df_method = DDF[key]
        for ft in (res.f_test(L), res.wald_test(L), res.wald_test(L, use_f=True)):
            assert ft.distribution == "F"
            assert float(ft.fvalue) == pytest.approx(ref["F"], rel=RTOL)
            assert int(ft.df_num) == ref["numdf"]
            assert float(ft.df_denom) == pytest.approx(ref["dendf"], rel=RTOL)
            assert float(ft.pvalue) == pytest.approx(ref["p"], abs=P_ATOL)
        chi2 = res.wald_test(L, use_f=False)  # the Wald χ² of the same hypothesis: F × NumDF
        assert chi2.distribution == "chi2"
        assert float(chi2.statistic) == pytest.approx(ref["F"] * ref["numdf"], rel=RTOL)
        assert float(chi2.pvalue) == pytest.approx(st.chi2.sf(ref["F"] * ref["numdf"], ref["numdf"]), abs=P_ATOL)
    res.df_method = "satterthwaite"


def test_coefficient_t_tests_by_name(fitted):
    d, res = fitted
    names = list(res.fe_params.index)
    # one t test per coefficient: statsmodels' string constraints give lmerTest's summary rows
    tt = res.t_test(", ".join(f"{n} = 0" for n in names))
    np.testing.assert_allclose(np.ravel(tt.df_denom), d["satterthwaite"]["df"], rtol=RTOL)
    np.testing.assert_allclose(np.ravel(tt.pvalue), d["satterthwaite"]["p"], rtol=0, atol=P_ATOL)
    np.testing.assert_allclose(np.ravel(tt.pvalue), res.pvalues, rtol=1e-12)
    np.testing.assert_allclose(tt.conf_int(), res.conf_int().to_numpy(), rtol=1e-12)
    if d["reml"]:
        res.df_method = "kenward-roger"
        kr = d["kenward_roger"]
        # lmerTest's summary(m, ddf = "Kenward-Roger"): adjusted SE and t, KR df
        np.testing.assert_allclose(res.fe_bse, kr["se"], rtol=RTOL)
        np.testing.assert_allclose(res.fe_tvalues, kr["t"], rtol=RTOL)
        np.testing.assert_allclose(res.fe_df, kr["df"], rtol=RTOL)
        np.testing.assert_allclose(res.pvalues, kr["p"], rtol=0, atol=P_ATOL)
        # statsmodels' bse / tvalues / cov_params() stay lme4's vcov (lmerTest's vcov(m) is too)
        np.testing.assert_allclose(res.bse, d["satterthwaite"]["se"], rtol=RTOL)
        np.testing.assert_allclose(res.cov_params().to_numpy(), np.array(d["vcov"]), rtol=RTOL, atol=1e-12)
        res.df_method = "satterthwaite"


@pytest.mark.parametrize("case", PAIR_CASES)
def test_t_test_pairwise(case):
    d = load_case("lmertest", case)
    py = d["python"]
    pw = d["pairwise"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit(py["formula"], case_data(d), random=py["random"], method=py["method"])
    for key in _methods(d):
        res.df_method = DDF[key]
        mc = res.t_test_pairwise(pw["term"], method=["hs", "bonferroni"])
        assert isinstance(mc, MultiCompResult)
        assert list(mc.result_frame.index) == pw["labels"] == mc.contrast_labels
        np.testing.assert_allclose(mc.contrasts, np.array(pw["L"]), atol=0)
        ref = pw[f"rows_{key}"]
        _check_rows(res.t_test(mc.contrasts), ref)
        frame = mc.result_frame
        np.testing.assert_allclose(frame["P>|t|"], ref["Pr(>|t|)"], rtol=0, atol=P_ATOL)
        for m in ("hs", "bonferroni"):
            np.testing.assert_allclose(frame[f"pvalue-{m}"], multipletests(ref["Pr(>|t|)"], method=m)[1],
                                       rtol=0, atol=2 * P_ATOL)


def test_z_tests_and_inputs():
    sleep = interlace.datasets.load("sleepstudy")
    res = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    sat = load_case("lmertest", "sleepstudy_reml")["satterthwaite"]
    tt = res.t_test("Days = 0")
    assert float(tt.df_denom) == pytest.approx(sat["df"][1], rel=RTOL)
    z = res.t_test("Days = 0", use_t=False)  # statsmodels' switch: Wald z with the same covariance
    assert z.distribution == "norm"
    assert float(np.ravel(z.pvalue)[0]) == pytest.approx(2 * st.norm.sf(abs(sat["t"][1])), rel=1e-4)
    assert res.df_method == "satterthwaite"  # use_t=False in one call does not change the result
    # dict / Series / (matrix, values) / rhs in the string
    a = res.t_test({"Days": 1.0})
    b = res.t_test((np.array([[0.0, 1.0]]), np.array([10.0])))
    c = res.t_test("Days = 10")
    one = lambda x: float(np.ravel(x)[0])  # noqa: E731
    assert one(a.effect) == pytest.approx(res.fe_params["Days"])
    assert one(b.tvalue) == pytest.approx(one(c.tvalue), rel=1e-12)
    assert one(b.tvalue) == pytest.approx((res.fe_params["Days"] - 10) / res.fe_bse["Days"], rel=1e-10)
    with pytest.raises(InterlaceError, match="coefficients are"):
        res.t_test("days = 0")
    with pytest.raises(InterlaceError, match="no term 'Subject'"):
        res.t_test_pairwise("Subject")
    with pytest.raises(InterlaceError, match="numeric"):
        res.t_test_pairwise("Days")
    res.df_method = "normal"
    assert res.f_test("Days = 0").pvalue == pytest.approx(st.chi2.sf(sat["t"][1] ** 2, 1), rel=1e-4)
    assert res.wald_test("Days = 0").distribution == "chi2"  # use_t is False: statsmodels' default χ²


def test_summary2_df_model_and_predict_exog():
    sleep = interlace.datasets.load("sleepstudy")
    res = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    assert str(res.summary2()) == str(res.summary())
    assert "my title" in str(res.summary2(title="my title"))
    assert res.df_model == 1.0 and res.df_resid == 178
    new = sleep.iloc[:5]
    np.testing.assert_array_equal(res.predict(exog=new), res.predict(new))
    X = np.column_stack([np.ones(5), new["Days"]])
    np.testing.assert_allclose(res.predict(exog=X, transform=False), X @ res.fe_params.to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(res.predict(exog=X, transform=False), res.predict(new, include_re=False),
                               rtol=1e-14)
    with pytest.raises(InterlaceError, match="not both"):
        res.predict(new, exog=new)
    for other in (interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                                  interlace.datasets.load("cbpp"), family="binomial"),
                  interlace.clmm("rating ~ temp + contact + (1 | judge)", interlace.datasets.load("wine"))):
        data = other.model.data.frame.iloc[:4]
        assert str(other.summary2()) == str(other.summary())
        np.testing.assert_array_equal(np.asarray(other.predict(exog=data)), np.asarray(other.predict(data)))


def test_get_prediction():
    sleep = interlace.datasets.load("sleepstudy")
    res = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    new = sleep.iloc[[0, 15]].assign(Subject=[308, 999])
    for include_re in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", interlace.UnseenLevelWarning)
            pr = res.get_prediction(new, include_re=include_re)
            conf = res.predict(new, include_re=include_re, interval="confidence")
            obs = res.predict(new, include_re=include_re, interval="prediction")
        frame = pr.summary_frame(alpha=0.05)
        np.testing.assert_allclose(pr.predicted_mean, conf["predicted"], rtol=1e-14)
        np.testing.assert_allclose(frame["mean_se"], conf["se"], rtol=1e-12)
        np.testing.assert_allclose(frame[["mean_ci_lower", "mean_ci_upper"]].to_numpy(),
                                   conf[["lower", "upper"]].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(frame[["obs_ci_lower", "obs_ci_upper"]].to_numpy(),
                                   obs[["lower", "upper"]].to_numpy(), rtol=1e-12)
    fitted = res.get_prediction()
    np.testing.assert_allclose(fitted.predicted_mean, res.fittedvalues, rtol=1e-14)
