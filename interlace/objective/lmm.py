"""Profiled deviance and REML criterion of a linear mixed model as a function of θ.

With ``f = factor(θ)`` of the PLS system (see :mod:`interlace.linalg.pls`):

* ML:   ``ldL2 + n (1 + log(2π r²/n)) − Σ log w``
* REML: ``ldL2 + ldRX2 + (n − p)(1 + log(2π r²/(n − p))) − Σ log w``

exactly as lme4's ``lmerResp::Laplace``.  σ̂² is ``r²/n`` (ML) or ``r²/(n − p)`` (REML).

Two degenerate directions are handled by :func:`fit_criterion` (the fitting loop of
every LMM) rather than left to the optimizer:

* **σ → 0** (the response is determined by the fixed and random effects, e.g.
  constant within the levels of a grouping factor): the criterion then decreases
  without bound as θ → ∞ (ldL2 grows like 2q log θ, the residual term falls like
  −2ν log θ), and far along that direction the fixed-effects Schur complement loses
  all its digits (relative rounding ≈ ε θ² nᵢ: at θ = 2·10⁶ a balanced intercept came
  out 9.697 for a group mean of 9.5).  θ's diagonal is bounded by :data:`THETA_MAX`
  (rounding there ≈ 2·10⁻⁸ for groups of 10, so β of a balanced design is the grand
  mean to ~10⁻⁷), and a fit that reaches the bound, or whose penalized residual sum
  of squares is at the rounding level of ``yᵀWy`` (:data:`ZERO_RESIDUAL`), is
  reported with a :class:`~interlace.errors.ConvergenceWarning` saying that σ is
  numerically 0.
* **an exact fit** (the response is a linear function of the fixed effects, e.g.
  constant): the residual sum of squares is 0 at every θ and the criterion −∞ (lme4
  reports ``REML criterion at convergence: -Inf`` with σ = 0 and every SE 0); it is
  refused with a :class:`~interlace.errors.DataError`, since no statistic of such a
  fit is finite.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, DataError, warn_user
from ..linalg.engines import RowEngines
from ..linalg.pls import Factorization, PLSSystem
from ..optimize import OptSummary, minimize_checked
from ..optimize.checks import at_upper
from .lmm_gradient import criterion_gradient, gradient_supported, make_gram
from .start import moment_start
from .theta_scale import curvature_scales

__all__ = ["LMMDeviance", "LMMSolution", "fit_criterion", "check_exact_fit", "sigma_zero_message",
           "residual_fraction", "THETA_MAX", "ZERO_RESIDUAL"]

#: Upper bound of θ's diagonal (a random-effect SD over the residual SD).  The reference
#: fits have θ ≤ 3.6; at 10⁴ the relative rounding of the fixed-effects Schur complement
#: is ε θ² nᵢ ≈ 2·10⁻⁷ nᵢ/10 (measured: a balanced intercept off by 4·10⁻⁷ relative; at
#: 10⁵ by 3·10⁻⁵, at 10⁶ by 4·10⁻³).
THETA_MAX = 1e4
#: A penalized residual sum of squares below this fraction of ``yᵀWy`` is rounding: σ is
#: numerically 0 (the cross-products lose ~n ε of ``yᵀWy`` when they are formed).
ZERO_RESIDUAL = 1e-12

#: Columns of the blocked engine's dense block from which ``optimizer="auto"`` searches with the
#: gradient (:attr:`LMMDeviance.gradient_pays`).
GRADIENT_SEARCH_MIN_Q2 = 500
#: Parameters from which the convergence checks take their derivatives from the gradient even where
#: the search does not (:attr:`LMMDeviance.gradient_checks_pay`).
GRADIENT_CHECKS_MIN_THETA = 4
#: Most parameters for which ``optimizer="auto"`` without a gradient searches by Newton steps on
#: finite differences (:attr:`LMMDeviance.newton_pays`): a stencil costs ``1 + 2n + n(n − 1)``
#: evaluations, against BOBYQA's ``2n + 1``-point model.
NEWTON_MAX_THETA = 3


@dataclass
class LMMSolution:
    """Everything computed at the optimum θ.

    Attributes
    ----------
    theta, beta, u, b : ndarray
        θ, fixed effects, spherical and actual random effects (b = Λu).
    sigma2 : float
    objective : float
        Deviance (ML) or REML criterion at θ.
    pwrss, ldL2, ldRX2 : float
    RX : ndarray (p, p)
        Lower factor with ``RX RXᵀ = XᵀV⁻¹X · σ²``; ``cov(β) = σ² (RX RXᵀ)⁻¹``.
    psi : ndarray or None
        Residual-structure parameters (nlme's unconstrained scale), if the model has one.
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    sigma2: float
    objective: float
    pwrss: float
    ldL2: float
    ldRX2: float
    RX: np.ndarray
    psi: np.ndarray | None = None


class LMMDeviance:
    """The criterion to minimize over θ (follows :class:`~interlace.objective.base.Objective`).

    Parameters
    ----------
    pls : PLSSystem
        An engine loaded with the cross-products of ``[Z X y]`` (y with any offset
        subtracted, W the prior weights).
    reml : bool
    sum_log_w : float
        ``Σ log w`` of the positive prior weights (0 without weights).
    zero_weights : bool
        Some prior weights are 0: those rows carry no information and the criterion is
        minimized without them, but the reported log-likelihood is −inf (``Σ log w``
        over all rows, as lme4 reports it).
    """

    #: :meth:`value_and_gradient` is the gradient of :meth:`__call__` (False in subclasses with
    #: parameters of their own, e.g. a residual correlation structure's)
    analytic_gradient: bool = True

    def __init__(self, pls: PLSSystem, reml: bool, sum_log_w: float = 0.0, zero_weights: bool = False) -> None:
        self.pls = pls
        self.reml = bool(reml)
        self.n, self.p = pls.n, pls.p
        if self.n <= self.p:
            raise DataError(f"the fixed effects have {self.p} coefficients for {self.n} observations: nothing is "
                            "left to estimate the variances from (a column of dates or identifiers used as a "
                            "factor gives one coefficient per value); use fewer fixed effects")
        self.ldW = float(sum_log_w)
        self.zero_weights = bool(zero_weights)
        self.n_evals = 0
        self._theta0: np.ndarray | None = None
        self._gram: Any = None  # the gradient's products (False: no gradient from this engine)

    @classmethod
    def from_rows(cls, engines: RowEngines, y: np.ndarray, weights: np.ndarray | None, reml: bool) -> LMMDeviance:
        """The criterion of the rows ``engines`` was made for, with response ``y`` (offset subtracted)."""
        pls, rows = engines.get()
        pls.load(rows(y, weights))
        return cls(pls, reml, *sum_log_weights(weights))

    @property
    def theta0(self) -> np.ndarray:
        """Default starting parameters: moment estimates (:func:`~interlace.objective.start.moment_start`)."""
        if self._theta0 is None:
            assert self.pls.cp is not None, "the engine has no data"
            self._theta0 = moment_start(self.pls.cp)
        return self._theta0.copy()

    x0 = theta0

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the parameters."""
        return self.pls.re.lower

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the parameters: :data:`THETA_MAX` on θ's diagonal, none elsewhere."""
        lower = self.lower
        return np.where(lower == 0, THETA_MAX, np.inf)

    @property
    def yty(self) -> float:
        """``yᵀWy`` of the loaded cross-products (the scale of their rounding)."""
        cp = self.pls.cp
        return float(cp.A33[-1, -1]) if cp is not None else 0.0

    @property
    def dof(self) -> int:
        """Degrees of freedom of the residual variance estimate (n or n − p)."""
        return self.n - self.p if self.reml else self.n

    def _profiled(self, ldL2: Any, ldRX2: Any, pwrss: Any) -> Any:
        """The criterion from a factorization's log-determinants and penalized RSS (scalars or arrays)."""
        nu = self.dof
        val = ldL2 + nu * (1.0 + np.log(2.0 * np.pi * pwrss / nu)) - self.ldW
        return val + ldRX2 if self.reml else val

    def _criterion(self, f: Factorization) -> float:
        if not f.ok or not np.isfinite(f.pwrss) or f.pwrss <= 0:
            return np.inf
        return float(self._profiled(f.ldL2, f.ldRX2, f.pwrss))

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        return self._criterion(self.pls.factor(theta))

    def criteria(self, thetas: np.ndarray) -> np.ndarray:
        """The criterion at each row of ``thetas`` (one vectorized pass where the engine has one)."""
        thetas = np.atleast_2d(np.asarray(thetas, float))
        parts = self.pls.factor_many(thetas)
        if parts is None:
            return np.array([self(t) for t in thetas])
        self.n_evals += thetas.shape[0]
        ldL2, ldRX2, pwrss = parts
        ok = pwrss > 0
        if not ok.all():
            pwrss = np.where(ok, pwrss, 1.0)
        val = self._profiled(ldL2, ldRX2, pwrss)
        if not (ok.all() and np.isfinite(val).all()):
            val = np.where(ok & np.isfinite(val), val, np.inf)
        return val

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray | None]:
        """The criterion and its analytic gradient at θ from one factorization
        (:mod:`interlace.objective.lmm_gradient`); the gradient is None where the engine
        offers none at this size (the caller then differences the criterion)."""
        if not self.analytic_gradient:
            return self(theta), None
        self.n_evals += 1
        theta = np.asarray(theta, float)
        f = self.pls.factor(theta)
        val = self._criterion(f)
        if not np.isfinite(val) or self._gram is False:
            return val, None
        if self._gram is None:
            self._gram = make_gram(self.pls)
        g = criterion_gradient(self.pls, theta, self.reml, self.dof, f.pwrss, self._gram)
        if g is None:
            self._gram = False  # the engine has no gradient at this size: not asked again
        return val, g

    def gradient(self, theta: np.ndarray) -> np.ndarray | None:
        """The analytic gradient at θ (see :meth:`value_and_gradient`)."""
        return self.value_and_gradient(theta)[1]

    def mirrored(self, theta: np.ndarray, k: int) -> np.ndarray | None:
        """θ with the column of the template entry θ_k (a diagonal entry) negated below the diagonal:
        the same Λ up to the sign of one column, so the same criterion (None for a scalar term's θ).

        At θ_k = 0 the criterion's slope in θ_k flips sign with that column: a fit that stops
        there may have a descent direction on the mirrored side (optimizer="auto" probes it)."""
        re = self.pls.re
        for j, t in enumerate(re.terms):
            sl = re.theta_slice(j)
            if not sl.start <= k < sl.stop:
                continue
            cov = t.cov
            local = k - sl.start
            where = np.flatnonzero(cov.theta_index == local)
            if where.size != 1 or cov.rows[where[0]] != cov.cols[where[0]]:
                return None
            col = cov.cols[where[0]]
            below = np.unique(cov.theta_index[(cov.cols == col) & (cov.rows > col)])
            if not below.size:
                return None
            out = np.array(theta, float)
            out[sl.start + below] *= -1.0
            return out
        return None

    def theta_scales(self, theta: np.ndarray) -> np.ndarray:
        """Scales of θ for the gradient search at θ (:func:`~interlace.objective.theta_scale.curvature_scales`)."""
        assert self.pls.cp is not None, "the engine has no data"
        return curvature_scales(self.pls.cp, theta)

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`value_and_gradient` gives a gradient here (this class, this engine, this size:
        :func:`~interlace.objective.lmm_gradient.gradient_supported`)."""
        if not self.analytic_gradient:
            return False
        if self._gram is None and not gradient_supported(self.pls):
            self._gram = False
        return self._gram is not False

    @property
    def gradient_pays(self) -> bool:
        """Whether ``optimizer="auto"`` searches with the gradient (L-BFGS-B) rather than BOBYQA.

        The gradient costs about two factorizations and L-BFGS-B ~0.2 ms of Python per step:
        it pays where one factorization is dear, i.e. the blocked engine's dense block has at
        least :data:`GRADIENT_SEARCH_MIN_Q2` columns (CPU s, one thread, auto vs BOBYQA:
        InstEval 1.40 vs 1.63, InstEval 4θ ML 3.16 vs 4.77, crossed slopes 1,000 × 500 6.1 vs
        8.4; sleepstudy 12.4 vs 10.2 ms, crossed 200 × 100 32 vs 29 ms, slopes_500 33 vs 26 ms).
        Below it BOBYQA searches and the checks still use the exact gradient.
        """
        return self.has_gradient and getattr(self.pls, "q2", 0) >= GRADIENT_SEARCH_MIN_Q2

    @property
    def vectorized(self) -> bool:
        """Whether :meth:`criteria` evaluates many points in one pass (the engine's ``factor_many``; never
        in a subclass with a criterion of its own)."""
        v = self.__dict__.get("_vectorized")
        if v is None:
            v = (type(self).__call__ is LMMDeviance.__call__
                 and self.pls.factor_many(np.atleast_2d(self.x0)) is not None)
            self._vectorized = v
        return v

    @property
    def gradient_checks_pay(self) -> bool:
        """Whether lme4's checks after a BOBYQA search take their derivatives from the gradient.

        A gradient costs about 4 factorizations on a small model (crossed 200 × 100: 0.95 ms
        against 0.22 ms; sleepstudy 0.2 ms against 17 µs), and the checks need ``n + 1`` of
        them and 1–3 more for the Newton steps, against ``n(n + 1)`` criterion values and
        ``2n + 2`` more for lme4's finite differences: the differences are cheaper up to
        three parameters, and whenever :meth:`criteria` evaluates the stencil in one pass.
        The gradient is used where it searches (:attr:`gradient_pays`) and from
        :data:`GRADIENT_CHECKS_MIN_THETA` parameters on.
        """
        if not self.has_gradient:
            return False
        if self.gradient_pays:
            return True
        return not self.vectorized and self.lower.size >= GRADIENT_CHECKS_MIN_THETA

    @property
    def newton_pays(self) -> bool:
        """Whether ``optimizer="auto"`` without a gradient searches by Newton steps on finite differences.

        Where one factorization is dear (a dense block of at least :data:`GRADIENT_SEARCH_MIN_Q2`
        columns) and θ has at most :data:`NEWTON_MAX_THETA`
        elements, Newton on the checks' derivatives reaches the point of their refinement in
        fewer evaluations than BOBYQA (users × items, 2 θ, ~0.9 s each: 27 instead of 43 with the
        checks); a criterion evaluated at many points in one pass (:attr:`vectorized`) searches so
        whatever its size.  So does one whose engine shares the work of points with the same
        leading θ (``keeps_leading_theta``: scalar terms with a dense cross block, whose stencil
        of 7 points costs 3 Schur blocks; crossed 200 × 100: 20 evaluations instead of 42).
        """
        if self.lower.size > NEWTON_MAX_THETA:
            return False
        if type(self).__call__ is LMMDeviance.__call__ and getattr(self.pls, "keeps_leading_theta", False):
            return True
        return not self.has_gradient and getattr(self.pls, "q2", 0) >= GRADIENT_SEARCH_MIN_Q2

    def factored(self, sol: LMMSolution) -> PLSSystem:
        """The engine factored at the solution (for conditional variances, hat values, derivatives)."""
        self.pls.factor(sol.theta)
        return self.pls

    def solution(self, theta: np.ndarray) -> LMMSolution:
        """β, u, b and σ² at θ (computed only once, at the optimum)."""
        theta = np.asarray(theta, float)
        f = self.pls.factor(theta)
        if not f.ok:
            raise DataError("the penalized least-squares system cannot be factored at the estimate (its "
                            "cross-products are not finite or not positive definite): check the data for "
                            "values of extreme magnitude and the fixed effects for collinearity")
        obj = np.inf if self.zero_weights else self._criterion(f)
        beta, u = self.pls.solve()
        b = self.pls.re.times_lambda(theta, u)
        return LMMSolution(theta, beta, u, b, f.pwrss / self.dof, obj, f.pwrss, f.ldL2, f.ldRX2,
                           self.pls.RX().copy())


def sum_log_weights(weights: np.ndarray | None) -> tuple[float, bool]:
    """``(Σ log w over the positive weights, whether any weight is 0)``."""
    if weights is None:
        return 0.0, False
    w = np.asarray(weights, float)
    pos = w > 0
    return float(np.sum(np.log(w[pos]))), bool(not pos.all())


def _term_names(dev: LMMDeviance, mask: np.ndarray) -> list[str]:
    """Grouping factors of the random-effects terms whose θ entries are flagged in ``mask``."""
    re = dev.pls.re
    names = []
    for k, t in enumerate(re.terms):
        if np.any(mask[re.theta_slice(k)]) and t.name not in names:
            names.append(t.name)
    return names


def _warn(messages: list[tuple[str, type]], warn: bool) -> None:
    if warn:
        for m, cls in messages:
            warn_user(m, cls)


def residual_fraction(dev: LMMDeviance) -> float:
    """The least-squares residual of y on the fixed effects alone, as a fraction of ``yᵀWy``
    (from the loaded cross-products; 0 for an exact fit)."""
    assert dev.pls.cp is not None, "the engine has no data"
    A = np.asarray(dev.pls.cp.A33, float)
    if not np.all(np.isfinite(A)):
        raise DataError("the cross-products of the response and fixed effects overflow: rescale the response, "
                        "the covariates or the weights")
    yty = float(A[-1, -1])
    if yty <= 0:
        return 0.0
    XtX, Xty = A[:-1, :-1], A[:-1, -1]
    rss = yty - float(Xty @ np.linalg.lstsq(XtX, Xty, rcond=None)[0]) if XtX.size else yty
    return max(rss, 0.0) / yty


def fit_criterion(dev: LMMDeviance, x0: np.ndarray, optimizer: str = "auto", maxfun: int | None = None,
                  options: dict | None = None, check_conv: bool = True, warn: bool = True,
                  response: str = "the response") -> tuple[OptSummary, LMMSolution]:
    """Minimize an LMM criterion with lme4's checks, handling its two degenerate directions.

    See the module docstring: an exact fit (zero residuals from the fixed effects alone)
    is refused; θ's diagonal is bounded by :data:`THETA_MAX`, and a fit at the bound or
    with a residual at the rounding level is flagged (σ numerically 0).

    Parameters
    ----------
    dev : LMMDeviance
    x0 : ndarray
        Starting parameters (moved inside the bounds).
    optimizer, maxfun, options, check_conv, warn
        As :func:`~interlace.optimize.minimize_checked`.
    response : str
        How to name the response in messages.

    Returns
    -------
    (OptSummary, LMMSolution)

    Raises
    ------
    DataError
        When the response is an exact linear function of the fixed effects.
    """
    lower, upper = dev.lower, dev.upper
    x0 = np.minimum(np.maximum(np.asarray(x0, float), lower), upper)
    check_exact_fit(dev, response)
    opt = minimize_checked(dev, x0, lower, optimizer=optimizer, maxfun=maxfun, options=options,
                           check_conv=check_conv, warn=warn, upper=upper,
                           value_and_grad=dev.value_and_gradient if dev.has_gradient else None,
                           mirror=dev.mirrored, gradient_search=dev.gradient_pays,
                           gradient_checks=dev.gradient_checks_pay,
                           criteria=dev.criteria if dev.vectorized else None,
                           newton=dev.newton_pays, scale=dev.theta_scales)
    sol = dev.solution(opt.x)
    msg = sigma_zero_message(dev, opt.x, sol, response)
    if msg is not None:
        opt.messages = list(opt.messages) + [msg]
        _warn([(msg, ConvergenceWarning)], warn and check_conv)
    return opt, sol


def check_exact_fit(dev: LMMDeviance, response: str = "the response") -> None:
    """Refuse a response that is an exact linear function of the fixed effects (see the module docstring)."""
    if residual_fraction(dev) <= ZERO_RESIDUAL:
        raise DataError(f"{response} is an exact linear function of the fixed effects (e.g. constant): every "
                        "residual is 0, so the residual and random-effect variances are 0 and nothing is left "
                        "to estimate (lme4 reports 'REML criterion at convergence: -Inf'); check the response "
                        "and the formula")


def sigma_zero_message(dev: LMMDeviance, x: np.ndarray, sol: LMMSolution, response: str = "the response"
                       ) -> str | None:
    """The warning for a fit whose residual variance is numerically 0 (θ at its bound, or a residual
    at the rounding level of ``yᵀWy``), or None."""
    lower, upper = dev.lower, dev.upper
    bound = at_upper(x, upper)
    if not (bound.any() or sol.pwrss <= ZERO_RESIDUAL * dev.yty):
        return None
    names = _term_names(dev, bound if bound.any() else np.asarray(lower) == 0)
    where = f" within the levels of {', '.join(map(repr, names))}" if names else ""
    stop = (f"θ stopped at its bound {THETA_MAX:g}" if bound.any()
            else "the residual sum of squares is at the rounding level of the data")
    return (f"Model failed to converge: the residual standard deviation is estimated at (nearly) 0: {response} "
            "is (almost) exactly "
            f"determined by the fixed and random effects (e.g. constant{where}), the likelihood grows without "
            f"bound as σ → 0 and {stop}; σ and the variance components are not estimable, the fixed "
            "effects are their σ → 0 limit")
