"""The PLS engines against each other and against a dense computation from the definitions.

* blocked vs CHOLMOD: same REML and ML criterion (1e-9 relative), same β and u
  (1e-8) at several random θ, on simulated designs that exercise every branch of
  the blocked engine (scalar and vector first term, dense and sparse A21,
  nested, crossed, weights).
* blocked vs a dense hand derivation on a small weighted problem: with
  V₀ = ZΛΛᵀZᵀ + W⁻¹ and V = σ²V₀,

  - β̂ = (XᵀV₀⁻¹X)⁻¹XᵀV₀⁻¹y, r² = (y − Xβ̂)ᵀV₀⁻¹(y − Xβ̂)
  - ML:   −2 log L(β̂, σ̂²) with σ̂² = r²/n, the Gaussian log-density of y ~ N(Xβ̂, σ̂²V₀)
  - REML: (n − p) log 2π + log|V| + log|XᵀV⁻¹X| + (y − Xβ̂)ᵀV⁻¹(y − Xβ̂) at σ̂² = r²/(n − p)
  - b̂ = ΛΛᵀZᵀV₀⁻¹(y − Xβ̂) (the BLUP), compared with Λu.

  Z and ΛΛᵀ are built here from the data and θ directly (no interlace code).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats as st

from interlace.design import build_fixed, build_frame, build_random_effects
from interlace.formula import model_terms
from interlace.linalg import HAVE_CHOLMOD, RowEngines
from interlace.objective import LMMDeviance
from interlace.tests.conftest import users_items_frame

needs_cholmod = pytest.mark.skipif(not HAVE_CHOLMOD, reason="no CHOLMOD (scikit-sparse)")


# ----------------------------------------------------------------------------- simulated designs
def _labels(prefix, codes):
    return np.array([f"{prefix}{c:03d}" for c in codes])


def _crossed(rng):
    n = 500
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": _labels("g", rng.integers(0, 40, n)),
                      "g2": _labels("h", rng.integers(0, 12, n))})
    d["y"] = 1 + 0.5 * d.x + rng.normal(size=n)
    return d, "y ~ x", ["(1 | g1)", "(1 | g2)"], None


def _nested3(rng):
    rows = []
    for a in range(5):
        for b in range(3):
            for c in range(4):
                for _ in range(rng.integers(2, 5)):
                    rows.append((f"a{a}", f"b{b}", f"c{c}"))  # labels repeat across parents
    d = pd.DataFrame(rows, columns=["a", "b", "c"])
    d["x"] = rng.normal(size=len(d))
    d["y"] = d.x + rng.normal(size=len(d))
    return d, "y ~ x", ["(1 | a/b/c)"], None


def _slopes_crossed(rng):
    n = 600
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": _labels("g", rng.integers(0, 30, n)),
                      "g2": _labels("h", rng.integers(0, 8, n))})
    d["y"] = 2 - d.x + rng.normal(size=n)
    return d, "y ~ x", ["(1 + x | g1)", "(1 | g2)"], None


def _weighted(rng):
    d, f, r, _ = _crossed(rng)
    d["w"] = rng.uniform(0.3, 3.0, len(d))
    return d, f, r, "w"


def _vector_first(rng):
    n = 500
    d = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                      "g": _labels("g", rng.integers(0, 40, n)), "h": _labels("h", rng.integers(0, 6, n))})
    d["y"] = d.x - d.z + rng.normal(size=n)
    return d, "y ~ x + z", ["(1 + x + z | g)", "(1 | h)"], None


def _nested_slopes(rng):
    d, _, _, _ = _nested3(rng)
    return d, "y ~ x", ["(1 + x | a/b)"], None


def _vector_later(rng):
    """Scalar first term, a correlated-slope term after it: with sparse A21 the pair Gram of the
    first term is sandwiched between the non-diagonal Λ2 blocks (BlockedPLS._sandwich)."""
    n = 800
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": _labels("g", rng.integers(0, 300, n)),
                      "g2": _labels("h", rng.integers(0, 40, n)), "g3": _labels("k", rng.integers(0, 4, n))})
    d["y"] = 1 + d.x + rng.normal(size=n)
    return d, "y ~ x", ["(1 | g1)", "(1 + x | g2)", "(1 | g3)"], None


def _crossed_slopes_both(rng):
    """Correlated slopes on both crossed factors: with dense A21 the Gram of the first term is
    formed by ``dsyrk`` and sandwiched by the 2 × 2 blocks of Λ2 (interlace.linalg.dense_gram)."""
    n = 700
    d = pd.DataFrame({"x": rng.normal(size=n), "g1": _labels("g", rng.integers(0, 30, n)),
                      "g2": _labels("h", rng.integers(0, 12, n))})
    d["y"] = 1 + d.x + rng.normal(size=30)[pd.factorize(d.g1)[0]] * d.x + rng.normal(size=n)
    return d, "y ~ x", ["(1 + x | g1)", "(1 + x | g2)"], None


def _vector_terms_mixed(rng):
    """A 3 × 3 first term, then a 2 × 2 and a scalar term (the general roots and a mixed Λ2)."""
    n = 600
    d = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "g": _labels("g", rng.integers(0, 25, n)),
                      "h": _labels("h", rng.integers(0, 8, n)), "k": _labels("k", rng.integers(0, 4, n))})
    d["y"] = d.x - d.z + rng.normal(size=n)
    return d, "y ~ x + z", ["(1 + x + z | g)", "(1 + x | h)", "(1 | k)"], None


DESIGNS = {"crossed": _crossed, "nested3": _nested3, "slopes_crossed": _slopes_crossed,
           "weights": _weighted, "vector_first_term": _vector_first, "nested_slopes": _nested_slopes,
           "vector_later_term": _vector_later, "crossed_slopes_both": _crossed_slopes_both,
           "vector_terms_mixed": _vector_terms_mixed}


def _build(name):
    rng = np.random.default_rng(sorted(DESIGNS).index(name) + 11)
    data, formula, random, weights = DESIGNS[name](rng)
    fixed, specs = model_terms(formula, random=random)
    frame = build_frame(data, fixed, specs, weights=weights)
    fx = build_fixed(fixed, frame.data)
    re = build_random_effects(specs, frame.data)
    return data, re, fx, frame.weights


def _random_thetas(re, rng, k=3):
    """k random θ inside the bounds (diagonal > 0, off-diagonal any sign), plus one on the boundary."""
    lower = re.lower
    out = []
    for _ in range(k):
        th = np.where(lower == 0, rng.uniform(0.1, 2.5, lower.size), rng.normal(0, 0.7, lower.size))
        out.append(th)
    b = out[0].copy()
    b[0] = 0.0  # first variance on the boundary (singular Λ)
    out.append(b)
    return out


def _deviance(re, fx, w, engine, reml):
    dev = LMMDeviance.from_rows(RowEngines(re, fx.X, engine), fx.y, w, reml)
    assert dev.pls.engine == engine
    return dev


def _loaded(re, fx, w, engine):
    """An engine loaded with the design's cross-products."""
    pls, rows = RowEngines(re, fx.X, engine).get()
    pls.load(rows(fx.y, w))
    return pls


