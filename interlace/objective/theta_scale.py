"""Scales of θ for a gradient search: the criterion's curvature in each θ entry, estimated from counts.

L-BFGS-B's first step is a plain gradient step (its first Hessian model is the identity), so on
an LMM criterion, whose curvature differs between θ entries by orders of magnitude (InstEval at
its optimum: 5.7·10⁴ in the students' θ, 4.2·10³ in the departments'), the first trial
point lands far away (θ = 80 there) and the line search spends two or three evaluations coming
back.  Searching over ``θ_k / s_k`` with ``s_k ≈ h_k^(−1/2)``, ``h_k`` an estimate of the
criterion's second derivative in θ_k, makes that first model about right.

For a scalar term with diagonal products ``a_c = (ZᵀWZ)_cc`` per level c, the expected
information about τ = θ² in −2 log-likelihood is ``Σ_c (a_c / (τ a_c + 1))²`` (a level's
observations see ``τ a_c + 1`` of variance per unit of σ²), so in θ

    h(θ) = 4 θ² Σ_c (a_c / (θ² a_c + 1))²,

which tends to ``4 L / θ²`` (L levels) when every level is well determined.  At InstEval's
optimum it gives 5.9·10⁴, 1.7·10⁴ and 5.4·10³ (the last with θ² floored, below) against the
finite-difference Hessian's 5.7·10⁴, 1.7·10⁴ and 4.2·10³ (at the MIVQUE0 start: 6.0·10⁴,
1.5·10⁴, 5.4·10³).
For an entry of a vector term's template in row r, ``θ²`` is the template row's squared norm
(the relative variance of coefficient r) and ``a_c`` the products of that coefficient's column.
θ² is floored at :data:`MIN_VARIANCE` so that a start at (or near) 0 does not give an infinite
scale.  Each scale is rounded to a power of two, so ``θ / s`` and back are exact.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..linalg.crossprod import CrossProducts

__all__ = ["curvature_scales", "MIN_VARIANCE"]

#: Floor of a template row's squared norm in :func:`curvature_scales`.
MIN_VARIANCE = 1e-2


def _column_diagonal(cp: CrossProducts, cols: slice) -> np.ndarray:
    """``diag(ZᵀWZ)`` over the columns ``cols`` (one term's coefficient, every level)."""
    block = cp.gram_block(cols, cols)
    if sp.issparse(block):
        return np.asarray(block.diagonal(), float)
    return np.diag(np.asarray(block, float)).copy()


def curvature_scales(cp: CrossProducts, theta: np.ndarray) -> np.ndarray:
    """Per θ entry, ``h^(−1/2)`` rounded to a power of two (see the module docstring).

    Parameters
    ----------
    cp : CrossProducts
        The model's weighted cross-products.
    theta : ndarray
        θ at which the curvature is estimated (the start).

    Returns
    -------
    ndarray
        Positive scales, one per θ entry (1 where an estimate is not finite).
    """
    re = cp.re
    theta = np.asarray(theta, float)
    out = np.ones(theta.size)
    for k, t in enumerate(re.terms):
        cov = t.cov
        sl = re.theta_slice(k)
        T = cov.template(theta[sl])
        off, p = int(re.col_offsets[k]), t.p
        done = set()
        for row, j in zip(np.asarray(cov.rows), np.asarray(cov.theta_index)):
            if int(j) in done:
                continue
            done.add(int(j))
            tau = max(float(T[row] @ T[row]), MIN_VARIANCE)
            a = _column_diagonal(cp, slice(off + int(row), off + t.q, p))
            h = 4.0 * tau * float(np.sum((a / (tau * a + 1.0)) ** 2))
            if np.isfinite(h) and h > 0:
                out[sl.start + int(j)] = 2.0 ** np.round(-0.5 * np.log2(h))
    return out
