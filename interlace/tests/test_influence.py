"""Leverages and deletion diagnostics against lme4 (``reference/influence/*.json``).

The fixtures come from ``make_influence_reference.R``.  Each deletion case holds lme4's
own ``influence()`` output ("lme4", refitted with lme4's default, loose optimizer
settings) and the same definitions on fully converged refits ("tight").  Tolerances:

* hat values and Cook's distances of linear mixed models: 1e-4 relative to "tight";
  DFBETA / DFBETAS too (up to 1e-4 of the largest absolute value: single entries near
  zero are relative noise);
* GLMMs (cbpp): 1e-3 relative;
* lme4's own output: the same, except where its loose refits are off — sleepstudy case
  deletion (up to 0.35 % on the smallest distances, checked at 5e-3) and cbpp
  (glmer's default tolPwrss, 2.6 %, checked at 5e-2);
* the one-step approximation (θ held at θ̂) equals a refit at fixed θ to 1e-8; against
  the full refits (sleepstudy) Cook's distances agree within 5 % of the largest, the
  five largest are the same units, DFBETAS within 15 % of the largest.

The influence plots are tested in ``test_influence_plots`` (skipped without matplotlib,
which must not skip these comparisons).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.diagnostics import InfluenceResult, hat_values
from interlace.diagnostics import influence as influence_module
from interlace.diagnostics.influence import _lmm_refit, influence
from interlace.errors import InterlaceError
from interlace.tests.conftest import ENGINES, case_data, load_case

RTOL_LMM = 1e-4
RTOL_GLMM = 1e-3


# ----------------------------------------------------------------------------- fixtures
def _factors(data: pd.DataFrame, d: dict) -> pd.DataFrame:
    data = data.copy()
    for col in d["python"].get("factors") or []:
        data[col] = data[col].astype(str)
    return data


def _fit(case: str, engine: str = "auto"):
    d = load_case("influence", case)
    py = d["python"]
    data = _factors(case_data(d), d)
    if py.get("family"):
        return d, interlace.glmer(py["formula"], data, family=py["family"], random=py["random"], engine=engine)
    return d, interlace.fit(py["formula"], data, random=py["random"], weights=py.get("weights"), engine=engine)


@pytest.fixture(scope="module")
def sleep():
    return _fit("sleepstudy_subject")


@pytest.fixture(scope="module")
def sleep_subject(sleep):
    return sleep[1].influence(groups="Subject", progress=False)


@pytest.fixture(scope="module")
def sleep_obs(sleep):
    return sleep[1].influence(obs=True, progress=False)


@pytest.fixture(scope="module")
def cbpp():
    return _fit("cbpp_herd")


@pytest.fixture(scope="module")
def cbpp_herd(cbpp):
    return cbpp[1].influence(groups="herd", progress=False)


def _aligned(series_or_frame, units: list[str]):
    """Rows in the reference's unit order (labels compared as strings)."""
    labels = [str(v) for v in series_or_frame.index]
    return series_or_frame.iloc[[labels.index(u) for u in units]]


def _check_deletions(inf: InfluenceResult, ref: dict, rtol: float, coef_scale: bool = True) -> None:
    units = ref["units"]
    assert len(inf.cooks_distance) == len(units)
    np.testing.assert_allclose(_aligned(inf.cooks_distance, units).to_numpy(), ref["cooks_distance"], rtol=rtol)
    for what in ("dfbeta", "dfbetas"):
        got = _aligned(getattr(inf, what), units)
        for j, name in enumerate(ref[what]):
            want = np.asarray(ref[what][name], float)
            atol = rtol * np.max(np.abs(want)) if coef_scale else 0.0
            np.testing.assert_allclose(got.iloc[:, j].to_numpy(), want, rtol=rtol, atol=atol,
                                       err_msg=f"{what}[{name}]")


# ----------------------------------------------------------------------------- hat values
@pytest.mark.parametrize("case", ["sleepstudy_subject", "penicillin_plate", "weights_hat"])
@pytest.mark.parametrize("engine", ENGINES)
def test_hat_values_lmm(case, engine):
    d, res = _fit(case, engine)
    h = res.hat_values()
    assert isinstance(h, pd.Series) and len(h) == d["nobs"]
    np.testing.assert_allclose(h.to_numpy(), d["hatvalues"]["tight"], rtol=RTOL_LMM)
    np.testing.assert_allclose(h.to_numpy(), d["hatvalues"]["lme4"], rtol=RTOL_LMM)
    assert np.all((h > 0) & (h < 1))


