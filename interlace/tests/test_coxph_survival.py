"""interlace.coxph (and the fixed-part survival curves of interlace.coxme) against survival::coxph.

Fixtures: ``reference/survival/<case>.json``, made by ``reference/make_survival_reference.R``
(survival 3.5-3; the last case also coxme 2.2-22) on the coxme reference data.  The issue's
tolerance is 1e-6: every quantity is compared at 1e-6 relative (absolute for values near
zero); they agree to about 1e-12 (1e-9 for the coxme case, where β̂ comes from coxme's own
search).  Cases: strata (one and two variables), counting-process ``(start, stop]`` data,
case weights (robust variance by coxph's rule), ``cluster()`` sandwich SEs, Breslow and
Efron ties; survival curves at three covariate patterns each.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import SingularFitWarning
from interlace.tests.conftest import REF

CASES = sorted(p.stem for p in (REF / "survival").glob("*.json") if not p.stem.startswith("coxme_"))
TOL = 1e-6


def close(got, want, tol=TOL):
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 1e-3)


def load(case: str) -> tuple[dict, pd.DataFrame]:
    d = json.loads((REF / "survival" / f"{case}.json").read_text())
    return d, pd.read_csv(REF / "coxme" / d["python_call"]["data"] / "data.csv")


@pytest.fixture(scope="module", params=CASES)
def fitted(request):
    d, data = load(request.param)
    py = d["python_call"]
    w = 1 + (np.arange(1, len(data) + 1) % 3) / 2 if "weights" in py else None
    return d, interlace.coxph(py["formula"], data, ties=py.get("ties", "efron"), weights=w)


def test_cases_present():
    assert CASES == ["cgd_strata_cluster", "lung_breslow_weighted", "lung_efron", "retinopathy_cluster_breslow",
                     "retinopathy_two_strata", "timevarying_cluster_breslow"]


def test_coefficients_and_variances(fitted):
    d, res = fitted
    close(res.params, list(d["coef"].values()))
    assert len(res.params) == len(d["coef"])
    assert res.robust == d["robust"]
    close(res.cov_params(), d["var"])
    close(res.naive_cov, d["naive_var"])
    close(res.bse, np.sqrt(np.diag(d["var"])))
    close(res.model.x_means(), list(d["means"].values()))
    assert res.iterations == d["iter"] and res.converged
    assert (res.nobs, res.n_events) == (d["n"], d["nevent"])


def test_likelihoods_and_tests(fitted):
    d, res = fitted
    close([res.llnull, res.llf], d["loglik"])
    close(res.logtest["statistic"], 2 * (d["loglik"][1] - d["loglik"][0]))
    close(res.waldtest["statistic"], d["wald_test"])
    close(res.sctest["statistic"], d["score"])
    if d["robust"]:
        close(res.robscore["statistic"], d["rscore"])
    else:
        assert res.robscore is None
    close([res.aic, res.bic], [d["aic"], d["bic"]])


def test_concordance(fitted):
    d, res = fitted
    got = res.concordance.as_dict()
    for k, v in d["concordance"].items():
        close(got[k], v)


def test_residuals(fitted):
    d, res = fitted
    for kind, want in d["residuals"].items():
        got = np.asarray(res.residuals(kind))[:20]
        close(got.reshape(np.shape(want)) if np.ndim(want) == 1 else got, want)


def test_predictions(fitted):
    d, res = fitted
    p = d["predict"]
    close(res.linear_predictor.iloc[:20], d["linear_predictors"])
    for kind in ("lp", "risk", "expected", "survival"):
        close(res.predict(type=kind).iloc[:20], p[kind])
    close(res.predict(type="lp", reference="sample").iloc[:20], p["lp_sample"])
    close(res.predict(type="lp", reference="zero").iloc[:20], p["lp_zero"])
    nd = pd.DataFrame(d["newdata"])
    for kind, want in d["predict_new"].items():
        close(res.predict(nd, type=kind), want)


def _compare_curves(curves, ref: dict, k: int) -> None:
    """R's survfit output: matched strata give one concatenated column, otherwise one column per pattern."""
    t = curves.table
    labels = list(dict.fromkeys(t["curve"]))
    assert len(labels) == k
    if len(ref["surv"]) == k:
        for j, lab in enumerate(labels):
            one = t[t["curve"] == lab]
            close(one["time"], ref["time"])
            close(one["n_risk"], ref["n_risk"])
            close(one["n_event"], ref["n_event"])
            close(one["n_censor"], ref["n_censor"])
            for col in ("surv", "cumhaz", "std_err", "lower", "upper"):
                close(one[col], ref[col][j])
    else:
        close(t["time"], ref["time"])
        close(t["n_risk"], ref["n_risk"])
        for col in ("surv", "cumhaz", "std_err", "lower", "upper"):
            close(t[col], ref[col][0])
        assert [int((t["curve"] == lab).sum()) for lab in labels] == list(ref["strata"].values())


def test_survival_curves(fitted):
    d, res = fitted
    _compare_curves(res.survfit(pd.DataFrame(d["newdata"])), d["survfit"], 3)
    if "survfit_default" in d:
        _compare_curves(res.survfit(), d["survfit_default"], 1)