@pytest.fixture(autouse=True, params=["small-dense", "sparse"])
def a21_storage(request, monkeypatch):
    """Run every test with small A21 blocks stored dense (the default) and with sparse storage forced."""
    if request.param == "sparse":
        monkeypatch.setattr("interlace.linalg.crossprod.DENSE_A21_ELEMENTS", 0)
    return request.param


def test_design_shapes(a21_storage):
    """The designs exercise what they are meant to (checked against the simulation recipe)."""
    _, re, _, _ = _build("vector_first_term")
    assert [t.name for t in re.terms] == ["g", "h"] and re.terms[0].p == 3 and re.terms[0].nlevels == 40
    _, re, _, _ = _build("nested3")
    assert [t.name for t in re.terms] == ["c:(b:a)", "b:a", "a"]
    assert [t.nlevels for t in re.terms] == [60, 15, 5]
    _, re, _, w = _build("weights")
    assert w is not None and re.n_theta == 2
    # the blocked engine keeps A21 sparse for nested designs and dense for crossed ones:
    # both storage branches, with a scalar and with a vector first term, are covered
    kinds = {}
    for name in DESIGNS:
        _, re, fx, w = _build(name)
        pls = _loaded(re, fx, w, "blocked")
        kinds[name] = (re.terms[0].p, sp.issparse(pls.A21))
    if a21_storage == "small-dense":
        assert not any(k[1] for k in kinds.values())
        return
    assert kinds == {"crossed": (1, False), "nested3": (1, True), "slopes_crossed": (2, False),
                     "weights": (1, False), "vector_first_term": (3, False), "nested_slopes": (2, True),
                     "vector_later_term": (1, True), "crossed_slopes_both": (2, False),
                     "vector_terms_mixed": (3, False)}
    _, re, fx, w = _build("vector_later_term")
    pls = _loaded(re, fx, w, "blocked")
    assert pls._use_pairs() and not pls._diag2  # the sandwich branch