def test_hat_values_glmm_are_lme4s(cbpp):
    d, res = cbpp
    h = hat_values(res)
    np.testing.assert_allclose(h.to_numpy(), d["hatvalues"]["tight"], rtol=RTOL_GLMM)
    np.testing.assert_allclose(h.to_numpy(), d["hatvalues"]["lme4"], rtol=RTOL_GLMM)
    assert "may not make sense" in d["hatvalues"]["warning"]


def test_hat_values_are_the_dense_hat_matrix_diagonal(sleep, monkeypatch):
    """Against ∂ŷ/∂y from dense algebra, with chunks of a few rows."""
    res = sleep[1]
    re = res.model.random_effects_structure
    ZL = (re.Z() @ re.Lambda(res.theta)).toarray()
    X = np.asarray(res.model.exog, float)
    A = np.hstack([ZL, X])
    M = A.T @ A
    M[: re.q, : re.q] += np.eye(re.q)
    H = A @ np.linalg.solve(M, A.T)
    monkeypatch.setattr(influence_module, "CHUNK_ELEMENTS", 7 * re.q)  # chunks of 7 rows
    np.testing.assert_allclose(hat_values(res).to_numpy(), np.diag(H), rtol=1e-10)
    # the trace is the effective number of parameters, between p and p + q
    assert X.shape[1] < np.trace(H) < X.shape[1] + re.q


# ----------------------------------------------------------------------------- deletion against lme4
def test_sleepstudy_subject_deletion(sleep, sleep_subject):
    d = sleep[0]
    _check_deletions(sleep_subject, d["tight"], RTOL_LMM)
    _check_deletions(sleep_subject, d["lme4"], RTOL_LMM)
    assert sleep_subject.unit == "Subject" and sleep_subject.method == "refit"
    assert sleep_subject.converged.all() and (sleep_subject.n_rows == 10).all()


def test_sleepstudy_observation_deletion(sleep, sleep_obs):
    d = load_case("influence", "sleepstudy_obs")
    cd = sleep_obs.cooks_distance.to_numpy()
    assert cd.shape == (180,) and sleep_obs.unit == "observation"
    np.testing.assert_allclose(cd, d["tight"]["cooks_distance"], rtol=RTOL_LMM)
    np.testing.assert_allclose(cd, d["lme4"]["cooks_distance"], rtol=5e-3)  # lme4's loose refits
    for j, name in enumerate(d["tight"]["dfbeta"]):
        want = np.asarray(d["tight"]["dfbeta"][name])
        np.testing.assert_allclose(sleep_obs.dfbeta.iloc[:, j], want, rtol=RTOL_LMM,
                                   atol=RTOL_LMM * np.max(np.abs(want)))


def test_penicillin_plate_deletion():
    d, res = _fit("penicillin_plate")
    inf = res.influence(groups="plate", progress=False)
    _check_deletions(inf, d["tight"], RTOL_LMM)
    _check_deletions(inf, d["lme4"], RTOL_LMM)
    assert list(inf.dfbeta.columns) == ["Intercept"]


def test_cbpp_herd_deletion(cbpp, cbpp_herd):
    d = cbpp[0]
    _check_deletions(cbpp_herd, d["tight"], RTOL_GLMM)
    # lme4's own refits stop at glmer's default tolPwrss = 1e-7
    np.testing.assert_allclose(_aligned(cbpp_herd.cooks_distance, d["lme4"]["units"]).to_numpy(),
                               d["lme4"]["cooks_distance"], rtol=5e-2)
    assert cbpp_herd.converged.all()
    np.testing.assert_allclose(cbpp_herd.sigma_deleted, 1.0)


