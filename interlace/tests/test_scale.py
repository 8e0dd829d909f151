"""Chunked fits (``interlace.scale``): in memory vs. chunks vs. parquet batches vs. a Dask cluster.

Two kinds of agreement are checked against :func:`interlace.fit` on the same data:

* at the same θ, the chunked criterion, β̂, σ̂², the BLUPs and ``RX`` equal the
  in-memory ones to 1e-8 (relative; measured ~1e-12): the blocks summed chunk by chunk
  are the in-memory cross-products up to rounding;
* end to end (each fit runs its own optimizer), llf / AIC / BIC agree to 1e-8 and the
  quantities that move with θ̂ to ``OPT_RTOL``: BOBYQA stops within its tolerance
  (NLopt ``xtol_rel = 1e-7``) and rounding-level differences of the criterion
  (~1e-13 relative) change where, as they do when the in-memory data are permuted; the
  Newton refinement after the convergence check (``newton_polish``) brings both to the
  minimum up to its finite-difference error (measured: θ 1.9e-7 on Pastes, ≤ 1.4e-9
  elsewhere; 5e-6 without it).

The Dask tests run on a real ``distributed.LocalCluster`` with 2 worker processes, made
once for the module; they and the parquet tests skip when dask / pyarrow are absent.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from interlace import datasets, fit
from interlace.errors import InterlaceError, MissingDataWarning, RankDeficiencyWarning
from interlace.linalg import HAVE_CHOLMOD
from interlace.scale import fit_chunks

#: end-to-end tolerance of θ-dependent estimates, relative to the quantity's largest magnitude
OPT_RTOL = 1e-6
#: agreement at the same θ, and of llf/AIC/BIC end to end
RTOL = 1e-8


def _simulated() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 3000
    g1 = rng.integers(0, 60, n)
    g2 = rng.integers(0, 25, n)
    f = rng.choice(["lo", "mid", "hi"], n)
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + np.where(f == "hi", 1.0, 0) + rng.normal(size=60)[g1] + 0.7 * rng.normal(size=25)[g2]
         + rng.normal(size=n))
    df = pd.DataFrame({"y": y, "x": x, "f": f, "g1": g1.astype(float), "g2": [f"s{v:02d}" for v in g2],
                       "w": rng.uniform(0.5, 2, n), "off": rng.normal(scale=0.1, size=n)})
    df.loc[rng.choice(n, 40, replace=False), "x"] = np.nan
    df.loc[rng.choice(n, 30, replace=False), "f"] = None
    df.loc[rng.choice(n, 20, replace=False), "g1"] = np.nan
    return df


def _sparse_crossed() -> pd.DataFrame:
    """2,000 × 200 crossed levels on 12,000 rows: Z2ᵀZ1 is stored sparse (the column-pairs path)."""
    rng = np.random.default_rng(11)
    n = 12000
    g1 = rng.integers(0, 2000, n)
    g2 = rng.integers(0, 200, n)
    x = rng.normal(size=n)
    y = 0.3 * x + rng.normal(size=2000)[g1] + 0.5 * rng.normal(size=200)[g2] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2})


CASES = {
    "sleepstudy": (lambda: datasets.load("sleepstudy"), "Reaction ~ Days + (Days | Subject)", {}),
    "penicillin": (lambda: datasets.load("penicillin"), "diameter ~ 1 + (1 | plate) + (1 | sample)", {}),
    "simulated": (_simulated, "y ~ x + f + (1 | g1) + (1 | g2)", {}),
    "simulated_weights_offset": (_simulated, "y ~ x + f + (1 | g1) + (1 | g2)", {"weights": "w", "offset": "off"}),
    "simulated_slopes_ml": (_simulated, "y ~ x + f + (1 + x | g2) + (1 | g1)", {"method": "ML"}),
    "pastes_nested": (lambda: datasets.load("pastes"), "strength ~ 1 + (1 | batch/cask)", {}),
    "sparse_crossed": (_sparse_crossed, "y ~ x + (1 | g1) + (1 | g2)", {}),
}


def _chunks(df: pd.DataFrame, size: int):
    return lambda: (df.iloc[i:i + size] for i in range(0, len(df), size))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _close(a, b, rtol, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape, what
    scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-300)
    err = float(np.max(np.abs(a - b))) / scale if a.size else 0.0
    assert err <= rtol, f"{what}: relative difference {err:.2e} > {rtol:.0e}"


def assert_same_fit(a, b, opt_rtol: float = OPT_RTOL) -> None:
    """End-to-end agreement of an in-memory fit ``a`` and a chunked fit ``b``."""
    assert list(a.fe_params.index) == list(b.fe_params.index)
    assert a.nobs == b.nobs and a.n_dropped == b.n_dropped
    assert a.ngroups == b.ngroups
    for what in ("llf", "aic", "bic"):
        _close(getattr(a, what), getattr(b, what), RTOL, what)
    _close(a.theta, b.theta, opt_rtol, "theta")
    _close(a.fe_params, b.fe_params, opt_rtol, "fe_params")
    _close(a.fe_bse, b.fe_bse, opt_rtol, "fe_bse")
    _close(a.scale, b.scale, opt_rtol, "scale")
    _close(a.varcorr["vcov"], b.varcorr["vcov"], opt_rtol, "variance components")
    _close(a.fe_pvalues, b.fe_pvalues, 1e-3, "fe_pvalues")  # p-values near 0 move most
    _close(a.fe_df, b.fe_df, 1e-4, "fe_df (Satterthwaite)")
    for k, v in a.random_effects.items():
        w = b.random_effects[k]
        assert list(v.index.astype(str)) == list(w.index.astype(str)), k
        _close(v, w, opt_rtol, f"BLUPs of {k}")


def assert_same_at_theta(a, b) -> None:
    """The chunked criterion and solution at the in-memory θ̂ equal the in-memory ones."""
    da, db = a.model.deviance_function(), b.model.deviance_function()
    for th in (a.theta, a.theta * 1.05 + 0.01):
        _close(da(th), db(th), 1e-12, "criterion at the same theta")
    sa, sb = da.solution(a.theta), db.solution(a.theta)
    _close(sa.beta, sb.beta, RTOL, "beta at the same theta")
    _close(sa.b, sb.b, RTOL, "BLUPs at the same theta")
    _close(sa.sigma2, sb.sigma2, RTOL, "sigma2 at the same theta")
    _close(sa.RX, sb.RX, RTOL, "RX at the same theta")
    _close(sa.objective, sb.objective, 1e-12, "objective at the same theta")


def _memory_fit(name, engine="auto", **extra):
    make, formula, kw = CASES[name]
    return _quiet(fit, formula, make(), engine=engine, **{**kw, **extra})


# ----------------------------------------------------------------------------- chunks (no extra packages)
@pytest.mark.parametrize("name", list(CASES))
def test_chunks_match_memory(name):
    make, formula, kw = CASES[name]
    df = make()
    a = _memory_fit(name)
    b = _quiet(fit_chunks, formula, _chunks(df, max(7, len(df) // 6)), df.columns, **kw)
    assert b.n_chunks >= 6
    if name == "sparse_crossed":
        import scipy.sparse as sp

        pls = b.model.deviance_function().pls
        assert pls.engine != "blocked" or (sp.issparse(pls.A21) and pls._use_pairs())
    assert_same_at_theta(a, b)
    assert_same_fit(a, b)


@pytest.mark.skipif(not HAVE_CHOLMOD, reason="no CHOLMOD")
@pytest.mark.parametrize("name", ["penicillin", "simulated", "pastes_nested"])
def test_cholmod_from_blocks(name):
    make, formula, kw = CASES[name]
    df = make()
    a = _memory_fit(name, engine="cholmod")
    b = _quiet(fit_chunks, formula, _chunks(df, 500), df.columns, engine="cholmod", **kw)
    assert a.engine == b.engine == "cholmod"
    assert_same_at_theta(a, b)
    assert_same_fit(a, b)


def test_engine_from_blocks_is_the_row_engine():
    """An engine built from the row engine's own blocks factors exactly as the row engine."""
    from interlace.linalg import CrossProducts, engine_for_products

    a = _memory_fit("simulated")
    pls = a.model.deviance_function().pls
    blocks = {k: getattr(pls, k) for k in ("A11", "A21", "A22", "A31", "A32", "A33")}
    pb = engine_for_products(CrossProducts.from_blocks(a.model.random_effects_structure, pls.n, **blocks),
                             "blocked")
    for th in (a.theta, np.array([0.3, 2.0])):
        fa, fb = pls.factor(th), pb.factor(th)
        assert (fa.ldL2, fa.ldRX2, fa.pwrss) == (fb.ldL2, fb.ldRX2, fb.pwrss)
        ba, ua = pls.solve()
        bb, ub = pb.solve()
        np.testing.assert_array_equal(ba, bb)
        np.testing.assert_array_equal(ua, ub)


