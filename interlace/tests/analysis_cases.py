"""The shared cases of the analyses after a fit (issue 17), as ``analysis_cases.R`` defines them.

Each reference JSON in ``reference/analysis/`` carries a ``python`` block (dataset,
formula, random terms, family, factor columns, entry point); :func:`fit_case` fits it
with interlace (cached, so the tidy, R², drop1 and emmeans tests share the fits).
"""
from __future__ import annotations

import json
import warnings
from functools import cache

import pandas as pd

import interlace
from interlace.tests.conftest import REF

ANALYSIS = REF / "analysis"


def load(name: str) -> dict:
    """``reference/analysis/<name>.json``."""
    return json.loads((ANALYSIS / f"{name}.json").read_text())


def case_frame(py: dict) -> pd.DataFrame:
    """The data of a case, with its factor columns as strings."""
    src = py["data"]
    data = pd.read_csv(REF / src) if src.endswith(".csv") else interlace.datasets.load(src)
    for col in py.get("factors") or []:
        data[col] = data[col].astype(str)
    return data


def _fit(py: dict, method: str = "REML"):
    data = case_frame(py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if py["entry"] == "fit":
            return interlace.fit(py["formula"], data, random=py["random"], method=method)
        if py["entry"] == "glmer":
            return interlace.glmer(py["formula"], data, family=py["family"], link=py.get("link"), random=py["random"])
        return interlace.clmm(py["formula"], data, random=py["random"])


@cache
def _fit_cached(key: str, method: str):
    return _fit(json.loads(key), method)


def fit_case(py: dict, method: str = "REML"):
    """The interlace fit of a case's ``python`` block (cached per block and method)."""
    return _fit_cached(json.dumps(py, sort_keys=True), method)


def r_name(term: str) -> str:
    """R's coefficient name in interlace's spelling where they differ only by the parentheses."""
    return term.replace("(Intercept)", "Intercept")
