"""Property-based hostile inputs (Hypothesis): every fitting function, generated frames and formulas.

The property, for ``fit`` (REML and ML), ``glmer`` (binomial and Poisson), ``clmm``,
``coxme``, the MixedLM drop-in and the chunked (parquet-style) path:

* the call either returns a fit whose estimates are finite numbers and whose checks ran
  (an optimizer record with its check messages), or raises an
  :class:`~interlace.errors.InterlaceError` (any subclass);
* it never raises another exception type;
* the only warnings are interlace's documented ones (``ConvergenceWarning``,
  ``SingularFitWarning``, ``MissingDataWarning``, ``RankDeficiencyWarning``,
  ``DataWarning``): no numpy ``RuntimeWarning``, no pandas warning;
* the input frame and any weights/offset vector are unchanged afterwards;
* it returns within :data:`TIME_LIMIT` seconds (a SIGALRM watchdog, so a hang fails
  instead of blocking the run).

Generated frames mix dtypes (float, int, bool, pandas' nullable ``Int64``/``Float64``/
``boolean``, categorical, strings, numbers stored as objects, datetimes, complex),
special values (NaN, ±inf, None/``pd.NA``, 1e300, constants), odd and duplicated column
names, empty and one-row frames, constant and separated responses; formulas come from
templates (fixed terms, random intercepts and slopes, ``||``, nesting, ``C()``, ``np.log``,
``poly()``, ``offset()``, backtick-quoted names) and from random token strings.

Profiles (registered in ``conftest.py``): ``ci`` (the default: derandomized, so every run
tries the same examples; 60 per test, about two
minutes for the module) and ``thorough`` (2000 examples per test, random seeds; run it
with ``INTERLACE_HYPOTHESIS_PROFILE=thorough python3 -m pytest
interlace/tests/test_hypothesis_inputs.py``).
"""
from __future__ import annotations

import keyword
import signal
import string
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import interlace  # noqa: E402
import interlace.api as smf  # noqa: E402
from interlace.errors import (  # noqa: E402
    ConvergenceWarning,
    DataWarning,
    InterlaceError,
    MissingDataWarning,
    RankDeficiencyWarning,
    SingularFitWarning,
)

#: seconds one generated call may take before it counts as a hang
TIME_LIMIT = 60
#: warnings a fit may issue (the documented ones)
ALLOWED_WARNINGS = (ConvergenceWarning, SingularFitWarning, MissingDataWarning, RankDeficiencyWarning, DataWarning)

# ----------------------------------------------------------------------------- columns
NAMES = ["y", "x", "z", "g", "h", "w", "t", "s", "my x", "x.1", "class", "offset", "poly", "np", "C", "ä",
         "Intercept", "1x", "a-b"]
KINDS = ["float"] * 14 + ["int"] * 4 + ["bool", "Int64", "Float64", "boolean", "category", "str",
                                       "object-num", "const"]
#: dtypes no model can use in a formula (a tenth of the columns)
EXOTIC = ["datetime", "complex"]


def rarely(draw, k: int) -> bool:
    """True about once in k + 1 draws (not on Hypothesis's favourite value 0, which it draws far
    more often than uniformly)."""
    return draw(st.integers(0, k)) == k // 2 + 1 if k > 1 else draw(st.integers(0, k)) == k


@dataclass
class Column:
    kind: str
    specials: list = field(default_factory=list)  # (row, value) pairs written over the drawn values
    levels: int = 4


def make_column(col: Column, n: int, rng: np.random.Generator) -> pd.Series:
    """A column of ``n`` values of the given kind (specials applied where the dtype can hold them)."""
    k = col.kind
    lev = max(col.levels, 1)
    if k == "float":
        v = rng.normal(size=n)
    elif k == "int":
        v = rng.integers(0, lev, size=n)
    elif k == "bool":
        v = rng.integers(0, 2, size=n).astype(bool)
    elif k == "const":
        v = np.full(n, 3.0)
    elif k == "Int64":
        v = pd.array(rng.integers(0, lev, size=n), dtype="Int64")
    elif k == "Float64":
        v = pd.array(rng.normal(size=n), dtype="Float64")
    elif k == "boolean":
        v = pd.array(rng.integers(0, 2, size=n).astype(bool), dtype="boolean")
    elif k == "category":
        v = pd.Categorical([f"L{i}" for i in rng.integers(0, lev, size=n)])
    elif k == "ordinal":  # an ordered categorical with every level present when the rows allow
        codes = rng.permutation(np.arange(n) % max(lev, 3))
        v = pd.Categorical.from_codes(codes, [f"c{i}" for i in range(max(lev, 3))], ordered=True)
    elif k == "str":
        v = np.array([f"s{i}" for i in rng.integers(0, lev, size=n)], dtype=object)
    elif k == "object-num":
        v = np.array([int(i) if i % 2 else float(i) / 2 for i in rng.integers(0, 9, size=n)], dtype=object)
    elif k == "datetime":
        v = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 30, size=n), "D")
    elif k == "complex":
        v = rng.normal(size=n) + 1j * rng.normal(size=n)
    else:  # pragma: no cover - KINDS is closed
        raise AssertionError(k)
    s = pd.Series(v)
    for row, value in col.specials:
        if n and k not in ("datetime",):
            i = row % n
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s.iloc[i] = value
            except Exception:  # noqa: BLE001 - a special the dtype cannot hold (1e300 in Int64) is skipped
                pass
    return s


