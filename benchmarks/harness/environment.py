"""Where and on what a run measured: machine, software versions, git state and thread pools."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from .common import ROOT


def source_digest() -> str:
    """Short hash of interlace's Python sources (to detect edits during a run)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "interlace").rglob("*.py")):
        if "tests" not in path.parts:
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


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


def python_versions() -> dict[str, str]:
    """Versions of interlace, its numeric stack and statsmodels in this Python."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("interlace", "numpy", "scipy", "pandas", "statsmodels", "Py-BOBYQA", "scikit-sparse"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def python_blas(results: dict) -> str:
    """Summary of the thread pools an interlace worker reported."""
    for rows in results.values():
        for r in rows.values():
            if r.get("threads"):
                return "; ".join(f"{t['internal_api']} {t.get('version') or ''} with {t['num_threads']} "
                                 f"thread(s)".replace("  ", " ") for t in r["threads"])
    return "n/a"
