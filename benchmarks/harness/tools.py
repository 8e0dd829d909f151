"""The benchmarked tools, one :class:`Tool` each: how to find it, its worker, its spec and its rows.

Every tool is measured by :meth:`Tool.run`: a timing worker (one warm-up fit and
``repeats`` timed fits; the median is reported), then, if it succeeded, a baseline
worker that loads the same data and fits nothing, for the memory the fit adds.  A
tool's peak is that of its timing worker, except interlace's (``peak_mode``): one
fit in a fresh process.  The tools differ only in what the class attributes and
small methods below say.
"""
from __future__ import annotations

import importlib.util
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .common import (
    BASELINE_TIMEOUT,
    CLI,
    COXME_LIB_ENV,
    COXME_WORKER,
    ILME_VENV_ENV,
    ILME_VERSION,
    ILME_WORKER,
    ORDINAL_WORKER,
    R_WORKER,
    RSCRIPT_ENV,
    STATSMODELS_TIMEOUT,
    Settings,
    row_key,
)
from .measure import Measurement, WorkerLauncher, summarize
from .workloads import Workload


class Tool:
    """One benchmarked tool (the defaults are those of a Python tool run by ``run_benchmarks.py --worker``).

    Parameters
    ----------
    settings : Settings
        Repeats, limits and where the external tools are.
    """

    #: Name used by ``--tools`` and as the row key.
    name: str = ""
    #: Worker mode whose peak RSS is the row's peak: ``"time"`` (the timing worker) or ``"peak"`` (one fit).
    peak_mode: str = "time"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def available(self) -> str:
        """Why the tool cannot run here ("" if it can); the runner skips it with this note."""
        return ""

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        """Versions to record for the run, from this tool's rows where its worker reports them."""
        return {}

    def variants(self) -> list[str]:
        """One row per variant (interlace: its engines); ``[""]`` for a single row."""
        return [""]

    def applies(self, w: Workload) -> bool:
        """Whether the tool has a row at all for workload ``w``."""
        return True

    def skip_note(self, w: Workload) -> str:
        """Why the tool is not run on ``w`` (its row then reads ``skipped``); "" to run it."""
        return ""

    def command(self) -> list[str]:
        """Worker command, to which the spec path is appended."""
        return [sys.executable, str(CLI), "--worker"]

    def env(self, base: dict) -> dict | None:
        """Worker environment built from the session's (None: the session's as it is)."""
        return None

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        """Worker spec for workload ``w`` whose data are at ``data`` (the mode is added by :meth:`run`)."""
        return {"workload": w.name, "tool": self.name, "data": str(data), "py_categorical": list(w.py_categorical),
                "formula": w.formula, "method": w.method, "repeats": self.settings.repeats,
                "family": w.family, "link": w.link, "nagq": w.nagq, "bootstrap": w.bootstrap}

    def timing_timeout(self) -> float:
        """Limit of the timing worker (warm-up and timed fits together), seconds."""
        return self.settings.timeout_for(self.name)

    def run(self, w: Workload, data: Path, launcher: WorkerLauncher, variant: str = "") -> Measurement:
        """Time the tool on ``w`` and measure its memory.

        Parameters
        ----------
        w : Workload
            The model.
        data : Path
            CSV of the workload's data.
        launcher : WorkerLauncher
            Runs the workers.
        variant : str
            One of :meth:`variants`.

        Returns
        -------
        dict
            The row: the timing worker's result with ``median_seconds``, ``peak_mb``,
            ``baseline_mb`` and ``delta_mb``; a failed timing worker's status and notes alone.
        """
        spec = self.spec(w, data, variant)
        cmd, env = self.command(), self.env(launcher.env)
        res = launcher.run(cmd, {**spec, "mode": "time"}, self.timing_timeout(), env)
        if res.get("status") != "ok":
            return summarize(res)
        peak = res
        if self.peak_mode != "time":
            peak = launcher.run(cmd, {**spec, "mode": self.peak_mode}, self.timing_timeout(), env)
            res["timing_worker_maxrss_kb"] = res.get("maxrss_kb")
            if peak.get("status") != "ok":
                res["memory_status"] = peak.get("status")
        base = launcher.run(cmd, {**spec, "mode": "baseline"}, BASELINE_TIMEOUT, env)
        return summarize(res, base, peak)

    def row_key(self, variant: str = "") -> str:
        """Key of this tool's row (``interlace[auto]``, ``lme4``, ...)."""
        return row_key(self.name, variant)


