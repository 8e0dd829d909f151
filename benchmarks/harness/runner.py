"""Runs workloads × tools: data once per workload, each tool's rows, then the agreement with lme4."""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .agreement import add_agreement
from .common import SEED, STATSMODELS_TIMEOUT, THREAD_VARS, Settings, fmt_seconds
from .environment import git_state, machine_info, python_blas, python_versions, source_digest
from .measure import Measurement, WorkerLauncher
from .tools import Tool
from .workloads import Workload


def log(msg: str) -> None:
    """Progress line on stderr with the time of day."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Runner:
    """Runs the selected tools on each workload, one worker at a time.

    Parameters
    ----------
    tools : list of Tool
        Tools to run (available ones), in the order of their rows.
    launcher : WorkerLauncher
        Runs the workers; simulated data are written to its ``workdir``.
    keep_data : bool
        Keep each simulated CSV (default: deleted once its workload is done).
    """

    def __init__(self, tools: list[Tool], launcher: WorkerLauncher, keep_data: bool = False) -> None:
        self.tools = tools
        self.launcher = launcher
        self.keep_data = keep_data

    def run_workload(self, w: Workload) -> dict[str, Measurement]:
        """Rows of one workload, keyed ``lme4``, ``interlace[auto]``, ..., with their agreement with lme4."""
        log(f"{w.name}: preparing data")
        data = w.prepare(self.launcher.workdir)
        rows: dict[str, Measurement] = {}
        try:
            for tool in self.tools:
                if not tool.applies(w):
                    continue
                note = tool.skip_note(w)
                if note:
                    rows[tool.row_key()] = {"status": "skipped", "note": note}
                    continue
                for variant in tool.variants():
                    key = tool.row_key(variant)
                    log(f"{w.name}: {key}")
                    rows[key] = r = tool.run(w, data, self.launcher, variant)
                    log(f"    {w.name} {key}: status={r.get('status')} "
                        f"median={fmt_seconds(r.get('median_seconds'))} s evals={r.get('n_evals')} "
                        f"peak={r.get('peak_mb', float('nan')):.0f} MB")
        finally:
            if w.data is not None and not self.keep_data:
                Path(data).unlink(missing_ok=True)
        add_agreement(rows, with_theta=w.is_glmm, reference=w.reference)
        return rows

    def run(self, workloads: list[Workload]) -> dict[str, dict[str, Measurement]]:
        """Rows of every workload, keyed by workload name."""
        return {w.name: self.run_workload(w) for w in workloads}


def run_session(workloads: list[Workload], tools: list[Tool], settings: Settings, command: str,
                skipped_tools: dict[str, str] | None = None, data_dir: Path | None = None) -> tuple[dict, dict]:
    """Run the workloads with the tools and describe the run.

    Parameters
    ----------
    workloads : list of Workload
    tools : list of Tool
        Available tools to run.
    settings : Settings
        Repeats, threads, limits and tool paths.
    command : str
        The command line that reproduces the run (recorded in the report).
    skipped_tools : dict, optional
        Selected tools that are not available, with the reason.
    data_dir : Path, optional
        Keep the simulated data, specs and worker logs here (default: a temporary directory, removed).

    Returns
    -------
    run : dict
        The run's metadata (``command``, ``date``, ``machine``, ``versions``, ``settings``, ...).
    results : dict
        Rows by workload, then row key.
    """
    started = time.time()
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    git_at_start, digest_at_start = git_state(), source_digest()
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        workdir = Path(data_dir)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="interlace-bench-"))
    try:
        runner = Runner(tools, WorkerLauncher(workdir, settings.threads), keep_data=data_dir is not None)
        results = runner.run(workloads)
    finally:
        if not data_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_at_end"] = os.getloadavg()
    tool_versions: dict = {}
    for tool in tools:
        tool_versions.update(tool.versions([rows[k] for rows in results.values()
                                            for k in rows if k.split("[")[0] == tool.name]))
    run = {
        "command": command,
        "date": date,
        "total_seconds": time.time() - started,
        "machine": machine,
        "versions": {**python_versions(), **tool_versions, "interlace_git": git_at_start},
        "source_digest": {"start": digest_at_start, "end": source_digest()},
        "settings": {"repeats": settings.repeats, "threads": settings.threads, "engines": list(settings.engines),
                     "thread_vars": list(THREAD_VARS), "statsmodels_timeout": STATSMODELS_TIMEOUT,
                     "seed": SEED, "tools": [t.name for t in tools], "timeout": settings.timeout,
                     "tool_timeouts": settings.tool_timeouts,
                     "interlace_lme_venv": None if settings.ilme_venv is None else str(settings.ilme_venv),
                     "coxme_lib": None if settings.coxme_lib is None else str(settings.coxme_lib),
                     "rscript": settings.rscript},
        "skipped_tools": dict(skipped_tools or {}),
        "python_blas": python_blas(results),
        "workloads": list(results),
    }
    return run, results
