"""Diagnostics for mixed-model results.

:mod:`interlace.diagnostics.plots` draws the usual diagnostic plots with matplotlib
(the ``plots`` extra); matplotlib is imported only when a plot is drawn, so importing
this package does not need it.
"""
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

__all__ = ["PLOT_KINDS", "plot", "plot_caterpillar", "plot_group_fits", "plot_profile", "plot_qq",
           "plot_resid_fitted", "plot_scale_location"]
