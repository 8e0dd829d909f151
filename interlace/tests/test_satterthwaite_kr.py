"""Denominator degrees of freedom against lmerTest 3.1-3 and pbkrtest 0.5.2.

Reference values: ``reference/lmertest/*.json``, made by ``make_lmertest_reference.R``.
Tolerances (the README's LMM promise): df, standard errors, F, sums of squares and
the Kenward-Roger adjusted covariance within 1e-4 relative, p-values within 1e-4
absolute.  lmerTest's ``vcov_varpar`` (a numDeriv Hessian) is compared at 1e-3.

The real-data cases have a Kenward-Roger correction ``vcovAdj - vcov`` of at most 0.3 %
of ``vcov`` (0 for cake and sleepstudy), so they hardly test it; the simulated
``kr_*`` cases (few, unequal groups; between-group factors; a random slope) have
corrections of 3-14 % of the variances (``kr_correction`` in their JSON), and
:func:`test_kr_correction` compares the correction itself.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import InterlaceError
from interlace.inference.marginal import MarginalDerivatives
from interlace.inference.satterthwaite import Satterthwaite
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("lmertest")
DF_RTOL = 1e-4
F_RTOL = 1e-4
P_ATOL = 1e-4
V_RTOL = 1e-4
KR_CASES = [c for c in CASES if c.startswith("kr_")]
SIZEABLE_KR = [c for c in CASES if load_case("lmertest", c)["reml"]
               and np.max(np.abs(load_case("lmertest", c)["kr_correction"])) >= 1e-3]
DDF = {"satterthwaite": "satterthwaite", "kenward_roger": "kenward-roger"}


def _fit(d, **kw):
    py = d["python"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit(py["formula"], case_data(d), random=py["random"], method=py["method"], **kw)


@pytest.fixture(scope="module", params=CASES)
def fitted(request):
    d = load_case("lmertest", request.param)
    return d, _fit(d)


def _methods(d):
    return ["satterthwaite"] + (["kenward_roger"] if d["reml"] else [])


def test_estimates_in_r_order(fitted):
    d, res = fitted
    assert len(res.fe_params) == len(d["coef_names"])
    np.testing.assert_allclose(res.fe_params, d["satterthwaite"]["estimate"], rtol=1e-5, atol=1e-8)


def test_coefficient_tests(fitted):
    d, res = fitted
    for key in _methods(d):
        ref = d[key]
        tab = res._fe_tests(DDF[key])
        np.testing.assert_allclose(tab["df"], ref["df"], rtol=DF_RTOL)
        np.testing.assert_allclose(tab["Std. Error"], ref["se"], rtol=1e-4)
        np.testing.assert_allclose(tab["t value"], ref["t"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(tab["Pr(>|t|)"], ref["p"], rtol=0, atol=P_ATOL)


def test_default_is_satterthwaite(fitted):
    d, res = fitted
    assert res.df_method == "satterthwaite"
    np.testing.assert_allclose(res.fe_df, d["satterthwaite"]["df"], rtol=DF_RTOL)
    np.testing.assert_allclose(res.fe_pvalues, d["satterthwaite"]["p"], rtol=0, atol=P_ATOL)


def test_vcov_kr(fitted):
    d, res = fitted
    if not d["reml"]:
        with pytest.raises(InterlaceError, match="REML"):
            _ = res.cov_fe_kr
        return
    ref = np.array(d["vcov_kr"])
    np.testing.assert_allclose(res.cov_fe_kr.to_numpy(), ref, rtol=V_RTOL, atol=1e-9 * np.abs(ref).max())


def test_vcov(fitted):
    """The unadjusted covariance Φ (lme4's ``vcov``), the base of the KR adjustment."""
    d, res = fitted
    ref = np.array(d["vcov"])
    np.testing.assert_allclose(res.cov_fe.to_numpy(), ref, rtol=V_RTOL, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("case", KR_CASES)
def test_kr_fixture_has_a_sizeable_correction(case):
    """The kr_* fixtures exist to guard the correction: R's must stay several percent."""
    d = load_case("lmertest", case)
    corr = np.abs(d["kr_correction"])
    assert corr.max() > 0.025
    V, Va = np.array(d["vcov"]), np.array(d["vcov_kr"])
    np.testing.assert_allclose(np.diag(Va - V) / np.diag(V), d["kr_correction"], rtol=1e-10)


@pytest.mark.parametrize("case", SIZEABLE_KR)
def test_kr_correction(case):
    """Φ_A − Φ against pbkrtest's vcovAdj(m) − vcov(m), to 1e-4 of its own size.

    A 1 % error in the correction fails here even where the correction is a small
    part of Φ_A.  Only cases where R's correction is at least 0.1 % of vcov: below
    that (cake and sleepstudy: 0 up to round-off) the difference of R's two matrices
    is not known to 1e-4 of itself.
    """
    d = load_case("lmertest", case)
    res = _fit(d)
    ref = np.array(d["vcov_kr"]) - np.array(d["vcov"])
    ours = res.cov_fe_kr.to_numpy() - res.cov_fe.to_numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_vcov_varpar(fitted):
    """lmerTest's 2 H⁻¹ in (θ, σ) (numDeriv there, exact here)."""
    d, res = fitted
    ref = np.array(d["varpar"]["vcov_varpar"])
    ours = res._ddf_engine("satterthwaite").vcov_varpar
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-5 * np.abs(ref).max())


def _check_ftable(ours: pd.DataFrame, rows: list[dict]):
    assert len(ours) == len(rows)
    for (_, o), r in zip(ours.iterrows(), rows):
        assert int(o["NumDF"]) == r["numdf"]
        np.testing.assert_allclose(o["DenDF"], r["dendf"], rtol=DF_RTOL)
        np.testing.assert_allclose(o["F value"], r["F"], rtol=F_RTOL)
        np.testing.assert_allclose(o["Sum Sq"], r["sum_sq"], rtol=F_RTOL)
        np.testing.assert_allclose(o["Mean Sq"], r["mean_sq"], rtol=F_RTOL)
        assert abs(o["Pr(>F)"] - r["p"]) < P_ATOL


@pytest.mark.parametrize("type_", ["3", "1"])
def test_anova(fitted, type_):
    d, res = fitted
    for key in _methods(d):
        ours = res.anova(type=int(type_), df_method=DDF[key])
        _check_ftable(ours, d["anova"][type_][key])
        label = "Satterthwaite" if key == "satterthwaite" else "Kenward-Roger"
        assert ours.attrs["heading"].startswith(f"Type {'III' if type_ == '3' else 'I'} ")
        assert label in ours.attrs["heading"]


@pytest.mark.parametrize("type_", ["3", "1"])
def test_anova_hypotheses(fitted, type_):
    """The contrast matrices are lmerTest's (attr(anova(m), "hypotheses"))."""
    from interlace.inference.anova import contrasts_type1, contrasts_type3

    d, res = fitted
    Ls = (contrasts_type3 if type_ == "3" else contrasts_type1)(res.model)
    rows = d["anova"][type_]["satterthwaite"]
    for L, r in zip(Ls.values(), rows):
        np.testing.assert_allclose(L, np.array(r["L"]), rtol=1e-6, atol=1e-6)


def test_contest(fitted):
    d, res = fitted
    ct = d["contest"]
    L = np.array(ct["L"])
    for key in _methods(d):
        _check_ftable(res.contest(L, df_method=DDF[key]), [ct[key]])
        rows = res.contest(L, df_method=DDF[key], joint=False)
        ref = ct[f"rows_{key}"]
        np.testing.assert_allclose(rows["Estimate"], ref["Estimate"], rtol=1e-5)
        np.testing.assert_allclose(rows["df"], ref["df"], rtol=DF_RTOL)
        np.testing.assert_allclose(rows["lower"], ref["lower"], rtol=1e-4)
        np.testing.assert_allclose(rows["upper"], ref["upper"], rtol=1e-4)
        np.testing.assert_allclose(rows["Pr(>|t|)"], ref["Pr(>|t|)"], rtol=0, atol=P_ATOL)


def test_numeric_hessian_matches_analytic(fitted):
    """The finite-difference path (used for large q) gives the same df."""
    _, res = fitted
    num = Satterthwaite(res._results, hessian="numeric")
    ana = res._ddf_engine("satterthwaite")
    np.testing.assert_allclose(num.vcov_varpar, ana.vcov_varpar, rtol=1e-4, atol=1e-8 * np.abs(ana.vcov_varpar).max())
    p = len(res.fe_params)
    np.testing.assert_allclose([num.df(np.eye(p)[i]) for i in range(p)], res.fe_df, rtol=1e-5)


# ---------------------------------------------------------------------------- API
def _sleep(**kw):
    return interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)", **kw)