SPECIAL_VALUES = [np.nan, np.inf, -np.inf, None, 1e300, -1e300, 0.0, 1e-300]


@st.composite
def columns(draw, kinds=KINDS) -> Column:
    kind = draw(st.sampled_from(EXOTIC if rarely(draw, 9) else kinds))
    specials = []
    if rarely(draw, 5):  # a sixth of the columns get special values
        specials = draw(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(SPECIAL_VALUES)), min_size=1,
                                 max_size=2))
    levels = draw(st.integers(1, 6) if rarely(draw, 9) else st.integers(2, 6))
    return Column(kind, specials, levels)


@dataclass
class Case:
    """One generated call: the frame, the function and its arguments."""

    fn: str
    frame: pd.DataFrame
    formula: str
    kwargs: dict

    def __repr__(self) -> str:  # what Hypothesis prints for a failing example
        with pd.option_context("display.max_rows", 60, "display.width", 200):
            return (f"Case(fn={self.fn!r}, formula={self.formula!r}, kwargs={self.kwargs!r},\n"
                    f"dtypes={dict(self.frame.dtypes.astype(str))},\nframe=\n{self.frame!r})")


def quote(name: str) -> str:
    """A column name as a formula term (backticks when it is not an identifier, or a keyword)."""
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"`{name}`"


FIXED = ["{x}", "1", "{x} + {z}", "{x} * {z}", "C({x})", "np.log({x})", "poly({x}, 2)", "{x} + offset({z})",
         "0 + {x}", "I({x} ** 2)", "{x}:{z}", "{x} + {x}"]
RANDOM = ["(1 | {g})", "({x} | {g})", "({x} || {g})", "(1 | {g}/{h})", "(1 | {g}:{h})", "(1 | {g}) + (1 | {h})",
          "(0 + {x} | {g})", "(1 | {x})"]
TOKENS = ["~", "(", ")", "|", "||", "+", "-", "*", "/", ":", "1", "0", "y", "x", "g", "C(", "np.log(", "**", ",",
          " ", "I(", "`my x`", "offset(", "poly("]


@st.composite
def formulas(draw, response: str, names: dict, with_random: bool = True) -> str:
    """A formula from templates over the frame's columns (sometimes over missing ones), or random tokens."""
    if rarely(draw, 29):
        return "".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12)))
    q = {k: quote(v) for k, v in names.items()}
    fixed = draw(st.sampled_from(FIXED)).format(**q)
    f = f"{response} ~ {fixed}"
    if with_random and draw(st.booleans()):
        f += " + " + draw(st.sampled_from(RANDOM)).format(**q)
    return f


RESPONSE_KINDS = {
    "lmm": ["float"] * 12 + ["int", "const", "Float64", "object-num", "bool", "str"],
    "binomial": ["bool", "bool", "int", "boolean", "float", "str", "const"],
    "poisson": ["int", "int", "Int64", "float", "object-num", "const"],
    "clmm": ["ordinal"] * 6 + ["int", "category", "str", "Int64", "float", "const"],
    "coxme": ["float", "int", "const", "Float64"],
}


