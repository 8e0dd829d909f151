"""Response families: GLM families for GLMMs (ordinal and Cox responses to come)."""
from .glm import FAMILIES, LINKS, GLMFamily, resolve_family

__all__ = ["FAMILIES", "LINKS", "GLMFamily", "resolve_family"]
