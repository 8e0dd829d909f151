"""Drop-in replacement for statsmodels' mixed linear model API.

Change one import and keep the rest of the code:

    import statsmodels.formula.api as smf     # before
    import interlace.api as smf               # after

    from statsmodels.api import MixedLM       # before
    from interlace.api import MixedLM         # after

``CrossedLME`` and ``GLMM`` (with ``from_formula``) are interlace's model classes.
``mixedlm`` and ``MixedLM`` are interlace's (lme4's estimates, statsmodels
MixedLM's interface and result attributes; see ``docs/mixedlm.md``).  Every other
name is looked up in ``statsmodels.formula.api`` and then ``statsmodels.api``, so
``smf.ols(...)`` or ``sm.add_constant(...)`` keep working after the import change.
"""
from __future__ import annotations

from .fit import fit
from .glmer import glmer, glmer_nb
from .models.glmm import GLMM
from .models.lmm import CrossedLME
from .models.mixedlm import MixedLM, VCSpec, mixedlm
from .results.mixedlm import MixedLMResults, MixedLMResultsWrapper

__all__ = ["CrossedLME", "GLMM", "MixedLM", "MixedLMResults", "MixedLMResultsWrapper", "VCSpec", "fit", "glmer",
           "glmer_nb", "mixedlm"]


def __getattr__(name: str):
    """Forward any other name to statsmodels (formula API first, then ``statsmodels.api``)."""
    if name.startswith("__"):
        raise AttributeError(name)
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    for mod in (smf, sm):
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"module 'interlace.api' has no attribute {name!r} (nor has statsmodels.api)")
