"""The gradient search's stopping (issue 20, round four): the hand-over to the checks' Newton steps, the
Hessian column solved from the search's last step, the last Newton step taken on the quadratic model.

Hand derivations on smooth functions whose minimum and Hessian are known in closed form.
"""
from __future__ import annotations

import numpy as np

from interlace.optimize.gradient import (
    HANDOVER_STEP,
    gradient_derivatives,
    minimize_with_gradient,
)

A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
X_STAR = np.array([0.7, 0.3, 1.2])


def _quadratic(x: np.ndarray) -> tuple[float, np.ndarray]:
    d = np.asarray(x, float) - X_STAR
    return 0.5 * float(d @ A @ d) + 10.0, A @ d


#: A criterion of many rows: curvature ~1e4 (the scales of the search then ~1e-2)
K = 1e4


def _quartic(x: np.ndarray) -> tuple[float, np.ndarray]:
    """K times (the quadratic plus Σ (x − x*)⁴): minimum at x*, Hessian K A there, curvature changing away."""
    d = np.asarray(x, float) - X_STAR
    f, g = _quadratic(x)
    return K * (f + float(np.sum(d ** 4))), K * (g + 4 * d ** 3)


def test_pair_column_is_solved_from_the_step():
    """A quadratic's gradient changes by exactly A s over a step s: the solved column equals A's."""
    x = np.array([0.5, 0.4, 1.0])
    s = np.array([2e-4, -5e-4, 1e-4])
    y = _quadratic(x + s)[1] - _quadratic(x)[1]
    calls = []

    def vg(z):
        calls.append(z)
        return _quadratic(z)

    d = gradient_derivatives(vg, x, np.full(3, -np.inf), g0=_quadratic(x)[1], pair=(s, y))
    assert len(calls) == 2  # the column along which s moves most (the second) is not differenced
    np.testing.assert_allclose(d["hessian"], A, rtol=1e-6)


def test_pair_ignored_when_it_moves_a_bounded_parameter():
    """A step that moves a parameter on its bound of 0 (left out of the derivatives) is not used."""
    x = np.array([0.5, 0.0, 1.0])
    s = np.array([2e-4, -5e-4, 1e-4])
    d = gradient_derivatives(_quadratic, x, np.array([-np.inf, 0.0, -np.inf]), g0=_quadratic(x)[1],
                             pair=(s, np.zeros(3)))
    np.testing.assert_array_equal(d["free"], [0, 2])
    np.testing.assert_allclose(d["hessian"], A[np.ix_([0, 2], [0, 2])], rtol=1e-6)


def test_search_hands_over_and_newton_steps_finish():
    """With scales, the search hands over before its own stop and the Newton steps end at the minimum."""
    x0 = np.array([2.0, -1.0, 3.0])
    opt, derivs = minimize_with_gradient(lambda x: _quartic(x)[0], _quartic, x0, np.full(3, -np.inf),
                                         scale=lambda x: np.full(3, 2.0 ** -7))
    assert opt is not None and derivs is not None
    assert opt.converged
    assert "Newton steps finish" in opt.message
    np.testing.assert_allclose(opt.x, X_STAR, atol=1e-8)
    assert np.max(np.abs(derivs["gradient"])) < 1e-4 * K
    np.testing.assert_allclose(derivs["hessian"], K * A, rtol=1e-3)
    assert HANDOVER_STEP < 1e-3  # below the Newton steps' refinement bound
