"""The PLS system of a model without random effects (nlme's ``gls`` after whitening).

With no Z the augmented matrix is just ``[X y]ᵀW[X y]``; the criterion pieces are
``ldL2 = 0``, ``ldRX2 = log|XᵀWX|`` and the residual sum of squares.
"""
from __future__ import annotations

import numpy as np

from ..design.terms import RandomEffects
from .pls import Factorization, PLSSystem

__all__ = ["FixedOnlyPLS"]


class FixedOnlyPLS(PLSSystem):
    """PLS engine for ``q = 0`` (no random-effects terms)."""

    engine = "dense"

    def __init__(self, re: RandomEffects, X: np.ndarray) -> None:
        super().__init__(re, X)

    def set_data(self, y, w=None) -> None:
        XY, w = self._xy(y, w)
        self._M33 = XY.T @ (XY * w[:, None])

    def factor(self, theta) -> Factorization:
        return self._finish(self._M33.copy(), 0.0)

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        return self._beta(), np.zeros(0)

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        return np.asarray(B, float).copy()
