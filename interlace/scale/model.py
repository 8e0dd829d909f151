"""What a chunked fit's model holds instead of rows: :class:`ChunkedModel`.

A model fitted from chunks (:mod:`interlace.scale`) keeps no rows: its design (levels,
patsy's designs of the first pass, the kept fixed-effect columns) is what predictions on
new data and the results' tables read.  The LMM's and the GLMM's models share it.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import NoReturn

import numpy as np

from ..errors import InterlaceError
from .design import ChunkedDesign

__all__ = ["ChunkedModel", "RowlessResult"]


class ChunkedModel:
    """The model of a chunked fit: its design, without rows.

    Parameters
    ----------
    design : ChunkedDesign
        From the first pass.
    keep : ndarray of int
        The fixed-effect columns kept (aliased ones dropped, R's order).

    Attributes
    ----------
    formula : str
    random_effects_structure : RandomEffects
        Levels and templates; the terms hold no rows.
    nobs : float
        Complete rows.
    exog_names : list of str
        Fixed-effect names (R's order, aliased columns dropped).
    offset_arg, weights_arg : str or None
        Column names of the offset and the prior weights.
    """

    #: the error for what needs the rows (``{what}``: the thing asked for); subclasses say how to get it
    no_rows = "{what} needs the rows, which a chunked fit does not keep on the client"

    def __init__(self, design: ChunkedDesign, keep: np.ndarray) -> None:
        self.design = design
        self.formula = design.plan.formula
        self.random_effects_structure = design.re
        self.nobs = float(design.n)
        self.exog_names = [design.x_names[i] for i in keep]
        self.k_fe = len(self.exog_names)
        self.df_resid = self.nobs - self.k_fe
        self.endog_names = design.response
        #: what the results' ``predict`` needs to encode new data as in fitting
        self.fixed_design = SimpleNamespace(design_info=design.x_info, keep=np.asarray(keep, np.intp))
        self.offset_arg = design.plan.offset
        self.offset = np.zeros(0) if design.plan.offset is not None else None
        self.weights_arg = design.plan.weights
        self.model_frame = None

    @property
    def exog(self) -> NoReturn:
        raise InterlaceError(self.no_rows.format(what="the model matrix"))

    @property
    def endog(self) -> NoReturn:
        raise InterlaceError(self.no_rows.format(what="the response vector"))


class RowlessResult:
    """What a chunked fit's result refuses for want of rows (its ``model`` is a :class:`ChunkedModel`)."""

    model: ChunkedModel

    @property
    def fittedvalues(self) -> NoReturn:
        raise InterlaceError(self.model.no_rows.format(what="fittedvalues"))

    @property
    def resid(self) -> NoReturn:
        raise InterlaceError(self.model.no_rows.format(what="resid"))
