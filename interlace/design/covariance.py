"""Covariance structures of random-effects terms: θ ↔ relative covariance factor.

Each structure maps its slice of θ to a lower-triangular ``p × p`` template ``T``
with ``Σ = σ² T Tᵀ`` (lme4's relative covariance factor).

The protocol every structure follows (used by :class:`~interlace.design.terms.RandomEffects`
to lay out Λθ and by the results classes to report Σ):

* ``p``, ``n_theta``: coefficients per level and number of parameters;
* ``rows``, ``cols``: the structurally non-zero entries of ``T`` (lower triangle,
  in the order Λθ stores them);
* ``theta_index``: for each of those entries, the position in the structure's θ
  whose value it takes (so several entries may share one θ);
* ``theta0``, ``lower``: starting values and lower bounds of θ;
* ``template(θ)``, ``covariance(θ, σ²)``, ``theta_from_covariance(Σ, σ²)``.

Structures:

* :class:`Unstructured` — general ``p × p`` covariance; θ is the lower triangle of
  ``T`` column by column, as lme4's ``theta`` (one θ per entry).
* :class:`ScaledIdentity` — ``Σ = σ² θ² I``: ``p`` independent coefficients sharing
  one variance (one θ, template ``θ I``); statsmodels MixedLM's variance components.
* :class:`BlockDiagonal` — independent blocks, each with its own structure (how a
  MixedLM group's correlated effects and variance components form one term).
* :class:`PatternedCholesky` — :class:`Unstructured` with some entries of ``T`` held
  at zero (statsmodels MixedLM's ``free=`` patterns: a diagonal pattern gives
  independent coefficients).
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

__all__ = ["BlockDiagonal", "CovarianceStructure", "PatternedCholesky", "ScaledIdentity", "Unstructured"]


class CovarianceStructure:
    """Shared behaviour of the structures; subclasses set ``p``, ``rows``, ``cols``, ``theta_index``."""

    p: int
    rows: np.ndarray
    cols: np.ndarray
    theta_index: np.ndarray

    @property
    def n_theta(self) -> int:
        """Number of parameters."""
        return int(self.theta_index.max()) + 1 if self.theta_index.size else 0

    @property
    def theta0(self) -> np.ndarray:
        """Starting value: the identity template."""
        return np.ones(self.n_theta)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds: 0 for parameters on the diagonal of ``T``, -inf elsewhere."""
        diag = np.zeros(self.n_theta, bool)
        diag[self.theta_index[self.rows == self.cols]] = True
        return np.where(diag, 0.0, -np.inf)

    def template(self, theta: np.ndarray) -> np.ndarray:
        """Lower-triangular ``T`` from this term's θ."""
        T = np.zeros((self.p, self.p))
        T[self.rows, self.cols] = np.asarray(theta, float)[self.theta_index]
        return T

    def covariance(self, theta: np.ndarray, scale: float) -> np.ndarray:
        """``σ² T Tᵀ``."""
        T = self.template(theta)
        return scale * T @ T.T


