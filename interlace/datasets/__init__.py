"""Bundled datasets (exported from R's lme4; see ``data/README.md`` for provenance)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["load", "names"]

_DIR = Path(__file__).parent / "data"


def names() -> list[str]:
    """Names of the bundled datasets."""
    return sorted(p.stem for p in _DIR.glob("*.csv"))


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset by name, e.g. ``load("sleepstudy")``.

    Columns are read as pandas infers them: numeric labels (sleepstudy's ``Subject``,
    cake's ``replicate``) load as integers; as grouping factors they work either way.
    """
    path = _DIR / f"{name.lower()}.csv"
    if not path.exists():
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(names())}")
    return pd.read_csv(path)
