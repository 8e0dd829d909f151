"""Agreement of each tool's estimates with lme4's in the same run (the FE, VC, θ and llf columns)."""
from __future__ import annotations

import numpy as np

from .common import row_key


def _norm_name(name: str) -> str:
    """Fixed-effect name without R/patsy decoration: ``(Intercept)``→``Intercept``, ``service[T.1]``→``service1``."""
    for a, b in (("(", ""), (")", ""), ("[T.", ""), ("[", ""), ("]", "")):
        name = name.replace(a, b)
    return name


def _rel(a: float, b: float, scale: float | None = None) -> float:
    """``|a - b| / |scale or b|`` (absolute difference when the scale is 0)."""
    s = abs(b if scale is None else scale)
    return abs(a - b) / s if s > 0 else abs(a - b)


def compare(res: dict, ref: dict, with_theta: bool = False, tool: str = "interlace") -> dict:
    """Agreement of one tool's estimates with lme4's.

    Parameters
    ----------
    res, ref : dict
        Worker outputs (``fe``, ``cov``, ``residual_var``, ``llf``, ``theta``, ``theta_names``).
    with_theta : bool
        Also compare θ (done for GLMMs, whose residual variance is fixed at 1).
    tool : str
        Name of the tool in the notes.

    Returns
    -------
    dict
        ``fe_max_rel``, ``vc_max_rel``, ``theta_max_rel`` (max |θ − θ_lme4| / |θ_lme4|,
        absolute where θ_lme4 = 0), ``llf_abs`` (None where not comparable) and ``notes``.
    """
    notes = []
    fe_a = {_norm_name(k): v for k, v in res["fe"].items()}
    fe_b = {_norm_name(k): v for k, v in ref["fe"].items()}
    if set(fe_a) == set(fe_b):
        fe = max(_rel(fe_a[k], fe_b[k]) for k in fe_b)
    elif len(fe_a) == len(fe_b):
        fe = max(_rel(a, b) for a, b in zip(res["fe"].values(), ref["fe"].values(), strict=True))
        notes.append(f"fixed effects matched by position: {list(res['fe'])} ~ {list(ref['fe'])}")
    else:
        fe = None
        notes.append("fixed effects differ in number")
    vc = [_rel(res["residual_var"], ref["residual_var"])]
    cov_a = {c["group"]: np.asarray(c["matrix"], float) for c in res["cov"]}
    for c in ref["cov"]:
        B = np.asarray(c["matrix"], float)
        A = cov_a.get(c["group"])
        if A is None or A.shape != B.shape:
            notes.append(f"no matching covariance for {c['group']}")
            vc = None
            break
        d = np.sqrt(np.diag(B))
        for i in range(B.shape[0]):
            for j in range(i + 1):
                vc.append(_rel(A[i, j], B[i, j], d[i] * d[j]))
    return {"fe_max_rel": fe, "vc_max_rel": None if vc is None else max(vc),
            "theta_max_rel": _compare_theta(res, ref, notes) if with_theta else None,
            "llf_abs": abs(res["llf"] - ref["llf"]), "notes": notes + _glmm_llf_notes(res, ref, with_theta, tool)}


def _glmm_llf_notes(res: dict, ref: dict, glmm: bool, tool: str = "interlace") -> list:
    """GLMM log-likelihood remarks: which tool's optimum is higher; lme4's nAGQ=0 ``logLik`` convention."""
    if not glmm:
        return []
    lap = ref.get("llf_laplace_at_estimate")
    if lap is None:
        return [f"llf − llf_lme4 = {res['llf'] - ref['llf']:+.2e} (positive: {tool}'s optimum is higher)"]
    return [(f"lme4's `logLik` of its nAGQ=0 fit is {ref['llf']:.5f}, its Laplace log-likelihood at the "
             f"same estimates {lap:.5f} (what interlace reports for nAGQ=0); {tool} {res['llf']:.5f}: "
             f"|Δ| = {abs(res['llf'] - lap):.1e} against the latter")]


def _compare_theta(res: dict, ref: dict, notes: list) -> float | None:
    """Max relative difference of θ, matched by name (``g.(Intercept)``) when both tools name it."""
    ta, tb = res.get("theta"), ref.get("theta")
    if not ta or not tb or len(ta) != len(tb):
        if ta is not None and tb is not None:
            notes.append("θ differs in length")
        return None
    na, nb = res.get("theta_names"), ref.get("theta_names")
    if na and nb and sorted(map(_norm_name, na)) == sorted(map(_norm_name, nb)):
        by_name = dict(zip(map(_norm_name, na), ta, strict=False))
        ta = [by_name[_norm_name(k)] for k in nb]
    else:
        notes.append("θ matched by position")
    return max(_rel(a, b) for a, b in zip(ta, tb, strict=True))


def add_agreement(rows: dict, with_theta: bool = False, reference: str = "lme4") -> None:
    """Compare every successful row with the ``reference`` tool's row of the same workload (lme4, or coxme
    for a Cox model; θ too if ``with_theta``)."""
    ref = rows.get(row_key(reference, ""))
    if not ref or ref.get("status") != "ok":
        return
    for key, r in rows.items():
        if key != reference and r.get("status") == "ok" and "fe" in r:
            r["agreement"] = compare(r, ref, with_theta, tool=key.split("[")[0])
