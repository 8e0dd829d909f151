"""Shared test helpers: reference fixtures computed with R, and the engines to test."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from interlace.linalg import HAVE_CHOLMOD

ROOT = Path(__file__).resolve().parents[2]
REF = Path(__file__).parent / "reference"

try:  # Hypothesis profiles for test_hypothesis_inputs.py (the suite runs without hypothesis too)
    from hypothesis import HealthCheck, Phase, settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    settings = None
if settings is not None:
    _SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    #: CI: the same examples every run (derandomized), few enough for a couple of minutes
    #: (no shrinking: a failing example is reported as drawn, at once, not after minutes of refits)
    settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None, print_blob=True,
                              suppress_health_check=_SLOW, database=None,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    #: a longer search with fresh random examples (INTERLACE_HYPOTHESIS_PROFILE=thorough)
    settings.register_profile("thorough", max_examples=2000, deadline=None, print_blob=True,
                              suppress_health_check=_SLOW)
    settings.load_profile(os.environ.get("INTERLACE_HYPOTHESIS_PROFILE", "ci"))

ENGINES = ["blocked", pytest.param("cholmod", marks=pytest.mark.skipif(not HAVE_CHOLMOD, reason="no CHOLMOD"))]


def load_case(kind: str, case: str) -> dict:
    """A reference case ``reference/<kind>/<case>.json``."""
    return json.loads((REF / kind / f"{case}.json").read_text())


def case_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (REF / kind).glob("*.json"))


def case_data(d: dict) -> pd.DataFrame:
    """The data a case was fitted on (path relative to the repository root)."""
    return pd.read_csv(ROOT / d["data"])


@pytest.fixture(scope="session")
def dask_client():
    """A real ``distributed.LocalCluster`` with 2 worker processes (1 thread each), shared by the session."""
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def sleep():
    """lme4's sleepstudy (the tests only read it: interlace never modifies its input)."""
    from interlace import datasets

    return datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def pastes():
    """lme4's Pastes (read only)."""
    from interlace import datasets

    return datasets.load("pastes")
