"""drop1 and update against lmerTest 3.1-3 and lme4 1.1-31 (``make_drop1_reference.R``).

F tests (Satterthwaite and Kenward-Roger): sums of squares, F, DenDF to 1e-4 relative
and p to 1e-4 relative; likelihood-ratio tables (AIC, LRT, p) to 1e-4 (LMMs, by ML) and
1e-3 (GLMMs).  Updated fits: log-likelihood to 1e-4 absolute (GLMMs 1e-3), fixed
effects and θ to 1e-4 relative (GLMMs 1e-3).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from interlace.errors import FormulaError, InterlaceError
from interlace.formula.update import update_formula
from interlace.tests.analysis_cases import case_frame, fit_case, load

REF = load("drop1")
F_CASES = ["sleepstudy", "penicillin", "factorial", "factorial_additive"]
CHISQ_CASES = F_CASES + ["cbpp", "grouseticks"]


def _quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a, **k)


@pytest.mark.parametrize("case", F_CASES)
@pytest.mark.parametrize("ddf", ["satterthwaite", "kenward_roger"])
def test_drop1_f(case, ddf):
    ref = REF[case]
    res = fit_case(ref["python"])
    tab = res.drop1(ddf=ddf.replace("_", "-"))
    r = pd.DataFrame(ref["f"][ddf]).set_index("term")
    assert list(tab.index) == list(r.index)
    assert tab.attrs["heading"].startswith("Single term deletions")
    np.testing.assert_array_equal(tab["NumDF"], r["numdf"])
    for ours, theirs in [("Sum Sq", "sum_sq"), ("Mean Sq", "mean_sq"), ("DenDF", "dendf"), ("F value", "F"),
                         ("Pr(>F)", "p")]:
        np.testing.assert_allclose(tab[ours], r[theirs], rtol=1e-4, err_msg=ours)


@pytest.mark.parametrize("case", CHISQ_CASES)
def test_drop1_chisq(case):
    ref = REF[case]
    glmm = ref["python"]["entry"] != "fit"
    res = fit_case(ref["python"], method="REML" if glmm else "ML")
    tab = _quiet(res.drop1, test="Chisq")
    r = pd.DataFrame(ref["chisq"]).set_index("term")
    assert list(tab.index) == list(r.index)
    rtol = 1e-3 if glmm else 1e-4
    np.testing.assert_array_equal(tab["npar"].iloc[1:].astype(int), r["npar"].iloc[1:].astype(int))
    np.testing.assert_allclose(tab["AIC"], r["AIC"], rtol=rtol)
    np.testing.assert_allclose(tab["LRT"].iloc[1:], r["LRT"].iloc[1:], rtol=rtol)
    np.testing.assert_allclose(tab["Pr(Chi)"].iloc[1:], r["p"].iloc[1:], rtol=10 * rtol)


def test_drop1_chisq_refits_reml_by_ml():
    ref = REF["sleepstudy"]
    res = fit_case(ref["python"])
    with pytest.warns(UserWarning, match="refitting"):
        tab = res.drop1(test="Chisq")
    np.testing.assert_allclose(tab["LRT"].iloc[1], ref["chisq"][1]["LRT"], rtol=1e-4)


def test_drop1_errors():
    res = fit_case(REF["factorial"]["python"])
    with pytest.raises(InterlaceError, match="marginal"):
        res.drop1(scope=["A"])
    with pytest.raises(InterlaceError, match="test must be"):
        res.drop1(test="Wald")
    with pytest.raises(InterlaceError, match="F tests"):
        fit_case(REF["cbpp"]["python"]).drop1(test="F")


UPDATES = {
    "sleepstudy_ml": ("sleepstudy", dict(reml=False)),
    "sleepstudy_no_days": ("sleepstudy", dict(formula=". ~ . - Days")),
    "sleepstudy_uncorrelated": ("sleepstudy", dict(formula=". ~ . - (Days | Subject) + (Days || Subject)")),
    "sleepstudy_log": ("sleepstudy", dict(formula="np.log(Reaction) ~ .")),
    "sleepstudy_first10": ("sleepstudy", "first10"),
    "factorial_additive": ("factorial", dict(formula=". ~ . - A:B")),
    "cbpp_no_period": ("cbpp", dict(formula=". ~ . - period")),
}


@pytest.mark.parametrize("name", list(UPDATES))
def test_update(name):
    case, change = UPDATES[name]
    py = REF[case]["python"] if case in REF else load(f"tidy_{case}")["python"]
    res = fit_case(py)
    if change == "first10":
        data = case_frame(py)
        keep = sorted(data["Subject"].astype(int).unique())[:10]
        change = dict(data=data[data["Subject"].astype(int).isin(keep)])
    new = _quiet(res.update, **change)
    r = REF["update"][name]
    glmm = py["entry"] != "fit"
    tol = 1e-3 if glmm else 1e-4
    assert bool(new.reml) == r["reml"]
    np.testing.assert_allclose(new.llf, r["loglik"], atol=tol)
    np.testing.assert_allclose(new.fe_params, r["fixef"], rtol=tol, atol=1e-8)
    np.testing.assert_allclose(np.sort(new.theta), np.sort(r["theta"]), rtol=tol, atol=1e-6)
    assert res.model.formula == py["formula"]  # the original model is unchanged


def test_update_formula_text():
    assert update_formula("Reaction ~ Days", ["(Days | Subject)"], ". ~ . - Days") == "Reaction ~ 1 + (Days | Subject)"
    assert update_formula("y ~ A * B", ["(1 | s)"], ". ~ . - A:B") == "y ~ A + B + (1 | s)"
    assert update_formula("y ~ x + (1|g)", [], "~ . - 1") == "y ~ 0 + x + (1|g)"
    assert update_formula("y ~ x", ["(1|g)"], "z ~ w") == "z ~ w"
    with pytest.raises(FormulaError, match="cannot remove"):
        update_formula("y ~ x", ["(1|g)"], ". ~ . - (1|h)")


def test_update_weights_and_errors():
    res = fit_case(REF["sleepstudy"]["python"])
    w = np.linspace(0.5, 2.0, int(res.nobs))
    a = _quiet(res.update, weights=w)
    b = _quiet(res.update, formula=". ~ .", weights=w)
    np.testing.assert_allclose(a.llf, b.llf, atol=1e-6)
    with pytest.raises(InterlaceError, match="reml"):
        fit_case(REF["cbpp"]["python"]).update(reml=False)
