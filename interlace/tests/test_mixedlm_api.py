"""The rest of statsmodels MixedLM's API on ``interlace.api``, checked against lme4 and by hand.

References: ``reference/mixedlm/*.json`` made by ``reference/make_mixedlm_reference.R``
(lme4 1.1-31 at its optimum: nloptwrap with 1e-12 tolerances) on the CSVs written by
``reference/make_mixedlm_data.py``.  Tolerances as the rest of the suite: estimates
1e-4 relative, log-likelihoods 1e-4 absolute.  Where the number is statsmodels' own
function (its ``loglike``, ``score`` or ``hessian`` evaluated at given parameters, which
does not depend on its optimizer) the comparison is to 1e-6 relative.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.base import _penalties as penalties
from statsmodels.regression.mixed_linear_model import MixedLMParams
from statsmodels.tools.sm_exceptions import SingularMatrixWarning, ValueWarning

import interlace.api as ia
from interlace.errors import DataError, InterlaceError
from interlace.tests.conftest import ENGINES, REF, ROOT

RTOL = 1e-4


def _case(name: str) -> dict:
    return json.loads((REF / "mixedlm" / f"{name}.json").read_text())


def _data(d: dict) -> pd.DataFrame:
    return pd.read_csv(ROOT / d["data"])


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _vc(d: dict, grp: str, var1: str | None = "(Intercept)") -> float:
    return next(r["vcov"] for r in d["varcorr"] if r["grp"] == grp and r["var1"] == var1 and r["var2"] is None)


# ---------------------------------------------------------------- the one statsmodels test left out
def test_statsmodels_singular_case_is_lme4s_interior_optimum():
    """statsmodels' ``test_singular`` data: the optimum is interior, lme4 finds it, so does interlace.

    statsmodels' optimizer runs to ``cov_re = 0`` there and reports ``llf = inf``, with a
    ``SingularMatrixWarning``; its own ``loglike`` evaluated at interlace's estimate is
    interlace's ``llf`` (a finite number, the maximum).
    """
    d = _case("singular_reml")
    df = _data(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all: the fit is regular
        res = ia.mixedlm("Y ~ X", df, groups=df["class"]).fit()
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL)
    np.testing.assert_allclose(res.scale, d["sigma2"], rtol=RTOL)
    np.testing.assert_allclose(res.cov_re.iloc[0, 0], _vc(d, "class"), rtol=RTOL)
    np.testing.assert_allclose(res.theta, d["theta"], rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4
    assert not res.is_singular and res.converged
    smod = smf.mixedlm("Y ~ X", df, groups=df["class"])
    smod.reml, smod.cov_pen, smod.fe_pen = True, None, None
    assert abs(smod.loglike(res.params_object, profile_fe=False) - res.llf) < 1e-8


# ---------------------------------------------------------------- free=
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("use_sqrt", [True, False])
def test_free_diagonal_pattern_is_lme4_uncorrelated(reml, use_sqrt):
    """``free.cov_re = I`` (statsmodels' test_vcomp_1) is lme4's ``(0 + z1 + z2 || g)``."""
    d = _case("independent_reml" if reml else "independent_ml")
    df = _data(d)
    free = MixedLMParams(1, 2, 0)
    free.fe_params, free.cov_re, free.vcomp = np.ones(1), np.eye(2), np.zeros(0)
    model = ia.MixedLM(df["y"].to_numpy(), df[["x"]].to_numpy(), df["g"].to_numpy(),
                       exog_re=df[["z1", "z2"]].to_numpy(), use_sqrt=use_sqrt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = model.fit(free=free, reml=reml)
    np.testing.assert_allclose(res.fe_params, d["fixef"]["values"], rtol=RTOL)
    np.testing.assert_allclose(np.diag(res.cov_re), [_vc(d, "g", "z1"), _vc(d, "g.1", "z2")], rtol=RTOL)
    assert res.cov_re[0, 1] == 0.0 and res.cov_params()[2, 2] == 0.0  # held: no variance
    np.testing.assert_allclose(res.scale, d["sigma2"], rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4
    assert res.layout.re_cov.n_theta == 2  # the held zero is out of Λθ's pattern
    if not reml:  # 3 free parameters + the scale
        np.testing.assert_allclose(res.aic, -2 * d["loglik"] + 2 * 4, atol=2e-4)


def test_free_holds_values_at_the_start(sleep):
    """A 0 in ``free`` holds that parameter at its start value; the rest are estimated."""
    m = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    full = m.fit()
    start = full.params_object.copy()
    start.cov_re = start.cov_re * np.array([[2.0, 1.0], [1.0, 1.0]])  # a worse intercept variance
    free = MixedLMParams(2, 2, 0)
    free.fe_params, free.cov_re, free.vcomp = np.ones(2), np.array([[0.0, 1.0], [1.0, 1.0]]), np.zeros(0)
    res = _quiet(m.fit, start_params=start, free=free)
    np.testing.assert_allclose(res.cov_re_unscaled.iloc[0, 0], start.cov_re[0, 0], rtol=1e-12)
    assert res.llf < full.llf
    # holding everything at the MLE gives the MLE back
    hold = MixedLMParams(2, 2, 0)
    hold.fe_params, hold.cov_re, hold.vcomp = np.ones(2), np.zeros((2, 2)), np.zeros(0)
    back = m.fit(start_params=full.params_object, free=hold)
    assert abs(back.llf - full.llf) < 1e-10
    with pytest.raises(InterlaceError, match="use_sqrt=True"):
        bad = MixedLMParams(2, 2, 0)
        bad.fe_params, bad.cov_re, bad.vcomp = np.ones(2), np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(0)
        ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days", use_sqrt=False).fit(
            start_params=full.params_object, free=bad)


# ---------------------------------------------------------------- profile_re
@pytest.mark.parametrize("case", ["profile_sleepstudy_intercept", "profile_sleepstudy_slope", "profile_pastes_cask",
                                  "profile_pastes_batch_ml"])
def test_profile_re_equals_lme4(sleep, pastes, case):
    """MixedLM's profile of a relative variance, each point lme4's criterion minimized over the other θ."""
    d = _case(case)
    if case.startswith("profile_sleepstudy"):
        res = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    else:
        res = ia.mixedlm("strength ~ 1", pastes, groups="batch", re_formula="1",
                         vc_formula={"cask": "0 + C(cask)"}).fit(reml=not case.endswith("_ml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prof = res.profile_re(d["re_ix"], d["vtype"], num_low=d["num_low"], dist_low=d["dist_low"],
                              num_high=d["num_high"], dist_high=d["dist_high"])
    ref = np.array(d["rows"])
    assert prof.shape == ref.shape
    np.testing.assert_allclose(prof[:, 0], ref[:, 0], rtol=RTOL)
    np.testing.assert_allclose(prof[:, 1], ref[:, 1], rtol=0, atol=1e-4)
    assert np.argmax(prof[:, 1]) == d["num_low"]  # the estimate is the profile's peak
    with pytest.raises(ValueError, match="dist_low is too large"):
        res.profile_re(d["re_ix"], d["vtype"], dist_low=1e9)


# ---------------------------------------------------------------- the crossed idiom
def test_crossed_idiom_is_crossed_terms_and_lme4(tmp_path):
    """One all-rows group + a factor per component: crossed scalar terms, lme4's ``(1|a) + (1|b)``."""
    d = _case("crossed_reml")
    df = _data(d).assign(one=1)
    vcf = {"a": "0 + C(a)", "b": "0 + C(b)"}
    m = ia.mixedlm("y ~ x", df, groups="one", re_formula="0", vc_formula=vcf)
    assert m._layout.factor_terms == (True, True)
    assert [(t.name, t.nlevels, t.p) for t in m.random_effects_structure.terms] == [("a", 150, 1), ("b", 12, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = m.fit()
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL)
    np.testing.assert_allclose(res.vcomp, [_vc(d, "a"), _vc(d, "b")], rtol=RTOL)
    np.testing.assert_allclose(res.scale, d["sigma2"], rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4
    re = res.random_effects[1]
    cov = res.random_effects_cov[1]
    for f in ("a", "b"):
        names = [f"{f}[C({f})[{lv}]]" for lv in d["ranef"][f]["levels"]]
        np.testing.assert_allclose(re[names].to_numpy(), d["ranef"][f]["columns"]["(Intercept)"], rtol=RTOL,
                                   atol=1e-7)
        np.testing.assert_allclose(np.sqrt(np.diag(cov.loc[names, names])), d["ranef"][f]["condsd"]["(Intercept)"],
                                   rtol=RTOL)
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), d["fitted"], rtol=1e-6)
    # the same model with every component kept in the one group's term: the same fit
    grouped = ia.mixedlm("y ~ x", df, groups="one", re_formula="0", vc_formula=vcf, vc_layout="grouped").fit()
    assert grouped.model._layout.factor_terms == (False, False)
    np.testing.assert_allclose(grouped.params.to_numpy(), res.params.to_numpy(), rtol=1e-6)
    assert abs(grouped.llf - res.llf) < 1e-8
    np.testing.assert_allclose(grouped.bse.to_numpy(), res.bse.to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("engine", ENGINES)
def test_nested_components_both_layouts(pastes, engine):
    """``(1 | batch/cask)`` as MixedLM writes it: the same fit whether the casks are a term of their own or not."""
    kw = {"groups": "batch", "re_formula": "1", "vc_formula": {"cask": "0 + C(cask)"}, "engine": engine}
    auto = ia.mixedlm("strength ~ 1", pastes, **kw)
    assert auto._layout.factor_terms == (False,)  # 10 narrow groups: block-diagonal by batch is cheaper
    a = auto.fit()
    f = ia.mixedlm("strength ~ 1", pastes, vc_layout="factors", **kw)
    assert [t.name for t in f.random_effects_structure.terms] == ["batch:cask", "batch"]
    b = f.fit()
    np.testing.assert_allclose(b.params.to_numpy(), a.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.bse.to_numpy(), a.bse.to_numpy(), rtol=1e-5)
    assert abs(a.llf - b.llf) < 1e-8
    for g in a.random_effects:
        np.testing.assert_allclose(b.random_effects[g].to_numpy(), a.random_effects[g].to_numpy(), rtol=1e-5,
                                   atol=1e-8)


def _crossed_frame(n=800, na=60, nb=25, seed=3):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    x = rng.standard_normal(n)
    y = 2 + x + rng.standard_normal(na)[a] + 0.5 * rng.standard_normal(nb)[b] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b, "one": 1})