def test_marginal_derivatives_match_dense():
    """P, Q, traces and response terms against dense V on a crossed model with weights."""
    pen = pd.read_csv(interlace.tests.conftest.ROOT / "interlace/tests/reference/data/penicillin_x.csv")
    w = 1 + (np.arange(len(pen)) % 3) / 2
    res = interlace.fit("diameter ~ x", pen, groups=["plate", "sample"], weights=w)
    md = MarginalDerivatives(res._results, chunk=5)
    model = res.model
    re = model.random_effects_structure
    X = np.asarray(model.exog)
    Z = re.Z().toarray()
    G = []
    for k, E in md.params[:-1]:
        a, b = re.col_offsets[k], re.col_offsets[k + 1]
        G.append(Z[:, a:b] @ np.kron(np.eye(re.terms[k].nlevels), E) @ Z[:, a:b].T)
    G.append(np.diag(1 / w))
    Lam = re.Lambda(res.theta).toarray()
    Vi = np.linalg.inv(res.scale * (Z @ Lam @ Lam.T @ Z.T + np.diag(1 / w)))
    Phi = np.linalg.inv(X.T @ Vi @ X)
    r = Vi @ (np.asarray(model.endog) - X @ np.asarray(res.params))
    P = Vi - Vi @ X @ Phi @ X.T @ Vi

    def close(ours, dense):
        dense = np.asarray(dense)
        np.testing.assert_allclose(ours, dense, rtol=1e-7, atol=1e-10 * np.abs(dense).max())

    close(md.Phi, Phi)
    close(md.P, [-X.T @ Vi @ g @ Vi @ X for g in G])
    close(md.Q, [[X.T @ Vi @ g @ Vi @ h @ Vi @ X for h in G] for g in G])
    close(md.Ktrace, [[np.trace(Vi @ g @ Vi @ h) for h in G] for g in G])
    close(md.trVG, [np.trace(Vi @ g) for g in G])
    close(md.rGr, [r @ g @ r for g in G])
    close(md.rGPGr, [[r @ g @ P @ h @ r for h in G] for g in G])


