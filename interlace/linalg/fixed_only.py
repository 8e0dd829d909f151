"""The PLS system of a model without random effects (nlme's ``gls`` after whitening).

With no Z the augmented matrix is just ``[X y]ᵀW[X y]``; the criterion pieces are
``ldL2 = 0``, ``ldRX2 = log|XᵀWX|`` and the residual sum of squares.
"""
from __future__ import annotations

import numpy as np

from .pls import Factorization, PLSSystem

__all__ = ["FixedOnlyPLS"]


class FixedOnlyPLS(PLSSystem):
    """PLS engine for ``q = 0`` (no random-effects terms)."""

    engine = "dense"

    def factor(self, theta: np.ndarray) -> Factorization:
        return self._finish(self.A33.copy(), 0.0)

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        return self._beta(), np.zeros(0)

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        return np.asarray(B, float).copy()