@needs_cholmod
@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
def test_blocked_equals_cholmod(name, reml):
    _, re, fx, w = _build(name)
    blk = _deviance(re, fx, w, "blocked", reml)
    chm = _deviance(re, fx, w, "cholmod", reml)
    rng = np.random.default_rng(2024)
    for th in _random_thetas(re, rng):
        fb, fc = blk(th), chm(th)
        assert np.isfinite(fb)
        assert fb == pytest.approx(fc, rel=1e-9)
        sb, sc = blk.solution(th), chm.solution(th)
        np.testing.assert_allclose(sb.beta, sc.beta, rtol=1e-8, atol=1e-8 * np.abs(sb.beta).max())
        np.testing.assert_allclose(sb.u, sc.u, rtol=1e-8, atol=1e-8 * np.abs(sb.u).max())
        np.testing.assert_allclose(sb.b, sc.b, rtol=1e-8, atol=1e-8 * np.abs(sb.b).max())
        assert sb.sigma2 == pytest.approx(sc.sigma2, rel=1e-9)
        assert sb.ldRX2 == pytest.approx(sc.ldRX2, rel=1e-9, abs=1e-9)


@needs_cholmod
@pytest.mark.parametrize("name", ["crossed_slopes_both", "vector_terms_mixed", "vector_later_term"])
@pytest.mark.parametrize("keep", ["one", "default"])
def test_dense_gram_reuse_equals_cholmod(name, keep, monkeypatch, a21_storage):
    """The Gram of the first term, kept for its θ and reused when only the later terms' θ move or
    an earlier θ returns, gives CHOLMOD's criterion and solution, also when the kept Grams are
    evicted (one kept)."""
    if keep == "one":
        monkeypatch.setattr("interlace.linalg.dense_gram.GRAM_CACHE_BYTES", 0)
    _, re, fx, w = _build(name)
    blk = _deviance(re, fx, w, "blocked", True)
    chm = _deviance(re, fx, w, "cholmod", True)
    n1 = re.theta_slice(0).stop
    a, b = _random_thetas(re, np.random.default_rng(5), k=2)[:2]
    moved = a.copy()
    moved[n1:] = b[n1:]  # θ of the first term unchanged
    for th in (a, moved, b, a, moved):  # the criterion alone: Grams kept (the last, or both) and reused
        assert blk(th) == pytest.approx(chm(th), rel=1e-10)
    dg = blk.pls.__dict__.get("_dense_gram")
    assert dg is None or len(dg._cache) == (1 if keep == "one" else 2)
    for th in (a, moved, b, a, moved):  # the solution keeps only the last Gram
        sb, sc = blk.solution(th), chm.solution(th)
        np.testing.assert_allclose(sb.u, sc.u, rtol=1e-8, atol=1e-8 * np.abs(sb.u).max())
        np.testing.assert_allclose(sb.beta, sc.beta, rtol=1e-8, atol=1e-8 * np.abs(sb.beta).max())
    dense_path = a21_storage == "small-dense" or name != "vector_later_term"
    assert ("_dense_gram" in blk.pls.__dict__) == dense_path
    if dense_path:
        assert len(blk.pls._dense_gram._cache) == 1


def test_scaled_gram_factor_is_the_product(a21_storage):
    """The operator L21 = Λ2ᵀ A21 blockdiag(D1) of the dense-Gram path against the product formed here."""
    from interlace.linalg.dense_gram import ScaledGramFactor

    rng = np.random.default_rng(0)
    q2, l1, p1 = 6, 5, 2
    A21, D1 = rng.standard_normal((q2, l1 * p1)), rng.standard_normal((l1, p1, p1))
    Lam2 = sp.random(q2, q2, density=0.5, random_state=1, format="csc") + sp.identity(q2)
    L = Lam2.T @ A21 @ sp.block_diag(list(D1)).toarray()
    op = ScaledGramFactor(Lam2, A21, D1)
    X, Y = rng.standard_normal((l1 * p1, 3)), rng.standard_normal((q2, 3))
    np.testing.assert_allclose(op @ X, L @ X, atol=1e-13)
    np.testing.assert_allclose(op @ X[:, 0], L @ X[:, 0], atol=1e-13)
    np.testing.assert_allclose(op.T @ Y, L.T @ Y, atol=1e-13)
    np.testing.assert_allclose(np.asarray(op), L, atol=1e-13)
    np.testing.assert_allclose(op.T.toarray(), L.T, atol=1e-13)
    assert op.shape == L.shape and op.T.shape == L.T.shape


