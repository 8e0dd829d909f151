"""Bad input gets an interlace error naming what is at fault; tolerated input gets a warning.

Error cases assert the exception class from :mod:`interlace.errors` (DataError,
FormulaError, InterlaceError — all ValueError subclasses) and, with ``match=``,
that the message names the offending column, term or value.  Warning cases check
the warning, the flag on the result and the estimates against a reference: a fit
on the pre-cleaned data, or lme4 output pasted below with the R call that made it
(R 4.2.2, lme4 1.1-31).
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace import fit
from interlace.errors import (
    ConvergenceWarning,
    DataError,
    FormulaError,
    InterlaceError,
    MissingDataWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from interlace.tests.conftest import case_data, load_case


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return interlace.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return fit("Reaction ~ Days", sleep, random=["(Days | Subject)"])


def test_error_classes_are_valueerrors():
    for cls in (InterlaceError, DataError, FormulaError):
        assert issubclass(cls, ValueError)
    assert issubclass(DataError, InterlaceError) and issubclass(FormulaError, InterlaceError)


# ----------------------------------------------------------------------------- unknown columns
def test_unknown_column_in_fixed_formula(sleep):
    with pytest.raises(DataError, match=r"column 'Dayz' used in formula 'Reaction ~ Dayz' is not in the data"):
        fit("Reaction ~ Dayz", sleep, groups="Subject")


def test_unknown_column_inside_a_function_of_the_fixed_formula(sleep):
    with pytest.raises(DataError, match=r"column 'Dayz' .* not in the data"):
        fit("Reaction ~ np.log1p(Dayz)", sleep, groups="Subject")


def test_unknown_response_column(sleep):
    with pytest.raises(DataError, match=r"column 'Reactio' .* not in the data"):
        fit("Reactio ~ Days", sleep, groups="Subject")


def test_unknown_column_in_random_term_lhs(sleep):
    with pytest.raises(DataError, match=r"column 'Dayz' used in term '\(1 \+ Dayz \| Subject\)'"):
        fit("Reaction ~ Days", sleep, random="(1 + Dayz | Subject)")
    with pytest.raises(DataError, match=r"column 'Dayz' used in term '\(Dayz \| Subject\)'"):
        fit("Reaction ~ Days + (Dayz | Subject)", sleep)


@pytest.mark.parametrize("kwargs, term", [
    ({"groups": "Subj"}, r"\(1 \| Subj\)"),
    ({"random": "(1 | Subj)"}, r"\(1 \| Subj\)"),
    ({"random": "(1 | Subject/Subj)"}, r"\(1 \| Subject/Subj\)"),
    ({"random": "(1 | Subject:Subj)"}, r"\(1 \| Subject:Subj\)"),
])
def test_unknown_grouping_column(sleep, kwargs, term):
    with pytest.raises(DataError, match=rf"grouping column 'Subj' of term '{term}' is not in the data"):
        fit("Reaction ~ Days", sleep, **kwargs)


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_unknown_weights_or_offset_column(sleep, arg):
    with pytest.raises(DataError, match=rf"{arg} column 'nope' is not in the data"):
        fit("Reaction ~ Days", sleep, groups="Subject", **{arg: "nope"})


# ----------------------------------------------------------------------------- formula syntax
@pytest.mark.parametrize("formula", ["Reaction Days", "Reaction ~ Days ~ Subject"])
def test_formula_needs_exactly_one_tilde(sleep, formula):
    with pytest.raises(FormulaError, match=re.escape(f"formula {formula!r} must have exactly one '~'")):
        fit(formula, sleep, groups="Subject")


def test_formula_without_response(sleep):
    with pytest.raises(FormulaError, match="has no response on the left of '~'"):
        fit(" ~ Days", sleep, groups="Subject")


@pytest.mark.parametrize("formula, which", [
    ("Reaction ~ Days + (1 | Subject", r"unbalanced '\('"),
    ("Reaction ~ Days + 1 | Subject)", r"unbalanced '\)'"),
    ("Reaction ~ (Days", r"unbalanced '\('"),
])
def test_unbalanced_parentheses(sleep, formula, which):
    with pytest.raises(FormulaError, match=which):
        fit(formula, sleep, groups="Subject")


def test_formula_ending_in_an_operator(sleep):
    with pytest.raises(FormulaError, match=r"'Reaction ~ Days \+' ends with an operator"):
        fit("Reaction ~ Days +", sleep, groups="Subject")


def test_bar_outside_parentheses(sleep):
    # lme4 would silently read this as the single term (Days + 1 | Subject)
    with pytest.raises(FormulaError, match=r"'\|' outside parentheses"):
        fit("Reaction ~ Days + 1 | Subject", sleep)


@pytest.mark.parametrize("random", ["(1 Subject)", "(Days)", "Subject"])
def test_random_term_without_bar(sleep, random):
    with pytest.raises(FormulaError, match=re.escape(f"random-effects term {random!r} has no '|'")):
        fit("Reaction ~ Days", sleep, random=random)


@pytest.mark.parametrize("how", ["random", "formula"])
def test_random_term_with_empty_lhs(sleep, how):
    args = {"random": "(|Subject)"} if how == "random" else {}
    formula = "Reaction ~ Days" + (" + (|Subject)" if how == "formula" else "")
    with pytest.raises(FormulaError, match=r"'\(\|Subject\)' has nothing left of '\|'"):
        fit(formula, sleep, **args)


@pytest.mark.parametrize("term, grp", [("(1 | Subject + Days)", "Subject + Days"), ("(1 | a+b)", "a+b"),
                                       ("(1 | (Subject))", "(Subject)")])
def test_grouping_expression_not_supported(sleep, term, grp):
    with pytest.raises(FormulaError, match=re.escape(f"grouping expression {grp!r} in {term!r} is not supported")):
        fit("Reaction ~ Days", sleep, random=term)


@pytest.mark.parametrize("term, msg", [("(1 | Subject/)", "empty nesting level"),
                                       ("(1 | )", "needs one grouping factor"),
                                       ("(1 | Subject | Days)", "needs one grouping factor"),
                                       ("(1 + | Subject)", "cannot parse random-effects term")])
def test_malformed_random_terms(sleep, term, msg):
    with pytest.raises(FormulaError, match=re.escape(msg)):
        fit("Reaction ~ Days", sleep, random=term)


@pytest.mark.parametrize("random, msg", [(5, "random must be a term string or a list of term strings, got int"),
                                         ([5], "random-effects terms must be strings, got 5")])
def test_random_of_wrong_type(sleep, random, msg):
    with pytest.raises(FormulaError, match=re.escape(msg)):
        fit("Reaction ~ Days", sleep, random=random)


def test_groups_of_wrong_type(sleep):
    with pytest.raises(FormulaError, match="groups must be column names, got 3"):
        fit("Reaction ~ Days", sleep, groups=["Subject", 3])


def test_no_random_effects(sleep):
    with pytest.raises(DataError, match="needs at least one random-effects term"):
        fit("Reaction ~ Days", sleep)


# ----------------------------------------------------------------------------- data values
def test_string_response(sleep):
    d = sleep.assign(grade=np.where(sleep["Reaction"] > 300, "slow", "fast"))
    with pytest.raises(DataError, match=r"response 'grade' is not numeric"):
        fit("grade ~ Days", d, groups="Subject")


def test_grouping_factor_with_one_level(sleep):
    d = sleep.assign(lab="L1")
    with pytest.raises(DataError, match=r"grouping factor 'lab' of term '\(1 \| lab\)' has 1 level"):
        fit("Reaction ~ Days", d, groups=["Subject", "lab"])


def test_grouping_factor_with_as_many_levels_as_rows(sleep):
    d = sleep.assign(obs=np.arange(len(sleep)))
    with pytest.raises(DataError, match=r"grouping factor 'obs' has 180 levels for 180 observations"):
        fit("Reaction ~ Days", d, groups="obs")


def test_too_many_random_effects_for_the_data(sleep):
    # 18 subjects x 3 coefficients = 54 random effects for 36 rows
    with pytest.raises(DataError, match=r"number of observations \(=36\) <= number of random effects \(=54\)"):
        fit("Reaction ~ Days", sleep.iloc[::5], random="(1 + Days + I(Days**2) | Subject)")


def test_no_rows_left_after_dropping_missing(sleep):
    d = sleep.assign(Days=np.nan)
    with pytest.raises(DataError, match=r"no rows left after dropping rows with missing values "
                                        r"\(missing per column: \{'Days': 180\}\)"):
        fit("Reaction ~ Days", d, groups="Subject")


def test_empty_data(sleep):
    with pytest.raises(DataError, match="data has no rows"):
        fit("Reaction ~ Days", sleep.iloc[:0], groups="Subject")


@pytest.mark.parametrize("col", ["Reaction", "Days"])
def test_infinite_values(sleep, col):
    d = sleep.copy()
    d[col] = d[col].astype(float)
    d.loc[[3, 9], col] = np.inf
    with pytest.raises(DataError, match=rf"column '{col}' has 2 infinite values"):
        fit("Reaction ~ Days", d, groups="Subject")


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_infinite_values_made_by_a_transformation(sleep):
    # log(0) = -inf on the first day of every subject (18 rows)
    with pytest.raises(DataError, match=r"fixed-effects column\(s\) 'np.log\(Days\)' have non-finite values"):
        fit("Reaction ~ np.log(Days)", sleep, groups="Subject")


def test_infinite_offset(sleep):
    with pytest.raises(DataError, match="offset has 180 infinite values"):
        fit("Reaction ~ Days", sleep.assign(o=np.inf), groups="Subject", offset="o")


@pytest.mark.parametrize("data", [lambda d: d.to_dict("list"), lambda d: d.to_numpy()])
def test_data_not_a_dataframe(sleep, data):
    obj = data(sleep)
    with pytest.raises(DataError, match=rf"data must be a DataFrame \(pandas, polars, .*\), got {type(obj).__name__}"):
        fit("Reaction ~ Days", obj, groups="Subject")


# ----------------------------------------------------------------------------- weights and offset
@pytest.mark.parametrize("how", ["vector", "column"])
def test_negative_weights(sleep, how):
    w = np.ones(len(sleep))
    w[7] = -1.0
    kw = {"weights": w} if how == "vector" else {"weights": "w"}
    with pytest.raises(DataError, match="weights must be finite and non-negative"):
        fit("Reaction ~ Days", sleep.assign(w=w), groups="Subject", **kw)


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_weights_or_offset_of_wrong_length(sleep, arg):
    with pytest.raises(DataError, match=rf"{arg} has length 5 but the data have 180 rows"):
        fit("Reaction ~ Days", sleep, groups="Subject", **{arg: np.ones(5)})


def test_all_zero_weights(sleep):
    with pytest.raises(DataError, match="weights are all zero"):
        fit("Reaction ~ Days", sleep.assign(w=0.0), groups="Subject", weights="w")


def test_non_numeric_weights(sleep):
    with pytest.raises(DataError, match="weights column .w. must be numeric"):
        fit("Reaction ~ Days", sleep.assign(w="heavy"), groups="Subject", weights="w")


# ----------------------------------------------------------------------------- fitting options
@pytest.mark.parametrize("method", ["GLS", None])
def test_unknown_method(sleep, method):
    with pytest.raises(InterlaceError, match=re.escape(f"method must be 'REML' or 'ML', got {method!r}")):
        fit("Reaction ~ Days", sleep, groups="Subject", method=method)


def test_unknown_engine_names_it(sleep):
    with pytest.raises(ValueError, match="unknown engine 'nope': use 'auto', 'blocked' or 'cholmod'"):
        fit("Reaction ~ Days", sleep, groups="Subject", engine="nope")


def test_unknown_engine_is_an_interlace_error(sleep):
    with pytest.raises(InterlaceError, match="engine 'nope'"):
        fit("Reaction ~ Days", sleep, groups="Subject", engine="nope")


def test_unknown_optimizer_names_it(sleep):
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        fit("Reaction ~ Days", sleep, groups="Subject", optimizer="nope")


def test_unknown_optimizer_is_an_interlace_error(sleep):
    with pytest.raises(InterlaceError, match="optimizer 'nope'"):
        fit("Reaction ~ Days", sleep, groups="Subject", optimizer="nope")


# ----------------------------------------------------------------------------- predict
def test_predict_unseen_fixed_effect_category():
    pen = interlace.datasets.load("penicillin")
    res = fit("diameter ~ sample", pen, groups="plate")
    nd = pd.DataFrame({"sample": ["A", "Z"], "plate": ["a", "a"]})
    with pytest.raises(DataError, match=r"column 'sample' has a level not seen in fitting: .*value 'Z'"):
        res.predict(nd)


def test_predict_missing_grouping_column(sleep_fit):
    with pytest.raises(DataError, match=r"grouping column 'Subject' of term '\(Days \| Subject\)' is not in newdata"):
        sleep_fit.predict(pd.DataFrame({"Days": [0.0, 1.0]}))


def test_predict_missing_fixed_effect_column(sleep_fit):
    with pytest.raises(DataError, match=r"column 'Days' is not in newdata"):
        sleep_fit.predict(pd.DataFrame({"Subject": ["308"]}))


def test_predict_without_grouping_column_at_population_level(sleep_fit):
    # include_re=False needs no grouping column: Xβ = 251.405104848484 + 2 * 10.4672859595964
    # (lme4 fixef of lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
    p = sleep_fit.predict(pd.DataFrame({"Days": [2.0]}), include_re=False)
    np.testing.assert_allclose(p.to_numpy(), [251.405104848484 + 2 * 10.4672859595964], rtol=1e-6)


def test_predict_newdata_not_a_dataframe(sleep_fit):
    with pytest.raises(DataError, match="newdata must be a pandas DataFrame, got dict"):
        sleep_fit.predict({"Days": [1.0], "Subject": ["308"]})


# ----------------------------------------------------------------------------- warnings, not errors
def test_missing_rows_dropped_with_warning():
    d = load_case("lmer", "crossed_missing_reml")
    data = case_data(d)
    # NA counts in the file: y 75, x1 75, g2 75 (x2, g1 complete); 213 rows have at least one
    with pytest.warns(MissingDataWarning) as rec:
        res = fit("y ~ x1 + x2", data, random=["(1 | g1)", "(1 | g2)"])
    msg = str(rec[0].message)
    assert msg.startswith("213 of 1500 rows dropped for missing values")
    assert "'y': 75" in msg and "'x1': 75" in msg and "'g2': 75" in msg and "'x2'" not in msg
    assert res.n_dropped == 213 == d["na_dropped"]  # lme4: length(na.action(m))
    assert res.nobs == 1287 == d["nobs"]

    clean = data.dropna()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        ref = fit("y ~ x1 + x2", clean, random=["(1 | g1)", "(1 | g2)"])
    assert ref.n_dropped == 0
    np.testing.assert_allclose(res.fe_params, ref.fe_params, rtol=1e-10)
    np.testing.assert_allclose(res.fe_bse, ref.fe_bse, rtol=1e-10)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=1e-10)
    assert res.llf == pytest.approx(ref.llf, abs=1e-9)
    # and both are lme4's fit (R call in reference/lmer/crossed_missing_reml.json)
    np.testing.assert_allclose(res.fe_params, d["fixef"]["values"], rtol=1e-4)


def test_missing_weights_are_dropped_and_named(sleep):
    w = np.ones(len(sleep))
    w[[0, 5, 17]] = np.nan
    with pytest.warns(MissingDataWarning, match=r"3 of 180 rows dropped .*\{'weights': 3\}"):
        res = fit("Reaction ~ Days", sleep, groups="Subject", weights=w)
    assert res.n_dropped == 3 and res.nobs == 177


def test_collinear_column_dropped_like_lme4(sleep):
    d = sleep.assign(x2=2.0 * sleep["Days"])
    with pytest.warns(RankDeficiencyWarning, match=r"dropping 1 column / coefficient: x2$"):
        res = fit("Reaction ~ Days + x2", d, groups="Subject")
    ref = fit("Reaction ~ Days", sleep, groups="Subject")
    assert list(res.fe_params.index) == ["Intercept", "Days"]
    np.testing.assert_allclose(res.fe_params, ref.fe_params, rtol=1e-10)
    np.testing.assert_allclose(res.fe_bse, ref.fe_bse, rtol=1e-10)
    assert res.llf == pytest.approx(ref.llf, abs=1e-9)
    # R: d <- sleepstudy; d$x2 <- 2 * d$Days; fixef(lmer(Reaction ~ Days + x2 + (1|Subject), d))
    #    (Intercept) 251.40510  Days 10.46729   -- x2 dropped
    np.testing.assert_allclose(res.fe_params, [251.40510, 10.46729], atol=5e-6)


def test_collinear_column_dropped_is_the_later_one(sleep):
    d = sleep.assign(x2=2.0 * sleep["Days"])
    with pytest.warns(RankDeficiencyWarning, match=r"coefficient: Days$"):
        res = fit("Reaction ~ x2 + Days", d, groups="Subject")
    # R: fixef(lmer(Reaction ~ x2 + Days + (1|Subject), d))  ->  (Intercept) 251.405105  x2 5.233643
    assert list(res.fe_params.index) == ["Intercept", "x2"]
    np.testing.assert_allclose(res.fe_params, [251.405105, 5.233643], atol=5e-7)


def test_rank_deficiency_with_factors_follows_r_column_order(sleep):
    f = np.tile(["a", "b", "c"], 60)
    d = sleep.assign(f=f, x3=sleep["Days"] + (f == "b"))
    # R: d$f <- factor(rep(c("a","b","c"), 60)); d$x3 <- d$Days + (d$f == "b")
    #    fixef(lmer(Reaction ~ x3 + Days + f + (1|Subject), d))   # drops fb (R's column order)
    #    (Intercept) 251.103917  x3 -1.202524  Days 11.669810  fc 2.106088
    with pytest.warns(RankDeficiencyWarning, match=r"coefficient: f\[T.b\]$"):
        res = fit("Reaction ~ x3 + Days + f", d, groups="Subject")
    got = res.fe_params
    assert sorted(got.index) == sorted(["Intercept", "x3", "Days", "f[T.c]"])
    np.testing.assert_allclose(got[["Intercept", "x3", "Days", "f[T.c]"]],
                               [251.103917, -1.202524, 11.669810, 2.106088], atol=5e-6)
    # R: fixef(lmer(Reaction ~ Days + f + g + (1|Subject), d)) with g a copy of f drops gb, gc
    #    (Intercept) 251.103917  Days 10.467286  fb -1.202524  fc 2.106088
    with pytest.warns(RankDeficiencyWarning, match=r"dropping 2 columns / coefficients: g\[T.b\], g\[T.c\]$"):
        res = fit("Reaction ~ Days + f + g", d.assign(g=f), groups="Subject")
    np.testing.assert_allclose(res.fe_params[["Intercept", "Days", "f[T.b]", "f[T.c]"]],
                               [251.103917, 10.467286, -1.202524, 2.106088], atol=5e-6)


def test_singular_fit_dyestuff2():
    d = load_case("lmer", "dyestuff2_reml")
    with pytest.warns(SingularFitWarning, match="boundary"):
        res = fit("Yield ~ 1 + (1|Batch)", interlace.datasets.load("dyestuff2"))
    assert res.is_singular is True and d["is_singular"] is True  # lme4: isSingular(m) TRUE
    assert res.theta[0] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(res.sigma, d["sigma"], rtol=1e-4)


def test_convergence_warning_with_tiny_budget(sleep):
    with pytest.warns(ConvergenceWarning):
        res = fit("Reaction ~ Days", sleep, random=["(Days | Subject)"], maxiter=5)
    assert res.converged is False
    assert res.opt_summary.n_evals <= 5
    assert any("converge" in m for m in res.opt_summary.messages)
