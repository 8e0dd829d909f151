"""interlace: mixed-effects models for Python, matching R's lme4.

Public API: :func:`fit` (linear mixed models), the model and result classes,
and :mod:`interlace.datasets`.
"""
from . import datasets
from .clmm import clmm
from .correlation import AR1, CAR1, CompoundSymmetry, VarIdent
from .coxme import coxme
from .coxph import coxph
from .errors import (
                     ConvergenceWarning,
                     DataError,
                     DataWarning,
                     EngineUnavailableError,
                     FormulaError,
                     InterlaceError,
                     MissingDataWarning,
                     RankDeficiencyWarning,
                     SingularFitWarning,
                     UnseenLevelWarning,
)
from .fit import fit
from .glmer import glmer, glmer_nb
from .inference.lrt import anova
from .models.clmm import CLMM
from .models.glmm import GLMM
from .models.lmm import CrossedLME
from .results.lmm import CrossedLMEResult

__version__ = "0.1.0"

__all__ = ["fit", "AR1", "CAR1", "CompoundSymmetry", "VarIdent", "glmer", "glmer_nb", "clmm", "coxme", "coxph", "CLMM",
           "anova", "GLMM", "CrossedLME", "CrossedLMEResult", "datasets", "ConvergenceWarning", "DataError",
           "DataWarning", "EngineUnavailableError", "FormulaError", "InterlaceError", "MissingDataWarning",
           "RankDeficiencyWarning", "SingularFitWarning", "UnseenLevelWarning", "__version__"]
