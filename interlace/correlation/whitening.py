"""Bound residual structures: parameters, whitening transform and log-determinant.

A bound structure holds the rows' grouping (and times) and, for parameters ψ on
nlme's unconstrained scale, gives

* :meth:`whiten` — ``A M`` for an ``(n, k)`` matrix, with ``AᵀA = R(ψ)⁻¹``;
* :meth:`color` — ``A⁻¹ M`` (draws with covariance ``R``);
* :meth:`logdet` — ``log|R(ψ)|``.

All act row-wise within groups and cost O(n k); rows keep their data order.
AR(1)/CAR(1) are Markov: in time order ``A`` is bidiagonal,
``(Am)_t = (m_t − ρ_t m_{t−1}) / √(1 − ρ_t²)`` with ``ρ_t = φ^{Δt}``.  Compound
symmetry has the closed form ``A = a (I − J/m) + c J/m`` per group of size m.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["BoundMarkov", "BoundCompoundSymmetry", "BoundVarIdent", "ResidualModel"]


def _as2d(M: np.ndarray) -> tuple[np.ndarray, bool]:
    M = np.asarray(M, float)
    return (M[:, None], True) if M.ndim == 1 else (M, False)


class _Bound:
    """Shared bits of bound structures."""

    spec = None
    n_params = 1

    def natural(self, psi: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_natural(self, value: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class BoundMarkov(_Bound):
    """AR(1) (integer lags) or CAR(1) (real lags) within groups."""

    def __init__(self, spec: Any, codes: np.ndarray, levels: pd.Index, time: np.ndarray | None,
                 continuous: bool) -> None:
        self.spec = spec
        self.continuous = continuous
        n = codes.size
        self.codes, self.levels = codes, levels
        key = np.arange(n, dtype=float) if time is None else time
        order = np.lexsort((key, codes))
        same = codes[order][1:] == codes[order][:-1]
        if time is not None:
            dup = same & (np.diff(key[order]) == 0)
            if dup.any():
                i = order[1:][dup][0]
                raise DataError(f"time column {spec.time!r} has duplicate value {float(key[i]):g} within "
                                f"group {levels[codes[i]]!r}: {spec.r_name} needs distinct times per group")
        self.prev = np.full(n, -1, dtype=np.int64)
        self.prev[order[1:][same]] = order[:-1][same]
        self.nonfirst = np.flatnonzero(self.prev >= 0)
        self.lag = np.zeros(n)
        self.lag[self.nonfirst] = key[self.nonfirst] - key[self.prev[self.nonfirst]]
        # position within group (for the sequential inverse)
        pos = np.zeros(n, dtype=np.int64)
        start = np.concatenate([[True], ~same])
        run = np.cumsum(start) - 1
        first_idx = np.flatnonzero(start)
        pos[order] = np.arange(n) - first_idx[run]
        self.pos = pos
        self.sorted_by_time = time is None or bool(np.all(self.prev[self.nonfirst] < self.nonfirst))
        self.param_names = ["Phi"]
        # nlme's starting values: AR1 φ = 0, CAR1 φ = 0.2
        self.start = self.from_natural(np.array([0.2 if continuous else 0.0]))

    def natural(self, psi: np.ndarray) -> np.ndarray:
        z = float(np.asarray(psi, float)[0])
        if self.continuous:  # log(φ / (1 − φ))
            return np.array([1.0 / (1.0 + np.exp(-z))])
        return np.array([np.tanh(z / 2.0)])  # log((1 + φ) / (1 − φ))

    def from_natural(self, value: np.ndarray) -> np.ndarray:
        phi = float(np.asarray(value, float)[0])
        if self.continuous:
            return np.array([np.log(phi / (1.0 - phi))])
        return np.array([np.log((1.0 + phi) / (1.0 - phi))])

    def _rho(self, psi) -> np.ndarray:
        phi = self.natural(psi)[0]
        return np.power(phi, self.lag[self.nonfirst])

    def whiten(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        M, vec = _as2d(M)
        rho = self._rho(psi)[:, None]
        out = M.copy()
        nf = self.nonfirst
        out[nf] = (M[nf] - rho * M[self.prev[nf]]) / np.sqrt(1.0 - rho * rho)
        return out[:, 0] if vec else out

    def color(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        M, vec = _as2d(M)
        out = M.copy()
        rho = np.zeros(M.shape[0])
        rho[self.nonfirst] = self._rho(psi)
        for k in range(1, int(self.pos.max()) + 1 if self.pos.size else 1):
            r = np.flatnonzero(self.pos == k)
            s = np.sqrt(1.0 - rho[r] ** 2)[:, None]
            out[r] = s * M[r] + rho[r, None] * out[self.prev[r]]
        return out[:, 0] if vec else out

    def logdet(self, psi: np.ndarray) -> float:
        rho = self._rho(psi)
        return float(np.sum(np.log1p(-rho * rho)))


class BoundCompoundSymmetry(_Bound):
    """Equal correlation within groups."""

    def __init__(self, spec: Any, codes: np.ndarray, levels: pd.Index) -> None:
        self.spec = spec
        self.codes, self.levels = codes, levels
        self.sizes = np.bincount(codes, minlength=len(levels)).astype(float)
        self.max_size = int(self.sizes.max())
        if self.max_size < 2:
            raise DataError("CompoundSymmetry needs groups with at least 2 rows; every group of "
                            f"{spec.group!r} has one")
        self.param_names = ["Rho"]
        self.start = self.from_natural(np.array([0.0]))

    def natural(self, psi: np.ndarray) -> np.ndarray:  # nlme: log((ρ + 1/(n − 1)) / (1 − ρ)), n the largest group
        e = np.exp(float(np.asarray(psi, float)[0]))
        a = 1.0 / (self.max_size - 1)
        return np.array([(e - a) / (1.0 + e)])

    def from_natural(self, value: np.ndarray) -> np.ndarray:
        rho = float(np.asarray(value, float)[0])
        return np.array([np.log((rho + 1.0 / (self.max_size - 1)) / (1.0 - rho))])

    def _scales(self, psi, power: float):
        rho = self.natural(psi)[0]
        a = (1.0 - rho) ** power
        c = (1.0 + (self.sizes - 1.0) * rho) ** power
        return a, c

    def _apply(self, M, a, c):
        M, vec = _as2d(M)
        sums = np.zeros((self.sizes.size, M.shape[1]))
        np.add.at(sums, self.codes, M)
        means = sums / self.sizes[:, None]
        out = a * M + ((c - a)[:, None] * means)[self.codes]
        return out[:, 0] if vec else out

    def whiten(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        return self._apply(M, *self._scales(psi, -0.5))

    def color(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        return self._apply(M, *self._scales(psi, 0.5))

    def logdet(self, psi: np.ndarray) -> float:
        rho = self.natural(psi)[0]
        m = self.sizes
        return float(np.sum((m - 1.0) * np.log1p(-rho) + np.log1p((m - 1.0) * rho)))


class BoundVarIdent(_Bound):
    """Residual SD ratio per stratum; the first stratum is the reference (ratio 1)."""

    def __init__(self, spec: Any, codes: np.ndarray, levels: pd.Index) -> None:
        self.spec = spec
        self.codes, self.levels = codes, levels
        self.n_params = len(levels) - 1
        self.param_names = [str(v) for v in levels[1:]]
        self.start = np.zeros(self.n_params)

    def natural(self, psi: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(psi, float))

    def from_natural(self, value: np.ndarray) -> np.ndarray:
        return np.log(np.asarray(value, float))

    def ratios(self, psi: np.ndarray) -> np.ndarray:
        """SD ratio of every row's stratum (reference 1)."""
        return np.concatenate([[1.0], self.natural(psi)])[self.codes]

    def whiten(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        r = self.ratios(psi)
        M = np.asarray(M, float)
        return M / (r if M.ndim == 1 else r[:, None])

    def color(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        r = self.ratios(psi)
        M = np.asarray(M, float)
        return M * (r if M.ndim == 1 else r[:, None])

    def logdet(self, psi: np.ndarray) -> float:
        return float(2.0 * np.sum(np.log(self.ratios(psi))))


class ResidualModel:
    """The residual covariance ``σ² R(ψ)``, ``R = D C D``: a variance structure D and a correlation C.

    Parameters
    ----------
    correlation : bound correlation structure or None
    variance : BoundVarIdent or None
    """

    def __init__(self, correlation: BoundMarkov | BoundCompoundSymmetry | None = None,
                 variance: BoundVarIdent | None = None) -> None:
        self.correlation = correlation
        self.variance = variance
        self.parts = [p for p in (variance, correlation) if p is not None]
        sizes = [p.n_params for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    @property
    def n_params(self) -> int:
        return int(self.offsets[-1])

    @property
    def start(self) -> np.ndarray:
        return np.concatenate([p.start for p in self.parts]) if self.parts else np.zeros(0)

    def split(self, psi: np.ndarray) -> list[np.ndarray]:
        psi = np.asarray(psi, float)
        return [psi[self.offsets[i]:self.offsets[i + 1]] for i in range(len(self.parts))]

    def whiten(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """``A M`` with ``AᵀA = R⁻¹`` (variance first, then correlation)."""
        for part, x in zip(self.parts, self.split(psi)):
            M = part.whiten(M, x)
        return M

    def color(self, M: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """``A⁻¹ M``: turns independent standard normal rows into draws with covariance R."""
        for part, x in reversed(list(zip(self.parts, self.split(psi)))):
            M = part.color(M, x)
        return M

    def logdet(self, psi: np.ndarray) -> float:
        """``log|R(ψ)|``."""
        return float(sum(p.logdet(x) for p, x in zip(self.parts, self.split(psi))))

    def natural(self, psi: np.ndarray) -> list[np.ndarray]:
        """Per part, the parameters on their natural scale (φ, ρ, SD ratios)."""
        return [p.natural(x) for p, x in zip(self.parts, self.split(psi))]

    def names(self) -> list[str]:
        """Labels of ψ's elements on the natural scale."""
        out = []
        for p in self.parts:
            out += [f"{p.spec.r_name}: {n}" for n in p.param_names]
        return out
