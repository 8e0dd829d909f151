"""Grouping random-effects terms by factor, and lme4's VarCorr table."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design.terms import RandomEffects

__all__ = ["GroupBlock", "group_blocks", "varcorr_frame"]


@dataclass
class GroupBlock:
    """Terms reported together under one grouping-factor name.

    Terms sharing a grouping factor with distinct coefficients (e.g. the two
    terms of ``(x || g)``) are merged, as lme4's ``ranef`` merges them.
    """

    name: str
    term_index: list[int]
    coef_names: list[str]
    levels: pd.Index


def group_blocks(re: RandomEffects) -> list[GroupBlock]:
    """Blocks in the order the user wrote the terms."""
    blocks: list[GroupBlock] = []
    for t in re.user_order:
        k = next(i for i, u in enumerate(re.terms) if u is t)
        match = [b for b in blocks if b.name.split(".")[0] == t.name and not set(b.coef_names) & set(t.coef_names)
                 and b.levels.equals(t.levels)]
        if match:
            match[0].term_index.append(k)
            match[0].coef_names.extend(t.coef_names)
            continue
        name = t.name
        n_same = sum(1 for b in blocks if b.name.split(".")[0] == t.name)
        if n_same:
            name = f"{t.name}.{n_same}"
        blocks.append(GroupBlock(name, [k], list(t.coef_names), t.levels))
    return blocks


def varcorr_frame(covs: dict[str, pd.DataFrame], scale: float | None, blocks: list[GroupBlock]) -> pd.DataFrame:
    """Rows (grp, var1, var2, vcov, sdcor): variances, then covariances/correlations, then the residual
    (omitted when ``scale`` is None, as for binomial and Poisson GLMMs)."""
    rows = []
    for b in blocks:
        C = covs[b.name]
        names = list(C.index)
        sd = np.sqrt(np.diag(C.values))
        for i, a in enumerate(names):
            rows.append((b.name, a, None, C.values[i, i], sd[i]))
        for j in range(len(names)):
            for i in range(j + 1, len(names)):
                c = C.values[i, j]
                r = c / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                rows.append((b.name, names[j], names[i], c, r))
    if scale is not None:
        rows.append(("Residual", None, None, scale, np.sqrt(scale)))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
