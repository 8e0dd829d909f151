"""tidy / glance / augment against broom.mixed 0.2.9.4 (``make_tidy_reference.R``).

Fixed-effect rows follow the order of the coefficients (R's names differ in spelling:
``sampleB`` is ``sample[T.B]``), so rows are compared by position; the other columns
by value: estimates, standard errors, statistics, df, p-values and intervals to 1e-4
relative for LMMs, 1e-3 for GLMMs (interval limits, which may be near 0, to 1e-4 of the standard error; p-values
1e-12 absolute too), the augment columns likewise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interlace.errors import InterlaceError
from interlace.tests.analysis_cases import fit_case, load, r_name

CASES = ["sleepstudy", "penicillin", "penicillin_crossed", "factorial", "cbpp", "grouseticks"]
RTOL = 1e-4


def _close(a, b, rtol=RTOL, atol=1e-8):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


GLMM_RTOL = 1e-3  # GLMMs: the README's 1e-3


@pytest.fixture(scope="module", params=CASES)
def case(request):
    ref = load(f"tidy_{request.param}")
    return ref, fit_case(ref["python"])


def _rtol(ref):
    return RTOL if ref["python"]["entry"] == "fit" else GLMM_RTOL


def test_tidy_fixed(case):
    ref, res = case
    r = pd.DataFrame([row for row in ref["tidy"] if row["effect"] == "fixed"])
    t = res.tidy(conf_int=True)
    t = t[t["effect"] == "fixed"].reset_index(drop=True)
    assert len(t) == len(r)
    assert list(t["term"]) == list(res.fe_params.index)
    rtol = _rtol(ref)
    for col in ["estimate", "std.error", "statistic"]:
        _close(t[col], r[col], rtol)
    for col in ["conf.low", "conf.high"]:  # limits near 0: relative to the standard error
        _close(t[col], r[col], rtol, atol=rtol * r["std.error"].max())
    _close(t["p.value"], r["p.value"], rtol, atol=1e-12)
    if "df" in r:
        _close(t["df"], r["df"])
    else:
        assert "df" not in t


def test_tidy_ran_pars(case):
    ref, res = case
    r = pd.DataFrame([row for row in ref["tidy"] if row["effect"] == "ran_pars"])
    t = res.tidy(effects="ran_pars")
    assert list(t["group"]) == list(r["group"])
    assert list(t["term"]) == [r_name(x) for x in r["term"]]
    _close(t["estimate"], r["estimate"], _rtol(ref))


def test_tidy_ran_vals(case):
    ref, res = case
    r = pd.DataFrame(ref["ran_vals"])
    t = res.tidy(effects="ran_vals")
    key = ["group", "level", "term"]
    r["term"] = r["term"].map(r_name)
    m = t.merge(r, on=key, suffixes=("", "_r"))
    assert len(m) == len(r) == len(t)
    _close(m["estimate"], m["estimate_r"], _rtol(ref), atol=1e-6)
    _close(m["std.error"], m["std.error_r"], _rtol(ref))


def test_glance(case):
    ref, res = case
    g = res.glance()
    r = ref["glance"]
    assert list(g.columns) == list(r)
    for k, v in r.items():
        _close(g[k].iloc[0], v[0] if isinstance(v, list) else v, _rtol(ref))


def test_augment(case):
    ref, res = case
    a = res.augment()
    frame = res.model.model_frame.data
    assert list(a.columns[:frame.shape[1]]) == list(frame.columns)
    for col, vals in ref["augment"].items():
        _close(a[col], vals, _rtol(ref), atol=1e-7)


def test_tidy_input_errors(case):
    _, res = case
    with pytest.raises(InterlaceError, match="effects"):
        res.tidy(effects="random")
    with pytest.raises(InterlaceError, match="conf_level"):
        res.tidy(conf_int=True, conf_level=95)
