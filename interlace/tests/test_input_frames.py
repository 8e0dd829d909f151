"""Data in any frame narwhals understands, nullable pandas dtypes, and per-row Series aligned on
the data's index, for every fitting function (issue 15's input items, issue 19's Series item).

A polars DataFrame or LazyFrame, or a pyarrow Table, must give exactly the fit of the same
data as pandas (the frame is converted once, at the edge: :mod:`interlace.design.dataframe`).
A Series of weights or offsets is matched to ``data`` by index label; a Series whose index
lacks some of data's labels is refused, naming how many.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interlace
import interlace.api as smf
from interlace import clmm, coxme, fit, glmer, glmer_nb
from interlace.design.dataframe import align_vector, model_input, to_pandas
from interlace.errors import DataError
from interlace.tests.conftest import REF

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    return pd.read_csv(REF / "coxme" / "lung_inst" / "data.csv")


def quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


CONVERTERS = {
    "polars": lambda d: pl.from_pandas(d),
    "polars-lazy": lambda d: pl.from_pandas(d).lazy(),
    "pyarrow": lambda d: pa.Table.from_pandas(d, preserve_index=False),
}


def _params(res) -> np.ndarray:
    return np.asarray(res.params, float)


# ----------------------------------------------------------------------------- same fit as pandas
@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_fit_same_as_pandas(sleep, kind):
    ref = fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    res = fit("Reaction ~ Days", CONVERTERS[kind](sleep), random="(Days | Subject)")
    np.testing.assert_array_equal(_params(res), _params(ref))
    assert res.llf == ref.llf
    assert list(res.fe_params.index) == list(ref.fe_params.index)


@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_glmer_same_as_pandas(kind):
    cbpp = interlace.datasets.load("cbpp").assign(period=lambda d: d.period.astype(str))
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    ref = glmer(f, cbpp, family="binomial")
    res = glmer(f, CONVERTERS[kind](cbpp), family="binomial")
    np.testing.assert_array_equal(_params(res), _params(ref))
    assert list(res.fe_params.index) == list(ref.fe_params.index)


def test_glmer_nb_same_as_pandas():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), 8)
    x = rng.normal(size=g.size)
    y = rng.negative_binomial(3, 3 / (3 + np.exp(1 + 0.4 * x + rng.normal(0, 0.5, 12)[g])))
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    f = "y ~ x + (1 | g)"
    ref = quiet(glmer_nb, f, d)
    res = quiet(glmer_nb, f, pl.from_pandas(d))
    np.testing.assert_array_equal(_params(res), _params(ref))
    assert res.nb_theta == ref.nb_theta


@pytest.mark.parametrize("kind", ["polars", "pyarrow"])
def test_clmm_same_as_pandas(kind):
    wine = interlace.datasets.load("wine")
    ref = clmm("rating ~ temp + contact + (1 | judge)", wine)
    res = clmm("rating ~ temp + contact + (1 | judge)", CONVERTERS[kind](wine))
    np.testing.assert_array_equal(_params(res), _params(ref))


def test_clmm_polars_enum_response_is_ordered():
    """A polars Enum is an ordered categorical: its order is the response's order."""
    wine = interlace.datasets.load("wine")
    order = ["1", "2", "3", "4", "5"]
    ref = clmm("r ~ temp + (1 | judge)", wine.assign(r=wine.rating.astype(str)), levels=order)
    df = pl.from_pandas(wine.assign(r=wine.rating.astype(str))).with_columns(pl.col("r").cast(pl.Enum(order)))
    res = clmm("r ~ temp + (1 | judge)", df)
    np.testing.assert_allclose(_params(res), _params(ref), rtol=1e-12)


@pytest.mark.parametrize("kind", ["polars", "pyarrow"])
def test_coxme_same_as_pandas(lung, kind):
    ref = quiet(coxme, "Surv(time, status) ~ age + sex + (1 | inst)", lung)
    res = quiet(coxme, "Surv(time, status) ~ age + sex + (1 | inst)", CONVERTERS[kind](lung))
    np.testing.assert_array_equal(np.asarray(res.fe_params), np.asarray(ref.fe_params))
    assert res.nobs == ref.nobs  # the missing values (polars nulls) were dropped the same way


@pytest.mark.parametrize("kind", ["polars", "pyarrow"])
def test_mixedlm_same_as_pandas(sleep, kind):
    ref = smf.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit()
    res = smf.mixedlm("Reaction ~ Days", CONVERTERS[kind](sleep), groups="Subject", re_formula="~Days").fit()
    np.testing.assert_array_equal(np.asarray(res.params), np.asarray(ref.params))


def test_dask_frame_refused_outside_fit(sleep):
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(sleep.assign(y=(sleep.Reaction > 300).astype(float)), npartitions=2)
    with pytest.raises(DataError, match=r"Dask DataFrame: interlace.fit \(linear mixed models\) and interlace.glmer"):
        clmm("y ~ Days + (1 | Subject)", ddf)


def test_not_a_frame(sleep):
    with pytest.raises(DataError, match="got ndarray"):
        fit("Reaction ~ Days", sleep.to_numpy(), groups="Subject")


