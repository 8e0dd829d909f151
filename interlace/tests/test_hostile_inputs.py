"""Issue 19's list of bad or degenerate inputs, one test (or more) per item.

Each item gets the answer R gives (lme4 references made by
``reference/make_hostile_reference.R``, in ``reference/hostile/``), a hand-derived one,
or an :class:`~interlace.errors.InterlaceError` whose message names the column, term or
value at fault.  The σ → 0 design (a response constant within groups) and the other
known-answer designs are in ``test_degenerate_designs.py``; data frames other than pandas,
nullable dtypes, duplicated names and Series alignment in ``test_input_frames.py``.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
import interlace.api as smf
from interlace import clmm, coxme, fit, glmer
from interlace.errors import (
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    InterlaceError,
)
from interlace.tests.conftest import REF, ROOT

HOSTILE = REF / "hostile"


def ref(case: str) -> dict:
    return json.loads((HOSTILE / f"{case}.json").read_text())


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def assert_lmm(res, r: dict, names: list[str], tol: float = 1e-4) -> None:
    """fixed effects, SEs, θ and σ against an lme4 reference (the house LMM tolerance)."""
    assert rel(res.fe_params[names], list(r["fixef"].values())) < tol
    assert rel(res.fe_bse[names], list(r["se"].values())) < tol
    assert rel(res.theta, r["theta"]) < tol
    assert rel(np.sqrt(res.scale), r["sigma"]) < tol


# ----------------------------------------------------------------------------- raw errors → InterlaceError
def test_as_many_fixed_effects_as_rows(sleep):
    """p = n left nothing for the variances (was a ZeroDivisionError in objective/lmm.py)."""
    d = sleep.head(20).assign(k=[f"r{i}" for i in range(20)])
    with pytest.raises(DataError, match=r"the fixed effects have 20 coefficients for 20 observations"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rank-deficiency warning comes first
        fit("Reaction ~ k", d, groups="Subject")


def test_datetime_column_is_refused_naming_it(sleep):
    """A datetime in the formula made one coefficient per date (then the ZeroDivisionError)."""
    d = sleep.assign(when=pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(sleep)), "D"))
    with pytest.raises(DataError, match=r"column 'when' holds dates or times .*\(data\['when'\] - data\['when'\]"):
        fit("Reaction ~ when", d, groups="Subject")


def test_datetime_grouping_factor_is_fine(sleep):
    d = sleep.assign(day=pd.Timestamp("2024-01-01") + pd.to_timedelta(sleep.Days, "D"))
    res = fit("Reaction ~ 1", d, groups="day")
    assert res.model.random_effects_structure.terms[0].nlevels == 10


@pytest.mark.parametrize("col", ["Reaction", "Days"])
def test_complex_column_is_refused(sleep, col):
    d = sleep.assign(**{col: sleep[col] + 1j})
    with pytest.raises(DataError, match=rf"column '{col}' holds complex numbers"):
        fit("Reaction ~ Days", d, groups="Subject")


def test_complex_weights_refused(sleep):
    with pytest.raises(DataError, match="weights holds complex numbers"):
        fit("Reaction ~ Days", sleep, groups="Subject", weights=np.ones(len(sleep)) + 0j)


@pytest.mark.parametrize("groups", [3, 2.5, {"Subject": 1}])
def test_groups_of_the_wrong_type(sleep, groups):
    if isinstance(groups, dict):  # a dict iterates over its keys: a list of column names
        assert fit("Reaction ~ Days", sleep, groups=groups).nobs == 180
        return
    with pytest.raises(FormulaError, match=rf"groups must be a column name or a list of column names, "
                                           rf"got {type(groups).__name__} {groups}"):
        fit("Reaction ~ Days", sleep, groups=groups)


def test_mixedlm_groups_scalar(sleep):
    with pytest.raises(DataError, match="groups must be a column name or a vector with one value per row, "
                                        "got a scalar 3"):
        smf.mixedlm("Reaction ~ Days", sleep, groups=3)


def test_cox_covariate_ordering_the_events():
    """x sorts the event times: coxph's coefficient is infinite (R: 'Ran out of iterations and did not
    converge'; coxme returns se 0); was RuntimeError('no starting estimate was successful')."""
    n = 60
    d = pd.DataFrame({"t": np.arange(1, n + 1, dtype=float), "s": 1, "x": -np.arange(n, dtype=float),
                      "z": np.random.default_rng(0).normal(size=n), "g": np.arange(n) % 6})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # and no numpy warnings on the way
        with pytest.raises(DataError, match=r"increases without bound in the coefficient of 'x'"):
            coxme("Surv(t, s) ~ x + z + (1 | g)", d)


