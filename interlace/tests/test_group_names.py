"""Per-group results answer to lme4's names and to the names as the formula wrote them.

lme4 names the inner term of ``(1 | batch/cask)`` ``cask:batch`` (and ``c:(b:a)`` at depth
three); the quickstart users were promised reads ``result.random_effects["batch:cask"]``.
Both must give the same object; the printed names are lme4's (checked against lme4 in
test_lmer_reference).
"""
import numpy as np
import pandas as pd
import pytest

import interlace


@pytest.fixture(scope="module")
def pastes_fit():
    return interlace.fit("strength ~ 1", interlace.datasets.load("pastes"), random=["(1|batch/cask)"])


def test_written_order_is_an_alias(pastes_fit):
    r = pastes_fit
    assert list(r.random_effects) == ["batch", "cask:batch"]
    assert "batch:cask" in r.random_effects and "batch:cask" not in list(r.random_effects)
    pd.testing.assert_series_equal(r.random_effects["batch:cask"], r.random_effects["cask:batch"])
    pd.testing.assert_series_equal(r.variance_components["batch:cask"], r.variance_components["cask:batch"])
    assert r.variance_components["batch:cask", "Intercept"] == r.variance_components["cask:batch", "Intercept"]
    for attr in ("random_effects_cov", "random_effects_sd", "random_effects_corr", "random_effects_condsd",
                 "random_effects_condvar", "ngroups"):
        a, b = getattr(r, attr)["batch:cask"], getattr(r, attr)["cask:batch"]
        assert a is b or np.array_equal(np.asarray(a), np.asarray(b)), attr
    with pytest.raises(KeyError):
        r.random_effects["cask"]


def test_depth_three_aliases():
    rng = np.random.default_rng(3)
    rows = [(f"a{i}", f"b{j}", f"c{k}") for i in range(4) for j in range(3) for k in range(3) for _ in range(3)]
    d = pd.DataFrame(rows, columns=["a", "b", "c"])
    d["y"] = rng.normal(size=len(d))
    r = interlace.fit("y ~ 1", d, random=["(1|a/b/c)"])
    assert sorted(r.random_effects) == sorted(["a", "b:a", "c:(b:a)"])
    assert r.ngroups["a:b:c"] == r.ngroups["c:(b:a)"] == 36
    assert r.ngroups["a:b"] == r.ngroups["b:a"] == 12
