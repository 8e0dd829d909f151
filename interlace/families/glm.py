"""GLM families for GLMMs: statsmodels' families for links and variances, exact log-densities.

Links and variance functions come from :mod:`statsmodels.genmod.families`, so
users can pass the family objects they use with ``smf.glm``.  The conditional
log-likelihood uses scipy's exact densities with lme4's conventions (binomial
proportions with prior weights = trials, Poisson and NB counts, Gamma and
inverse Gaussian with a dispersion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats as st
import statsmodels.genmod.families as smf_fam
from scipy.special import gammaln, xlog1py, xlogy
from statsmodels.genmod.families import links as L

from ..errors import InterlaceError

__all__ = ["GLMFamily", "resolve_family", "FAMILIES", "LINKS"]

LINKS = {
    "logit": L.Logit, "probit": L.Probit, "cloglog": L.CLogLog, "cauchit": L.Cauchy, "log": L.Log,
    "identity": L.Identity, "inverse": L.InversePower, "sqrt": L.Sqrt, "1/mu^2": L.InverseSquared,
    "loglog": L.LogLog,
}
_DEFAULT_LINK = {"binomial": "logit", "poisson": "log", "gamma": "inverse", "inverse_gaussian": "1/mu^2",
                 "negative_binomial": "log", "gaussian": "identity"}
_ALLOWED = {
    "binomial": {"logit", "probit", "cloglog", "cauchit", "log", "loglog"},
    "poisson": {"log", "sqrt", "identity"},
    "gamma": {"log", "inverse", "identity"},
    "inverse_gaussian": {"1/mu^2", "log", "inverse", "identity"},
    "negative_binomial": {"log", "sqrt", "identity"},
    "gaussian": {"identity", "log", "inverse"},
}
FAMILIES = tuple(_ALLOWED)
_SM_NAMES = {smf_fam.Binomial: "binomial", smf_fam.Poisson: "poisson", smf_fam.Gamma: "gamma",
             smf_fam.InverseGaussian: "inverse_gaussian", smf_fam.NegativeBinomial: "negative_binomial",
             smf_fam.Gaussian: "gaussian"}


def _link_name(link) -> str:
    for name, cls in LINKS.items():
        if type(link) is cls:
            return name
    if isinstance(link, L.Power):
        return {1.0: "identity", -1.0: "inverse", 0.5: "sqrt", -2.0: "1/mu^2"}.get(float(link.power), "power")
    return type(link).__name__.lower()


@dataclass
class GLMFamily:
    """A family with its link, as the GLMM code uses it.

    Attributes
    ----------
    name : str
        ``"binomial"``, ``"poisson"``, ``"gamma"``, ``"inverse_gaussian"``,
        ``"negative_binomial"`` or ``"gaussian"``.
    link_name : str
    nb_theta : float
        Negative-binomial shape θ (variance μ + μ²/θ); NaN otherwise.
    """

    name: str
    link_name: str
    nb_theta: float = np.nan

    def __post_init__(self) -> None:
        self.link = LINKS[self.link_name]()

    def with_nb_theta(self, nb_theta: float) -> GLMFamily:
        """The same family and link with negative-binomial shape ``nb_theta``."""
        return GLMFamily(self.name, self.link_name, float(nb_theta))

    @property
    def canonical(self) -> bool:
        """Whether the link is the family's canonical one (the IRLS weights are then the observed
        information); the negative binomial's default log link is not."""
        return self.name != "negative_binomial" and self.link_name == _DEFAULT_LINK.get(self.name)

    @property
    def has_dispersion(self) -> bool:
        """True for families with a free scale parameter (Gamma, inverse Gaussian, Gaussian)."""
        return self.name in ("gamma", "inverse_gaussian", "gaussian")

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        mu = self.link.inverse(eta)
        if self.name == "binomial":
            eps = np.finfo(float).eps
            mu = np.clip(mu, eps, 1 - eps)
        elif self.name in ("poisson", "negative_binomial", "gamma", "inverse_gaussian"):
            mu = np.maximum(mu, np.finfo(float).tiny)
        return mu

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        """dμ/dη."""
        with np.errstate(all="ignore"):  # far out on a logistic link exp() overflows: inf/inf² is 0
            d = np.array(self.link.inverse_deriv(eta), dtype=float)
        # NaN (that overflow) and |d| < 1e-300 become 1e-300; a mask and an assignment rather than
        # np.where: PIRLS calls this on every row at every step
        bad = ~(np.abs(d) >= 1e-300)
        if bad.any():
            d[bad] = 1e-300
        return d

    def variance(self, mu: np.ndarray) -> np.ndarray:
        if self.name == "binomial":
            return mu * (1 - mu)
        if self.name == "poisson":
            return mu
        if self.name == "negative_binomial":
            return mu + mu * mu / self.nb_theta
        if self.name == "gamma":
            return mu * mu
        if self.name == "inverse_gaussian":
            return mu ** 3
        return np.ones_like(mu)

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Starting means from the data (R's ``family$initialize``): ``(w y + ½)/(w + 1)``
        for the binomial, ``y + 0.1`` for the Poisson, ``y + 1/6`` where y = 0 for the
        negative binomial, ``y`` otherwise."""
        y = np.asarray(y, float)
        if self.name == "binomial":
            return (w * y + 0.5) / (w + 1.0)
        if self.name == "poisson":
            return y + 0.1
        if self.name == "negative_binomial":
            return y + (y == 0) / 6.0
        return y.copy()

    def response_constants(self, y: np.ndarray, w: np.ndarray) -> dict:
        """Terms of :meth:`dev_resid` and :meth:`loglik_obs` that do not depend on μ.

        A response evaluated many times (PIRLS, quadrature) computes them once and passes
        them back (binomial: ``y log y + (1 − y) log(1 − y)`` and the log binomial
        coefficient; Poisson: ``−w log y!``); other families need none.
        """
        if self.name == "binomial":
            n, k = np.round(w), np.round(w * y)
            return {"ylogy": xlogy(y, y) + xlogy(1 - y, 1 - y),
                    "lchoose": gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)}
        if self.name == "poisson":
            lfact = w * gammaln(y + 1)
            return {"lfact": lfact, "llsat": w * (xlogy(y, y) - y) - lfact}
        return {}

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, const: dict | None = None) -> np.ndarray:
        """Unit deviances times prior weights (R's ``family$dev.resids``).

        ``const``: :meth:`response_constants` of ``(y, w)``, if already computed.
        """
        if self.name == "binomial":
            ylogy = (const or self.response_constants(y, w))["ylogy"]
            return 2 * w * (ylogy - _binomial_loglik_kernel(mu, y, 1 - y))
        if self.name == "poisson":
            return 2 * w * (xlogy(y, y / mu) - (y - mu))
        if self.name == "negative_binomial":
            th = self.nb_theta
            return 2 * w * (xlogy(y, y / mu) - (y + th) * np.log((y + th) / (mu + th)))
        if self.name == "gamma":
            return -2 * w * (np.log(y / mu) - (y - mu) / mu)
        if self.name == "inverse_gaussian":
            return w * (y - mu) ** 2 / (y * mu * mu)
        return w * (y - mu) ** 2

    def loglik_obs(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dispersion: float = 1.0,
                   const: dict | None = None) -> np.ndarray:
        """Per-observation conditional log-likelihood, with lme4's conventions.

        Binomial ``y`` is a proportion and ``w`` the number of trials (R's
        ``dbinom(round(w*y), round(w), mu)``); other families use ``w`` as a
        multiplier, as R's ``family$aic``.  ``const``: :meth:`response_constants`.
        """
        if self.name == "binomial":
            n = np.round(w)
            k = np.round(w * y)
            ll = (const or self.response_constants(y, w))["lchoose"] + _binomial_loglik_kernel(mu, k, n - k)
            pos = np.asarray(w) > 0
            return ll if pos.all() else np.where(pos, ll, 0.0)
        if self.name == "poisson":
            # the saturated log-likelihood minus half the deviance: the same number as
            # w (y log μ − μ) − log y!, without its cancellation (counts near 10¹² lose
            # ~10⁻² per row in that form, enough to upset the finite-difference checks)
            llsat = (const or self.response_constants(y, w))["llsat"]
            return llsat - 0.5 * self.dev_resid(y, mu, w)
        if self.name == "negative_binomial":
            th = self.nb_theta
            return w * (gammaln(y + th) - gammaln(th) - gammaln(y + 1) + xlogy(th, th / (th + mu))
                        + xlogy(y, mu / (th + mu)))
        if self.name == "gamma":
            shape = 1.0 / dispersion
            return w * st.gamma.logpdf(y, shape, scale=mu * dispersion)
        if self.name == "inverse_gaussian":
            return w * st.invgauss.logpdf(y, mu * dispersion, scale=1.0 / dispersion)
        return w * st.norm.logpdf(y, mu, np.sqrt(dispersion))


def _binomial_loglik_kernel(mu: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a log μ + b log(1 − μ)`` (scipy's ``xlogy(a, μ) + xlog1py(b, −μ)``, 0 where a or b is 0).

    numpy's vectorized ``log``/``log1p`` are 3–4× faster than scipy's ``xlogy``/``xlog1py`` on the
    rows of a PIRLS step; entries where a log is infinite (μ exactly 0 or 1, which the link's
    inverse never returns) take scipy's convention.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a * np.log(mu) + b * np.log1p(-mu)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = (xlogy(a, mu) + xlog1py(b, -mu))[bad]
    return out


def resolve_family(family: str | GLMFamily | smf_fam.Family, link: str | None = None,
                   nb_theta: float = np.nan) -> GLMFamily:
    """A :class:`GLMFamily` from a name (``"binomial"``) or a statsmodels family object.

    Parameters
    ----------
    family : str or statsmodels Family
    link : str, optional
        Link name (``"logit"``, ``"probit"``, ``"cloglog"``, ``"cauchit"``, ``"log"``,
        ``"sqrt"``, ``"inverse"``, ``"identity"``); default: the family's canonical one
        (for a statsmodels object: its own link).
    """
    if isinstance(family, GLMFamily):
        return family
    if isinstance(family, smf_fam.Family):
        name = next((v for k, v in _SM_NAMES.items() if isinstance(family, k)), None)
        if name is None:
            raise InterlaceError(f"unsupported statsmodels family {type(family).__name__}")
        lname = link or _link_name(family.link)
        if name == "negative_binomial" and np.isnan(nb_theta):
            nb_theta = 1.0 / family.alpha
    else:
        key = str(family).lower().replace(" ", "_").replace(".", "_")
        key = {"gamma": "gamma", "inverse_gaussian": "inverse_gaussian", "inversegaussian": "inverse_gaussian",
               "negbin": "negative_binomial", "nb": "negative_binomial", "normal": "gaussian"}.get(key, key)
        if key not in _ALLOWED:
            raise InterlaceError(f"unknown family {family!r}: choose one of {', '.join(FAMILIES)}")
        name = key
        lname = link or _DEFAULT_LINK[name]
    lname = {"inverse_power": "inverse", "inverse_squared": "1/mu^2", "cauchy": "cauchit"}.get(lname, lname)
    if lname not in _ALLOWED[name]:
        raise InterlaceError(f"link {lname!r} is not available for family {name!r}: "
                             f"use one of {', '.join(sorted(_ALLOWED[name]))}")
    return GLMFamily(name, lname, nb_theta)
