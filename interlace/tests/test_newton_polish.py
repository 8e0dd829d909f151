"""The Newton refinement after BOBYQA (optimize.newton_polish): fits no longer depend on row order."""
from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.optimize import newton_polish
from interlace.optimize.optimizers import OptSummary


@pytest.mark.parametrize("name, formula", [("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
                                           ("pastes", "strength ~ 1 + (1 | batch/cask)")])
def test_row_order_does_not_move_the_estimates(name, formula):
    data = interlace.datasets.load(name)
    a = interlace.fit(formula, data)
    b = interlace.fit(formula, data.sample(frac=1.0, random_state=2))
    assert a.opt_summary.polished and b.opt_summary.polished
    # without the step BOBYQA's stopping points differ by 5.5e-6 (sleepstudy) and 2.7e-6 (Pastes)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    np.testing.assert_allclose(a.fe_bse, b.fe_bse, rtol=1e-8)
    assert abs(a.llf - b.llf) < 1e-9


def test_the_step_reaches_the_minimum_of_a_quadratic():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    xmin = np.array([0.7, 1.3])

    def f(x):
        d = x - xmin
        return float(d @ A @ d) + 5.0

    x0 = xmin + np.array([2e-4, -1e-4])
    opt = OptSummary("test", x0, np.zeros(2), x0.copy(), f(x0), 10, True, "ok", 0.0)
    d = {"free": np.arange(2), "gradient": 2 * A @ (x0 - xmin), "hessian": 2 * A}
    assert newton_polish(f, opt, np.zeros(2), d)
    np.testing.assert_allclose(opt.x, xmin, atol=1e-12)
    assert opt.n_evals == 11
    # refused: a step beyond a refinement, a point below the bounds, an indefinite Hessian
    far = OptSummary("test", x0, np.zeros(2), xmin + 0.5, f(xmin + 0.5), 10, True, "ok", 0.0)
    assert not newton_polish(f, far, np.zeros(2), {"free": np.arange(2), "gradient": 2 * A @ np.full(2, 0.5),
                                                   "hessian": 2 * A})
    low = OptSummary("test", x0, np.zeros(2), x0.copy(), f(x0), 10, True, "ok", 0.0)
    assert not newton_polish(f, low, np.array([0.7001, 0.0]), d)
    bad = OptSummary("test", x0, np.zeros(2), x0.copy(), f(x0), 10, True, "ok", 0.0)
    assert not newton_polish(f, bad, np.zeros(2), {**d, "hessian": -2 * A})
    assert np.array_equal(bad.x, x0) and not bad.polished
