"""Design: model frame, fixed-effects matrix, random-effects terms and covariance templates."""
from .fixed import FixedDesign, build_fixed
from .frame import ModelFrame, build_frame
from .terms import RandomEffects, RandomEffectsTerm, build_random_effects

__all__ = ["FixedDesign", "ModelFrame", "RandomEffects", "RandomEffectsTerm", "build_fixed",
           "build_frame", "build_random_effects"]
