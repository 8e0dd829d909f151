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
    python3 benchmarks/run_benchmarks.py --render-only        # re-render the page from the raw results

It writes ``docs/benchmarks.md`` (tables, machine, versions, threads and the
command that reproduces it) and ``benchmarks/results.json`` (raw results).
A run with ``--only`` replaces the rows of the workloads it ran in an existing
``results.json`` and keeps the others, with the metadata of the run that
measured them; a run without ``--only`` replaces the whole file.  The
workloads are linear mixed models (``interlace.fit`` against ``lmer``) and
GLMMs (``interlace.glmer`` against ``glmer``, in a section of their own), Cox
models with frailties (against coxme) and cumulative link mixed models
(``interlace.clmm`` against ordinal's ``clmm``), each in a section of their own.

Tools (``--tools``, default all): ``lme4`` (R's ``lme4_worker.R``, run with
``--rscript``, ``$RSCRIPT`` or the ``Rscript`` on the PATH), ``coxme`` (R's coxme,
the reference of the Cox workloads, by ``coxme_worker.R`` with ``R_LIBS`` at
``--coxme-lib``, ``$COXME_R_LIBS`` or ``../shared/r-lib``; skipped with a note when
absent), ``ordinal`` (R's ``ordinal::clmm``, the reference of the CLMM workloads, by
``ordinal_worker.R``), ``interlace``,
``statsmodels`` (``MixedLM``), ``mixedlm`` (the PyPI package with a Rust core,
``python3 -m pip install mixedlm``; ``mixedlm.lmer`` / ``mixedlm.glmer`` with
the lme4 formula) and ``interlace-lme`` (the earlier, unrelated PyPI package
``interlace-lme==0.3.2``, whose import name is also ``interlace``: it runs from
its own virtual environment, ``--interlace-lme-venv DIR`` or
``$INTERLACE_LME_VENV``, made with ``python3 -m venv DIR && DIR/bin/pip install
interlace-lme==0.3.2 pandas``, by ``interlace_lme_worker.py``).  A tool that is
not found is skipped with a note (lme4, the reference, stops the run instead);
a tool that cannot fit a workload (formula it does not support, error, timeout)
gets a row with the reason.

How things are measured (``benchmarks/harness/``: ``workloads``, ``tools``,
``measure``, ``runner``, ``agreement``, ``report``)
-----------------------
* Every fit runs in a subprocess started by a small launcher whose only child
  it is; the launcher reads ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
  after the child exits, which is the child's peak resident set size.
* **Wall seconds**: each worker loads the data (not timed), makes one untimed
  warm-up fit, then ``--repeats`` timed fits; the median is reported.  For
  the Python tools the clock (``time.perf_counter``) runs around the whole
  fitting call, so formula processing and building the design are included.
  For lme4 it is ``system.time`` around ``lmer()`` (``glmer()``) inside R.
* **Peak memory**: for interlace, one fit in a fresh subprocess; for the other
  tools the peak of the timing worker (the previous model is dropped and the
  garbage collector runs before each fit); against a baseline worker that
  imports the same modules and loads the data but fits nothing.
* **Agreement** with lme4 in the same run: fixed effects, variance components
  (θ for GLMMs) and ``|llf - llf_lme4|`` (see the report's Method section).
* **Threads**: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``RAYON_NUM_THREADS``
  (mixedlm's Rust core) and friends are set to ``--threads`` (default 1) in every
  worker, Python and R alike.
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
import shlex
import sys
from pathlib import Path

# Measure this working tree's interlace (the one whose sources are digested), whatever is installed.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from benchmarks.harness.common import (  # noqa: E402
    COXME_LIB_ENV,
    DEFAULT_JSON,
    DEFAULT_MD,
    DEFAULT_TIMEOUT,
    ILME_VENV_ENV,
    RSCRIPT_ENV,
    Settings,
    find_coxme_lib,
    find_ilme_venv,
    find_rscript,
)
from benchmarks.harness.report import render_markdown  # noqa: E402
from benchmarks.harness.results import load_report, merge_report, write_report  # noqa: E402
from benchmarks.harness.tools import TOOLS, make_tools  # noqa: E402
from benchmarks.harness.workloads import BY_NAME, WORKLOADS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring); ``tool_timeouts`` holds the parsed ``--tool-timeout``."""
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
    p.add_argument("--rscript", metavar="PATH",
                   help=f"Rscript that runs lme4 (default ${RSCRIPT_ENV}, else Rscript on the PATH)")
    p.add_argument("--interlace-lme-venv", type=Path, metavar="DIR",
                   help=f"virtual environment holding interlace-lme==0.3.2 (default ${ILME_VENV_ENV}); "
                        "interlace-lme is skipped with a note when it is not found")
    p.add_argument("--coxme-lib", type=Path, metavar="DIR",
                   help=f"R library holding coxme for the Cox workloads (default ${COXME_LIB_ENV}, else "
                        "../shared/r-lib beside the repository); R's coxme is skipped with a note when absent")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads in every worker (default 1)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds before a timing worker (warm-up and timed fits together) of any tool is "
                        f"killed and its row reported as timeout (default {DEFAULT_TIMEOUT:.0f})")
    p.add_argument("--tool-timeout", nargs="+", default=[], metavar="TOOL=SECONDS",
                   help="per-tool limits overriding --timeout, e.g. --tool-timeout lme4=900 interlace=3600")
    p.add_argument("--data-dir", type=Path,
                   help="keep the simulated CSVs, specs and worker logs here (default: a temporary directory)")
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
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and write the report and the raw results (or only render, or be a worker)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        from benchmarks.harness.pyworkers import worker_main

        worker_main(args.worker)
        return 0
    if args.render_only:
        args.output_md.write_text(render_markdown(load_report(args.output_json)))
        print(f"wrote {args.output_md} from {args.output_json}", file=sys.stderr)
        return 0

    from benchmarks.harness.runner import run_session

    settings = Settings(repeats=args.repeats, threads=args.threads, engines=tuple(args.engines),
                        timeout=args.timeout, tool_timeouts=args.tool_timeouts,
                        rscript=find_rscript(args.rscript), ilme_venv=find_ilme_venv(args.interlace_lme_venv),
                        coxme_lib=find_coxme_lib(args.coxme_lib))
    tools = make_tools(args.tools, settings)
    skipped = {t.name: why for t in tools if (why := t.available())}
    workloads = [w for w in WORKLOADS if w.name in args.only] if args.only else WORKLOADS
    if "lme4" in skipped and any(not (w.is_cox or w.is_clmm) for w in workloads):
        # the reference of the agreement columns: no silent run without it
        sys.exit(f"lme4, the reference, cannot run: {skipped['lme4']}, or leave it out (--skip-r)")
    for tool, why in skipped.items():
        print(f"{tool}: {why}", file=sys.stderr)
    tools = [t for t in tools if t.name not in skipped or t.name in ("coxme", "ordinal")]  # a "skipped" row
    command = " ".join(["python3", "benchmarks/run_benchmarks.py", *map(shlex.quote, argv)])
    run, results = run_session(workloads, tools, settings, command, skipped, args.data_dir)
    if args.only and args.output_json.exists():
        # keep the rows of the workloads not re-run (and the metadata of the runs that measured them)
        report = merge_report(load_report(args.output_json), run, results)
    else:
        report = {"runs": [run], "results": results}
    write_report(args.output_json, report)
    markdown = render_markdown(report)
    args.output_md.parent.mkdir(parents=True, exist_ok=True)
    args.output_md.write_text(markdown)
    print(markdown)
    print(f"wrote {args.output_md} and {args.output_json} in {run['total_seconds'] / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
