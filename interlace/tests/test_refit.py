"""Refits to new responses (:mod:`interlace.objective.refit`) and the small-term kernels behind them.

What is asserted is a property, not agreement with interlace's own earlier output: a
refit's estimate is at the minimum of its criterion, i.e. the criterion there is within
1e-6 of the minimum a tight optimizer finds from another start (the identity template);
the lone 2 × 2 term's closed-form kernels give the criterion, β and u of the general
blocked elimination and of CHOLMOD.
"""
from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.linalg import HAVE_CHOLMOD
from interlace.objective.refit import theta_scale

TIGHT = {"xtol_rel": 1e-12, "ftol_rel": 1e-15}


def _replicates(res, n, seed):
    draw = res._results.response_sampler()
    return [draw(np.random.default_rng(s)) for s in np.random.SeedSequence(seed).spawn(n)]


@pytest.mark.parametrize("case", ["sleepstudy", "penicillin"])
def test_refits_reach_the_minimum(case, sleep, request):
    if case == "sleepstudy":  # a lone 2 × 2 term: Newton steps on vectorized stencils
        res = interlace.fit("Reaction ~ Days", sleep, random=["(Days | Subject)"])
        identity = np.array([1.0, 0.0, 1.0])
    else:  # two crossed scalar terms: BOBYQA with steps scaled to θ̂'s standard errors
        pen = interlace.datasets.load("penicillin")
        res = interlace.fit("diameter ~ 1", pen, random=["(1 | plate)", "(1 | sample)"])
        identity = np.ones(2)
    r = res._results
    model = r.model
    refit = model.refitter(r.theta, theta_scale(r.theta, r.opt_summary.derivs))
    for y in _replicates(res, 12, 7):
        est = refit(y)
        tight = model.refit(endog=y, start=identity, optimizer_options=TIGHT, check_conv=False)
        best = min(tight._results.opt_summary.fmin, est.objective)
        assert est.objective <= best + 1e-6
        assert est.converged
        # β and σ² are those of the solution at the estimate
        at = model.clone(endog=y).fitted_at(est)
        np.testing.assert_allclose(est.beta, np.asarray(at.fe_params), rtol=1e-10)
        np.testing.assert_allclose(est.sigma2, at.scale, rtol=1e-10)
    # the fitted model's criterion is untouched by the refits
    assert model.loglike(r.theta) == pytest.approx(r.llf, abs=1e-9)


def _sleep_pls(sleep, engine):
    res = interlace.fit("Reaction ~ Days", sleep, random=["(Days | Subject)"], engine=engine)
    return res._results.model.objective()


THETAS = np.array([[0.9667, 0.0152, 0.2309], [1.0, 0.0, 1.0], [0.5, -0.3, 0.01], [0.0, 0.2, 0.0],
                   [2.0, 1.5, 0.3]])


def test_small_term_kernels_match_general_elimination(sleep):
    dev = _sleep_pls(sleep, "blocked")
    pls = dev.pls
    assert pls.factor_many(THETAS) is not None  # the lone 2 × 2 term's kernels apply
    batched = dev.criteria(THETAS)
    for th, b in zip(THETAS, batched):
        fast = pls.factor(th)
        beta_f, u_f = pls.solve()
        small = pls.__dict__.pop("_small")  # the general elimination, for comparison
        try:
            ref = pls.factor(th)
            beta_r, u_r = pls.solve()
        finally:
            pls._small = small
        assert fast.ldL2 == pytest.approx(ref.ldL2, rel=1e-12, abs=1e-12)
        assert fast.ldRX2 == pytest.approx(ref.ldRX2, rel=1e-12, abs=1e-12)
        assert fast.pwrss == pytest.approx(ref.pwrss, rel=1e-11)
        np.testing.assert_allclose(beta_f, beta_r, rtol=1e-11)
        np.testing.assert_allclose(u_f, u_r, rtol=1e-9, atol=1e-12)
        assert b == pytest.approx(dev(th), rel=1e-13)


@pytest.mark.skipif(not HAVE_CHOLMOD, reason="needs CHOLMOD")
def test_small_term_kernels_match_cholmod(sleep):
    blocked, chol = _sleep_pls(sleep, "blocked"), _sleep_pls(sleep, "cholmod")
    for th in THETAS:
        assert blocked(th) == pytest.approx(chol(th), rel=1e-12)
        np.testing.assert_allclose(blocked.pls.solve()[0], chol.pls.solve()[0], rtol=1e-10)
