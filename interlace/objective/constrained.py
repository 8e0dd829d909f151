"""Objectives derived from another: some parameters held at given values, a penalty added.

Both follow :class:`~interlace.objective.base.Objective` and hand ``solution`` to the
objective they wrap, so a model fits them exactly as it fits the objective itself
(statsmodels MixedLM's ``free=`` patterns and its ``fe_pen``/``cov_pen`` penalties).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["HeldObjective", "PenalizedObjective"]


class HeldObjective:
    """An objective of the free entries of ``x``; the other entries are held at ``values``.

    Parameters
    ----------
    objective : Objective
        The objective of the whole vector.
    free : array-like of bool
        Which entries are optimized.
    values : array-like
        The whole vector's values (the held entries keep theirs; the free ones start there).
    """

    def __init__(self, objective: Any, free: npt.ArrayLike, values: npt.ArrayLike) -> None:
        self.objective = objective
        self.free = np.asarray(free, dtype=bool)
        self.values = np.array(values, dtype=float)
        if self.free.shape != self.values.shape:
            raise ValueError(f"{self.free.size} free flags for {self.values.size} parameters")
        self.n_evals = 0

    def full(self, x: npt.ArrayLike) -> np.ndarray:
        """The whole vector with the free entries ``x``."""
        v = self.values.copy()
        v[self.free] = np.asarray(x, dtype=float)
        return v

    @property
    def x0(self) -> np.ndarray:
        """The free entries' starting values."""
        return self.values[self.free].copy()

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the free entries."""
        return np.asarray(self.objective.lower, dtype=float)[self.free]

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the free entries (none when the wrapped objective has none)."""
        upper = getattr(self.objective, "upper", None)
        return np.full(self.lower.shape, np.inf) if upper is None else np.asarray(upper, dtype=float)[self.free]

    def __call__(self, x: np.ndarray) -> float:
        self.n_evals += 1
        return float(self.objective(self.full(x)))

    def solution(self, x: np.ndarray) -> Any:
        """The wrapped objective's solution at the whole vector."""
        return self.objective.solution(self.full(x))


class PenalizedObjective:
    """``objective(x) + penalty(x)``.

    ``penalty`` is called right after ``objective`` at the same ``x``, so it may read
    what the objective computed there (e.g. the GLS fixed effects of the loaded engine).

    Parameters
    ----------
    objective : Objective
    penalty : callable
        ``x ↦`` a float (inf where ``x`` is not allowed).
    """

    def __init__(self, objective: Any, penalty: Callable[[np.ndarray], float]) -> None:
        self.objective = objective
        self.penalty = penalty
        self.n_evals = 0

    @property
    def x0(self) -> np.ndarray:
        return np.asarray(self.objective.x0, dtype=float)

    @property
    def lower(self) -> np.ndarray:
        return np.asarray(self.objective.lower, dtype=float)

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the parameters (none when the wrapped objective has none)."""
        upper = getattr(self.objective, "upper", None)
        return np.full(self.lower.shape, np.inf) if upper is None else np.asarray(upper, dtype=float)

    def __call__(self, x: np.ndarray) -> float:
        self.n_evals += 1
        val = float(self.objective(x))
        if not np.isfinite(val):
            return val
        return val + float(self.penalty(np.asarray(x, dtype=float)))

    def solution(self, x: np.ndarray) -> Any:
        return self.objective.solution(x)
