"""statsmodels' pandas data of a model whose pandas objects are made on first use.

A model built from a formula knows its response and fixed-effects matrix as arrays, with
their names and the model frame's row labels.  statsmodels keeps them as a Series
(``data.orig_endog``) and a DataFrame (``data.orig_exog``) besides the arrays; making
those costs more than the rest of a small fit's set-up, and a fit never reads them.
:class:`LabelledData` is statsmodels' ``PandasData`` (so results are labelled as usual),
with the names and row labels given and the two pandas objects made when first read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.base.data import PandasData

__all__ = ["LabelledData"]

_MADE_ON_USE = ("orig_endog", "orig_exog")


class LabelledData(PandasData):
    """``PandasData`` of arrays with their labels; ``orig_endog``/``orig_exog`` made on first use.

    Parameters
    ----------
    endog : ndarray (n,)
    exog : ndarray (n, p)
    index : pandas.Index
        Row labels (the model frame's).
    yname : str
        The response's name.
    xnames : list of str
        The columns' names.
    **kwargs
        As statsmodels' ``ModelData`` (``missing``, ``hasconst``, extra arrays).
    """

    def __init__(self, endog: np.ndarray, exog: np.ndarray, index: pd.Index, yname: str, xnames: Sequence[str],
                 **kwargs: Any) -> None:
        super().__init__(endog, exog, **kwargs)
        for key in _MADE_ON_USE:  # statsmodels kept the arrays there: made on first use instead
            self.__dict__.pop(key, None)
        self._labels = (index, yname, list(xnames))

    def __getattr__(self, name: str) -> Any:
        labels = self.__dict__.get("_labels")
        if name not in _MADE_ON_USE or labels is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        index, yname, xnames = labels
        if name == "orig_endog":
            value: Any = pd.Series(self.endog, index=index, name=yname)
        else:
            value = pd.DataFrame(self.exog, index=index, columns=xnames)
        self.__dict__[name] = value
        return value

    @property
    def ynames(self) -> Any:
        """The response's name."""
        return self.__dict__.get("_ynames", self._labels[1])

    @ynames.setter
    def ynames(self, value: Any) -> None:
        self.__dict__["_ynames"] = value

    @property
    def xnames(self) -> list[str] | None:
        """The fixed-effects columns' names."""
        return self.__dict__.get("_xnames", self._labels[2])

    @xnames.setter
    def xnames(self, value: list[str] | None) -> None:
        self.__dict__["_xnames"] = value

    @property
    def row_labels(self) -> pd.Index:
        """The rows' labels."""
        return self._labels[0]