def test_input_is_not_modified(sleep):
    df = pl.from_pandas(sleep)
    before = df.clone()
    fit("Reaction ~ Days", df, groups="Subject")
    assert df.equals(before)


# ----------------------------------------------------------------------------- nullable dtypes
def test_nullable_dtypes_fit_as_numpy(sleep):
    """Int64/Float64/boolean columns with pd.NA: the same fit as float64/bool with the rows dropped."""
    nul = sleep.assign(Days=pd.array(sleep.Days, dtype="Int64"), Reaction=pd.array(sleep.Reaction, dtype="Float64"),
                       late=pd.array(sleep.Days > 4, dtype="boolean"))
    nul.loc[[3, 50], "Reaction"] = pd.NA
    nul.loc[7, "late"] = pd.NA
    with pytest.warns(interlace.MissingDataWarning, match=r"3 of 180 rows dropped"):
        res = fit("Reaction ~ Days + late", nul, groups="Subject")
    plain = sleep.assign(late=sleep.Days > 4).drop(index=[3, 7, 50])
    ref = fit("Reaction ~ Days + late", plain, groups="Subject")
    np.testing.assert_allclose(_params(res), _params(ref), rtol=1e-12)
    assert list(res.fe_params.index) == ["Intercept", "Days", "late[T.True]"]


def test_nullable_boolean_predictor_without_missing(sleep):
    res = fit("Reaction ~ late", sleep.assign(late=pd.array(sleep.Days > 4, dtype="boolean")), groups="Subject")
    ref = fit("Reaction ~ late", sleep.assign(late=sleep.Days > 4), groups="Subject")
    np.testing.assert_allclose(_params(res), _params(ref), rtol=1e-12)


def test_arrow_backed_numbers(sleep):
    arrow = sleep.assign(Days=sleep.Days.astype("int64[pyarrow]"), Reaction=sleep.Reaction.astype("double[pyarrow]"))
    np.testing.assert_allclose(_params(fit("Reaction ~ Days", arrow, groups="Subject")),
                               _params(fit("Reaction ~ Days", sleep, groups="Subject")), rtol=1e-12)


def test_nullable_integer_counts_in_glmer():
    gt = interlace.datasets.load("grouseticks")
    res = quiet(glmer, "TICKS ~ YEAR + (1 | BROOD)", gt.assign(TICKS=pd.array(gt.TICKS, dtype="Int64")),
                family="poisson")
    ref = quiet(glmer, "TICKS ~ YEAR + (1 | BROOD)", gt, family="poisson")
    np.testing.assert_array_equal(_params(res), _params(ref))


def test_to_pandas_leaves_the_input_alone(sleep):
    nul = sleep.assign(late=pd.array(sleep.Days > 4, dtype="boolean"))
    out = to_pandas(nul)
    assert str(nul.late.dtype) == "boolean" and out.late.dtype == bool


# ----------------------------------------------------------------------------- Series alignment
@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_series_aligned_on_the_index(sleep, arg):
    rng = np.random.default_rng(1)
    vec = pd.Series(rng.uniform(0.5, 2.0, len(sleep)), index=sleep.index)
    shuffled = vec.sample(frac=1.0, random_state=2)
    by_label = fit("Reaction ~ Days", sleep, groups="Subject", **{arg: shuffled})
    by_position = fit("Reaction ~ Days", sleep, groups="Subject", **{arg: vec.to_numpy()})
    np.testing.assert_array_equal(_params(by_label), _params(by_position))
    wrong = fit("Reaction ~ Days", sleep, groups="Subject", **{arg: shuffled.to_numpy()})
    assert np.max(np.abs(_params(wrong) - _params(by_position))) > 1e-3  # position would differ


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_series_with_a_foreign_index_is_refused(sleep, arg):
    vec = pd.Series(np.ones(len(sleep)), index=sleep.index + 1000)
    with pytest.raises(DataError, match=rf"{arg} is a pandas Series whose index does not match data's index: "
                                        r"180 of data's 180 row labels \(0, 1, 2, \.\.\.\) are not in it"):
        fit("Reaction ~ Days", sleep, groups="Subject", **{arg: vec})


def test_series_missing_some_labels(sleep):
    vec = pd.Series(np.ones(len(sleep)), index=sleep.index).drop(index=[5, 9])
    with pytest.raises(DataError, match=r"2 of data's 180 row labels \(5, 9\) are not in it"):
        fit("Reaction ~ Days", sleep, groups="Subject", weights=vec)


def test_series_with_repeated_labels_is_refused(sleep):
    vec = pd.Series(np.ones(len(sleep)), index=np.zeros(len(sleep), int))
    with pytest.raises(DataError, match="has repeated labels"):
        fit("Reaction ~ Days", sleep, groups="Subject", weights=vec)