def test_parquet_files_disagree_on_a_type(sleep, tmp_path):
    pytest.importorskip("pyarrow")
    from interlace.scale import fit_parquet

    sleep.iloc[:90].to_parquet(tmp_path / "a.parquet")
    sleep.iloc[90:].assign(Days=sleep.Days.iloc[90:].astype(str)).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"column 'Days' has type int64 in '.*a\.parquet' but .*string in "
                                        r"'.*b\.parquet'"):
        fit_parquet("Reaction ~ Days + (1 | Subject)", tmp_path)


def test_parquet_ints_and_floats_mix(sleep, tmp_path):
    pytest.importorskip("pyarrow")
    from interlace.scale import fit_parquet

    sleep.iloc[:90].to_parquet(tmp_path / "a.parquet")
    sleep.iloc[90:].assign(Days=sleep.Days.iloc[90:].astype(float)).to_parquet(tmp_path / "b.parquet")
    res = fit_parquet("Reaction ~ Days + (1 | Subject)", tmp_path)
    assert rel(res.fe_params, fit("Reaction ~ Days", sleep, groups="Subject").fe_params) < 1e-8


def test_boolean_response_is_zero_one(sleep):
    """lme4 fits a logical response as 0/1 (was 'expands to 2 columns')."""
    r = ref("logical_response")
    res = fit("hi ~ Days", sleep.assign(hi=sleep.Reaction > 300), groups="Subject")
    assert_lmm(res, r, ["Intercept", "Days"])


@pytest.mark.parametrize("col", ["Reaction", "Days"])
def test_numbers_stored_as_objects(sleep, col):
    """Numbers in an object column are numbers (the hint pointed to glmer; a predictor became a factor)."""
    res = fit("Reaction ~ Days", sleep.assign(**{col: sleep[col].astype(object)}), groups="Subject")
    ref_fit = fit("Reaction ~ Days", sleep, groups="Subject")
    np.testing.assert_allclose(res.params, ref_fit.params, rtol=1e-12)
    assert list(res.fe_params.index) == ["Intercept", "Days"]


@pytest.mark.parametrize("formula", ['Reaction ~ Q("my x")', "Reaction ~ `my x`",
                                     "Reaction ~ `my x` + (`my x` | Subject)"])
def test_column_name_with_a_space(sleep, formula):
    d = sleep.rename(columns={"Days": "my x"})
    res = fit(formula, d, groups=None if "|" in formula else "Subject")
    ref_fit = fit(formula.replace('Q("my x")', "Days").replace("`my x`", "Days"), sleep,
                  groups=None if "|" in formula else "Subject")
    np.testing.assert_allclose(res.params, ref_fit.params, rtol=1e-10)


def test_backtick_grouping_factor(sleep):
    d = sleep.rename(columns={"Subject": "the subject"})
    res = fit("Reaction ~ Days + (1 | `the subject`)", d)
    np.testing.assert_allclose(res.params, fit("Reaction ~ Days", sleep, groups="Subject").params, rtol=1e-10)


def test_quoted_column_missing(sleep):
    with pytest.raises(DataError, match=r"column 'my x' quoted in formula .* is not in the data"):
        fit('Reaction ~ Q("my x")', sleep, groups="Subject")