@st.composite
def cases(draw, fn: str) -> Case:
    size = draw(st.integers(0, 19))  # mostly frames a model can use; sometimes empty, one row, tiny
    n = 0 if size == 10 else 1 if size == 11 else draw(st.integers(2, 12)) if size in (12, 13, 14) \
        else draw(st.integers(13, 48))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    picked = draw(st.lists(st.sampled_from(NAMES), min_size=5, max_size=5))
    if not rarely(draw, 19):  # usually distinct names; sometimes duplicates
        picked = list(dict.fromkeys(picked + NAMES))[:5]
    role = dict(zip(["y", "x", "z", "g", "h"], picked))
    family = {"glmer": draw(st.sampled_from(["binomial", "poisson"])), "clmm": "clmm", "coxme": "coxme"}.get(fn, "lmm")
    cols: dict[str, pd.Series] = {}
    ycol = draw(columns(RESPONSE_KINDS[family]))
    if family == "poisson":
        ycol.levels = 6
    cols["y"] = make_column(ycol, n, rng)
    if family == "poisson" and ycol.kind == "float":
        cols["y"] = cols["y"].abs().round(draw(st.sampled_from([0, 0, 1])))
    for r in ("x", "z"):
        cols[r] = make_column(draw(columns()), n, rng)
    for r in ("g", "h"):
        gcol = draw(columns(["int"] * 4 + ["str"] * 2 + ["category", "Int64", "bool", "float"]))
        cols[r] = make_column(gcol, n, rng)
    if rarely(draw, 4) and n:  # a response separated by x
        xv = pd.to_numeric(cols["x"], errors="coerce")
        if family == "binomial" and xv.notna().all():
            cols["y"] = (xv > xv.median()).astype(float)
    frame = pd.DataFrame({k: v.to_numpy() if not isinstance(v.dtype, pd.api.extensions.ExtensionDtype) else v.array
                          for k, v in cols.items()})
    frame.columns = [role[c] for c in frame.columns]
    if draw(st.booleans()):
        frame.index = pd.Index(rng.permutation(1000)[:n])  # a non-default index
    kwargs: dict[str, Any] = {}
    names = {r: role[r] for r in ("x", "z", "g", "h")}
    resp = role["y"]
    if fn == "coxme":
        status = pd.Series(rng.integers(0, 2, size=n), index=frame.index)
        frame = frame.assign(**{"status_": status})
        if ycol.kind in ("float", "Float64") and frame.columns.is_unique and not rarely(draw, 9):
            frame[resp] = frame[resp].abs() + 0.1  # follow-up times: mostly positive
        formula = draw(formulas(f"Surv({quote(resp)}, status_)", names))
        if "|" not in formula and not rarely(draw, 9):
            kwargs["groups"] = names["g"]
    elif fn == "mixedlm":
        formula = draw(formulas(quote(resp), names, with_random=False))
        kwargs["groups"] = draw(st.sampled_from([names["g"], names["h"], "missing_col"]))
        if draw(st.booleans()):
            kwargs["re_formula"] = draw(st.sampled_from(["~" + quote(names["x"]), "1", "0 + " + quote(names["x"])]))
    else:
        formula = draw(formulas(quote(resp), names))
        if "|" not in formula or rarely(draw, 7):
            kwargs["groups"] = draw(st.sampled_from([names["g"], [names["g"], names["h"]], names["x"]]))
    if fn in ("fit", "glmer", "coxme", "chunked") and rarely(draw, 3):
        kind = draw(st.sampled_from(["series", "shuffled", "array", "column", "bad-length", "foreign-index"]))
        vals = np.abs(rng.normal(size=n)) + draw(st.sampled_from([0.0, 0.5]))
        arg = draw(st.sampled_from(["weights", "offset"])) if fn != "chunked" else "weights"
        if kind == "series":
            kwargs[arg] = pd.Series(vals, index=frame.index)
        elif kind == "shuffled":
            kwargs[arg] = pd.Series(vals, index=frame.index).sample(frac=1.0, random_state=seed % 1000)
        elif kind == "array":
            kwargs[arg] = vals
        elif kind == "column":
            kwargs[arg] = names["z"]
        elif kind == "bad-length":
            kwargs[arg] = vals[:-1] if n else np.ones(1)
        else:
            kwargs[arg] = pd.Series(vals, index=np.arange(n) + 10_000)
        if fn == "chunked" and not isinstance(kwargs[arg], str):
            kwargs[arg] = names["z"]
    if fn == "fit":
        kwargs["method"] = draw(st.sampled_from(["REML", "ML"]))
    if fn == "glmer":
        kwargs["family"] = family
    return Case(fn, frame, formula, kwargs)


# ----------------------------------------------------------------------------- running one case
class Hang(Exception):
    """A generated call ran past :data:`TIME_LIMIT`."""