def test_series_for_a_subset_of_rows(sleep):
    """data = a row subset of a frame: a Series of the whole frame is aligned on the subset's labels."""
    w = pd.Series(np.linspace(0.5, 2.0, len(sleep)), index=sleep.index)
    part = sleep[sleep.Days >= 2]
    res = fit("Reaction ~ Days", part, groups="Subject", weights=w)
    ref = fit("Reaction ~ Days", part, groups="Subject", weights=w[part.index].to_numpy())
    np.testing.assert_array_equal(_params(res), _params(ref))


def test_subset_with_full_length_vectors(sleep):
    w = np.linspace(0.5, 2.0, len(sleep))
    keep = (sleep.Days >= 2).to_numpy()
    model = interlace.CrossedLME.from_formula("Reaction ~ Days", sleep, groups="Subject", weights=w, subset=keep)
    ref = fit("Reaction ~ Days", sleep[keep], groups="Subject", weights=w[keep])
    np.testing.assert_array_equal(_params(model.fit()), _params(ref))


def test_series_aligned_in_glmer_and_coxme(lung):
    cbpp = interlace.datasets.load("cbpp").assign(prop=lambda d: d["incidence"] / d["size"])
    size = cbpp["size"].astype(float).sample(frac=1.0, random_state=3)
    res = glmer("prop ~ 1 + (1 | herd)", cbpp, family="binomial", weights=size)
    ref = glmer("prop ~ 1 + (1 | herd)", cbpp, family="binomial", weights=cbpp["size"].to_numpy(float))
    np.testing.assert_array_equal(_params(res), _params(ref))
    off = pd.Series(np.linspace(-0.1, 0.1, len(lung)), index=lung.index)
    res = quiet(coxme, "Surv(time, status) ~ age + (1 | inst)", lung, offset=off.iloc[::-1])
    ref = quiet(coxme, "Surv(time, status) ~ age + (1 | inst)", lung, offset=off.to_numpy())
    np.testing.assert_array_equal(np.asarray(res.fe_params), np.asarray(ref.fe_params))


def test_clmm_weights_series_aligned():
    wine = interlace.datasets.load("wine")
    w = pd.Series(np.linspace(0.5, 1.5, len(wine)), index=wine.index)
    res = clmm("rating ~ temp + (1 | judge)", wine, weights=w.iloc[::-1])
    ref = clmm("rating ~ temp + (1 | judge)", wine, weights=w.to_numpy())
    np.testing.assert_array_equal(_params(res), _params(ref))


def test_align_vector_rules(sleep):
    assert align_vector("Days", sleep, "weights") == "Days"
    with pytest.raises(DataError, match="weights must be one column"):
        align_vector(sleep[["Days", "Reaction"]], sleep, "weights")
    with pytest.raises(DataError, match="scalar"):
        align_vector(3.0, sleep, "offset")
    inp = model_input(sleep, subset=(sleep.Days > 7).to_numpy(), weights=np.arange(len(sleep), dtype=float))
    np.testing.assert_array_equal(inp.weights, np.flatnonzero(sleep.Days > 7).astype(float))
    with pytest.raises(DataError, match="subset must be booleans"):
        model_input(sleep, subset=np.arange(3))


# ----------------------------------------------------------------------------- duplicated names
@pytest.mark.parametrize("fn", ["fit", "glmer", "clmm", "coxme", "mixedlm"])
def test_duplicated_column_names(sleep, fn):
    d = sleep.assign(status=1, y=(sleep.Reaction > 300).astype(float))
    d.columns = ["Reaction", "Days", "Subject", "status", "Days"]
    call = {
        "fit": lambda: fit("Reaction ~ Days", d, groups="Subject"),
        "glmer": lambda: glmer("Reaction ~ Days + (1 | Subject)", d),
        "clmm": lambda: clmm("Reaction ~ Days + (1 | Subject)", d),
        "coxme": lambda: coxme("Surv(Reaction, status) ~ Days + (1 | Subject)", d),
        "mixedlm": lambda: smf.mixedlm("Reaction ~ Days", d, groups="Subject"),
    }[fn]
    with pytest.raises(DataError, match=r"data has duplicated column names: 'Days'"):
        call()


@settings(deadline=None)
@given(values=st.lists(st.integers(-3000, 3000), min_size=1, max_size=200),
       dtype=st.sampled_from(["int64", "int32", "int16"]), shift=st.sampled_from([0, 10**6, -(10**9)]))
def test_integer_groups_factorized_as_pandas(values, dtype, shift):
    """An integer grouping column's codes and levels (table lookup where the values span a few
    times the rows) are ``pandas.factorize(..., sort=True)``'s, for any range, sign and dtype."""
    from interlace.design.frame import ModelFrame
    from interlace.design.terms import factorize_groups

    arr = np.asarray(values, dtype=np.int64) + (shift if dtype == "int64" else 0)
    arr = arr.astype(dtype)
    frame = ModelFrame(columns={"g": arr}, index=pd.RangeIndex(arr.size))
    codes, levels = factorize_groups(frame, ("g",))
    expected_codes, expected_levels = pd.factorize(pd.Series(arr), sort=True)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(np.asarray(levels), np.asarray(expected_levels))
    assert np.asarray(levels).dtype == np.asarray(expected_levels).dtype
