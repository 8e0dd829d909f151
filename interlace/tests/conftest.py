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


def fit_lmer_case(d: dict, engine: str = "auto"):
    """An lme4 reference case (``load_case("lmer", ...)``) fitted as its script describes, warnings silenced."""
    import warnings

    import interlace

    py = d["python"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit(py["formula"], case_data(d), random=py["random"], method=py["method"],
                             weights=py["weights"], offset=py["offset"], engine=engine)


def users_items_frame(rng, n_users: int = 300, n_items: int = 200) -> pd.DataFrame:
    """A small users × items design: lognormal counts of distinct items per user, two crossed scalar effects."""
    import numpy as np

    counts = np.minimum(3 + rng.poisson(rng.lognormal(2.0, 1.0, n_users)), n_items)
    user = np.repeat(np.arange(n_users), counts)
    item = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    y = 0.6 * rng.normal(size=n_users)[user] + 0.8 * rng.normal(size=n_items)[item] + rng.normal(size=user.size)
    return pd.DataFrame({"y": y, "user": user, "item": item})


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
