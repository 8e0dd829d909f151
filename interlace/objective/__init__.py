"""Objective functions of θ: the LMM profiled deviance / REML criterion."""
from .lmm import LMMDeviance, LMMSolution

__all__ = ["LMMDeviance", "LMMSolution"]