@contextmanager
def watchdog(seconds: int):
    def _raise(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def call(case: Case) -> Any:
    f, data, kw = case.formula, case.frame, case.kwargs
    if case.fn == "fit":
        return interlace.fit(f, data, **kw)
    if case.fn == "glmer":
        return interlace.glmer(f, data, **kw)
    if case.fn == "clmm":
        return interlace.clmm(f, data, **kw)
    if case.fn == "coxme":
        return interlace.coxme(f, data, **kw)
    if case.fn == "mixedlm":
        return smf.mixedlm(f, data, **kw).fit()
    if case.fn == "chunked":
        from interlace.scale import fit_chunks

        if "groups" in kw and not isinstance(kw["groups"], str):
            kw = {**kw, "groups": kw["groups"][0]}
        return fit_chunks(f, lambda: (data.iloc[i:i + 7] for i in range(0, max(len(data), 1), 7)),
                          list(data.columns), **kw)
    raise AssertionError(case.fn)


def estimates(res: Any) -> np.ndarray:
    return np.asarray(res.params, dtype=float)


def check_case(case: Case) -> str:
    """Run one case and assert the property; returns what happened (for statistics)."""
    note(repr(case))
    before = case.frame.copy(deep=True)
    vectors = {k: (v.copy(deep=True) if isinstance(v, pd.Series) else np.array(v, copy=True))
               for k, v in case.kwargs.items() if k in ("weights", "offset") and not isinstance(v, str)}
    outcome = "fit"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with watchdog(TIME_LIMIT):
                res = call(case)
        except InterlaceError as exc:
            outcome = type(exc).__name__
            res = None
    bad = [w for w in caught if not issubclass(w.category, ALLOWED_WARNINGS)]
    assert not bad, f"undocumented warnings: {[(w.category.__name__, str(w.message)) for w in bad]}"
    pd.testing.assert_frame_equal(case.frame, before, check_exact=True)
    for k, v in vectors.items():
        now = case.kwargs[k]
        if isinstance(v, pd.Series):
            pd.testing.assert_series_equal(now, v, check_exact=True)
        else:
            np.testing.assert_array_equal(now, v)
    if res is not None:
        est = estimates(res)
        assert est.size == 0 or np.all(np.isfinite(est)), f"non-finite estimates {est}"
        opt = getattr(res, "opt_summary", None) or getattr(res, "hist", [None])[0] if case.fn == "mixedlm" else \
            getattr(res, "opt_summary", None)
        if case.fn != "mixedlm":
            assert opt is not None and isinstance(opt.messages, list), "no record of the checks"
        llf = float(res.llf)
        w = case.kwargs.get("weights")
        w = case.frame[w] if isinstance(w, str) else w
        zero_w = w is not None and bool(np.any(pd.to_numeric(pd.Series(np.asarray(w)), errors="coerce") == 0))
        assert np.isfinite(llf) or (llf == -np.inf and zero_w) or case.fn == "mixedlm", f"llf {llf}"
    return outcome


OUTCOMES: dict[str, dict[str, int]] = {}


def run(fn: str, case: Case) -> None:
    outcome = check_case(case)
    OUTCOMES.setdefault(fn, {}).setdefault(outcome, 0)
    OUTCOMES[fn][outcome] += 1


# ----------------------------------------------------------------------------- the properties
@given(cases("fit"))
def test_fit_never_fails_badly(case):
    run("fit", case)


@given(cases("glmer"))
def test_glmer_never_fails_badly(case):
    run("glmer", case)


@given(cases("clmm"))
def test_clmm_never_fails_badly(case):
    run("clmm", case)


@given(cases("coxme"))
def test_coxme_never_fails_badly(case):
    run("coxme", case)


@given(cases("mixedlm"))
def test_mixedlm_never_fails_badly(case):
    run("mixedlm", case)


@given(cases("chunked"))
def test_chunked_fit_never_fails_badly(case):
    run("chunked", case)


def test_generated_cases_reach_fits():
    """The generators are not all errors: each function produced some fits in this session
    (runs after the property tests in file order; skipped when they were deselected)."""
    if len(OUTCOMES) < 6:
        pytest.skip("the property tests did not all run in this session")
    for fn, counts in OUTCOMES.items():
        assert counts.get("fit", 0) > 0, f"{fn}: no generated case fitted ({counts})"


def test_watchdog_interrupts():
    import time

    with pytest.raises(Hang):
        with watchdog(1):
            time.sleep(5)


def test_identifier_quoting():
    assert quote("my x") == "`my x`" and quote("x") == "x"
    assert set(string.ascii_letters) >= {"y"}
