#!/usr/bin/env python3
"""Speed, memory and agreement of interlace against lme4, statsmodels, mixedlm and interlace-lme.

Run by hand (never by the test suite), from the repository root::

    python3 benchmarks/run_benchmarks.py                       # everything
    python3 benchmarks/run_benchmarks.py --only sleepstudy insteval --repeats 5
    python3 benchmarks/run_benchmarks.py --engines auto blocked cholmod
    python3 benchmarks/run_benchmarks.py --skip-r --skip-statsmodels
    python3 benchmarks/run_benchmarks.py --tools interlace lme4 --timeout 900
    python3 benchmarks/run_benchmarks.py --only users_items --tools interlace \
        --output-md /tmp/b.md --output-json /tmp/b.json       # try without touching the report

It writes ``docs/benchmarks.md`` (tables, machine, versions, threads and the
command that reproduces it) and ``benchmarks/results.json`` (raw results).
A run with ``--only`` replaces the rows of the workloads it ran in an existing
``results.json`` and keeps the others, with the metadata of the run that
measured them; a run without ``--only`` replaces the whole file.  The
workloads are linear mixed models (``interlace.fit`` against ``lmer``) and
GLMMs (``interlace.glmer`` against ``glmer``, in a section of their own).

Tools (``--tools``, default all): ``lme4`` (Debian's R, ``lme4_worker.R``),
``interlace``, ``statsmodels`` (``MixedLM``), ``mixedlm`` (the PyPI package
with a Rust core, ``python3 -m pip install mixedlm``; ``mixedlm.lmer`` /
``mixedlm.glmer`` with the lme4 formula) and ``interlace-lme`` (the earlier,
unrelated PyPI package ``interlace-lme==0.3.2``, whose import name is also
``interlace``: it runs from its own virtual environment, ``--interlace-lme-venv``
or ``$INTERLACE_LME_VENV``, default ``/tmp/ilme``, made with
``python3 -m venv /tmp/ilme && /tmp/ilme/bin/pip install interlace-lme==0.3.2
pandas``, by ``interlace_lme_worker.py``).  A tool that is not installed is
skipped with a note; a tool that cannot fit a workload (formula it does not
support, error, timeout) gets a row with the reason.

How things are measured
-----------------------
* Every fit runs in a subprocess started by a small launcher whose only child
  it is; the launcher reads ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
  after the child exits, which is the child's peak resident set size.
* **Wall seconds**: each worker loads the data (not timed), makes one untimed
  warm-up fit, then ``--repeats`` timed fits; the median is reported.  For
  the Python tools (interlace, statsmodels, mixedlm, interlace-lme) the clock
  (``time.perf_counter``) runs around the whole fitting call, so formula
  processing and building the design are included.  For lme4 it is
  ``system.time`` around ``lmer()`` (``glmer()``) inside R.
* **Peak memory**: for interlace, one fit in a fresh subprocess; the baseline
  is the same worker that imports the same modules and loads the data but fits
  nothing; both and their difference are reported.  For the other tools
  the peak of the timing worker is used (the previous model is dropped and the
  garbage collector runs before each fit), against a data-only baseline.
* **Agreement** with lme4 in the same run: the largest relative difference of
  the fixed effects, the largest relative difference of the variance
  components (every entry of each random-effects covariance matrix and the
  residual variance; a covariance is divided by ``sqrt(var_i var_j)`` of
  lme4, i.e. compared on the correlation scale) and ``|llf - llf_lme4|``.
  For GLMMs θ replaces the variance components (max relative difference).
* **GLMM evaluations**: lme4's ``m@optinfo$feval`` counts only the last of
  ``glmer()``'s two stages; for nAGQ > 0 the R worker counts stage 1 once
  (untimed) with lme4's modular functions and reports the sum, with both
  stages kept in the raw results.
* **Threads**: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``MKL_NUM_THREADS``, ``RAYON_NUM_THREADS`` (mixedlm's Rust core) and friends
  are set to ``--threads`` (default 1) in every worker, Python and R alike.
* **Timeout**: every timing worker (its warm-up and timed fits together) is
  killed after ``--timeout`` seconds (default 900; ``--tool-timeout
  lme4=900`` sets one tool's) and the row reports ``timeout`` with the fits it
  completed before (statsmodels keeps its own per-fit limit too).

Simulated data are written once per run to a temporary directory (or
``--data-dir``) as CSV files that every tool reads, so all tools fit the
same numbers; they are never written inside the repository.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
R_WORKER = HERE / "lme4_worker.R"
ILME_WORKER = HERE / "interlace_lme_worker.py"
INSTEVAL_CSV = HERE / "data" / "insteval.csv.gz"
VERBAGG_CSV = ROOT / "interlace" / "datasets" / "data" / "verbagg.csv"
DEFAULT_MD = ROOT / "docs" / "benchmarks.md"
DEFAULT_JSON = HERE / "results.json"
RSCRIPT = "/usr/bin/Rscript"

#: Seed of every simulated data set (each workload adds its own offset).
SEED = 20240601
#: Per-fit limit for statsmodels, seconds.
STATSMODELS_TIMEOUT = 300.0
#: Default limit of one timing worker (warm-up and timed fits together), seconds (``--timeout``).
DEFAULT_TIMEOUT = 900.0
#: Limit of a worker that only loads the data (memory baseline), seconds.
BASELINE_TIMEOUT = 600.0
#: Thread-count variables set in every worker (``RAYON_NUM_THREADS``: mixedlm's Rust core).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS")
#: Every tool the runner knows, in the order its rows appear (``--tools``).
TOOLS = ("lme4", "interlace", "statsmodels", "mixedlm", "interlace-lme")
#: Version of interlace-lme the comparison is made with (installed in its own venv).
ILME_VERSION = "0.3.2"
#: Default virtual environment holding interlace-lme (``--interlace-lme-venv``, ``$INTERLACE_LME_VENV``).
DEFAULT_ILME_VENV = Path(os.environ.get("INTERLACE_LME_VENV", "/tmp/ilme"))

# The launcher: runs its argv as its only child (stdout sent to stderr), enforces a
# timeout and prints one JSON line with the status, RUSAGE_CHILDREN.ru_maxrss and
# the child's CPU time.
_LAUNCHER = r"""
import json, os, resource, signal, subprocess, sys
timeout = float(sys.argv[1])
p = subprocess.Popen(sys.argv[2:], stdout=sys.stderr, start_new_session=True)
try:
    rc = p.wait(timeout=timeout)
    status = "ok" if rc == 0 else f"exit code {rc}"
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    status = "timeout"
except BaseException:
    os.killpg(p.pid, signal.SIGKILL)
    raise
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"status": status, "maxrss_kb": ru.ru_maxrss, "cpu_seconds": ru.ru_utime + ru.ru_stime}))
"""


# =============================================================================== workloads
@dataclass(frozen=True)
class Workload:
    """One benchmark model and the data it is fitted to.

    Attributes
    ----------
    name : str
        Key used by ``--only``.
    formula : str
        lme4 formula, passed unchanged to ``lmer`` and to ``interlace.fit``.
    method : {"REML", "ML"}
    summary : str
        One-line description for the report.
    data : callable or None
        ``data(directory) -> Path`` writes the CSV and returns its path; None
        for a file shipped in the repository (``path``).
    path : Path, optional
        Data file when ``data`` is None.
    r_factors : tuple of str
        Columns R turns into factors (grouping factors and factor covariates).
    py_categorical : tuple of str
        Columns Python reads as strings (categorical); grouping columns may stay
        integer-coded.
    statsmodels : dict or None
        ``MixedLM.from_formula`` arguments, or None when statsmodels is skipped.
    statsmodels_note : str
        Why statsmodels is skipped, or how it is set up.
    target : callable or None
        ``target(rows) -> list of (text, measured, ok)`` for the issue's goals.
    notes : str
        Extra remarks for the report (e.g. exactly which model is fitted).
    family : str or None
        GLMM family (``"binomial"``) fitted with ``interlace.glmer`` and lme4's
        ``glmer``; None for a linear mixed model (``interlace.fit``, ``lmer``).
    link : str
        GLMM link function (R's name).
    nagq : int
        GLMM ``nAGQ`` (0: PIRLS only; 1: Laplace).
    mixedlm_skip : str
        Why mixedlm is not run on this workload ("" to run it).
    ilme_skip : str
        Why interlace-lme is not run on this workload ("" to run it).
    ilme_binary : tuple
        ``(column, success)``: interlace-lme needs a numeric 0/1 response, so
        its worker codes ``column == success`` as 1 after loading (untimed).
    """

    name: str
    formula: str
    method: str
    summary: str
    data: Callable[[Path], Path] | None = None
    path: Path | None = None
    r_factors: tuple = ()
    py_categorical: tuple = ()
    statsmodels: dict | None = None
    statsmodels_note: str = ""
    target: Callable | None = None
    notes: str = ""
    family: str | None = None
    link: str = "logit"
    nagq: int = 1
    mixedlm_skip: str = ""
    ilme_skip: str = ""
    ilme_binary: tuple = ()

    @property
    def is_glmm(self) -> bool:
        """Whether this is a GLMM workload (``glmer``) rather than an LMM (``lmer``)."""
        return self.family is not None

    @property
    def fit_label(self) -> str:
        """How the model is fitted, for the report: ``REML`` or ``binomial (logit), Laplace (nAGQ=1)``."""
        if not self.is_glmm:
            return self.method
        how = {0: "PIRLS only", 1: "Laplace"}.get(self.nagq, "adaptive Gauss-Hermite")
        return f"{self.family} ({self.link}), {how} (nAGQ={self.nagq})"


def _rng(offset: int):
    """numpy Generator seeded with :data:`SEED` and a workload offset."""
    import numpy as np

    return np.random.default_rng([SEED, offset])


def _write_csv(df, path: Path) -> Path:
    """Write a frame with round-trip float precision (pandas' default repr)."""
    df.to_csv(path, index=False)
    return path


def _levels_all_present(codes, n_levels: int, name: str) -> None:
    """Raise if a simulated grouping factor misses a level."""
    import numpy as np

    if np.unique(codes).size != n_levels:
        raise RuntimeError(f"simulated factor {name} does not use all {n_levels} levels")


def make_sleepstudy(directory: Path) -> Path:
    """lme4's sleepstudy (shipped by ``interlace.datasets``) as a CSV."""
    import interlace

    return _write_csv(interlace.datasets.load("sleepstudy"), directory / "sleepstudy.csv")


def simulate_crossed(n: int, n1: int, n2: int, n_x: int, offset: int):
    """Two crossed random intercepts and ``n_x`` standard-normal covariates.

    ``y = 1 + sum_k 0.5 k x_k + u1[g1] + u2[g2] + e`` with ``u1 ~ N(0, 1)``,
    ``u2 ~ N(0, 0.5^2)``, ``e ~ N(0, 1)``; each row draws its ``g1`` and ``g2``
    levels uniformly (unbalanced, fully crossed).

    Parameters
    ----------
    n, n1, n2 : int
        Rows and numbers of levels of ``g1`` and ``g2``.
    n_x : int
        Covariates, named ``x`` if one, else ``x1``, ``x2``, ...
    offset : int
        Seed offset.

    Returns
    -------
    DataFrame
        Columns ``y``, the covariates, ``g1``, ``g2`` (integer codes).
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    g1 = rng.integers(0, n1, n)
    g2 = rng.integers(0, n2, n)
    _levels_all_present(g1, n1, "g1")
    _levels_all_present(g2, n2, "g2")
    X = rng.standard_normal((n, n_x))
    u1 = rng.standard_normal(n1)
    u2 = 0.5 * rng.standard_normal(n2)
    y = 1.0 + X @ (0.5 * np.arange(1, n_x + 1)) + u1[g1] + u2[g2] + rng.standard_normal(n)
    names = ["x"] if n_x == 1 else [f"x{k + 1}" for k in range(n_x)]
    cols = {"y": y, **{nm: X[:, k] for k, nm in enumerate(names)}, "g1": g1, "g2": g2}
    return pd.DataFrame(cols)


def make_crossed_200x100(directory: Path) -> Path:
    """20,000 rows, 200 × 100 crossed levels (:func:`simulate_crossed`)."""
    return _write_csv(simulate_crossed(20_000, 200, 100, 1, offset=2), directory / "crossed_200x100.csv")


def make_crossed_1m(directory: Path) -> Path:
    """1,000,000 rows, 1,000 × 500 crossed levels, two covariates."""
    return _write_csv(simulate_crossed(1_000_000, 1000, 500, 2, offset=5), directory / "crossed_1m.csv")


def make_slopes_500(directory: Path) -> Path:
    """Correlated random intercept and slope: 500 groups × 100 rows.

    ``y = 2 + 0.8 x + b0[g] + b1[g] x + e`` with ``sd(b0) = 1``, ``sd(b1) = 0.5``,
    ``corr(b0, b1) = 0.3``, ``x, e ~ N(0, 1)``.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(6)
    n_groups, per = 500, 100
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(g.size)
    cov = np.array([[1.0, 0.3 * 0.5], [0.3 * 0.5, 0.25]])
    b = rng.standard_normal((n_groups, 2)) @ np.linalg.cholesky(cov).T
    y = 2.0 + 0.8 * x + b[g, 0] + b[g, 1] * x + rng.standard_normal(g.size)
    return _write_csv(pd.DataFrame({"y": y, "x": x, "g": g}), directory / "slopes_500.csv")


def make_glmm_binary_crossed(directory: Path) -> Path:
    """Binary response, logit link, two crossed random intercepts: 100,000 rows, 1,000 × 200 levels.

    ``P(y = 1) = logistic(-0.5 + 0.8 x + u1[g1] + u2[g2])`` with ``x ~ N(0, 1)``,
    ``u1 ~ N(0, 1)``, ``u2 ~ N(0, 0.5^2)``; each row draws its ``g1`` and ``g2``
    levels uniformly (unbalanced, fully crossed).  ``y`` is written as 0/1.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(7)
    n, n1, n2 = 100_000, 1000, 200
    g1 = rng.integers(0, n1, n)
    g2 = rng.integers(0, n2, n)
    _levels_all_present(g1, n1, "g1")
    _levels_all_present(g2, n2, "g2")
    x = rng.standard_normal(n)
    u1 = rng.standard_normal(n1)
    u2 = 0.5 * rng.standard_normal(n2)
    eta = -0.5 + 0.8 * x + u1[g1] + u2[g2]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return _write_csv(pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2}), directory / "glmm_binary_crossed.csv")


#: Shape of the MovieLens-1M ratings: users, items (movies rated at least once), ratings.
USERS_ITEMS_SHAPE = (6040, 3699, 965_985)


def _counts_with_total(weights, total: int, low: int, high: int):
    """Integer counts ``low ≤ c ≤ high`` proportional to ``weights`` above ``low``, summing to ``total``.

    The share above ``low`` is water-filled under the cap ``high`` and rounded by
    largest remainders, so the result is deterministic and exact.
    """
    import numpy as np

    w = np.asarray(weights, float)
    extra = np.zeros_like(w)
    free = np.ones(w.size, bool)
    left = float(total - low * w.size)
    while True:  # cap the largest shares, hand what they lose to the others
        share = w[free] / w[free].sum() * left
        over = share > high - low
        if not over.any():
            extra[free] = share
            break
        idx = np.flatnonzero(free)[over]
        extra[idx] = high - low
        free[idx] = False
        left -= (high - low) * idx.size
    counts = np.floor(extra).astype(np.int64)
    short = total - low * w.size - int(counts.sum())
    order = np.argsort(-(extra - counts), kind="stable")
    counts[order[:short]] += 1
    return counts + low


def simulate_users_items(n_users: int, n_items: int, n: int, offset: int):
    """Ratings of the MovieLens-1M shape: each user rates distinct items, with skewed counts.

    User activity (ratings per user) is ``20 + lognormal(0, 1.1)`` scaled to ``n``
    rows in total and capped at 2,314 (MovieLens-1M's minimum 20 and maximum);
    item popularity is ``lognormal(0, 1.2)``.  Each user draws its items without
    replacement with probability proportional to popularity (Gumbel top-k), so a
    (user, item) pair occurs at most once, as in real ratings; an item nobody drew
    would take the place of one rating of the most-rated item of a random user (it
    does not happen with this seed).  ``y = 3.6 + u[user] + v[item] + e`` with
    ``u ~ N(0, 0.45^2)``, ``v ~ N(0, 0.55^2)``, ``e ~ N(0, 0.9^2)``: a continuous
    response on the scale of 1–5 star ratings.

    Returns
    -------
    DataFrame
        Columns ``y``, ``user``, ``item`` (integer codes), sorted by user.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    per_user = _counts_with_total(rng.lognormal(0.0, 1.1, n_users), n, 20, 2314)
    log_pop = np.log(rng.lognormal(0.0, 1.2, n_items))
    items = []
    for k in per_user:
        keys = log_pop - np.log(-np.log(rng.random(n_items)))  # Gumbel top-k: weighted, no replacement
        items.append(np.sort(np.argpartition(-keys, k - 1)[:k]))
    user = np.repeat(np.arange(n_users), per_user)
    item = np.concatenate(items)
    per_item = np.bincount(item, minlength=n_items)
    starts = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    for j in np.flatnonzero(per_item == 0):  # repair (not needed with the default seed)
        u = int(rng.integers(n_users))
        rows = np.arange(starts[u], starts[u] + per_user[u])
        r = rows[np.argmax(per_item[item[rows]])]
        per_item[item[r]] -= 1
        item[r] = j
        per_item[j] += 1
    _levels_all_present(user, n_users, "user")
    _levels_all_present(item, n_items, "item")
    y = 3.6 + 0.45 * rng.standard_normal(n_users)[user] + 0.55 * rng.standard_normal(n_items)[item] \
        + 0.9 * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "user": user, "item": item})


def make_users_items(directory: Path) -> Path:
    """MovieLens-1M shape: 965,985 ratings, 6,040 users × 3,699 items (:func:`simulate_users_items`)."""
    return _write_csv(simulate_users_items(*USERS_ITEMS_SHAPE, offset=8), directory / "users_items.csv")


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


def _seconds(rows, tool="interlace", engine="auto"):
    """Median seconds of one row of a workload's results (None if missing)."""
    r = rows.get(_key(tool, engine))
    return r.get("median_seconds") if r and r.get("status") == "ok" else None


def _time_target(limit: float) -> Callable:
    """Target ``interlace (auto) median ≤ limit`` seconds."""
    def check(rows):
        t = _seconds(rows)
        return [(f"interlace (auto) ≤ {limit:g} s", _fmt_s(t), None if t is None else t <= limit)]
    return check


def _insteval_target(rows):
    """insteval: ≤ 3 s and ≥ 8× faster than lme4 in the same run."""
    out = _time_target(3.0)(rows)
    t, tr = _seconds(rows), _seconds(rows, "lme4", "")
    speedup = None if (t is None or tr is None) else tr / t
    out.append(("interlace (auto) ≥ 8× faster than lme4", "n/a" if speedup is None else f"{speedup:.1f}×",
                None if speedup is None else speedup >= 8))
    return out + _ahead_of(rows, "mixedlm")


def _ahead_of(rows, tool: str) -> list:
    """Target ``interlace (auto) faster than <tool>`` in the same run (no row if the tool did not run)."""
    t, to = _seconds(rows), _seconds(rows, tool, "")
    if to is None:
        return []
    ok = None if t is None else t < to
    return [(f"interlace (auto) faster than {tool}", "n/a" if ok is None else f"{_fmt_s(t)} vs {_fmt_s(to)}", ok)]


def _time_and_peak_target(limit_s: float, limit_gb: float) -> Callable:
    """Target ``interlace (auto) median ≤ limit_s`` seconds and peak RSS ≤ ``limit_gb`` (fresh process, total)."""
    def check(rows):
        out = _time_target(limit_s)(rows)
        r = rows.get(_key("interlace", "auto"), {})
        peak = r.get("peak_mb")
        out.append((f"interlace (auto) peak RSS ≤ {limit_gb:g} GB (whole process)",
                    "n/a" if peak is None else
                    f"{peak / 1000:.2f} GB (fit alone {r.get('delta_mb', 0) / 1000:.2f} GB)",
                    None if peak is None else peak <= limit_gb * 1000))
        return out
    return check


#: crossed_1m: ≤ 5 s and ≤ 1.5 GB peak RSS (fresh process, total).
_crossed_1m_target = _time_and_peak_target(5.0, 1.5)


def _slopes_target(rows):
    """slopes_500: interlace ahead of lme4 and mixedlm."""
    return _ahead_of(rows, "lme4") + _ahead_of(rows, "mixedlm")


def _faster_than_lme4_target(rows):
    """interlace (auto) ahead of lme4 in the same run."""
    t, tr = _seconds(rows), _seconds(rows, "lme4", "")
    ok = None if (t is None or tr is None) else t < tr
    measured = "n/a" if ok is None else f"{_fmt_s(t)} s vs {_fmt_s(tr)} s ({tr / t:.1f}×)"
    return [("interlace (auto) faster than lme4", measured, ok)]


#: statsmodels has no maximum-likelihood GLMM to compare with.
GLMM_STATSMODELS_NOTE = ("not run: statsmodels has no maximum-likelihood GLMM (its `BinomialBayesMixedGLM` "
                         "is a variational-Bayes fit)")
#: VerbAgg's columns that R turns into factors (``r2``: N/Y, so "Y" is the success as in lme4).
VERBAGG_FACTORS = ("id", "item", "r2", "Gender", "btype", "situ")
VERBAGG_NOTES = ("`r2` (N/Y) is a factor in R, so Y is the success; interlace codes a two-level string "
                 "response the same way (second sorted level = 1). `Gender`, `btype`, `situ` are factors "
                 "(treatment contrasts, first level dropped) in both tools; `id` is read as an integer code.")

WORKLOADS: list[Workload] = [
    Workload(
        "sleepstudy", "Reaction ~ Days + (Days | Subject)", "REML",
        "lme4's sleepstudy, 180 rows, 18 subjects, correlated intercept and slope",
        data=make_sleepstudy, r_factors=("Subject",),
        statsmodels={"formula": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"},
        statsmodels_note="`mixedlm('Reaction ~ Days', groups='Subject', re_formula='~Days')`",
        target=_time_target(0.015)),
    Workload(
        "crossed_200x100", "y ~ x + (1 | g1) + (1 | g2)", "REML",
        "simulated, 20,000 rows, g1: 200 levels crossed with g2: 100 levels",
        data=make_crossed_200x100, r_factors=("g1", "g2"),
        statsmodels={"formula": "y ~ x", "groups": "_one", "re_formula": "0",
                     "vc_formula": {"g1": "0 + C(g1)", "g2": "0 + C(g2)"}},
        statsmodels_note="crossed factors as variance components of one all-rows group: "
                         "`groups=1, re_formula='0', vc_formula={'g1': '0 + C(g1)', 'g2': '0 + C(g2)'}`",
        target=_time_target(0.15)),
    Workload(
        "insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", "REML",
        "lme4's InstEval, 73,421 rows, s: 2,972 × d: 1,128 crossed, dept: 14",
        path=INSTEVAL_CSV, r_factors=("s", "d", "dept", "service"),
        statsmodels_note="skipped: measured at > 600 s and 11.8 GB (one all-rows group with ~4,100 dense "
                         "variance-component columns)",
        target=_insteval_target,
        notes="R: `service` is a factor (levels 0, 1; fixed effect `service1`). Python: `service` is "
              "numeric 0/1 (fixed effect `service`): the same model matrix."),
    Workload(
        "insteval_4theta_ml", "y ~ 1 + service + (1 | s) + (1 | d) + (0 + service | dept)", "ML",
        "InstEval, ML, by-dept 2×2 covariance of the service levels",
        path=INSTEVAL_CSV, r_factors=("s", "d", "dept", "service"), py_categorical=("service",),
        statsmodels_note="skipped: same data as insteval, larger model",
        target=_time_target(5.0),
        notes="`service` is a factor in both tools, so `(0 + service | dept)` has two columns "
              "(service0, service1 indicators) with an unstructured 2×2 covariance per dept: θ has "
              "5 entries (s, d, and 3 for the dept block), not 4 as the name suggests (a numeric 0/1 "
              "`service` would give 3). Fixed effects: intercept and `service1` (`service[T.1]`).",
        ilme_skip="not run: interlace-lme reads the factor `service` in `(0 + service | dept)` as one "
                  "column, so it fits one dept variance (θ of 3 entries) instead of lme4's 2×2 covariance "
                  "(5 entries): a different model"),
    Workload(
        "crossed_1m", "y ~ x1 + x2 + (1 | g1) + (1 | g2)", "REML",
        "simulated, 1,000,000 rows, g1: 1,000 levels crossed with g2: 500 levels",
        data=make_crossed_1m, r_factors=("g1", "g2"),
        statsmodels_note="skipped: statsmodels can only treat crossed factors as variance components of one "
                         "group, whose dense 1,000,000 × 1,500 design alone is 12 GB",
        target=_crossed_1m_target),
    Workload(
        "slopes_500", "y ~ x + (1 + x | g)", "REML",
        "simulated, 50,000 rows, 500 groups × 100 rows, correlated intercept and slope",
        data=make_slopes_500, r_factors=("g",),
        statsmodels={"formula": "y ~ x", "groups": "g", "re_formula": "~x"},
        statsmodels_note="`mixedlm('y ~ x', groups='g', re_formula='~x')`",
        target=_slopes_target),
    Workload(
        "users_items", "y ~ 1 + (1 | user) + (1 | item)", "REML",
        "simulated ratings of the MovieLens-1M shape, 965,985 rows, user: 6,040 × item: 3,699 crossed, "
        "skewed counts (20–2,314 ratings per user, lognormal item popularity), no repeated (user, item) pair",
        data=make_users_items, r_factors=("user", "item"),
        statsmodels_note="skipped: crossed factors would be variance components of one all-rows group, whose "
                         "dense 965,985 × 9,739 design alone is 75 GB",
        target=_time_and_peak_target(40.0, 1.0),
        notes="Simulated by `simulate_users_items` (numpy seed offset 8): ratings per user `20 + lognormal(0, "
              "1.1)` scaled to the total and capped at 2,314, items drawn without replacement with lognormal(0, "
              "1.2) popularity; `y = 3.6 + u[user] + v[item] + e`, sd 0.45, 0.55, 0.9. One lme4 fit of this shape "
              "was reported at 584 s (issue 5): its row is `timeout` when its warm-up and timed fits do not all "
              "finish within `--timeout`, with the fits it completed in the Notes."),
    Workload(
        "glmm_binary_crossed", "y ~ x + (1 | g1) + (1 | g2)", "ML",
        "simulated binary response, 100,000 rows, g1: 1,000 levels crossed with g2: 200 levels",
        data=make_glmm_binary_crossed, r_factors=("g1", "g2"),
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_faster_than_lme4_target,
        family="binomial", nagq=1),
    Workload(
        "verbagg_laplace", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "ML",
        "lme4's VerbAgg, 7,584 rows, id: 316 × item: 24 crossed",
        path=VERBAGG_CSV, r_factors=VERBAGG_FACTORS,
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_time_target(1.5), notes=VERBAGG_NOTES,
        family="binomial", nagq=1, ilme_binary=("r2", "Y")),
    Workload(
        "verbagg_nagq0", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "ML",
        "lme4's VerbAgg, as verbagg_laplace",
        path=VERBAGG_CSV, r_factors=VERBAGG_FACTORS,
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_time_target(0.3), notes=VERBAGG_NOTES,
        family="binomial", nagq=0, ilme_binary=("r2", "Y"),
        ilme_skip="not run: interlace-lme's `glmer` has no nAGQ=0 (it requires nAGQ ≥ 1)"),
]
BY_NAME = {w.name: w for w in WORKLOADS}


# =============================================================================== workers
def load_frame(spec: dict):
    """Read a workload's CSV as the Python workers see it.

    Parameters
    ----------
    spec : dict
        Worker spec (``data``, ``py_categorical``, ``add_constant_group``).

    Returns
    -------
    DataFrame
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


def _timed(fit: Callable, repeats: int, per_fit_timeout: float | None, progress: str | None = None):
    """One warm-up call of ``fit`` then ``repeats`` timed calls.

    Parameters
    ----------
    fit : callable
        No-argument function returning a fitted result.
    repeats : int
    per_fit_timeout : float, optional
        Seconds after which SIGALRM aborts a fit with :class:`TimeoutError`.
    progress : str, optional
        Progress file: each finished fit appends its label and seconds.

    Returns
    -------
    (list of float, object)
        The timed seconds and the last result.
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


def _frame_cov(cov) -> list:
    """Covariance matrix (DataFrame or array) as nested lists."""
    import numpy as np

    return np.asarray(cov, float).tolist()


def _thread_info() -> list:
    """BLAS/OpenMP thread pools seen by this process (threadpoolctl), if available."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: d.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "filepath")}
            for d in threadpool_info()]


def _theta_names(res) -> list | None:
    """lme4-style names of interlace's θ (``g.(Intercept)``) when every term is scalar, else None."""
    try:
        terms = res.model.random_effects_structure.terms
    except AttributeError:
        return None
    if any(t.cov.n_theta != 1 or len(t.coef_names) != 1 for t in terms):
        return None
    return [f"{t.name}.{t.coef_names[0]}" for t in terms]


def worker_interlace(spec: dict) -> dict:
    """Fit with ``interlace.fit`` (or ``interlace.glmer`` for a GLMM spec): modes ``time``, ``peak`` (one fit)
    and ``baseline``."""
    import interlace  # noqa: F401  (imported in every mode, so the baseline holds it too)
    from interlace import fit, glmer

    df = load_frame(spec)
    out = {"status": "ok", "mode": spec["mode"], "threads": _thread_info()}
    if spec["mode"] == "baseline":
        return out

    if spec.get("family"):
        def run():
            return glmer(spec["formula"], df, family=spec["family"], link=spec["link"], nAGQ=spec["nagq"],
                         engine=spec["engine"])
    else:
        def run():
            return fit(spec["formula"], df, method=spec["method"], engine=spec["engine"])

    if spec["mode"] == "peak":
        res = run()
        seconds = None
    else:
        seconds, res = _timed(run, spec["repeats"], None, spec.get("progress"))
    dev = getattr(res.model, "_deviance", None)
    pls = getattr(dev, "pls", None)
    opt = res.opt_summary
    out.update(
        seconds=seconds,
        optimizer_seconds=float(opt.seconds),
        n_evals=int(opt.n_evals),
        engine_used=getattr(res, "engine", None) or getattr(pls, "engine", None),
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=[{"group": g, "names": list(c.index), "matrix": _frame_cov(c)}
             for g, c in res.random_effects_cov.items()],
        residual_var=float(res.scale),
        llf=float(res.llf),
        theta=[float(t) for t in res.theta],
        theta_names=_theta_names(res),
        messages=list(opt.messages),
        converged=bool(res.converged),
    )
    return out


def worker_statsmodels(spec: dict) -> dict:
    """Fit with statsmodels ``MixedLM``: modes ``time`` (each fit limited to ``per_fit_timeout`` s) and ``baseline``."""
    import warnings

    import statsmodels.formula.api as smf

    sm_args = dict(spec["statsmodels"])
    spec["add_constant_group"] = sm_args.get("groups") == "_one"
    df = load_frame(spec)
    out = {"status": "ok", "mode": spec["mode"], "threads": _thread_info()}
    if spec["mode"] == "baseline":
        return out
    formula = sm_args.pop("formula")

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm(formula, df, **sm_args)
            res = model.fit(reml=spec["method"] == "REML", full_output=True)
        res._bench_warnings = sorted({str(w.message).splitlines()[0] for w in caught})
        return res

    try:
        seconds, res = _timed(run, spec["repeats"], spec["per_fit_timeout"], spec.get("progress"))
    except TimeoutError:
        return {**out, "status": "timeout"}
    group = sm_args["groups"]
    cov = []
    if res.k_re:
        cov.append({"group": group, "names": list(res.cov_re.index), "matrix": _frame_cov(res.cov_re)})
    if res.k_vc:
        for name, v in zip(res.model.exog_vc.names, res.vcomp):
            cov.append({"group": name, "names": [name], "matrix": [[float(v)]]})
    hist = res.hist or []
    out.update(
        seconds=seconds,
        n_evals=int(sum(h.get("fcalls", 0) for h in hist)),
        n_grad_evals=int(sum(h.get("gcalls", 0) for h in hist)),
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=cov,
        residual_var=float(res.scale),
        llf=float(res.llf),
        messages=res._bench_warnings,
        converged=bool(res.converged),
    )
    return out


def worker_mixedlm(spec: dict) -> dict:
    """Fit with the PyPI package mixedlm (``mixedlm.lmer`` / ``mixedlm.glmer``, lme4 formula, default control):
    modes ``time`` and ``baseline``."""
    import warnings
    from importlib.metadata import version

    from mixedlm import glmer as ml_glmer  # imported in every mode, so the baseline holds it too
    from mixedlm import lmer as ml_lmer

    df = load_frame(spec)
    out = {"status": "ok", "mode": spec["mode"], "threads": _thread_info(), "tool_version": version("mixedlm")}
    if spec["mode"] == "baseline":
        return out
    if spec.get("family"):
        from mixedlm.families import Binomial, Poisson

        family = {"binomial": Binomial, "poisson": Poisson}[spec["family"]](link=spec["link"])

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if spec.get("family"):
                res = ml_glmer(spec["formula"], df, family=family, nAGQ=spec["nagq"])
            else:
                res = ml_lmer(spec["formula"], df, REML=spec["method"] == "REML")
        res._bench_warnings = sorted({str(w.message).splitlines()[0] for w in caught})
        return res

    seconds, res = _timed(run, spec["repeats"], None, spec.get("progress"))
    vc = res.VarCorr()
    cov = [{"group": name, "names": list(g.term_names), "matrix": _frame_cov(g.cov)} for name, g in vc.groups.items()]
    structs = res.matrices.random_structures
    theta_names = ([f"{st.grouping_factor}.{st.term_names[0]}" for st in structs]
                   if all(len(st.term_names) == 1 for st in structs) else None)
    evals = getattr(res, "function_evals", None)  # LMMs only; GlmerResult reports iterations (n_iter) alone
    out.update(
        seconds=seconds,
        n_evals=None if spec.get("family") or evals is None else int(evals),
        n_iter=int(res.n_iter),
        optimizer=str(getattr(res, "optimizer", "")),
        fe={str(k): float(v) for k, v in zip(res.matrices.fixed_names, res.beta)},
        cov=cov,
        residual_var=1.0 if spec.get("family") else float(res.sigma) ** 2,
        llf=float(res.logLik().value),
        theta=[float(t) for t in res.theta],
        theta_names=theta_names,
        messages=res._bench_warnings,
        converged=bool(res.converged),
    )
    return out


def worker_main(spec_path: str) -> None:
    """Entry point of a Python worker subprocess: read the spec, run, write JSON."""
    spec = json.loads(Path(spec_path).read_text())
    try:
        if spec["tool"] == "interlace":
            out = worker_interlace(spec)
        elif spec["tool"] == "mixedlm":
            out = worker_mixedlm(spec)
        else:
            out = worker_statsmodels(spec)
    except Exception as exc:  # noqa: BLE001 - reported in the results, not fatal for the run
        import traceback

        traceback.print_exc()
        out = {"status": f"error: {type(exc).__name__}: {exc}"}
    Path(spec["out"]).write_text(json.dumps(out))


# =============================================================================== driver
def _busy_cpu_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (``/proc/stat``), None if unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    steal_guest = sum(ticks[7:]) if len(ticks) > 7 else 0  # steal, guest (guest is counted in user)
    return (sum(ticks) - idle - steal_guest) / os.sysconf("SC_CLK_TCK")


def _source_digest() -> str:
    """Short hash of interlace's Python sources (to detect edits during a run)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "interlace").rglob("*.py")):
        if "tests" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _key(tool: str, engine: str) -> str:
    """Row key inside a workload: ``interlace[auto]``, ``lme4``, ``statsmodels``."""
    return f"{tool}[{engine}]" if engine else tool


def _fmt_s(t) -> str:
    """Seconds with three significant digits (``n/a`` for None)."""
    if t is None:
        return "n/a"
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"


def _read_progress(path: str) -> list:
    """``[label, seconds]`` of every fit a worker finished, from its progress file ([] if none)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    fits = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            try:
                fits.append([parts[0], float(parts[1])])
            except ValueError:
                pass
    return fits


class Runner:
    """Runs the workers of one benchmark session and collects their results.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed command line.
    workdir : Path
        Directory for data, specs, worker outputs and logs.
    """

    def __init__(self, args, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.env = dict(os.environ)
        for var in THREAD_VARS:
            self.env[var] = str(args.threads)
        self.env["PYTHONHASHSEED"] = "0"
        self._n = 0
        self.ilme_python = ilme_python(args.interlace_lme_venv)
        self.tools = list(args.tools)

    def timeout(self, tool: str) -> float:
        """Limit of a timing worker of ``tool``: its ``--tool-timeout``, else ``--timeout``."""
        return self.args.tool_timeouts.get(tool, self.args.timeout)

    def log(self, msg: str) -> None:
        """Progress line on stderr with the elapsed time."""
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def _measure(self, cmd: list, spec: dict, timeout: float, env: dict | None = None) -> dict:
        """Run one worker under the launcher.

        Parameters
        ----------
        cmd : list of str
            Worker command; the spec path is appended.
        spec : dict
            Worker spec (``out`` and ``progress`` are filled in here).
        timeout : float
            Seconds before the worker is killed.
        env : dict, optional
            Environment of the worker (default: this run's, with the thread variables).

        Returns
        -------
        dict
            The worker's JSON output plus ``maxrss_kb`` and the launcher status; for a
            worker that was killed or failed, ``completed_fits`` lists the fits it
            finished (from its progress file).
        """
        self._n += 1
        stem = self.workdir / f"w{self._n:03d}_{spec['workload']}_{spec['tool']}_{spec['mode']}"
        spec = {**spec, "out": str(stem) + ".out.json", "progress": str(stem) + ".progress"}
        spec_path = Path(str(stem) + ".spec.json")
        spec_path.write_text(json.dumps(spec))
        launcher = [sys.executable, "-c", _LAUNCHER, str(timeout), *cmd, str(spec_path)]
        busy0, t0 = _busy_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(launcher, check=False, capture_output=True, text=True, env=env or self.env,
                              cwd=ROOT)
        busy1, wall = _busy_cpu_seconds(), time.perf_counter() - t0
        Path(str(stem) + ".log").write_text(proc.stderr)
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            info = {"status": f"launcher failed: {proc.stderr[-500:]}", "maxrss_kb": None}
        out_path = Path(spec["out"])
        if info["status"] == "ok" and out_path.exists():
            result = json.loads(out_path.read_text())
        else:
            tail = proc.stderr.strip().splitlines()[-3:]
            result = {"status": info["status"] if info["status"] != "ok" else "no output",
                      "stderr_tail": tail}
            fits = _read_progress(spec["progress"])
            if fits:
                result["completed_fits"] = fits
            if info["status"] == "timeout":
                done = ", ".join(f"{label} {_fmt_s(t)} s" for label, t in fits) or "none"
                result["note"] = (f"timeout: the worker was killed after {timeout:.0f} s (warm-up and "
                                  f"{spec.get('repeats', '?')} timed fits had to finish within it); "
                                  f"fits finished before: {done}")
        result["maxrss_kb"] = info.get("maxrss_kb")
        result["worker_wall_seconds"] = wall
        if busy0 is not None and busy1 is not None and info.get("cpu_seconds") is not None and wall > 0:
            # CPU used by everything else on the machine while the worker ran, in cores.
            result["background_cores"] = max(0.0, (busy1 - busy0 - info["cpu_seconds"]) / wall)
        return result

    def python_worker(self, spec: dict, timeout: float) -> dict:
        """Run a Python worker (this file with ``--worker``)."""
        return self._measure([sys.executable, str(Path(__file__).resolve()), "--worker"], spec, timeout)

    def r_worker(self, spec: dict, timeout: float) -> dict:
        """Run the lme4 worker (``Rscript lme4_worker.R``)."""
        return self._measure([RSCRIPT, "--vanilla", str(R_WORKER)], spec, timeout)

    def ilme_worker(self, spec: dict, timeout: float) -> dict:
        """Run the interlace-lme worker with the Python of its virtual environment (no ``PYTHONPATH``)."""
        env = {k: v for k, v in self.env.items() if k != "PYTHONPATH"}
        return self._measure([str(self.ilme_python), str(ILME_WORKER)], spec, timeout, env=env)

    # ------------------------------------------------------------------ tools
    def run_lme4(self, w: Workload, data: Path) -> dict:
        """Time lme4 on a workload (warm-up + repeats) and measure its memory."""
        spec = {"workload": w.name, "tool": "lme4", "data": str(data), "factors": list(w.r_factors),
                "formula": w.formula, "reml": w.method == "REML", "repeats": self.args.repeats,
                "family": w.family, "link": w.link, "nagq": w.nagq}
        base = self.r_worker({**spec, "mode": "baseline"}, BASELINE_TIMEOUT)
        res = self.r_worker({**spec, "mode": "time"}, self.timeout("lme4"))
        return self._finish(res, base, base_key="maxrss_kb", peak_from=res)

    def _python_spec(self, w: Workload, data: Path, tool: str) -> dict:
        """Spec of a Python worker for one workload (the lme4 formula and the GLMM settings)."""
        return {"workload": w.name, "tool": tool, "data": str(data), "py_categorical": list(w.py_categorical),
                "formula": w.formula, "method": w.method, "repeats": self.args.repeats,
                "family": w.family, "link": w.link, "nagq": w.nagq}

    def run_mixedlm(self, w: Workload, data: Path) -> dict:
        """Time mixedlm (warm-up + repeats, memory of the timing worker) against a data-only baseline."""
        spec = self._python_spec(w, data, "mixedlm")
        res = self.python_worker({**spec, "mode": "time"}, self.timeout("mixedlm"))
        if res.get("status") != "ok":
            return self._finish(res, None)
        base = self.python_worker({**spec, "mode": "baseline"}, BASELINE_TIMEOUT)
        return self._finish(res, base, peak_from=res)

    def run_ilme(self, w: Workload, data: Path) -> dict:
        """Time interlace-lme in its own venv (warm-up + repeats, memory of the timing worker) against a baseline."""
        spec = {**self._python_spec(w, data, "interlace-lme"), "ilme_binary": list(w.ilme_binary)}
        res = self.ilme_worker({**spec, "mode": "time"}, self.timeout("interlace-lme"))
        if res.get("status") != "ok":
            return self._finish(res, None)
        base = self.ilme_worker({**spec, "mode": "baseline"}, BASELINE_TIMEOUT)
        return self._finish(res, base, peak_from=res)

    def run_interlace(self, w: Workload, data: Path, engine: str) -> dict:
        """Time interlace (warm-up + repeats), then one fit and a baseline for memory."""
        spec = {"workload": w.name, "tool": "interlace", "data": str(data),
                "py_categorical": list(w.py_categorical), "formula": w.formula, "method": w.method,
                "engine": engine, "repeats": self.args.repeats,
                "family": w.family, "link": w.link, "nagq": w.nagq}
        res = self.python_worker({**spec, "mode": "time"}, self.timeout("interlace"))
        if res.get("status") != "ok":
            return self._finish(res, None)
        peak = self.python_worker({**spec, "mode": "peak"}, self.timeout("interlace"))
        base = self.python_worker({**spec, "mode": "baseline"}, BASELINE_TIMEOUT)
        res["timing_worker_maxrss_kb"] = res.get("maxrss_kb")
        if peak.get("status") != "ok":
            res["memory_status"] = peak.get("status")
        return self._finish(res, base, peak_from=peak)

    def run_statsmodels(self, w: Workload, data: Path) -> dict:
        """Time statsmodels MixedLM with a per-fit timeout."""
        n_fits = self.args.repeats + 1
        spec = {"workload": w.name, "tool": "statsmodels", "data": str(data), "statsmodels": w.statsmodels,
                "py_categorical": list(w.py_categorical), "method": w.method, "repeats": self.args.repeats,
                "per_fit_timeout": STATSMODELS_TIMEOUT}
        res = self.python_worker({**spec, "mode": "time"}, STATSMODELS_TIMEOUT * n_fits + 120)
        if res.get("status") != "ok":
            return self._finish(res, None)
        base = self.python_worker({**spec, "mode": "baseline"}, BASELINE_TIMEOUT)
        return self._finish(res, base, peak_from=res)

    @staticmethod
    def _finish(res: dict, base: dict | None, base_key: str = "maxrss_kb", peak_from: dict | None = None) -> dict:
        """Add the median time and memory (MB = 10^6 bytes) to a worker result."""
        if res.get("seconds"):
            res["median_seconds"] = statistics.median(res["seconds"])
        kb = (peak_from or {}).get("maxrss_kb")
        base_kb = (base or {}).get(base_key)
        if kb is not None:
            res["peak_mb"] = kb * 1024 / 1e6
        if base_kb is not None:
            res["baseline_mb"] = base_kb * 1024 / 1e6
        if kb is not None and base_kb is not None:
            res["delta_mb"] = (kb - base_kb) * 1024 / 1e6
        return res

    # ------------------------------------------------------------------ session
    def run(self, workloads: list[Workload]) -> dict:
        """Run every selected workload and tool; results keyed by workload then row."""
        results: dict = {}
        for w in workloads:
            self.log(f"{w.name}: preparing data")
            data = w.data(self.workdir) if w.data else w.path
            rows: dict = {}
            results[w.name] = rows
            if "lme4" in self.tools:
                self.log(f"{w.name}: lme4")
                rows[_key("lme4", "")] = self.run_lme4(w, data)
                self._progress(w.name, "lme4", rows[_key("lme4", "")])
            if "interlace" in self.tools:
                for engine in self.args.engines:
                    self.log(f"{w.name}: interlace engine={engine}")
                    rows[_key("interlace", engine)] = r = self.run_interlace(w, data, engine)
                    self._progress(w.name, f"interlace[{engine}]", r)
            if "statsmodels" in self.tools and not w.is_glmm:  # no ML GLMM in statsmodels
                if w.statsmodels is None:
                    rows[_key("statsmodels", "")] = {"status": "skipped", "note": w.statsmodels_note}
                else:
                    self.log(f"{w.name}: statsmodels")
                    rows[_key("statsmodels", "")] = r = self.run_statsmodels(w, data)
                    self._progress(w.name, "statsmodels", r)
            for tool, skip, run in (("mixedlm", w.mixedlm_skip, self.run_mixedlm),
                                    ("interlace-lme", w.ilme_skip, self.run_ilme)):
                if tool not in self.tools:
                    continue
                if skip:
                    rows[_key(tool, "")] = {"status": "skipped", "note": skip}
                    continue
                self.log(f"{w.name}: {tool}")
                rows[_key(tool, "")] = r = run(w, data)
                self._progress(w.name, tool, r)
            add_agreement(rows, with_theta=w.is_glmm)
            if w.data is not None and not self.args.data_dir:
                Path(data).unlink(missing_ok=True)
        return results

    def _progress(self, name: str, tool: str, r: dict) -> None:
        """Log one finished row."""
        self.log(f"    {name} {tool}: status={r.get('status')} median={_fmt_s(r.get('median_seconds'))} s "
                 f"evals={r.get('n_evals')} peak={r.get('peak_mb', float('nan')):.0f} MB")


# =============================================================================== agreement
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
        fe = max(_rel(a, b) for a, b in zip(res["fe"].values(), ref["fe"].values()))
        notes.append(f"fixed effects matched by position: {list(res['fe'])} ~ {list(ref['fe'])}")
    else:
        fe = None
        notes.append("fixed effects differ in number")
    import numpy as np

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
        by_name = dict(zip(map(_norm_name, na), ta))
        ta = [by_name[_norm_name(k)] for k in nb]
    else:
        notes.append("θ matched by position")
    return max(_rel(a, b) for a, b in zip(ta, tb))


def add_agreement(rows: dict, with_theta: bool = False) -> None:
    """Compare every successful non-lme4 row with the lme4 row of the same workload (θ too if ``with_theta``)."""
    ref = rows.get(_key("lme4", ""))
    if not ref or ref.get("status") != "ok":
        return
    for key, r in rows.items():
        if key != "lme4" and r.get("status") == "ok" and "fe" in r:
            r["agreement"] = compare(r, ref, with_theta, tool=key.split("[")[0])


# =============================================================================== report
def _sh(cmd: list) -> str:
    """Stripped stdout of a command ('' on failure)."""
    try:
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict:
    """CPU, cores, memory, OS and load average of this machine."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "memory_gb": mem_gb,
            "os": platform.platform(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def git_state() -> str:
    """Commit of the work tree, and whether interlace/ has uncommitted changes."""
    commit = _sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "interlace"])
    return f"{commit}{' + uncommitted changes under interlace/' if dirty else ''}"


def versions(r_versions: dict | None) -> dict:
    """Versions of interlace, its numeric stack, statsmodels and (from the R worker) R and lme4."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("interlace", "numpy", "scipy", "pandas", "statsmodels", "Py-BOBYQA", "scikit-sparse"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    if r_versions:
        out.update({k: r_versions[k] for k in ("R", "lme4", "Matrix", "blas", "lapack") if k in r_versions})
    return out


def _tool_versions(results: dict, args) -> dict:
    """Versions of mixedlm and interlace-lme (and the latter's Python, scikit-sparse), as their workers saw them."""
    out = {}
    for rows in results.values():
        for key, r in rows.items():
            if key == "mixedlm" and r.get("tool_version"):
                out["mixedlm"] = r["tool_version"]
            if key == "interlace-lme" and r.get("tool_version"):
                out["interlace-lme"] = r["tool_version"]
                out["interlace-lme_python"] = r.get("python")
                out["interlace-lme_scikit-sparse"] = r.get("scikit_sparse")
    if "mixedlm" in args.tools and "mixedlm" not in out:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out["mixedlm"] = version("mixedlm")
        except PackageNotFoundError:
            pass
    return out


def _fmt_rel(x) -> str:
    """Relative difference in scientific notation."""
    return "n/a" if x is None else f"{x:.1e}"


def _fmt_load(cores) -> str:
    """Background load in cores (blank if unknown)."""
    return "" if cores is None else f"{cores:.2f}"


def _fmt_llf(agreement: dict) -> str:
    """|Δ llf| of an agreement record."""
    return "n/a" if not agreement else f"{agreement['llf_abs']:.1e}"


def _tool_label(key: str, r: dict) -> str:
    """Row label: ``interlace (auto → blocked)``, ``lme4``, ..."""
    if key.startswith("interlace["):
        engine = key[len("interlace["):-1]
        used = r.get("engine_used")
        return f"interlace ({engine} → {used})" if engine == "auto" and used else f"interlace ({engine})"
    return key


#: Header of the results table (linear mixed models).
HEADER = "| workload | tool | s (median) | opt s | evals | peak MB | Δ MB | FE rel Δ | VC rel Δ | \\|Δ llf\\| | bg load |"
#: Header of the GLMM results table (θ instead of the variance components: the residual variance is fixed).
GLMM_HEADER = ("| workload | tool | s (median) | opt s | evals | peak MB | Δ MB | FE rel Δ | θ rel Δ | \\|Δ llf\\| "
               "| bg load |")
_ALIGN = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
#: Keys of one run's metadata in the raw results.
RUN_KEYS = ("command", "date", "total_seconds", "machine", "versions", "source_digest", "settings", "python_blas")


def report_runs(report: dict) -> list[dict]:
    """The runs whose rows a report holds (oldest first), each with its ``workloads``.

    A report written by one run without ``--only`` merging (or by an older version
    of this script) has its run's metadata at the top level; it is one run.
    """
    if "runs" in report:
        return report["runs"]
    run = {k: report[k] for k in RUN_KEYS if k in report}
    run["workloads"] = list(report["results"])
    return [run]


def merge_report(old: dict, run: dict, results: dict) -> dict:
    """Raw results of a ``--only`` run merged into the previous ones.

    The new run's workloads replace their old rows; every other workload keeps its
    rows and the metadata of the run that measured it; runs left without workloads
    are dropped.  Workloads are ordered as in :data:`WORKLOADS`.
    """
    runs = []
    for r in report_runs(old):
        kept = [n for n in r["workloads"] if n not in results]
        if kept:
            runs.append({**r, "workloads": kept})
    runs.append(run)
    merged = {**old.get("results", {}), **results}
    order = [w.name for w in WORKLOADS if w.name in merged] + [n for n in merged if n not in BY_NAME]
    return {"runs": runs, "results": {n: merged[n] for n in order}}


def _is_glmm(name: str) -> bool:
    """Whether a workload of the report is a GLMM (unknown names count as LMMs)."""
    w = BY_NAME.get(name)
    return bool(w and w.is_glmm)


def _per_run(texts: list, runs: list) -> list:
    """Bullet lines: one if every run gives the same text, else one per run."""
    if len(set(texts)) == 1:
        return [f"- {texts[0]}"]
    return [f"- run {i + 1}: {t}" for i, t in enumerate(texts)]


def _joined(values: list) -> str:
    """One value if all runs agree, else ``3 (run 1) / 5 (run 2)``."""
    if len(set(map(str, values))) == 1:
        return str(values[0])
    return " / ".join(f"{v} (run {i + 1})" for i, v in enumerate(values))


def _ilme_call(w: Workload) -> str:
    """How interlace-lme is called on a workload (or why it is not run), for the report."""
    if w.ilme_skip:
        return w.ilme_skip
    fixed, random = split_lme4_formula(w.formula)
    if w.is_glmm:
        call = f"`glmer({fixed!r}, data, family={w.family!r}, random={random!r}, nAGQ={w.nagq})`"
    else:
        call = f"`fit({fixed!r}, data, random={random!r}, method={w.method!r})`"
    if w.ilme_binary:
        call += f", with `{w.ilme_binary[0]}` coded 1 for {w.ilme_binary[1]!r} and 0 otherwise (numeric response)"
    return call


def _evals_cell(r: dict) -> str:
    """Evaluation count; lme4 GLMMs with two stages as ``total (stage 1 + stage 2)``."""
    n = r.get("n_evals")
    if n is None:
        return ""
    if r.get("stage2_evals") is not None and r.get("stage1_evals") is not None:
        return f"{n} ({r['stage1_evals']} + {r['stage2_evals']})"
    return f"{n}"


def _table_rows(report: dict, names: list, vc_key: str, notes: list) -> list:
    """Result-table lines of the given workloads (``vc_key``: agreement column after FE)."""
    lines = []
    for name in names:
        for key, r in report["results"][name].items():
            label = _tool_label(key, r)
            if r.get("status") != "ok":
                status = r.get("status", "?")
                lines.append(f"| {name} | {label} | {status} | | | | | | | | |")
                detail = r.get("note") or f"{status}. {' '.join(r.get('stderr_tail', []))}".rstrip()
                notes.append(f"- {name}, {label}: {detail}")
                continue
            ag = r.get("agreement", {})
            ref = key == "lme4"
            peak = r.get("peak_mb")
            delta = r.get("delta_mb")
            lines.append(
                f"| {name} | {label} | {_fmt_s(r.get('median_seconds'))} | "
                f"{_fmt_s(r.get('optimizer_seconds')) if 'optimizer_seconds' in r else ''} | "
                f"{_evals_cell(r)} | {'' if peak is None else f'{peak:.0f}'} | "
                f"{'' if delta is None else f'{delta:.0f}'} | "
                f"{'(ref)' if ref else _fmt_rel(ag.get('fe_max_rel'))} | "
                f"{'(ref)' if ref else _fmt_rel(ag.get(vc_key))} | "
                f"{'(ref)' if ref else _fmt_llf(ag)} | {_fmt_load(r.get('background_cores'))} |")
            for msg in r.get("messages", []) or []:
                notes.append(f"- {name}, {label}: warning: {msg}")
            for msg in ag.get("notes", []):
                notes.append(f"- {name}, {label}: {msg}")
            if r.get("memory_status"):
                notes.append(f"- {name}, {label}: memory run {r['memory_status']}")
            if r.get("converged") is False:
                notes.append(f"- {name}, {label}: the tool reports that its optimizer did not converge")
    return lines


def _target_rows(report: dict, names: list) -> list:
    """Target-table lines of the given workloads."""
    lines = []
    for name in names:
        w = BY_NAME.get(name)
        if w is None or w.target is None:
            continue
        for text, measured, ok in w.target(report["results"][name]):
            lines.append(f"| {name} | {text} | {measured} | {'n/a' if ok is None else ('yes' if ok else 'NO')} |")
    return lines


def render_markdown(report: dict) -> str:
    """The ``docs/benchmarks.md`` page for the raw results (one run, or several merged by ``--only``)."""
    runs = report_runs(report)
    multi = len(runs) > 1
    first = runs[0]

    # ---------------------------------------------------------------- when, and which runs
    if multi:
        when = [(f"The rows come from {len(runs)} runs (a run with `--only` replaces the rows of the workloads "
                 "it ran and keeps the others):"), ""]
        when += [f"- run {i + 1}, on {r['date']}, took {r['total_seconds'] / 60:.1f} min: "
                 f"{', '.join(r['workloads'])}" for i, r in enumerate(runs)]
        when.append("")
    else:
        when = [f"Run on {first['date']}; the whole run took {first['total_seconds'] / 60:.1f} min.", ""]
    changed = []
    for i, r in enumerate(runs):
        digest = r.get("source_digest", {})
        if digest and digest.get("start") != digest.get("end"):
            changed += [(f"{f'Run {i + 1}: ' if multi else ''}**interlace's sources changed while this run was "
                         f"going on** (digest {digest.get('start')} → {digest.get('end')}): later rows measured "
                         "newer code."), ""]

    # ---------------------------------------------------------------- machine and software
    def machine(r):
        m = r["machine"]
        load = "; ".join(f"{when} {', '.join(f'{x:.2f}' for x in m[key])}"
                         for when, key in (("start", "loadavg_at_start"), ("end", "loadavg_at_end")) if key in m)
        return (f"CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gb']:.1f} GB; {m['os']}; "
                f"load average (1, 5, 15 min) at {load}")

    def python(r):
        m, v = r["machine"], r["versions"]
        return (f"Python {m['python']}: interlace {v['interlace']} (git {v['interlace_git']}), "
                f"numpy {v['numpy']}, scipy {v['scipy']}, pandas {v['pandas']}, statsmodels {v['statsmodels']}, "
                f"Py-BOBYQA {v['Py-BOBYQA']}, scikit-sparse {v['scikit-sparse']}")

    def other_tools(r):
        v, sk = r["versions"], r.get("skipped_tools", {})
        ran = r.get("settings", {}).get("tools")
        parts = []
        if "mixedlm" in v:
            parts.append(f"mixedlm {v['mixedlm']} (PyPI, in the same Python as interlace)")
        elif "mixedlm" in sk or (ran is not None and "mixedlm" not in ran):
            parts.append(f"mixedlm: {sk.get('mixedlm', 'not selected')}")
        if "interlace-lme" in v:
            parts.append(f"interlace-lme {v['interlace-lme']} (PyPI, in its own venv "
                         f"{r['settings'].get('interlace_lme_venv', '')}: Python {v.get('interlace-lme_python')}, "
                         f"scikit-sparse {v.get('interlace-lme_scikit-sparse')})")
        elif "interlace-lme" in sk or (ran is not None and "interlace-lme" not in ran):
            parts.append(f"interlace-lme: {sk.get('interlace-lme', 'not selected')}")
        return "; ".join(parts) or "mixedlm and interlace-lme: not run (older run)"

    def r_line(r):
        v = r["versions"]
        return (f"{v.get('R', 'R: not run')}, lme4 {v.get('lme4', 'n/a')}, Matrix {v.get('Matrix', 'n/a')}; "
                f"R's BLAS {v.get('blas', 'n/a')}")

    def threads(r):
        return (f"Threads: {', '.join(THREAD_VARS)} = {r['settings']['threads']} in every worker (Python and R). "
                f"Thread pools seen by the Python workers (threadpoolctl): {r.get('python_blas', 'n/a')}.")

    repeats = _joined([r["settings"]["repeats"] for r in runs])
    n_threads = _joined([r["settings"]["threads"] for r in runs])
    cores = _joined([r["machine"]["cores"] for r in runs])
    busy = _joined([max(r["machine"]["cores"] - r["settings"]["threads"], 0) for r in runs])
    seconds = (f"- **s (median)**: one untimed warm-up fit, then the median of {repeats} timed fits in "
               "the same process; data loading excluded. Python tools (interlace, statsmodels, mixedlm, "
               "interlace-lme): `time.perf_counter()` around the whole fitting call (formula, design, "
               "optimization, results). lme4: `system.time(lmer(...))` inside R, default `lmerControl()`. "
               "**opt s**: interlace's `opt_summary.seconds` (optimizer only).")
    evals = ("- **evals**: objective evaluations (interlace `opt_summary.n_evals`, lme4 `m@optinfo$feval`, "
             "statsmodels `fcalls` summed over its optimizers, gradient calls not counted; mixedlm "
             "`function_evals` of its LMM fit, where its default optimizer (`auto`: L-BFGS-B, then COBYQA if "
             "L-BFGS-B stops short) computes the deviance and its analytic gradient together at each L-BFGS-B "
             "evaluation, so they are not comparable one to one; blank where a tool does not report them: "
             "mixedlm's `glmer` (iterations only) and interlace-lme).")
    memory = ("- **peak MB** (10^6 bytes): `ru_maxrss` of the worker, read as `getrusage(RUSAGE_CHILDREN)` by "
              "a launcher whose only child it is. interlace: a fresh process making one fit; lme4, "
              "statsmodels, mixedlm and interlace-lme: the timing process (earlier models dropped and "
              "garbage-collected before each fit). **Δ MB**: minus the peak of the same worker that imports "
              "the same modules and loads the data but fits nothing.")
    def run_timeouts(r):
        st = r.get("settings", {})
        if "timeout" not in st:
            return "3600 s (`--timeout`)"
        extra = ", ".join(f"{t}: {v:.0f} s" for t, v in st.get("tool_timeouts", {}).items())
        return f"{st['timeout']:.0f} s (`--timeout`" + (f"; {extra}, `--tool-timeout`)" if extra else ")")

    timeouts = _joined([run_timeouts(r) for r in runs])
    timeout_line = (f"- **timeout**: a timing worker (its warm-up and timed fits together) still running after "
                    f"{timeouts} is killed; its row reads `timeout` and the [Notes](#notes) list "
                    "the fits it finished before.")
    other_tools_lines = [
        ("- **mixedlm** (PyPI `mixedlm`, Rust core; `python3 -m pip install mixedlm`, no other set-up): "
         "`mixedlm.lmer(formula, data, REML=...)` or `mixedlm.glmer(formula, data, family=Binomial(link), "
         "nAGQ=...)` with the lme4 formula unchanged and default controls, in a worker of its own "
         "(`run_benchmarks.py --worker`). Its Rust thread pool is held to the same thread count "
         "(`RAYON_NUM_THREADS`)."),
        (f"- **interlace-lme** (PyPI `interlace-lme=={ILME_VERSION}`, an earlier project unrelated to this one "
         "whose import name is also `interlace`): installed in its own virtual environment, `python3 -m venv "
         f"/tmp/ilme && /tmp/ilme/bin/pip install interlace-lme=={ILME_VERSION} pandas`, without its `[fast]` "
         "extra (scikit-sparse: 0.5.0 does not build against Debian's SuiteSparse, and with 0.4.16 its fit of "
         "crossed_200x100 stopped at the starting θ = (1, 1), 24 log-likelihood units below lme4), so it "
         "solves with SuperLU; run by `benchmarks/interlace_lme_worker.py` with that environment's Python "
         "(`--interlace-lme-venv DIR` or `$INTERLACE_LME_VENV`; skipped with a note when absent). Its API takes "
         "the fixed part and the random terms apart: `interlace.fit('y ~ x', data, random=['(1 | g)'], "
         "method=...)` or `interlace.glmer(..., family='binomial', nAGQ=...)`, default optimizer (L-BFGS-B); "
         "the Workloads list each call. It reports no evaluation count."),
        ("- A tool runs where it can fit the workload's model; where it cannot (a formula it does not "
         "support, an error, a timeout) its row says so and the Notes give the reason."),
    ]
    agreement = ("- **agreement** with lme4 in the same run: **FE**: max |β − β_lme4| / |β_lme4|; **VC**: max "
                 "relative difference over the residual variance and every entry of each random-effects "
                 "covariance matrix (covariances divided by √(var_i var_j) of lme4); **|Δ llf|**: absolute "
                 "difference of the log-likelihood (REML log-likelihood for REML fits).")
    statsmodels_line = (f"- statsmodels: `MixedLM` with its defaults, each fit limited to "
                        f"{STATSMODELS_TIMEOUT:.0f} s (else reported as timeout).")
    background = ("- **bg load**: CPU used by other processes on the machine while the timing worker ran, in "
                  "cores (busy time from `/proc/stat` minus the worker's own CPU time, over its wall time). "
                  f"With {n_threads} thread(s) per worker on {cores} cores, a value near or above "
                  f"{busy} means the timing was disturbed.")
    simulated = (f"- Simulated data: numpy `default_rng([{SEED}, k])`, written once per run to a temporary CSV "
                 "that every tool reads (never committed).")
    commands = [r["command"] for r in runs]
    lines = [
        "# Benchmarks", "",
        "Generated by `benchmarks/run_benchmarks.py` (raw numbers in `benchmarks/results.json`); re-run with",
        "", "```bash", *commands, "```", "",
        *when,
        *changed,
        "## Machine and software", "",
        *_per_run([machine(r) for r in runs], runs), *_per_run([python(r) for r in runs], runs),
        *_per_run([other_tools(r) for r in runs], runs),
        *_per_run([r_line(r) for r in runs], runs), *_per_run([threads(r) for r in runs], runs), "",
        "## Method", "",
        seconds, evals, memory, agreement, background, timeout_line, statsmodels_line, *other_tools_lines,
        simulated, "",
    ]

    # ---------------------------------------------------------------- tables
    names = list(report["results"])
    lmm = [n for n in names if not _is_glmm(n)]
    glmm = [n for n in names if _is_glmm(n)]
    notes: list = []
    if lmm:
        lines += ["## Results", "", HEADER, _ALIGN, *_table_rows(report, lmm, "vc_max_rel", notes)]
        lines += ["", "## Targets", "", "| workload | target | measured | met |", "|---|---|---|---|",
                  *_target_rows(report, lmm)]
        if glmm:
            lines += ["", "GLMM targets: see [GLMM](#glmm)."]
        lines.append("")
    if glmm:
        lines += ["## GLMM", "", *GLMM_METHOD, "",
                  GLMM_HEADER, _ALIGN, *_table_rows(report, glmm, "theta_max_rel", notes), "",
                  "| workload | target | measured | met |", "|---|---|---|---|", *_target_rows(report, glmm), ""]

    # ---------------------------------------------------------------- profiles (hand-written)
    profiles = Path(__file__).resolve().parent / "profiles.md"
    if profiles.exists():  # where the time goes for targets not met, measured by hand
        lines += [profiles.read_text().rstrip(), ""]

    # ---------------------------------------------------------------- workloads and notes
    lines += ["## Workloads", ""]
    for name in names:
        w = BY_NAME.get(name)
        if w is None:
            lines.append(f"- **{name}** — no longer defined in `run_benchmarks.py`.")
            continue
        lines.append(f"- **{name}** — `{w.formula}`, {w.fit_label}; {w.summary}.")
        if w.notes:
            lines.append(f"  {w.notes}")
        lines.append(f"  statsmodels: {w.statsmodels_note}.")
        if w.mixedlm_skip:
            lines.append(f"  mixedlm: {w.mixedlm_skip}.")
        lines.append(f"  interlace-lme: {_ilme_call(w)}.")
    lines += ["", "## Notes", ""]
    lines += notes or ["- none"]
    return "\n".join(lines) + "\n"


#: How the GLMM rows differ from the LMM rows (bullets of the GLMM section).
GLMM_METHOD = [
    ("Generalized linear mixed models: `interlace.glmer(formula, data, family=..., nAGQ=...)` against lme4's "
     "`glmer(formula, data, family = binomial, nAGQ = ...)` with the default `glmerControl()` (optimizers "
     "`bobyqa` for stage 1 and `Nelder_Mead` for stage 2). Timing, memory and bg load are measured as in "
     "[Method](#method): both clocks include formula processing (`system.time(glmer(...))` in R)."),
    "",
    ("- **evals**: interlace: `opt_summary.n_evals`, both stages (for nAGQ=1 interlace adds its stage-1 "
     "count). lme4: `m@optinfo$feval` counts only the last stage `glmer()` ran, so for nAGQ=1 the cell is "
     "*total (stage 1 + stage 2)*, stage 2 being `feval` and stage 1 counted by repeating `glmer()`'s stage 1 "
     "(nAGQ=0, bobyqa, default control) with lme4's `glFormula`, `mkGlmerDevfun` and `optimizeGlmer`, once, "
     "untimed, before the timed fits in the same R process; for nAGQ=0 the fit is stage 1 only and the cell is "
     "`feval`. Evaluations for the convergence checks and the Hessian are counted by neither tool. mixedlm's "
     "`glmer` and interlace-lme's `glmer` report no evaluation count (blank)."),
    "- **opt s**: interlace's `opt_summary.seconds`; for nAGQ=1 it covers stage 2 only.",
    ("- **θ rel Δ**: max |θ − θ_lme4| / |θ_lme4| over the relative covariance factors, matched by term "
     "(here the random-effect standard deviations, the binomial dispersion being 1). **|Δ llf|**: the "
     "log-likelihood each tool reports at its own estimate (Laplace for nAGQ=1). For nAGQ=0 interlace reports "
     "the Laplace log-likelihood at its (θ, β) while lme4's `logLik` of an nAGQ=0 fit is not that value at its "
     "own estimates; the R worker also computes lme4's Laplace log-likelihood there (untimed) and the "
     "[Notes](#notes) compare interlace (and mixedlm) with it. For nAGQ=1 the Notes give the sign of the llf "
     "difference."),
]


def _python_blas(results: dict) -> str:
    """Summary of the thread pools an interlace worker reported."""
    for rows in results.values():
        for r in rows.values():
            if r.get("threads"):
                return "; ".join(f"{t['internal_api']} {t.get('version') or ''} with {t['num_threads']} "
                                 f"thread(s)".replace("  ", " ") for t in r["threads"])
    return "n/a"


def _r_versions(results: dict) -> dict | None:
    """Versions reported by the first successful lme4 worker."""
    for rows in results.values():
        r = rows.get("lme4")
        if r and r.get("versions"):
            return r["versions"]
    return None


# =============================================================================== CLI
def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BY_NAME), metavar="NAME",
                   help=f"workloads to run (default all): {', '.join(BY_NAME)}")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per tool after one warm-up (default 3)")
    p.add_argument("--engines", nargs="+", default=["auto"], choices=["auto", "blocked", "cholmod"],
                   help="interlace engines to run (default: auto)")
    p.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), metavar="TOOL",
                   help=f"tools to run (default all that are installed): {', '.join(TOOLS)}")
    p.add_argument("--skip-r", action="store_true", help="do not run lme4 (same as leaving it out of --tools)")
    p.add_argument("--skip-statsmodels", action="store_true",
                   help="do not run statsmodels (same as leaving it out of --tools)")
    p.add_argument("--interlace-lme-venv", type=Path, default=DEFAULT_ILME_VENV, metavar="DIR",
                   help="virtual environment holding interlace-lme==0.3.2 (default $INTERLACE_LME_VENV or "
                        f"{DEFAULT_ILME_VENV}); interlace-lme is skipped with a note when it is absent")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads in every worker (default 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds before a timing worker (warm-up and timed fits together) of any tool is "
                        f"killed and its row reported as timeout (default {DEFAULT_TIMEOUT:.0f})")
    p.add_argument("--tool-timeout", nargs="+", default=[], metavar="TOOL=SECONDS",
                   help="per-tool limits overriding --timeout, e.g. --tool-timeout lme4=900 interlace=3600")
    p.add_argument("--data-dir", type=Path, help="keep the simulated CSVs here (default: a temporary directory)")
    p.add_argument("--output-md", type=Path, default=DEFAULT_MD, help="report path (default docs/benchmarks.md)")
    p.add_argument("--output-json", type=Path, default=DEFAULT_JSON,
                   help="raw results path (default benchmarks/results.json)")
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite the report from the raw results in --output-json (no fitting)")
    p.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    args.tool_timeouts = {}
    for item in args.tool_timeout:
        tool, _, secs = item.partition("=")
        try:
            args.tool_timeouts[tool] = float(secs)
        except ValueError:
            p.error(f"--tool-timeout {item}: expected TOOL=SECONDS")
        if tool not in TOOLS:
            p.error(f"--tool-timeout {item}: unknown tool {tool!r} (one of {', '.join(TOOLS)})")
    dropped = {"lme4": args.skip_r, "statsmodels": args.skip_statsmodels}
    args.tools = [t for t in TOOLS if t in args.tools and not dropped.get(t)]
    if "lme4" in args.tools and not (args.render_only or args.worker) and not Path(RSCRIPT).exists():
        p.error(f"{RSCRIPT} not found: install R and lme4, or leave lme4 out of --tools (--skip-r)")
    return args