def test_offset_term_in_the_formula(sleep):
    r = ref("offset_term")
    res = fit("Reaction ~ Days + offset(Days)", sleep, groups="Subject")
    assert_lmm(res, r, ["Intercept", "Days"])
    # the same as offset= given as an argument
    np.testing.assert_allclose(res.params, fit("Reaction ~ Days", sleep, groups="Subject",
                                               offset=sleep.Days.to_numpy(float)).params, rtol=1e-12)
    with pytest.raises(DataError, match="the model has an offset: pass offset= for newdata"):
        res.predict(sleep.head(2))


def test_offset_term_in_glmer():
    cbpp = interlace.datasets.load("cbpp").assign(period=lambda d: d.period.astype(str))
    lsize = np.log(cbpp["size"].to_numpy(float))
    a = glmer("incidence ~ period + offset(np.log(size)) + (1 | herd)", cbpp, family="poisson")
    b = glmer("incidence ~ period + (1 | herd)", cbpp, family="poisson", offset=lsize)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-10)


@pytest.mark.parametrize("call", ["clmm", "mixedlm"])
def test_offset_term_where_there_is_no_offset(sleep, call):
    with pytest.raises(FormulaError, match=r"offset\(\) in formula .* is not available here"):
        if call == "clmm":
            clmm("Days ~ Reaction + offset(Reaction) + (1 | Subject)", sleep)
        else:
            smf.mixedlm("Reaction ~ offset(Days)", sleep, groups="Subject").fit()


def test_poly_in_the_formula(sleep):
    """R's orthogonal polynomials: lme4's estimates, and its predictions for new Days."""
    r = ref("poly2")
    res = fit("Reaction ~ poly(Days, 2)", sleep, groups="Subject")
    names = ["Intercept", "poly(Days, 2)[0]", "poly(Days, 2)[1]"]
    assert_lmm(res, r, names)
    new = pd.DataFrame({"Days": r["new_days"], "Subject": [308, 308]})
    assert rel(res.predict(new, include_re=False), r["predict_fixed"]) < 1e-6


def test_poly_degree_too_high(sleep):
    with pytest.raises(FormulaError, match=r"degree 12 must be less than the number of distinct values \(10\)"):
        fit("Reaction ~ poly(Days, 12)", sleep, groups="Subject")


# ----------------------------------------------------------------------------- R warns, so do we
def test_binomial_proportion_without_weights():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"p": rng.uniform(size=120).round(3), "x": rng.normal(size=120),
                      "g": np.repeat(np.arange(12), 10)})
    with pytest.warns(DataWarning, match=r"non-integer #successes in a binomial glm! \(response 'p': 0\.637"):
        quiet_glmer("p ~ x + (1 | g)", d)


def test_binomial_non_integer_successes_with_weights():
    d = pd.DataFrame({"p": np.tile([0.5, 0.25, 0.4], 20), "n": 3.0, "g": np.repeat(np.arange(12), 5)})
    with pytest.warns(DataWarning, match=r"0\.5 × weight 3 = 1\.5 successes"):
        quiet_glmer("p ~ 1 + (1 | g)", d, weights="n")


