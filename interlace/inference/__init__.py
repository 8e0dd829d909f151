"""Inference beyond point estimates: bootstrap (cluster and parametric), likelihood profiles, LRT."""
from .bootstrap import cluster_bootstrap_se
from .parametric_bootstrap import BootstrapResult, parametric_bootstrap
from .profile import lmm_conf_int, profile_conf_int, profile_lmm

__all__ = ["BootstrapResult", "cluster_bootstrap_se", "lmm_conf_int", "parametric_bootstrap", "profile_conf_int",
           "profile_lmm"]
