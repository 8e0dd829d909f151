"""Response objects: the data side of a model and its conditional likelihood given η.

:class:`~interlace.response.base.Response` is what PIRLS iterates on
(:class:`~interlace.response.glm.GLMResponse`, :class:`~interlace.response.ordinal.OrdinalResponse`);
:class:`~interlace.response.survival.CoxData` holds the risk sets of survival data and the
Cox partial likelihood, whose weights couple rows (the Cox objective uses it directly).
Response parameters (ordinal thresholds, the negative-binomial shape) are passed in through
``with_params``, never written into a response from outside.
"""
from .base import Response
from .glm import GLMResponse
from .ordinal import OrdinalResponse
from .survival import CoxData, CoxState

__all__ = ["CoxData", "CoxState", "GLMResponse", "OrdinalResponse", "Response"]
