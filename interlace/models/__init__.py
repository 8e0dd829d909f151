"""statsmodels ``LikelihoodModel`` subclasses."""
from .lmm import CrossedLME

__all__ = ["CrossedLME"]