def ilme_python(venv: Path) -> Path:
    """Python of the interlace-lme virtual environment."""
    return Path(venv) / "bin" / "python"


def missing_tools(args) -> dict:
    """Selected tools that are not installed, with the reason; they are removed from ``args.tools``."""
    import importlib.util

    missing = {}
    if "mixedlm" in args.tools and importlib.util.find_spec("mixedlm") is None:
        missing["mixedlm"] = "not run: mixedlm is not installed (`python3 -m pip install mixedlm`)"
    if "interlace-lme" in args.tools and not ilme_python(args.interlace_lme_venv).exists():
        venv = args.interlace_lme_venv
        missing["interlace-lme"] = (f"not run: no virtual environment at {venv} (`python3 -m venv {venv} && "
                                    f"{venv}/bin/pip install interlace-lme=={ILME_VERSION} pandas`, or pass "
                                    "--interlace-lme-venv)")
    args.tools = [t for t in args.tools if t not in missing]
    return missing


def _command_line(argv: list) -> str:
    """The command that reproduces this run, relative to the repository root."""
    return " ".join(["python3", "benchmarks/run_benchmarks.py", *map(shlex.quote, argv)])


def main(argv=None) -> int:
    """Run the selected benchmarks and write the report and the raw results."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return 0
    if args.render_only:
        report = json.loads(args.output_json.read_text())
        args.output_md.write_text(render_markdown(report))
        print(f"wrote {args.output_md} from {args.output_json}", file=sys.stderr)
        return 0
    workloads = [w for w in WORKLOADS if w.name in args.only] if args.only else WORKLOADS
    skipped_tools = missing_tools(args)
    for tool, why in skipped_tools.items():
        print(f"{tool}: {why}", file=sys.stderr)
    started = time.time()
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    git_at_start, digest_at_start = git_state(), _source_digest()
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        workdir = args.data_dir
    else:
        workdir = Path(tempfile.mkdtemp(prefix="interlace-bench-"))
    try:
        results = Runner(args, workdir).run(workloads)
    finally:
        if not args.data_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_at_end"] = os.getloadavg()
    run = {
        "command": _command_line(argv),
        "date": date,
        "total_seconds": time.time() - started,
        "machine": machine,
        "versions": {**versions(_r_versions(results)), **_tool_versions(results, args),
                     "interlace_git": git_at_start},
        "source_digest": {"start": digest_at_start, "end": _source_digest()},
        "settings": {"repeats": args.repeats, "threads": args.threads, "engines": args.engines,
                     "thread_vars": list(THREAD_VARS), "statsmodels_timeout": STATSMODELS_TIMEOUT,
                     "seed": SEED, "tools": args.tools, "timeout": args.timeout,
                     "tool_timeouts": args.tool_timeouts,
                     "interlace_lme_venv": str(args.interlace_lme_venv)},
        "skipped_tools": skipped_tools,
        "python_blas": _python_blas(results),
        "workloads": list(results),
    }
    if args.only and args.output_json.exists():
        # keep the rows of the workloads not re-run (and the metadata of the runs that measured them)
        report = merge_report(json.loads(args.output_json.read_text()), run, results)
    else:
        report = {"runs": [run], "results": results}
    args.output_json.parent.mkdir(parents=True, exist_ok=True)
    args.output_json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    args.output_md.parent.mkdir(parents=True, exist_ok=True)
    args.output_md.write_text(render_markdown(report))
    print(render_markdown(report))
    print(f"wrote {args.output_md} and {args.output_json} in {run['total_seconds'] / 60:.1f} min",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    # Measure this working tree's interlace (the one whose sources are digested), whatever is installed;
    # not done on import, so that interlace_lme_worker.py, which imports this module, keeps interlace-lme.
    if str(ROOT) not in sys.path:
        sys.path.insert(1, str(ROOT))
    sys.exit(main())
