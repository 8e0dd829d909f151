"""Cluster bootstrap: resample whole levels of a grouping factor."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..design.terms import group_labels

__all__ = ["cluster_bootstrap_se", "cluster_resample_indices"]


def cluster_resample_indices(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row positions of one cluster resample: draw as many levels as there are, with replacement."""
    nlev = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=nlev))])
    drawn = rng.integers(0, nlev, nlev)
    return np.concatenate([order[starts[g]:starts[g + 1]] for g in drawn])


def cluster_bootstrap_se(frame: pd.DataFrame, group: tuple[str, ...], column: str,
                         statistic: str | Callable = "median", n_bootstrap: int = 1000,
                         seed: int | None = None, progress: bool = False) -> float:
    """Standard error of ``statistic`` under resampling of whole clusters.

    Parameters
    ----------
    frame : DataFrame
        Rows used in the fit.
    group : tuple of str
        Columns defining the clusters.
    column : str
        Column summarised by ``"median"`` / ``"mean"``.
    statistic : {"median", "mean"} or callable
        A callable receives the resampled DataFrame and returns a float.
    n_bootstrap : int
    seed : int, optional

    Returns
    -------
    float
        Standard deviation (ddof=1) of the bootstrap replicates.
    """
    if n_bootstrap < 2:
        raise ValueError("n_bootstrap must be at least 2")
    if isinstance(statistic, str):
        funcs = {"median": np.median, "mean": np.mean}
        if statistic not in funcs:
            raise ValueError(f"statistic must be 'median', 'mean' or a callable, got {statistic!r}")
        values = frame[column].to_numpy(float)
        f = funcs[statistic]
        stat = lambda idx: f(values[idx])  # noqa: E731
    elif callable(statistic):
        stat = lambda idx: float(statistic(frame.iloc[idx]))  # noqa: E731
    else:
        raise ValueError(f"statistic must be 'median', 'mean' or a callable, got {statistic!r}")
    codes, _ = pd.factorize(group_labels(frame, group), sort=True)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_bootstrap)
    from tqdm.auto import tqdm  # imported when used: a fit does not need it

    for i in tqdm(range(n_bootstrap), disable=not progress, desc="cluster bootstrap"):
        reps[i] = stat(cluster_resample_indices(codes, rng))
    return float(np.std(reps, ddof=1))
