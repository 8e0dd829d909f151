"""Set-up structures of the blocked engine, checked against brute force: A21's column pairs and
their products, the fill bound that chooses the engine, sparse A22 storage."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from interlace.linalg.blocked import BlockedPLS, _column_pairs
from interlace.linalg.engines import SPARSE_FILL_LIMIT, _pattern_fill
from interlace.linalg.pls import HAVE_CHOLMOD


def _random_a21(rng, q2, q1, density, heavy=0):
    A = sp.random(q2, q1, density=density, random_state=rng, format="lil")
    for k in range(heavy):  # columns with every row set (more than 256 nonzeros: wider rank type)
        A[:, k] = rng.uniform(0.5, 2.0, size=(q2, 1))
    A = A.tocsr()
    A.sum_duplicates()
    A.sort_indices()
    return A


@pytest.mark.parametrize("shape, density, heavy", [((40, 60, ), 0.15, 0), ((300, 20), 0.05, 2)],
                         ids=["uint8-ranks", "uint16-ranks"])
def test_column_pairs_match_brute_force(shape, density, heavy):
    rng = np.random.default_rng(5)
    q2, q1 = shape
    A = _random_a21(rng, q2, q1, density, heavy)
    rows = np.repeat(np.arange(q2), np.diff(A.indptr))
    ra, rb, K, indptr, ui, uj = _column_pairs(A, rows, q2)
    assert ra.dtype == (np.uint16 if heavy else np.uint8)
    Ac = A.tocsc()
    col_rows = [Ac.indices[Ac.indptr[k]:Ac.indptr[k + 1]] for k in range(q1)]
    expected = {}
    for k, r in enumerate(col_rows):
        for a in range(r.size):
            for b in range(a, r.size):
                expected.setdefault((r[a], r[b]), []).append(k)
    flat = ui * q2 + uj
    assert np.all(np.diff(flat) > 0) and len(flat) == len(expected)
    for d, (i, j) in enumerate(zip(ui, uj)):
        seg = slice(indptr[d], indptr[d + 1])
        assert list(K[seg]) == expected[(i, j)]  # every column of the pair, ascending
        for k, a, b in zip(K[seg], ra[seg], rb[seg]):
            assert (col_rows[k][a], col_rows[k][b]) == (i, j)


def test_pair_products_follow_new_values():
    """The pair products are re-formed from A21's values at every load (new weights, PIRLS)."""
    rng = np.random.default_rng(8)
    q2, q1 = 30, 50
    A = _random_a21(rng, q2, q1, 0.2)
    pls = BlockedPLS.__new__(BlockedPLS)
    pls._pairs = _column_pairs(A, np.repeat(np.arange(q2), np.diff(A.indptr)), q2)
    ra, rb, K, indptr, ui, uj = pls._pairs
    for _ in range(2):
        B = A.copy()
        B.data = rng.uniform(-1, 1, B.nnz)
        prod = pls._pair_products(B)
        c = rng.uniform(size=q1)
        P = sp.csr_matrix((prod, K, indptr), shape=(ui.size, q1))
        G = (B @ sp.diags(c) @ B.T).toarray()
        np.testing.assert_allclose(P @ c, G[ui, uj], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("sizes", [(1.0, 1.0), (0.6, 0.3), (0.0, 0.0)], ids=["both-fit", "partly", "none"])
def test_column_pairs_in_scratch_memory(sizes):
    """Grouped in the memory of scratch buffers (the engine passes its pair products' and M22's,
    holding old numbers) or, where they are too small, in arrays of its own: the same pairs."""
    rng = np.random.default_rng(11)
    q2, q1 = 40, 60
    A = _random_a21(rng, q2, q1, 0.15)
    rows = np.repeat(np.arange(q2), np.diff(A.indptr))
    expected = _column_pairs(A, rows, q2)
    n_pairs = expected[2].size
    scratch = (rng.uniform(size=int(sizes[0] * n_pairs)), rng.uniform(size=int(sizes[1] * q2 * q2)))
    got = _column_pairs(A, rows, q2, scratch=scratch)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_engine_pair_products_fill_their_scratch():
    """The engine's first load writes the pair products into the memory the pairs were grouped in."""
    rng = np.random.default_rng(12)
    q2, q1 = 30, 80
    A = _random_a21(rng, q2, q1, 0.2)
    pls = BlockedPLS.__new__(BlockedPLS)
    pls.q2, pls.p1, pls.A21 = q2, 1, A
    pls._a21_rows = np.repeat(np.arange(q2, dtype=A.indices.dtype), np.diff(A.indptr))
    assert pls._use_pairs()
    buf = pls._prod_scratch
    prod = pls._pair_products(A)
    assert prod is buf and "_prod_scratch" not in pls.__dict__
    ra, rb, K, indptr, ui, uj = pls._pairs
    c = rng.uniform(size=q1)
    P = sp.csr_matrix((prod, K, indptr), shape=(ui.size, q1))
    G = (A @ sp.diags(c) @ A.T).toarray()
    np.testing.assert_allclose(P @ c, G[ui, uj], rtol=1e-13, atol=1e-15)


def _crossed_pattern(rng, q2, q1, per_column):
    cols = np.repeat(np.arange(q1), per_column)
    rows = np.concatenate([rng.choice(q2, per_column, replace=False) for _ in range(q1)])
    A21 = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(q2, q1))
    return A21, sp.identity(q2, format="csr")


