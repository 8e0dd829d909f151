"""``interlace.glmer``: generalized linear mixed models in one call (lme4's ``glmer``)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy.typing as npt
import pandas as pd

from .errors import InterlaceError
from .families import GLMFamily
from .models.glmm import GLMM, default_family
from .models.negbin import fit_negative_binomial

if TYPE_CHECKING:
    import dask.dataframe as dd
    import statsmodels.genmod.families as smf_fam

    from .results.glmm import GLMMResultWrapper
    from .scale.glmm_results import ChunkedGLMMResult

__all__ = ["glmer", "glmer_nb"]


def glmer(formula: str, data: pd.DataFrame | dd.DataFrame | str | os.PathLike[str],
          family: str | GLMFamily | smf_fam.Family | None = None,
          link: str | None = None, groups: str | Sequence[str] | None = None,
          random: str | Sequence[str] | None = None, weights: str | npt.ArrayLike | None = None,
          offset: str | npt.ArrayLike | None = None, nAGQ: int = 1, engine: str = "auto",
          optimizer: str = "auto", start: npt.ArrayLike | None = None, check_conv: bool = True,
          maxiter: int | None = None, **chunked: Any) -> GLMMResultWrapper | ChunkedGLMMResult:
    """Fit a generalized linear mixed model.

    Parameters
    ----------
    formula : str
        ``"y ~ x"``, ``"cbind(successes, failures) ~ x"``, or with lme4 random
        terms ``"y ~ x + (1 | g)"``.
    data : DataFrame, Dask DataFrame or path
        A pandas DataFrame; or data that are not in memory (binomial and Poisson,
        ``nAGQ`` 0 or 1, the same estimates): a Dask DataFrame, fitted by passes over
        its partitions on their workers (:func:`interlace.scale.glmer_dask`), or the
        path of a parquet file or directory, read in batches
        (:func:`interlace.scale.glmer_parquet`); see :mod:`interlace.scale.glmm`.
    family : str or statsmodels family
        ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``, or a
        ``statsmodels.genmod.families`` object (its link is used).  Give it: without it
        binomial is assumed, with a ``FutureWarning`` (lme4's default is gaussian, which is
        :func:`interlace.fit`).
    link : str, optional
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"cauchit"``, ``"log"``, ``"sqrt"``,
        ``"inverse"``, ``"identity"``; default the family's canonical link.
    groups, random
        As in :func:`interlace.fit`.
    weights : str or array-like, optional
        Prior weights; the number of trials for a binomial proportion response.
    offset : str or array-like, optional
        Added to the linear predictor (e.g. ``log(exposure)``).
    nAGQ : int
        0: PIRLS only (fast, approximate); 1: Laplace (default); >1: adaptive
        Gauss-Hermite quadrature with that many nodes (one scalar term only).
    optimizer : str
        ``"auto"`` (default): the second stage on the exact gradient of the Laplace deviance
        (steps in preconditioned coordinates, L-BFGS-B, Newton steps) where it is available,
        else BOBYQA; ``"bobyqa"``: lme4's BOBYQA stages.  See the GLMM page of the docs.
    engine, start, check_conv, maxiter
        As in :func:`interlace.fit`.

    **chunked
        Options of the chunked fits (``client``, ``split_every``, ``batch_size``, ``cache``,
        ``progress``, ...) when ``data`` is a Dask DataFrame or a parquet path.

    Returns
    -------
    GLMMResult
        Fixed effects with Wald z tests, variance parameters, conditional modes (lme4's ``glmer``);
        a :class:`~interlace.scale.ChunkedGLMMResult` for chunked data.
    """
    from .scale.dask import is_dask_dataframe

    chunked_data = is_dask_dataframe(data) or isinstance(data, (str, os.PathLike))
    if chunked_data:
        family = default_family(family)
        for name, v in (("weights", weights), ("offset", offset)):
            if v is not None and not isinstance(v, str):
                raise InterlaceError(f"{name} must be a column name when the data are a Dask DataFrame or a "
                                     f"parquet path (got {type(v).__name__})")
        from .scale import glmer_dask, glmer_parquet

        fit_chunked = glmer_dask if is_dask_dataframe(data) else glmer_parquet
        return cast(Any, fit_chunked)(formula, data, family=family, link=link, groups=groups, random=random,
                                      weights=weights, offset=offset, nAGQ=nAGQ, engine=engine,
                                      optimizer=optimizer, start=start, check_conv=check_conv, maxiter=maxiter,
                                      **chunked)
    if chunked:
        raise InterlaceError(f"unexpected option(s) {', '.join(sorted(chunked))}: they are for chunked data "
                             "(a Dask DataFrame or a parquet path)")
    model = GLMM.from_formula(formula, data, family=family, link=link, groups=groups, random=random,
                              weights=weights, offset=offset, nAGQ=nAGQ, engine=engine)
    return model.fit(start_params=start, method=optimizer, maxiter=maxiter, check_conv=check_conv)


def glmer_nb(formula: str, data: pd.DataFrame, link: str = "log", groups: str | Sequence[str] | None = None,
             random: str | Sequence[str] | None = None, weights: str | npt.ArrayLike | None = None,
             offset: str | npt.ArrayLike | None = None, nAGQ: int = 1, engine: str = "auto",
             optimizer: str = "auto", check_conv: bool = True, maxiter: int | None = None) -> GLMMResultWrapper:
    """Negative-binomial GLMM with the shape θ estimated (lme4's ``glmer.nb``).

    Parameters are those of :func:`glmer` (without ``family``). The result has
    ``nb_theta``, the estimated shape (variance μ + μ²/θ).
    """
    model = GLMM.from_formula(formula, data, family=GLMFamily("negative_binomial", link, 1.0), groups=groups,
                              random=random, weights=weights, offset=offset, nAGQ=nAGQ, engine=engine)
    return fit_negative_binomial(model, method=optimizer, maxiter=maxiter, check_conv=check_conv)
