"""The Cox model without random effects against Debian's ``survival::coxph`` (exact), and R's BFGS.

Fixtures: ``reference/coxph/*.json``, made by ``reference/make_coxph_reference.R`` on the
coxme reference data (coxph run to eps = 1e-12).  SEs are the model-based ones (inverse
information, as coxme uses); for non-integer case weights coxph prints a robust SE instead
and keeps these in ``naive.var``.  Checked: coefficients, SEs, the null and
final log partial likelihoods, coxph's iteration count (coxme derives its inner iterations
from it), and the mixed model on the boundary (variance 0), which is this model.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.design import build_fixed
from interlace.objective.coxph import coxph_fit
from interlace.optimize import vmmin
from interlace.response.survival import CoxData
from interlace.tests.conftest import REF, ROOT

CASES = sorted(p.stem for p in (REF / "coxph").glob("*.json") if p.stem != "optim_bfgs")


def _design(d: dict):
    data = pd.read_csv(ROOT / d["data"])
    w = 1 + (np.arange(1, len(data) + 1) % 3) / 2 if d["weights"] else None
    lhs, rhs = d["python_formula"].split("~")
    time, status = (a.strip() for a in lhs.strip()[5:-1].split(","))
    fx = build_fixed(f"{time} ~ {rhs}", data)
    keep = [i for i, n in enumerate(fx.names) if n != "Intercept"]
    cd = CoxData(data[time].to_numpy(float), data[status].to_numpy(float), w, d["ties"])
    return fx.X[:, keep], cd, data


@pytest.fixture(scope="module", params=CASES)
def case(request):
    d = json.loads((REF / "coxph" / f"{request.param}.json").read_text())
    X, cd, data = _design(d)
    return d, X, cd, data


def test_cases_present():
    assert len(CASES) == 6


def test_coxph_exact(case):
    d, X, cd, _ = case
    fit = coxph_fit(X, cd, eps=1e-12)
    np.testing.assert_allclose(fit.coef, d["coef"], rtol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), d["se"], rtol=1e-8)
    np.testing.assert_allclose(fit.vcov, np.array(d["vcov"]), rtol=1e-8)
    np.testing.assert_allclose(fit.loglik, d["loglik"], rtol=0, atol=1e-9)
    assert cd.n_events == d["nevent"]


def test_coxph_iterations(case):
    """coxph's own iteration count with its default eps = 1e-9 (coxme's inner iterations use it)."""
    d, X, cd, _ = case
    assert coxph_fit(X, cd).iterations == d["iter_default"]


def test_partial_likelihood_at_zero(case):
    d, _, cd, _ = case
    assert abs(cd.loglik(np.zeros(cd.n)) - d["loglik"][0]) < 1e-9


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_mixed_model_at_zero_variance_is_coxph(ties):
    """lung_inst: the exact maximizer puts the frailty variance at 0, where the model is coxph."""
    d = json.loads((REF / "coxph" / f"lung_{ties}.json").read_text())
    data = pd.read_csv(ROOT / d["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.coxme("Surv(time, status) ~ age + sex + (1 | inst)", data, ties=ties, optimizer="bobyqa")
    assert res.theta[0] < 1e-6 and res.is_singular
    np.testing.assert_allclose(res.params, d["coef"], rtol=1e-6)
    np.testing.assert_allclose(res.bse, d["se"], rtol=1e-6)
    assert abs(res.llf - d["loglik"][1]) < 1e-8
    assert abs(res.loglik_null - d["loglik"][0]) < 1e-9
    assert abs(res.df_penalized - 2.0) < 1e-10
    np.testing.assert_allclose(res.random_effects["inst"], 0.0, atol=1e-12)


@pytest.mark.parametrize("name, start, reltol", [("rosenbrock", [-1.2, 1.0], None),
                                                 ("rosenbrock_reltol", [1.5, -0.5], 1e-5),
                                                 ("quadratic", [0.0, 0.0, 0.0], 1e-5)])
def test_vmmin_follows_r_optim_bfgs(name, start, reltol):
    ref = json.loads((REF / "coxph" / "optim_bfgs.json").read_text())[name]

    def fr(x):
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2

    def quad(x):
        return float(np.sum((x - np.array([1, -2, 0.5])) ** 2 * np.array([1, 10, 100])) + 0.1 * x[0] * x[1])

    kw = {} if reltol is None else {"reltol": reltol}
    opt = vmmin(quad if name == "quadratic" else fr, start, **kw)
    np.testing.assert_allclose(opt.x, ref["par"], rtol=1e-8)
    np.testing.assert_allclose(opt.fmin, ref["value"], rtol=1e-6, atol=1e-12)
    assert opt.converged == (ref["convergence"] == 0)
    # gradient evaluations as R counts them; function counts may differ by one step at the
    # end, where R's compiled arithmetic (fused multiply-add) rounds the last trial point differently
    assert opt.counts[1] == ref["counts"][1]
    assert abs(opt.counts[0] - ref["counts"][0]) <= 1
