"""Residual correlation and variance structures against nlme (fixtures from make_nlme_reference.R)."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.correlation import ResidualModel
from interlace.errors import DataError, InterlaceError
from interlace.linalg import HAVE_CHOLMOD

REF = os.path.join(os.path.dirname(__file__), "reference")
CASES = ["gls_ar1", "gls_cs", "lme_ar1", "lme_ar1_ml", "lme_car1", "gls_varident"]
ENGINES = ["blocked"] + (["cholmod"] if HAVE_CHOLMOD else [])


def load(case: str):
    with open(os.path.join(REF, "nlme", case + ".json")) as fh:
        ref = json.load(fh)
    path = os.path.join(REF, "data", os.path.basename(ref["data"]))
    data = pd.read_csv(path, dtype={c: str for c in ref["factor_columns"]})
    return ref, data


def structures(ref):
    py = ref["python"]
    corr = None
    if py["correlation"]:
        c = py["correlation"]
        kw = {k: c[k] for k in ("time", "group") if c[k] is not None}
        corr = getattr(interlace, c["type"])(**kw)
    var = interlace.VarIdent(py["weights"]["by"]) if py["weights"] else None
    return corr, var


def fit_case(case: str, engine: str = "auto", data=None):
    ref, df = load(case)
    corr, var = structures(ref)
    py = ref["python"]
    return ref, interlace.fit(py["formula"], df if data is None else data, random=py["random"],
                              correlation=corr, weights=var, method=py["method"], engine=engine)


@pytest.fixture(scope="module",
                params=[(c, e) for c in CASES for e in ENGINES if c.startswith("lme") or e == "blocked"],
                ids=lambda p: f"{p[0]}-{p[1]}")
def fitted(request):
    case, engine = request.param
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference fits are regular: no warning expected
        ref, res = fit_case(case, engine)
    return ref, res


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))


def test_fixed_effects(fitted):
    ref, res = fitted
    assert len(res.fe_params) == len(ref["fixef"]["names"])  # same columns, in R's order (patsy names)
    assert rel(res.fe_params, ref["fixef"]["values"]) < 1e-5
    # vcov (nlme's summary inflates ML SEs by sqrt(N/(N - p)); vcov() does not, nor do we)
    assert rel(res.cov_params(), np.array(ref["vcov"])) < 1e-4
    if ref["reml"]:
        assert rel(res.fe_bse, ref["se"]) < 1e-4
    else:
        n, p = ref["nobs"], len(ref["se"])
        assert rel(res.fe_bse * np.sqrt(n / (n - p)), ref["se"]) < 1e-4


def test_likelihood_and_criteria(fitted):
    ref, res = fitted
    assert abs(res.llf - ref["loglik"]) < 1e-5
    assert res.df_modelwc == ref["df"]
    assert abs(res.aic - ref["aic"]) < 1e-4
    # nlme's REML BIC counts N - p observations; ours (lme4's) counts N
    n, p, k = ref["nobs"], len(ref["se"]), ref["df"]
    n_bic = n - p if ref["reml"] else n
    assert abs(res.bic - (ref["bic"] + k * (np.log(n) - np.log(n_bic)))) < 1e-4


def test_structure_parameters_and_sigma(fitted):
    ref, res = fitted
    assert rel(res.sigma, ref["sigma"]) < 1e-4
    if ref["corstruct"]:
        assert rel(res.residual_params.iloc[-1], ref["corstruct"]["value"][0]) < 1e-4
        assert rel(res.sol.psi[-1], ref["corstruct"]["unconstrained"][0]) < 1e-4
    if ref["varident"]:
        v = ref["varident"]
        got = res.residual_params
        for lev, ratio in zip(v["levels"][1:], v["ratios"][1:]):
            assert rel(got[f"varIdent: {lev}"], ratio) < 1e-4


def test_structure_intervals(fitted):
    """Against nlme's intervals() with a Richardson-extrapolated Hessian ("intervals_richardson").

    nlme's own fdHess (a quadratic fit with step .relStep) is not accurate to 1e-3 for
    parameters near 0 (gls_cs's lower bound: 0.2242 at the default step, 0.2355 at 1e-4),
    so make_nlme_reference.R also refits with numDeriv's derivatives in its place.
    """
    ref, res = fitted
    iv = ref["intervals_richardson"]
    block = iv.get("corStruct") or iv.get("varStruct")
    ci = res.residual_conf_int()
    for col, key in (("lower", "lower"), ("upper", "upper"), ("est.", "est")):
        assert rel(ci[col].to_numpy()[-len(block[key]):], block[key]) < 1e-4, col


def test_containment_df(fitted):
    ref, res = fitted
    if ref["df_fixef"]:
        assert np.array_equal(res.fe_df.to_numpy(), np.array(ref["df_fixef"], float))
    else:  # gls: N - p
        assert np.all(res.fe_df.to_numpy() == ref["nobs"] - len(ref["se"]))


def test_random_effects_and_fitted(fitted):
    ref, res = fitted
    assert rel(res.fittedvalues.to_numpy()[:10], ref["fitted"]) < 1e-5
    assert rel(res.resid.to_numpy()[:10], ref["residuals"]) < 1e-4
    if ref["fun"] != "lme":
        assert res.variance_components.empty and res.random_effects == {}
        return
    for blk in ref["varcorr"]:
        C = res.random_effects_cov[blk["grp"]].to_numpy()
        assert rel(np.sqrt(np.diag(C)), blk["sd"]) < 1e-4
        if len(blk["sd"]) > 1:
            r = C[0, 1] / np.sqrt(C[0, 0] * C[1, 1])
            assert abs(r - blk["corr"][0][1]) < 1e-4
    re = res.random_effects[ref["varcorr"][0]["grp"]]
    re = re if isinstance(re, pd.DataFrame) else re.to_frame()
    levels = [str(v) for v in ref["ranef"]["levels"]]
    for col, vals in zip(re.columns, ref["ranef"]["columns"].values()):
        got = re[col].reindex(levels).to_numpy()
        assert np.max(np.abs(got - np.array(vals))) < 1e-4 * max(1.0, np.max(np.abs(vals)))
    fixed_only = res.predict(load(ref["case"])[1].head(10), include_re=False).to_numpy()
    assert rel(fixed_only, ref["fitted_fixed"]) < 1e-5


@pytest.mark.parametrize("case", ["lme_ar1", "lme_ar1_ml"])
def test_lr_test_against_independent_errors(case):
    ref, res = fit_case(case)
    _, df = load(case)
    null = interlace.fit("follicles ~ s1 + c1", df, random=["(1 | Mare)"], method=ref["python"]["method"])
    a = ref["anova_vs_independent"]
    assert abs(null.llf - a["loglik"][0]) < 1e-5
    lr = res.compare_lr_test(null, refit=False)
    assert abs(lr.statistic - a["l_ratio"][1]) < 1e-4
    assert lr.df == a["df"][1] - a["df"][0]
    assert abs(lr.pvalue - a["p_value"][1]) < 1e-3 * a["p_value"][1]


def test_summary_shows_structure():
    ref, res = fit_case("lme_ar1")
    text = str(res.summary())
    assert "AR(1) (corAR1)" in text and "Phi" in text and "0.6074" in text
    assert "containment" in text


def test_row_order_and_unsorted_time_do_not_matter():
    ref, df = load("lme_car1")
    _, res = fit_case("lme_car1")
    shuffled = df.sample(frac=1.0, random_state=3)
    _, res2 = fit_case("lme_car1", data=shuffled)
    assert abs(res.llf - res2.llf) < 1e-7
    assert rel(res2.fe_params, res.fe_params) < 1e-6
    assert rel(res2.residual_params, res.residual_params) < 1e-6  # Newton-refined; BOBYQA alone: 1e-5


def test_simulate_has_the_residual_correlation():
    _, res = fit_case("gls_ar1")
    sims = res.simulate(nsim=400, seed=5)
    e = sims.to_numpy() - res.fittedvalues.to_numpy()[:, None]
    prev = res.model.residual.correlation.prev
    nf = prev >= 0
    r = np.corrcoef(e[nf].ravel(), e[prev[nf]].ravel())[0, 1]
    assert abs(r - res.residual_params.iloc[0]) < 0.02
    assert abs(e.std() / res.sigma - 1) < 0.02


# ---------------------------------------------------------------- the transforms
def _dense_R(model: ResidualModel, psi, n):
    return model.color(model.color(np.eye(n), psi).T, psi)


@pytest.mark.parametrize("kind", ["ar1", "ar1_time", "car1", "cs", "varident_cs"])
def test_whitening_inverts_the_covariance(kind):
    rng = np.random.default_rng(1)
    n = 13
    df = pd.DataFrame({"g": rng.integers(0, 3, n).astype(str), "t": rng.permutation(n) * 1.0,
                       "tt": np.round(rng.uniform(0, 10, n), 3), "s": rng.integers(0, 2, n).astype(str)})
    spec = {"ar1": (interlace.AR1(group="g"), None), "ar1_time": (interlace.AR1(time="t", group="g"), None),
            "car1": (interlace.CAR1(time="tt", group="g"), None),
            "cs": (interlace.CompoundSymmetry(group="g"), None),
            "varident_cs": (interlace.CompoundSymmetry(group="g"), interlace.VarIdent("s"))}[kind]
    from interlace.correlation import bind_residual

    model = bind_residual(spec[0], spec[1], df)
    psi = model.start + 0.4
    A = model.whiten(np.eye(n), psi)
    R = _dense_R(model, psi, n)
    assert np.allclose(A.T @ A, np.linalg.inv(R), atol=1e-10)
    assert np.isclose(model.logdet(psi), np.linalg.slogdet(R)[1], atol=1e-10)
    # the correlation matches its definition
    d = np.sqrt(np.diag(R))
    C = R / np.outer(d, d)
    i, j = np.flatnonzero(df.g == df.g.iloc[0])[:2]
    val = model.natural(psi)[-1][0]
    if kind == "ar1_time":
        assert np.isclose(C[i, j], val ** abs(df.t[i] - df.t[j]))
    elif kind == "car1":
        assert np.isclose(C[i, j], val ** abs(df.tt[i] - df.tt[j]))
    elif kind.endswith("cs"):
        assert np.isclose(C[i, j], val)
    other = np.flatnonzero(df.g != df.g.iloc[0])[0]
    assert C[i, other] == 0


# ---------------------------------------------------------------- errors
def test_errors_name_the_fault():
    _, ov = load("lme_ar1")
    bw = load("lme_car1")[1]
    with pytest.raises(DataError, match="'Visit'"):
        interlace.fit("follicles ~ s1", ov, correlation=interlace.AR1(group="Visit"))
    dup = bw.copy()
    dup.loc[1, "Time"] = dup.loc[0, "Time"]
    with pytest.raises(DataError, match="duplicate value 1 within group '1'"):
        interlace.fit("weight ~ Time", dup, random=["(1|Rat)"], correlation=interlace.CAR1(time="Time"))
    with pytest.raises(DataError, match="integer-valued"):
        interlace.fit("follicles ~ s1", ov, correlation=interlace.AR1(time="Time", group="Mare"))
    with pytest.raises(DataError, match="not nested"):
        interlace.fit("weight ~ Time", bw, random=["(1|Rat)"], correlation=interlace.AR1(group="Diet"))
    with pytest.raises(InterlaceError, match="containment"):
        interlace.fit("weight ~ Time", bw, random=["(1|Rat)"], correlation=interlace.CAR1(time="Time"),
                      df_method="satterthwaite")
    with pytest.raises(DataError, match="at least 2 rows"):
        interlace.fit("weight ~ Time", bw.assign(row=np.arange(len(bw)).astype(str)),
                      correlation=interlace.CompoundSymmetry(group="row"))
    with pytest.raises(DataError, match="correlation must be"):
        interlace.fit("weight ~ Time", bw, random=["(1|Rat)"], correlation="AR1")
    with pytest.raises(DataError, match="random-effects term"):
        interlace.fit("weight ~ Time", bw)  # no structure and no random effects
    _, res = fit_case("lme_ar1")
    with pytest.raises(InterlaceError, match="residual correlation"):
        res.profile()


def _term_of(column: str) -> str:
    """R's term label of a patsy column name: "Time:Diet[T.2]" → "Time:Diet"."""
    import re

    return "(Intercept)" if column == "Intercept" else re.sub(r"\[T\.[^\]]*\]", "", column)


@pytest.mark.parametrize("case", CASES)
def test_marginal_f_tests_match_nlme(case):
    """nlme's anova(m, type = "marginal"): each term's coefficients = 0, F with containment df."""
    ref, res = fit_case(case)
    a = ref["anova_marginal"]
    names = list(res.fe_params.index)
    for term, ndf, ddf, f in zip(a["terms"], a["numdf"], a["dendf"], a["f"]):
        L = np.array([[1.0 if j == i else 0.0 for j in range(len(names))]
                      for i, nm in enumerate(names) if _term_of(nm) == term])
        assert L.shape[0] == ndf, term
        out = res.contest(L) if ndf > 1 else res.contest(L[0])
        got_f = out["F value"].iloc[0] if ndf > 1 else out["t value"].iloc[0] ** 2
        got_ddf = out["DenDF"].iloc[0] if ndf > 1 else out["df"].iloc[0]
        # nlme's tests of ML fits use σ̂² N/(N − p), as its summary's SEs (not vcov)
        adj = 1.0 if ref["reml"] else (ref["nobs"] - len(names)) / ref["nobs"]
        assert got_f * adj == pytest.approx(f, rel=1e-4), term
        assert got_ddf == (ddf if ddf is not None else ref["nobs"] - len(names)), term
