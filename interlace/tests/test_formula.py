"""Formula splitting and random-term expansion, against lme4's rules.

lme4's expansions (``lme4::findbars``/``expandDoubleVerts``, R 4.2.2, lme4 1.1-31):

* ``(x || g)``        -> ``(1 | g) + (0 + x | g)``
* ``(1 + x + z || g)`` -> ``(1 | g) + (0 + x | g) + (0 + z | g)``
* ``(1 | a/b)``       -> ``(1 | a) + (1 | a:b)``
* ``(1 | a/b/c)``     -> ``(1 | a) + (1 | a:b) + (1 | a:b:c)``
  (``lme4::findbars(y ~ (1 | a/b/c))`` gives ``1 | c:(b:a)``, ``1 | b:a``, ``1 | a``)
* ``(x * z || g)``    -> ``(1 | g) + (0 + x | g) + (0 + z | g) + (0 + x:z | g)`` (``findbars``)
* ``(1 | a:b)``       -> one term grouped by the interaction

On data, an expanded shorthand must give exactly the fit of the spelled-out terms,
and both must be lme4's fit (reference/lmer/pastes_reml.json and
sleepstudy_uncorr.json).
"""
from __future__ import annotations

import numpy as np
import pytest

import interlace
from interlace.errors import FormulaError
from interlace.formula import RandomTermSpec, model_terms, parse_random, parse_random_term, split_formula
from interlace.tests.conftest import load_case


def _spec(lhs, *group, source):
    return RandomTermSpec(lhs=lhs, group=tuple(group), source=source)


# ----------------------------------------------------------------------------- split_formula
@pytest.mark.parametrize("formula, fixed, bars", [
    ("y ~ x + (1 + x | g)", "y ~ x", ["(1 + x | g)"]),
    ("y ~ (1|g) + x + (0+x|h)", "y ~ x", ["(1|g)", "(0+x|h)"]),
    ("y ~ (1|g)", "y ~ 1", ["(1|g)"]),
    ("y~(1|g)+(1|h)", "y ~ 1", ["(1|g)", "(1|h)"]),
    ("y ~ 0 + x + (x || g)", "y ~ 0 + x", ["(x || g)"]),
    ("y ~ x * z", "y ~ x * z", []),
    ("log(y) ~ I(x**2) + (1|g)", "log(y) ~ I(x**2)", ["(1|g)"]),
])
def test_split_formula(formula, fixed, bars):
    assert split_formula(formula) == (fixed, bars)


