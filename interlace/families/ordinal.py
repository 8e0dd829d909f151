"""Cumulative-link responses for ordinal outcomes (R's ``ordinal::clm`` / ``clmm``).

P(Y ≤ j | η) = F(α_j − η), j = 1 … K−1, with α_0 = −∞, α_K = +∞ and F the inverse
link (logistic, normal, Gumbel-min for cloglog, Gumbel-max for loglog, Cauchy).
The log-likelihood of observation i is ℓᵢ = log(F(α_{yᵢ} − ηᵢ) − F(α_{yᵢ−1} − ηᵢ)).

The response object PIRLS uses is :class:`interlace.response.ordinal.OrdinalResponse`.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.stats as st
from scipy.special import expit, ndtr

from ..errors import InterlaceError

__all__ = ["CumulativeLink", "ORDINAL_LINKS", "threshold_jacobian"]

ORDINAL_LINKS = ("logit", "probit", "cloglog", "loglog", "cauchit")
_SQRT_2PI = float(np.sqrt(2 * np.pi))


class CumulativeLink:
    """The latent distribution F of a cumulative link: cdf, pdf and the pdf's derivative.

    The cdf, pdf and f' are closed forms on numpy / ``scipy.special`` ufuncs (PIRLS
    evaluates them at every row in every iteration; ``scipy.stats``' argument checking
    cost more than the arithmetic); ``dist`` is the matching ``scipy.stats`` distribution.

    Parameters
    ----------
    name : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    """

    _DIST = {"logit": st.logistic, "probit": st.norm, "cloglog": st.gumbel_l, "loglog": st.gumbel_r,
             "cauchit": st.cauchy}

    def __init__(self, name: str) -> None:
        if name not in ORDINAL_LINKS:
            raise InterlaceError(f"unknown link {name!r} for an ordinal model: use one of {', '.join(ORDINAL_LINKS)}")
        self.name = name
        self.dist = self._DIST[name]

    def cdf(self, x: npt.ArrayLike) -> np.ndarray:
        x = np.asarray(x, float)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.name == "logit":
                return expit(x)
            if self.name == "probit":
                return ndtr(x)
            if self.name == "cloglog":
                return -np.expm1(-np.exp(x))
            if self.name == "loglog":
                return np.exp(-np.exp(-x))
            return 0.5 + np.arctan(x) / np.pi

    def pdf(self, x: npt.ArrayLike) -> np.ndarray:
        """f(x), zero at ±∞."""
        return self.cdf_pdf_dpdf(x, need_dpdf=False)[1]

    def ppf(self, p: np.ndarray) -> np.ndarray:
        return self.dist.ppf(p)

    def dpdf(self, x: npt.ArrayLike) -> np.ndarray:
        """f'(x), zero at ±∞."""
        return self.cdf_pdf_dpdf(x)[2]

    def cdf_pdf_dpdf(self, x: npt.ArrayLike, need_dpdf: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """F(x), f(x) and f'(x) together (f and f' zero at ±∞; f' is not computed unless ``need_dpdf``)."""
        x = np.asarray(x, float)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.name == "logit":  # one exp: F = 1/(1 + e^−x), 1 − F = e^−x F (exact at ±inf below)
                e = np.exp(-np.clip(x, -700.0, 700.0))
                F = 1.0 / (1.0 + e)
                Fc = e * F
                f = F * Fc
                d = f * (Fc - F) if need_dpdf else f
                neg = x == -np.inf
                if neg.any():
                    F[neg] = f[neg] = d[neg] = 0.0
                return F, f, d
            elif self.name == "probit":
                F = ndtr(x)
                f = np.exp(-0.5 * x * x) / _SQRT_2PI
                d = -x * f if need_dpdf else f
            elif self.name == "cloglog":
                e = np.exp(x)
                F = -np.expm1(-e)
                f = np.exp(x - e)
                d = f * (1 - e) if need_dpdf else f
            elif self.name == "loglog":
                e = np.exp(-x)
                F = np.exp(-e)
                f = np.exp(-x - e)
                d = f * (e - 1) if need_dpdf else f
            else:
                F = 0.5 + np.arctan(x) / np.pi
                f = 1.0 / (np.pi * (1 + x * x))
                d = -2 * x / (np.pi * (1 + x * x) ** 2) if need_dpdf else f
        finite = np.isfinite(x)
        if not finite.all():
            f = np.where(finite, np.nan_to_num(f), 0.0)
            d = np.where(finite, np.nan_to_num(d), 0.0)
        return F, f, d


    def derivatives(self, x: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """F, f, f' and f'' at ``x`` (f, f', f'' zero at ±∞)."""
        x = np.asarray(x, float)
        F, f, d = self.cdf_pdf_dpdf(x)
        if self.name == "logit":  # f'' = f ((1 − 2F)² − 2f) from the same exponential
            with np.errstate(invalid="ignore"):
                t = 1.0 - 2.0 * F
                return F, f, d, f * (t * t - 2.0 * f)
        return F, f, d, self.d2pdf(x)

    def d2pdf_given(self, x: np.ndarray, F: np.ndarray, f: np.ndarray) -> np.ndarray:
        """f''(x) given F(x) and f(x) (the logistic's from them, without another exponential)."""
        if self.name == "logit":
            with np.errstate(invalid="ignore"):
                t = 1.0 - 2.0 * F
                return f * (t * t - 2.0 * f)
        return self.d2pdf(x)

    def d2pdf(self, x: npt.ArrayLike) -> np.ndarray:
        """f''(x), zero at ±∞ (the third derivative of the log-likelihood needs it)."""
        x = np.asarray(x, float)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.name == "logit":
                F, Fc = expit(x), expit(-x)
                f = F * Fc
                t = Fc - F
                d = f * (t * t - 2 * f)
            elif self.name == "probit":
                d = (x * x - 1) * np.exp(-0.5 * x * x) / _SQRT_2PI
            elif self.name == "cloglog":
                e = np.exp(x)
                d = np.exp(x - e) * ((1 - e) ** 2 - e)
            elif self.name == "loglog":
                e = np.exp(-x)
                d = np.exp(-x - e) * ((e - 1) ** 2 - e)
            else:
                d = (6 * x * x - 2) / (np.pi * (1 + x * x) ** 3)
        return np.where(np.isfinite(x), np.nan_to_num(d), 0.0)


def threshold_jacobian(kind: str, n_thresholds: int) -> tuple[np.ndarray, list[str]]:
    """Matrix J and parameter names with α = J · par, for ``clm``'s threshold structures.

    * flexible: the K−1 thresholds themselves (J = I);
    * equidistant: ``threshold.1`` and ``spacing``: α_j = α₁ + (j−1)·spacing;
    * symmetric, K−1 odd: ``central`` and ``spacing.1 …``: α = c ∓ spacings around c;
      K−1 even: ``central.1``, ``central.2`` and ``spacing.1 …``, the lower half
      spaced below central.1 and the upper half above central.2 (ordinal's ``tJac``).
    """
    K1 = n_thresholds
    if kind == "flexible":
        return np.eye(K1), []
    if kind == "equidistant":
        return np.column_stack([np.ones(K1), np.arange(K1)]), ["threshold.1", "spacing"]
    if kind == "symmetric":
        if K1 < 2:
            raise InterlaceError("symmetric thresholds need at least 3 categories")
        if K1 % 2 == 1:
            m = K1 // 2
            J = np.zeros((K1, 1 + m))
            J[:, 0] = 1.0
            for k in range(1, m + 1):
                J[m + k, k] = 1.0
                J[m - k, k] = -1.0
            return J, ["central"] + [f"spacing.{k}" for k in range(1, m + 1)]
        m = K1 // 2
        J = np.zeros((K1, 2 + m - 1))
        J[:m, 0] = 1.0
        J[m:, 1] = 1.0
        for k in range(1, m):
            J[m - 1 - k, 1 + k] = -1.0
            J[m + k, 1 + k] = 1.0
        return J, ["central.1", "central.2"] + [f"spacing.{k}" for k in range(1, m)]
    raise InterlaceError(f"unknown threshold structure {kind!r}: use 'flexible', 'symmetric' or 'equidistant'")