def test_df_method_argument():
    res = _sleep(df_method="Kenward-Roger")
    assert res.df_method == "kenward-roger"
    np.testing.assert_allclose(res.fe_df, 17.0, rtol=1e-6)
    z = _sleep(df_method="normal")
    assert np.all(np.isinf(z.fe_df))
    np.testing.assert_allclose(z.fe_pvalues, z.pvalues)
    np.testing.assert_allclose(z.fe_conf_int().to_numpy(), z.conf_int().to_numpy())
    with pytest.raises(InterlaceError, match="df_method"):
        _sleep(df_method="residual")
    with pytest.raises(InterlaceError, match="REML"):
        _sleep(method="ML", df_method="kenward-roger")


def test_statsmodels_names_follow_df_method():
    res = _sleep()
    assert res.use_t
    np.testing.assert_allclose(res.pvalues, res.fe_pvalues, rtol=1e-14)
    np.testing.assert_allclose(res.conf_int().to_numpy(), res.fe_conf_int().to_numpy(), rtol=1e-14)
    res.use_t = False  # statsmodels' switch to z tests selects df_method="normal"
    assert res.df_method == "normal"
    np.testing.assert_allclose(res.pvalues, 2 * __import__("scipy").stats.norm.sf(np.abs(res.tvalues)))


def test_conf_int_uses_t_quantiles():
    res = _sleep()
    import scipy.stats as st

    ci = res.fe_conf_int(alpha=0.1)
    q = st.t.isf(0.05, res.fe_df)
    np.testing.assert_allclose(ci["upper"] - res.fe_params, q * res.fe_bse)


def test_summary_names_the_method():
    res = _sleep()
    text = str(res.summary())
    assert "df Satt." in text and "P>|t|" in text and "Satterthwaite" in text
    res.df_method = "kr"  # through the wrapper, a setting of the results
    assert res._results.df_method == "kenward-roger"
    assert "df KR" in str(res.summary())
    res.df_method = "normal"
    assert "P>|z|" in str(res.summary())


def test_contest_inputs():
    res = _sleep()
    a = res.contest({"Days": 1.0}, rhs=10)
    b = res.contest([0.0, 1.0], rhs=10)
    pd.testing.assert_frame_equal(a, b)
    one = res.contest(pd.DataFrame({"Days": [1.0, 0.0], "Intercept": [0.0, 1.0]}, index=["slope", "icpt"]),
                      joint=False)
    assert list(one.index) == ["slope", "icpt"]
    np.testing.assert_allclose(one["df"], res.fe_df[["Days", "Intercept"]])
    with pytest.raises(InterlaceError, match="unknown coefficient"):
        res.contest({"days": 1.0})
    with pytest.raises(InterlaceError, match="columns"):
        res.contest([1.0, 0.0, 0.0])


def test_ml_fit_satterthwaite_and_refits():
    res = _sleep(method="ML")
    assert res.df_method == "satterthwaite" and np.all(np.isfinite(res.fe_df))
    with pytest.raises(InterlaceError, match="REML"):
        res.df_method = "kenward-roger"
    kr = _sleep(df_method="kenward-roger")
    kr0 = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(1 | Subject)",
                        df_method="kenward-roger")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = kr.compare_lr_test(kr0)  # the ML refits fall back to Satterthwaite
    assert lr.df == 2
    assert kr.model.clone(reml=False).df_method == "satterthwaite"


@pytest.mark.skipif(not interlace.linalg.HAVE_CHOLMOD, reason="no CHOLMOD")
def test_cholmod_engine_same_df():
    d = load_case("lmertest", "penicillin_x_reml")
    a, b = _fit(d, engine="blocked"), _fit(d, engine="cholmod")
    # the two engines' optima differ by ~1e-6 in θ; the df follow to ~1e-5
    np.testing.assert_allclose(a.fe_df, b.fe_df, rtol=1e-4)
    np.testing.assert_allclose(a.cov_fe_kr, b.cov_fe_kr, rtol=1e-4)
