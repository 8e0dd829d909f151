"""One spelling per concept, labelled pandas outputs, statsmodels' warning classes, lme4's coef().

The names are those of the table "One name per concept" in docs/reference/index.md; the old
spellings listed there keep working with a FutureWarning.
"""
from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.tools.sm_exceptions as sme

import interlace
from interlace.errors import InterlaceError
from interlace.scale import fit_chunks, fit_dask, fit_parquet
from interlace.tests.conftest import REF, case_data, load_case

DOCS = Path(__file__).resolve().parents[2] / "docs"
ENTRY_POINTS = [interlace.fit, interlace.glmer, interlace.glmer_nb, interlace.clmm, interlace.coxme, fit_dask,
                fit_parquet, fit_chunks]


def _quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


@pytest.fixture(scope="module")
def sleep_fit():
    return interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)")


# ------------------------------------------------------------------ one name per concept
def _concept_table() -> list[tuple[str, str, str]]:
    """(concept, name, old names) rows of the table in docs/reference/index.md."""
    text = (DOCS / "reference" / "index.md").read_text()
    section = text.split("## One name per concept", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1], cells[3]))
    return rows


def test_documented_names_are_the_entry_points_names():
    rows = _concept_table()
    assert rows, "docs/reference/index.md has no 'One name per concept' table"
    params = {f.__name__: list(inspect.signature(f).parameters) for f in ENTRY_POINTS}
    for _, name, _ in rows:
        arg = re.match(r"`(\w+)=", name)
        if arg is None:
            continue
        users = [f for f, ps in params.items() if arg.group(1) in ps]
        assert users, f"no fitting function takes {arg.group(1)}="
    # every fitting function names its optimizer optimizer= and none takes ddf=
    for f, ps in params.items():
        assert "optimizer" in ps, f
        assert "ddf" not in ps, f
    # method= means REML / ML wherever it is a fitting function's option (coxme's is the deprecated alias)
    for f in (interlace.fit, fit_dask, fit_parquet, fit_chunks):
        assert inspect.signature(f).parameters["method"].default == "REML"


def test_old_spellings_warn_and_agree(sleep_fit):
    L = np.array([[0.0, 1.0]])
    new = sleep_fit.contest(L, df_method="kenward-roger")
    with pytest.warns(FutureWarning, match="ddf= is now spelled df_method="):
        old = sleep_fit.contest(L, ddf="kenward-roger")
    pd.testing.assert_frame_equal(new, old)
    with pytest.warns(FutureWarning, match="ddf="):
        old = sleep_fit.anova(ddf="kenward-roger")
    pd.testing.assert_frame_equal(sleep_fit.anova(df_method="kenward-roger"), old)
    with pytest.raises(InterlaceError, match="give df_method= only"):
        sleep_fit.contest(L, df_method="satterthwaite", ddf="kenward-roger")

    lung = pd.read_csv(REF / "coxme" / "lung_inst" / "data.csv")
    a = _quiet(interlace.coxme, "Surv(time, status) ~ age + (1 | inst)", lung, optimizer="bobyqa")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        b = interlace.coxme("Surv(time, status) ~ age + (1 | inst)", lung, method="bobyqa")
    assert any(issubclass(w.category, FutureWarning) and "optimizer=" in str(w.message) for w in rec)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-12)
    assert a.optimizer == "bobyqa"
    with pytest.warns(FutureWarning, match="optimizer"):
        assert a.method == "bobyqa"

    cbpp = interlace.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.warns(FutureWarning, match="no family given: binomial is assumed"):
        g = interlace.glmer(f, cbpp)
    assert g.family.name == "binomial"


