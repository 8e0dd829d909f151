"""Objective functions of θ: the LMM profiled deviance / REML criterion."""
from .correlated import CorrelatedLMMDeviance
from .lmm import LMMDeviance, LMMSolution

__all__ = ["CorrelatedLMMDeviance", "LMMDeviance", "LMMSolution"]
