"""The ordinal response of a cumulative link mixed model, for PIRLS.

P(Y ≤ j | η) = F(α_j − η) with the thresholds α and the link's distribution F
(:mod:`interlace.families.ordinal`).  PIRLS gets the Newton weights hᵢ = −∂²ℓᵢ/∂ηᵢ²
and working residual gᵢ/hᵢ (gᵢ = ∂ℓᵢ/∂ηᵢ), so the conditional modes and the Laplace
approximation use the observed information, as ``clmm`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..families.ordinal import CumulativeLink

__all__ = ["OrdinalResponse"]


@dataclass
class OrdinalResponse:
    """An ordinal response for PIRLS.

    Attributes
    ----------
    y : ndarray of int
        Category index 0 … K−1.
    n_categories : int
    link : CumulativeLink
    alpha : ndarray
        Thresholds α₁ < … < α_{K−1} (:meth:`with_params` gives the response at others).
    offset : ndarray
    weights : ndarray
        Case weights (multiply each observation's log-likelihood).
    """

    y: np.ndarray
    n_categories: int
    link: CumulativeLink
    alpha: np.ndarray
    offset: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        a = np.concatenate([[-np.inf], np.asarray(self.alpha, float), [np.inf]])
        self._upper, self._lower = a[self.y + 1], a[self.y]
        self._has_upper = np.isfinite(self._upper)
        self._has_lower = np.isfinite(self._lower)
        self._last: tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._last_link: tuple[np.ndarray, ...] = ()

    def with_params(self, alpha: np.ndarray) -> OrdinalResponse:
        """The same response with thresholds ``alpha``."""
        return replace(self, alpha=np.asarray(alpha, float))

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._upper, self._lower

    def _at(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P(Y = yᵢ | ηᵢ), gᵢ = ∂ℓᵢ/∂ηᵢ and ∂²ℓᵢ/∂ηᵢ² (unweighted), in one pass over the rows.

        The last η is remembered (by identity: PIRLS asks for the deviance and then the
        working weights of the same linear predictor)."""
        last = self._last
        if last is not None and last[0] is eta:
            return last[1]
        eta = np.asarray(eta, float)
        n = eta.shape[0]
        x = np.empty((2, n))
        np.subtract(self._upper, eta, out=x[0])
        np.subtract(self._lower, eta, out=x[1])
        F, f, d = self.link.cdf_pdf_dpdf(x)
        P = np.maximum(F[0] - F[1], 1e-300)
        fu = np.where(self._has_upper, f[0], 0.0)
        fl = np.where(self._has_lower, f[1], 0.0)
        with np.errstate(invalid="ignore", over="ignore"):
            g = -(fu - fl) / P                          # ∂ℓ/∂η
            d2 = (d[0] - d[1]) / P - g * g              # ∂²ℓ/∂η²
        out = (P, g, d2)
        self._last = (eta, out)
        self._last_link = (x, F, f, d)
        return out

    def eta_derivatives(self, eta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-row derivatives of the weighted log-likelihood wᵢℓᵢ for the Laplace gradient.

        Returns ``g`` = ∂/∂η, ``h`` = −∂²/∂η² (the PIRLS weight), ``dh`` = ∂h/∂η, and with
        respect to the row's upper (``_u``: α_{yᵢ}) and lower (``_l``: α_{yᵢ−1}) threshold:
        ``l_u``, ``l_l`` = ∂(wℓ)/∂α, ``g_u``, ``g_l`` = ∂g/∂α, ``h_u``, ``h_l`` = ∂h/∂α
        (zero for a threshold at ±∞).
        """
        self._at(eta)                            # F, f, f' at both bounds (made once per η)
        x, F, f, d = self._last_link
        e = self.link.d2pdf_given(x, F, f)
        P = np.maximum(F[0] - F[1], 1e-300)
        sign = np.array([[1.0], [-1.0]])         # upper, lower bound
        with np.errstate(invalid="ignore", over="ignore"):
            fP, dP, eP = f / P, d / P, e / P
            P1 = fP[1] - fP[0]                   # first derivative of P in η, over P
            P2 = dP[0] - dP[1]                   # second, over P
            P3 = eP[1] - eP[0]                   # third, over P
            w = self.weights
            l2 = P2 - P1 * P1
            free = w * (-l2 > 1e-12)             # where the weight is not held at its floor
            out = {"g": w * P1, "h": np.maximum(-l2, 1e-12) * w, "dh": -free * (P3 - 3 * P2 * P1 + 2 * P1 ** 3)}
            # ∂/∂a_u: ∂P/∂a_u = f_u, ∂P'/∂a_u = −f'_u, ∂P''/∂a_u = f''_u (a_l: the lower terms, signs flipped)
            a = sign * fP                        # (∂P/∂a) / P
            dl1 = -sign * dP - P1 * a            # ∂(P'/P)/∂a
            la, ga = w * a, w * dl1
            ha = -free * (sign * eP - P2 * a - 2 * P1 * dl1)
        for k, side in enumerate("ul"):
            out["l_" + side], out["g_" + side], out["h_" + side] = la[k], ga[k], ha[k]
        return out

    def probs(self, eta: np.ndarray) -> np.ndarray:
        """P(Y = yᵢ | ηᵢ)."""
        return self._at(eta)[0]

    def category_probs(self, eta: np.ndarray) -> np.ndarray:
        """(n, K) matrix of P(Y = j | ηᵢ)."""
        a = np.concatenate([[-np.inf], self.alpha, [np.inf]])
        F = self.link.cdf(a[None, :] - np.asarray(eta, float)[:, None])
        return np.diff(F, axis=1)

    # -- the PIRLS interface ------------------------------------------------------
    def mean(self, eta: np.ndarray) -> np.ndarray:
        return eta

    def working(self, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, g, d2 = self._at(eta)
        h = np.maximum(-d2, 1e-12) * self.weights
        return h, self.weights * g / h

    def loglik_obs(self, eta: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        return self.weights * np.log(self.probs(eta))

    def deviance(self, mu: np.ndarray) -> float:
        return -2.0 * float(np.sum(self.loglik_obs(mu)))

    def cond_minus2ll(self, mu: np.ndarray) -> float:
        return self.deviance(mu)
