"""``interlace.glmer``: generalized linear mixed models in one call (lme4's ``glmer``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy.typing as npt
import pandas as pd

from .families import GLMFamily
from .models.glmm import GLMM
from .models.negbin import fit_negative_binomial

if TYPE_CHECKING:
    import statsmodels.genmod.families as smf_fam

    from .results.glmm import GLMMResultWrapper

__all__ = ["glmer", "glmer_nb"]


def glmer(formula: str, data: pd.DataFrame, family: str | GLMFamily | smf_fam.Family | None = None,
          link: str | None = None, groups: str | Sequence[str] | None = None,
          random: str | Sequence[str] | None = None, weights: str | npt.ArrayLike | None = None,
          offset: str | npt.ArrayLike | None = None, nAGQ: int = 1, engine: str = "auto",
          optimizer: str = "bobyqa", start: npt.ArrayLike | None = None, check_conv: bool = True,
          maxiter: int | None = None) -> GLMMResultWrapper:
    """Fit a generalized linear mixed model.

    Parameters
    ----------
    formula : str
        ``"y ~ x"``, ``"cbind(successes, failures) ~ x"``, or with lme4 random
        terms ``"y ~ x + (1 | g)"``.
    data : DataFrame
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
    engine, optimizer, start, check_conv, maxiter
        As in :func:`interlace.fit`.

    Returns
    -------
    GLMMResult
        Fixed effects with Wald z tests, variance parameters, conditional modes (lme4's ``glmer``).
    """
    model = GLMM.from_formula(formula, data, family=family, link=link, groups=groups, random=random,
                              weights=weights, offset=offset, nAGQ=nAGQ, engine=engine)
    return model.fit(start_params=start, method=optimizer, maxiter=maxiter, check_conv=check_conv)


def glmer_nb(formula: str, data: pd.DataFrame, link: str = "log", groups: str | Sequence[str] | None = None,
             random: str | Sequence[str] | None = None, weights: str | npt.ArrayLike | None = None,
             offset: str | npt.ArrayLike | None = None, nAGQ: int = 1, engine: str = "auto",
             optimizer: str = "bobyqa", check_conv: bool = True, maxiter: int | None = None) -> GLMMResultWrapper:
    """Negative-binomial GLMM with the shape θ estimated (lme4's ``glmer.nb``).

    Parameters are those of :func:`glmer` (without ``family``). The result has
    ``nb_theta``, the estimated shape (variance μ + μ²/θ).
    """
    model = GLMM.from_formula(formula, data, family=GLMFamily("negative_binomial", link, 1.0), groups=groups,
                              random=random, weights=weights, offset=offset, nAGQ=nAGQ, engine=engine)
    return fit_negative_binomial(model, method=optimizer, maxiter=maxiter, check_conv=check_conv)