# ----------------------------------------------------------------------------- dense hand derivation
def _small_problem():
    rng = np.random.default_rng(7)
    n = 90
    d = pd.DataFrame({"x": rng.normal(size=n), "z": rng.uniform(-1, 1, n),
                      "g1": _labels("g", np.arange(n) % 12), "g2": _labels("h", rng.integers(0, 4, n))})
    d["w"] = rng.uniform(0.5, 2.0, n)
    d["y"] = 1 + 0.5 * d.x - d.z + rng.normal(size=12)[np.arange(n) % 12] + rng.normal(size=n)
    return d


def _dense_pieces(d, theta):
    """V₀, X, y, W and the per-term (codes, Xk, S_k) from the data and θ = (a, b, c, e).

    Fitting order is g1 (12 levels, (1 + x | g1)) then g2 (4 levels, (1 | g2)); lme4's θ
    fills each template's lower triangle column by column: T1 = [[a, 0], [b, c]], T2 = [[e]].
    """
    a, b, c, e = theta
    T1 = np.array([[a, 0.0], [b, c]])
    S1 = T1 @ T1.T
    S2 = np.array([[e * e]])
    n = len(d)
    X = np.column_stack([np.ones(n), d.x, d.z])
    y = d.y.to_numpy()
    W = d.w.to_numpy()
    terms = []
    V0 = np.diag(1.0 / W)
    for col, Xk, S in (("g1", np.column_stack([np.ones(n), d.x]), S1), ("g2", np.ones((n, 1)), S2)):
        codes, _ = pd.factorize(d[col], sort=True)
        same = codes[:, None] == codes[None, :]
        V0 += (Xk @ S @ Xk.T) * same
        terms.append((codes, Xk, S))
    return V0, X, y, terms


@pytest.mark.parametrize("engine", ["blocked", pytest.param("cholmod", marks=needs_cholmod)])
@pytest.mark.parametrize("theta", [(0.8, 0.3, 0.5, 1.2), (1.5, -0.7, 0.2, 0.4), (0.3, 0.0, 0.0, 2.0),
                                   (0.0, 0.0, 0.9, 0.6)])
def test_criterion_equals_dense_definition(engine, theta):
    d = _small_problem()
    fixed, specs = model_terms("y ~ x + z", random=["(1 + x | g1)", "(1 | g2)"])
    frame = build_frame(d, fixed, specs, weights="w")
    fx = build_fixed(fixed, frame.data)
    re = build_random_effects(specs, frame.data)
    assert [t.name for t in re.terms] == ["g1", "g2"]
    theta = np.asarray(theta, float)

    V0, X, y, terms = _dense_pieces(d, theta)
    n, p = X.shape
    V0i = np.linalg.inv(V0)
    beta = np.linalg.solve(X.T @ V0i @ X, X.T @ V0i @ y)
    r = y - X @ beta
    r2 = float(r @ V0i @ r)

    # ML: -2 log L at (β̂, σ̂² = r²/n)
    s2_ml = r2 / n
    dev_ml = -2.0 * st.multivariate_normal(mean=X @ beta, cov=s2_ml * V0).logpdf(y)
    # REML: restricted likelihood at σ̂² = r²/(n - p)
    s2_reml = r2 / (n - p)
    V = s2_reml * V0
    Vi = np.linalg.inv(V)
    crit_reml = ((n - p) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1]
                 + np.linalg.slogdet(X.T @ Vi @ X)[1] + float(r @ Vi @ r))
    # BLUPs b_k[level] = S_k Σ_{i in level} X_k[i]ᵀ (V₀⁻¹ r)[i]
    Vr = V0i @ r
    blups = []
    for codes, Xk, S in terms:
        L = codes.max() + 1
        acc = np.zeros((L, Xk.shape[1]))
        np.add.at(acc, codes, Xk * Vr[:, None])
        blups.append(acc @ S.T)

    ml = _deviance(re, fx, frame.weights, engine, reml=False)
    reml = _deviance(re, fx, frame.weights, engine, reml=True)
    assert ml(theta) == pytest.approx(dev_ml, rel=1e-9)
    assert reml(theta) == pytest.approx(crit_reml, rel=1e-9)

    sol = reml.solution(theta)
    np.testing.assert_allclose(sol.beta, beta, rtol=1e-8)
    assert sol.sigma2 == pytest.approx(s2_reml, rel=1e-9)
    assert ml.solution(theta).sigma2 == pytest.approx(s2_ml, rel=1e-9)
    assert sol.pwrss == pytest.approx(r2, rel=1e-9)
    # cov(β̂) = σ² (RX RXᵀ)⁻¹ = (XᵀV⁻¹X)⁻¹
    RX = sol.RX
    np.testing.assert_allclose(sol.sigma2 * np.linalg.inv(RX @ RX.T), np.linalg.inv(X.T @ Vi @ X), rtol=1e-8)
    for ours, dense in zip(re.split_b(sol.b), blups):
        np.testing.assert_allclose(ours, dense, rtol=1e-8, atol=1e-10)