def test_curves_in_every_stratum():
    """newdata without the strata columns: each pattern gets a curve in every stratum."""
    d, res = load("retinopathy_two_strata")[0], None
    data = load("retinopathy_two_strata")[1]
    res = interlace.coxph(d["python_call"]["formula"], data)
    sc = res.survfit(pd.DataFrame(d["newdata_unstratified"]))
    ref = d["survfit_all_strata"]
    assert [s for _, s in sc.curves[:4]] == ["trt=0, type=adult", "trt=0, type=juvenile", "trt=1, type=adult",
                                             "trt=1, type=juvenile"]
    assert len(sc.curves) == 12
    t = sc.table
    for j, lab in enumerate(dict.fromkeys(t["curve"])):
        one = t[t["curve"] == lab]
        close(one["time"], ref["time"])
        for col in ("surv", "cumhaz", "std_err"):
            close(one[col], ref[col][j])
        ok = np.isfinite(np.asarray(ref["lower"][j], float))
        close(one["lower"].to_numpy()[ok], np.asarray(ref["lower"][j], float)[ok])


def test_coxme_fixed_part_curves():
    """CoxMEResult.survfit: the baseline hazard with the frailties in the linear predictor, curves at
    frailty 0, coxme's vcov of β in the variance (``coxme_cgd_strata_survfit.json``, see the R script)."""
    d = json.loads((REF / "survival" / "coxme_cgd_strata_survfit.json").read_text())
    data = pd.read_csv(REF / "coxme" / d["python_call"]["data"] / "data.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        res = interlace.coxme(d["python_call"]["formula"], data, random=d["python_call"]["random"])
    close(res.params, list(d["coef"].values()))
    nd = pd.DataFrame(d["newdata"])
    _compare_curves(res.survfit(nd), d["survfit"], 3)
    close(res.predict(nd, type="expected", include_re=False), d["predict_new"]["expected"])
    close(res.predict(type="expected").iloc[:20], d["expected_fitted"])
    np.testing.assert_allclose(res.predict(type="survival"), np.exp(-res.predict(type="expected")), rtol=1e-14)


def test_summary_and_baseline_hazard():
    d, data = load("cgd_strata_cluster")
    res = interlace.coxph(d["python_call"]["formula"], data)
    text = str(res.summary())
    for piece in ("Cox proportional-hazards model", "robust se", "Concordance = 0.683", "Robust score test",
                  "Strata:", "cluster(id)", "Likelihood ratio test = 24.2"):
        assert piece in text, piece
    assert "CoxPHResults" in repr(res)
    bh = res.baseline_hazard()
    assert list(bh.columns) == ["time", "hazard", "cumhaz", "strata"]
    # at the means; at x = 0 the hazard scales by exp(-means·β)
    zero = res.baseline_hazard(centered=False)
    scale = np.exp(-float(res.model.x_means() @ res.params.to_numpy()))
    np.testing.assert_allclose(zero["cumhaz"], bh["cumhaz"] * scale, rtol=1e-13)
    curves = res.survfit(pd.DataFrame(d["newdata"]))
    np.testing.assert_allclose(curves.curve("0")["surv"], np.exp(-curves.curve("0")["cumhaz"]), rtol=1e-14)
    at = curves.at([0.0, 100.0, 1e6])
    assert len(at) == 9 and np.all(at["surv"].iloc[::3] == 1.0)


def test_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    d, data = load("lung_efron")
    res = interlace.coxph(d["python_call"]["formula"], data)
    fig = res.survfit(pd.DataFrame(d["newdata"])).plot()
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 and ax.get_ylabel() == "survival"
    fig.savefig(tmp_path / "curves.png")


def test_refit_and_lr_test():
    d, data = load("lung_efron")
    full = interlace.coxph("Surv(time, status) ~ age + sex", data)
    small = interlace.coxph("Surv(time, status) ~ sex", data)
    lr = full.compare_lr_test(small)
    assert lr.df == 1 and lr.statistic == pytest.approx(2 * (full.llf - small.llf))
    again = full.model.refit(ties="breslow")
    ref = json.loads((REF / "coxph" / "lung_breslow.json").read_text())
    np.testing.assert_allclose(again.params, ref["coef"], rtol=1e-6)
    sub = full.model.refit(rows=np.arange(100))
    direct = interlace.coxph("Surv(time, status) ~ age + sex", data.iloc[:100])
    np.testing.assert_allclose(sub.params, direct.params, rtol=1e-12)


def test_robust_option_and_errors():
    d, data = load("lung_efron")
    forced = interlace.coxph("Surv(time, status) ~ age + sex", data, robust=True)
    assert forced.robust and not np.allclose(forced.bse, forced.naive_bse)
    with pytest.raises(interlace.FormulaError, match="interlace.coxme"):
        interlace.coxph("Surv(time, status) ~ age + (1 | inst)", data)
    with pytest.raises(interlace.FormulaError, match="cluster"):
        interlace.coxme("Surv(time, status) ~ age + cluster(inst) + (1 | inst)", data)
    with pytest.raises(interlace.DataError, match="stratum the model has not seen"):
        cg = load("cgd_strata_cluster")
        r = interlace.coxph(cg[0]["python_call"]["formula"], cg[1])
        r.survfit(pd.DataFrame({"treat": ["placebo"], "age": [10], "hos.cat": ["Mars"]}))
