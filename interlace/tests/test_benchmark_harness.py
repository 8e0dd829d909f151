"""Smoke test of the benchmark harness (``benchmarks/run_benchmarks.py``): one tiny workload, interlace alone.

The command line runs sleepstudy with one timed fit, writing its raw results and
page to a temporary directory (never the committed ``benchmarks/results.json`` or
``docs/benchmarks.md``).  The record must show that interlace ran, with a positive
time and memory, and the estimates it records must be those of a direct
``interlace.fit`` on the same data.  Nothing here depends on the speed of the fit:
the benchmark numbers are not checked, only that the harness measures and reports.
Needs neither R nor the other tools.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import interlace

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "benchmarks" / "run_benchmarks.py"
COMMITTED = [ROOT / "benchmarks" / "results.json", ROOT / "docs" / "benchmarks.md"]

pytestmark = pytest.mark.skipif(not CLI.exists(), reason="benchmarks/ is not in this checkout")


def _digests() -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in COMMITTED if p.exists()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Raw results and page of ``run_benchmarks.py --only sleepstudy --tools interlace --repeats 1``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import run_benchmarks

    out = tmp_path_factory.mktemp("bench")
    before = _digests()
    rc = run_benchmarks.main(["--only", "sleepstudy", "--tools", "interlace", "--repeats", "1",
                              "--data-dir", str(out / "work"),
                              "--output-json", str(out / "results.json"), "--output-md", str(out / "bench.md")])
    assert rc == 0
    assert _digests() == before, "the committed results or page changed"
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((out / "work").glob("*.log")))
    return json.loads((out / "results.json").read_text()), (out / "bench.md").read_text(), logs


def test_interlace_row_is_measured(run):
    report, _, logs = run
    assert list(report["results"]) == ["sleepstudy"]
    rows = report["results"]["sleepstudy"]
    assert list(rows) == ["interlace[auto]"]
    row = rows["interlace[auto]"]
    assert row["status"] == "ok", (row, logs)
    assert len(row["seconds"]) == 1 and row["seconds"][0] > 0
    assert row["median_seconds"] == row["seconds"][0]
    assert row["peak_mb"] > 0 and row["baseline_mb"] > 0
    assert "agreement" not in row  # no lme4 row to compare with
    (meta,) = report["runs"]
    assert meta["workloads"] == ["sleepstudy"] and meta["settings"]["tools"] == ["interlace"]
    assert meta["settings"]["repeats"] == 1


def test_recorded_estimates_match_a_direct_fit(run):
    row = run[0]["results"]["sleepstudy"]["interlace[auto]"]
    res = interlace.fit("Reaction ~ Days + (Days | Subject)", interlace.datasets.load("sleepstudy"), method="REML")
    fe = res.fe_params
    assert sorted(row["fe"]) == sorted(map(str, fe.index))
    np.testing.assert_allclose([row["fe"][str(k)] for k in fe.index], fe.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(row["theta"], np.asarray(res.theta, float), rtol=1e-8)
    np.testing.assert_allclose(row["residual_var"], res.scale, rtol=1e-8)
    np.testing.assert_allclose(row["llf"], res.llf, rtol=1e-8)
    (cov,) = row["cov"]
    direct = res.random_effects_cov[cov["group"]]
    assert cov["names"] == list(direct.index)
    np.testing.assert_allclose(cov["matrix"], direct.to_numpy(), rtol=1e-8)


def test_page_reports_the_row(run):
    _, page, _ = run
    assert page.startswith("# Benchmarks\n")
    assert "python3 benchmarks/run_benchmarks.py --only sleepstudy --tools interlace --repeats 1" in page
    assert any(line.startswith("| sleepstudy | interlace (auto") for line in page.splitlines())