@pytest.mark.parametrize("formula, msg", [
    ("y x", "exactly one '~'"),
    ("y ~ x ~ z", "exactly one '~'"),
    (" ~ x", "no response"),
    ("y ~ x + (1|g", "unbalanced '('"),
    ("y ~ x + 1|g)", "unbalanced ')'"),
    ("y ~ x + 1|g", "'|' outside parentheses"),
    ("y ~ x +", "ends with an operator"),
])
def test_split_formula_errors(formula, msg):
    with pytest.raises(FormulaError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        split_formula(formula)


def test_split_formula_not_a_string():
    with pytest.raises(FormulaError, match="formula must be a string, got int"):
        split_formula(3)


# ----------------------------------------------------------------------------- parse_random_term
@pytest.mark.parametrize("term, expected", [
    ("(1|g)", [("1", ("g",))]),
    ("(1 + x | g)", [("1 + x", ("g",))]),
    ("(x|g)", [("1 + x", ("g",))]),              # lme4: implicit intercept
    ("(0 + x | g)", [("0 + x", ("g",))]),
    ("(-1 + x | g)", [("0 + x", ("g",))]),
    ("(x || g)", [("1", ("g",)), ("0 + x", ("g",))]),
    ("(1 + x + z || g)", [("1", ("g",)), ("0 + x", ("g",)), ("0 + z", ("g",))]),
    ("(0 + x || g)", [("0 + x", ("g",))]),
    ("(x * z || g)", [("1", ("g",)), ("0 + x", ("g",)), ("0 + z", ("g",)), ("0 + x:z", ("g",))]),
    ("(1 | a:b)", [("1", ("a", "b"))]),
    # nested factors inside out, as lme4's expandSlash (levels read "b-level:a-level")
    ("(1 | a/b)", [("1", ("a",)), ("1", ("b", "a"))]),
    ("(1 | a/b/c)", [("1", ("a",)), ("1", ("b", "a")), ("1", ("c", "b", "a"))]),
    # R parses a:b/c as (a:b)/c = a:b + c:(a:b) (lme4 1.1-31's findbars mangles this one)
    ("(1 | a:b/c)", [("1", ("a", "b")), ("1", ("c", "a", "b"))]),
    ("(1 | a/b:c)", [("1", ("a",)), ("1", ("b", "c", "a"))]),
    ("(1 + x | a/b)", [("1 + x", ("a",)), ("1 + x", ("b", "a"))]),
    ("1 | g", [("1", ("g",))]),                  # parentheses optional here
])
def test_parse_random_term(term, expected):
    specs = parse_random_term(term)
    assert [(s.lhs, s.group) for s in specs] == expected
    assert all(s.source == term.strip() for s in specs)


def test_spec_names():
    # lme4::findbars: c:(b:a), b:a, a; d:(c:(b:a)) for four levels; b:c:a for a/b:c
    assert [s.name for s in parse_random_term("(1 | a/b/c)")] == ["a", "b:a", "c:(b:a)"]
    assert parse_random_term("(1 | a/b/c/d)")[-1].name == "d:(c:(b:a))"
    assert [s.name for s in parse_random_term("(1 | a/b:c)")] == ["a", "b:c:a"]
    assert [s.name for s in parse_random_term("(1 | a:b)")] == ["a:b"]


def test_parse_random_accepts_one_string_with_several_terms():
    assert parse_random("(1|a) + (0 + x|a)") == [_spec("1", "a", source="(1|a)"),
                                                 _spec("0 + x", "a", source="(0 + x|a)")]
    assert parse_random("(1|a)") == [_spec("1", "a", source="(1|a)")]
    assert parse_random(None) == []


# ----------------------------------------------------------------------------- model_terms
def test_model_terms_full_formula():
    fixed, specs = model_terms("y ~ x + (1 + x | g)")
    assert fixed == "y ~ x"
    assert specs == [_spec("1 + x", "g", source="(1 + x | g)")]


def test_model_terms_groups_string_and_list():
    assert model_terms("y ~ x", groups="g") == ("y ~ x", [_spec("1", "g", source="(1 | g)")])
    fixed, specs = model_terms("y ~ x", groups=["a", "b"])
    assert fixed == "y ~ x"
    assert specs == [_spec("1", "a", source="(1 | a)"), _spec("1", "b", source="(1 | b)")]


def test_model_terms_order_groups_random_formula():
    fixed, specs = model_terms("y ~ x + (1|c)", groups=["a"], random="(0+x|a) + (1|b)")
    assert fixed == "y ~ x"
    assert [(s.lhs, s.name) for s in specs] == [("1", "a"), ("0 + x", "a"), ("1", "b"), ("1", "c")]


@pytest.mark.parametrize("formula, kwargs", [
    ("y ~ x + (1|g)", {"groups": "g"}),
    ("y ~ x", {"groups": ["g", "g"]}),
    ("y ~ x", {"random": ["(1 + x | g)", "(1+x|g)"]}),
    ("y ~ x", {"random": ["(x | g)", "(1 + x | g)"]}),       # same term after lme4's implicit intercept
    ("y ~ x", {"random": ["(1 | a/b)", "(1 | a)"]}),         # (1|a) comes twice after expansion
    ("y ~ x + (x || g)", {"random": ["(1 | g)"]}),
])
def test_model_terms_rejects_duplicates(formula, kwargs):
    with pytest.raises(FormulaError, match="is given twice"):
        model_terms(formula, **kwargs)


def test_model_terms_allows_distinct_terms_on_one_factor():
    _, specs = model_terms("y ~ x", random=["(1 | g)", "(0 + x | g)"])
    assert [(s.lhs, s.group) for s in specs] == [("1", ("g",)), ("0 + x", ("g",))]


# ----------------------------------------------------------------------------- on data
def _same_fit(a, b):
    np.testing.assert_allclose(a.fe_params, b.fe_params, rtol=1e-10)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-10, atol=1e-12)
    assert a.llf == pytest.approx(b.llf, abs=1e-9)
    assert a.ngroups == b.ngroups
    for k, v in a.random_effects.items():
        np.testing.assert_allclose(np.asarray(v), np.asarray(b.random_effects[k]), rtol=1e-8, atol=1e-10)


def test_nested_shorthand_equals_spelled_out_terms():
    d = load_case("lmer", "pastes_reml")  # lmer(strength ~ 1 + (1 | batch/cask), data = Pastes)
    pastes = interlace.datasets.load("pastes")
    short = interlace.fit("strength ~ 1 + (1 | batch/cask)", pastes)
    long = interlace.fit("strength ~ 1", pastes, random=["(1 | batch)", "(1 | cask:batch)"])
    _same_fit(short, long)
    # lme4's names and level labels: cask:batch, levels a:A (cask a of batch A)
    assert short.ngroups == {"cask:batch": 30, "batch": 10}
    assert list(short.random_effects["cask:batch"].index[:3]) == d["ranef"]["cask:batch"]["levels"][:3]
    assert short.objective == pytest.approx(d["objective"], abs=1e-4)
    np.testing.assert_allclose(short.fe_params, d["fixef"]["values"], rtol=1e-6)


def test_double_bar_equals_uncorrelated_terms():
    d = load_case("lmer", "sleepstudy_uncorr")  # lmer(Reaction ~ Days + (Days || Subject), sleepstudy)
    ss = interlace.datasets.load("sleepstudy")
    short = interlace.fit("Reaction ~ Days + (Days || Subject)", ss)
    long = interlace.fit("Reaction ~ Days", ss, random=["(1 | Subject)", "(0 + Days | Subject)"])
    _same_fit(short, long)
    assert short.objective == pytest.approx(d["objective"], abs=1e-4)
    np.testing.assert_allclose(short.fe_params, d["fixef"]["values"], rtol=1e-6)
    np.testing.assert_allclose(short.theta, d["theta"], rtol=1e-4)


def test_formula_terms_equal_random_argument():
    ss = interlace.datasets.load("sleepstudy")
    a = interlace.fit("Reaction ~ Days + (Days | Subject)", ss)
    b = interlace.fit("Reaction ~ Days", ss, random="(Days | Subject)")
    _same_fit(a, b)
    d = load_case("lmer", "sleepstudy_reml")
    assert a.objective == pytest.approx(d["objective"], abs=1e-4)
