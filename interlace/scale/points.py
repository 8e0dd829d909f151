"""PIRLS points evaluated by one pass over chunks of rows: the GLMM's side of a chunked fit.

PIRLS (:class:`~interlace.objective.pirls.PIRLS`) asks its rows for points (θ, β, u):
the discrepancy it minimizes and the cross-products ``[Z X z]ᵀW[Z X z]`` of the working
weights W and working response z there.  Every quantity is a sum over rows, so one
pass over the chunks gives a point: the client sends β and ``b = Λθu`` (model-sized),
each chunk computes, for its rows, η = offset + Xβ + Zb, μ, the deviance residuals and
conditional log-likelihood, the working weights and response, and their cross-product
blocks (:func:`chunk_point`), and the sums come back (:class:`PointSums`).

A pass computes the products of its point even when PIRLS will only read the deviance
(a step-halving trial): the step is nearly always taken, and the next iteration then
needs no pass of its own, so a PIRLS iteration costs one pass.  Each row's η, μ, w and z
are the in-memory path's, bit for bit; only the order in which rows are added differs.

:class:`ChunkedRows` is the :class:`~interlace.objective.pirls.PIRLSRows` of a chunked
fit: it runs the passes through a runner (:mod:`interlace.scale.runners`), counts them
(with a tqdm bar), and owns the engines the client solves with.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..design.response import binomial_response
from ..families import GLMFamily
from ..linalg.crossprod import CrossProducts, RowProducts
from ..linalg.engines import make_engine
from ..linalg.pls import PLSSystem
from ..models.glmm import check_glm_response
from ..objective.pirls import combine_start_factors, glm_start_beta, glm_start_factor
from ..response.glm import GLMResponse
from .blocks import CrossBlocks, blocks_of
from .design import ChunkedDesign
from .encode import EncodedChunk

__all__ = ["ChunkLayout", "PointRequest", "PointSums", "SetupSums", "chunk_point", "chunk_setup", "ChunkedPoint",
           "ChunkedResponse", "ChunkedRows", "EXTREME_EPS"]

#: μ closer than this to 0 (or to 1, binomial) is reported by the separation checks
EXTREME_EPS = 10 * np.finfo(float).eps


@dataclass(frozen=True)
class ChunkLayout:
    """What a chunk needs of the design to compute its sums (small and picklable, unlike patsy's designs).

    Attributes
    ----------
    response : str
        The response's name (for error messages).
    col_offsets : tuple of int
        First column of each random-effects term in Z.
    q, q1 : int
        Columns of Z, and of its first term.
    a21_dense, a22_dense : bool
        Storage of ``Z2ᵀWZ1`` and ``Z2ᵀWZ2`` (the same in every chunk, so the blocks add).
    """

    response: str
    col_offsets: tuple
    q: int
    q1: int
    a21_dense: bool
    a22_dense: bool

    @classmethod
    def of(cls, design: ChunkedDesign) -> ChunkLayout:
        """The layout of a design."""
        re = design.re
        return cls(design.response, tuple(int(v) for v in re.col_offsets), int(re.q), int(re.terms[0].q),
                   bool(design.a21_dense), bool(design.a22_dense))


@dataclass
class PointRequest:
    """A point to evaluate: family, kept fixed-effect columns, β, b = Λθu, the PIRLS flavour, and what
    to sum besides the deviance: the conditional log-likelihood (``loglik``: PIRLS's last point) and the
    working cross-products (``products``)."""

    family: GLMFamily
    keep: np.ndarray
    beta: np.ndarray
    b: np.ndarray
    joint: bool
    layout: ChunkLayout
    loglik: bool = True
    products: bool = True


@dataclass
class PointSums:
    """Sums over rows at one point.

    Attributes
    ----------
    n : int
    deviance : float
        Σ deviance residuals (what PIRLS minimizes with ‖u‖²).
    loglik : float or None
        Σ conditional log-likelihood (None when not asked for).
    low, high : int
        Rows with μ < :data:`EXTREME_EPS` and with μ > 1 − :data:`EXTREME_EPS`.
    blocks : CrossBlocks or None
        Cross-products of the working weights and response.
    """

    n: int
    deviance: float
    loglik: float | None
    low: int
    high: int
    blocks: CrossBlocks | None

    def __add__(self, other: PointSums) -> PointSums:
        if other is None:
            return self
        blocks = other.blocks if self.blocks is None else (self.blocks if other.blocks is None
                                                           else self.blocks + other.blocks)
        loglik = None if self.loglik is None or other.loglik is None else self.loglik + other.loglik
        return PointSums(self.n + other.n, self.deviance + other.deviance, loglik, self.low + other.low,
                         self.high + other.high, blocks)

    __radd__ = __add__


@dataclass
class SetupSums:
    """The first pass after the levels: rows, the unweighted ``XᵀX`` of the full fixed-effects matrix
    (the rank check), the prior-weighted products of Z (the engine's choice), and the factor of
    glm's first weighted least-squares step (the start of β; see
    :func:`~interlace.objective.pirls.glm_start_factor`)."""

    n: int
    XtX: np.ndarray
    blocks: CrossBlocks | None
    start_factor: np.ndarray | None

    def __add__(self, other: SetupSums) -> SetupSums:
        if other is None:
            return self
        blocks = other.blocks if self.blocks is None else (self.blocks if other.blocks is None
                                                           else self.blocks + other.blocks)
        return SetupSums(self.n + other.n, self.XtX + other.XtX, blocks,
                         combine_start_factors(self.start_factor, other.start_factor))

    __radd__ = __add__


def _family_key(family: GLMFamily) -> tuple:
    return family.name, family.link_name, repr(float(family.nb_theta))


def chunk_response(chunk: EncodedChunk, family: GLMFamily, name: str) -> GLMResponse:
    """The chunk's GLM response (proportion and trials for binomial data), checked once; its arrays and
    μ-free terms are kept with the chunk (``saved``: also on disk), the object in its cache."""
    key = ("response", _family_key(family))
    resp = chunk.cache.get(key)
    if resp is not None:
        return resp
    off = np.zeros(chunk.n) if chunk.offset is None else chunk.offset
    saved = chunk.saved.get(key)
    if saved is not None:
        y, w, constants = saved
        resp = GLMResponse.with_constants(y, w, off, family, constants)
    else:
        if family.name == "binomial":
            y, w = binomial_response(chunk.y, chunk.failures, chunk.weights, name)
        else:
            y = chunk.y
            w = np.ones(chunk.n) if chunk.weights is None else chunk.weights
        check_glm_response(y, family, name)
        resp = GLMResponse(np.asarray(y, float), np.asarray(w, float), off, family)
        chunk.saved = {key: (resp.y, resp.weights, resp.constants)}
    chunk.cache[key] = resp
    return resp


def _kept_X(chunk: EncodedChunk, keep: np.ndarray) -> np.ndarray:
    key = ("X", np.asarray(keep, np.intp).tobytes())
    X = chunk.cache.get(key)
    if X is None:
        for k in [k for k in chunk.cache if k[0] == "X"]:
            del chunk.cache[k]
        # in the layout of the in-memory model matrix (pandas gives it column-major), so that BLAS forms
        # each row's Xβ with the same operations
        X = chunk.cache[key] = np.asfortranarray(chunk.X[:, keep])
    return X


def _row_products(chunk: EncodedChunk, layout: ChunkLayout, X: np.ndarray, joint: bool, keep: np.ndarray
                  ) -> RowProducts:
    """The chunk's row products for one flavour, kept while the chunk stays in memory (one flavour at a time:
    stage 1 uses the joint one, stage 2 the other)."""
    key = ("rows", joint, np.asarray(keep, np.intp).tobytes() if joint else b"")
    rows = chunk.cache.get(key)
    if rows is None:
        for k in [k for k in chunk.cache if k[0] == "rows"]:
            del chunk.cache[k]
        terms = chunk.terms(layout.col_offsets, layout.q)
        rows = chunk.cache[key] = RowProducts(terms, X if joint else X[:, :0], "blocked", dense21=layout.a21_dense,
                                              sparse22=not layout.a22_dense)
    return rows


def chunk_point(chunk: EncodedChunk, req: PointRequest) -> PointSums:
    """The sums of one chunk's rows at the point ``req`` (see the module docstring)."""
    if chunk.n == 0:
        return PointSums(0, 0.0, 0.0 if req.loglik else None, 0, 0, None)
    lay = req.layout
    with np.errstate(all="ignore"):
        resp = chunk_response(chunk, req.family, lay.response)
        X = _kept_X(chunk, req.keep)
        Xb = X @ req.beta
        eta = resp.offset + Xb + chunk.zb(req.b, lay.col_offsets)
        mu = resp.mean(eta)
        dev = resp.deviance(mu)
        ll = resp.cond_loglik(mu) if req.loglik else None
        low, high = int(np.sum(mu < EXTREME_EPS)), int(np.sum(mu > 1 - EXTREME_EPS))
        blocks = None
        if req.products:
            w, r = resp.working(eta, mu)
            z = eta - resp.offset + r if req.joint else eta - resp.offset - Xb + r
            cp = _row_products(chunk, lay, X, req.joint, req.keep)(z, w)
            blocks = blocks_of(cp, lay.q1, lay.a21_dense, lay.a22_dense)
    return PointSums(chunk.n, dev, ll, low, high, blocks)


def chunk_setup(chunk: EncodedChunk, family: GLMFamily, layout: ChunkLayout) -> SetupSums:
    """The setup sums of one chunk (:class:`SetupSums`); checks the response on the way."""
    P = chunk.X.shape[1]
    if chunk.n == 0:
        return SetupSums(0, np.zeros((P, P)), None, None)
    resp = chunk_response(chunk, family, layout.response)
    rows = _row_products(chunk, layout, chunk.X, False, np.zeros(0, np.intp))
    cp = rows(np.zeros(chunk.n), resp.weights)
    return SetupSums(chunk.n, chunk.X.T @ chunk.X, blocks_of(cp, layout.q1, layout.a21_dense, layout.a22_dense),
                     glm_start_factor(chunk.X, resp))


# ----------------------------------------------------------------------------- the client side
class ChunkedResponse:
    """The response of a chunked GLMM as PIRLS holds it: the family (the rows stay in the chunks).

    Attributes
    ----------
    family : GLMFamily
    """

    offset = None
    weights = None

    def __init__(self, family: GLMFamily) -> None:
        self.family = family

    def with_params(self, nb_theta: float) -> ChunkedResponse:
        """The same response with another negative-binomial shape."""
        return ChunkedResponse(self.family.with_nb_theta(nb_theta))


class ChunkedPoint:
    """A point evaluated by a pass (:class:`~interlace.objective.pirls.PIRLSPoint`): sums, no rows."""

    eta = None
    mu = None

    def __init__(self, rows: ChunkedRows, req: PointRequest, sums: PointSums) -> None:
        self.rows, self.req, self.sums = rows, req, sums
        self.deviance = float(sums.deviance)
        self._products: dict[bool, CrossProducts] = {}

    def products(self, joint: bool) -> CrossProducts:
        """The products of this point's flavour come with it; the other flavour takes one more pass."""
        if joint not in self._products:
            sums = self.sums if joint == self.req.joint else self.rows.run(replace(self.req, joint=joint,
                                                                                   loglik=False))
            assert sums.blocks is not None, "no rows"
            self._products[joint] = self.rows.cross_products(sums.blocks)
        return self._products[joint]

    def cond_minus2ll(self, resp: Any) -> float:
        """−2 Σ log p(y | u): summed by this point's pass when PIRLS said it would likely stop here,
        else by one more pass (rare: PIRLS stopped where it did not expect to)."""
        if self.sums.loglik is None:
            extra = self.rows.run(replace(self.req, loglik=True, products=False))
            self.sums = replace(self.sums, loglik=extra.loglik)
        assert self.sums.loglik is not None
        return -2.0 * float(self.sums.loglik)

    def extremes(self, eps: float) -> tuple[int, int]:
        if eps != EXTREME_EPS:
            raise ValueError(f"a chunked point counts extreme means at {EXTREME_EPS:g} only")
        return int(self.sums.low), int(self.sums.high)


class ChunkedRows:
    """The rows of a chunked GLMM as PIRLS sees them (:class:`~interlace.objective.pirls.PIRLSRows`).

    Parameters
    ----------
    runner
        Runs a function over every chunk and adds the results (:mod:`interlace.scale.runners`).
    design : ChunkedDesign
    keep : ndarray of int
        Fixed-effect columns kept (R's order, aliased ones dropped).
    engine : str
        The engine's name ("blocked" or "cholmod").
    progress : bool
        Show a tqdm bar counting the passes.

    Attributes
    ----------
    passes : dict
        Passes run, by PIRLS flavour (``"joint"``: stage 1 and nAGQ = 0; ``"conditional"``: stage 2);
        ``"loglik"`` counts those among them that only summed a log-likelihood PIRLS had not announced.
    """

    def __init__(self, runner: Any, design: ChunkedDesign, keep: np.ndarray, engine: str, progress: bool = True
                 ) -> None:
        self.runner = runner
        self.design = design
        self.re = design.re
        self.keep = np.asarray(keep, np.intp)
        self.p = int(self.keep.size)
        self.name = engine
        self.layout = ChunkLayout.of(design)
        self._engines: dict[bool, PLSSystem] = {}
        self._lam: tuple[bytes, Any] | None = None
        self.passes = {"joint": 0, "conditional": 0, "loglik": 0}
        self.start_factor: np.ndarray | None = None
        from tqdm.auto import tqdm  # imported when used: a fit in memory does not need it

        self._bar = tqdm(desc="GLMM passes over the chunks", unit="pass", disable=not progress, leave=False)

    def glm_start(self, resp: Any) -> np.ndarray | None:
        """glm's first weighted least-squares β, from the setup pass's factor (the kept columns)."""
        return glm_start_beta(self.start_factor, self.keep)

    def engine(self, joint: bool) -> PLSSystem:
        if joint not in self._engines:
            self._engines[joint] = make_engine(self.re, self.p if joint else 0, self.name)
        return self._engines[joint]

    def Lambda(self, theta: np.ndarray) -> Any:
        """Λθ (the last one kept)."""
        key = np.asarray(theta, float).tobytes()
        if self._lam is None or self._lam[0] != key:
            self._lam = (key, self.re.Lambda(theta))
        return self._lam[1]

    def point(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, resp: Any, joint: bool,
              final: bool = False) -> ChunkedPoint:
        """One pass at (θ, β, u): the deviance, the working products and, when PIRLS says the point is
        likely its last (``final``), the conditional log-likelihood."""
        b = np.asarray(self.Lambda(theta) @ u, float)
        req = PointRequest(resp.family, self.keep, np.asarray(beta, float), b, bool(joint), self.layout,
                           loglik=bool(final))
        return ChunkedPoint(self, req, self.run(req))

    def run(self, req: PointRequest) -> PointSums:
        """One pass: the sums at ``req``."""
        sums = self.runner.map_reduce(chunk_point, req)
        self.passes["joint" if req.joint else "conditional"] += 1
        if not req.products:
            self.passes["loglik"] += 1
        self._bar.update(1)
        self._bar.set_postfix(deviance=f"{sums.deviance:.6g}", refresh=False)
        return sums

    def cross_products(self, blocks: CrossBlocks) -> CrossProducts:
        """The summed blocks as the engines take them."""
        return self.cross_products_of(self.re, blocks)

    @staticmethod
    def cross_products_of(re: Any, blocks: CrossBlocks) -> CrossProducts:
        """Summed blocks of the structure ``re`` as a :class:`~interlace.linalg.crossprod.CrossProducts`."""
        return CrossProducts.from_blocks(re, blocks.n, blocks.A11, blocks.A21, blocks.A22, blocks.A31, blocks.A32,
                                         blocks.A33)

    @property
    def n_passes(self) -> int:
        """PIRLS passes run so far."""
        return self.passes["joint"] + self.passes["conditional"]

    def close(self) -> None:
        """Close the progress bar."""
        self._bar.close()