def test_binomial_integer_successes_do_not_warn():
    d = pd.DataFrame({"p": np.tile([1 / 3, 2 / 3, 0.0], 20), "n": 3.0, "g": np.repeat(np.arange(12), 5)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        quiet_glmer("p ~ 1 + (1 | g)", d, weights="n")


def test_poisson_non_integer_counts():
    d = pd.DataFrame({"y": np.tile([0.5, 2.0, 3.0], 20), "g": np.repeat(np.arange(12), 5)})
    with pytest.warns(DataWarning, match=r"non-integer counts in the poisson response 'y' \(e\.g\. 0\.5\)"):
        quiet_glmer("y ~ 1 + (1 | g)", d, family="poisson")


def quiet_glmer(*args, **kw):
    """glmer with only the DataWarnings left to check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", interlace.SingularFitWarning)
        return glmer(*args, **kw)


def test_as_many_random_effects_as_observations():
    """lme4: 'number of observations (=40) <= number of random effects (=40) for term (1 + x | g)'."""
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40), "g": np.repeat(np.arange(20), 2)})
    with pytest.raises(DataError, match=r"number of observations \(=40\) <= number of random effects \(=40\) "
                                        r"for term '\(1 \+ x \| g\)'"):
        fit("y ~ x + (1 + x | g)", d)


def test_predict_with_infinite_newdata(sleep):
    res = fit("Reaction ~ Days", sleep, random="(Days | Subject)")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"column\(s\) 'Days' of the model matrix have infinite values in newdata"):
            res.predict(pd.DataFrame({"Days": [np.inf, 1.0], "Subject": [308, 308]}))


def test_zero_weights(sleep):
    """Rows of weight 0 carry no information: the fit is lme4's limit of a tiny weight (lme4 itself,
    given exact zeros, stops at its start: REML criterion Inf), the log-likelihood is -inf
    (Σ log w), and no numpy warning or spurious convergence warning is issued."""
    r = ref("zero_weights_limit")
    w = np.ones(len(sleep))
    w[np.asarray(r["zero_rows"]) - 1] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit("Reaction ~ Days", sleep, groups="Subject", weights=w)
    assert_lmm(res, r, ["Intercept", "Days"])
    assert res.llf == -np.inf and res.converged


def test_constant_response(sleep):
    """lme4 'fits' it with REML criterion -Inf and every SE 0; nothing is estimable: refused, naming it."""
    with pytest.raises(DataError, match=r"response 'y' is an exact linear function of the fixed effects "
                                        r"\(e\.g\. constant\)"):
        fit("y ~ Days", sleep.assign(y=7.0), groups="Subject")
    with pytest.raises(DataError, match=r"response 'y' is an exact linear function"):
        fit("y ~ Days", sleep.assign(y=3 + 2 * sleep.Days), groups="Subject")


# ----------------------------------------------------------------------------- numerically fragile
def test_poisson_counts_near_1e12():
    """lme4 stops ('PIRLS step-halvings failed'); glmmTMB's Laplace fit is the reference.  Was llf
    −8.1e15 against −1.07e14 (a far worse optimum).  The integrated likelihood is flat in θ at the
    rounding of these counts (~1e-3 in the log-likelihood), so θ is compared at 1e-2 and the
    log-likelihood at the rounding of Σ log y! (≈ 0.1 here)."""
    r = ref("poisson_1e12")
    d = pd.read_csv(ROOT / "interlace/tests/reference/data/poisson_1e12.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the finite-difference Hessian is noise here
        res = glmer("y ~ x + (1 | g)", d, family="poisson")
    assert rel(res.fe_params, list(r["fixef"].values())) < 1e-4
    assert rel(res.theta, r["theta"]) < 1e-2
    assert abs(res.llf - r["loglik"]) < 0.1
    # and interlace's own objective is at least as high at its estimate as at glmmTMB's
    at_ref = res.model.loglike(np.r_[r["theta"], list(r["fixef"].values())])
    assert res.llf >= at_ref - 1e-6


def test_clmm_on_a_continuous_response():
    """ordinal's clmm ran 96 s on 200 distinct values and warned; refused at once, naming the response."""
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"y": rng.normal(size=400).round(3), "x": rng.normal(size=400), "g": np.repeat(np.arange(40), 10)})
    with pytest.raises(DataError, match=r"response 'y' holds \d+ distinct non-integer numbers: it looks continuous"):
        clmm("y ~ x + (1 | g)", d)


def test_clmm_many_integer_categories_warn():
    from interlace.models.clmm import ordinal_codes

    with pytest.warns(DataWarning, match=r"response 'y' has 40 categories: 39 thresholds"):
        ordinal_codes(pd.Series(np.arange(80) % 40, name="y"))


# ----------------------------------------------------------------------------- formulas are code
def test_security_page_exists():
    """Formulas are evaluated as Python (patsy, as statsmodels; R evaluates them too): the docs say so."""
    page = (ROOT / "docs" / "security.md").read_text()
    for phrase in ("Formulas are code", "untrusted", "pickle", "Surv(", "network"):
        assert phrase in page
    assert "security.md" in (ROOT / "mkdocs.yml").read_text()


def test_errors_are_interlace_errors():
    for cls in (DataError, FormulaError):
        assert issubclass(cls, InterlaceError)
    assert issubclass(DataWarning, UserWarning)
