"""The analytic gradient of the LMM criterion (interlace.objective.lmm_gradient) against
statsmodels' numerical derivatives (an independent check), on both engines, ML and REML,
and the gradient-based fitting path (optimizer="auto") against BOBYQA."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.numdiff import approx_fprime

import interlace
from interlace.linalg import HAVE_CHOLMOD
from interlace.optimize.gradient import gradient_derivatives

ENGINES = ["blocked"] + (["cholmod"] if HAVE_CHOLMOD else [])


def _insteval_subset(n: int = 1500, ns: int = 300, nd: int = 60, ndept: int = 12) -> pd.DataFrame:
    """A crossed design simulated in InstEval's shape (students × lecturers crossed, lecturers nested
    in departments); at 1,000 × 250 levels A21 is stored sparse (the blocked engine's column pairs)."""
    rng = np.random.default_rng(7)
    s = rng.integers(0, ns, n)
    d = rng.integers(0, nd, n)
    dept = d % ndept
    service = rng.integers(0, 2, n)
    y = (3 + 0.1 * service + rng.normal(0, 0.3, ns)[s] + rng.normal(0, 0.5, nd)[d]
         + rng.normal(0, 0.6, ndept)[dept] + service * rng.normal(0, 0.5, ndept)[dept] + rng.normal(0, 1.0, n))
    return pd.DataFrame({"y": y, "s": s.astype(str), "d": d.astype(str), "dept": dept.astype(str),
                         "service": service, "fservice": service.astype(str)})


def _crossed_slopes() -> pd.DataFrame:
    """Correlated intercepts and slopes on two crossed factors, most (a, b) pairs present: the
    blocked engine's dense A21 with a vector-valued later term (:mod:`interlace.linalg.dense_gram`)."""
    rng = np.random.default_rng(11)
    n, n1, n2 = 1200, 40, 20
    a, b, x = rng.integers(0, n1, n), rng.integers(0, n2, n), rng.standard_normal(n)
    y = (1 + 0.5 * x + rng.normal(0, 1, n1)[a] + rng.normal(0, 0.5, n1)[a] * x + rng.normal(0, 0.7, n2)[b]
         + rng.normal(0, 0.4, n2)[b] * x + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": b.astype(str),
                         "w": rng.uniform(0.5, 2.0, n)})


def _cases():
    ss = interlace.datasets.load("sleepstudy")
    ss = ss.assign(w=np.random.default_rng(1).uniform(0.5, 2.0, len(ss)))
    pen = interlace.datasets.load("penicillin")
    pas = interlace.datasets.load("pastes")
    ort = interlace.datasets.load("orthodont")
    ie = _insteval_subset()
    iep = _insteval_subset(n=3000, ns=1000, nd=250)
    cs = _crossed_slopes()
    slopes = "y ~ x + (1 + x | a) + (1 + x | b)"
    return {
        "sleepstudy_slopes": ("Reaction ~ Days + (Days | Subject)", ss, None, [0.8, 0.1, 0.3]),
        "sleepstudy_weighted": ("Reaction ~ Days + (Days | Subject)", ss, "w", [0.8, -0.1, 0.3]),
        "sleepstudy_uncorrelated": ("Reaction ~ Days + (Days || Subject)", ss, None, [0.7, 0.2]),
        "penicillin": ("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, None, [1.2, 3.0]),
        "penicillin_boundary": ("diameter ~ 1 + (1 | plate) + (1 | sample)", pen, None, [0.0, 3.0]),
        "pastes_nested": ("strength ~ 1 + (1 | batch/cask)", pas, None, [2.5, 1.0]),
        "orthodont_vector_crossed": ("distance ~ age + (1 | age) + (age | Subject)", ort, None, [1.0, 0.1, 0.2, 0.7]),
        "insteval_like": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", ie, None, [0.3, 0.5, 0.2]),
        "insteval_like_small_dept": ("y ~ service + (1 | s) + (1 | d) + (1 | dept)", ie, None, [0.3, 0.5, 0.001]),
        "insteval_like_vector_dept": ("y ~ fservice + (1 | s) + (1 | d) + (0 + fservice | dept)", ie, None,
                                      [0.3, 0.5, 0.2, 0.05, 0.1]),
        # column pairs with a 2 × 2 term: later terms' blocks from (I − Σ22) Λ2⁻¹, or from H when
        # a template's diagonal is below 1e-2
        "insteval_pairs_vector_dept": ("y ~ fservice + (1 | s) + (1 | d) + (0 + fservice | dept)", iep, None,
                                       [0.3, 0.5, 0.2, 0.05, 0.1]),
        "insteval_pairs_vector_dept_small": ("y ~ fservice + (1 | s) + (1 | d) + (0 + fservice | dept)", iep, None,
                                             [0.3, 0.5, 0.2, 0.05, 0.004]),
        "crossed_slopes": (slopes, cs, None, [1.0, 0.1, 0.5, 0.7, -0.2, 0.4]),
        "crossed_slopes_weighted": (slopes, cs, "w", [0.8, 0.3, 0.4, 0.6, 0.1, 0.5]),
        # b's template near singular: the dense blocks' identity is declined, Σ22 formed instead
        "crossed_slopes_b_near_singular": (slopes, cs, None, [1.0, 0.1, 0.5, 0.7, -0.2, 0.001]),
        "crossed_slopes_b_zero": (slopes, cs, None, [1.0, 0.1, 0.5, 0.0, 0.0, 0.0]),
    }


CASES = _cases()


#: (case, engine) pairs: the insteval_pairs designs (1,274 columns) only on the blocked engine, whose
#: column-pair path is their subject (CHOLMOD gives no gradient above 500 columns)
CASE_ENGINES = [(c, e) for c in CASES for e in ENGINES if not (e == "cholmod" and c.startswith("insteval_pairs"))]


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("case,engine", CASE_ENGINES)
def test_gradient_matches_numerical_derivatives(case, reml, engine):
    formula, data, weights, theta = CASES[case]
    model = interlace.CrossedLME.from_formula(formula, data, reml=reml, engine=engine, weights=weights)
    dev = model.objective()
    theta = np.asarray(theta, float)
    value, g = dev.value_and_gradient(theta)
    assert g is not None
    assert value == pytest.approx(dev(theta), abs=1e-10)
    # central differences at two steps, extrapolated (Richardson): truncation O(h⁴), rounding ~1e-11 / h
    h = 1e-3
    d1 = approx_fprime(theta, dev, epsilon=h, centered=True)
    d2 = approx_fprime(theta, dev, epsilon=h / 2, centered=True)
    fd = (4 * d2 - d1) / 3
    scale = max(1.0, float(np.max(np.abs(fd))))
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("engine", ENGINES)
def test_hessian_from_gradient_differences(engine):
    formula, data, _, _ = CASES["sleepstudy_slopes"]
    res = interlace.fit(formula, data, engine=engine)
    dev = res.model.objective()
    d = gradient_derivatives(dev.value_and_gradient, res.theta, dev.lower)
    fd = np.array([approx_fprime(res.theta, lambda t, i=i: dev.gradient(t)[i], epsilon=1e-6, centered=True)
                   for i in range(3)])
    np.testing.assert_allclose(d["hessian"], fd, rtol=1e-4)
    assert np.max(np.abs(d["gradient"])) < 1e-4


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("case", ["sleepstudy_slopes", "penicillin", "pastes_nested", "insteval_like",
                                  "insteval_like_vector_dept"])
def test_gradient_path_reaches_bobyqas_optimum_in_fewer_evaluations(case, method, engine):
    formula, data, _, _ = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = interlace.fit(formula, data, method=method, engine=engine, optimizer="L-BFGS-B+analytic")
        b = interlace.fit(formula, data, method=method, engine=engine, optimizer="bobyqa")
    assert a.opt_summary.optimizer == "L-BFGS-B+analytic"
    assert a.llf >= b.llf - 1e-8
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-6)
    assert a.opt_summary.n_evals < b.opt_summary.n_evals
    assert a.opt_summary.messages == b.opt_summary.messages


