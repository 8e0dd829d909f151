"""Bound-constrained minimizers behind one protocol, and the fit log they produce.

``minimize(fun, x0, lower, optimizer=...)`` runs BOBYQA (Py-BOBYQA, lme4's
default algorithm) or a scipy method over the box ``lower <= x``, and returns
an :class:`OptSummary` (MixedModels.jl's name for the record of a fit).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.optimize

from ..errors import InterlaceError

__all__ = ["GRADIENT_OPTIMIZER", "NEWTON_OPTIMIZER", "OptSummary", "minimize", "OPTIMIZERS", "HAVE_NLOPT", "is_auto"]

OPTIMIZERS = ("bobyqa", "pybobyqa", "nlopt_bobyqa", "L-BFGS-B", "Nelder-Mead", "Powell")

try:  # NLopt's BOBYQA (lme4's default through nloptwrap) has almost no per-evaluation overhead
    import nlopt as _nlopt

    HAVE_NLOPT = True
except ImportError:  # pragma: no cover - depends on the machine
    _nlopt = None
    HAVE_NLOPT = False
_BIG = 1e20
#: The name :class:`OptSummary` records for the gradient path of ``optimizer="auto"``
#: (:mod:`interlace.optimize.gradient`); refits given it take the same path.
GRADIENT_OPTIMIZER = "L-BFGS-B+analytic"
#: The recorded name of ``optimizer="auto"``'s Newton search on finite-difference stencils
#: (:func:`~interlace.optimize.stencil.newton_search`); asking for it is asking for ``"auto"``.
NEWTON_OPTIMIZER = "Newton+finite-differences"


def is_auto(optimizer: object) -> bool:
    """Whether ``optimizer`` asks for ``"auto"`` (the gradient path where there is a gradient, else BOBYQA)."""
    return isinstance(optimizer, str) and optimizer.lower() in ("auto", GRADIENT_OPTIMIZER.lower(),
                                                                 NEWTON_OPTIMIZER.lower())


@dataclass
class OptSummary:
    """Record of an optimization.

    Attributes
    ----------
    optimizer : str
    x0, lower, x : ndarray
        Start, lower bounds and final parameters.
    fmin : float
    n_evals : int
    converged : bool
        The optimizer's own success flag (lme4-style checks are in ``messages``).
    message : str
    seconds : float
    messages : list of str
        Convergence and singularity warnings issued after the fit.
    """

    optimizer: str
    x0: np.ndarray
    lower: np.ndarray
    x: np.ndarray
    fmin: float
    n_evals: int
    converged: bool
    message: str
    seconds: float
    messages: list = field(default_factory=list)
    #: whether a Newton step from the checks' derivatives refined ``x`` (:func:`newton_polish`)
    polished: bool = False
    #: the checks' finite-difference derivatives at ``x`` (``free``, ``gradient``, ``hessian``)
    derivs: dict = field(default_factory=dict)


def _safe(fun):
    def wrapped(x):
        v = fun(x)
        return v if np.isfinite(v) else 1e100

    return wrapped


def minimize(fun: Callable[[np.ndarray], float], x0: npt.ArrayLike, lower: npt.ArrayLike,
             optimizer: str = "bobyqa", maxfun: int | None = None,
             rhobeg: float | np.ndarray = 0.2, rhoend: float = 1e-9, options: dict | None = None,
             xtol_rel: float = 1e-7, upper: npt.ArrayLike | None = None) -> OptSummary:
    """Minimize ``fun`` over ``lower <= x <= upper``.

    Parameters
    ----------
    fun : callable
        Objective of a 1-d array.
    x0, lower : array-like
        Start and lower bounds (``-inf`` for unbounded).
    optimizer : {"bobyqa", "pybobyqa", "nlopt_bobyqa", "L-BFGS-B", "Nelder-Mead", "Powell"}
        ``"bobyqa"`` is Powell's BOBYQA (lme4's default algorithm) served by NLopt when
        the ``nlopt`` package is installed, else by Py-BOBYQA; ``"pybobyqa"`` and
        ``"nlopt_bobyqa"`` choose the implementation.
    maxfun : int, optional
        Evaluation budget (default ``max(1000, 100 * len(x0)**2)``).
    rhobeg, rhoend : float
        BOBYQA's initial and final trust-region radii (NLopt takes ``rhobeg`` per
        coordinate as an array too; Py-BOBYQA uses its smallest element).
    xtol_rel : float
        NLopt's stopping tolerance on the relative change of x (Py-BOBYQA stops at ``rhoend``).
    options : dict, optional
        Passed to the optimizer (Py-BOBYQA ``user_params`` or scipy ``options``).
    upper : array-like, optional
        Upper bounds (``inf`` for unbounded; default: none).
    """
    canonical = {o.lower(): o for o in OPTIMIZERS}
    if is_auto(optimizer):  # without a gradient: BOBYQA
        optimizer = "bobyqa"
    if not isinstance(optimizer, str) or optimizer.lower() not in canonical:
        raise InterlaceError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    optimizer = canonical[optimizer.lower()]
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    n = x0.size
    if lower.shape != x0.shape:
        raise InterlaceError(f"starting values have {x0.size} elements; the model has {lower.size} parameters")
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    if not np.all(np.isfinite(x0)):
        raise InterlaceError(f"starting values must be finite, got {x0}")
    x0 = np.minimum(x0, upper)
    maxfun = maxfun or max(1000, 100 * n * n)
    f = _safe(fun)
    t0 = time.perf_counter()
    name = optimizer.lower()
    if name == "bobyqa":
        name = "nlopt_bobyqa" if HAVE_NLOPT else "pybobyqa"
    if name == "nlopt_bobyqa":
        if not HAVE_NLOPT:
            raise ImportError("optimizer='nlopt_bobyqa' needs the nlopt package (pip install nlopt)")
        best = {"f": np.inf, "x": np.maximum(x0, lower), "n": 0}

        def obj(x, grad):
            best["n"] += 1
            v = f(x)
            if v < best["f"]:
                best["f"], best["x"] = v, np.array(x)
            return v

        opt = _nlopt.opt(_nlopt.LN_BOBYQA, n)
        opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
        opt.set_upper_bounds(np.where(np.isfinite(upper), upper, np.inf))
        opt.set_min_objective(obj)
        # by default stop when θ changes by less than 1e-7 relative (the reference fits need ~1e-6)
        opt.set_xtol_rel(xtol_rel)
        opt.set_ftol_rel(1e-15)
        opt.set_maxeval(maxfun)
        opt.set_initial_step(np.broadcast_to(np.asarray(rhobeg, float), (n,)).copy())
        for k, v in (options or {}).items():
            getattr(opt, f"set_{k}")(v)
        messages = {1: "success", 2: "stopval reached", 3: "ftol reached", 4: "xtol reached",
                    5: "maximum evaluations reached", 6: "maxtime reached"}
        try:
            opt.optimize(np.maximum(x0, lower))
            code = opt.last_optimize_result()
            msg = messages.get(code, f"NLopt code {code}")
        except _nlopt.RoundoffLimited:  # the best point is usable; the gradient check judges it
            code, msg = 1, "NLopt roundoff-limited"
        except (RuntimeError, ValueError) as exc:
            code, msg = -1, f"NLopt failure: {exc}"
        x, fmin, nf = best["x"], best["f"], best["n"]
        ok = code > 0 and code != _nlopt.MAXEVAL_REACHED
        optimizer = "nlopt_bobyqa"
    elif name == "pybobyqa":
        import pybobyqa

        xl = np.where(np.isfinite(lower), lower, -_BIG)
        xu = np.where(np.isfinite(upper), upper, _BIG)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pybobyqa.solve(f, x0, bounds=(xl, xu), rhobeg=float(np.min(rhobeg)), rhoend=rhoend, maxfun=maxfun,
                                 user_params=options, do_logging=False)
        ok = res.flag in (res.EXIT_SUCCESS, res.EXIT_SLOW_WARNING)
        x, fmin, nf, msg = res.x, res.f, res.nf, res.msg
        optimizer = "pybobyqa"
    elif optimizer in OPTIMIZERS:
        bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, upper)]
        # ftol 1e-12 / fatol 1e-10: tighter stops (1e-14, 1e-12) are below the criterion's rounding noise,
        # so L-BFGS-B's line search and Nelder-Mead's iteration limit reported failure at the optimum
        opts = {"maxiter": maxfun} if optimizer != "L-BFGS-B" else {"maxfun": maxfun, "ftol": 1e-12, "gtol": 1e-9}
        if optimizer == "Nelder-Mead":
            opts.update(xatol=1e-9, fatol=1e-10)
        elif optimizer == "Powell":  # scipy's defaults (1e-4) stop short of the optimum (max|grad| ~ 0.1)
            opts.update(xtol=1e-10, ftol=1e-14)
        opts.update(options or {})
        res = scipy.optimize.minimize(f, x0, method=optimizer, bounds=bounds, options=opts)
        x, fmin, nf, msg, ok = res.x, res.fun, res.nfev, str(res.message), bool(res.success)
    else:  # pragma: no cover - names are checked above
        raise InterlaceError(f"unknown optimizer {optimizer!r}")
    x = np.minimum(np.maximum(np.asarray(x, float), lower), upper)
    return OptSummary(optimizer, x0, lower, x, float(fmin), int(nf), ok, msg, time.perf_counter() - t0)
