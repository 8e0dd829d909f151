"""CLMM input errors name the fault."""
import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import DataError, InterlaceError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    n = 200
    return pd.DataFrame({"y": rng.integers(1, 5, n), "x": rng.normal(size=n), "g": rng.integers(0, 10, n),
                         "s": rng.choice(["low", "mid", "high"], n), "b": rng.integers(0, 2, n)})


def test_two_categories_point_to_glmer(data):
    with pytest.raises(DataError, match="2 categories.*interlace.glmer"):
        interlace.clmm("b ~ x + (1|g)", data)


def test_strings_need_an_order(data):
    with pytest.raises(DataError, match="levels="):
        interlace.clmm("s ~ x + (1|g)", data)
    r = interlace.clmm("s ~ x + (1|g)", data, levels=["low", "mid", "high"])
    assert list(r.thresholds.index) == ["low|mid", "mid|high"]


def test_empty_category(data):
    with pytest.raises(DataError, match=r"empty categories \[5\]"):
        interlace.clmm("y ~ x + (1|g)", data, levels=[1, 2, 3, 4, 5])


def test_value_outside_levels(data):
    with pytest.raises(DataError, match="not among levels"):
        interlace.clmm("y ~ x + (1|g)", data, levels=[1, 2, 3])


def test_unordered_categorical(data):
    with pytest.raises(DataError, match="unordered categorical"):
        interlace.clmm("y ~ x + (1|g)", data.assign(y=pd.Categorical(data["y"])))


def test_unknown_link_and_threshold(data):
    with pytest.raises(InterlaceError, match="unknown link 'logistic'"):
        interlace.clmm("y ~ x + (1|g)", data, link="logistic")
    with pytest.raises(InterlaceError, match="unknown threshold structure 'free'"):
        interlace.clmm("y ~ x + (1|g)", data, threshold="free")


def test_random_slopes_refused(data):
    with pytest.raises(InterlaceError, match="random slopes are not available"):
        interlace.clmm("y ~ x + (1 + x|g)", data)
