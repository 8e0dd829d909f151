"""Chunked GLMMs (``interlace.scale.glmer_*``): chunks, parquet batches and a Dask cluster vs. in memory and lme4.

Every case is a reference fit of ``reference/glmer`` (lme4, made by ``make_glmer_reference.R``):

* against lme4, the checks of ``test_glmer_reference`` themselves (fixed effects, SEs,
  log-likelihood, AIC/BIC, variance components, conditional modes and their SDs: 1e-3);
* against :func:`interlace.glmer` on the same data in memory: estimates (β̂, SEs, θ̂,
  conditional modes and SDs) to ``RTOL`` = 1e-6 relative to the quantity's largest
  magnitude, the log-likelihood to 1e-6 absolute.  Each row's η, μ, working weight and
  response are the in-memory ones bit for bit and the optimizer is the same; only the
  order of the sums differs (both with ``optimizer="bobyqa"``: the gradient search of
  ``"auto"`` needs the rows in memory), which moves BOBYQA's stopping point as shuffling the rows
  moves the in-memory fit: ≤ 5e-7 here, except for VerbAgg's Laplace fit (8 parameters),
  where the in-memory fit of shuffled rows moves by 3e-6 and the chunked fit by up to
  7e-6: its tolerance is 2e-5; and the binary random-slope case, whose variance components
  move by 1.5e-6 when its rows are shuffled in memory (β starting from glm's first step):
  3e-6.

The Dask tests run on a real ``distributed.LocalCluster`` with 2 worker processes; they and
the parquet tests skip when dask / pyarrow are absent.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import DataError, InterlaceError, MissingDataWarning, RankDeficiencyWarning
from interlace.scale import glmer_chunks
from interlace.tests import test_glmer_reference as lme4_checks
from interlace.tests.conftest import case_data, load_case

RTOL = 1e-6
#: VerbAgg, Laplace: 2 θ and 6 β, where BOBYQA's stopping point moves most under rounding (see above)
RTOL_CASE = {"verbagg_laplace": 2e-5, "binary_slope": 3e-6}
CHUNK_CASES = ["binary_crossed", "binary_slope", "cbpp_logit", "cbpp_prop_weights", "poisson_offset",
               "grouseticks_poisson", "verbagg_nagq0", "verbagg_laplace"]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _case(name: str):
    """(reference, data, formula, keyword arguments) of a glmer reference case."""
    d = load_case("glmer", name)
    py = d["python"]
    data = lme4_checks._as_factors(case_data(d), d)
    formula = py["formula"]
    if py["response"]:
        formula = f"cbind({py['response']['successes']}, {py['response']['failures']}) ~ {formula.split('~', 1)[1]}"
    # the chunked fits run lme4's BOBYQA stages (the Laplace gradient needs the rows in memory): the
    # in-memory fits they are compared with take the same path
    kw = {"family": py["family"], "link": py["link"], "random": py["random"], "weights": py["weights"],
          "offset": py["offset"], "nAGQ": py["nAGQ"], "optimizer": "bobyqa"}
    return d, data, formula, kw


_MEMORY: dict = {}


def _memory_fit(name: str):
    if name not in _MEMORY:
        d, data, formula, kw = _case(name)
        _MEMORY[name] = _quiet(interlace.glmer, formula, data, **kw)
    return _MEMORY[name]


def _chunks(df: pd.DataFrame, size: int):
    return lambda: (df.iloc[i:i + size] for i in range(0, len(df), size))


def _flat(d: dict) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(v, float)) for v in d.values()])


def _close(a, b, rtol, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, what
    err = float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(a))), 1e-300)
    assert err <= rtol, f"{what}: relative difference {err:.2e} > {rtol:.0e}"


def assert_same_fit(a, b, rtol: float = RTOL) -> None:
    """A chunked fit ``b`` equals the in-memory fit ``a``."""
    assert list(a.fe_params.index) == list(b.fe_params.index)
    assert a.nobs == b.nobs and a.ngroups == b.ngroups and a.df_modelwc == b.df_modelwc
    assert abs(a.llf - b.llf) < 1e-6
    assert abs(a.aic - b.aic) < 1e-6 and abs(a.bic - b.bic) < 1e-6
    _close(a.fe_params, b.fe_params, rtol, "fe_params")
    _close(a.fe_bse, b.fe_bse, rtol, "fe_bse")
    _close(a.theta, b.theta, rtol, "theta")
    _close(a.varcorr["vcov"], b.varcorr["vcov"], rtol, "variance components")
    _close(_flat(a.random_effects), _flat(b.random_effects), rtol, "conditional modes")
    _close(_flat(a.random_effects_condsd), _flat(b.random_effects_condsd), rtol, "conditional SDs")
    _close(a.deviance, b.deviance, rtol, "deviance")


def assert_matches_lme4(d: dict, res) -> None:
    """``test_glmer_reference``'s own checks of a fit against lme4."""
    for check in (lme4_checks.test_fixed_effects, lme4_checks.test_likelihood, lme4_checks.test_variance_components,
                  lme4_checks.test_conditional_modes):
        check((d, res))
    nd = lme4_checks._as_factors(pd.DataFrame(d["predict"]["newdata"]), d)
    p = d["predict"]
    np.testing.assert_allclose(res.predict(nd, type="link").to_numpy(), p["link_with_re"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(res.predict(nd).to_numpy(), p["response_with_re"], rtol=1e-3, atol=1e-5)


# ----------------------------------------------------------------------------- chunks (no extra packages)
@pytest.mark.parametrize("name", CHUNK_CASES)
def test_chunks_match_memory_and_lme4(name):
    d, data, formula, kw = _case(name)
    b = _quiet(glmer_chunks, formula, _chunks(data, max(7, len(data) // 6)), data.columns, progress=False,
               cache="memory", **kw)
    assert b.n_chunks >= 6
    assert b.passes["total"] == 2 + b.passes["joint"] + b.passes["conditional"]
    if kw["nAGQ"] == 0:
        assert b.passes["conditional"] == 0
    assert_same_fit(_memory_fit(name), b, RTOL_CASE.get(name, RTOL))
    assert_matches_lme4(d, b)


@pytest.mark.skipif(not interlace.linalg.HAVE_CHOLMOD, reason="no CHOLMOD")
def test_cholmod_engine_from_chunks():
    d, data, formula, kw = _case("binary_crossed")
    a = _quiet(interlace.glmer, formula, data, engine="cholmod", **kw)
    b = _quiet(glmer_chunks, formula, _chunks(data, 300), data.columns, engine="cholmod", progress=False,
               cache="memory", **kw)
    assert a.engine == b.engine == "cholmod"
    assert_same_fit(a, b)


def test_empty_chunks_and_chunks_without_complete_rows():
    d, data, formula, kw = _case("cbpp_logit")
    incomplete = data.iloc[:5].copy()
    incomplete["herd"] = np.nan
    parts = [data.iloc[:0], data.iloc[:30], incomplete, data.iloc[30:], data.iloc[:0]]
    b = _quiet(glmer_chunks, formula, lambda: iter(parts), data.columns, progress=False, **kw)
    a = _quiet(interlace.glmer, formula, pd.concat(parts), **kw)
    assert b.n_chunks == 5 and b.n_dropped == a.n_dropped == 5
    assert_same_fit(a, b)


def test_disk_cache_gives_the_memory_fit_and_no_cache_rereads():
    from interlace.scale.runners import LocalRunner

    d, data, formula, kw = _case("poisson_offset")
    fits = [_quiet(glmer_chunks, formula, _chunks(data, 200), data.columns, progress=False, cache=c, **kw)
            for c in ("memory", "disk")]
    assert fits[1].llf == fits[0].llf and fits[1].passes == fits[0].passes
    np.testing.assert_array_equal(fits[1].fe_params, fits[0].fe_params)
    reads = {"n": 0}

    def source():
        reads["n"] += 1
        return _chunks(data, 200)()

    design = fits[0].model.design
    for cache, n_reads in (("none", 3), ("disk", 1), ("memory", 1)):
        reads["n"] = 0
        runner = LocalRunner(source, design, cache)
        sums = [runner.map_reduce(lambda c: c.n) for _ in range(3)]
        runner.close()
        assert sums == [len(data)] * 3 and reads["n"] == n_reads and runner.n_chunks == 4


def _binary_text():
    """binary_crossed with the response as "no"/"yes" strings, missing values, and an aliased column."""
    d, data, formula, kw = _case("binary_crossed")
    df = data.copy()
    df["y"] = np.where(df["y"] > 0, "yes", "no")
    df["x2"] = 2 * df["x"]
    rows = np.random.default_rng(3).choice(len(df), 35, replace=False)
    df.loc[df.index[rows[:25]], "x"] = np.nan
    df.loc[df.index[rows[25:]], "g2"] = None
    return df, "y ~ x + x2", {"random": kw["random"], "family": "binomial", "optimizer": "bobyqa"}


def _recorded(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, {cat: [str(w.message) for w in rec if issubclass(w.category, cat)]
                 for cat in (MissingDataWarning, RankDeficiencyWarning)}


def test_text_response_missing_rows_and_aliased_column_as_in_memory():
    df, formula, kw = _binary_text()
    a, warn_a = _recorded(interlace.glmer, formula, df, **kw)
    b, warn_b = _recorded(glmer_chunks, formula, _chunks(df, 400), df.columns, progress=False, cache="memory", **kw)
    assert warn_a == warn_b
    assert "35 of" in warn_b[MissingDataWarning][0] and "x2" in warn_b[RankDeficiencyWarning][0]
    assert b.n_dropped == a.n_dropped == 35
    assert list(b.fe_params.index) == ["Intercept", "x"]
    assert_same_fit(a, b)


def test_result_predict_residuals_summary_and_refusals():
    d, data, formula, kw = _case("cbpp_logit")
    a = _memory_fit("cbpp_logit")
    b = _quiet(glmer_chunks, formula, _chunks(data, 10), data.columns, progress=False, cache="memory", **kw)
    new = data.head(12).copy()
    new.loc[new.index[0], "herd"] = 99  # unseen: its modes are 0
    for kind in ("response", "link"):
        _close(a.predict(new, type=kind), b.predict(new, type=kind), RTOL, f"predict {kind}")
    _close(a.predict(new, include_re=False), b.predict(new, include_re=False), RTOL, "predict without modes")
    for kind in ("deviance", "pearson", "response"):
        full = a.residuals(type=kind).to_numpy()
        parts = pd.concat([b.residuals(data.iloc[i:i + 20], type=kind) for i in range(0, len(data), 20)])
        assert list(parts.index) == list(data.index)
        _close(full, parts, RTOL, f"{kind} residuals")
    import pickle

    c = pickle.loads(pickle.dumps(b))
    assert c.llf == b.llf and str(c.summary()) == str(b.summary()) and c.passes == b.passes
    np.testing.assert_array_equal(_flat(c.random_effects_condsd), _flat(b.random_effects_condsd))
    text = str(b.summary())
    assert "Laplace approximation" in text and "chunked data" in text
    assert f"{b.llf:.4f}" in text and f"{a.llf:.4f}" in text
    assert "passes" in repr(b)
    for attr in ("fittedvalues", "resid"):
        with pytest.raises(InterlaceError, match="rows"):
            getattr(b, attr)
    for call in (b.simulate, b.hat_values, b.influence, b.resid_pearson):
        with pytest.raises(InterlaceError, match="rows"):
            call()
    with pytest.raises(InterlaceError, match="rows"):
        b.predict(None)


@pytest.mark.parametrize("kwargs, match", [
    ({"family": "gamma"}, "binomial and Poisson"),
    ({"nAGQ": 5}, "nAGQ"),
    ({"formula": "cbind(incidence, size - incidence) ~ period + (1 | herd)", "family": "poisson"}, "cbind"),
    ({"weights": np.ones(56)}, "column name"),
    ({"formula": "incidence ~ period + (1 | nope)"}, "nope"),
    ({"cache": "cloud"}, "cache"),
])
def test_refused_options(kwargs, match):
    cbpp = interlace.datasets.load("cbpp")
    kw = {"formula": "cbind(incidence, size - incidence) ~ period + (1 | herd)", "family": "binomial", **kwargs}
    formula = kw.pop("formula")
    with pytest.raises(InterlaceError, match=match):
        _quiet(glmer_chunks, formula, _chunks(cbpp, 20), cbpp.columns, progress=False, **kw)


def test_a_chunk_with_an_unseen_level_or_another_column_type():
    cbpp = interlace.datasets.load("cbpp")
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    calls = {"n": 0}

    def changing():  # the second read (the setup pass) brings a herd the levels pass did not see
        calls["n"] += 1
        df = cbpp.copy()
        if calls["n"] > 1:
            df.loc[df.index[-1], "herd"] = 99
        return (df.iloc[i:i + 20] for i in range(0, len(df), 20))

    with pytest.raises(DataError, match="level 99 of 'herd' was not seen in the first pass"):
        _quiet(glmer_chunks, formula, changing, cbpp.columns, progress=False)
    mixed = [cbpp.iloc[:30], cbpp.iloc[30:].astype({"size": str})]
    with pytest.raises(DataError, match="'size' holds text values in one chunk and numeric values"):
        _quiet(glmer_chunks, formula, lambda: iter(mixed), cbpp.columns, progress=False)
    bad = cbpp.copy()
    bad.loc[bad.index[40], "incidence"] = -1
    with pytest.raises(DataError, match="non-negative"):
        _quiet(glmer_chunks, formula, _chunks(bad, 20), bad.columns, progress=False)


# ----------------------------------------------------------------------------- parquet batches (pyarrow)
PARQUET_CASES = ["binary_crossed", "cbpp_logit", "poisson_offset"]


@pytest.mark.parametrize("name", PARQUET_CASES)
def test_parquet_matches_memory(tmp_path, name):
    pytest.importorskip("pyarrow")
    d, data, formula, kw = _case(name)
    path = tmp_path / f"{name}.parquet"
    data.to_parquet(path, row_group_size=max(10, len(data) // 5))
    b = _quiet(interlace.glmer, formula, str(path), batch_size=max(7, len(data) // 8), progress=False,
               cache_dir=tmp_path, **kw)
    assert b.n_chunks >= 8
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the disk cache is removed
    assert_same_fit(_memory_fit(name), b)
    assert_matches_lme4(d, b)


# ----------------------------------------------------------------------------- Dask cluster
@pytest.mark.parametrize("name", PARQUET_CASES)
def test_dask_matches_memory(dask_client, name):
    import dask.dataframe as dd

    d, data, formula, kw = _case(name)
    ddf = dd.from_pandas(data, npartitions=4)
    b = _quiet(interlace.glmer, formula, ddf, client=dask_client, progress=False, **kw)
    assert b.n_chunks == 4
    a = _memory_fit(name)
    assert_same_fit(a, b)
    assert_matches_lme4(d, b)
    if name == "cbpp_logit":  # fitted values and residuals by a pass on the workers (the result pickles)
        resid = ddf.map_partitions(b.residuals, type="pearson", meta=("resid_pearson", "f8")).compute()
        _close(a.residuals(type="pearson"), resid, RTOL, "Pearson residuals on the cluster")
        fitted = ddf.map_partitions(b.predict, meta=("predicted", "f8")).compute()
        _close(a.fittedvalues, fitted, RTOL, "fitted values on the cluster")
    # the encoded partitions are released on the workers
    for _ in range(50):
        if not any(dask_client.run(lambda dask_worker: len(dask_worker.data)).values()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the workers still hold data after the fit")


def test_dask_local_scheduler_and_refusals():
    dd = pytest.importorskip("dask.dataframe")
    from interlace.scale import glmer_dask

    d, data, formula, kw = _case("poisson_offset")
    b = _quiet(glmer_dask, formula, dd.from_pandas(data, npartitions=3), progress=False, **kw)
    assert_same_fit(_memory_fit("poisson_offset"), b)
    with pytest.raises(InterlaceError, match="dask DataFrame"):
        glmer_dask(formula, data, **kw)
    with pytest.raises(InterlaceError, match="column name"):
        interlace.glmer(formula, dd.from_pandas(data, npartitions=2), family="poisson", random=kw["random"],
                        offset=np.zeros(len(data)))
    with pytest.raises(InterlaceError, match="chunked data"):
        interlace.glmer(formula, data, family="poisson", random=kw["random"], offset="logt", batch_size=10)


def test_fit_dispatches_parquet_paths_and_dask_frames(tmp_path):
    """``interlace.fit`` (LMMs) takes a parquet path too, and a Dask DataFrame with the default df_method."""
    pytest.importorskip("pyarrow")
    dd = pytest.importorskip("dask.dataframe")
    sleep = interlace.datasets.load("sleepstudy")
    path = tmp_path / "sleep.parquet"
    sleep.to_parquet(path, row_group_size=60)
    a = interlace.fit("Reaction ~ Days + (Days | Subject)", sleep)
    for data in (str(path), path, dd.from_pandas(sleep, npartitions=3)):
        b = interlace.fit("Reaction ~ Days + (Days | Subject)", data)
        assert type(b).__name__ == "ChunkedLMEResult" and abs(a.llf - b.llf) < 1e-8
