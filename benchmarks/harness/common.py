"""Paths, constants, settings and row helpers shared by the harness modules."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: ``benchmarks/`` and the repository root.
HERE = Path(__file__).resolve().parents[1]
ROOT = HERE.parent
#: The command-line script (also the entry point of the Python workers: ``--worker SPEC``).
CLI = HERE / "run_benchmarks.py"
R_WORKER = HERE / "lme4_worker.R"
COXME_WORKER = HERE / "coxme_worker.R"
ORDINAL_WORKER = HERE / "ordinal_worker.R"
ILME_WORKER = HERE / "interlace_lme_worker.py"
INSTEVAL_CSV = HERE / "data" / "insteval.csv.gz"
VERBAGG_CSV = ROOT / "interlace" / "datasets" / "data" / "verbagg.csv"
#: Hand-written section of the report (where the time goes), inserted as it is.
PROFILES_MD = HERE / "profiles.md"
DEFAULT_MD = ROOT / "docs" / "benchmarks.md"
DEFAULT_JSON = HERE / "results.json"

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
#: Version of interlace-lme the comparison is made with (installed in its own venv).
ILME_VERSION = "0.3.2"
#: Environment variables naming the Rscript executable and the interlace-lme virtual environment.
RSCRIPT_ENV, ILME_VENV_ENV = "RSCRIPT", "INTERLACE_LME_VENV"
#: Environment variable naming the R library holding coxme (not a Debian package), and its default.
COXME_LIB_ENV = "COXME_R_LIBS"
DEFAULT_COXME_LIB = ROOT.parent / "shared" / "r-lib"


def find_rscript(given: str | None = None) -> str | None:
    """The Rscript to run lme4 with: ``given``, else ``$RSCRIPT``, else ``Rscript`` on the PATH.

    Parameters
    ----------
    given : str, optional
        Path or command name (``--rscript``).

    Returns
    -------
    str or None
        Full path of the executable, None if none is found.
    """
    name = given or os.environ.get(RSCRIPT_ENV) or "Rscript"
    return shutil.which(name)


def find_coxme_lib(given: Path | None = None) -> Path | None:
    """The R library holding coxme: ``given`` (``--coxme-lib``), else ``$COXME_R_LIBS``, else
    ``../shared/r-lib`` beside the repository (None if none of them exists)."""
    for cand in (given, os.environ.get(COXME_LIB_ENV), DEFAULT_COXME_LIB):
        if cand and Path(cand).is_dir():
            return Path(cand).resolve()
    return None


def find_ilme_venv(given: Path | None = None) -> Path | None:
    """The interlace-lme virtual environment: ``given`` (``--interlace-lme-venv``), else ``$INTERLACE_LME_VENV``."""
    if given:
        return Path(given)
    env = os.environ.get(ILME_VENV_ENV)
    return Path(env) if env else None


@dataclass
class Settings:
    """How a run measures: repeats, threads, limits and where the external tools are.

    Attributes
    ----------
    repeats : int
        Timed fits after one warm-up.
    threads : int
        Value of every variable of :data:`THREAD_VARS` in the workers.
    engines : tuple of str
        interlace engines, one row each.
    timeout : float
        Limit of a timing worker, seconds.
    tool_timeouts : dict
        Per-tool limits overriding ``timeout``.
    rscript : str or None
        Rscript executable (None: not found).
    ilme_venv : Path or None
        Virtual environment holding interlace-lme (None: not given).
    coxme_lib : Path or None
        R library holding coxme (None: not found).
    """

    repeats: int = 3
    threads: int = 1
    engines: tuple = ("auto",)
    timeout: float = DEFAULT_TIMEOUT
    tool_timeouts: dict = field(default_factory=dict)
    rscript: str | None = None
    ilme_venv: Path | None = None
    coxme_lib: Path | None = None

    def timeout_for(self, tool: str) -> float:
        """Limit of a timing worker of ``tool``: its ``--tool-timeout``, else ``--timeout``."""
        return self.tool_timeouts.get(tool, self.timeout)


def row_key(tool: str, variant: str = "") -> str:
    """Row key inside a workload: ``interlace[auto]`` (tool and engine), ``lme4``, ``statsmodels``."""
    return f"{tool}[{variant}]" if variant else tool


def fmt_seconds(t: float | None) -> str:
    """Seconds with three significant digits (``n/a`` for None)."""
    if t is None:
        return "n/a"
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"