def test_missing_rows_reported_as_in_memory():
    df = _simulated()
    form = "y ~ x + f + (1 | g1) + (1 | g2)"
    with pytest.warns(MissingDataWarning) as rec_a:
        fit(form, df)
    with pytest.warns(MissingDataWarning) as rec_b:
        fit_chunks(form, _chunks(df, 700), df.columns)
    msg_a = [str(w.message) for w in rec_a if w.category is MissingDataWarning]
    msg_b = [str(w.message) for w in rec_b if w.category is MissingDataWarning]
    assert msg_a == msg_b
    assert "90 of 3000 rows dropped" in msg_b[0]


def test_rank_deficiency_as_in_memory():
    df = _simulated().dropna()
    df["x2"] = 2.0 * df["x"]
    form = "y ~ x + x2 + f + (1 | g1) + (1 | g2)"
    with pytest.warns(RankDeficiencyWarning, match="x2"):
        a = fit(form, df)
    with pytest.warns(RankDeficiencyWarning, match="x2"):
        b = fit_chunks(form, _chunks(df, 500), df.columns)
    assert list(a.fe_params.index) == list(b.fe_params.index) == ["Intercept", "x", "f[T.lo]", "f[T.mid]"]
    assert_same_fit(a, b)


def test_result_predict_and_refusals():
    df = _simulated()
    form = "y ~ x + f + (1 | g1) + (1 | g2)"
    a = _quiet(fit, form, df)
    b = _quiet(fit_chunks, form, _chunks(df, 700), df.columns)
    new = df.dropna().head(20).copy()
    new.loc[new.index[0], "g2"] = "unseen"
    _close(a.predict(new), b.predict(new), OPT_RTOL, "predict")
    pa = a.predict(new, interval="prediction")
    pb = b.predict(new, interval="prediction")
    _close(pa["se"], pb["se"], 1e-4, "prediction se")
    _close(a.random_effects_condsd["g1"], b.random_effects_condsd["g1"], 1e-4, "condsd")
    con = b.contest([0, 1, 0, 0])
    _close(con["Estimate"].iloc[0], b.fe_params["x"], 1e-12, "contest")
    assert "chunked data" in str(b.summary())
    for attr in ("fittedvalues", "resid"):
        with pytest.raises(InterlaceError, match="rows"):
            getattr(b, attr)
    with pytest.raises(InterlaceError, match="rows"):
        b.predict(None)
    with pytest.raises(InterlaceError):
        b.anova()


