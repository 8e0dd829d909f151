"""The blocked engine's lean path for scalar terms with a dense A21 (:mod:`interlace.linalg.scalar_crossed`)
against a dense computation from the definitions.

With A = [ZΛ X y]ᵀ W [ZΛ X y] + diag(I_q, 0, 0), built here densely from the level codes, θ and the
weights (no interlace code), and L its lower Cholesky factor:

* ``ldL2 = log|ΛᵀZᵀWZΛ + I|`` (``slogdet``), ``ldRX2 = 2 Σ log L_jj`` over X's columns and
  ``pwrss = L_yy²``;
* after the factorization the engine's solves are those of the same matrices: u and β from the
  dense normal equations, ``solve_M(B) = M⁻¹B``, and the gradient blocks ``Σ_l (M⁻¹ΛᵀZᵀWZ)_ll``
  over each term's levels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interlace import fit
from interlace.design import build_fixed, build_frame, build_random_effects
from interlace.formula import model_terms
from interlace.linalg import RowEngines
from interlace.linalg.scalar_crossed import ScalarCrossedFactor

THETAS = {2: [(0.8, 1.3), (2.0, 0.4), (0.0, 0.9), (1.1, 0.0), (0.05, 3.0)],
          3: [(0.8, 1.3, 0.6), (1.7, 0.2, 2.2), (0.9, 0.0, 0.5), (0.0, 0.7, 1.4)]}


def _frame():
    rng = np.random.default_rng(42)
    n = 400
    g1, g2, g3 = rng.integers(0, 35, n), rng.integers(0, 11, n), rng.integers(0, 4, n)
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": [f"a{c:02d}" for c in g1], "g2": [f"b{c:02d}" for c in g2],
                      "g3": [f"c{c}" for c in g3], "w": rng.uniform(0.4, 2.5, n)})
    d["y"] = (1 + 0.5 * d.x + 0.9 * rng.normal(size=35)[g1] + 0.6 * rng.normal(size=11)[g2]
              + 0.4 * rng.normal(size=4)[g3] + rng.normal(size=n))
    return d


def _engine(d, n_terms):
    random = ["(1 | g1)", "(1 | g2)", "(1 | g3)"][:n_terms]
    fixed, specs = model_terms("y ~ x", random=random)
    frame = build_frame(d, fixed, specs, weights="w")
    fx = build_fixed(fixed, frame.data)
    re = build_random_effects(specs, frame.data)
    pls, rows = RowEngines(re, fx.X, "blocked").get()
    pls.load(rows(fx.y, frame.weights))
    return re, pls


def _dense(d, re, theta):
    """``(M, ZΛ-augmented A, L, X columns, per-term column ranges, A_Z = ZᵀWZ, Λ)`` from the definitions."""
    n = len(d)
    cols, lam = [], []
    for k, t in enumerate(re.terms):
        codes, _ = pd.factorize(d[t.name], sort=True)
        Zk = np.zeros((n, codes.max() + 1))
        Zk[np.arange(n), codes] = 1.0
        cols.append(Zk)
        lam.append(np.full(Zk.shape[1], theta[re.theta_slice(k)][0]))
    Z, lam = np.hstack(cols), np.concatenate(lam)
    w = d.w.to_numpy()
    X = np.column_stack([np.ones(n), d.x.to_numpy()])
    U = np.column_stack([Z * lam, X, d.y.to_numpy()])
    A = U.T @ (w[:, None] * U)
    q = Z.shape[1]
    A[:q, :q] += np.eye(q)
    sizes = np.cumsum([0] + [c.shape[1] for c in cols])
    return A, np.linalg.cholesky(A), q, sizes, Z.T @ (w[:, None] * Z), lam


@pytest.mark.parametrize("n_terms", [2, 3])
def test_lean_factor_equals_dense_definition(n_terms):
    d = _frame()
    re, pls = _engine(d, n_terms)
    assert [t.name for t in re.terms][:2] == ["g1", "g2"]
    for theta in THETAS[n_terms]:
        theta = np.asarray(theta, float)
        f = pls.factor(theta)
        assert isinstance(pls.__dict__.get("_lean"), ScalarCrossedFactor)  # the lean path ran
        A, L, q, sizes, AZ, lam = _dense(d, re, theta)
        M = A[:q, :q]
        assert f.ok
        assert f.ldL2 == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-11, abs=1e-11)
        assert f.ldRX2 == pytest.approx(2.0 * np.log(np.diag(L)[q:q + 2]).sum(), rel=1e-11, abs=1e-11)
        assert f.pwrss == pytest.approx(L[-1, -1] ** 2, rel=1e-11)

        # the state left pending: β and u, solves with M, the gradient's blocks
        beta, u = pls.solve()
        sol = np.linalg.solve(A[:-1, :-1], A[:-1, -1])  # [u; β] of the penalized normal equations
        np.testing.assert_allclose(beta, sol[q:], rtol=1e-9)
        np.testing.assert_allclose(u, sol[:q], rtol=1e-9, atol=1e-11)
        B = np.random.default_rng(1).normal(size=(q, 3))
        np.testing.assert_allclose(pls.solve_M(B), np.linalg.solve(M, B), rtol=1e-9, atol=1e-12)
        blocks = pls.logdet_grad_blocks(theta)
        G = np.linalg.solve(M, lam[:, None] * AZ)  # M⁻¹ΛᵀZᵀWZ
        for k, blk in enumerate(blocks):
            assert float(blk[0, 0]) == pytest.approx(np.trace(G[sizes[k]:sizes[k + 1], sizes[k]:sizes[k + 1]]),
                                                     rel=1e-8, abs=1e-10)


def test_kept_first_blocks_change_nothing():
    """Values at a θ1 seen before (its Schur block kept) equal those of an engine that never saw it."""
    d = _frame()
    _, pls = _engine(d, 2)
    points = [(0.8, 1.3), (0.8, 1.4), (0.9, 1.3), (0.7, 1.3), (0.8, 1.2), (0.9, 1.4), (0.7, 1.2), (1.0, 1.0),
              (1.1, 1.0), (1.2, 1.0), (1.3, 1.0), (0.8, 1.3)]
    seq = [pls.factor(np.array(p)) for p in points]
    for p, f in zip(points, seq):
        _, fresh = _engine(d, 2)
        g = fresh.factor(np.array(p))
        assert (f.ldL2, f.ldRX2, f.pwrss) == (g.ldL2, g.ldRX2, g.pwrss)


def test_crossed_fit_searches_by_newton():
    """Two crossed scalar terms: ``"auto"`` searches by Newton steps on stencils grouped by θ1, and ends
    no worse than BOBYQA."""
    d = _frame()
    auto = fit("y ~ x", data=d, random=["(1 | g1)", "(1 | g2)"], weights="w", engine="blocked")
    bobyqa = fit("y ~ x", data=d, random=["(1 | g1)", "(1 | g2)"], weights="w", engine="blocked",
                 optimizer="bobyqa")
    assert auto.opt_summary.optimizer == "Newton+finite-differences"
    assert auto.llf >= bobyqa.llf - 1e-9
    np.testing.assert_allclose(auto.theta, bobyqa.theta, rtol=1e-5)


def test_copied_and_pickled_engines_factor_alike():
    """The lean path's buffers survive ``copy.deepcopy`` and pickling (results keep their engine)."""
    import copy
    import pickle

    d = _frame()
    _, pls = _engine(d, 2)
    theta = np.array([0.8, 1.3])
    f = pls.factor(theta)
    for other in (copy.deepcopy(pls), pickle.loads(pickle.dumps(pls))):
        for th in (np.array([1.1, 0.4]), theta):
            g, h = other.factor(th), pls.factor(th)
            assert (g.ldL2, g.ldRX2, g.pwrss) == (h.ldL2, h.ldRX2, h.pwrss)
    assert pls.factor(theta).pwrss == f.pwrss
