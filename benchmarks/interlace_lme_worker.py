#!/usr/bin/env python3
"""interlace-lme worker of the benchmark harness, and the worker side of its Python protocol.

Usage (by the harness, not by hand)::

    VENV/bin/python benchmarks/interlace_lme_worker.py SPEC.json

``interlace-lme`` (PyPI, version 0.3.2, an earlier project unrelated to this
repository) is imported as ``interlace``, like this package, so it lives in its
own virtual environment and this worker runs with that environment's Python::

    python3 -m venv VENV
    VENV/bin/pip install interlace-lme==0.3.2 pandas

without interlace-lme's ``[fast]`` extra (scikit-sparse, CHOLMOD): 0.5.0 does not
build against Debian's SuiteSparse, and with 0.4.16 interlace-lme's fit of
crossed_200x100 stopped at its starting values, so it runs on its SuperLU path
(the worker records whether scikit-sparse is present).  The worker refuses to
run if ``import interlace`` finds this repository's package instead.

Standalone: it imports nothing from this repository (and only the standard
library at import time), so it runs in a virtual environment that holds neither
this package nor the harness.  The other way round, the harness's own Python
workers (``benchmarks/harness/pyworkers.py``) use its protocol helpers
(:func:`serve`, :func:`load_frame`, :func:`timed`, :func:`thread_info`,
:func:`with_warnings`) and the report uses :func:`split_lme4_formula`, so every
Python tool is loaded, timed and reported by the same code.

Protocol: the spec is a JSON file (``mode``: ``time`` or ``baseline``, ``data``,
``formula``, ``method``, ``family``, ``link``, ``nagq``, ``repeats``,
``progress``, ``out``, ...); the worker writes its result as JSON to ``out``
(``status`` "ok" or ``error: ...``) and appends ``label seconds`` to
``progress`` after each fit, which the runner reads if it has to kill the worker.
interlace-lme takes the fixed-effects formula and the random terms apart
(``fit("y ~ x", data, random=["(1 | g)"])``), so the lme4 formula is split by
:func:`split_lme4_formula`.  ``ilme_binary`` (column, success level) codes a
two-level string response as 0/1 after loading, untimed: its ``glmer`` needs a
numeric response.  interlace-lme does not report its number of objective
evaluations, so none is given.
"""
from __future__ import annotations

import gc
import json
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Root of this repository (the worker refuses to measure the ``interlace`` found here).
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- protocol helpers
def load_frame(spec: dict) -> Any:
    """Read a workload's CSV as the Python workers see it.

    Parameters
    ----------
    spec : dict
        Worker spec: ``data`` (CSV path), ``py_categorical`` (columns read as
        strings), ``add_constant_group`` (add a column ``_one`` of ones).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    df = pd.read_csv(spec["data"])
    for col in spec.get("py_categorical", []):
        df[col] = df[col].astype(str)
    if spec.get("add_constant_group"):
        df["_one"] = 1
    return df


def note_progress(path: str | None, label: str, seconds: float) -> None:
    """Append ``label seconds`` to a worker's progress file (read by the runner if the worker is killed)."""
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{label} {seconds:.6g}\n")


def timed(fit: Callable[[], Any], repeats: int, per_fit_timeout: float | None = None,
          progress: str | None = None) -> tuple[list[float], Any]:
    """One untimed warm-up call of ``fit``, then ``repeats`` timed calls.

    Before each timed call the previous result is dropped and the garbage
    collector runs, so the process's peak memory is that of one fit.

    Parameters
    ----------
    fit : callable
        No-argument function returning a fitted result.
    repeats : int
        Number of timed calls.
    per_fit_timeout : float, optional
        Seconds after which SIGALRM aborts a call with :class:`TimeoutError`.
    progress : str, optional
        Progress file: each finished call appends its label and seconds.

    Returns
    -------
    seconds : list of float
        ``time.perf_counter`` seconds of the timed calls.
    result : object
        The last call's result.
    """
    def on_alarm(signum, frame):
        raise TimeoutError

    if per_fit_timeout:
        signal.signal(signal.SIGALRM, on_alarm)

    def call():
        if per_fit_timeout:
            signal.setitimer(signal.ITIMER_REAL, per_fit_timeout)
        try:
            t0 = time.perf_counter()
            res = fit()
            return time.perf_counter() - t0, res
        finally:
            if per_fit_timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)

    t, res = call()  # warm-up
    note_progress(progress, "warm-up", t)
    seconds = []
    for i in range(repeats):
        del res
        gc.collect()
        t, res = call()
        seconds.append(t)
        note_progress(progress, f"fit{i + 1}", t)
    return seconds, res