@lru_cache(maxsize=64)
def _lower_triangle(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a ``p × p`` lower triangle, column by column (kept per ``p``, read-only)."""
    r, c = np.tril_indices(p)
    idx = np.lexsort((r, c))
    rows, cols = r[idx], c[idx]
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


class Unstructured(CovarianceStructure):
    """General positive semi-definite ``p × p`` covariance (lme4's default).

    Parameters
    ----------
    p : int
        Number of random coefficients per level.
    """

    def __init__(self, p: int) -> None:
        self.p = p
        self.rows, self.cols = _lower_triangle(p)
        self.theta_index = np.arange(self.rows.size)

    @property
    def n_theta(self) -> int:
        """Number of parameters."""
        return self.p * (self.p + 1) // 2

    @property
    def theta0(self) -> np.ndarray:
        """Starting value: the identity template."""
        return (self.rows == self.cols).astype(float)

    def theta_from_covariance(self, cov: np.ndarray, scale: float) -> np.ndarray:
        """Inverse of :meth:`covariance` (Cholesky factor; zeros where singular)."""
        c = np.asarray(cov, float) / scale
        try:
            T = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            w, v = np.linalg.eigh(c)
            T = np.linalg.qr((v * np.sqrt(np.clip(w, 0, None))).T)[1].T
            T = T * np.sign(np.where(np.diag(T) == 0, 1, np.diag(T)))
        return T[self.rows, self.cols]


class PatternedCholesky(Unstructured):
    """:class:`Unstructured` with the entries of ``T`` outside ``pattern`` held at zero.

    θ holds the entries of the lower triangle of ``T`` where ``pattern`` is true, column
    by column (lme4's order restricted to the pattern); the diagonal is always kept.
    The zeros are zeros of the Cholesky factor ``T`` (statsmodels' ``free=`` in its
    default square-root parameterization); when the pattern is block-diagonal after a
    permutation (a diagonal pattern: independent coefficients, lme4's ``||``) they are
    zeros of ``Σ = σ² T Tᵀ`` as well.

    Parameters
    ----------
    pattern : array-like of bool (p, p)
        Which entries of ``T`` are free (only the lower triangle is read).
    """

    def __init__(self, pattern: np.ndarray) -> None:
        pattern = np.asarray(pattern, bool)
        if pattern.ndim != 2 or pattern.shape[0] != pattern.shape[1]:
            raise ValueError(f"pattern must be square, got shape {pattern.shape}")
        super().__init__(pattern.shape[0])
        keep = pattern[self.rows, self.cols] | (self.rows == self.cols)
        self.rows, self.cols = self.rows[keep], self.cols[keep]
        self.theta_index = np.arange(self.rows.size)

    @property
    def n_theta(self) -> int:
        """Number of parameters (the pattern's entries)."""
        return int(self.rows.size)


class ScaledIdentity(CovarianceStructure):
    """``p`` independent coefficients with one common variance: ``Σ = σ² θ² I``.

    One parameter θ ≥ 0; the template is ``θ I``.  This is the covariance of a
    statsmodels MixedLM variance component (each column of the component's
    design gets an independent coefficient, all with the component's variance).

    Parameters
    ----------
    p : int
        Number of coefficients per level that share the variance.
    """

    def __init__(self, p: int) -> None:
        self.p = p
        self.rows = np.arange(p)
        self.cols = np.arange(p)
        self.theta_index = np.zeros(p, dtype=np.int64)

    @property
    def n_theta(self) -> int:
        """Number of parameters (always 1)."""
        return 1

    @property
    def lower(self) -> np.ndarray:
        """θ ≥ 0."""
        return np.zeros(1)

    def theta_from_covariance(self, cov: np.ndarray, scale: float) -> np.ndarray:
        """θ from ``Σ`` (the mean of its diagonal, which is ``σ² θ²`` for a scaled identity)."""
        d = np.diag(np.atleast_2d(np.asarray(cov, float)))
        return np.array([np.sqrt(max(float(np.mean(d)) / scale, 0.0))])


class BlockDiagonal(CovarianceStructure):
    """Independent blocks of coefficients: ``Σ = blockdiag(Σ_1, Σ_2, …)``.

    θ is the blocks' θ one after the other; block ``k`` covers coefficients
    ``col_slice(k)`` and parameters ``theta_slice(k)``.

    Parameters
    ----------
    blocks : list of CovarianceStructure
    """

    def __init__(self, blocks: Iterable[CovarianceStructure]) -> None:
        self.blocks = list(blocks)
        if not self.blocks:
            raise ValueError("BlockDiagonal needs at least one block")
        ps = [b.p for b in self.blocks]
        nth = [b.n_theta for b in self.blocks]
        self.p = int(sum(ps))
        self.col_offsets = np.concatenate([[0], np.cumsum(ps)]).astype(np.int64)
        self.theta_offsets = np.concatenate([[0], np.cumsum(nth)]).astype(np.int64)
        self.rows = np.concatenate([b.rows + o for b, o in zip(self.blocks, self.col_offsets)]).astype(np.int64)
        self.cols = np.concatenate([b.cols + o for b, o in zip(self.blocks, self.col_offsets)]).astype(np.int64)
        self.theta_index = np.concatenate([b.theta_index + o for b, o in zip(self.blocks, self.theta_offsets)]
                                          ).astype(np.int64)

    def col_slice(self, k: int) -> slice:
        return slice(int(self.col_offsets[k]), int(self.col_offsets[k + 1]))

    def theta_slice(self, k: int) -> slice:
        return slice(int(self.theta_offsets[k]), int(self.theta_offsets[k + 1]))

    @property
    def n_theta(self) -> int:
        return int(self.theta_offsets[-1])

    @property
    def theta0(self) -> np.ndarray:
        return np.concatenate([b.theta0 for b in self.blocks])

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([b.lower for b in self.blocks])

    def theta_from_covariance(self, cov: np.ndarray, scale: float) -> np.ndarray:
        """Each block's θ from its diagonal block of ``Σ`` (off-diagonal blocks are ignored)."""
        cov = np.asarray(cov, float)
        return np.concatenate([b.theta_from_covariance(cov[self.col_slice(k), self.col_slice(k)], scale)
                               for k, b in enumerate(self.blocks)])
