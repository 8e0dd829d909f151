"""Diagnostics for mixed-model results.

:mod:`interlace.diagnostics.plots` draws the usual diagnostic plots with matplotlib
(the ``plots`` extra); matplotlib is imported only when a plot is drawn, so importing
this package does not need it.  :mod:`interlace.diagnostics.influence` computes leverages
and deletion diagnostics (lme4's ``hatvalues``, ``influence``, ``cooks.distance``,
``dfbeta(s)``), :mod:`interlace.diagnostics.checks` verdicts on a fit (``check_model``)
and :mod:`interlace.diagnostics.influence_plots` draws them.  (The function ``influence``
is not re-exported here: ``interlace.diagnostics.influence`` stays the module; call
``result.influence(...)`` or ``from interlace.diagnostics.influence import influence``.)
"""
from .checks import CheckItem, CheckReport, check_model, overdispersion, vif
from .influence import InfluenceResult, hat_values
from .influence_plots import plot_cooks, plot_influence, plot_leverage, standardized_residuals
from .plots import (
    PLOT_KINDS,
    plot,
    plot_caterpillar,
    plot_group_fits,
    plot_profile,
    plot_qq,
    plot_resid_fitted,
    plot_scale_location,
)

__all__ = ["PLOT_KINDS", "CheckItem", "CheckReport", "InfluenceResult", "check_model", "hat_values",
           "overdispersion", "plot", "plot_caterpillar", "plot_cooks", "plot_group_fits", "plot_influence",
           "plot_leverage", "plot_profile", "plot_qq", "plot_resid_fitted", "plot_scale_location",
           "standardized_residuals", "vif"]