def with_warnings(call: Callable[[], Any]) -> Callable[[], tuple[Any, list[str]]]:
    """Wrap ``call`` to return ``(result, warnings)``: the sorted first lines of the warnings it raised."""
    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = call()
        return res, sorted({str(w.message).splitlines()[0] for w in caught})
    return run


def thread_info() -> list[dict]:
    """BLAS/OpenMP thread pools seen by this process (threadpoolctl), [] if it is not installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: d.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "filepath")}
            for d in threadpool_info()]


def serve(spec_path: str, work: Callable[[dict], dict]) -> None:
    """Worker entry point: read the spec, run ``work(spec)``, write its result to ``spec["out"]``.

    An exception is reported in the result (``status``: ``error: Type: message``), not raised.
    """
    spec = json.loads(Path(spec_path).read_text())
    try:
        out = work(spec)
    except Exception as exc:  # noqa: BLE001 - reported in the results, not fatal for the run
        traceback.print_exc()
        out = {"status": f"error: {type(exc).__name__}: {exc}"}
    Path(spec["out"]).write_text(json.dumps(out))


def split_lme4_formula(formula: str) -> tuple[str, list[str]]:
    """Fixed part and random terms of an lme4 formula, for interlace-lme's ``fit(formula, random=[...])``.

    lme4's implicit intercept is made explicit (``(Days | Subject)`` → ``(1 + Days | Subject)``):
    interlace-lme reads a bar term without ``1`` or ``0`` as a slope only.

    Examples
    --------
    >>> split_lme4_formula("y ~ x + (1 | g1) + (x | g2)")
    ('y ~ x', ['(1 | g1)', '(1 + x | g2)'])
    """
    lhs, rhs = formula.split("~", 1)
    fixed, random, depth, term = [], [], 0, ""
    for ch in rhs + "+":
        depth += (ch == "(") - (ch == ")")
        if ch == "+" and depth == 0:
            term = term.strip()
            if term.startswith("(") and "|" in term:
                inner = term[1:-1]
                bar = "||" if "||" in inner else "|"
                effects, group = (x.strip() for x in inner.split(bar, 1))
                parts = [t.strip() for t in effects.split("+")]
                if not {"0", "1", "-1"} & set(parts):
                    effects = "1 + " + effects
                random.append(f"({effects} {bar} {group})")
            elif term:
                fixed.append(term)
            term = ""
        else:
            term += ch
    return f"{lhs.strip()} ~ {' + '.join(fixed) or '1'}", random


# ----------------------------------------------------------------------------- interlace-lme
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
    """Fit one workload with interlace-lme: modes ``time`` and ``baseline`` (load the data, fit nothing)."""
    from importlib.metadata import PackageNotFoundError, version

    import interlace

    where = Path(interlace.__file__).resolve()
    if ROOT in where.parents:
        raise RuntimeError(f"`import interlace` found this repository ({where}), not interlace-lme")
    try:
        sparse = version("scikit-sparse")
    except PackageNotFoundError:
        sparse = "not installed"
    df = load_frame(spec)
    if spec.get("ilme_binary"):
        col, success = spec["ilme_binary"]
        df[col] = (df[col].astype(str) == str(success)).astype("int64")
    out = {"status": "ok", "mode": spec["mode"], "threads": thread_info(),
           "tool_version": version("interlace-lme"), "scikit_sparse": sparse,
           "python": sys.version.split()[0], "executable": sys.executable}
    if spec["mode"] == "baseline":
        return out

    fixed, random = split_lme4_formula(spec["formula"])
    out["call_formula"], out["call_random"] = fixed, random
    if spec.get("family"):
        if spec.get("link", "logit") != "logit":
            raise ValueError(f"interlace-lme's binomial family has the logit link only, not {spec['link']}")

        def call():
            return interlace.glmer(fixed, df, family=spec["family"], random=random, nAGQ=spec["nagq"])
    else:
        def call():
            return interlace.fit(fixed, df, random=random, method=spec["method"])

    seconds, (res, res_warnings) = timed(with_warnings(call), spec["repeats"], None, spec.get("progress"))
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: VENV/bin/python benchmarks/interlace_lme_worker.py SPEC.json")
    serve(sys.argv[1], work)
