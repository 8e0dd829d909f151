"""Results that can be kept: pickle, ``save``/``load``, ``copy.deepcopy``, joblib, ``remove_data()``.

Every result type is pickled with and without ``remove_data()`` and loaded in a fresh
Python process, which prints its summary, predicts new data (with intervals), gives its
confidence intervals and, with its rows, refits, profiles and bootstraps; everything must
equal what the result gave before pickling.  The patsy designs inside the results are
rebuilt from what defines them (:mod:`interlace.design.stored`) and must encode new data
exactly as the originals.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace import AR1, clmm, coxme, coxph, datasets, fit, glmer
from interlace.design.fixed import build_matrix, new_matrix
from interlace.design.stored import StoredDesignInfo
from interlace.errors import InterlaceError
from interlace.tests.conftest import REF

_PKG_PARENT = str(Path(interlace.__file__).resolve().parents[1])


def _quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


# ------------------------------------------------------------------ what a loaded result must give
def _outputs(res, newdata: pd.DataFrame, full: bool) -> dict:
    """Summary text, predictions, intervals (and, with rows, a refit, a profile and a bootstrap)."""
    r = getattr(res, "_results", res)
    out: dict = {"summary": str(res.summary())}
    kind = type(r).__name__
    if kind == "MixedLMResults":
        out["predict"] = np.asarray(res.predict(newdata), float).tolist()
        out["conf_int"] = np.asarray(res.conf_int(), float).tolist()
        if full:
            out["refit_llf"] = float(res.model.fit().llf)
        return out
    if kind == "CoxPHResults":  # no random effects
        out["predict"] = res.predict(newdata).to_numpy(float).tolist()
        out["hazard_ratios"] = res.hazard_ratios().to_numpy(float).tolist()
        if full:
            out["refit_llf"] = float(r.model.refit().llf)
        return out
    if kind in ("CrossedLMEResult", "ChunkedLMEResult"):
        pred = res.predict(newdata, interval="prediction")
        out["predict"] = pred.to_numpy(float).tolist()
        out["contest"] = res.contest(np.ones(len(r._names))).to_numpy(float).tolist()
    elif kind == "CLMMResult":
        out["predict"] = res.predict(newdata).to_numpy(float).tolist()
    else:
        out["predict"] = res.predict(newdata).to_numpy(float).tolist()
    out["fe_conf_int"] = res.fe_conf_int().to_numpy(float).tolist()
    out["condsd"] = {k: np.asarray(v, float).tolist() for k, v in r.random_effects_condsd.items()}
    if full and kind == "CrossedLMEResult" and r.model.residual is None:
        out["refit_llf"] = float(res.model.refit(reml=False).llf)
        out["profile"] = res.conf_int_all(method="profile", parm="theta_").to_numpy(float).tolist()
        out["boot"] = res.conf_int_all(method="boot", n_boot=20, seed=1).to_numpy(float).tolist()
    elif full and kind in ("GLMMResult", "CLMMResult", "CoxMEResult"):
        out["refit_llf"] = float(r.model.refit().llf)
    return out


_LOADER = """
import json, pickle, sys, warnings
warnings.simplefilter("ignore")
from interlace.tests.test_pickle import _outputs
with open(sys.argv[1], "rb") as f:
    cases = pickle.load(f)
