"""Moment (MIVQUE0) starting values and the coarse-BOBYQA + Newton fitting loop."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.linalg.pls import HAVE_CHOLMOD
from interlace.models.lmm import CrossedLME
from interlace.objective.start import moment_components, moment_start
from interlace.optimize import checks, minimize_checked
from interlace.scale import fit_chunks

REF = Path(__file__).parent / "reference" / "lmer"


def _dense_mivque0(y, X, Zs, w):
    """MIVQUE0 from its definition with explicit n × n matrices (the test's own reference)."""
    s = np.sqrt(w)
    y, X, Zs = y * s, X * s[:, None], [Z * s[:, None] for Z in Zs]
    n = y.size
    Q = np.eye(n) - X @ np.linalg.solve(X.T @ X, X.T)
    V = [np.eye(n)] + [Z @ Z.T for Z in Zs]
    QV = [Q @ v for v in V]
    S = np.array([[np.trace(a @ b) for b in QV] for a in QV])
    rhs = np.array([y @ Q @ v @ Q @ y for v in V])
    return np.linalg.solve(S, rhs)


@pytest.fixture(scope="module")
def slopes_data():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), rng.integers(4, 12, 12))
    h = rng.integers(0, 5, g.size)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(size=12)[g] + 0.4 * rng.normal(size=12)[g] * x + rng.normal(size=5)[h] \
        + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g, "h": h, "w": rng.uniform(0.5, 2.0, g.size)})


@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
def test_components_match_the_definition(slopes_data, engine):
    if engine == "cholmod" and not HAVE_CHOLMOD:
        pytest.skip("CHOLMOD not installed")
    d = slopes_data
    m = CrossedLME.from_formula("y ~ x + (1 + x | g) + (1 | h)", data=d, weights=d["w"].to_numpy(),
                                engine=engine)
    s2, comps = moment_components(m.deviance_function().pls.cp)
    re = m.random_effects_structure
    Zs = []
    for _, _, cols in comps:
        Zs.append(re.Z()[:, cols].toarray())
    X = np.asarray(m.exog, float)
    ref = _dense_mivque0(d["y"].to_numpy(), X, Zs, d["w"].to_numpy())
    np.testing.assert_allclose(s2, ref, rtol=1e-10)
    assert [(re.terms[k].name, r) for k, r, _ in comps] == [("g", 0), ("g", 1), ("h", 0)]


def test_balanced_start_is_the_reml_optimum():
    """On a balanced crossed design MIVQUE0 is the ANOVA estimator, i.e. lme4's REML θ."""
    ref = json.loads((REF / "penicillin_reml.json").read_text())
    m = CrossedLME.from_formula("diameter ~ 1 + (1 | plate) + (1 | sample)", data=interlace.datasets.load("penicillin"))
    np.testing.assert_allclose(m.deviance_function().theta0, ref["theta"], rtol=1e-6)
    res = m.fit()
    np.testing.assert_allclose(res.theta, ref["theta"], rtol=1e-6)
    assert res.opt_summary.n_evals <= 20  # 53 from lme4's identity start


def test_start_mapping_and_clipping():
    sleep = interlace.datasets.load("sleepstudy")
    dev = CrossedLME.from_formula("Reaction ~ Days + (Days | Subject)", data=sleep).deviance_function()
    s2, _ = moment_components(dev.pls.cp)
    theta = moment_start(dev.pls.cp)
    # [T11, T21, T22]: diagonal from the components, correlation entry 0
    np.testing.assert_allclose(theta[[0, 2]], np.sqrt(s2[1:] / s2[0]), rtol=1e-12)
    assert theta[1] == 0.0
    d2 = interlace.datasets.load("dyestuff2")  # batch variance estimate negative: start near the boundary
    dev2 = CrossedLME.from_formula("Yield ~ 1 + (1 | Batch)", data=d2).deviance_function()
    assert moment_components(dev2.pls.cp)[0][1] < 0
    assert dev2.theta0[0] == 0.05


@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
def test_engines_and_chunks_give_the_same_start(engine):
    if engine == "cholmod" and not HAVE_CHOLMOD:
        pytest.skip("CHOLMOD not installed")
    pastes = interlace.datasets.load("pastes")
    f = "strength ~ 1 + (1 | batch/cask)"
    a = CrossedLME.from_formula(f, data=pastes, engine="blocked").deviance_function().theta0
    b = CrossedLME.from_formula(f, data=pastes, engine=engine).deviance_function().theta0
    np.testing.assert_allclose(a, b, rtol=1e-12)
    res = fit_chunks(f, lambda: iter([pastes.iloc[:30], pastes.iloc[30:]]), pastes.columns,
                     engine=engine)
    np.testing.assert_allclose(res.opt_summary.x0, a, rtol=1e-10)


def _quadratic(xmin, A):
    def f(x):
        d = np.asarray(x) - xmin
        return float(d @ A @ d) + 1.0 + float(np.sum(d ** 4))
    return f


def test_coarse_run_then_newton_reaches_the_minimum():
    xmin = np.array([0.3, 1.7, -0.4])
    A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    f = _quadratic(xmin, A)
    lower = np.array([0.0, 0.0, -np.inf])
    opt = minimize_checked(f, np.array([1.0, 1.0, 0.0]), lower)
    assert opt.polished and opt.messages == []
    np.testing.assert_allclose(opt.x, xmin, atol=1e-8)
    tight = minimize_checked(f, np.array([1.0, 1.0, 0.0]), lower, options={"xtol_rel": 1e-7})
    assert opt.n_evals < tight.n_evals


def test_refused_step_restarts_bobyqa_tightly(monkeypatch):
    xmin = np.array([0.3, 1.7])
    f = _quadratic(xmin, np.array([[2.0, 0.3], [0.3, 1.0]]))
    calls = []
    real = checks.newton_polish

    def refuse_first(fun, opt, lower, derivs, upper=None):
        calls.append(np.array(opt.x))
        return False if len(calls) == 1 else real(fun, opt, lower, derivs, upper)

    monkeypatch.setattr(checks, "newton_polish", refuse_first)
    opt = minimize_checked(f, np.array([1.0, 1.0]), np.zeros(2))
    assert len(calls) >= 2  # refused, restarted, then refined
    np.testing.assert_allclose(opt.x, xmin, atol=1e-8)
    assert opt.x0.tolist() == [1.0, 1.0]


def test_budget_is_shared_with_the_restart(monkeypatch):
    f = _quadratic(np.array([0.3, 1.7]), np.eye(2))
    monkeypatch.setattr(checks, "newton_polish", lambda *a: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = minimize_checked(f, np.array([1.0, 1.0]), np.zeros(2), maxfun=12)
    assert opt.n_evals <= 12