@needs_cholmod
@pytest.mark.parametrize("name", ["nested3", "vector_later_term"])
def test_syrk_gram_equals_cholmod(name, monkeypatch, a21_storage):
    """Without precomputed pairs (users × items designs have ~10⁸), L21 L21ᵀ comes from BLAS
    rank-k updates of dense column chunks: the same criterion as CHOLMOD."""
    if a21_storage != "sparse":
        pytest.skip("needs a sparse A21")
    monkeypatch.setattr("interlace.linalg.blocked.MAX_COLUMN_PAIRS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.SYRK_MIN_COLUMNS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.SYRK_CHUNK_ELEMENTS", 50)  # several chunks
    _, re, fx, w = _build(name)
    blk = _deviance(re, fx, w, "blocked", True)
    chm = _deviance(re, fx, w, "cholmod", True)
    assert not blk.pls._use_pairs()
    for th in _random_thetas(re, np.random.default_rng(7)):
        assert blk(th) == pytest.approx(chm(th), rel=1e-10)



def test_class_split_equals_rank_k(monkeypatch, a21_storage):
    """Light users' pairs merged by weight class + rank-k updates for the rest: the same
    criterion as rank-k updates alone, and the split is rebuilt for new weights."""
    from interlace.linalg.blocked import BlockedPLS

    if a21_storage != "sparse":
        pytest.skip("needs a sparse A21")
    from interlace.models.lmm import CrossedLME

    rng = np.random.default_rng(11)
    df = users_items_frame(rng)
    monkeypatch.setattr("interlace.linalg.blocked.MAX_COLUMN_PAIRS", 0)
    monkeypatch.setattr("interlace.linalg.blocked.SYRK_MIN_COLUMNS", 0)

    def deviance(split_pairs, weights=None):
        monkeypatch.setattr("interlace.linalg.blocked.SPLIT_COLUMN_PAIRS", split_pairs)
        m = CrossedLME.from_formula("y ~ 1 + (1 | user) + (1 | item)", data=df, engine="blocked", weights=weights)
        dev = m.deviance_function()
        dev.pls._class_split()  # decided now, under this setting
        dev.rows = m.row_engines().get()[1]  # the rows' products, to load new data
        return dev

    ref, split = deviance(0), deviance(4000)
    assert ref.pls._class_split() is None
    s = split.pls._class_split()
    assert 0 < s["heavy"].size < 300 and s["N"].shape[1] < 60  # merged into few weight classes
    thetas = [np.array([0.5, 0.7]), np.array([1.4, 0.1]), np.array([0.0, 1.0]), np.array([2.0, 3.0])]
    for th in thetas:
        assert split(th) == pytest.approx(ref(th), rel=1e-12)
    # distinct weights: nothing to merge, the split declines
    w = rng.uniform(0.5, 2.0, len(df))
    assert deviance(4000, w).pls._class_split() is None
    # new data on the same engine (as PIRLS does) rebuilds the split
    pls = split.pls
    assert isinstance(pls, BlockedPLS)
    y2 = df["y"].to_numpy() * 2.0 + 1.0
    pls.load(split.rows(y2, np.full(len(df), 2.0)))
    dev2 = deviance(0, np.full(len(df), 2.0))
    other = dev2.pls
    other.load(dev2.rows(y2, np.full(len(df), 2.0)))
    monkeypatch.setattr("interlace.linalg.blocked.SPLIT_COLUMN_PAIRS", 4000)
    assert pls._class_split() is not s and pls._class_split() is not None
    for th in thetas:
        a, b = pls.factor(th), other.factor(th)
        assert a.ldL2 == pytest.approx(b.ldL2, rel=1e-12) and a.pwrss == pytest.approx(b.pwrss, rel=1e-12)