out = {name: _outputs(res, newdata, full) for name, (res, newdata, full) in cases.items()}
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
"""


def _fits() -> dict:
    """One result of each type, with the new data it predicts."""
    sleep = datasets.load("sleepstudy")
    cbpp = datasets.load("cbpp")
    wine = datasets.load("wine")
    lung = pd.read_csv(REF / "coxme" / "lung_inst" / "data.csv")
    new_sleep = sleep.iloc[::17].assign(Subject=lambda d: d["Subject"].where(d.index % 2 == 0, 999))
    import interlace.api as ia
    from interlace.scale import fit_chunks

    out = {
        "lmm": (fit("Reaction ~ Days + (1 | Subject)", sleep), new_sleep),
        "lmm_ar1": (fit("Reaction ~ Days", sleep, random="(1 | Subject)",
                        correlation=AR1(time="Days", group="Subject")), new_sleep),
        "glmm": (glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial"),
                 cbpp.iloc[::5]),
        "clmm": (clmm("rating ~ temp + contact + (1 | judge)", wine), wine.iloc[::7]),
        "coxme": (coxme("Surv(time, status) ~ age + sex + (1 | inst)", lung), lung.iloc[::9]),
        "coxph": (coxph("Surv(time, status) ~ age + sex + strata(inst)", lung), lung.iloc[::9]),
        "chunked": (fit_chunks("Reaction ~ Days + (Days | Subject)",
                               lambda: [sleep.iloc[:60], sleep.iloc[60:]], list(sleep.columns)), new_sleep),
        "mixedlm": (ia.mixedlm("Reaction ~ Days", sleep, groups="Subject", re_formula="~Days").fit(), sleep.iloc[:9]),
    }
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - the test extra installs dask
        return out
    with dask.config.set(scheduler="synchronous"):
        out["dask"] = (fit("Reaction ~ Days", dd.from_pandas(sleep, npartitions=3), random="(Days | Subject)"),
                       new_sleep)
    return out


@pytest.fixture(scope="module")
def fits() -> dict:
    return _quiet(_fits)


def test_round_trip_in_a_fresh_process(fits, tmp_path):
    cases, expected = {}, {}
    for name, (res, newdata) in fits.items():
        expected[name] = _quiet(_outputs, res, newdata, True)
        cases[name] = (res, newdata, True)
        if name not in ("chunked", "dask"):  # a chunked fit keeps no rows
            lean = copy.deepcopy(res)
            lean.remove_data()
            expected[name + "_removed"] = _quiet(_outputs, res, newdata, False)
            cases[name + "_removed"] = (lean, newdata, False)
    src, dst = tmp_path / "results.pkl", tmp_path / "outputs.json"
    with open(src, "wb") as f:
        pickle.dump(cases, f)
    env = {**os.environ, "PYTHONPATH": _PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _LOADER, str(src), str(dst)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(dst.read_text())
    assert set(got) == set(expected)
    for name, exp in expected.items():
        assert got[name]["summary"] == exp["summary"], name
        for key, val in exp.items():
            if key != "summary":
                np.testing.assert_allclose(np.asarray(got[name][key], float) if not isinstance(val, dict)
                                           else np.concatenate([np.ravel(v) for v in got[name][key].values()]),
                                           np.asarray(val, float) if not isinstance(val, dict)
                                           else np.concatenate([np.ravel(v) for v in val.values()]),
                                           rtol=1e-10, atol=1e-12, err_msg=f"{name}: {key}")


def test_save_load_and_sizes(fits, tmp_path):
    res = fits["lmm"][0]
    path = tmp_path / "fit.pickle"
    res.save(path)
    back = type(res).load(path)
    assert str(back.summary()) == str(res.summary())
    full = len(pickle.dumps(res))
    lean = copy.deepcopy(res)
    lean.save(tmp_path / "lean.pickle", remove_data=True)
    assert lean._results._rows_removed and not res._results._rows_removed  # the copy lost its rows, not res
    assert (tmp_path / "lean.pickle").stat().st_size < full
    chunked = fits["chunked"][0]
    chunked.save(tmp_path / "chunked.pickle")
    assert str(type(chunked).load(tmp_path / "chunked.pickle").summary()) == str(chunked.summary())


def test_removed_rows_raise_clear_errors(fits):
    lean = copy.deepcopy(fits["lmm"][0])
    lean.remove_data()
    for get in (lambda r: r.fittedvalues, lambda r: r.resid, lambda r: r.predict(), lambda r: r.simulate(),
                lambda r: r.model.refit(), lambda r: r.bootstrap(n=2), lambda r: r.profile()):
        with pytest.raises(InterlaceError, match="remove_data"):
            get(lean)
    with pytest.raises(InterlaceError, match="remove_data"):
        lean.df_method = "kenward-roger"
    assert lean.df_method == "satterthwaite"
    lean.df_method = "normal"  # needs no rows
    assert np.isinf(lean.fe_df).all()


def test_joblib_parallel_over_fits():
    joblib = pytest.importorskip("joblib")
    sleep = datasets.load("sleepstudy")
    forms = ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]
    par = joblib.Parallel(n_jobs=2)(joblib.delayed(fit)(f, sleep) for f in forms)
    for f, res in zip(forms, par):
        here = fit(f, sleep)
        assert str(res.summary()) == str(here.summary())
        np.testing.assert_allclose(res.predict(sleep), here.predict(sleep), rtol=1e-12)


# ------------------------------------------------------------------ the stored patsy designs
@pytest.mark.parametrize("rhs", ["x + g", "center(x) + C(g, Sum)", "standardize(x) * h + b",
                                 "np.log(z) + I(x ** 2) + C(k)", "bs(x, df=4) + g:h", "0 + g",
                                 "scale(z) + C(g, levels=['c', 'b', 'a'])", "cr(x, df=4)"])
def test_stored_design_encodes_new_data_as_the_original(rhs):
    rng = np.random.default_rng(1)
    n = 60
    d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n),
                      "h": pd.Categorical(rng.choice(["u", "v"], n), categories=["v", "u"]),
                      "b": rng.choice([True, False], n), "k": rng.integers(1, 4, n), "z": rng.uniform(1, 2, n)})
    di = build_matrix(rhs, d, "the test design").design_info
    assert isinstance(di, StoredDesignInfo)
    back = pickle.loads(pickle.dumps(di))
    new = d.sample(25, random_state=3).assign(x=lambda f: 0.5 * f["x"], z=lambda f: 1.5 + 0.5 * (f["z"] - 1.5))
    assert back.column_names == di.column_names
    np.testing.assert_array_equal(new_matrix(back, new, "new"), new_matrix(di, new, "new"))
    assert copy.deepcopy(di) is di  # never modified once built
    if "x" in rhs:  # the rebuilt design names the missing column as the original does
        with pytest.raises(InterlaceError, match="column 'x' is not in newdata"):
            new_matrix(back, new.drop(columns="x"), "the fixed effects")
