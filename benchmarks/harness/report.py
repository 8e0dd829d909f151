"""The ``docs/benchmarks.md`` page rendered from the raw results (``--render-only`` re-renders it)."""
from __future__ import annotations

from ..interlace_lme_worker import split_lme4_formula
from .common import ILME_VERSION, PROFILES_MD, SEED, STATSMODELS_TIMEOUT, THREAD_VARS, fmt_seconds
from .results import report_runs
from .workloads import BY_NAME, Workload


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


def _header(vc_title: str) -> str:
    """Header of a results table whose column after FE rel Δ is ``vc_title``."""
    return (f"| workload | tool | s (median) | opt s | evals | peak MB | Δ MB | FE rel Δ | {vc_title} | "
            "\\|Δ llf\\| | bg load |")


#: Header of the results table (linear mixed models).
HEADER = _header("VC rel Δ")
#: Header of the GLMM results table (θ instead of the variance components: the residual variance is fixed).
GLMM_HEADER = _header("θ rel Δ")
_ALIGN = "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"


def _is_glmm(name: str) -> bool:
    """Whether a workload of the report is a GLMM (unknown names count as LMMs)."""
    w = BY_NAME.get(name)
    return bool(w and w.is_glmm)


def _is_cox(name: str) -> bool:
    """Whether a workload of the report is a Cox model with frailties (``interlace.coxme`` against coxme)."""
    w = BY_NAME.get(name)
    return bool(w and w.is_cox)


