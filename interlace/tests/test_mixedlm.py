"""``interlace.api``: statsmodels MixedLM's interface with lme4's estimates.

Tolerances:

* against lme4 (``reference/lmer/*.json``): fixed effects, SEs, variances, BLUPs
  1e-4 relative; log-likelihood 1e-4 absolute (as ``test_lmer_reference``);
* against statsmodels' own MixedLM fit of the same call: 1e-4 relative.  MixedLM
  stops on a BFGS gradient tolerance; on sleepstudy its estimates are within about
  2e-5 (relative) of the exact optimum that lme4 and interlace reach, so 1e-4 is
  what MixedLM's precision allows;
* statsmodels' likelihood and Hessian *evaluated at interlace's estimates* do not
  depend on MixedLM's convergence: they are compared to 1e-8 (llf, absolute) and
  1e-6 (standard errors, relative).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

import interlace.api as ia
from interlace import datasets
from interlace.design.covariance import BlockDiagonal, ScaledIdentity, Unstructured
from interlace.design.terms import RandomEffects, term_from_arrays
from interlace.errors import FormulaError, InterlaceError
from interlace.linalg import HAVE_CHOLMOD, RowEngines
from interlace.objective import LMMDeviance
from interlace.optimize import minimize
from interlace.tests.conftest import ENGINES, load_case

RTOL = 1e-4
SM_RTOL = 1e-4


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def _sm_fit(formula, data, **kw):
    return _quiet(lambda: smf.mixedlm(formula, data, **kw).fit())


def _vc(d: dict, name: str) -> float:
    return next(r["vcov"] for r in d["varcorr"] if r["grp"] == name and r["var2"] is None)


# ---------------------------------------------------------------- sleepstudy vs lme4
@pytest.mark.parametrize("engine", ENGINES)
def test_sleepstudy_equals_lme4(sleep, engine):
    d = load_case("lmer", "sleepstudy_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean fit: no convergence or Hessian warnings
        res = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days", engine=engine).fit()
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL)
    np.testing.assert_allclose(res.bse_fe.to_numpy(), d["se"], rtol=RTOL)
    np.testing.assert_allclose(res.scale, d["sigma"] ** 2, rtol=RTOL)
    vc = {(r["var1"], r["var2"]): r["vcov"] for r in d["varcorr"] if r["grp"] == "Subject"}
    C = res.cov_re
    np.testing.assert_allclose(C.loc["Subject", "Subject"], vc[("(Intercept)", None)], rtol=RTOL)
    np.testing.assert_allclose(C.loc["Days", "Days"], vc[("Days", None)], rtol=RTOL)
    np.testing.assert_allclose(C.loc["Subject", "Days"], vc[("(Intercept)", "Days")], rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4
    assert res.converged and res.method == "REML"
    ref = d["ranef"]["Subject"]
    ours = {str(k): v for k, v in res.random_effects.items()}
    got = np.array([[ours[lv]["Subject"], ours[lv]["Days"]] for lv in ref["levels"]])
    np.testing.assert_allclose(got[:, 0], ref["columns"]["(Intercept)"], rtol=RTOL, atol=1e-6 * res.scale ** 0.5)
    np.testing.assert_allclose(got[:, 1], ref["columns"]["Days"], rtol=RTOL, atol=1e-6 * res.scale ** 0.5)
    # fittedvalues are conditional (Xβ + Zb), as lme4's fitted() and MixedLM's fittedvalues
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), d["fitted"], rtol=0, atol=1e-6 * 500)


# ---------------------------------------------------------------- sleepstudy vs statsmodels
def test_sleepstudy_agrees_with_statsmodels(sleep):
    kw = {"groups": "Subject", "re_formula": "~Days"}
    ours = _quiet(lambda: ia.mixedlm("Reaction ~ Days", sleep, **kw).fit())
    theirs = _sm_fit("Reaction ~ Days", sleep, **kw)
    assert theirs.converged
    for attr in ("params", "bse", "tvalues", "fe_params", "bse_fe", "bse_re"):
        np.testing.assert_allclose(getattr(ours, attr).to_numpy(), getattr(theirs, attr).to_numpy(),
                                   rtol=SM_RTOL, err_msg=attr)
    np.testing.assert_allclose(ours.cov_re.to_numpy(), theirs.cov_re.to_numpy(), rtol=SM_RTOL)
    np.testing.assert_allclose(ours.scale, theirs.scale, rtol=SM_RTOL)
    assert abs(ours.llf - theirs.llf) < 1e-6
    assert ours.llf >= theirs.llf - 1e-9  # lme4's optimum is at least as good as MixedLM's
    for g, s in theirs.random_effects.items():
        np.testing.assert_allclose(ours.random_effects[g].to_numpy(), s.to_numpy(), rtol=0,
                                   atol=SM_RTOL * np.abs(s).max())
        np.testing.assert_allclose(ours.random_effects_cov[g].to_numpy(), theirs.random_effects_cov[g].to_numpy(),
                                   rtol=SM_RTOL)
    np.testing.assert_allclose(ours.fittedvalues.to_numpy(), theirs.fittedvalues.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", ["slopes", "vc", "unbalanced"])
def test_statsmodels_likelihood_and_hessian_at_our_estimates(sleep, pastes, case, reml):
    """MixedLM's own loglike and Hessian, evaluated at interlace's estimates, equal ours.

    This is why ``llf`` is lme4's value: MixedLM's REML (and ML) log-likelihood is
    the same function as lme4's, with no constant between them.
    """
    if case == "slopes":
        f, data, kw = "Reaction ~ Days", sleep, {"groups": "Subject", "re_formula": "~Days"}
    elif case == "vc":
        f, data = "strength ~ 1", pastes
        kw = {"groups": "batch", "re_formula": "1", "vc_formula": {"cask": "0 + C(cask)"}}
    else:
        rng = np.random.default_rng(1)
        f, data, kw = "Reaction ~ Days", sleep.iloc[np.sort(rng.choice(180, 130, replace=False))], {"groups": "Subject"}
    ours = _quiet(lambda: ia.mixedlm(f, data, **kw).fit(reml=reml))
    smod = smf.mixedlm(f, data, **kw)
    smod.reml, smod.cov_pen = reml, None  # what MixedLM.fit sets before evaluating
    assert abs(smod.loglike(ours.params_object, profile_fe=False) - ours.llf) < 1e-8
    assert abs(smod.loglike(ours.params_object, profile_fe=True) - ours.llf) < 1e-8
    H, _ = smod.hessian(ours.params_object)
    np.testing.assert_allclose(np.asarray(ours.bse), np.sqrt(np.diag(np.linalg.inv(-H))), rtol=1e-6)
    Hours, _ = ours.model.hessian(ours.params_object)
    np.testing.assert_allclose(Hours, H, rtol=1e-6, atol=1e-9 * np.abs(H).max())


# ---------------------------------------------------------------- names, shapes, types
def _calls(sleep, pastes):
    X = sm.add_constant(sleep[["Days"]])
    y, g = sleep["Reaction"], sleep["Subject"]
    return {
        "formula groups=name": ("formula", ("Reaction ~ Days", sleep), {"groups": "Subject"}),
        "formula groups=array": ("formula", ("Reaction ~ Days", sleep), {"groups": sleep["Subject"].to_numpy()}),
        "formula ~Days": ("formula", ("Reaction ~ Days", sleep), {"groups": "Subject", "re_formula": "~Days"}),
        "formula array ~Days": ("formula", ("Reaction ~ Days", sleep),
                                {"groups": sleep["Subject"].to_numpy(), "re_formula": "~Days"}),
        "formula 0 + Days": ("formula", ("Reaction ~ Days", sleep), {"groups": "Subject", "re_formula": "0 + Days"}),
        "formula re 1": ("formula", ("Reaction ~ Days", sleep), {"groups": "Subject", "re_formula": "1"}),
        "formula vc only": ("formula", ("strength ~ 1", pastes),
                            {"groups": "batch", "vc_formula": {"cask": "0 + C(cask)"}}),
        "formula re + vc": ("formula", ("strength ~ 1", pastes),
                            {"groups": "batch", "re_formula": "1", "vc_formula": {"cask": "0 + C(cask)"}}),
        "arrays pandas": ("arrays", (y, X, g), {}),
        "arrays numpy": ("arrays", (y.to_numpy(), X.to_numpy(), g.to_numpy()), {}),
        "arrays numpy exog_re": ("arrays", (y.to_numpy(), X.to_numpy(), g.to_numpy()), {"exog_re": X.to_numpy()}),
        "arrays pandas exog_re": ("arrays", (y, X, g), {"exog_re": X}),
    }


def _shape_of(v):
    if isinstance(v, pd.DataFrame):
        return ("DataFrame", v.shape, list(v.index), list(v.columns))
    if isinstance(v, pd.Series):
        return ("Series", v.shape, list(v.index))
    if isinstance(v, np.ndarray):
        return ("ndarray", v.shape)
    return (type(v).__name__,)


@pytest.mark.parametrize("call", list(_calls(datasets.load("sleepstudy"), datasets.load("pastes"))))
def test_attributes_match_statsmodels(sleep, pastes, call):
    kind, args, kw = _calls(sleep, pastes)[call]
    if kind == "formula":
        ours = _quiet(lambda: ia.mixedlm(*args, **kw).fit())
        theirs = _quiet(lambda: smf.mixedlm(*args, **kw).fit())
    else:
        ours = _quiet(lambda: ia.MixedLM(*args, **kw).fit())
        theirs = _quiet(lambda: sm.MixedLM(*args, **kw).fit())
    attrs = ["params", "bse", "tvalues", "pvalues", "fe_params", "bse_fe", "cov_re", "cov_re_unscaled", "vcomp",
             "fittedvalues", "resid", "normalized_cov_params"]
    if theirs.k_vc == 0:  # MixedLM's bse_re fails to label with variance components (statsmodels bug)
        attrs.append("bse_re")
    for a in attrs:
        assert _shape_of(getattr(ours, a)) == _shape_of(getattr(theirs, a)), a
    assert _shape_of(ours.cov_params()) == _shape_of(theirs.cov_params())
    assert _shape_of(ours.conf_int()) == _shape_of(theirs.conf_int())
    assert _shape_of(ours.predict()) == _shape_of(theirs.predict())
    for a in ("k_fe", "k_re", "k_re2", "k_vc", "method", "reml", "nobs", "use_sqrt"):
        assert getattr(ours, a) == getattr(theirs, a), a
    assert np.isnan(ours.aic) and np.isnan(theirs.aic) and np.isnan(ours.bic)
    assert isinstance(ours.converged, bool) and isinstance(ours.scale, float)
    assert isinstance(ours.llf, float)
    # random effects: same keys (group labels, sorted), same index names per group
    assert list(ours.random_effects) == list(theirs.random_effects)
    for k in theirs.random_effects:
        assert list(ours.random_effects[k].index) == list(theirs.random_effects[k].index)
        assert _shape_of(ours.random_effects_cov[k]) == _shape_of(theirs.random_effects_cov[k])
    m, sm_m = ours.model, theirs.model
    for a in ("k_fe", "k_re", "k_re2", "k_vc", "n_groups", "nobs", "exog_names", "endog_names", "group_labels"):
        assert getattr(m, a) == getattr(sm_m, a), a
    assert m.data.param_names == sm_m.data.param_names
    assert m.data.exog_re_names == sm_m.data.exog_re_names
    assert m.exog_vc.names == sm_m.exog_vc.names
    # the estimates themselves agree to MixedLM's precision (relative to each parameter's SE)
    np.testing.assert_allclose(np.asarray(ours.params), np.asarray(theirs.params), rtol=0,
                               atol=2e-3 * np.asarray(theirs.bse).max())


def test_bse_re_labelled_with_variance_components(pastes):
    res = _quiet(lambda: ia.mixedlm("strength ~ 1", pastes, groups="batch", re_formula="1",
                                    vc_formula={"cask": "0 + C(cask)"}).fit())
    assert list(res.bse_re.index) == ["batch Var", "cask Var"]
    assert list(res.params.index) == ["Intercept", "batch Var", "cask Var"]


# ---------------------------------------------------------------- variance components
@pytest.mark.parametrize("engine", ENGINES)
def test_pastes_vc_equals_lme4_nested(pastes, engine):
    """groups=batch, re_formula="1", vc {"cask": "0 + C(cask)"} is lme4's (1 | batch/cask).

    (Without ``re_formula`` MixedLM has no batch intercept: only ``(1 | batch:cask)``.)
    """
    d = load_case("lmer", "pastes_reml")
    res = _quiet(lambda: ia.mixedlm("strength ~ 1", pastes, groups="batch", re_formula="1",
                                    vc_formula={"cask": "0 + C(cask)"}, engine=engine).fit())
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL)
    np.testing.assert_allclose(res.bse_fe.to_numpy(), d["se"], rtol=RTOL)
    np.testing.assert_allclose(res.cov_re.iloc[0, 0], _vc(d, "batch"), rtol=RTOL)
    np.testing.assert_allclose(res.vcomp, [_vc(d, "cask:batch")], rtol=RTOL)
    np.testing.assert_allclose(res.scale, d["sigma"] ** 2, rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4
    # BLUPs: batch intercepts and cask-within-batch effects
    bref = d["ranef"]["batch"]
    np.testing.assert_allclose([res.random_effects[b]["batch"] for b in bref["levels"]],
                               bref["columns"]["(Intercept)"], rtol=RTOL, atol=1e-6)
    cref = d["ranef"]["cask:batch"]
    got = [res.random_effects[lv.split(":")[1]][f"cask[C(cask)[{lv.split(':')[0]}]]"] for lv in cref["levels"]]
    np.testing.assert_allclose(got, cref["columns"]["(Intercept)"], rtol=RTOL, atol=1e-6)


def test_vc_without_re_formula_has_no_group_intercept(pastes):
    ours = _quiet(lambda: ia.mixedlm("strength ~ 1", pastes, groups="batch",
                                     vc_formula={"cask": "0 + C(cask)"}).fit())
    theirs = _sm_fit("strength ~ 1", pastes, groups="batch", vc_formula={"cask": "0 + C(cask)"})
    assert ours.k_re == 0 and ours.cov_re.shape == (0, 0)
    np.testing.assert_allclose(ours.vcomp, theirs.vcomp, rtol=SM_RTOL)
    np.testing.assert_allclose(ours.scale, theirs.scale, rtol=SM_RTOL)


def test_single_group_crossed_idiom_equals_lme4():
    """MixedLM's one-group idiom for crossed factors gives lme4's (1|plate) + (1|sample)."""
    d = load_case("lmer", "penicillin_reml")
    data = datasets.load("penicillin").assign(one=1)
    res = _quiet(lambda: ia.mixedlm("diameter ~ 1", data, groups="one",
                                    vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"}).fit())
    np.testing.assert_allclose(res.vcomp, [_vc(d, "plate"), _vc(d, "sample")], rtol=RTOL)
    np.testing.assert_allclose(res.scale, d["sigma"] ** 2, rtol=RTOL)
    assert abs(res.llf - d["loglik"]) < 1e-4


# ---------------------------------------------------------------- array constructor
def test_array_constructor_equals_formula(sleep):
    form = _quiet(lambda: ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit())
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"].to_numpy(float)])
    arr = _quiet(lambda: ia.MixedLM(sleep["Reaction"].to_numpy(), X, sleep["Subject"].to_numpy(),
                                    exog_re=X).fit())
    assert isinstance(arr.params, np.ndarray) and arr.params.shape == (5,)
    # same optimum; the optimizer's path differs at rounding level on this flat criterion
    np.testing.assert_allclose(arr.params, form.params.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(arr.bse, form.bse.to_numpy(), rtol=1e-5)
    assert abs(arr.llf - form.llf) < 1e-9
    assert list(arr.random_effects[308].index) == ["x_re1", "x_re2"]
    assert arr.model.exog_names == ["const", "x1"]
    default = _quiet(lambda: ia.MixedLM(sleep["Reaction"], X, sleep["Subject"]).fit())
    assert list(default.params.index) == ["const", "x1", "Group Var"]


def test_array_constructor_vc_dict_and_missing(pastes):
    g = pastes.groupby("batch").groups
    vc = {"cask": {k: pd.get_dummies(pastes.loc[g[k], "cask"]).astype(float).to_numpy() for k in g}}
    with pytest.warns(FutureWarning):
        mod = ia.MixedLM(pastes["strength"], np.ones((60, 1)), pastes["batch"], exog_re=np.ones((60, 1)), exog_vc=vc)
    res = _quiet(mod.fit)
    d = load_case("lmer", "pastes_reml")
    np.testing.assert_allclose(res.vcomp, [_vc(d, "cask:batch")], rtol=RTOL)
    assert list(res.random_effects["A"].index) == ["x_re1", "cask[0]", "cask[1]", "cask[2]"]
    y = pastes["strength"].to_numpy().copy()
    y[[0, 7]] = np.nan
    m = ia.MixedLM(y, np.ones((60, 1)), pastes["batch"].to_numpy(), missing="drop")
    assert m.nobs == 58


# ---------------------------------------------------------------- predict
def test_predict_is_fixed_effects_only(sleep):
    res = _quiet(lambda: ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit())
    X = np.column_stack([np.ones(len(sleep)), sleep["Days"].to_numpy(float)])
    p = res.predict()
    assert isinstance(p, np.ndarray)
    np.testing.assert_allclose(p, X @ res.fe_params.to_numpy())
    assert np.max(np.abs(p - res.fittedvalues.to_numpy())) > 1.0  # fittedvalues include the BLUPs
    d = load_case("lmer", "sleepstudy_reml")
    nd = pd.DataFrame(d["predict"]["newdata"], index=list("abcdef"))
    pn = res.predict(nd)
    assert isinstance(pn, pd.Series) and list(pn.index) == list("abcdef")
    np.testing.assert_allclose(pn.to_numpy(), d["predict"]["fixed_only"], rtol=1e-6)
    theirs = _sm_fit("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
    np.testing.assert_allclose(pn.to_numpy(), theirs.predict(nd).to_numpy(), rtol=1e-6)


# ---------------------------------------------------------------- fit options, errors, api
def test_ml_aic_bic_and_options(sleep):
    d = load_case("lmer", "sleepstudy_ml")
    res = _quiet(lambda: ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
                 .fit(reml=False, method="lbfgs"))
    assert res.method == "ML"
    assert abs(res.llf - d["loglik"]) < 1e-4
    # AIC and BIC are -2 llf plus constants: twice llf's 1e-4
    assert abs(res.aic - d["aic"]) < 2e-4 and abs(res.bic - d["bic"]) < 2e-4
    start = _quiet(lambda: ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days")
                   .fit(start_params=res.params_object, method=["nm", "bobyqa"], gtol=1e-8))
    assert abs(start.llf - load_case("lmer", "sleepstudy_reml")["loglik"]) < 1e-4


def test_unsupported_and_errors(sleep):
    mod = ia.mixedlm("Reaction ~ Days", sleep, groups="Subject")
    with pytest.raises(InterlaceError, match="fe_pen must be a statsmodels penalty"):
        mod.fit(fe_pen=object())
    with pytest.raises(InterlaceError, match="free.cov_re has 4 entries"):
        mod.fit(free=type("F", (), {"fe_params": np.ones(2), "cov_re": np.zeros((2, 2)), "vcomp": np.ones(0)})())
    with pytest.raises(InterlaceError, match="unknown vc_layout"):
        ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", vc_layout="bogus")
    with pytest.raises(ValueError):
        mod.fit(method="newton")
    with pytest.raises(FormulaError):
        ia.mixedlm("Reaction ~ Days + (1 | Subject)", sleep, groups="Subject")
    with pytest.raises(AttributeError):
        ia.MixedLM.from_formula("Reaction ~ Days", sleep)
    with pytest.raises(ValueError):
        ia.MixedLM(sleep["Reaction"], np.ones((180, 1)), sleep["Subject"], bogus=1)


def test_api_forwards_other_names_to_statsmodels():
    assert ia.ols is smf.ols
    assert ia.add_constant is sm.add_constant
    assert ia.mixedlm is not smf.mixedlm and ia.MixedLM is not sm.MixedLM
    with pytest.raises(AttributeError):
        _ = ia.no_such_function


# ---------------------------------------------------------------- covariance protocol
def test_covariance_protocol():
    u = Unstructured(3)
    np.testing.assert_array_equal(u.theta_index, np.arange(6))
    np.testing.assert_array_equal(u.rows, [0, 1, 2, 1, 2, 2])
    np.testing.assert_array_equal(u.cols, [0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(u.lower, [0, -np.inf, -np.inf, 0, -np.inf, 0])
    np.testing.assert_array_equal(u.theta0, [1, 0, 0, 1, 0, 1])
    s = ScaledIdentity(4)
    assert s.n_theta == 1 and s.theta0.tolist() == [1.0] and s.lower.tolist() == [0.0]
    np.testing.assert_array_equal(s.theta_index, np.zeros(4))
    np.testing.assert_allclose(s.template([2.0]), 2 * np.eye(4))
    np.testing.assert_allclose(s.covariance([2.0], 3.0), 12 * np.eye(4))
    np.testing.assert_allclose(s.theta_from_covariance(12 * np.eye(4), 3.0), [2.0])
    b = BlockDiagonal([Unstructured(2), ScaledIdentity(3)])
    assert b.p == 5 and b.n_theta == 4
    np.testing.assert_array_equal(b.theta_index, [0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(b.lower, [0, -np.inf, 0, 0])
    T = b.template([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(T[:2, :2], [[1, 0], [2, 3]])
    np.testing.assert_allclose(T[2:, 2:], 4 * np.eye(3))
    assert not T[2:, :2].any() and not T[:2, 2:].any()
    np.testing.assert_allclose(b.theta_from_covariance(b.covariance([1.0, 2.0, 3.0, 4.0], 2.0), 2.0), [1, 2, 3, 4])


@pytest.mark.parametrize("engine", ["blocked", pytest.param("cholmod", marks=pytest.mark.skipif(
    not HAVE_CHOLMOD, reason="no CHOLMOD"))])
def test_scaled_identity_term_on_both_engines(pastes, engine):
    """(1|batch) + ScaledIdentity term of the cask dummies grouped by batch = lme4's (1|batch/cask)."""
    d = load_case("lmer", "pastes_reml")
    cask = pd.get_dummies(pastes["cask"]).to_numpy(float)
    re = RandomEffects([term_from_arrays(pastes["batch"], np.ones((60, 1)), ["Intercept"], name="batch"),
                        term_from_arrays(pastes["batch"], cask, ["a", "b", "c"], ScaledIdentity(3), name="batch")])
    assert re.n_theta == 2
    L = re.Lambda(np.array([2.0, 5.0])).toarray()
    # Λθ is diagonal: θ1 on the 10 batch intercepts, the shared θ2 on all 30 cask coefficients
    assert sorted(set(np.diag(L))) == [2.0, 5.0] and np.count_nonzero(L - np.diag(np.diag(L))) == 0
    assert np.sum(np.diag(L) == 5.0) == 30 and np.sum(np.diag(L) == 2.0) == 10
    y = pastes["strength"].to_numpy(float)
    dev = LMMDeviance.from_rows(RowEngines(re, np.ones((60, 1)), engine), y, None, True)
    opt = minimize(dev, re.theta0, re.lower)
    assert abs(opt.fmin - d["objective"]) < 1e-6
    # the same model as one term with a block-diagonal covariance (how interlace.api lays out MixedLM)
    one = RandomEffects([term_from_arrays(pastes["batch"], np.column_stack([np.ones(60), cask]), ["1", "a", "b", "c"],
                                          BlockDiagonal([Unstructured(1), ScaledIdentity(3)]), name="batch")])
    dev1 = LMMDeviance.from_rows(RowEngines(one, np.ones((60, 1)), engine), y, None, True)
    opt1 = minimize(dev1, one.theta0, one.lower)
    assert abs(opt1.fmin - d["objective"]) < 1e-6
    np.testing.assert_allclose(opt1.x, opt.x, rtol=1e-4)