def test_auto_without_a_gradient_is_bobyqa():
    data = interlace.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit("Reaction ~ Days + (1 | Subject)", data, correlation=interlace.AR1("Days"))
    assert "bobyqa" in res.opt_summary.optimizer


@pytest.mark.parametrize(("case", "taken"), [("crossed_slopes", True), ("crossed_slopes_b_near_singular", False)])
def test_dense_crossed_blocks_path(case, taken, monkeypatch):
    """The crossed vector-valued layout takes the dense blocks (checked against differences above)
    and declines them when a later template is near singular."""
    from interlace.linalg.dense_gram import DenseGram

    seen = []
    real = DenseGram.grad_blocks

    def spy(self, *args):
        out = real(self, *args)
        seen.append(out is not None)
        return out

    monkeypatch.setattr(DenseGram, "grad_blocks", spy)
    formula, data, weights, theta = CASES[case]
    model = interlace.CrossedLME.from_formula(formula, data, reml=True, engine="blocked", weights=weights)
    _, g = model.objective().value_and_gradient(np.asarray(theta, float))
    assert g is not None
    assert seen == [taken]


def test_forward_c_reads_the_factor_and_forgets_it_on_load():
    """``BlockedPLS.forward_C`` (the REML gradient's M⁻¹ΛᵀC from the dense-Gram factor's L31 and L32)
    equals the solve with M, is refused at another θ, and is forgotten when new data are loaded."""
    from interlace.objective.lmm_gradient import _lam_times, make_gram

    formula, data, weights, theta = CASES["crossed_slopes"]
    theta = np.asarray(theta, float)
    model = interlace.CrossedLME.from_formula(formula, data, reml=True, engine="blocked", weights=weights)
    dev = model.objective()
    dev(theta)
    pls = dev.pls
    got = pls.forward_C(theta)
    assert got is not None
    Y, B = got
    LC = _lam_times(pls.re, pls.re.templates(theta), make_gram(pls).C, transpose=True)
    np.testing.assert_allclose(B, pls.solve_M(LC), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Y.T @ Y, LC.T @ B, rtol=1e-10, atol=1e-10)  # (L⁻¹ΛᵀC)ᵀ(L⁻¹ΛᵀC) = CᵀΛM⁻¹ΛᵀC
    assert pls.forward_C(theta * 1.01) is None
    pls.load(pls.cp)
    assert pls.forward_C(theta) is None