@pytest.mark.parametrize("kind", ["crossed", "nested"])
def test_fill_bound_gives_the_same_choice(kind):
    rng = np.random.default_rng(2)
    if kind == "crossed":
        A21, A22 = _crossed_pattern(rng, 400, 2000, 12)
    else:  # each column in one of 40 blocks of 10 rows: block-diagonal pattern, fill 2.5 %
        q2, q1 = 400, 2000
        rows = (np.arange(q1) % 40)[:, None] * 10 + rng.integers(0, 10, size=(q1, 3))
        A21 = sp.csr_matrix((np.ones(rows.size), (rows.ravel(), np.repeat(np.arange(q1), 3))), shape=(q2, q1))
        A21.data[:] = 1.0
        A22 = sp.identity(q2, format="csr")
    exact = _pattern_fill(A21, A22, A21.shape[0])
    bound = _pattern_fill(A21, A22, A21.shape[0], at_least=SPARSE_FILL_LIMIT)
    assert bound <= exact + 1e-15
    assert (bound < SPARSE_FILL_LIMIT) == (exact < SPARSE_FILL_LIMIT)
    assert (exact >= SPARSE_FILL_LIMIT) == (kind == "crossed")


@pytest.mark.skipif(not HAVE_CHOLMOD, reason="needs CHOLMOD")
def test_sparse_a22_equals_cholmod(monkeypatch):
    """Three crossed scalar terms with A22 stored sparse (as InstEval's): the criterion of CHOLMOD."""
    from interlace.models.lmm import CrossedLME

    monkeypatch.setattr("interlace.linalg.crossprod.SPARSE_A22_ELEMENTS", 0)
    monkeypatch.setattr("interlace.linalg.crossprod.DENSE_A21_ELEMENTS", 0)
    rng = np.random.default_rng(4)
    n = 3000
    df = pd.DataFrame({"s": rng.integers(0, 300, n), "d": rng.integers(0, 120, n), "x": rng.normal(size=n)})
    df["dept"] = df.d % 9  # lecturers within departments, as InstEval's: A22 is 2 % full
    df["y"] = (rng.normal(size=300)[df.s] + 0.5 * rng.normal(size=120)[df.d] + 0.3 * rng.normal(size=9)[df.dept]
               + df.x + rng.normal(size=n))
    devs, models = {}, {}
    for engine in ("blocked", "cholmod"):
        models[engine] = CrossedLME.from_formula("y ~ x + (1 | s) + (1 | d) + (1 | dept)", df, engine=engine)
        devs[engine] = models[engine].deviance_function()
    blk = devs["blocked"].pls
    assert sp.issparse(blk.A22) and sp.issparse(blk.A21) and blk._use_pairs()
    thetas = [np.array(th) for th in ([0.5, 0.7, 0.2], [1.3, 0.1, 2.0], [0.0, 1.0, 0.4])]
    for th in thetas:
        assert devs["blocked"](th) == pytest.approx(devs["cholmod"](th), rel=1e-10)
    # new weights on the same rows: a spawned engine re-forms the pair products from the new A21
    w = rng.uniform(0.5, 2.0, n)
    refits = {e: m.clone(weights=w).objective() for e, m in models.items()}
    assert refits["blocked"].pls._pairs is blk._pairs  # the structure is shared, the numbers are new
    for th in thetas:
        assert refits["blocked"](th) == pytest.approx(refits["cholmod"](th), rel=1e-10)
    # the same engine loaded again (as PIRLS does): the pairs' positions are kept and used
    w2 = rng.uniform(0.5, 2.0, n)
    for e, dev in refits.items():
        rows = models[e].row_engines().get()[1]
        dev.pls.load(rows(np.asarray(df.y, float), w2))
    assert "_pair_positions" in refits["blocked"].pls.__dict__
    for th in thetas:
        assert refits["blocked"](th) == pytest.approx(refits["cholmod"](th), rel=1e-10)


@pytest.mark.parametrize("size, n", [(1000, 5000), (10**7, 1000), (3000, 10), (50, 0)])
def test_distinct_matches_unique(size, n):
    """The lookup-table path of the Gram patterns (small key range) and the sorting path agree with np.unique."""
    from interlace.design.codes import distinct

    key = np.random.default_rng(size).integers(0, size, n)
    uniq, inv = distinct(key, size)
    expected, expected_inv = np.unique(key, return_inverse=True)
    np.testing.assert_array_equal(uniq, expected)
    np.testing.assert_array_equal(inv, expected_inv.ravel())


@pytest.mark.parametrize("formula", ["y ~ x + (1 + x | a) + (1 + x | b)",
                                     "y ~ x + (1 | a) + (1 + x + z | b) + (0 + x | c)",
                                     "y ~ x + (x | a) + (1 | b) + (0 + x | b)"])
