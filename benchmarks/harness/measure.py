"""Runner side of the worker protocol: run a worker under a launcher, read its result and memory.

Every tool is measured the same way.  A worker is a subprocess (Python, the lme4
R script or interlace-lme's venv Python) given a JSON spec; it loads the data,
makes one untimed warm-up fit and ``repeats`` timed fits, appends a progress line
after each fit and writes its result as JSON (``benchmarks/interlace_lme_worker.py``
and ``benchmarks/lme4_worker.R`` describe the two sides).  It runs under a small
launcher whose only child it is, so the launcher's
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the worker's peak resident set size;
the launcher also enforces the timeout.  :func:`summarize` turns a worker's
result into a row: median seconds, peak and baseline memory.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .common import ROOT, THREAD_VARS, fmt_seconds

#: A result row of one tool on one workload (JSON-ready: ``status``, ``seconds``, ``median_seconds``,
#: ``peak_mb``, ``fe``, ``cov``, ``llf``, ... as the worker and :func:`summarize` fill it in).
Measurement = dict

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


def busy_cpu_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (``/proc/stat``), None if unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields]
    except (OSError, ValueError, IndexError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    steal_guest = sum(ticks[7:]) if len(ticks) > 7 else 0  # steal, guest (guest is counted in user)
    return (sum(ticks) - idle - steal_guest) / os.sysconf("SC_CLK_TCK")


def read_progress(path: str | Path) -> list:
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


class WorkerLauncher:
    """Runs workers of one benchmark session, one at a time, and collects their results.

    Parameters
    ----------
    workdir : Path
        Directory for the specs, worker outputs, progress files and logs.
    threads : int
        Value of every thread-count variable (:data:`~.common.THREAD_VARS`) in the workers.
    """

    def __init__(self, workdir: Path, threads: int = 1) -> None:
        self.workdir = Path(workdir)
        self.env = {**os.environ, **{var: str(threads) for var in THREAD_VARS}, "PYTHONHASHSEED": "0"}
        self._n = 0

    def run(self, cmd: list[str], spec: dict, timeout: float, env: dict | None = None) -> Measurement:
        """Run one worker under the launcher.

        Parameters
        ----------
        cmd : list of str
            Worker command; the spec path is appended.
        spec : dict
            Worker spec with ``workload``, ``tool`` and ``mode`` (``out`` and ``progress`` are filled in here).
        timeout : float
            Seconds before the worker is killed.
        env : dict, optional
            Environment of the worker (default: this session's, with the thread variables).

        Returns
        -------
        dict
            The worker's JSON output plus ``maxrss_kb``, ``worker_wall_seconds`` and
            ``background_cores``; for a worker that was killed or failed, the launcher
            status, the tail of its stderr and ``completed_fits`` (from its progress file).
        """
        self._n += 1
        stem = str(self.workdir / f"w{self._n:03d}_{spec['workload']}_{spec['tool']}_{spec['mode']}")
        spec = {**spec, "out": stem + ".out.json", "progress": stem + ".progress"}
        spec_path = Path(stem + ".spec.json")
        spec_path.write_text(json.dumps(spec))
        launcher = [sys.executable, "-c", _LAUNCHER, str(timeout), *cmd, str(spec_path)]
        busy0, t0 = busy_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(launcher, check=False, capture_output=True, text=True, env=env or self.env, cwd=ROOT)
        busy1, wall = busy_cpu_seconds(), time.perf_counter() - t0
        Path(stem + ".log").write_text(proc.stderr)
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            info = {"status": f"launcher failed: {proc.stderr[-500:]}", "maxrss_kb": None}
        out_path = Path(spec["out"])
        if info["status"] == "ok" and out_path.exists():
            result = json.loads(out_path.read_text())
        else:
            result = {"status": info["status"] if info["status"] != "ok" else "no output",
                      "stderr_tail": proc.stderr.strip().splitlines()[-3:]}
            fits = read_progress(spec["progress"])
            if fits:
                result["completed_fits"] = fits
            if info["status"] == "timeout":
                done = ", ".join(f"{label} {fmt_seconds(t)} s" for label, t in fits) or "none"
                result["note"] = (f"timeout: the worker was killed after {timeout:.0f} s (warm-up and "
                                  f"{spec.get('repeats', '?')} timed fits had to finish within it); "
                                  f"fits finished before: {done}")
        result["maxrss_kb"] = info.get("maxrss_kb")
        result["worker_wall_seconds"] = wall
        if busy0 is not None and busy1 is not None and info.get("cpu_seconds") is not None and wall > 0:
            # CPU used by everything else on the machine while the worker ran, in cores.
            result["background_cores"] = max(0.0, (busy1 - busy0 - info["cpu_seconds"]) / wall)
        return result


def summarize(res: Measurement, base: Measurement | None = None, peak: Measurement | None = None) -> Measurement:
    """Add the median time and the memory (MB = 10^6 bytes) to a timing worker's result.

    Parameters
    ----------
    res : dict
        Result of the timing worker (its ``seconds``), completed in place.
    base : dict, optional
        Result of the baseline worker (loads the data, fits nothing): ``baseline_mb``.
    peak : dict, optional
        Result of the worker whose ``maxrss_kb`` is the row's peak: ``peak_mb``, and
        ``delta_mb`` (peak minus baseline) when both are known.

    Returns
    -------
    dict
        ``res``.
    """
    if res.get("seconds"):
        res["median_seconds"] = statistics.median(res["seconds"])
    kb = (peak or {}).get("maxrss_kb")
    base_kb = (base or {}).get("maxrss_kb")
    if kb is not None:
        res["peak_mb"] = kb * 1024 / 1e6
    if base_kb is not None:
        res["baseline_mb"] = base_kb * 1024 / 1e6
    if kb is not None and base_kb is not None:
        res["delta_mb"] = (kb - base_kb) * 1024 / 1e6
    return res
