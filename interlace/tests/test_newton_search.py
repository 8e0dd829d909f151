"""``optimizer="auto"``'s Newton search on finite differences (no gradient, few θ, dear evaluations).

The search is chosen by :attr:`LMMDeviance.newton_pays` (users × items, the weight-class engine);
here it is forced on lme4's reference cases, which it must reproduce as BOBYQA does, and run on
a small users × items design with the weight-class split, where it must reach a tight BOBYQA's
minimum and the engine's Schur block kept per first-term θ must give the criterion of a fresh
engine.
"""
from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.objective.lmm import LMMDeviance
from interlace.optimize.checks import free_derivatives
from interlace.optimize.optimizers import NEWTON_OPTIMIZER
from interlace.optimize.stencil import GroupedCriteria
from interlace.tests.conftest import fit_lmer_case, load_case, users_items_frame


@pytest.fixture
def forced_newton(monkeypatch):
    """Every LMM criterion without a gradient, and the Newton search chosen for it."""
    monkeypatch.setattr(LMMDeviance, "has_gradient", property(lambda self: False))
    monkeypatch.setattr(LMMDeviance, "newton_pays", property(lambda self: self.lower.size <= 3))


@pytest.mark.parametrize("case", ["penicillin_reml", "pastes_reml", "crossed_missing_reml", "quickstart_crossed_reml",
                                  "dyestuff_reml", "dyestuff_ml", "sleepstudy_reml", "dyestuff2_reml"])
@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
def test_lme4_references(case, engine, forced_newton):
    """lme4's estimates and criterion (1e-4, as every reference test), through the Newton search; a
    singular fit (Dyestuff2, the quickstart's crossed model: θ = 0) leaves it for BOBYQA."""
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    d = load_case("lmer", case)
    res = fit_lmer_case(d, engine)
    assert abs(res.llf - d["loglik"]) < 1e-4
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(res.fe_bse.to_numpy(), d["se"], rtol=1e-4)
    np.testing.assert_allclose(res.sigma, d["sigma"], rtol=1e-4)
    if case in ("dyestuff2_reml", "quickstart_crossed_reml"):
        assert res.opt_summary.optimizer != NEWTON_OPTIMIZER
    else:
        assert res.opt_summary.optimizer == NEWTON_OPTIMIZER
        assert res.opt_summary.messages == []



@pytest.fixture
def split_design(monkeypatch):
    """A small users × items design on the weight-class path (light users merged, heavy ones by rank-k
    updates), with the Newton search chosen as on the full-size design."""
    monkeypatch.setattr("interlace.linalg.crossprod.DENSE_A21_ELEMENTS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.MAX_COLUMN_PAIRS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.SYRK_MIN_COLUMNS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.SPLIT_COLUMN_PAIRS", 4000)
    monkeypatch.setattr("interlace.objective.lmm.GRADIENT_SEARCH_MIN_Q2", 0)
    return users_items_frame(np.random.default_rng(5), 420, 240)  # q > 500: no gradient by q solves


def test_users_items_reaches_the_minimum(split_design):
    """The Newton search's optimum is a tight BOBYQA's (criterion to 1e-9 relative, θ to 1e-5)."""
    formula = "y ~ 1 + (1 | user) + (1 | item)"
    res = interlace.fit(formula, split_design, method="REML", engine="blocked")
    assert res.model.deviance_function().pls._class_split() is not None
    assert res.opt_summary.optimizer == NEWTON_OPTIMIZER and res.opt_summary.messages == []
    from interlace.models.lmm import CrossedLME
    from interlace.optimize import minimize

    dev = CrossedLME.from_formula(formula, data=split_design, engine="blocked").deviance_function()
    tight = minimize(dev, np.ones(2), dev.lower, xtol_rel=1e-12, rhoend=1e-12)  # lme4's start, another path
    assert dev(np.asarray(res.theta)) == pytest.approx(tight.fmin, rel=1e-9)
    assert res.objective == pytest.approx(tight.fmin, rel=1e-9)
    np.testing.assert_allclose(res.theta, tight.x, rtol=1e-5)


def test_schur_kept_per_first_theta(split_design):
    """Criteria after another θ with the same first element (the kept Schur block) equal a fresh engine's."""
    from interlace.models.lmm import CrossedLME

    def dev():
        return CrossedLME.from_formula("y ~ 1 + (1 | user) + (1 | item)", data=split_design,
                                       engine="blocked").deviance_function()

    kept = dev()
    assert kept.pls._class_split() is not None
    thetas = [np.array([0.5, 0.7]), np.array([0.5, 1.3]), np.array([0.9, 1.3]), np.array([0.9, 0.2]),
              np.array([0.5, 0.2]), np.array([0.0, 0.4]), np.array([0.0, 0.8])]
    for th in thetas:
        assert kept(th) == pytest.approx(dev()(th), rel=1e-12)


def test_grouped_criteria_same_derivatives():
    """A stencil through GroupedCriteria gives the finite-difference derivatives of the plain criterion
    (lme4's formulas, ``free_derivatives`` point by point), each point evaluated once, those sharing
    the centre's first element first."""
    def fun(x):
        return float(np.exp(x[0]) * (1 + x[1] ** 2) + np.sin(x[0] * x[1]) + x[2] ** 4)

    x, lower = np.array([0.3, 0.7, 1.1]), np.zeros(3)
    seen = []

    def logged(z):
        seen.append(np.array(z))
        return fun(z)

    crit = GroupedCriteria(logged)
    got = free_derivatives(fun, x, lower, delta=1e-4, criteria=crit)
    n = crit.n_evals
    assert n == 1 + 2 * 3 + 3 * 2 and len(seen) == n
    free_derivatives(fun, x, lower, delta=1e-4, criteria=crit)
    assert crit.n_evals == n  # every point from memory
    want = free_derivatives(fun, x, lower, delta=1e-4)
    np.testing.assert_allclose(got["gradient"], want["gradient"], rtol=1e-9)
    np.testing.assert_allclose(got["hessian"], want["hessian"], rtol=1e-7, atol=1e-7)
    first = [z[0] == x[0] for z in seen]
    assert all(first[: sum(first)])  # the centre's first element first