@pytest.mark.parametrize("kwargs, match", [
    ({"formula": "y ~ center(x) + (1 | g1)"}, "stateful"),
    ({"weights": np.ones(3000)}, "column name"),
    ({"df_method": "kenward-roger"}, "kenward-roger"),
    ({"formula": "y ~ x + (1 | nope)"}, "nope"),
])
def test_refused_options(kwargs, match):
    df = _simulated()
    kw = {"formula": "y ~ x + (1 | g1)", **kwargs}
    formula = kw.pop("formula")
    with pytest.raises(InterlaceError, match=match):
        _quiet(fit_chunks, formula, _chunks(df, 1000), df.columns, **kw)


# ----------------------------------------------------------------------------- parquet batches (pyarrow)
@pytest.fixture(scope="module")
def parquet_files(tmp_path_factory):
    pytest.importorskip("pyarrow")
    root = tmp_path_factory.mktemp("scale")
    out = {}
    for name in ("sleepstudy", "penicillin", "simulated"):
        df = CASES[name][0]()
        path = root / f"{name}.parquet"
        df.to_parquet(path, row_group_size=max(10, len(df) // 7))
        out[name] = path
    return out


@pytest.mark.parametrize("name", ["sleepstudy", "penicillin", "simulated", "simulated_weights_offset"])
def test_parquet_matches_memory(parquet_files, name):
    from interlace.scale import fit_parquet

    data_name = "simulated" if name.startswith("simulated") else name
    path = parquet_files[data_name]
    make, formula, kw = CASES[name]
    a = _quiet(fit, formula, pd.read_parquet(path), **kw)
    b = _quiet(fit_parquet, formula, path, batch_size=max(10, len(make()) // 5), **kw)
    assert b.n_chunks >= 5
    assert_same_at_theta(a, b)
    assert_same_fit(a, b)


def test_parquet_missing_file(tmp_path):
    pytest.importorskip("pyarrow")
    from interlace.scale import fit_parquet

    with pytest.raises(InterlaceError, match="no such parquet"):
        fit_parquet("y ~ x + (1 | g)", tmp_path / "missing.parquet")


# ----------------------------------------------------------------------------- Dask cluster
@pytest.mark.parametrize("name", ["sleepstudy", "penicillin", "simulated", "simulated_weights_offset"])
def test_dask_matches_memory(dask_client, name):
    import dask.dataframe as dd

    from interlace.scale import fit_dask

    make, formula, kw = CASES[name]
    df = make()
    ddf = dd.from_pandas(df, npartitions=4)
    b = _quiet(fit_dask, formula, ddf, client=dask_client, split_every=2, **kw)
    assert b.n_chunks == 4
    a = _memory_fit(name)
    assert_same_at_theta(a, b)
    assert_same_fit(a, b)


def test_dask_missing_rows_warning(dask_client):
    import dask.dataframe as dd

    from interlace.scale import fit_dask

    df = _simulated()
    with pytest.warns(MissingDataWarning, match="90 of 3000 rows dropped"):
        fit_dask("y ~ x + f + (1 | g1) + (1 | g2)", dd.from_pandas(df, npartitions=3), client=dask_client)


def test_dask_refuses_pandas():
    pytest.importorskip("dask.dataframe")
    from interlace.scale import fit_dask

    with pytest.raises(InterlaceError, match="dask DataFrame"):
        fit_dask("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))