# ------------------------------------------------------------------ labelled pandas objects
def test_labelled_outputs(sleep_fit):
    wine = interlace.datasets.load("wine")
    c = _quiet(interlace.clmm, "rating ~ temp + contact + (1 | judge)", wine)
    names = ["1|2", "2|3", "3|4", "4|5", "temp[T.warm]", "contact[T.yes]"]
    for got in (c.params, c.bse, c.tvalues, c.pvalues):
        assert isinstance(got, pd.Series) and list(got.index) == names
    assert list(c.cov_params().index) == names and list(c.conf_int().index) == names
    np.testing.assert_allclose(c.params[4:], c.fe_params, rtol=0)
    np.testing.assert_allclose(c.params[:4], c.thresholds, rtol=0)

    sleep = interlace.datasets.load("sleepstudy")
    ch = fit_chunks("Reaction ~ Days + (Days | Subject)", lambda: [sleep.iloc[:90], sleep.iloc[90:]],
                    list(sleep.columns))
    for got in (ch.params, ch.bse, ch.tvalues, ch.pvalues):
        assert isinstance(got, pd.Series) and list(got.index) == ["Intercept", "Days"]
    np.testing.assert_allclose(ch.params, sleep_fit.params, rtol=1e-6)

    vc = sleep_fit.variance_components
    assert isinstance(vc, pd.Series) and vc.index.names == ["group", "coefficient"]
    C = sleep_fit.random_effects_cov["Subject"]
    assert vc["Subject", "Days"] == C.loc["Days", "Days"]
    np.testing.assert_allclose(vc["Subject"], np.diag(C), rtol=0)
    pastes = _quiet(interlace.fit, "strength ~ 1 + (1 | batch/cask)", interlace.datasets.load("pastes"))
    assert set(pastes.variance_components.index) == {("cask:batch", "Intercept"), ("batch", "Intercept")}


# ------------------------------------------------------------------ warnings
@pytest.mark.parametrize("ours, theirs", [
    (interlace.ConvergenceWarning, sme.ConvergenceWarning),
    (interlace.RankDeficiencyWarning, sme.CollinearityWarning),
    (interlace.UnseenLevelWarning, sme.ValueWarning),
    (interlace.SingularFitWarning, sme.ModelWarning),
    (interlace.MissingDataWarning, sme.ModelWarning),
])
def test_warnings_subclass_statsmodels(ours, theirs):
    assert issubclass(ours, theirs) and issubclass(ours, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", theirs)  # a statsmodels filter silences interlace's warning
        warnings.warn("x", ours, stacklevel=1)


def test_statsmodels_filter_catches_a_convergence_warning():
    sleep = interlace.datasets.load("sleepstudy")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)", maxiter=5)
    assert any(issubclass(w.category, sme.ConvergenceWarning) for w in rec)


# ------------------------------------------------------------------ coef
@pytest.mark.parametrize("case", ["sleepstudy_uncorr", "pastes_reml", "sleepstudy_reml"])
def test_coef_is_lme4s(case):
    """lme4's coef(m): fixef(m) + ranef(m) where a coefficient is random, fixef(m) elsewhere
    (from the lme4 fixtures' fixef and ranef)."""
    d = load_case("lmer", case)
    py = d["python"]
    res = _quiet(interlace.fit, py["formula"], case_data(d), random=py["random"], method=py["method"])
    fe = dict(zip(d["fixef"]["names"], d["fixef"]["values"]))
    co = res.coef()
    assert set(co) == {g.split(".")[0] for g in d["ranef"]}
    for g, block in d["ranef"].items():
        tab = co[g.split(".")[0]]
        assert list(tab.columns) == list(res.fe_params.index)
        tab = tab.set_axis([str(v) for v in tab.index], axis=0)
        for r_name, ours in zip(d["fixef"]["names"], tab.columns):
            want = np.full(len(block["levels"]), fe[r_name])
            if r_name in block["columns"]:
                want = want + np.asarray(block["columns"][r_name])
            elif any(r_name in b["columns"] for b in d["ranef"].values() if b is not block):
                continue  # the (x || g) terms' other half, checked with its own block
            np.testing.assert_allclose(tab.loc[block["levels"], ours].to_numpy(), want, rtol=1e-4, atol=1e-6)


def test_coef_refuses_unaligned_random_effects():
    d = load_case("lmer", "factor_slope_reml")  # (0 + f | g): f[a], f[b], f[c] are no fixed effects
    py = d["python"]
    res = _quiet(interlace.fit, py["formula"], case_data(d), random=py["random"], method=py["method"])
    with pytest.raises(InterlaceError, match="unable to align random and fixed effects"):
        res.coef()
