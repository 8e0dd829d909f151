"""Inference beyond point estimates: bootstrap (more to come: df methods, profiles, LRT)."""
from .bootstrap import cluster_bootstrap_se

__all__ = ["cluster_bootstrap_se"]
