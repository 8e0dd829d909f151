"""Optimizers (BOBYQA by default) and lme4-style convergence checks."""
from .checks import check_convergence, is_singular, minimize_checked, newton_polish
from .optimizers import OPTIMIZERS, OptSummary, minimize
from .vmmin import vmmin

__all__ = ["OPTIMIZERS", "OptSummary", "check_convergence", "is_singular", "minimize_checked", "newton_polish",
           "minimize", "vmmin"]