def test_refit_equals_fitting_the_reduced_data(sleep, sleep_subject):
    """The deletion refit (levels kept, rows removed) is the model fitted from scratch without them."""
    data = case_data(sleep[0])
    sub = interlace.fit("Reaction ~ Days", data[data["Subject"] != 308], random="(Days | Subject)")
    np.testing.assert_allclose(sleep_subject.fixed_effects_deleted.loc[308], sub.fe_params, rtol=1e-6)
    np.testing.assert_allclose(sleep_subject.vcov_deleted[0], sub.cov_fe.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(sleep_subject.sigma_deleted.loc[308], sub.sigma, rtol=1e-6)
    np.testing.assert_allclose(sleep_subject.theta_deleted.loc[308], sub.theta, rtol=1e-4)


def test_groups_may_be_a_data_column(sleep):
    """Deleting the days (a column, not a grouping factor): ten units of 18 rows."""
    res = sleep[1]
    inf = res.influence(groups="Days", progress=False)
    assert list(inf.cooks_distance.index) == list(range(10)) and (inf.n_rows == 18).all()
    data = case_data(sleep[0])
    sub = interlace.fit("Reaction ~ Days", data[data["Days"] != 9], random="(Days | Subject)")
    np.testing.assert_allclose(inf.fixed_effects_deleted.loc[9], sub.fe_params, rtol=1e-6)


# ----------------------------------------------------------------------------- one-step approximation
@pytest.mark.parametrize("engine", ENGINES)
def test_one_step_is_the_refit_at_fixed_theta(engine):
    _, res = _fit("weights_hat", engine)
    approx = res.influence(groups="g", approx=True, progress=False)
    assert approx.method == "one-step"
    units = influence_module._deletion_units(res._results, "g", False)
    for i, rows in enumerate(units.rows()[:6]):
        keep = np.ones(int(res.nobs), bool)
        keep[rows] = False
        exact = _lmm_refit(res._results, keep, "bobyqa", optimize=False)
        np.testing.assert_allclose(approx.fixed_effects_deleted.iloc[i], exact.beta, rtol=1e-8)
        np.testing.assert_allclose(approx.vcov_deleted[i], exact.vcov, rtol=1e-8)
        np.testing.assert_allclose(approx.sigma_deleted.iloc[i], exact.sigma, rtol=1e-8)
    obs = res.influence(obs=True, approx=True, progress=False)
    keep = np.ones(int(res.nobs), bool)
    keep[17] = False
    exact = _lmm_refit(res._results, keep, "bobyqa", optimize=False)
    np.testing.assert_allclose(obs.fixed_effects_deleted.iloc[17], exact.beta, rtol=1e-8)


def test_one_step_against_the_refits(sleep, sleep_subject, sleep_obs):
    res = sleep[1]
    for exact, kw in [(sleep_subject, {"groups": "Subject"}), (sleep_obs, {"obs": True})]:
        approx = res.influence(approx=True, progress=False, **kw)
        a, e = approx.cooks_distance, exact.cooks_distance
        assert np.max(np.abs(a - e)) < 0.05 * e.max()
        assert list(a.nlargest(5).index) == list(e.nlargest(5).index)
        largest = np.max(np.abs(exact.dfbetas.to_numpy()))
        assert np.max(np.abs(approx.dfbetas - exact.dfbetas).to_numpy()) < 0.15 * largest
        np.testing.assert_allclose(approx.theta_deleted.to_numpy(), np.tile(res.theta, (len(a), 1)))


# ----------------------------------------------------------------------------- object and errors
def test_influence_result_helpers(sleep_subject):
    top = sleep_subject.largest(3)
    assert list(top.index) == list(sleep_subject.cooks_distance.nlargest(3).index)
    assert list(top.columns) == ["cooks_distance", "dfbetas_Intercept", "dfbetas_Days"]
    assert sleep_subject.cutoff == pytest.approx(4 / 18)
    assert "18 Subject deletions (refit)" in repr(sleep_subject)
    np.testing.assert_allclose(sleep_subject.dfbeta, sleep_subject.fixed_effects_deleted - sleep_subject.fixed_effects)


def test_progress_bar_runs(sleep, capsys):
    inf = influence(sleep[1], groups="Subject", approx=True, progress=True)
    assert "influence: deleting Subject" in capsys.readouterr().err
    assert len(inf.cooks_distance) == 18


def test_errors(sleep, cbpp):
    res = sleep[1]
    with pytest.raises(InterlaceError, match="groups="):
        res.influence()
    with pytest.raises(InterlaceError, match="not both"):
        res.influence(groups="Subject", obs=True)
    with pytest.raises(InterlaceError, match="not found"):
        res.influence(groups="subject")
    with pytest.raises(InterlaceError, match="linear mixed models"):
        cbpp[1].influence(groups="herd", approx=True)
    with pytest.raises(InterlaceError, match="not for"):
        hat_values(object())


def test_clmm_results_are_refused():
    wine = interlace.datasets.load("wine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.clmm("rating ~ temp + contact", wine, random="(1 | judge)")
    with pytest.raises(InterlaceError, match="CLMMResult"):
        m.hat_values()
    with pytest.raises(InterlaceError, match="CLMMResult"):
        m.influence(groups="judge")


# ----------------------------------------------------------------------------- residual structures
def test_residual_structures_are_refused(sleep):
    data = case_data(sleep[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit("Reaction ~ Days", data, random="(1 | Subject)", correlation=interlace.AR1(time="Days"))
    with pytest.raises(InterlaceError, match="residual correlation"):
        res.hat_values()
    with pytest.raises(InterlaceError, match="residual correlation"):
        res.influence(groups="Subject", approx=True)