class Lme4Tool(Tool):
    """lme4's ``lmer``/``glmer`` in R, run by ``lme4_worker.R`` with the Rscript found on the PATH (or given)."""

    name = "lme4"

    def applies(self, w: Workload) -> bool:
        return not (w.is_cox or w.is_clmm)

    def available(self) -> str:
        if self.settings.rscript:
            return ""
        return (f"not found: no Rscript (looked for --rscript, then ${RSCRIPT_ENV}, then Rscript on the PATH); "
                "install R and lme4")

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        for r in rows:
            if r.get("versions"):
                return {k: r["versions"][k] for k in ("R", "lme4", "Matrix", "blas", "lapack") if k in r["versions"]}
        return {}

    def command(self) -> list[str]:
        return [str(self.settings.rscript), "--vanilla", str(R_WORKER)]

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {"workload": w.name, "tool": self.name, "data": str(data), "factors": list(w.r_factors),
                "formula": w.formula, "reml": w.method == "REML", "repeats": self.settings.repeats,
                "family": w.family, "link": w.link, "nagq": w.nagq, "bootstrap": w.bootstrap}


class InterlaceTool(Tool):
    """This repository's ``interlace.fit`` / ``interlace.glmer``, one row per engine (``--engines``)."""

    name = "interlace"
    peak_mode = "peak"

    def variants(self) -> list[str]:
        return list(self.settings.engines)

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {**super().spec(w, data), "engine": variant, "cox": w.is_cox, "clmm": w.is_clmm}


class StatsmodelsTool(Tool):
    """statsmodels ``MixedLM`` (linear mixed models only), each fit limited to :data:`STATSMODELS_TIMEOUT`."""

    name = "statsmodels"

    def available(self) -> str:
        return "" if importlib.util.find_spec("statsmodels") else "not run: statsmodels is not installed"

    def applies(self, w: Workload) -> bool:
        return not (w.is_glmm or w.is_cox or w.is_clmm)  # no ML GLMM (nor Cox frailty model, CLMM) in statsmodels

    def skip_note(self, w: Workload) -> str:
        return w.statsmodels_note if w.statsmodels is None else ""

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {**super().spec(w, data), "statsmodels": w.statsmodels, "per_fit_timeout": STATSMODELS_TIMEOUT}

    def timing_timeout(self) -> float:
        return STATSMODELS_TIMEOUT * (self.settings.repeats + 1) + 120


class InterlaceApiTool(Tool):
    """This repository's statsmodels drop-in: ``interlace.api.mixedlm`` with the workload's statsmodels call."""

    name = "interlace.api"
    peak_mode = "peak"  # the timing worker also runs statsmodels' loglike (untimed), which would count in its peak

    def applies(self, w: Workload) -> bool:
        return w.statsmodels is not None and not w.is_glmm and not w.bootstrap

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {**super().spec(w, data), "statsmodels": w.statsmodels}


class MixedlmTool(Tool):
    """The PyPI package mixedlm (Rust core), ``mixedlm.lmer`` / ``mixedlm.glmer`` with the lme4 formula."""

    name = "mixedlm"

    def available(self) -> str:
        if importlib.util.find_spec("mixedlm") is None:
            return "not run: mixedlm is not installed (`python3 -m pip install mixedlm`)"
        return ""

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        for r in rows:
            if r.get("tool_version"):
                return {"mixedlm": r["tool_version"]}
        try:
            return {"mixedlm": version("mixedlm")}
        except PackageNotFoundError:
            return {}

    def applies(self, w: Workload) -> bool:
        return not w.is_cox

    def skip_note(self, w: Workload) -> str:
        return w.mixedlm_skip


class InterlaceLmeTool(Tool):
    """PyPI ``interlace-lme`` (import name also ``interlace``) in its own venv, by ``interlace_lme_worker.py``."""

    name = "interlace-lme"

    def python(self) -> Path | None:
        """Python of the interlace-lme virtual environment (None if no environment is given)."""
        venv = self.settings.ilme_venv
        return None if venv is None else Path(venv) / "bin" / "python"

    def available(self) -> str:
        how = f"`python3 -m venv DIR && DIR/bin/pip install interlace-lme=={ILME_VERSION} pandas`"
        python = self.python()
        if python is None:
            return (f"skipped: not found: no virtual environment given (pass --interlace-lme-venv DIR or set "
                    f"${ILME_VENV_ENV}; make one with {how})")
        if not python.exists():
            venv = str(python.parents[1])
            return f"skipped: not found: no {python} (make the environment with {how.replace('DIR', venv)})"
        return ""

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        for r in rows:
            if r.get("tool_version"):
                return {"interlace-lme": r["tool_version"], "interlace-lme_python": r.get("python"),
                        "interlace-lme_scikit-sparse": r.get("scikit_sparse")}
        return {}

    def applies(self, w: Workload) -> bool:
        return not w.is_cox

    def skip_note(self, w: Workload) -> str:
        return w.ilme_skip

    def command(self) -> list[str]:
        return [str(self.python()), str(ILME_WORKER)]

    def env(self, base: dict) -> dict | None:
        return {k: v for k, v in base.items() if k != "PYTHONPATH"}  # its own `interlace`, not this repository's

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {**super().spec(w, data), "ilme_binary": list(w.ilme_binary)}