@pytest.mark.parametrize("reml", [True, False])
def test_dict_and_formula_entry_give_the_same_fit(reml):
    """The crossed idiom as ``vc_formula`` and as an ``exog_vc`` dict of the same matrices: equal to 1e-10."""
    df = _crossed_frame()
    form = ia.mixedlm("y ~ x", df, groups="one", re_formula="0", vc_formula={"a": "0 + C(a)", "b": "0 + C(b)"})
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    vc = {"a": {1: pd.get_dummies(df["a"]).to_numpy(float)}, "b": {1: pd.get_dummies(df["b"]).to_numpy(float)}}
    with pytest.warns(FutureWarning, match="Using deprecated variance components format"):
        arr = ia.MixedLM(df["y"].to_numpy(), X, np.ones(len(df)), exog_vc=vc)
    r1, r2 = form.fit(reml=reml), arr.fit(reml=reml)
    np.testing.assert_allclose(np.asarray(r2.params), r1.params.to_numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(np.asarray(r2.bse), r1.bse.to_numpy(), rtol=1e-10, atol=0)
    assert abs(r1.llf - r2.llf) < 1e-10


# ---------------------------------------------------------------- score, score_full, hessian
@pytest.mark.parametrize("profile_fe", [True, False])
@pytest.mark.parametrize("use_sqrt", [True, False])
@pytest.mark.parametrize("reml", [True, False])
def test_score_and_hessian_equal_statsmodels_functions(pastes, profile_fe, use_sqrt, reml):
    """statsmodels' ``score``/``score_full``/``hessian`` evaluated at the same parameters (no optimizer involved).

    statsmodels' ``hessian`` leaves out two terms that vanish when ``fe_params`` is the GLS
    estimate at the given covariances (as at the MLE), so it is compared there; interlace's
    is the exact Hessian anywhere (checked by differences below).
    """
    kw = {"groups": "batch", "re_formula": "1", "vc_formula": {"cask": "0 + C(cask)"}}
    ours = ia.mixedlm("strength ~ 1", pastes, use_sqrt=use_sqrt, **kw)
    ours.reml = reml
    theirs = smf.mixedlm("strength ~ 1", pastes, use_sqrt=use_sqrt, **kw)
    theirs.reml, theirs.cov_pen, theirs.fe_pen, theirs._freepat = reml, None, None, None
    rng = np.random.default_rng(5)
    for _ in range(3):
        cov, vc = np.array([[rng.uniform(0.5, 3)]]), rng.uniform(2, 20, 1)
        po = MixedLMParams.from_components(fe_params=rng.normal(60, 1, 1), cov_re=cov, vcomp=vc)
        np.testing.assert_allclose(ours.score(po, profile_fe=profile_fe), theirs.score(po, profile_fe=profile_fe),
                                   rtol=1e-6)
        if not profile_fe:
            np.testing.assert_allclose(np.concatenate(ours.score_full(po, True)),
                                       np.concatenate(theirs.score_full(po, True)), rtol=1e-6)
            gls = MixedLMParams.from_components(fe_params=ours.get_fe_params(cov, vc)[0], cov_re=cov, vcomp=vc)
            H = theirs.hessian(gls)[0]
            np.testing.assert_allclose(ours.hessian(gls)[0], H, rtol=1e-6, atol=1e-10 * np.abs(H).max())


def test_hessian_is_the_exact_second_derivative(sleep):
    """Away from the GLS estimate too: central differences of the analytic score (``score_full``)."""
    m = ia.mixedlm("Reaction ~ Days", sleep.iloc[::2], groups="Subject", re_formula="~Days", vc_formula=None)
    po = MixedLMParams.from_components(fe_params=np.array([240.0, 12.0]), cov_re=np.array([[1.5, 0.1], [0.1, 0.2]]),
                                       vcomp=np.zeros(0))
    x = po.get_packed(use_sqrt=False, has_fe=True)
    H, _ = m.hessian(po)
    h = 1e-5 * np.maximum(np.abs(x), 1e-2)
    num = np.zeros_like(H)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp[k] += h[k]
        xm[k] -= h[k]
        gp = np.concatenate(m.score_full(MixedLMParams.from_packed(xp, 2, 2, False, True), True))
        gm = np.concatenate(m.score_full(MixedLMParams.from_packed(xm, 2, 2, False, True), True))
        num[:, k] = (gp - gm) / (2 * h[k])
    np.testing.assert_allclose(H, num, rtol=1e-5, atol=1e-6 * np.abs(H).max())
    # loglike(profile_fe=False), computed group by group, is the engine's profiled value at the GLS β̂
    fe, _ = m.get_fe_params(po.cov_re, po.vcomp)
    at_gls = MixedLMParams.from_components(fe_params=fe, cov_re=po.cov_re, vcomp=po.vcomp)
    assert abs(m.loglike(at_gls, profile_fe=False) - m.loglike(po, profile_fe=True)) < 1e-9
    assert m.loglike(po, profile_fe=False) < m.loglike(po, profile_fe=True)


# ---------------------------------------------------------------- fit_regularized, penalties
def test_fit_regularized_l1_meets_the_lasso_conditions():
    """At the L1 solution the GLS criterion's gradient is ±α on nonzero coefficients, within α on zero ones."""
    rs = np.random.RandomState(3453)
    exog = rs.normal(size=(400, 5))
    groups = np.kron(np.arange(100), np.ones(4))
    endog = exog[:, 0] - exog[:, 2] + np.kron(rs.normal(size=100), np.ones(4)) + rs.normal(size=400)
    md = ia.MixedLM(endog, exog, groups)
    full = md.fit()
    alpha = np.array([20.0, 20.0, 20.0, 60.0, 60.0])
    reg = md.fit_regularized(alpha=alpha, ceps=1e-8, ptol=1e-12, maxit=1000)
    beta = reg.fe_params
    # the quadratic form at the unpenalized covariance, built here from V itself
    g = full.cov_re[0, 0]
    V = full.scale * np.eye(400) + g * np.kron(np.eye(100), np.ones((4, 4)))
    Vi = np.linalg.inv(V)
    grad = 2 * (exog.T @ Vi @ exog @ beta - exog.T @ Vi @ endog)
    nz = np.abs(beta) > 0
    np.testing.assert_allclose(grad[nz], -alpha[nz] * np.sign(beta[nz]), rtol=1e-6)
    assert np.all(np.abs(grad[~nz]) <= alpha[~nz] + 1e-8) and (~nz).any()
    assert np.all(np.isnan(reg.bse[:5][~nz])) and np.all(np.isfinite(reg.bse[:5][nz]))
    np.testing.assert_allclose(reg.params[5:], full.params[5:])  # covariances held at the unpenalized fit
    # alpha = 0 is the GLS estimate
    np.testing.assert_allclose(md.fit_regularized(alpha=0.0).fe_params, full.fe_params, rtol=1e-8)
    with pytest.raises(ValueError, match="Invalid regularization method"):
        md.fit_regularized(method="l2")


def test_smooth_penalties(sleep):
    """``fe_pen``/``cov_pen`` penalize the criterion as MixedLM does; the penalty object is not modified.

    As in MixedLM the fixed effects stay the GLS estimate at each θ; the penalty on them
    moves θ (on an unbalanced design, where the GLS estimate depends on θ).
    """
    rng = np.random.default_rng(1)
    d = sleep.iloc[np.sort(rng.choice(180, 120, replace=False))]
    m = ia.mixedlm("Reaction ~ Days", d, groups="Subject", re_formula="~Days")
    free = m.fit()
    pen = penalties.L2()
    res = m.fit_regularized(method=pen, alpha=1e-3)
    assert pen.alpha == 1.0  # statsmodels sets alpha on the caller's object; interlace on a copy
    dev = m._deviance(True)
    pen_a = penalties.L2()
    pen_a.alpha = 1e-3

    def crit(theta):
        val = dev(theta)
        return val + 2 * pen_a.func(dev.pls.solve()[0])

    c0 = crit(res.theta)
    assert c0 < crit(free.theta) and np.abs(res.theta - free.theta).max() > 1e-2  # the penalty moved the optimum
    for k in range(res.theta.size):  # and no θ nearby does better
        for h in (1e-3, -1e-3):
            t = res.theta.copy()
            t[k] += h
            assert crit(t) > c0 - 1e-9
    assert abs(res.llf - (-0.5 * dev(res.theta) - pen_a.func(res.fe_params))) < 1e-9
    # a covariance penalty (statsmodels' PSD barrier, −w log|Ψ|): the penalized optimum beats the
    # penalized value at the unpenalized estimate, and its llf carries the penalty
    psd = m.fit(cov_pen=penalties.PSD(0.5))
    cov_free = free.cov_re_unscaled.to_numpy()
    assert psd.llf > free.llf - penalties.PSD(0.5).func(cov_free, np.linalg.inv(cov_free))
    cov = psd.cov_re_unscaled.to_numpy()
    assert abs(psd.llf - (-0.5 * dev(psd.theta) - penalties.PSD(0.5).func(cov, np.linalg.inv(cov)))) < 1e-9


# ---------------------------------------------------------------- data handling and texts
def test_missing_default_raises_and_drop_drops(sleep):
    df = sleep.copy()
    df.loc[3, "Days"] = np.nan
    with pytest.raises(DataError, match="missing values.*'Days'.*missing='drop'"):
        ia.mixedlm("Reaction ~ Days", df, groups="Subject")
    assert ia.mixedlm("Reaction ~ Days", df, groups="Subject", missing="drop").nobs == 179
    y = df["Reaction"].to_numpy().copy()
    y[0] = np.nan
    with pytest.raises(DataError, match="endog has 1 missing"):
        ia.MixedLM(y, np.ones((180, 1)), df["Subject"].to_numpy())
    assert ia.MixedLM(y, np.ones((180, 1)), df["Subject"].to_numpy(), missing="drop").nobs == 179
    assert df.loc[3, "Days"] != df.loc[3, "Days"]  # the input frame is unchanged (still NaN)


def _double(x):
    return 2 * x


def test_formulas_see_the_callers_names(sleep):
    """``eval_env``: a function of the caller's scope in any formula, as statsmodels via patsy."""
    def halve(x):
        return x / 2

    r = ia.mixedlm("Reaction ~ halve(Days)", sleep, groups="Subject", re_formula="~_double(Days)").fit()
    assert list(r.fe_params.index) == ["Intercept", "halve(Days)"]
    base = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    np.testing.assert_allclose(r.fe_params.iloc[1], 2 * base.fe_params.iloc[1], rtol=1e-6)
    # halving a fixed-effects column adds log 2 to the REML log-likelihood (−½ log|XᵀV⁻¹X| changes
    # by −½ · 2 log ½); doubling a random-effects column only rescales Ψ
    assert abs(r.llf - base.llf - np.log(2)) < 1e-6
    m = ia.MixedLM.from_formula("Reaction ~ halve(Days)", sleep, groups="Subject")
    assert m.exog_names == ["Intercept", "halve(Days)"]
    with pytest.raises(DataError, match="'halve'"):
        ia.mixedlm("Reaction ~ halve(Days)", sleep, groups="Subject", eval_env=-1)


def test_statsmodels_warning_texts(sleep):
    m = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject")
    with pytest.warns(FutureWarning, match="Argument cov_type not used by MixedLM.fit"):
        m.fit(cov_type="hc1")
    with pytest.warns(FutureWarning, match="Arguments a, b not used by MixedLM.fit. Future versions will raise"):
        m.fit(a=1, b=2)
    with pytest.warns(ValueWarning, match="niter_sa is currently ignored"):
        m.fit(niter_sa=3)
    with pytest.warns(SingularMatrixWarning, match="Random effects covariance is singular"):
        m.score(MixedLMParams.from_components(np.zeros(2), cov_re=np.zeros((1, 1)), vcomp=np.zeros(0)))


def test_get_distribution_moments():
    """Simulated responses have the model's mean and the variance of V (by hand)."""
    rng = np.random.default_rng(1)
    n, g = 60, np.repeat(np.arange(12), 5)
    X = np.column_stack([np.ones(n), rng.standard_normal(n)])
    Z = np.column_stack([np.ones(n), rng.standard_normal(n)])
    m = ia.MixedLM(rng.standard_normal(n), X, g, exog_re=Z)
    cov = np.array([[1.0, 0.3], [0.3, 0.5]])
    dist = m.get_distribution(np.r_[1.0, -2.0, cov[np.tril_indices(2)] / 2.0], 2.0, None)
    sims = np.array([dist.rvs(0, rng=k) for k in range(4000)])
    np.testing.assert_allclose(sims.mean(0), X @ [1.0, -2.0], atol=0.15)
    v = np.einsum("ij,jk,ik->i", Z, cov, Z) + 2.0
    np.testing.assert_allclose(sims.var(0), v, rtol=0.15)
    np.testing.assert_allclose(dist.rvs(0, rng=7), dist.rvs(0, rng=np.random.default_rng(7)))


def test_clone_and_refit_share_nothing_but_the_data(sleep):
    m = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    c = m.clone(use_sqrt=False)
    assert c.use_sqrt is False and c.nobs == m.nobs and c.group_name == "Subject"
    assert abs(c.fit().llf - m.fit().llf) < 1e-9
    with pytest.raises(TypeError, match="no option bogus"):
        m.clone(bogus=1)


def test_sm_hessian_bse_unchanged_after_layout(sleep):
    """The standard errors still come from MixedLM's observed information (statsmodels' Hessian)."""
    res = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    smod = sm.MixedLM.from_formula("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    smod.reml, smod.cov_pen = True, None
    H, _ = smod.hessian(res.params_object)
    np.testing.assert_allclose(np.asarray(res.bse), np.sqrt(np.diag(np.linalg.inv(-H))), rtol=1e-6)


@pytest.mark.parametrize("formula", ["0 + C(i)", "0 + C(s)", "0 + s", "-1 + C(c)", "~0 + c", "0 + C(c)"])
def test_indicator_designs_are_patsys(formula):
    """Variance components that are a factor's indicators are made without patsy: the same columns and names."""
    from interlace.design.fixed import build_matrix
    from interlace.models.mixedlm import _indicator_designs

    rng = np.random.default_rng(2)
    n = 90
    df = pd.DataFrame({"i": rng.integers(3, 9, n), "s": rng.choice(["b", "a", "d", "c"], n),
                       "c": pd.Categorical(rng.choice(["x", "y"], n), categories=["z", "y", "x"])})
    rows = [np.flatnonzero(rng.integers(0, 3, n) == k) for k in range(3)]
    names, mats = _indicator_designs(formula, df, rows)
    for r, nm, m in zip(rows, names, mats):
        mm = build_matrix(formula if formula.startswith("~") else f"~ {formula}", df.iloc[r], "test")
        assert nm == list(mm.design_info.column_names)
        np.testing.assert_array_equal(m.toarray(), np.asarray(mm))
    assert _indicator_designs("0 + x", df.assign(x=rng.standard_normal(n)), rows) is None  # a slope, not a factor
    assert _indicator_designs("0 + C(i) + s", df, rows) is None
