"""patsy designs that pickle: :class:`StoredDesignInfo`.

patsy refuses to pickle its ``DesignInfo`` (and the factors, terms, contrast matrices and
stateful transforms inside it), which would make every model and result that can encode new
data unpicklable.  A :class:`StoredDesignInfo` is a ``DesignInfo`` that pickles as what
defines it and is rebuilt from that on loading:

* per factor: its code (``"C(g, Sum)"``, ``"center(x)"``), where it sits in the formula,
  numerical (its column count) or categorical (its levels, in order), and the fitted
  state of its stateful transforms (``center``'s mean, ``standardize``'s mean and SD, a
  spline's knots);
* per term: its factors and, per subterm, the contrast matrices (coding of each level);
* the column names.

The rebuilt design encodes new data exactly as the original (same columns, same
levels, same transforms); ``copy.deepcopy`` returns the same design (it is never
modified once built).  Every design interlace builds is made one by :func:`storable`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import patsy
from patsy.contrasts import ContrastMatrix
from patsy.desc import Term
from patsy.design_info import FactorInfo, SubtermInfo
from patsy.eval import EvalFactor
from patsy.origin import Origin

from .frame import EVAL_NAMESPACE

__all__ = ["EVAL_ENV", "StoredDesignInfo", "storable"]

#: The namespace formulas are evaluated in (interlace's, see :data:`~interlace.design.frame.EVAL_NAMESPACE`).
EVAL_ENV = patsy.EvalEnvironment([EVAL_NAMESPACE])


def _origin(o: Origin | None) -> tuple[str, int, int] | None:
    return None if o is None else (o.code, o.start, o.end)


def _design_state(di: patsy.DesignInfo) -> dict:
    """What defines ``di``, in plain Python objects (see the module docstring)."""
    factors = []
    for f, fi in di.factor_infos.items():
        if not isinstance(f, EvalFactor):  # pragma: no cover - interlace builds EvalFactors only
            raise TypeError(f"cannot store a design with a {type(f).__name__} factor")
        transforms = {name: dict(vars(obj)) for name, obj in fi.state.get("transforms", {}).items()}
        factors.append({"code": f.code, "origin": _origin(f.origin), "type": fi.type,
                        "num_columns": fi.num_columns, "categories": fi.categories, "transforms": transforms})
    terms = []
    for term, subterms in di.term_codings.items():
        subs = [{"factors": [f.code for f in s.factors], "num_columns": s.num_columns,
                 "contrasts": {f.code: (cm.matrix, list(cm.column_suffixes))
                               for f, cm in s.contrast_matrices.items()}} for s in subterms]
        terms.append({"factors": [f.code for f in term.factors], "subterms": subs})
    return {"column_names": list(di.column_names), "factors": factors, "terms": terms}


def _rebuild(state: dict) -> StoredDesignInfo:
    """The design described by :func:`_design_state`'s ``state``."""
    by_code: dict[str, EvalFactor] = {}
    factor_infos = {}
    for f in state["factors"]:
        origin = None if f["origin"] is None else Origin(*f["origin"])
        factor = EvalFactor(f["code"], origin=origin)
        fstate: dict[str, Any] = {}
        # recreates the evaluation namespace, the transform objects and the code that calls them
        factor.memorize_passes_needed(fstate, EVAL_ENV)
        for name, attrs in f["transforms"].items():
            vars(fstate["transforms"][name]).update(attrs)
        by_code[f["code"]] = factor
        factor_infos[factor] = FactorInfo(factor, f["type"], fstate, num_columns=f["num_columns"],
                                          categories=f["categories"])
    codings: OrderedDict = OrderedDict()
    for t in state["terms"]:
        subs = [SubtermInfo([by_code[c] for c in s["factors"]],
                            {by_code[c]: ContrastMatrix(m, sfx) for c, (m, sfx) in s["contrasts"].items()},
                            s["num_columns"]) for s in t["subterms"]]
        codings[Term([by_code[c] for c in t["factors"]])] = subs
    return StoredDesignInfo(state["column_names"], factor_infos, codings)


class StoredDesignInfo(patsy.DesignInfo):
    """A patsy ``DesignInfo`` that pickles (see the module docstring)."""

    def __reduce__(self) -> tuple:
        return (_rebuild, (_design_state(self),))

    def __copy__(self) -> StoredDesignInfo:
        return self

    def __deepcopy__(self, memo: dict) -> StoredDesignInfo:
        return self


def storable(di: patsy.DesignInfo) -> StoredDesignInfo:
    """``di`` as a :class:`StoredDesignInfo` (same factors, terms and states)."""
    if isinstance(di, StoredDesignInfo):
        return di
    return StoredDesignInfo(di.column_names, di.factor_infos, di.term_codings)
