"""Result objects: fitted LMMs, VarCorr tables, summaries."""
from .lmm import CrossedLMEResult, CrossedLMEResultWrapper

__all__ = ["CrossedLMEResult", "CrossedLMEResultWrapper"]
