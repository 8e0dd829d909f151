"""Estimated marginal means and contrasts against emmeans 1.8.4-1 (``make_emmeans_reference.R``).

Each check runs ``emmeans`` (and a contrast) as the R call did and compares the table
row by row: estimates, SEs and interval limits to 1e-4 relative (limits near 0: 1e-4
of the SE), t/z statistics and p-values to 1e-4 relative, df to 1e-3 (the issue's
tolerances; GLMMs and CLMMs at 1e-3 throughout, the README's tolerance for their fits,
and their small p-values at 1e-3 · z², the relative error a relative error of 1e-3 in
z makes).
Dunnett (``dunnettx``) interval limits are compared at 1e-3 of the SE: emmeans solves
their critical value with ``uniroot(tol = 5e-4)``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from interlace.errors import InterlaceError
from interlace.inference.emmeans import emmeans
from interlace.tests.analysis_cases import fit_case, load

REF = load("emmeans")
CHECKS = REF["checks"]
RENAME = {"emmean": "estimate", "prob": "estimate", "rate": "estimate", "odds.ratio": "estimate",
          "ratio": "estimate", "cumprob": "estimate", "response": "estimate", "lower.CL": "lower",
          "asymp.LCL": "lower", "upper.CL": "upper", "asymp.UCL": "upper", "t.ratio": "stat", "z.ratio": "stat"}


def _fit(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_case(REF["python"][case])


def _run(check):
    call = dict(check["call"])
    res = _fit(check["case"])
    kw = {k: call[k] for k in ("by", "at", "df_method", "type", "mode") if k in call}
    e = emmeans(res, call["specs"], **kw)
    adjust = call.get("adjust")
    if "contrast" in call:
        e = e.contrast(call["contrast"], ref=call.get("ref", 0), adjust=adjust)
        adjust = None
    tab = e.summary(infer=(True, True), level=call.get("level", 0.95), adjust=adjust)
    return tab.rename(columns=RENAME)


def _label(check):
    c = check["call"]
    return f"{check['case']}:{c['specs']}|{c.get('by', '')}:{c.get('df_method', '')}:{c.get('type', '')}" \
           f"{c.get('mode', '')}:{c.get('contrast', '') if isinstance(c.get('contrast'), str) else 'custom'}" \
           f":{c.get('adjust', '')}:{c.get('ref', '')}:{c.get('level', '')}"


@pytest.mark.parametrize("check", CHECKS, ids=[_label(c) for c in CHECKS])
def test_emmeans_against_r(check):
    ours = _run(check)
    r = pd.DataFrame(check["rows"]).replace("Inf", np.inf).astype(float)
    assert len(ours) == len(r)
    lm = REF["python"][check["case"]]["entry"] == "fit"
    rtol = 1e-4 if lm else 1e-3
    se = r["SE"].to_numpy()
    np.testing.assert_allclose(ours["estimate"], r["estimate"], rtol=rtol, atol=rtol * se.max(), err_msg="estimate")
    np.testing.assert_allclose(ours["SE"], r["SE"], rtol=rtol, err_msg="SE")
    np.testing.assert_allclose(ours["df"], r["df"], rtol=1e-3, err_msg="df")
    lim = 1e-3 if (check["call"].get("contrast") == "trt.vs.ctrl" and not check["call"].get("adjust")) else rtol
    for col in ("lower", "upper"):
        np.testing.assert_allclose(ours[col], r[col], rtol=rtol, atol=lim * se.max(), err_msg=col)
    np.testing.assert_allclose(ours["stat"], r["stat"], rtol=rtol, atol=1e-8, err_msg="statistic")
    # a relative error δ in z moves a two-sided p-value by about z² δ relatively
    prtol = rtol * (1.0 if lm else np.maximum(1.0, r["stat"].to_numpy() ** 2))
    assert np.all(np.abs(ours["p.value"] - r["p.value"]) <= prtol * r["p.value"] + 1e-10), "p-value"


def test_labels_and_order():
    res = _fit("factorial")
    e = res.emmeans("A | B")
    assert list(e.table["A"]) == ["a1", "a2", "a3"] * 2 and list(e.table["B"]) == ["b1"] * 3 + ["b2"] * 3
    assert list(e.pairs().table["contrast"][:3]) == ["a1 - a2", "a1 - a3", "a2 - a3"]
    assert list(e.pairs(reverse=True).table["contrast"][:3]) == ["a2 - a1", "a3 - a1", "a3 - a2"]
    cb = _fit("cbpp")
    pr = emmeans(cb, "period", type="response").pairs()
    assert pr.table["contrast"][0] == "period1 / period2"
    assert "odds.ratio" in pr.summary().columns


def test_input_errors():
    res = _fit("factorial")
    with pytest.raises(InterlaceError, match="not a variable"):
        emmeans(res, "C")
    with pytest.raises(InterlaceError, match="not levels"):
        emmeans(res, "A", at={"A": ["a9"]})
    with pytest.raises(InterlaceError, match="mvt"):
        emmeans(res, "A").contrast("consec", adjust="mvt").summary()
    with pytest.raises(InterlaceError, match="unknown contrast"):
        emmeans(res, "A").contrast("helmert")
    with pytest.raises(InterlaceError, match="entries"):
        emmeans(res, "A").contrast({"x": [1, -1]})
    with pytest.raises(InterlaceError, match="GLMMs"):
        emmeans(res, "A", type="response")
