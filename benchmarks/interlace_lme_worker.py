#!/usr/bin/env python3
"""interlace-lme side of ``benchmarks/run_benchmarks.py`` (run by it, not by hand).

Usage::

    VENV/bin/python benchmarks/interlace_lme_worker.py SPEC.json

``interlace-lme`` (PyPI, version 0.3.2, an earlier project unrelated to this
repository) is imported as ``interlace``, like this package, so it lives in its
own virtual environment and this worker runs with that environment's Python::

    python3 -m venv /tmp/ilme
    /tmp/ilme/bin/pip install interlace-lme==0.3.2 pandas

without interlace-lme's ``[fast]`` extra (scikit-sparse, CHOLMOD): 0.5.0 does not
build against Debian's SuiteSparse, and with 0.4.16 interlace-lme's fit of
crossed_200x100 stopped at its starting values, so it runs on its SuperLU path
(the worker records whether scikit-sparse is present).  The worker refuses to
run if ``import interlace`` finds this repository's package instead.

The spec is the one the runner writes for its Python workers (``mode``,
``data``, ``formula``, ``method``, ``family``, ``link``, ``nagq``, ``repeats``,
``progress``, ``out``, ...).  interlace-lme takes the fixed-effects formula and
the random terms apart (``fit("y ~ x", data, random=["(1 | g)"])``), so the
lme4 formula is split by ``run_benchmarks.split_lme4_formula``, which also makes
lme4's implicit random intercept explicit.  ``ilme_binary`` (column, success
level) codes a two-level string response as 0/1 after loading, untimed: its
``glmer`` needs a numeric response.  The timing is that of the other Python
workers (``run_benchmarks._timed``: one warm-up fit, then ``repeats`` timed
fits around the whole ``fit``/``glmer`` call).  interlace-lme does not report
its number of objective evaluations, so none is given.
"""
from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run_benchmarks as rb  # standard library only at import time


def _cov_entry(group: str, value) -> dict:
    """One ``cov`` record from an interlace-lme variance component (float or DataFrame)."""
    import numpy as np

    if np.ndim(value) == 0:
        return {"group": group, "names": ["(Intercept)"], "matrix": [[float(value)]]}
    return {"group": group, "names": [str(c) for c in value.columns], "matrix": np.asarray(value, float).tolist()}


def _theta_names(random: list[str]) -> list[str] | None:
    """lme4-style θ names (``g.(Intercept)``) when every random term is a scalar intercept, else None."""
    names = []
    for term in random:
        effects, group = (x.strip() for x in term.strip("()").split("|", 1))
        if effects != "1":
            return None
        names.append(f"{group.lstrip('|').strip()}.(Intercept)")
    return names


def work(spec: dict) -> dict:
    """Fit one workload with interlace-lme: modes ``time`` and ``baseline``."""
    from importlib.metadata import PackageNotFoundError, version

    import interlace

    where = Path(interlace.__file__).resolve()
    if rb.ROOT in where.parents:
        raise RuntimeError(f"`import interlace` found this repository ({where}), not interlace-lme")
    try:
        sparse = version("scikit-sparse")
    except PackageNotFoundError:
        sparse = "not installed"
    df = rb.load_frame(spec)
    if spec.get("ilme_binary"):
        col, success = spec["ilme_binary"]
        df[col] = (df[col].astype(str) == str(success)).astype("int64")
    out = {"status": "ok", "mode": spec["mode"], "threads": rb._thread_info(),
           "tool_version": version("interlace-lme"), "scikit_sparse": sparse,
           "python": sys.version.split()[0], "executable": sys.executable}
    if spec["mode"] == "baseline":
        return out

    fixed, random = rb.split_lme4_formula(spec["formula"])
    out["call_formula"], out["call_random"] = fixed, random
    if spec.get("family"):
        if spec.get("link", "logit") != "logit":
            raise ValueError(f"interlace-lme's binomial family has the logit link only, not {spec['link']}")

        def call():
            return interlace.glmer(fixed, df, family=spec["family"], random=random, nAGQ=spec["nagq"])
    else:
        def call():
            return interlace.fit(fixed, df, random=random, method=spec["method"])

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = call()
        res_warnings = sorted({str(w.message).splitlines()[0] for w in caught})
        return res, res_warnings

    seconds, (res, res_warnings) = rb._timed(run, spec["repeats"], None, spec.get("progress"))
    out.update(
        seconds=seconds,
        n_evals=None,
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=[_cov_entry(g, v) for g, v in res.variance_components.items()],
        residual_var=float(res.scale),
        llf=float(res.llf),
        theta=[float(t) for t in res.theta],
        theta_names=_theta_names(random),
        messages=res_warnings,
        converged=bool(res.converged),
    )
    return out


def main(spec_path: str) -> None:
    """Read the spec, fit, write the result JSON (errors are reported in it, not raised)."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        out = work(spec)
    except Exception as exc:  # noqa: BLE001 - reported in the results, not fatal for the run
        traceback.print_exc()
        out = {"status": f"error: {type(exc).__name__}: {exc}"}
    Path(spec["out"]).write_text(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: VENV/bin/python benchmarks/interlace_lme_worker.py SPEC.json")
    main(sys.argv[1])