def test_term_pair_gram_matches_brute_force(formula):
    """Dense A21 and A22 from level-pair keys (TermPairGram) equal Z2ᵀWZ1 and Z2ᵀWZ2 from the sparse
    Z, bit for bit against the per-coefficient keys (WeightedGram); A21's nonzero count from the
    level pairs equals that of the per-coefficient pattern."""
    import interlace
    from interlace.linalg.crossprod import TermPairGram, WeightedGram, a21_pair_count, row_structure

    rng = np.random.default_rng(3)
    n = 3000
    df = pd.DataFrame({"y": rng.standard_normal(n), "x": rng.standard_normal(n),
                       "z": rng.integers(0, 3, n).astype(float),  # zeros: structural entries with value 0
                       "a": rng.integers(0, 60, n), "b": rng.integers(0, 30, n), "c": rng.integers(0, 7, n)})
    re = interlace.CrossedLME.from_formula(formula, df).random_effects_structure
    k, q1 = len(re.terms), re.terms[0].q
    q2 = re.q - q1
    w = rng.uniform(0.5, 2.0, n)
    Z1, Z2 = re.terms[0].Z(), re.Z(1)
    r1, r2 = row_structure(re, 0, 1), row_structure(re, 1)
    later = range(1, k)
    for b, Zb, rb, shape in [(range(0, 1), Z1, r1, (q2, q1)), (later, Z2, r2, (q2, q2))]:
        G = TermPairGram(re, later, b)
        np.testing.assert_allclose(G(w), (Z2.T @ sp.diags(w) @ Zb).toarray(), rtol=1e-12, atol=1e-12)
        ref = WeightedGram(*r2, *rb, shape, dense=True)
        assert np.array_equal(G(w), ref(w))
        assert np.array_equal(G.support(), ref.support())
    assert a21_pair_count(re) == WeightedGram(*r2, *r1, (q2, q1), dense=False).nnz


@pytest.mark.parametrize("formula", ["y ~ x + (1 + x | a) + (1 + x | b) + (1 | c)",
                                     "y ~ x + (1 | a) + (1 + x + z | b) + (0 + x | c)",
                                     "y ~ x + (1 | a) + (1 | d)", "y ~ 1 + (1 | e) + (1 | b) + (1 | c)"])
def test_level_pair_fill_matches_the_product_of_z(formula):
    """lower_block_fill from level pairs equals the fill of the pattern of Z2ᵀZ2 + (Z2ᵀZ1)(Z2ᵀZ1)ᵀ
    formed from the sparse Z (exactly and as a bound), crossed and nested designs."""
    import interlace
    from interlace.linalg.engines import lower_block_fill

    rng = np.random.default_rng(3)
    n = 4000
    df = pd.DataFrame({"y": rng.standard_normal(n), "x": rng.standard_normal(n),
                       "z": rng.integers(0, 3, n).astype(float), "a": rng.integers(0, 600, n),
                       "b": rng.integers(0, 300, n), "c": rng.integers(0, 7, n)})
    df["d"] = df.a // 10  # nested in a
    df["e"] = df.b * 7 + df.c
    re = interlace.CrossedLME.from_formula(formula, df, engine="blocked").random_effects_structure
    Z1, Z2 = re.terms[0].Z(), re.Z(1)
    Z1.data[:] = 1.0
    Z2.data[:] = 1.0
    for at_least in (None, SPARSE_FILL_LIMIT):
        expected = _pattern_fill((Z2.T @ Z1).tocsr(), (Z2.T @ Z2).tocsr(), Z2.shape[1], at_least)
        assert lower_block_fill(re, at_least) == expected


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b) + (1 | c)",
                                     "y ~ x + (1 + x | a) + (1 + x + z | b) + (0 + x | c)"])
def test_term_cross_equals_row_structure_cross(formula):
    """ZᵀW[X y] from the terms' own codes (term_cross, what RowProducts keeps) equals, bit for bit,
    the sums over the (n, m) row structures (weighted_cross) and the sparse product."""
    import interlace
    from interlace.linalg.crossprod import row_structure, term_columns, term_cross, weighted_cross

    rng = np.random.default_rng(4)
    n = 2000
    df = pd.DataFrame({"y": rng.standard_normal(n), "x": rng.standard_normal(n),
                       "z": rng.integers(0, 3, n).astype(float),
                       "a": rng.integers(0, 50, n), "b": rng.integers(0, 20, n), "c": rng.integers(0, 6, n)})
    re = interlace.CrossedLME.from_formula(formula, df).random_effects_structure
    XYw = rng.standard_normal((n, 3)) * rng.uniform(0.5, 2.0, n)[:, None]
    for first, last in [(0, 1), (1, None), (0, None)]:
        q = int(re.col_offsets[len(re.terms) if last is None else last] - re.col_offsets[first])
        got = term_cross(term_columns(re, first, last), XYw, q)
        assert np.array_equal(got, weighted_cross(*row_structure(re, first, last), XYw, q))
        Z = sp.hstack([t.Z() for t in re.terms[first:last]]).tocsr()
        np.testing.assert_allclose(got, (Z.T @ XYw).T, rtol=1e-12, atol=1e-12)
