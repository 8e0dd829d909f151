"""``update``: the same model with a new formula, data, weights, offset or criterion (R's ``update``).

With only a new criterion (``reml``), new per-row weights or offset (arrays) or fit
options, the model is refitted through :meth:`~interlace.models.base.MixedModel.refit`
(same design, shared engines).  A new formula (R's ``update.formula``: ``". ~ . - x"``,
see :func:`interlace.formula.update.update_formula`), new data, or weights/offset
given as column names rebuild the model with its class's ``from_formula`` and the
options it was built with (random-effects terms, family and link, ``nAGQ``,
``df_method``, residual structures, engine, the offset column).

Weights or an offset given as arrays to the first fit are carried to a rebuilt model on
the same data by row label (rows the first fit dropped for missing values get no
weight, so they stay out); with new data they must be given again.  A negative-binomial
fit keeps its shape θ fixed (``glmer_nb`` estimates it anew).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InterlaceError
from ..formula.update import update_formula

__all__ = ["update"]

_UNSET: Any = object()


def _res(result: Any) -> Any:
    return getattr(result, "_results", result)


def random_sources(model: Any) -> list[str]:
    """The model's random-effects terms as the user wrote them (each once, in order)."""
    out: list[str] = []
    for s in getattr(model, "specs", None) or []:
        if s.source not in out:
            out.append(s.source)
    return out


def _carry(model: Any, values: Any, data: pd.DataFrame, trivial: float) -> Any:
    """Per-row values of the old model realigned to ``data`` by row label (None if all ``trivial``)."""
    if values is None:
        return None
    v = np.asarray(values, float)
    if np.all(v == trivial):
        return None
    return pd.Series(v, index=model.model_frame.data.index).reindex(data.index).to_numpy()


def _class_options(model: Any, reml: bool | None) -> dict:
    if hasattr(model, "levels"):  # CLMM
        return {"link": model.link.name, "threshold": model.threshold, "nAGQ": model.nAGQ,
                "levels": model.levels, "engine": model.engine}
    if hasattr(model, "family"):  # GLMM
        if reml is not None:
            raise InterlaceError("reml= applies to linear mixed models only (GLMMs are fitted by maximum likelihood)")
        return {"family": model.family, "nAGQ": model.nAGQ, "engine": model.engine}
    return {"reml": model.reml if reml is None else bool(reml), "df_method": model.df_method,
            "correlation": model.correlation, "engine": model.engine}


def update(result: Any, formula: str | None = None, data: pd.DataFrame | None = None, *,
           reml: bool | None = None, weights: Any = _UNSET, offset: Any = _UNSET, **options: Any) -> Any:
    """Fit the model again with changes (R's ``update(m, formula, data = , weights = , REML = )``).

    Parameters
    ----------
    result : fitted LMM, GLMM or CLMM
    formula : str, optional
        The new formula; ``.`` stands for the old response (left) or right-hand side
        (right): ``". ~ . - Days"``, ``". ~ . + (0 + Days | Subject)"``, ``"log(y) ~ ."``.
    data : DataFrame, optional
        New data (default: the data the model was built from).
    reml : bool, optional
        Switch between REML and ML (linear mixed models).
    weights, offset : str or array-like or None, optional
        New prior weights / offset (column names or arrays); None removes them.
    **options
        Keyword arguments of ``fit`` (``method``, ``maxiter``, ``check_conv``, ...).

    Returns
    -------
    The new fitted result.
    """
    res = _res(result)
    model = res.model
    by_name = isinstance(weights, str) or isinstance(offset, str)
    if formula is None and data is None and not by_name:
        changes: dict[str, Any] = {}
        if reml is not None:
            if not hasattr(model, "reml") or hasattr(model, "family") or hasattr(model, "levels"):
                raise InterlaceError("reml= applies to linear mixed models only")
            changes["reml"] = bool(reml)
        if weights is not _UNSET:
            changes["weights"] = weights
        if offset is not _UNSET:
            if hasattr(model, "levels"):
                raise InterlaceError("cumulative link models take no offset")
            changes["offset"] = offset
        return model.refit(**changes, **options)
    if model.formula is None or model.model_frame is None:
        raise InterlaceError("update() with a formula or data needs a model built from a formula")
    old_data = getattr(model.data, "frame", None)
    new_data = old_data if data is None else data
    if not isinstance(new_data, pd.DataFrame):
        raise InterlaceError(f"data must be a pandas DataFrame, got {type(new_data).__name__}")
    new_formula = update_formula(model.formula, random_sources(model), formula or ". ~ .")
    kw = _class_options(model, reml)
    variance = getattr(model, "variance", None)
    binomial_cbind = new_formula.split("~", 1)[0].strip().startswith("cbind(")
    if weights is _UNSET:
        if variance is not None:
            weights = variance
        elif data is None and not binomial_cbind:
            trivial = 1.0
            weights = _carry(model, model.weights, new_data, trivial)
        elif model.weights is not None and not np.all(np.asarray(model.weights) == 1.0) and not binomial_cbind:
            raise InterlaceError("the model has prior weights given as values: pass weights= with the new data")
        else:
            weights = None
    if offset is _UNSET:
        off_arg = getattr(model, "offset_arg", None)
        if off_arg is not None:
            offset = off_arg
        elif getattr(model, "offset", None) is not None:
            if data is not None:
                raise InterlaceError("the model has an offset given as values: pass offset= with the new data")
            offset = _carry(model, model.offset, new_data, 0.0)
        else:
            offset = None
    if not hasattr(model, "levels"):
        kw["offset"] = offset
    elif offset is not None:
        raise InterlaceError("cumulative link models take no offset")
    kw["weights"] = weights
    new = type(model).from_formula(new_formula, new_data, **kw)
    return new.fit(**options)
