"""The exact gradient of the GLMM Laplace deviance (objective/glmm_gradient.py) against central
differences of the deviance (statsmodels' numdiff), on the lme4 reference cases' models: binomial
logit, probit and cloglog, Poisson with an offset, Gamma and inverse Gaussian with a log link (their
dispersion inside the conditional log-likelihood), the negative binomial, binomial proportions with
prior weights, a vector-valued term and three crossed terms, on both engines."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.tools.numdiff import approx_fprime

import interlace
from interlace.families import resolve_family
from interlace.models.glmm import GLMM
from interlace.tests.conftest import load_case
from interlace.tests.test_glmer_reference import glmer_inputs

CASES = ["binary_cloglog", "binary_crossed", "binary_slope", "cbpp_logit", "cbpp_probit", "cbpp_prop_weights",
         "gamma_log", "grouseticks_poisson", "invgauss_log", "negbin", "poisson_offset", "verbagg_laplace"]


def _model(case: str, engine: str) -> GLMM:
    d = load_case("glmer", case)
    py = d["python"]
    formula, data = glmer_inputs(d)
    family = resolve_family(py["family"], py["link"], nb_theta=d.get("nb_theta") or np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLMM.from_formula(formula, data, family=family, random=py["random"], weights=py["weights"],
                                 offset=py["offset"], nAGQ=1, engine=engine)


@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
@pytest.mark.parametrize("case", CASES)
def test_laplace_gradient_matches_differences(case, engine):
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    model = _model(case, engine)
    obj = model.deviance_function()
    assert obj.has_gradient
    d = load_case("glmer", case)
    theta = np.asarray(d["theta"], float)
    theta = np.where(obj.lower[:theta.size] == 0, 0.9 * theta + 0.05, 0.9 * theta)
    x = np.concatenate([theta, np.asarray(d["fixef"]["values"], float) + 0.03])
    f, g = obj.value_and_gradient(x)
    assert np.isfinite(f) and f == pytest.approx(obj(x), rel=1e-10, abs=1e-8)
    fd = approx_fprime(x, obj, epsilon=1e-5 * np.maximum(1.0, np.abs(x)), centered=True)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, float(np.max(np.abs(fd)))))


@pytest.mark.parametrize("case", ["verbagg_laplace", "binary_slope", "gamma_log"])
def test_auto_stage2_ends_where_the_gradient_vanishes(case):
    """optimizer="auto" (the default) ends by Newton steps on the exact gradient: the scaled gradient
    at the answer is at the objective's rounding, and the fit keeps passing the lme4 checks
    (test_glmer_reference); "bobyqa" stays lme4's path."""
    d = load_case("glmer", case)
    py = d["python"]
    _, data = glmer_inputs(d)
    kw = {"family": py["family"], "link": py["link"], "random": py["random"], "weights": py["weights"],
          "offset": py["offset"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.glmer(py["formula"], data, **kw)
        bob = interlace.glmer(py["formula"], data, optimizer="bobyqa", **kw)
    assert res.opt_summary.optimizer == "L-BFGS-B+analytic"
    assert bob.opt_summary.optimizer in ("nlopt_bobyqa", "pybobyqa")
    obj = res.model.deviance_function()
    x = np.concatenate([res.theta, np.asarray(res.fe_params)])
    g = obj.value_and_gradient(x)[1]
    H = res.opt_summary.derivs["hessian"]
    step = np.linalg.solve(H, g[res.opt_summary.derivs["free"]])   # the Newton step left: ~0
    assert np.max(np.abs(step)) < 1e-6 * max(1.0, float(np.max(np.abs(x))))
    # lme4's tight-control estimates (the references), closer than the suite's 1e-3
    np.testing.assert_allclose(np.asarray(res.fe_params), d["fixef"]["values"], rtol=1e-4, atol=1e-6)