def _is_clmm(name: str) -> bool:
    """Whether a workload of the report is a CLMM (``interlace.clmm`` against ``ordinal::clmm``)."""
    w = BY_NAME.get(name)
    return bool(w and w.is_clmm)


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
            ref = key in ("lme4", "coxme", "ordinal")
            peak = r.get("peak_mb")
            delta = r.get("delta_mb")
            lines.append(
                f"| {name} | {label} | {fmt_seconds(r.get('median_seconds'))} | "
                f"{fmt_seconds(r.get('optimizer_seconds')) if 'optimizer_seconds' in r else ''} | "
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
        line = (f"{v.get('R', 'R: not run')}, lme4 {v.get('lme4', 'n/a')}, Matrix {v.get('Matrix', 'n/a')}; "
                f"R's BLAS {v.get('blas', 'n/a')}")
        if "coxme" in v:
            line += (f"; coxme {v['coxme']}, bdsmatrix {v.get('bdsmatrix', 'n/a')}, survival "
                     f"{v.get('survival', 'n/a')} ({v.get('coxme_R', '')}, library {r['settings'].get('coxme_lib')})")
        elif "coxme" in r.get("skipped_tools", {}):
            line += f"; coxme: {r['skipped_tools']['coxme']}"
        if "ordinal" in v:
            line += f"; ordinal {v['ordinal']}, ucminf {v.get('ucminf', 'n/a')} ({v.get('ordinal_R', '')})"
        return line

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
        ("- **interlace.api**: this repository's drop-in for statsmodels' MixedLM, `interlace.api.mixedlm(...)"
         ".fit(reml=...)` with the workload's statsmodels call unchanged (only where statsmodels has one); "
         "**evals** and **opt s** are its optimizer's, and its **peak MB** that of one fit in a fresh process, "
         "as interlace's; untimed, its worker also evaluates statsmodels' own `loglike` at its estimate."),
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
    lmm = [n for n in names if not (_is_glmm(n) or _is_cox(n) or _is_clmm(n))]
    glmm = [n for n in names if _is_glmm(n)]
    cox = [n for n in names if _is_cox(n)]
    clmm = [n for n in names if _is_clmm(n)]
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
    if cox:
        lines += ["## Survival (Cox models with frailties)", "", *COX_METHOD, "",
                  HEADER, _ALIGN, *_table_rows(report, cox, "vc_max_rel", notes), "",
                  "| workload | target | measured | met |", "|---|---|---|---|", *_target_rows(report, cox), ""]

    if clmm:
        lines += ["## Ordinal outcomes (cumulative link mixed models)", "", *CLMM_METHOD, "",
                  HEADER, _ALIGN, *_table_rows(report, clmm, "vc_max_rel", notes), "",
                  "| workload | target | measured | met |", "|---|---|---|---|", *_target_rows(report, clmm), ""]

    # ---------------------------------------------------------------- profiles (hand-written)
    if PROFILES_MD.exists():  # where the time goes for targets not met, measured by hand
        lines += [PROFILES_MD.read_text().rstrip(), ""]

    # ---------------------------------------------------------------- workloads and notes
    lines += ["## Workloads", ""]
    for name in names:
        w = BY_NAME.get(name)
        if w is None:
            lines.append(f"- **{name}** — no longer defined in `benchmarks/harness/workloads.py`.")
            continue
        lines.append(f"- **{name}** — `{w.formula}`, {w.fit_label}; {w.summary}.")
        if w.notes:
            lines.append(f"  {w.notes}")
        if w.is_cox:
            lines.append(f"  coxme: `coxme({w.formula}, data, ties = \"{w.method}\")`; interlace: "
                         f"`interlace.coxme({w.formula!r}, data, ties={w.method!r})`; statsmodels, mixedlm, "
                         f"interlace-lme: {w.statsmodels_note}.")
            continue
        if w.is_clmm:
            lines.append(f"  ordinal: `clmm({w.formula}, data, link = \"{w.link}\")` with `{w.response}` an ordered "
                         f"factor; interlace: `interlace.clmm({w.formula!r}, data, link={w.link!r})`; mixedlm: "
                         f"{w.mixedlm_skip}; statsmodels, interlace-lme: {w.statsmodels_note}.")
            continue
        lines.append(f"  statsmodels: {w.statsmodels_note}.")
        if w.mixedlm_skip:
            lines.append(f"  mixedlm: {w.mixedlm_skip}.")
        lines.append(f"  interlace-lme: {_ilme_call(w)}.")
    lines += ["", "## Notes", ""]
    lines += notes or ["- none"]
    return "\n".join(lines) + "\n"


#: How the Cox rows differ from the LMM rows (bullets of the survival section).
COX_METHOD = [
    ("Cox proportional-hazards models with Gaussian frailties: `interlace.coxme(formula, data)` against R's "
     "`coxme(formula, data)` (coxme 2.2-22, built for this machine in `../shared/r-lib`; the tool is skipped "
     "with a note where that library is absent), both with their defaults: Efron ties, coxme's sparse "
     "approximation, coxme's own search for the variances (which interlace reproduces). Timing, memory and bg "
     "load as in [Method](#method): `system.time(coxme(...))` in R, `time.perf_counter()` around "
     "`interlace.coxme(...)` in Python."),
    "",
    ("- **evals**: evaluations of the integrated likelihood: coxme's starting grid (4 per variance), optim's "
     "function count and two per variance and gradient (central differences), counted by a trace on `optim`, "
     "and the final fit; interlace: the same grid, `opt_summary.n_evals` (its copy of R's BFGS, gradient "
     "evaluations included) and its final fit. The counts differ where rounding differences "
     "of 1e-12 in the objective send R's BFGS (finite-difference gradients) along a slightly different path to "
     "the same estimate."),
    ("- **agreement** with coxme: **FE**: max relative difference of the coefficients; **VC**: of the frailty "
     "variances; **|Δ llf|**: of the integrated (Laplace) log-likelihood."),
]

#: How the CLMM rows differ from the LMM rows (bullets of the ordinal section).
CLMM_METHOD = [
    ("Cumulative link mixed models: `interlace.clmm(formula, data)` against R's `ordinal::clmm(formula, data)` "
     "(run by `benchmarks/ordinal_worker.R`), both with their defaults: the Laplace approximation, ordinal's "
     "`nlminb` on finite-difference gradients, interlace's L-BFGS-B on the exact gradient of the Laplace "
     "approximation. Timing, memory and bg load as in [Method](#method): `system.time(clmm(...))` in R, "
     "`time.perf_counter()` around `interlace.clmm(...)` in Python."),
    "",
    ("- **evals**: evaluations of the Laplace objective: ordinal's `m$neval` (those of its finite-difference "
     "gradients included); interlace's `opt_summary.n_evals` (each with its exact gradient; the clm start "
     "and the Hessian for the standard errors are counted by neither tool)."),
    ("- **agreement** with ordinal: **FE**: max relative difference over the thresholds and the coefficients; "
     "**VC**: of the random-effect variances; **|Δ llf|**: of the Laplace log-likelihood (ordinal's default "
     "gradient tolerance stops it up to ~1e-6 below its optimum)."),
]

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
