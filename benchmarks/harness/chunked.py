"""What the chunked-data benchmarks (``bench_scale.py``, ``bench_scale_glmm.py``) share.

Simulated crossed data written to parquet chunk by chunk, one fresh process per measured
fit, the machine's description, and the table between two markers of ``docs/scale.md``.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CHUNK", "fmt", "load", "machine", "maxrss_mb", "rel_diff", "run_worker", "write_crossed_parquet",
           "write_section"]

#: rows per parquet row group (and per generated chunk)
CHUNK = 1_000_000


def maxrss_mb() -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def load() -> list[float]:
    """The machine's load averages (1, 5, 15 min)."""
    return list(os.getloadavg())


def machine() -> dict:
    """Cores, Python, memory and platform of this machine."""
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
            "platform": platform.platform()}


def write_crossed_parquet(path: Path, rows: int, seed: int, levels: tuple[int, int],
                          table_of: Callable[..., Any]) -> float:
    """Write ``rows`` simulated rows of two crossed factors to ``path``, one :data:`CHUNK` at a time.

    The random effects are drawn once (``default_rng([seed, 0])``: scales 0.8 and 0.5);
    chunk ``k`` draws from ``default_rng([seed, k + 1])``: the factors' codes (uniform over
    ``levels``), then ``table_of(rng, n, g1, g2, u1[g1] + u2[g2])`` gives its pyarrow table.
    Returns the seconds taken; the data are never in memory at once.
    """
    import numpy as np
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    base = np.random.default_rng([seed, 0])
    u1 = base.normal(scale=0.8, size=levels[0])
    u2 = base.normal(scale=0.5, size=levels[1])
    writer = None
    try:
        for k, start in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - start)
            rng = np.random.default_rng([seed, k + 1])
            g1 = rng.integers(0, levels[0], n).astype(np.int32)
            g2 = rng.integers(0, levels[1], n).astype(np.int32)
            table = table_of(rng, n, g1, g2, u1[g1] + u2[g2])
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - t0


def run_worker(script: str, kind: str, args: list[str], timeout: int) -> dict:
    """Run ``script --worker kind *args`` in a fresh single-threaded-BLAS process; its last
    stdout line is the JSON it measured (plus the wall time and the load before and after)."""
    root = Path(script).resolve().parents[1]
    load0 = load()
    cmd = [sys.executable, script, "--worker", kind, *args]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "error": f"timeout after {timeout} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"kind": kind, "error": (p.stderr or p.stdout)[-2000:], "wall": wall}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_wall"] = wall
    out["load_start"], out["load_end"] = load0, load()
    return out


def rel_diff(a: Any, b: Any) -> float:
    """max |a − b| relative to max |a|."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))


def fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}g}"


def write_section(page: Path, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the markers ``begin`` and ``end`` of ``page`` (appended with them if absent)."""
    text = page.read_text() if page.exists() else ""
    block = f"{begin}\n\n{body}\n\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    page.write_text(text)
