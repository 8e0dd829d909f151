"""A check shared by the Cox tests: the risk-set products of a ``CoxData`` state against dense algebra."""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def assert_risk_set_algebra(cd: Any, eta: np.ndarray, rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """The state's Hessian in η against central differences of its gradient, and its products
    (``gram``, ``cross``, ``indicator_diag``) against the dense Hessian with a random indicator
    matrix Z (6 levels) and a random X (3 columns) drawn from ``rng``.  Returns (state, X)."""
    n = cd.n
    st = cd.state(eta)
    A = st.hessian_eta()
    h = 1e-5
    num = np.column_stack([(cd.state(eta + h * e).grad - cd.state(eta - h * e).grad) / (2 * h) for e in np.eye(n)])
    np.testing.assert_allclose(-num, A, atol=1e-7)
    codes = rng.integers(0, 6, n)
    Z = sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, 6))
    X = rng.normal(size=(n, 3))
    np.testing.assert_allclose(st.gram(X), X.T @ A @ X, atol=1e-12)
    np.testing.assert_allclose(st.gram(Z), Z.T @ A @ Z.toarray(), atol=1e-12)
    np.testing.assert_allclose(st.cross(Z, X), Z.T @ A @ X, atol=1e-12)
    np.testing.assert_allclose(st.indicator_diag(codes, 6), np.diag(Z.T @ A @ Z.toarray()), atol=1e-12)
    return st, X
