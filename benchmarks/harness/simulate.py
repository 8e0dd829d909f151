"""Simulated data sets of the benchmark workloads, written as CSV files every tool reads.

Every simulator draws from numpy ``default_rng([SEED, offset])`` with its own offset,
so each data set is the same in every run.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .common import SEED

if TYPE_CHECKING:
    import pandas as pd


def _rng(offset: int):
    """numpy Generator seeded with :data:`SEED` and a workload offset."""
    import numpy as np

    return np.random.default_rng([SEED, offset])


def _write_csv(df, path: Path) -> Path:
    """Write a frame with round-trip float precision (pandas' default repr)."""
    df.to_csv(path, index=False)
    return path


def _levels_all_present(codes, n_levels: int, name: str) -> None:
    """Raise if a simulated grouping factor misses a level."""
    import numpy as np

    if np.unique(codes).size != n_levels:
        raise RuntimeError(f"simulated factor {name} does not use all {n_levels} levels")


def _crossed_levels(rng, n: int, n1: int, n2: int):
    """Levels of two fully crossed factors ``g1``, ``g2``: each of ``n`` rows draws both uniformly."""
    g1 = rng.integers(0, n1, n)
    g2 = rng.integers(0, n2, n)
    _levels_all_present(g1, n1, "g1")
    _levels_all_present(g2, n2, "g2")
    return g1, g2


def make_sleepstudy(directory: Path) -> Path:
    """lme4's sleepstudy (shipped by ``interlace.datasets``) as a CSV."""
    import interlace

    return _write_csv(interlace.datasets.load("sleepstudy"), directory / "sleepstudy.csv")


def simulate_crossed(n: int, n1: int, n2: int, n_x: int, offset: int) -> pd.DataFrame:
    """Two crossed random intercepts and ``n_x`` standard-normal covariates.

    ``y = 1 + sum_k 0.5 k x_k + u1[g1] + u2[g2] + e`` with ``u1 ~ N(0, 1)``,
    ``u2 ~ N(0, 0.5^2)``, ``e ~ N(0, 1)``; each row draws its ``g1`` and ``g2``
    levels uniformly (unbalanced, fully crossed).

    Parameters
    ----------
    n, n1, n2 : int
        Rows and numbers of levels of ``g1`` and ``g2``.
    n_x : int
        Covariates, named ``x`` if one, else ``x1``, ``x2``, ...
    offset : int
        Seed offset.

    Returns
    -------
    DataFrame
        Columns ``y``, the covariates, ``g1``, ``g2`` (integer codes).
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    g1, g2 = _crossed_levels(rng, n, n1, n2)
    X = rng.standard_normal((n, n_x))
    u1 = rng.standard_normal(n1)
    u2 = 0.5 * rng.standard_normal(n2)
    y = 1.0 + X @ (0.5 * np.arange(1, n_x + 1)) + u1[g1] + u2[g2] + rng.standard_normal(n)
    names = ["x"] if n_x == 1 else [f"x{k + 1}" for k in range(n_x)]
    cols = {"y": y, **{nm: X[:, k] for k, nm in enumerate(names)}, "g1": g1, "g2": g2}
    return pd.DataFrame(cols)


def make_crossed_200x100(directory: Path) -> Path:
    """20,000 rows, 200 × 100 crossed levels (:func:`simulate_crossed`)."""
    return _write_csv(simulate_crossed(20_000, 200, 100, 1, offset=2), directory / "crossed_200x100.csv")


def make_idiom_600(directory: Path) -> Path:
    """600 rows, 150 × 12 crossed levels (:func:`simulate_crossed`): the crossed idiom's small case.

    Offset 24 is the first from 9 whose 600 uniform draws use all 150 levels.
    """
    return _write_csv(simulate_crossed(600, 150, 12, 1, offset=24), directory / "idiom_600.csv")


def make_idiom_5000(directory: Path) -> Path:
    """5,000 rows, 100 × 50 crossed levels (:func:`simulate_crossed`)."""
    return _write_csv(simulate_crossed(5000, 100, 50, 1, offset=10), directory / "idiom_5000.csv")


def make_crossed_1m(directory: Path) -> Path:
    """1,000,000 rows, 1,000 × 500 crossed levels, two covariates."""
    return _write_csv(simulate_crossed(1_000_000, 1000, 500, 2, offset=5), directory / "crossed_1m.csv")


def make_slopes_500(directory: Path) -> Path:
    """Correlated random intercept and slope: 500 groups × 100 rows.

    ``y = 2 + 0.8 x + b0[g] + b1[g] x + e`` with ``sd(b0) = 1``, ``sd(b1) = 0.5``,
    ``corr(b0, b1) = 0.3``, ``x, e ~ N(0, 1)``.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(6)
    n_groups, per = 500, 100
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(g.size)
    cov = np.array([[1.0, 0.3 * 0.5], [0.3 * 0.5, 0.25]])
    b = rng.standard_normal((n_groups, 2)) @ np.linalg.cholesky(cov).T
    y = 2.0 + 0.8 * x + b[g, 0] + b[g, 1] * x + rng.standard_normal(g.size)
    return _write_csv(pd.DataFrame({"y": y, "x": x, "g": g}), directory / "slopes_500.csv")


def simulate_crossed_slopes(n: int, n1: int, n2: int, offset: int) -> pd.DataFrame:
    """Correlated random intercepts and slopes on two crossed factors ``a`` and ``b``.

    ``y = 1 + 0.5 x + a0[a] + a1[a] x + b0[b] + b1[b] x + e`` with ``x, e ~ N(0, 1)``;
    ``(a0, a1)``: sds 1 and 0.5, correlation 0.3; ``(b0, b1)``: sds 0.7 and 0.4, correlation
    −0.4.  Each row draws its ``a`` and ``b`` levels uniformly (unbalanced, fully crossed),
    so both covariance matrices are well identified (no variance or correlation near 0).

    Returns
    -------
    DataFrame
        Columns ``y``, ``x``, ``a``, ``b`` (integer codes).
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    a, b = _crossed_levels(rng, n, n1, n2)
    x = rng.standard_normal(n)

    def effects(levels: int, sd0: float, sd1: float, rho: float):
        cov = np.array([[sd0 * sd0, rho * sd0 * sd1], [rho * sd0 * sd1, sd1 * sd1]])
        return rng.standard_normal((levels, 2)) @ np.linalg.cholesky(cov).T

    ua, ub = effects(n1, 1.0, 0.5, 0.3), effects(n2, 0.7, 0.4, -0.4)
    y = 1.0 + 0.5 * x + ua[a, 0] + ua[a, 1] * x + ub[b, 0] + ub[b, 1] * x + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def make_crossed_slopes_200k(directory: Path) -> Path:
    """200,000 rows, random intercepts and slopes on a: 1,000 × b: 500 crossed levels."""
    return _write_csv(simulate_crossed_slopes(200_000, 1000, 500, offset=31), directory / "crossed_slopes_200k.csv")


def make_crossed_slopes_3m(directory: Path) -> Path:
    """3,000,000 rows, random intercepts and slopes on a: 2,000 × b: 1,000 crossed levels."""
    return _write_csv(simulate_crossed_slopes(3_000_000, 2000, 1000, offset=32), directory / "crossed_slopes_3m.csv")


def make_glmm_binary_crossed(directory: Path) -> Path:
    """Binary response, logit link, two crossed random intercepts: 100,000 rows, 1,000 × 200 levels.

    ``P(y = 1) = logistic(-0.5 + 0.8 x + u1[g1] + u2[g2])`` with ``x ~ N(0, 1)``,
    ``u1 ~ N(0, 1)``, ``u2 ~ N(0, 0.5^2)``; each row draws its ``g1`` and ``g2``
    levels uniformly (unbalanced, fully crossed).  ``y`` is written as 0/1.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(7)
    n, n1, n2 = 100_000, 1000, 200
    g1, g2 = _crossed_levels(rng, n, n1, n2)
    x = rng.standard_normal(n)
    u1 = rng.standard_normal(n1)
    u2 = 0.5 * rng.standard_normal(n2)
    eta = -0.5 + 0.8 * x + u1[g1] + u2[g2]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return _write_csv(pd.DataFrame({"y": y, "x": x, "g1": g1, "g2": g2}), directory / "glmm_binary_crossed.csv")


#: Shape of the MovieLens-1M ratings: users, items (movies rated at least once), ratings.
USERS_ITEMS_SHAPE = (6040, 3699, 965_985)


def _counts_with_total(weights, total: int, low: int, high: int):
    """Integer counts ``low ≤ c ≤ high`` proportional to ``weights`` above ``low``, summing to ``total``.

    The share above ``low`` is water-filled under the cap ``high`` and rounded by
    largest remainders, so the result is deterministic and exact.
    """
    import numpy as np

    w = np.asarray(weights, float)
    extra = np.zeros_like(w)
    free = np.ones(w.size, bool)
    left = float(total - low * w.size)
    while True:  # cap the largest shares, hand what they lose to the others
        share = w[free] / w[free].sum() * left
        over = share > high - low
        if not over.any():
            extra[free] = share
            break
        idx = np.flatnonzero(free)[over]
        extra[idx] = high - low
        free[idx] = False
        left -= (high - low) * idx.size
    counts = np.floor(extra).astype(np.int64)
    short = total - low * w.size - int(counts.sum())
    order = np.argsort(-(extra - counts), kind="stable")
    counts[order[:short]] += 1
    return counts + low


def simulate_users_items(n_users: int, n_items: int, n: int, offset: int) -> pd.DataFrame:
    """Ratings of the MovieLens-1M shape: each user rates distinct items, with skewed counts.

    User activity (ratings per user) is ``20 + lognormal(0, 1.1)`` scaled to ``n``
    rows in total and capped at 2,314 (MovieLens-1M's minimum 20 and maximum);
    item popularity is ``lognormal(0, 1.2)``.  Each user draws its items without
    replacement with probability proportional to popularity (Gumbel top-k), so a
    (user, item) pair occurs at most once, as in real ratings; an item nobody drew
    would take the place of one rating of the most-rated item of a random user (it
    does not happen with this seed).  ``y = 3.6 + u[user] + v[item] + e`` with
    ``u ~ N(0, 0.45^2)``, ``v ~ N(0, 0.55^2)``, ``e ~ N(0, 0.9^2)``: a continuous
    response on the scale of 1–5 star ratings.

    Returns
    -------
    DataFrame
        Columns ``y``, ``user``, ``item`` (integer codes), sorted by user.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    per_user = _counts_with_total(rng.lognormal(0.0, 1.1, n_users), n, 20, 2314)
    log_pop = np.log(rng.lognormal(0.0, 1.2, n_items))
    items = []
    for k in per_user:
        keys = log_pop - np.log(-np.log(rng.random(n_items)))  # Gumbel top-k: weighted, no replacement
        items.append(np.sort(np.argpartition(-keys, k - 1)[:k]))
    user = np.repeat(np.arange(n_users), per_user)
    item = np.concatenate(items)
    per_item = np.bincount(item, minlength=n_items)
    starts = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    for j in np.flatnonzero(per_item == 0):  # repair (not needed with the default seed)
        u = int(rng.integers(n_users))
        rows = np.arange(starts[u], starts[u] + per_user[u])
        r = rows[np.argmax(per_item[item[rows]])]
        per_item[item[r]] -= 1
        item[r] = j
        per_item[j] += 1
    _levels_all_present(user, n_users, "user")
    _levels_all_present(item, n_items, "item")
    y = 3.6 + 0.45 * rng.standard_normal(n_users)[user] + 0.55 * rng.standard_normal(n_items)[item] \
        + 0.9 * rng.standard_normal(n)
    return pd.DataFrame({"y": y, "user": user, "item": item})


def make_users_items(directory: Path) -> Path:
    """MovieLens-1M shape: 965,985 ratings, 6,040 users × 3,699 items (:func:`simulate_users_items`)."""
    return _write_csv(simulate_users_items(*USERS_ITEMS_SHAPE, offset=8), directory / "users_items.csv")


# ----------------------------------------------------------------------------- survival (coxme)
def simulate_frailty(n: int, n_groups: int, offset: int, n_b: int = 0) -> pd.DataFrame:
    """Right-censored survival times with a Gaussian frailty per group (and a second, crossed one).

    Hazard ``exp(0.5 x - 0.3 z + u[g] (+ v[b]))`` with ``x ~ N(0, 1)``, ``z ~ Bernoulli(0.5)``,
    ``u ~ N(0, 0.5^2)``, ``v ~ N(0, 0.3^2)``; exponential event times, exponential(mean 2)
    censoring; times rounded to 0.001 (ties) plus 0.001 (no zero time).  Each row draws its
    group (and ``b`` level) uniformly.

    Parameters
    ----------
    n, n_groups : int
        Rows and levels of ``g`` (``a`` when ``n_b`` is given).
    offset : int
        Seed offset.
    n_b : int
        Levels of a second, crossed factor ``b`` (0: none).

    Returns
    -------
    DataFrame
        ``time``, ``status`` (1 = event), ``x``, ``z``, ``g`` (or ``a`` and ``b``), integer codes.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    g = rng.integers(0, n_groups, n)
    x, z = rng.standard_normal(n), rng.binomial(1, 0.5, n)
    eta = 0.5 * x - 0.3 * z + 0.5 * rng.standard_normal(n_groups)[g]
    cols: dict = {}
    if n_b:
        b = rng.integers(0, n_b, n)
        _levels_all_present(b, n_b, "b")
        eta = eta + 0.3 * rng.standard_normal(n_b)[b]
        cols["b"] = b
    _levels_all_present(g, n_groups, "g")
    t = rng.exponential(1.0 / np.exp(eta))
    c = rng.exponential(2.0, n)
    return pd.DataFrame({"time": np.minimum(t, c).round(3) + 0.001, "status": (t <= c).astype(np.int64), "x": x,
                         "z": z, ("a" if n_b else "g"): g, **cols})


def make_cox_5k(directory: Path) -> Path:
    """5,000 rows, 100 frailty groups (:func:`simulate_frailty`)."""
    return _write_csv(simulate_frailty(5_000, 100, offset=11), directory / "cox_5k.csv")


def make_cox_100k(directory: Path) -> Path:
    """100,000 rows, 1,000 frailty groups (:func:`simulate_frailty`)."""
    return _write_csv(simulate_frailty(100_000, 1_000, offset=12), directory / "cox_100k.csv")


def make_cox_crossed_20k(directory: Path) -> Path:
    """20,000 rows, crossed frailties: ``a`` 200 levels × ``b`` 50 levels (:func:`simulate_frailty`)."""
    return _write_csv(simulate_frailty(20_000, 200, offset=13, n_b=50), directory / "cox_crossed_20k.csv")


def simulate_counting_strata(n_subjects: int, n_groups: int, n_strata: int, offset: int) -> pd.DataFrame:
    """Counting-process rows ``(tstart, tstop]``: a covariate that changes at 0.5, 1 and 1.5, four
    baseline hazards (strata ``site``), a frailty per group ``g``.

    Each subject's ``x`` is redrawn from N(0, 1) on each interval; hazard
    ``base[site] exp(0.5 x - 0.3 z + u[g])`` with ``base = (0.8, 1, 1.2, 1.5)``,
    ``u ~ N(0, 0.5^2)``, ``z ~ Bernoulli(0.5)``; uniform(0.5, 3) censoring; the subject
    leaves at its first event.  Stop times are rounded to 0.001.

    Returns
    -------
    DataFrame
        ``id``, ``tstart``, ``tstop``, ``status``, ``x``, ``z``, ``site``, ``g``.
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    g = rng.integers(0, n_groups, n_subjects)
    site = rng.integers(0, n_strata, n_subjects)
    u = 0.5 * rng.standard_normal(n_groups)[g]
    z = rng.binomial(1, 0.5, n_subjects)
    cuts = [0.0, 0.5, 1.0, 1.5, np.inf]
    base = np.array([0.8, 1.0, 1.2, 1.5])[site % 4]
    X = rng.standard_normal((n_subjects, 4))
    cens = rng.uniform(0.5, 3.0, n_subjects)
    alive = np.ones(n_subjects, bool)
    parts = []
    for j in range(4):
        lo, hi = cuts[j], cuts[j + 1]
        at = alive & (lo < cens)
        end = np.minimum(hi, cens)
        t_ev = lo + rng.exponential(1.0 / (base * np.exp(0.5 * X[:, j] - 0.3 * z + u)))
        ev = at & (t_ev <= end)
        stop = np.where(ev, t_ev, end).round(3)
        idx = np.flatnonzero(at & (stop > lo))
        parts.append(pd.DataFrame({"id": idx, "tstart": lo, "tstop": stop[idx], "status": ev[idx].astype(np.int64),
                                   "x": X[idx, j], "z": z[idx], "site": site[idx], "g": g[idx]}))
        alive = at & ~ev & (hi < cens)
    _levels_all_present(g, n_groups, "g")
    return pd.concat(parts).sort_values(["id", "tstart"], kind="stable").reset_index(drop=True)


def make_cox_strata_counting(directory: Path) -> Path:
    """10,000 subjects in about 20,000 (start, stop] rows, four strata, 200 frailty groups."""
    return _write_csv(simulate_counting_strata(10_000, 200, 4, offset=14), directory / "cox_strata_counting.csv")


# ----------------------------------------------------------------------------- ordinal (ordinal::clmm)
def simulate_clmm_crossed(n: int, n_judges: int, n_items: int, offset: int) -> pd.DataFrame:
    """Ordinal ratings in 5 categories from a logistic latent variable with crossed judge and item effects.

    Latent ``0.8 x + u[judge] + v[item] + e`` with ``x ~ N(0, 1)``, ``u ~ N(0, 1)``,
    ``v ~ N(0, 0.5^2)`` and ``e`` standard logistic, cut at thresholds (−2, −0.7, 0.7, 2)
    into ratings 1 … 5; each row draws its judge and item uniformly (unbalanced, fully crossed).

    Returns
    -------
    DataFrame
        ``rating`` (integers 1 … 5), ``x``, ``judge``, ``item`` (integer codes).
    """
    import numpy as np
    import pandas as pd

    rng = _rng(offset)
    judge = rng.integers(0, n_judges, n)
    item = rng.integers(0, n_items, n)
    _levels_all_present(judge, n_judges, "judge")
    _levels_all_present(item, n_items, "item")
    x = rng.standard_normal(n)
    u = rng.standard_normal(n_judges)
    v = 0.5 * rng.standard_normal(n_items)
    latent = 0.8 * x + u[judge] + v[item] + rng.logistic(size=n)
    rating = 1 + np.searchsorted(np.array([-2.0, -0.7, 0.7, 2.0]), latent)
    return pd.DataFrame({"rating": rating.astype(np.int64), "x": x, "judge": judge, "item": item})


def make_clmm_crossed(directory: Path) -> Path:
    """10,000 ordinal ratings, 100 judges × 50 items crossed (:func:`simulate_clmm_crossed`)."""
    return _write_csv(simulate_clmm_crossed(10_000, 100, 50, offset=31), directory / "clmm_crossed.csv")