class CoxmeTool(Tool):
    """R's ``coxme`` (the reference of the Cox workloads), run by ``coxme_worker.R`` with ``R_LIBS`` at the
    build of coxme for this machine (``--coxme-lib``, ``$COXME_R_LIBS``, default ``../shared/r-lib``)."""

    name = "coxme"

    def available(self) -> str:
        if not self.settings.rscript:
            return "skipped: no Rscript (R's coxme runs in R)"
        lib = self.settings.coxme_lib
        if lib is None or not (Path(lib) / "coxme").is_dir():
            where = f"no coxme in {lib}" if lib is not None else "no ../shared/r-lib beside the repository"
            return (f"skipped: R's coxme not found ({where}; coxme is not a Debian package: give the R library "
                    f"holding it with --coxme-lib DIR or ${COXME_LIB_ENV})")
        return ""

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        for r in rows:
            if r.get("versions"):
                return {f"coxme_{k}" if k in ("R", "blas") else k: r["versions"][k]
                        for k in ("R", "coxme", "bdsmatrix", "survival", "blas") if k in r["versions"]}
        return {}

    def applies(self, w: Workload) -> bool:
        return w.is_cox

    def skip_note(self, w: Workload) -> str:
        return self.available()      # an absent coxme gives each Cox workload a "skipped" row with the reason

    def command(self) -> list[str]:
        return [str(self.settings.rscript), "--vanilla", str(COXME_WORKER)]

    def env(self, base: dict) -> dict | None:
        lib = str(self.settings.coxme_lib)
        return {**base, "R_LIBS": lib + (":" + base["R_LIBS"] if base.get("R_LIBS") else "")}

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {"workload": w.name, "tool": self.name, "data": str(data), "factors": list(w.r_factors),
                "formula": w.formula, "ties": w.method, "repeats": self.settings.repeats}


class OrdinalTool(Tool):
    """R's ``ordinal::clmm`` (the reference of the CLMM workloads), run by ``ordinal_worker.R``."""

    name = "ordinal"

    def available(self) -> str:
        return "" if self.settings.rscript else "skipped: no Rscript (R's ordinal runs in R)"

    def versions(self, rows: list[Measurement]) -> dict[str, str]:
        for r in rows:
            if r.get("versions"):
                return {f"ordinal_{k}" if k in ("R", "blas") else k: r["versions"][k]
                        for k in ("R", "ordinal", "ucminf", "blas") if k in r["versions"]}
        return {}

    def applies(self, w: Workload) -> bool:
        return w.is_clmm

    def skip_note(self, w: Workload) -> str:
        return self.available()

    def command(self) -> list[str]:
        return [str(self.settings.rscript), "--vanilla", str(ORDINAL_WORKER)]

    def spec(self, w: Workload, data: Path, variant: str = "") -> dict:
        return {"workload": w.name, "tool": self.name, "data": str(data), "factors": list(w.r_factors),
                "response": w.response, "formula": w.formula, "link": w.link, "repeats": self.settings.repeats}


#: Every tool, in the order of the rows of a workload.
TOOL_CLASSES: tuple[type[Tool], ...] = (Lme4Tool, CoxmeTool, OrdinalTool, InterlaceTool, InterlaceApiTool,
                                        StatsmodelsTool, MixedlmTool, InterlaceLmeTool)
#: Names of the tools (``--tools``).
TOOLS: tuple[str, ...] = tuple(c.name for c in TOOL_CLASSES)


def make_tools(names: list[str], settings: Settings) -> list[Tool]:
    """The selected tools, in :data:`TOOLS` order."""
    return [cls(settings) for cls in TOOL_CLASSES if cls.name in names]
