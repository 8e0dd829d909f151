"""The raw results (``benchmarks/results.json``): runs with their metadata, and rows by workload then tool.

Layout: ``{"runs": [run, ...], "results": {workload: {row key: row}}}``, each run a dict
with ``command``, ``date``, ``total_seconds``, ``machine``, ``versions``,
``source_digest``, ``settings``, ``skipped_tools``, ``python_blas`` and the
``workloads`` whose rows it measured.
"""
from __future__ import annotations

import json
from pathlib import Path

from .workloads import BY_NAME, WORKLOADS

#: Keys of one run's metadata in the raw results.
RUN_KEYS = ("command", "date", "total_seconds", "machine", "versions", "source_digest", "settings", "python_blas")


def report_runs(report: dict) -> list[dict]:
    """The runs whose rows a report holds (oldest first), each with its ``workloads``.

    A report written by one run without ``--only`` merging (or by an older version
    of the script) has its run's metadata at the top level; it is one run.
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
    are dropped.  Workloads are ordered as in :data:`~.workloads.WORKLOADS`.
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


def load_report(path: Path) -> dict:
    """Read the raw results written by :func:`write_report`."""
    return json.loads(Path(path).read_text())


def write_report(path: Path, report: dict) -> None:
    """Write the raw results (one-space indented JSON, a final newline), creating the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
