"""Intervals for every parameter (``conf_int_all``, ``profile``) and the parametric bootstrap.

References: ``reference/confint/<case>.json`` from ``make_confint_reference.R`` (lme4 1.1-31).

* Profile intervals: within ``PROFILE_RTOL = 1e-4`` relative of lme4's
  ``confint(m, method = "profile")`` (the issue allows 1e-3; the worst case found is
  5e-6, the lower limit of sleepstudy's intercept SD, where lme4's own default and
  tight fits differ by as much: the limit sits between two grid points 0.5 apart in ζ
  and small grid shifts move the spline's crossing).  Limits at a bound (a standard
  deviation whose profile reaches 0) must be exactly 0.
* Profile points: ζ at lme4's own profile points agrees to 1e-4 (ignoring the point
  at the estimate, where ζ = √Δd magnifies the 1e-10 difference of the optimum) except
  where lme4's nuisance optimization stopped at a boundary above the minimum (its ζ is
  then larger in magnitude; ours may only be smaller).
* Prior weights: lme4 1.1-31's fixed-effect profiles are wrong for weighted models
  (its refits drop the log-weight term; confint falls back to linear interpolation
  and is 13 % off); there the reference is the exact profile limit that
  make_confint_reference.R finds by root-finding on lme4 refits with X_j β_j in the
  offset (ours agree to 1e-7).  Every case's fixed-effect limits are also checked
  against these exact roots (5e-4; the spline's own interpolation error, shared with
  lme4, is largest for Dyestuff2's intercept: 1.7e-4).
* Wald: identical to β̂ ± z·SE (lme4's formula) and to lme4 within the agreement of
  the estimates with lme4's default fit (1e-5 relative, 1e-4 SE for a limit near 0);
  NaN for the variance parameters, as lme4's NA.
* Bootstrap: reproducible by seed, identical with ``n_jobs=2``.  For Dyestuff
  (balanced, intercept only) β̂ = ȳ is exactly normal with SD equal to the analytic SE
  at the estimates, so with n = 1000 replicates the bootstrap SD is within 4 Monte-Carlo
  standard errors, 4/√(2(n−1)) ≈ 8.9 %, of ``fe_bse``.  Against lme4's own bootstrap
  (n = 500): SDs within 4 standard errors of the difference of two SD estimates
  (relative SE √((κ−1)/4n) each, κ the replicates' kurtosis); percentile limits of β and
  σ within 4 standard errors of the difference of two 2.5 %/97.5 % quantile estimates
  (2.67·SD/√n each under normality).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import interlace
from interlace.inference.profile import profile_zeta
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("confint")
#: profiled in full; factor_slope_reml (3 x 3 unstructured, slow to profile) only in part
FULL = [c for c in CASES if c != "factor_slope_reml"]
PROFILE_RTOL = 1e-4


def _fit(d):
    py = d["python"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit(py["formula"], case_data(d), random=py["random"], method=py["method"],
                             weights=py.get("weights"), offset=py.get("offset"))


def _ci(block) -> np.ndarray:
    return np.column_stack([np.array(block["lower"], float), np.array(block["upper"], float)])


@pytest.fixture(scope="module", params=FULL)
def case(request):
    d = load_case("confint", request.param)
    res = _fit(d)
    tab = res.profile()
    return d, res, tab


# ---------------------------------------------------------------------------- profile
def _lme4_fallback(d) -> set:
    """Parameters whose lme4 profile interval fell back to linear interpolation (a broken profile)."""
    return {w.split("for ", 1)[1].split(":")[0] for w in d["profile_warnings"] if "falling back" in w}


def test_profile_intervals_match_lme4(case):
    d, _res, tab = case
    from interlace.inference.profile import profile_conf_int

    ci = profile_conf_int(tab)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert len(ci) == len(d["names"]["old"])
    ref = _ci(d["profile"])
    # lme4's fixed-effect profiles are wrong with prior weights (see make_confint_reference.R):
    # there the reference is the exact profile limit from lme4 refits
    exact = _ci(d["fixed_exact"])
    nv = len(ref) - len(exact)
    for k, name in enumerate(d["names"]["old"]):
        if name in _lme4_fallback(d):
            assert k >= nv
            ref[k] = exact[k - nv]
    ours = ci.to_numpy()
    at_zero = ref == 0
    assert np.all(ours[at_zero] == 0.0)
    np.testing.assert_allclose(ours[~at_zero], ref[~at_zero], rtol=PROFILE_RTOL)


def test_fixed_effect_limits_exact(case):
    """Spline-interpolated limits against the exact roots of the profile (no grid): within 5e-4."""
    d, res, tab = case
    from interlace.inference.profile import profile_conf_int

    ci = profile_conf_int(tab).iloc[-len(res.fe_params):]
    np.testing.assert_allclose(ci.to_numpy(), _ci(d["fixed_exact"]), rtol=5e-4)


def test_row_names(case):
    d, res, _ = case
    old = res.conf_int_all("wald").index.tolist()
    assert old == [n.replace("(Intercept)", "Intercept") for n in d["names"]["old"]]
    new = res.conf_int_all("wald", old_names=False).index.tolist()
    assert len(new) == len(d["names"]["new"])
    for ours, theirs in zip(new, d["names"]["new"]):
        assert ours == theirs.replace("(Intercept)", "Intercept")  # nested factors too: cask:batch


def test_profile_table(case):
    d, _res, tab = case
    names = tab.attrs["names"]
    assert list(tab.columns[:3]) == ["parameter", "value", "zeta"] and list(tab.columns[3:]) == names
    cutoff = np.sqrt(st.chi2.ppf(0.99, len(names)))
    for name, sub in tab.groupby("parameter", sort=False):
        assert np.all(np.diff(sub["value"]) > 0)
        assert np.all(np.diff(sub["zeta"]) > 0)  # monotone profiles
        assert np.array_equal(sub["value"].to_numpy(), sub[name].to_numpy())
        lo, hi = tab.attrs["lower"][name], tab.attrs["upper"][name]
        assert sub["zeta"].max() > cutoff or sub["value"].max() == hi
        assert sub["zeta"].min() < -cutoff or sub["value"].min() == lo
    # the centre is the ML fit, also for REML fits (lme4 profiles the ML refit)
    est = np.array(list(tab.attrs["estimates"].values()))
    np.testing.assert_allclose(est, d["ml"]["values"], rtol=2e-5, atol=1e-6)
    assert abs(tab.attrs["deviance"] - d["ml"]["deviance"]) < 1e-5


def test_zeta_at_lme4_points(case):
    d, res, _ = case
    t = d["profile_table"]
    par, z, v = np.array(t["par"]), np.array(t["zeta"]), np.array(t["value"])
    for r_name, name in zip(d["names"]["old"], res.conf_int_all("wald").index):
        if r_name in _lme4_fallback(d):
            continue
        m = (par == r_name) & (np.abs(z) > 1e-3)
        ours = profile_zeta(res, name, v[m])
        theirs = z[m]
        assert np.all(np.abs(ours) <= np.abs(theirs) + 1e-4), name
        close = np.abs(ours - theirs) < 1e-4
        # lme4's optimizer may stop above the minimum far in a tail; never in the central part
        assert np.all(close[np.abs(theirs) < 3.0]), (name, theirs[~close], ours[~close])


def test_unstructured_3x3():
    """(0 + f | g), three coefficients: SDs and correlations in θ order (sd1, cor21, cor31, sd2, cor32, sd3)."""
    d = load_case("confint", "factor_slope_reml")
    res = _fit(d)
    names = res.conf_int_all("wald", old_names=False).index.tolist()
    assert names[:7] == ["sd_f[A]|g", "cor_f[B].f[A]|g", "cor_f[C].f[A]|g", "sd_f[B]|g", "cor_f[C].f[B]|g",
                         "sd_f[C]|g", "sigma"]
    assert d["names"]["new"][:7] == ["sd_fA|g", "cor_fB.fA|g", "cor_fC.fA|g", "sd_fB|g", "cor_fC.fB|g",
                                     "sd_fC|g", "sigma"]
    ci = res.conf_int_all(parm=[".sig04", ".sig05"])
    np.testing.assert_allclose(ci.to_numpy(), _ci(d["profile"])[[3, 4]], rtol=PROFILE_RTOL)


def test_boundary_lower_limit_zero():
    d = load_case("confint", "dyestuff2_reml")
    res = _fit(d)
    ci = res.conf_int_all(parm=".sig01")
    assert ci.loc[".sig01", "2.5 %"] == 0.0
    assert ci.loc[".sig01", "97.5 %"] == pytest.approx(d["profile"]["upper"][0], rel=PROFILE_RTOL)


def test_parm_and_level():
    d = load_case("confint", "sleepstudy_reml")
    res = _fit(d)
    ci = res.conf_int_all(parm=["Days", ".sig03"])
    assert ci.index.tolist() == [".sig03", "Days"]
    full = _ci(d["profile"])
    np.testing.assert_allclose(ci.to_numpy(), full[[2, 5]], rtol=PROFILE_RTOL)
    ci90 = res.conf_int_all("wald", level=0.9, parm="beta_")
    assert list(ci90.columns) == ["5 %", "95 %"] and ci90.index.tolist() == ["Intercept", "Days"]
    assert res.conf_int_all("wald", level=0.99).columns.tolist() == ["0.5 %", "99.5 %"]
    with pytest.raises(interlace.InterlaceError):
        res.conf_int_all(parm="nope")
    with pytest.raises(interlace.InterlaceError):
        res.conf_int_all(method="bayes")


# ---------------------------------------------------------------------------- Wald
@pytest.mark.parametrize("name", CASES)
def test_wald(name):
    d = load_case("confint", name)
    res = _fit(d)
    ci = res.conf_int_all("wald")
    nv = len(ci) - len(res.fe_params)
    assert ci.iloc[:nv].isna().all().all()
    ref = _ci(d["wald"])
    assert np.all(np.isnan(ref[:nv]))
    z = st.norm.ppf(0.975)
    b, se = res.fe_params.to_numpy(), res.fe_bse.to_numpy()
    np.testing.assert_allclose(ci.iloc[nv:].to_numpy(), np.column_stack([b - z * se, b + z * se]), rtol=1e-13)
    # against lme4's default fit: estimates agree to ~1e-5 relative, or 1e-4 SE for a limit near 0
    np.testing.assert_allclose(ci.iloc[nv:].to_numpy(), ref[nv:], rtol=1e-5, atol=1e-4 * se.min())
    # statsmodels' conf_int() keeps its meaning (the fixed effects' intervals), with the model's df:
    # Wald under df_method="normal"
    res.df_method = "normal"
    np.testing.assert_allclose(np.asarray(res.conf_int()), ci.iloc[nv:].to_numpy(), rtol=1e-13)


# ---------------------------------------------------------------------------- bootstrap
@pytest.fixture(scope="module")
def dyestuff():
    d = load_case("confint", "dyestuff_reml")
    return d, _fit(d)


@pytest.fixture(scope="module")
def dyestuff_boot(dyestuff):
    _, res = dyestuff
    return res.bootstrap(n=1000, seed=1, progress=False)


def test_bootstrap_reproducible(dyestuff):
    _, res = dyestuff
    a = res.bootstrap(n=30, seed=5, progress=False)
    b = res.bootstrap(n=30, seed=5, progress=False)
    c = res.bootstrap(n=30, seed=6, progress=False)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)
    assert not np.allclose(a.replicates.to_numpy(), c.replicates.to_numpy())
    # replicate i has its own stream: the first 10 of 30 are the 10 of a run with n=10
    short = res.bootstrap(n=10, seed=5, progress=False)
    pd.testing.assert_frame_equal(short.replicates, a.replicates.iloc[:10])
    par = res.bootstrap(n=30, seed=5, progress=False, n_jobs=2)
    pd.testing.assert_frame_equal(par.replicates, a.replicates)


def test_bootstrap_structure(dyestuff, dyestuff_boot):
    _, res = dyestuff
    b = dyestuff_boot
    assert b.replicates.shape == (1000, 3) and b.n == 1000 and b.n_failed == 0
    assert b.replicates.columns.tolist() == [".sig01", ".sigma", "Intercept"]
    np.testing.assert_allclose(b.estimate.to_numpy(), [res.random_effects_sd["Batch"].iloc[0], res.sigma,
                                                       res.fe_params.iloc[0]], rtol=1e-12)
    assert b.converged.all() and b.singular.dtype == bool
    np.testing.assert_array_equal(b.singular, b.replicates[".sig01"] / b.replicates[".sigma"] < 1e-4)
    ci = b.conf_int()
    np.testing.assert_allclose(ci["2.5 %"], b.replicates.quantile(0.025))
    basic = b.conf_int(method="basic")
    np.testing.assert_allclose(basic["97.5 %"], 2 * b.estimate - b.replicates.quantile(0.025))
    normal = b.conf_int(0.9, method="normal")
    assert normal.columns.tolist() == ["5 %", "95 %"]
    boot_ci = res.conf_int_all("boot", n_boot=1000, seed=1)
    pd.testing.assert_frame_equal(boot_ci, ci)


def test_bootstrap_se_matches_analytic_se(dyestuff, dyestuff_boot):
    _, res = dyestuff
    n = dyestuff_boot.n
    se_boot = dyestuff_boot.se["Intercept"]
    assert abs(se_boot / res.fe_bse.iloc[0] - 1) < 4 / np.sqrt(2 * (n - 1))


def test_bootstrap_matches_lme4(dyestuff, dyestuff_boot):
    d, _ = dyestuff
    b = dyestuff_boot
    R = d["boot"]
    nR, n = R["nsim"], b.n
    kurt = st.kurtosis(b.replicates.to_numpy(), axis=0, fisher=False)
    rel = np.sqrt((kurt - 1) / (4 * n) + (kurt - 1) / (4 * nR))
    assert np.all(np.abs(b.se.to_numpy() / np.array(R["sd"]) - 1) < 4 * rel)
    sd = b.se.to_numpy()
    tol = 4 * 2.67 * sd * np.sqrt(1 / n + 1 / nR)
    ours = b.conf_int().to_numpy()
    theirs = _ci(R)
    for k in (1, 2):  # σ and β: near-normal replicates
        assert np.all(np.abs(ours[k] - theirs[k]) < tol[k])
    # singular refits (θ̂ at or within 1e-4 of 0): the lower percentile of the SD is (about) 0
    assert theirs[0, 0] == 0.0 and 0.0 <= ours[0, 0] < 1e-4 * b.estimate[".sigma"]


def test_bootstrap_statistic_and_restore():
    d = load_case("confint", "sleepstudy_reml")
    res = _fit(d)
    llf = res.model.loglike(res.theta)
    blups = res.random_effects["Subject"].copy()
    b = res.bootstrap(n=8, seed=3, progress=False)
    s = res.bootstrap(n=8, seed=3, progress=False, statistic=lambda r: r.fe_params)
    np.testing.assert_allclose(s.replicates.to_numpy(), b.replicates[["Intercept", "Days"]].to_numpy(), rtol=1e-10)
    f = res.bootstrap(n=4, seed=3, progress=False, statistic=lambda r: r.sigma ** 2)
    assert f.replicates.columns.tolist() == ["statistic"]
    np.testing.assert_allclose(f.replicates["statistic"], b.replicates[".sigma"].iloc[:4] ** 2, rtol=1e-10)
    # the fitted model's PLS system holds the fitted response again
    assert res.model.loglike(res.theta) == llf
    pd.testing.assert_frame_equal(res.random_effects["Subject"], blups)
    calls = []

    def fails_on_refits(r):  # the first call is on the fitted model
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("boom")
        return r.sigma

    with pytest.warns(RuntimeWarning, match="3 of 3 bootstrap refits failed"):
        bad = res.bootstrap(n=3, seed=1, progress=False, statistic=fails_on_refits)
    assert bad.n_failed == 3 and bad.replicates.isna().all().all()
    assert bad.errors[0] == "ValueError: boom"
    u = res.bootstrap(n=5, seed=3, progress=False, use_u=True)
    assert not np.allclose(u.replicates.to_numpy(), b.replicates.iloc[:5].to_numpy())
    with pytest.raises(interlace.InterlaceError):
        res.bootstrap(n=5, kind="semiparametric")
