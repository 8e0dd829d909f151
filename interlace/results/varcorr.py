"""Grouping random-effects terms by factor, and lme4's VarCorr table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..design.terms import RandomEffects

__all__ = ["ByGroup", "GroupBlock", "VarianceComponents", "group_aliases", "group_blocks", "varcorr_frame"]


@dataclass
class GroupBlock:
    """Terms reported together under one grouping-factor name.

    Terms sharing a grouping factor with distinct coefficients (e.g. the two
    terms of ``(x || g)``) are merged, as lme4's ``ranef`` merges them.

    Attributes
    ----------
    name : str
        lme4's name (``"cask:batch"`` for the inner term of ``(1 | batch/cask)``).
    aliases : tuple of str
        Other names the group answers to: the columns in the order the formula wrote
        them (``"batch:cask"``).
    """

    name: str
    term_index: list[int]
    coef_names: list[str]
    levels: pd.Index
    aliases: tuple[str, ...] = ()


def group_aliases(blocks: list[GroupBlock]) -> dict[str, str]:
    names = {b.name for b in blocks}
    return {a: b.name for b in blocks for a in b.aliases if a not in names}


class ByGroup(dict):
    """Per-group results keyed by lme4's group names, that also answer to the names as the
    formula wrote them (``out["batch:cask"]`` is ``out["cask:batch"]``)."""

    def __init__(self, items: Any, aliases: dict[str, str]) -> None:
        super().__init__(items)
        self.aliases = aliases

    def __missing__(self, key: Any) -> Any:
        if isinstance(key, str) and key in self.aliases:
            return self[self.aliases[key]]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and key in self.aliases)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default


class VarianceComponents(pd.Series):
    """Variances indexed by (group, coefficient) whose group level also answers to the names as
    the formula wrote them (``vc["batch:cask"]`` is ``vc["cask:batch"]``)."""

    _metadata = ["aliases"]

    @property
    def _constructor(self) -> type:
        return VarianceComponents

    def __getitem__(self, key: Any) -> Any:
        aliases = getattr(self, "aliases", None) or {}
        if isinstance(key, str) and key in aliases:
            key = aliases[key]
        elif isinstance(key, tuple) and key and isinstance(key[0], str) and key[0] in aliases:
            key = (aliases[key[0]], *key[1:])
        return super().__getitem__(key)


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
        written = ":".join(reversed(t.spec.group))  # the formula's order: batch:cask for (1 | batch/cask)
        aliases = (written,) if written != name and len(t.spec.group) > 1 and not n_same else ()
        blocks.append(GroupBlock(name, [k], list(t.coef_names), t.levels, aliases))
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
