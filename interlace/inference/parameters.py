"""The parameters of a linear mixed model on lme4's reporting scale, and their names.

Every θ element maps to a standard deviation (σ-scaled, in the response's units) of a
random coefficient or the correlation of two; then σ; then the fixed effects β — the
rows of lme4's ``confint`` (``.sig01, …, .sigma`` or ``sd_(Intercept)|Subject``, …).
Profiles, bootstraps and intervals all name and convert parameters here.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..design.covariance import BlockDiagonal, CovarianceStructure, ScaledIdentity, Unstructured
from ..design.terms import RandomEffects
from ..errors import InterlaceError

__all__ = ["VarParam", "param_names", "percent_labels", "sdcor_to_theta", "theta_to_sdcor", "var_params"]


@dataclass(frozen=True)
class VarParam:
    """One variance parameter on the standard-deviation scale (one per θ element).

    Attributes
    ----------
    kind : {"sd", "cor"}
    term : int
        Index of the term in fitting order (``RandomEffects.terms``).
    coefs : tuple of int
        For ``"sd"`` the coefficients (within the term) whose SD it is (one, or all
        the coefficients of a scaled-identity block); for ``"cor"`` the pair ``(i, j)``, i > j.
    """

    kind: str
    term: int
    coefs: tuple


def _structure_params(cov: CovarianceStructure, offset: int = 0) -> list[tuple[str, tuple]]:
    """(kind, coefficient indices) for each θ element of one covariance structure, in θ order."""
    if isinstance(cov, Unstructured):
        out = []
        for r, c in zip(cov.rows, cov.cols):
            out.append(("sd", (offset + int(r),)) if r == c else ("cor", (offset + int(r), offset + int(c))))
        return out
    if isinstance(cov, ScaledIdentity):
        return [("sd", tuple(offset + k for k in range(cov.p)))]
    if isinstance(cov, BlockDiagonal):
        out = []
        for k, b in enumerate(cov.blocks):
            out.extend(_structure_params(b, offset + int(cov.col_offsets[k])))
        return out
    raise InterlaceError(f"profiles are not available for covariance structure {type(cov).__name__}")


def var_params(re: RandomEffects) -> list[VarParam]:
    """The variance parameters of a model in θ order (lme4's ``.sig01``, ``.sig02``, …)."""
    out = []
    for k, t in enumerate(re.terms):
        out.extend(VarParam(kind, k, coefs) for kind, coefs in _structure_params(t.cov))
    return out


def param_names(re: RandomEffects, fe_names: Iterable[str], old: bool = True) -> list[str]:
    """Names of all parameters: variance parameters, σ, fixed effects (lme4's ``confint`` rows).

    ``old=True`` gives ``.sig01, …, .sigma``; ``old=False`` gives
    ``sd_<coef>|<group>``, ``cor_<coef i>.<coef j>|<group>``, ``sigma``.
    """
    vps = var_params(re)
    if old:
        names = [f".sig{k + 1:02d}" for k in range(len(vps))] + [".sigma"]
    else:
        names = []
        for v in vps:
            t = re.terms[v.term]
            if v.kind == "sd":
                names.append(f"sd_{t.coef_names[v.coefs[0]]}|{t.name}")
            else:
                names.append(f"cor_{t.coef_names[v.coefs[0]]}.{t.coef_names[v.coefs[1]]}|{t.name}")
        names.append("sigma")
    return names + list(fe_names)


def theta_to_sdcor(re: RandomEffects, theta: np.ndarray, sigma: float) -> np.ndarray:
    """θ → standard deviations (σ-scaled) and correlations, one per θ element.

    A correlation involving a zero standard deviation is reported as 0.
    """
    theta = np.asarray(theta, float)
    out = np.empty(theta.size)
    pos = 0
    for k, t in enumerate(re.terms):
        S = t.cov.covariance(theta[re.theta_slice(k)], sigma * sigma)
        sd = np.sqrt(np.maximum(np.diag(S), 0.0))
        for kind, coefs in _structure_params(t.cov):
            if kind == "sd":
                out[pos] = sd[coefs[0]]
            else:
                i, j = coefs
                den = sd[i] * sd[j]
                out[pos] = S[i, j] / den if den > 0 else 0.0
            pos += 1
    return out


def sdcor_to_theta(re: RandomEffects, sdcor: np.ndarray, sigma: float) -> np.ndarray | None:
    """Standard deviations and correlations (θ order) → θ; None when a covariance is not PSD."""
    sdcor = np.asarray(sdcor, float)
    parts = []
    pos = 0
    for t in re.terms:
        desc = _structure_params(t.cov)
        vals = sdcor[pos:pos + len(desc)]
        pos += len(desc)
        p = t.cov.p
        sd = np.zeros(p)
        for (kind, coefs), v in zip(desc, vals):
            if kind == "sd":
                sd[list(coefs)] = v
        S = np.diag(sd * sd)
        for (kind, coefs), v in zip(desc, vals):
            if kind == "cor":
                i, j = coefs
                S[i, j] = S[j, i] = v * sd[i] * sd[j]
        if p > 1 and any(kind == "cor" for kind, _ in desc):
            w = np.linalg.eigvalsh(S)
            if w[0] < -1e-10 * max(w[-1], 1e-300):
                return None
        parts.append(t.cov.theta_from_covariance(S, sigma * sigma))
    return np.concatenate(parts) if parts else np.zeros(0)


def percent_labels(level: float) -> list[str]:
    """Column labels of an interval, as R's ``format.perc``: ``"2.5 %"``, ``"97.5 %"``."""
    a = (1.0 - level) / 2.0
    probs = [100.0 * a, 100.0 * (1.0 - a)]
    dec = 0
    for x in probs:  # decimals needed to show each with 3 significant digits, common to both
        s = f"{float(f'{x:.3g}'):f}".rstrip("0")
        dec = max(dec, len(s.split(".")[1]) if "." in s else 0)
    return [f"{x:.{dec}f} %" for x in probs]
