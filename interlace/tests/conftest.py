"""Shared test helpers: reference fixtures computed with R, and the engines to test."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interlace.linalg import HAVE_CHOLMOD

ROOT = Path(__file__).resolve().parents[2]
REF = Path(__file__).parent / "reference"

ENGINES = ["blocked", pytest.param("cholmod", marks=pytest.mark.skipif(not HAVE_CHOLMOD, reason="no CHOLMOD"))]


def load_case(kind: str, case: str) -> dict:
    """A reference case ``reference/<kind>/<case>.json``."""
    return json.loads((REF / kind / f"{case}.json").read_text())


def case_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (REF / kind).glob("*.json"))


def case_data(d: dict) -> pd.DataFrame:
    """The data a case was fitted on (path relative to the repository root)."""
    return pd.read_csv(ROOT / d["data"])
