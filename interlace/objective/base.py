"""The interface every model family's objective follows.

An objective is the criterion a model's optimizer minimizes (lme4's ``devfun``): the
profiled deviance or REML criterion of θ for an LMM, the Laplace or quadrature
deviance of (θ, β) for a GLMM, of (thresholds, β, θ) for a CLMM, −2 × the integrated
partial log-likelihood of θ for a Cox frailty model.  It owns its loaded engine (and
response), so the state it leaves is its own; a model's ``_fit`` chooses a start, hands
the objective to :func:`interlace.optimize.minimize_checked` (or ``minimize``) and asks
the objective for the solution at the optimum.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Objective"]


@runtime_checkable
class Objective(Protocol):
    """What an optimizer and a model need from an objective.

    Attributes
    ----------
    n_evals : int
        Evaluations so far.
    """

    n_evals: int

    @property
    def x0(self) -> np.ndarray:
        """Default starting parameters."""

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the parameters (−inf where unbounded)."""

    def __call__(self, x: np.ndarray) -> float:
        """The criterion at ``x`` (inf where it is not defined)."""

    def solution(self, x: np.ndarray) -> Any:
        """Everything the results need at ``x`` (computed once, at the optimum)."""
