"""statsmodels' ``MixedLM`` interface on interlace's engine.

:class:`MixedLM` accepts the calls ``statsmodels.regression.mixed_linear_model.MixedLM``
accepts (``MixedLM(endog, exog, groups, exog_re, exog_vc)``,
``MixedLM.from_formula(formula, data, groups=..., re_formula=..., vc_formula=...)``)
and offers its methods (``fit`` with ``free=``, ``fe_pen``, ``cov_pen``;
``fit_regularized``; ``loglike``, ``score``, ``score_full``, ``score_sqrt``,
``hessian``; ``get_fe_params``, ``get_scale``, ``get_distribution``), returning results
with MixedLM's attribute names, shapes and conventions
(:class:`~interlace.results.mixedlm.MixedLMResults`).  The estimates come from
interlace's penalized-least-squares engines and lme4's criterion.

MixedLM's model in lme4 terms (``g`` the ``groups`` factor): ``exog_re`` is
``(exog_re | g)`` with an unstructured covariance; each variance component is a set of
independent coefficients within each group sharing one variance.  How these become
random-effects terms — one term grouped by ``g``, or a term of its own for a component
made of a factor's indicator columns (the crossed idiom) — is
:mod:`interlace.design.mixedlm_terms`; derivatives in MixedLM's parameters are
:mod:`interlace.objective.mixedlm_profile`.

Parameter conventions (MixedLM's "profile parameterization"): ``cov_re`` and
``vcomp`` are divided by the residual variance ``scale``, so ``cov_re / scale``
is ``T Tᵀ`` of lme4's relative covariance factor and ``vcomp / scale = θ²``.
"""
from __future__ import annotations

import builtins
import copy
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import patsy
import scipy.sparse as sp
from statsmodels.base.model import LikelihoodModel, Model
from statsmodels.tools.sm_exceptions import SingularMatrixWarning, ValueWarning

from ..design.covariance import PatternedCholesky, Unstructured
from ..design.dataframe import align_vector, to_pandas
from ..design.fixed import build_fixed, build_matrix, check_columns
from ..design.frame import EVAL_NAMESPACE, formula_names, numeric_columns
from ..design.mixedlm_terms import LAYOUTS, VCLayout, free_masks, layout_mixedlm
from ..errors import ConvergenceWarning, DataError, FormulaError, InterlaceError, warn_user
from ..linalg.engines import RowEngines, parse_engine
from ..linalg.threads import blas_limits
from ..objective import LMMDeviance
from ..objective.constrained import HeldObjective, PenalizedObjective
from ..objective.lmm import check_exact_fit, sigma_zero_message
from ..objective.mixedlm_profile import GroupedDesign
from ..optimize import OptSummary, minimize_checked
from ..optimize.checks import warn_messages
from ..optimize.lasso import l1_coordinate_descent

if TYPE_CHECKING:
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    from ..results.mixedlm import MixedLMResultsWrapper

__all__ = ["MixedLM", "MixedLMDistribution", "VCSpec", "mixedlm"]

#: statsmodels optimizer names -> interlace optimizers.  The parameters are bounded
#: (variances ≥ 0), so the unconstrained gradient methods map to L-BFGS-B.
_METHODS = {
    "bobyqa": "bobyqa", "pybobyqa": "pybobyqa", "nlopt_bobyqa": "nlopt_bobyqa",
    "lbfgs": "L-BFGS-B", "l-bfgs-b": "L-BFGS-B", "bfgs": "L-BFGS-B", "cg": "L-BFGS-B",
    "nm": "Nelder-Mead", "nelder-mead": "Nelder-Mead", "powell": "Powell",
}
#: MixedLM.fit's optimizer tolerances: accepted and ignored (interlace's optimizers
#: have their own stopping rules).
_IGNORED_FIT_KWARGS = ("gtol", "maxiter", "eps", "maxcor", "ftol", "tol", "disp", "maxls")
#: interlace's own ``fit`` options.
_OWN_FIT_KWARGS = ("maxfun", "check_conv", "optimizer_options", "blas_threads")
_INIT_KWARGS = ("missing_idx", "model_spec", "design_info", "formula")
#: statsmodels 0.15 renamed the models' ``design_info`` keyword to ``model_spec``.
_SPEC_KW = "model_spec" if "model_spec" in getattr(Model, "_kwargs_allowed", ["model_spec"]) else "design_info"
#: statsmodels' warning when a covariance passed to GLS is singular.
_SINGULAR_COV = "Random effects covariance is singular"


class VCSpec:
    """Variance-component designs, in statsmodels' layout.

    Parameters
    ----------
    names : list of str
        Component names.
    colnames : list of list of list of str
        ``colnames[k][i]``: column names of component ``k`` in group ``i``.
    mats : list of list of array
        ``mats[k][i]``: design of component ``k`` for the rows of group ``i``
        (groups in sorted order, rows in data order; dense or scipy sparse).
    """

    def __init__(self, names: Iterable[str], colnames: Sequence[Sequence[Sequence[str]]],
                 mats: Sequence[Sequence[Any]]) -> None:
        self.names = list(names)
        self.colnames = colnames
        self.mats = mats


def _vc_from_dict(exog_vc: dict) -> VCSpec:
    """MixedLM's older ``{name: {group: matrix}}`` format → :class:`VCSpec` (names and groups sorted)."""
    groups = sorted(set().union(*[set(v) for v in exog_vc.values()])) if exog_vc else []
    names = sorted(exog_vc)
    colnames, mats = [], []
    for k in names:
        cn, ms = [], []
        for g in groups:
            if g not in exog_vc[k]:
                raise DataError(f"variance component {k!r} has no design for group {g!r}")
            m = exog_vc[k][g]
            cn.append(list(m.columns) if hasattr(m, "columns") else [str(j) for j in range(np.shape(m)[1])])
            ms.append(m)
        colnames.append(cn)
        mats.append(ms)
    return VCSpec(names, colnames, mats)


def _re_param_names(re_names: list[str], vc_names: list[str]) -> list[str]:
    """MixedLM's names of the variance parameters: lower triangle of cov_re by rows, then components."""
    out = []
    for i, a in enumerate(re_names):
        for j in range(i + 1):
            out.append(f"{a} Var" if i == j else f"{re_names[j]} x {a} Cov")
    return out + [f"{v} Var" for v in vc_names]


def _vc_matrix(m: Any) -> Any:
    """A component's design for one group: float ndarray (2-d) or CSR matrix."""
    if sp.issparse(m):
        return sp.csr_matrix(m, dtype=float)
    m = np.asarray(m, dtype=float)
    return m[:, None] if m.ndim == 1 else np.ascontiguousarray(m)


def _finite(name: str, values: Any) -> None:
    if values is None:
        return
    a = np.asarray(values, dtype=float)
    bad = int(np.sum(~np.isfinite(a)))
    if bad:
        raise DataError(f"{name} has {bad} missing or non-finite values; drop those rows or pass missing='drop'")


class MixedLM(LikelihoodModel):
    """Linear mixed model with statsmodels MixedLM's interface, fitted by interlace's engine.

    Parameters
    ----------
    endog : array-like (n,)
        Response.
    exog : array-like (n, k_fe)
        Fixed-effects design.
    groups : array-like (n,)
        Group labels; observations in different groups are independent.
    exog_re : array-like (n, k_re), optional
        Design of the correlated random coefficients of each group.  Default: a
        random intercept (unless only variance components are given).
    exog_vc : VCSpec or dict, optional
        Variance components: within each group, every column of component ``k``'s
        design gets an independent random coefficient, and all of them share the
        variance ``vcomp[k]``.  The ``{name: {group: matrix}}`` dict is MixedLM's
        deprecated format (accepted with a FutureWarning, as MixedLM does).
    use_sqrt : bool
        The parameterization of packed vectors (``start_params``, ``score``, ``free``):
        the Cholesky factor of ``cov_re`` and the square roots of ``vcomp`` when True.
    missing : {"none", "drop", "raise"}
        Missing-value handling for the arrays (statsmodels' data handling).  With
        ``"none"`` a missing or infinite value raises (statsmodels would compute NaN).
    engine : {"auto", "blocked", "cholmod"}
        interlace's sparse Cholesky engine (an interlace extension).
    vc_layout : {"auto", "grouped", "factors"}
        How variance components become random-effects terms (an interlace extension;
        :mod:`interlace.design.mixedlm_terms`): ``"factors"`` gives a component made of
        a factor's indicator columns a term of its own (crossed factors become crossed
        terms), ``"grouped"`` keeps every component in the term of ``groups``, ``"auto"``
        chooses the cheaper.  The fit is the same.

    Examples
    --------
    >>> import interlace.api as smf
    >>> from interlace import datasets
    >>> md = smf.mixedlm("Reaction ~ Days", datasets.load("sleepstudy"), groups="Subject", re_formula="~Days")
    >>> mdf = md.fit()
    >>> round(float(mdf.fe_params["Days"]), 4)
    10.4673
    """

    def __init__(self, endog: npt.ArrayLike, exog: npt.ArrayLike, groups: npt.ArrayLike,
                 exog_re: npt.ArrayLike | None = None, exog_vc: VCSpec | dict | None = None, use_sqrt: bool = True,
                 missing: str = "none", engine: str = "auto", vc_layout: str = "auto", **kwargs: Any) -> None:
        bad = [k for k in kwargs if k not in _INIT_KWARGS]
        if bad:
            raise ValueError(f"argument {bad[0]} not permitted for MixedLM initialization")
        for k in ("model_spec", "design_info"):  # either name, passed on under the installed one's
            if k in kwargs and k != _SPEC_KW:
                kwargs[_SPEC_KW] = kwargs.pop(k)
        if vc_layout not in LAYOUTS:
            raise InterlaceError(f"unknown vc_layout {vc_layout!r}: use one of {', '.join(LAYOUTS)}")
        self.use_sqrt = bool(use_sqrt)
        self.engine = parse_engine(engine)
        self.vc_layout = vc_layout
        self.reml = True
        self.fe_pen: Any = None
        self.cov_pen: Any = None
        self._freepat: Any = None
        if isinstance(exog_vc, dict):
            warnings.warn("Using deprecated variance components format", FutureWarning, stacklevel=2)
            exog_vc = _vc_from_dict(exog_vc)
        self.exog_vc = exog_vc if exog_vc is not None else VCSpec([], [], [])
        self.k_vc = len(self.exog_vc.names)
        if isinstance(exog, np.ndarray) and exog.ndim == 1:
            exog = exog[:, None]
        if isinstance(exog_re, np.ndarray) and exog_re.ndim == 1:
            exog_re = exog_re[:, None]
        exog_re_in = exog_re
        super().__init__(endog, exog, groups=groups, exog_re=exog_re, missing=missing, **kwargs)
        self._init_keys.extend(["use_sqrt", "exog_vc", "engine", "vc_layout"])
        self.k_fe = self.exog.shape[1]
        _finite("endog", self.endog)
        _finite("exog", self.exog)
        if exog_re is None and self.k_vc == 0:  # default: random intercept
            self.k_re = 1
            self.exog_re = np.ones((len(self.endog), 1))
            self.data.exog_re = self.exog_re
            re_names = ["Group Var"]
            param_names = list(self.exog_names) + re_names
            re_names_full = re_names
        else:
            if exog_re is not None:
                self.exog_re = np.ascontiguousarray(np.asarray(self.exog_re, dtype=float))
                if self.exog_re.ndim == 1:
                    self.exog_re = self.exog_re[:, None]
                _finite("exog_re", self.exog_re)
                self.k_re = self.exog_re.shape[1]
                self.data.exog_re = exog_re
                if isinstance(exog_re_in, pd.DataFrame):
                    re_names = [str(c) for c in exog_re_in.columns]
                elif isinstance(exog_re_in, pd.Series) and exog_re_in.name is not None:
                    re_names = [str(exog_re_in.name)]
                else:
                    re_names = [f"x_re{k + 1}" for k in range(self.k_re)]
            else:
                self.k_re = 0
                re_names = []
            re_names_full = _re_param_names(re_names, [])
            param_names = list(self.exog_names) + re_names_full + [f"{v} Var" for v in self.exog_vc.names]
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_params = self.k_fe + self.k_re2 + self.k_vc
        self.data.param_names = param_names
        self.data.exog_re_names = re_names
        self.data.exog_re_names_full = re_names_full
        self.data.re_param_names = list(param_names[self.k_fe:])
        self.group_name = "Group"
        self._setup_groups()

    # ------------------------------------------------------------------ structure
    def _setup_groups(self) -> None:
        """Group bookkeeping (MixedLM's attributes) and the random-effects terms."""
        g = np.asarray(self.groups)
        if g.ndim != 1 or g.shape[0] != self.endog.shape[0]:
            raise DataError(f"groups must be a vector of length {self.endog.shape[0]}")
        codes, levels = pd.factorize(g, sort=True)
        if (codes < 0).any():
            raise DataError("groups has missing values (use missing='drop')")
        self._group_codes = codes.astype(np.int64)
        self.group_labels = list(levels)
        self.n_groups = len(self.group_labels)
        order = np.argsort(self._group_codes, kind="stable")
        bounds = np.searchsorted(self._group_codes[order], np.arange(self.n_groups + 1))
        self._group_rows = [order[bounds[i]:bounds[i + 1]] for i in range(self.n_groups)]
        self.row_indices = {lab: list(self._group_rows[i]) for i, lab in enumerate(self.group_labels)}
        self.nobs = self.endog.shape[0]
        self.n_totobs = self.nobs
        self.df_model = self.k_fe - 1
        self.df_resid = self.nobs - self.k_fe
        self._vc_mats = self._check_vc()
        self._build_terms()

    def _check_vc(self) -> list[list[Any]]:
        """The components' designs, one per group, checked against the groups' row counts."""
        out = []
        for j, vname in enumerate(self.exog_vc.names):
            mats = self.exog_vc.mats[j]
            if len(mats) != self.n_groups:
                raise DataError(f"variance component {vname!r} has designs for {len(mats)} groups, "
                                f"the data have {self.n_groups}")
            ms = []
            for i, m in enumerate(mats):
                m = _vc_matrix(m)
                rows = self._group_rows[i]
                if m.shape[0] != rows.size:
                    raise DataError(f"variance component {vname!r}: group {self.group_labels[i]!r} has "
                                    f"{rows.size} rows but its design has {m.shape[0]}")
                if not np.all(np.isfinite(m.data if sp.issparse(m) else m)):
                    raise DataError(f"variance component {vname!r}: group {self.group_labels[i]!r} has "
                                    "missing or non-finite values in its design")
                ms.append(m)
            out.append(ms)
        return out

    def _build_terms(self) -> None:
        """The default layout of the random effects (:func:`~interlace.design.mixedlm_terms.layout_mixedlm`)."""
        self._layouts: dict[Any, VCLayout] = {}
        self._engines: dict[Any, RowEngines] = {}
        self._deviances: dict[tuple, LMMDeviance] = {}
        self._grouped_design: GroupedDesign | None = None
        self._layout = self._make_layout(None)
        self.random_effects_structure = self._layout.re

    def _make_layout(self, pattern: tuple | None) -> VCLayout:
        """The layout with ``cov_re``'s Cholesky factor restricted to ``pattern`` (None: unstructured)."""
        if pattern not in self._layouts:
            cov = None
            if self.k_re:
                cov = Unstructured(self.k_re) if pattern is None else \
                    PatternedCholesky(np.array(pattern, bool).reshape(self.k_re, self.k_re))
            self._layouts[pattern] = layout_mixedlm(
                self._group_codes, self._group_rows, str(self.group_name),
                np.asarray(self.exog_re, float) if self.k_re else None, cov, list(self.data.exog_re_names),
                list(self.exog_vc.names), self._vc_mats, self.vc_layout)
        return self._layouts[pattern]

    @property
    def _X(self) -> np.ndarray:
        """``exog`` as a C-ordered float array (pandas input gives Fortran order; the same
        memory layout makes arrays and formulas give bit-identical fits)."""
        return np.ascontiguousarray(self.exog, dtype=float)

    @property
    def _y(self) -> np.ndarray:
        return np.ascontiguousarray(self.endog, dtype=float)

    @property
    def grouped_design(self) -> GroupedDesign:
        """The data split by group, with the algebra of MixedLM's profile likelihood."""
        if self._grouped_design is None:
            self._grouped_design = GroupedDesign(
                self._X, self._y, self._group_rows,
                np.asarray(self.exog_re, float) if self.k_re else None, self._vc_mats)
        return self._grouped_design

    def group_list(self, array: npt.ArrayLike | None) -> list[np.ndarray] | None:
        """``array`` split by group (groups in sorted order), as MixedLM's ``group_list``."""
        if array is None:
            return None
        array = np.asarray(array)
        return [array[rows] for rows in self._group_rows]

    @property
    def endog_li(self) -> list[np.ndarray]:
        return self.group_list(self.endog)

    @property
    def exog_li(self) -> list[np.ndarray]:
        return self.group_list(self.exog)

    @property
    def exog_re_li(self) -> list[np.ndarray] | None:
        return self.group_list(self.exog_re) if self.k_re else None

    def clone(self, **changes: Any) -> MixedLM:
        """A new model of this one's data (after missing values were handled), with ``changes``.

        Parameters
        ----------
        **changes
            Constructor arguments to replace (``endog``, ``exog``, ``groups``,
            ``exog_re``, ``exog_vc``, ``use_sqrt``, ``engine``, ``vc_layout``).
        """
        args: dict[str, Any] = {"endog": self.endog, "exog": self.exog, "groups": self.groups,
                                "exog_re": self.exog_re if self.k_re else None, "exog_vc": self.exog_vc,
                                "use_sqrt": self.use_sqrt, "engine": self.engine, "vc_layout": self.vc_layout}
        unknown = set(changes) - set(args)
        if unknown:
            raise TypeError(f"MixedLM has no option {', '.join(sorted(unknown))}")
        args.update(changes)
        model = type(self)(**{k: v for k, v in args.items() if k not in ("endog", "exog", "groups")},
                           endog=args["endog"], exog=args["exog"], groups=args["groups"])
        model.group_name = self.group_name
        if model.group_name != "Group":
            model._build_terms()
        return model

    # ------------------------------------------------------------------ formula
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, re_formula: str | None = None,
                     vc_formula: dict[str, str] | None = None, subset: npt.ArrayLike | None = None,
                     use_sparse: bool = False, missing: str = "none", *args: Any, **kwargs: Any) -> MixedLM:
        """Build the model from formulas, as ``MixedLM.from_formula``.

        Parameters
        ----------
        formula : str
            Fixed effects, ``"y ~ x1 + x2"`` (no lme4 ``(... | g)`` terms: use
            :func:`interlace.fit` for those).
        data : DataFrame
        re_formula : str, optional
            Correlated random coefficients within groups: ``"~Days"`` (intercept and
            slope, lme4's ``(1 + Days | g)``), ``"0 + Days"`` (slope only), ``"1"``.
            Default: a random intercept, unless ``vc_formula`` is given (then none, as
            in MixedLM).
        vc_formula : dict, optional
            ``{name: formula}``; each formula is evaluated within each group and its
            columns get independent coefficients sharing one variance
            (``{"cask": "0 + C(cask)"}`` with ``re_formula="1"`` is lme4's
            ``(1 | batch/cask)`` for ``groups="batch"``).
        subset : array-like, optional
            Rows of ``data`` to use (booleans or index labels).
        use_sparse : bool
            Keep the variance components' designs as sparse matrices.
        missing : {"none", "drop", "raise"}
            ``"drop"`` drops rows with a missing value in any variable the formulas or
            ``groups`` use; otherwise (the default, as in statsmodels) missing values raise.

        Other Parameters
        ----------------
        groups : str or array-like
            Keyword, required: a column name or a vector of group labels.
        eval_env : int or patsy.EvalEnvironment, optional
            Where names in the formulas that are not columns of ``data`` are looked up:
            the caller's variables by default (``0``), ``k`` frames further up, an
            ``EvalEnvironment``, or ``-1`` for interlace's namespace alone (``np``,
            ``log``, ``exp``, ``sqrt``, ``abs`` and patsy's functions are always there).
        engine : {"auto", "blocked", "cholmod"}
            Keyword: see :class:`MixedLM`.
        vc_layout : {"auto", "grouped", "factors"}
            Keyword: see :class:`MixedLM`.
        """
        if "groups" not in kwargs:
            raise AttributeError("'groups' is a required keyword argument in MixedLM.from_formula")
        groups = kwargs.pop("groups")
        env = _eval_env(kwargs.pop("eval_env", None), 1)
        if not isinstance(formula, str) or "~" not in formula:
            raise FormulaError(f"formula must be a two-sided string 'y ~ x', got {formula!r}")
        if "|" in formula:
            raise FormulaError(f"MixedLM formulas hold fixed effects only, got {formula!r}; for lme4 terms "
                               "such as '(1 | g)' use interlace.fit (crossed designs included)")
        if missing not in ("none", "drop", "raise"):
            raise InterlaceError(f"missing must be 'none', 'drop' or 'raise', got {missing!r}")
        if isinstance(data, dict):  # statsmodels accepts a dict of columns
            data = pd.DataFrame(data)
        data = to_pandas(data)
        group_name = "Group"
        if isinstance(groups, str):
            if groups not in data.columns:
                raise DataError(f"groups column {groups!r} is not in the data")
            group_name = groups
            gvals = data[groups]
        else:
            gvals = pd.Series(align_vector(groups, data, "groups"), index=data.index)
        if subset is not None:
            sub = np.asarray(subset)
            keep = data.index[sub] if sub.dtype == bool else pd.Index(sub)
            data, gvals = data.loc[keep], gvals.loc[keep]
        forms = [formula] + ([re_formula] if re_formula is not None else []) + list((vc_formula or {}).values())
        used, env = _used_columns(forms, data, env)
        data = numeric_columns(data, used)
        incomplete = data[used].isna().any(axis=1).to_numpy() | gvals.isna().to_numpy()
        if missing == "drop":
            data, gvals = data.loc[~incomplete], gvals.loc[~incomplete]
        elif incomplete.any():
            cols = [c for c in used if data[c].isna().any()] + (["groups"] if gvals.isna().any() else [])
            raise DataError(f"{int(incomplete.sum())} rows have missing values (in {', '.join(map(repr, cols))}); "
                            "pass missing='drop' to drop them")
        if len(data) == 0:
            raise DataError("no rows left after dropping missing values")
        fx = build_fixed(formula, data, eval_env=env)
        endog = pd.Series(fx.y, index=data.index, name=fx.response)
        exog = pd.DataFrame(fx.X, index=data.index, columns=fx.names)
        exog_re, re_names = None, [group_name] if vc_formula is None else []
        if re_formula is not None:
            rhs = re_formula.strip()
            mm = build_matrix(rhs if rhs.startswith("~") else f"~ {rhs}", data, f"re_formula {re_formula!r}", env)
            re_names = [c.replace("Intercept", group_name) for c in mm.design_info.column_names]
            exog_re = pd.DataFrame(check_columns(np.asarray(mm, float), re_names, "re_formula column"),
                                   index=data.index, columns=re_names)
        exog_vc = None
        if vc_formula is not None:
            exog_vc = _vc_from_formulas(vc_formula, data, np.asarray(gvals), env, use_sparse)
        mod = cls(endog, exog, np.asarray(gvals), exog_re=exog_re, exog_vc=exog_vc, missing="none",
                  formula=formula, **{_SPEC_KW: fx.design_info}, **kwargs)
        if exog_re is None and vc_formula is None:  # MixedLM names the default intercept after the groups
            mod.data.exog_re_names = re_names
            mod.data.exog_re_names_full = _re_param_names(re_names, [])
            mod.data.param_names = list(mod.exog_names) + mod.data.exog_re_names_full
            mod.data.re_param_names = list(mod.data.exog_re_names_full)
        if vc_formula is not None:
            mod.data.vcomp_names = list(mod.exog_vc.names)
        mod.group_name = group_name
        mod._build_terms()
        mod.formula = formula
        mod.re_formula = re_formula
        mod.vc_formula = vc_formula
        mod.fixed_design = fx
        mod.data.frame = data
        return mod

    # ------------------------------------------------------------------ parameters
    def _theta(self, cov_re_unscaled: npt.ArrayLike, vcomp_unscaled: npt.ArrayLike,
               layout: VCLayout | None = None) -> np.ndarray:
        """θ from MixedLM's profile parameters ``cov_re / scale`` and ``vcomp / scale``."""
        return (layout or self._layout).theta(np.asarray(cov_re_unscaled, float), np.asarray(vcomp_unscaled, float))

    def _components(self, theta: npt.ArrayLike, layout: VCLayout | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(cov_re / scale, vcomp / scale)`` from θ."""
        cov, vc = (layout or self._layout).components(np.asarray(theta, float))
        return cov.reshape(self.k_re, self.k_re), vc

    def _unpack(self, params: Any, use_sqrt: bool | None = None, has_fe: bool | None = None
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """MixedLMParams-like object or packed vector → (fe_params or None, cov_re/scale, vcomp/scale).

        A packed vector holds the variance parameters, with or without the fixed effects
        in front (told by its length unless ``has_fe`` says), in the ``use_sqrt``
        parameterization (default the model's).
        """
        use_sqrt = self.use_sqrt if use_sqrt is None else use_sqrt
        if hasattr(params, "cov_re") and hasattr(params, "vcomp"):
            fe = getattr(params, "fe_params", None)
            fe = None if fe is None or np.size(fe) != self.k_fe else np.asarray(fe, float)
            cov = np.asarray(params.cov_re, float).reshape(self.k_re, self.k_re)
            return fe, cov, np.asarray(params.vcomp, float).ravel()
        v = np.asarray(params, float).ravel()
        nre = self.k_re2 + self.k_vc
        if has_fe is None:
            has_fe = v.size == self.k_fe + nre
        if v.size != (self.k_fe if has_fe else 0) + nre:
            raise ValueError(f"invalid start_params: expected {nre} or {self.k_fe + nre} values, got {v.size}")
        fe = v[:self.k_fe] if has_fe else None
        v = v[self.k_fe:] if has_fe else v
        L = np.zeros((self.k_re, self.k_re))
        L[np.tril_indices(self.k_re)] = v[:self.k_re2]
        vc = v[self.k_re2:]
        if use_sqrt:
            cov, vc = L @ L.T, vc ** 2
        else:
            cov = L + L.T - np.diag(np.diag(L))
        return fe, cov, vc

    def __getstate__(self) -> dict:
        """Pickled without the engines and criteria (rebuilt on demand: CHOLMOD factors do not pickle).

        The formula's design pickles itself (:mod:`interlace.design.stored`), so it is kept
        beside statsmodels' data, which would otherwise re-evaluate the formula on loading.
        """
        state = dict(self.__dict__)
        state["_deviances"], state["_engines"] = {}, {}
        spec = self.data.__dict__.get(_SPEC_KW)
        if spec is not None:
            data = object.__new__(type(self.data))
            data.__dict__.update({k: v for k, v in self.data.__dict__.items() if k != _SPEC_KW})
            state["data"], state["_pickled_spec"] = data, spec
        return state

    def __setstate__(self, state: dict) -> None:
        spec = state.pop("_pickled_spec", None)
        self.__dict__.update(state)
        if spec is not None:
            setattr(self.data, _SPEC_KW, spec)

    def _params_object(self, fe: np.ndarray | None, cov: np.ndarray, vc: np.ndarray) -> MixedLMParams:
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        fe = np.zeros(self.k_fe) if fe is None else np.asarray(fe, float)
        return MixedLMParams.from_components(fe_params=fe, cov_re=np.asarray(cov, float), vcomp=np.asarray(vc, float))

    # ------------------------------------------------------------------ objective
    def _deviance(self, reml: bool, layout: VCLayout | None = None) -> LMMDeviance:
        layout = layout or self._layout
        key = (bool(reml), id(layout))
        if key not in self._deviances:
            if id(layout) not in self._engines:
                self._engines[id(layout)] = RowEngines(layout.re, self._X, self.engine)
            self._deviances[key] = LMMDeviance.from_rows(self._engines[id(layout)], self._y, None, bool(reml))
        return self._deviances[key]

    def deviance_function(self, reml: bool | None = None) -> LMMDeviance:
        """lme4's criterion of θ (REML criterion or deviance) on the model's terms."""
        return self._deviance(self.reml if reml is None else bool(reml))

    def _loglike_at(self, theta: np.ndarray, beta: np.ndarray | None, reml: bool) -> float:
        """Profile log-likelihood at θ, with β at its GLS value (None) or given."""
        dev = self._deviance(reml)
        f = dev.pls.factor(np.asarray(theta, float))
        if not f.ok:
            return -np.inf
        q = f.pwrss
        if beta is not None:
            bhat, _ = dev.pls.solve()
            d = dev.pls.RX().T @ (np.asarray(beta, float) - bhat)
            q = f.pwrss + float(d @ d)
        nu = dev.dof
        val = f.ldL2 + nu * (1.0 + np.log(2.0 * np.pi * q / nu))
        if dev.reml:
            val += f.ldRX2
        return -0.5 * float(val)

    def loglike(self, params: MixedLMParams | npt.ArrayLike, profile_fe: bool = True) -> float:
        """Profile log-likelihood (σ² profiled out) at MixedLM-style parameters.

        Parameters
        ----------
        params : MixedLMParams-like or array
            A packed vector of the variance parameters (in the model's ``use_sqrt``
            parameterization), or an object with ``fe_params``, ``cov_re``, ``vcomp``
            (the profile parameterization, divided by ``scale``).
        profile_fe : bool
            True: β at its GLS value (then this is lme4's ``logLik``, from the engine);
            False: at the given ``fe_params`` (computed group by group, as MixedLM).

        Notes
        -----
        REML or ML as the model's last fit (REML before any fit), as MixedLM.  Unlike
        MixedLM, the value never includes the penalties of a penalized fit.
        """
        fe, cov, vc = self._unpack(params)
        if profile_fe or fe is None:
            return self._loglike_at(self._theta(cov, vc), None, self.reml)
        return self.grouped_design.loglike(fe, cov, vc, self.reml)

    def get_fe_params(self, cov_re: npt.ArrayLike, vcomp: npt.ArrayLike, tol: float = 1e-10
                      ) -> tuple[np.ndarray, bool]:
        """GLS fixed effects at ``cov_re / scale`` and ``vcomp / scale``, as MixedLM's ``get_fe_params``.

        Returns
        -------
        fe_params : ndarray
        singular : bool
            Whether ``cov_re`` or a component's variance is below ``tol`` (the estimate is
            computed all the same: the PLS solution needs no inverse of the covariance).
        """
        cov = np.asarray(cov_re, float).reshape(self.k_re, self.k_re)
        vc = np.asarray(vcomp, float).ravel()
        if self.k_fe == 0:
            return np.zeros(0), False
        dev = self._deviance(self.reml)
        dev.pls.factor(self._theta(cov, vc))
        beta, _ = dev.pls.solve()
        sing = bool((self.k_re and np.linalg.eigvalsh(cov).min() < tol) or (vc.size and vc.min() < tol))
        return np.asarray(beta, float).copy(), sing

    def get_scale(self, fe_params: npt.ArrayLike, cov_re: npt.ArrayLike, vcomp: npt.ArrayLike) -> float:
        """The residual variance at given β and relative covariances, as MixedLM's ``get_scale``."""
        dev = self._deviance(self.reml)
        f = dev.pls.factor(self._theta(np.asarray(cov_re, float).reshape(self.k_re, self.k_re), vcomp))
        bhat, _ = dev.pls.solve()
        d = dev.pls.RX().T @ (np.asarray(fe_params, float) - bhat)
        return float((f.pwrss + d @ d) / dev.dof)

    # ------------------------------------------------------------------ derivatives
    def score_full(self, params: MixedLMParams | npt.ArrayLike, calc_fe: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score of the profile log-likelihood in ``(fe_params, cov_re, vcomp)`` (relative, not square roots).

        Parameters
        ----------
        params : MixedLMParams-like or packed array (variance parameters only; β is then 0)
        calc_fe : bool
            Compute the fixed effects' part (else zeros are returned in its place).

        Returns
        -------
        score_fe, score_re, score_vc : ndarray
            ``score_re`` over the lower triangle of ``cov_re`` by rows (an off-diagonal
            entry moves both of its cells).
        """
        fe, cov, vc = self._unpack(params, has_fe=False if not hasattr(params, "cov_re") else None)
        fe = np.zeros(self.k_fe) if fe is None else fe
        g, _ = self.grouped_design.derivatives(fe, cov, vc, self.reml, hessian=False)
        k = self.k_fe
        s_fe = g[:k] if calc_fe else np.zeros(k)
        return s_fe, g[k:k + self.k_re2], g[k + self.k_re2:]

    def score_sqrt(self, params: MixedLMParams | npt.ArrayLike, calc_fe: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score in the square-root parameterization: Cholesky factor ``L`` of ``cov_re``, ``√vcomp``.

        By the chain rule from :meth:`score_full`: ``∂ℓ/∂L = 2 S L`` (``S`` the symmetric
        gradient in ``cov_re``), ``∂ℓ/∂s_j = 2 s_j ∂ℓ/∂v_j``.
        """
        fe, cov, vc = self._unpack(params, has_fe=False if not hasattr(params, "cov_re") else None)
        s_fe, s_re, s_vc = self.score_full(self._params_object(fe, cov, vc), calc_fe)
        ix = np.tril_indices(self.k_re)
        S = np.zeros((self.k_re, self.k_re))
        S[ix] = s_re
        S = 0.5 * (S + S.T)  # diagonal g_ii, off-diagonal g_ij / 2: ℓ's differential is tr(S dΨ)
        L = self._cholesky(cov)
        return s_fe, (2.0 * S @ L)[ix], 2.0 * np.sqrt(np.clip(vc, 0.0, None)) * s_vc

    @staticmethod
    def _cholesky(cov: np.ndarray) -> np.ndarray:
        """MixedLM's square root of ``cov_re`` (its Cholesky factor; the root of the diagonal if singular)."""
        try:
            return np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            return np.diag(np.sqrt(np.clip(np.diag(cov), 0.0, None)))

    def score(self, params: MixedLMParams | npt.ArrayLike, profile_fe: bool = True) -> np.ndarray:
        """Score of the profile log-likelihood in the model's parameterization (``use_sqrt``), as MixedLM's.

        Parameters
        ----------
        params : MixedLMParams-like or packed array of the variance parameters
        profile_fe : bool
            True: β at its GLS value and only the variance parameters' score returned;
            False: β from ``params`` and the fixed effects' score first.

        Returns
        -------
        ndarray
            Entries held fixed by the last fit's ``free`` pattern are zero (MixedLM's).
        """
        fe, cov, vc = self._unpack(params, has_fe=False if not hasattr(params, "cov_re") else None)
        if profile_fe:
            fe, sing = self.get_fe_params(cov, vc)
            if sing:
                warnings.warn(_SINGULAR_COV, SingularMatrixWarning, stacklevel=2)
        po = self._params_object(fe, cov, vc)
        parts = self.score_sqrt(po, not profile_fe) if self.use_sqrt else self.score_full(po, not profile_fe)
        s_fe, s_re, s_vc = (np.array(p, float) for p in parts)
        if self._freepat is not None:
            m_fe, m_cov, m_vc = free_masks(self._freepat, self.k_fe, self.k_re, self.k_vc)
            s_fe, s_re, s_vc = s_fe * m_fe, s_re * m_cov[np.tril_indices(self.k_re)], s_vc * m_vc
        return np.concatenate([s_re, s_vc]) if profile_fe else np.concatenate([s_fe, s_re, s_vc])

    def hessian(self, params: MixedLMParams | npt.ArrayLike) -> tuple[np.ndarray, bool]:
        """Hessian of the profile log-likelihood in MixedLM's parameters (analytic).

        The parameters are ``fe_params``, the lower triangle of ``cov_re / scale`` by rows
        and ``vcomp / scale`` (MixedLM's ``hessian`` layout, not square roots); see
        :mod:`interlace.objective.mixedlm_profile`.

        Parameters
        ----------
        params : MixedLMParams-like or packed array (with the fixed effects, not square roots)

        Returns
        -------
        hess : ndarray
        singular : bool
            Always False (kept for MixedLM's signature); nothing is inverted here.
        """
        fe, cov, vc = self._unpack(params, use_sqrt=False)
        if fe is None:
            raise ValueError("hessian needs the fixed effects in params")
        _, H = self.grouped_design.derivatives(fe, cov, vc, self.reml, hessian=True)
        assert H is not None
        return H, False

    def predict(self, params: MixedLMParams | npt.ArrayLike, exog: npt.ArrayLike | None = None) -> np.ndarray:
        """Fixed-effects predictions ``exog @ fe_params`` (MixedLM's semantics: no random effects)."""
        if exog is None:
            exog = self.exog
        fe = getattr(params, "fe_params", None)
        fe = np.asarray(params, float)[:self.k_fe] if fe is None else np.asarray(fe, float)
        return np.dot(np.asarray(exog, float), fe)

    def get_distribution(self, params: npt.ArrayLike, scale: float, exog: npt.ArrayLike | None = None
                         ) -> MixedLMDistribution:
        """A simulator of the model's response at ``params`` (MixedLM's ``get_distribution``).

        Parameters
        ----------
        params : array-like
            Packed ``[fe_params, lower triangle of cov_re / scale, vcomp / scale]`` (no square roots).
        scale : float
            Residual variance.
        exog : array-like, optional
            Fixed-effects design (default the model's).
        """
        return MixedLMDistribution(self, params, scale, exog)

    # ------------------------------------------------------------------ fitting
    def _free_layout(self, free: Any, cov0: np.ndarray, vc0: np.ndarray
                     ) -> tuple[VCLayout, np.ndarray, np.ndarray]:
        """Layout, θ start and free flags of θ for a ``free`` pattern held at the start values.

        In the square-root parameterization the pattern is over the entries of the
        Cholesky factor of ``cov_re`` (statsmodels' packing): entries held at zero leave
        the template (:class:`~interlace.design.covariance.PatternedCholesky`), others are
        held at their start value.  With ``use_sqrt=False`` the pattern is over ``cov_re``
        itself, which θ can hold only when the held entries are zeros between blocks of
        fully free coefficients (or variances of single coefficients).
        """
        _, m_cov, m_vc = free_masks(free, self.k_fe, self.k_re, self.k_vc)
        k = self.k_re
        L0 = self._cholesky(cov0) if k else np.zeros((0, 0))
        tril = np.tri(k, dtype=bool)
        if self.use_sqrt:
            held_L = tril & ~m_cov
            keep = tril & (m_cov | (L0 != 0))
        else:
            held_cov = tril & ~m_cov
            off = held_cov & ~np.eye(k, dtype=bool)
            if np.any(cov0[off] != 0):
                raise InterlaceError("free= with use_sqrt=False can hold off-diagonal entries of cov_re only at 0; "
                                     "use use_sqrt=True to hold entries of its Cholesky factor")
            link = (m_cov | m_cov.T) & ~np.eye(k, dtype=bool)
            comp = _components_of(link)
            same = comp[:, None] == comp[None, :]
            complete = all(np.all(link[np.ix_(comp == c, comp == c)] | np.eye(int(np.sum(comp == c)), dtype=bool))
                           for c in np.unique(comp))
            if not complete or np.any(held_cov & same & ~np.eye(k, dtype=bool)):
                raise InterlaceError("free= with use_sqrt=False: the held entries of cov_re must be zeros between "
                                     "blocks of free coefficients (e.g. a diagonal pattern); use use_sqrt=True for "
                                     "other patterns")
            sizes = np.bincount(comp)
            bad = [i for i in range(k) if held_cov[i, i] and sizes[comp[i]] > 1]
            if bad:
                raise InterlaceError(f"free= with use_sqrt=False can hold the variance of coefficient {bad[0]} only "
                                     "when it is independent of the others")
            keep = tril & same
            held_L = np.eye(k, dtype=bool) & held_cov
        pattern = None if k == 0 or np.all(keep[tril]) else tuple(keep.ravel())
        layout = self._make_layout(pattern)
        theta0 = layout.theta(cov0, vc0)
        free_theta = np.ones(theta0.size, dtype=bool)
        if k:
            rc = layout.re_cov
            assert rc is not None
            if not self.use_sqrt:  # the start as the pattern allows it: no entries between blocks
                L0 = self._cholesky(cov0 * same)
            theta0[layout.re_theta] = L0[rc.rows, rc.cols]  # held entries keep MixedLM's square root exactly
            held_entries = held_L[rc.rows, rc.cols]
            free_theta[layout.re_theta[held_entries]] = False
        free_theta[layout.vc_theta[~m_vc]] = False
        return layout, theta0, free_theta

    def fit(self, start_params: MixedLMParams | npt.ArrayLike | None = None, reml: bool = True, niter_sa: int = 0,
            do_cg: bool = True, fe_pen: Any = None, cov_pen: Any = None, free: MixedLMParams | None = None,
            full_output: bool = False, method: str | Sequence[str] | None = None,
            **fit_kwargs: Any) -> MixedLMResultsWrapper:
        """Fit by REML (default) or ML, minimizing lme4's criterion with interlace's engine.

        Parameters
        ----------
        start_params : array-like or MixedLMParams, optional
            MixedLM's start values (packed variance parameters, with or without the
            fixed effects, or a ``MixedLMParams``).  Default: moment estimates
            (MIVQUE0) when every term allows them and nothing is held, else (and with
            ``do_cg=False``) MixedLM's start: identity ``cov_re / scale``, unit ``vcomp / scale``.
        reml : bool
            REML (default) or maximum likelihood.
        niter_sa : int
            Ignored, with MixedLM's ``ValueWarning`` when positive.
        do_cg : bool
            False returns results at the start values without optimizing.
        fe_pen : statsmodels Penalty, optional
            Penalty on the fixed effects: the criterion minimized is ``−2 (ℓ − fe_pen.func(β̂))``
            with β̂ the GLS estimate at each θ (MixedLM's).
        cov_pen : statsmodels CovariancePenalty, optional
            Penalty on ``cov_re / scale`` (e.g. ``penalties.PSD``), subtracted from ℓ alike.
        free : MixedLMParams, optional
            MixedLM's mask of the parameters to estimate (1) or hold at their start values
            (0), in the ``use_sqrt`` parameterization: ``free.cov_re = np.eye(k_re)`` fits
            independent random coefficients (lme4's ``||``).  The fixed effects are
            always estimated (profiled), as in MixedLM; a 0 there removes the
            coefficient from ``cov_params``.
        full_output : bool
            Store the optimizer record in ``hist``.
        method : str or list of str, optional
            Optimizer: ``"bobyqa"`` (default, lme4's), ``"lbfgs"``/``"bfgs"``/``"cg"``
            (all run L-BFGS-B: the variances are bounded), ``"nm"``, ``"powell"``.
            A list is tried in turn until one converges (``ConvergenceWarning``
            "Retrying MixedLM optimization with ..." between them, as MixedLM).
        **fit_kwargs
            MixedLM's optimizer tolerances (``gtol``, ``maxiter``, …) are accepted and
            ignored; interlace's ``maxfun``, ``check_conv`` (default True),
            ``optimizer_options`` and ``blas_threads`` are used; anything else gives MixedLM's
            ``FutureWarning`` ("Argument ... not used by MixedLM.fit").

        Returns
        -------
        MixedLMResultsWrapper
        """
        maxfun = fit_kwargs.pop("maxfun", None)
        check_conv = fit_kwargs.pop("check_conv", True)
        options = fit_kwargs.pop("optimizer_options", None)
        blas_threads = fit_kwargs.pop("blas_threads", None)
        unknown = sorted(k for k in fit_kwargs if k not in _IGNORED_FIT_KWARGS)
        if unknown:
            warnings.warn(f"Argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} not used by "
                          "MixedLM.fit. Future versions will raise on these arguments.", FutureWarning, stacklevel=2)
        if niter_sa and niter_sa > 0:
            warnings.warn("niter_sa is currently ignored", ValueWarning, stacklevel=2)
        methods = [method] if isinstance(method, str) else list(method or ["bobyqa"])
        opt_names = []
        for m in methods:
            key = str(m).lower()
            if key in ("newton", "ncg"):
                raise ValueError(f"method {m} not available for MixedLM")
            if key not in _METHODS:
                raise ValueError(f"unknown method {m!r}: use one of {', '.join(sorted(_METHODS))}")
            opt_names.append(_METHODS[key])
        for name, pen, attr in (("fe_pen", fe_pen, "func"), ("cov_pen", cov_pen, "func")):
            if pen is not None and not callable(getattr(pen, attr, None)):
                raise InterlaceError(f"{name} must be a statsmodels penalty object with a func method, "
                                     f"got {type(pen).__name__}")
        self.reml = bool(reml)
        self.fe_pen, self.cov_pen, self._freepat = fe_pen, cov_pen, free

        if start_params is None:
            cov0, vc0 = np.eye(self.k_re), np.ones(self.k_vc)
        else:
            _, cov0, vc0 = self._unpack(start_params)
        layout, theta0, free_theta = (self._layout, self._theta(cov0, vc0), np.ones(self._layout.re.n_theta, bool)) \
            if free is None else self._free_layout(free, cov0, vc0)
        dev = self._deviance(self.reml, layout)
        check_exact_fit(dev, f"response {self.endog_names!r}")
        if do_cg and start_params is None and free_theta.all() and \
                all(type(t.cov) is Unstructured for t in layout.re.terms):
            theta0 = dev.x0  # moment estimates (every term lme4-style); do_cg=False reports MixedLM's start
        objective: Any = dev
        if fe_pen is not None or (cov_pen is not None and self.k_re):
            objective = PenalizedObjective(dev, self._penalty(dev, layout, fe_pen, cov_pen))
        held = HeldObjective(objective, free_theta, np.minimum(np.maximum(theta0, layout.re.lower), dev.upper))
        with blas_limits(layout.re, blas_threads):
            opt = self._optimize(held, do_cg, opt_names, maxfun, options, check_conv)
            theta = held.full(opt.x)
            sol = dev.solution(theta)
            if check_conv and do_cg:
                zero = sigma_zero_message(dev, theta, sol, f"response {self.endog_names!r}")
                if zero is not None:
                    warn_user(zero, ConvergenceWarning)
                    opt.messages = list(opt.messages) + [zero]
            return self._results(layout, sol, opt, full_output)

    def _penalty(self, dev: LMMDeviance, layout: VCLayout, fe_pen: Any, cov_pen: Any):
        """``2 (fe_pen.func(β̂) + cov_pen.func(Ψ, Ψ⁻¹))``, read after ``dev`` was evaluated at θ."""
        def penalty(theta: np.ndarray) -> float:
            val = 0.0
            if fe_pen is not None:
                beta, _ = dev.pls.solve()
                val += float(fe_pen.func(np.asarray(beta, float)))
            if cov_pen is not None and self.k_re:
                cov, _ = layout.components(theta)
                try:
                    inv = np.linalg.inv(cov)
                except np.linalg.LinAlgError:
                    inv = np.linalg.pinv(cov)
                val += float(cov_pen.func(cov, inv))
            return 2.0 * val
        return penalty

    def _optimize(self, objective: HeldObjective, do_cg: bool, opt_names: list[str], maxfun: int | None,
                  options: dict | None, check_conv: bool) -> OptSummary:
        """Minimize ``objective`` with each optimizer in turn until one converges (MixedLM's retries)."""
        x0 = objective.x0
        lower = objective.lower
        if not do_cg or x0.size == 0:
            why = "do_cg=False: not optimized" if not do_cg else "every parameter is held fixed"
            return OptSummary("none", x0, lower, x0, objective(x0), 1, x0.size == 0, why, 0.0)
        x = x0
        msgs: list = []
        for i, name in enumerate(opt_names):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    opt = minimize_checked(objective, x, lower, optimizer=name, maxfun=maxfun, options=options,
                                           check_conv=check_conv, warn=True, upper=objective.upper)
            except ValueError as exc:
                raise InterlaceError(str(exc)) from None
            msgs = [(str(w.message).replace("CrossedLMEResult.is_singular", "MixedLMResults.is_singular"), w.category)
                    for w in caught]
            failed = not opt.converged or any(m.startswith(("Model failed", "optimizer")) for m in opt.messages)
            if not failed or i + 1 == len(opt_names):
                break
            warnings.warn(f"Retrying MixedLM optimization with {methods_name(opt_names[i + 1])}",
                          ConvergenceWarning, stacklevel=3)
            x = opt.x
        warn_messages(msgs)
        return opt

    def _results(self, layout: VCLayout, sol: Any, opt: OptSummary, full_output: bool) -> MixedLMResultsWrapper:
        """The results of a fit at ``sol`` (θ, β̂, b, σ̂²) on ``layout``."""
        from ..results.mixedlm import MixedLMEstimates, MixedLMResults, MixedLMResultsWrapper

        cov_u, vc_u = self._components(sol.theta, layout)
        fe = np.array(sol.beta, dtype=float)
        scale = float(sol.sigma2)
        llf = -0.5 * float(sol.objective)
        if self.fe_pen is not None:
            llf -= float(self.fe_pen.func(fe))
        if self.cov_pen is not None and self.k_re:
            llf -= float(self.cov_pen.func(cov_u, np.linalg.pinv(cov_u)))
        _, H = self.grouped_design.derivatives(fe, cov_u, vc_u, self.reml, hessian=True)
        assert H is not None
        pattern = None
        if self._freepat is not None:
            m_fe, m_cov, m_vc = free_masks(self._freepat, self.k_fe, self.k_re, self.k_vc)
            pattern = np.concatenate([m_fe, m_cov[np.tril_indices(self.k_re)], m_vc])
        pcov = _inverse_information(H, pattern)
        est = MixedLMEstimates(layout=layout, theta=np.asarray(sol.theta, float), fe_params=fe, cov_re=cov_u,
                               vcomp=vc_u, scale=scale, llf=llf, b=np.array(sol.b, dtype=float), cov_params=pcov,
                               opt=opt, reml=self.reml, criterion=float(sol.objective), freepat=self._freepat,
                               cov_pen=self.cov_pen, fe_pen=self.fe_pen)
        res = MixedLMResults(self, est)
        res.hist = [opt] if full_output else None
        return MixedLMResultsWrapper(res)

    def fit_regularized(self, start_params: MixedLMParams | npt.ArrayLike | None = None, method: Any = "l1",
                        alpha: float | npt.ArrayLike = 0, ceps: float = 1e-4, ptol: float = 1e-6, maxit: int = 200,
                        **fit_kwargs: Any) -> MixedLMResultsWrapper:
        """Fixed effects penalized, covariances held at their unpenalized estimates (MixedLM's algorithm).

        Parameters
        ----------
        start_params : optional
            Start of the unpenalized fit.
        method : "l1" or statsmodels Penalty
            ``"l1"``: minimize ``(y − Xβ)ᵀV⁻¹(y − Xβ) + Σ α_j|β_j|`` by cyclic coordinate
            descent (:func:`~interlace.optimize.lasso.l1_coordinate_descent`) at the
            unpenalized ``V``.  A smooth ``Penalty`` (``L2``, ``PseudoHuber``): a copy
            with weight ``alpha`` is passed to :meth:`fit` as ``fe_pen``.
        alpha : float or array-like
            Penalty weight(s), one per fixed effect or shared.
        ceps : float
            Coefficients smaller than this are zero (not updated; no standard error).
        ptol : float
            Convergence tolerance on the coefficients.
        maxit : int
            Largest number of coordinate-descent sweeps.
        **fit_kwargs
            Passed to :meth:`fit`.

        Returns
        -------
        MixedLMResultsWrapper
            For ``"l1"``: ``params`` with the penalized fixed effects and the unpenalized
            covariances; ``cov_params`` from the Hessian over the nonzero coefficients
            and the covariances (NaN for the zero coefficients); ``scale`` recomputed at
            the penalized β; ``random_effects`` and ``fittedvalues`` at the penalized β.
        """
        if isinstance(method, str):
            if method.lower() != "l1":
                raise ValueError("Invalid regularization method")
        elif callable(getattr(method, "func", None)):
            pen = copy.copy(method)  # MixedLM sets alpha on the caller's object; a copy leaves it alone
            pen.alpha = alpha
            return self.fit(start_params=start_params, fe_pen=pen, **fit_kwargs)
        else:
            raise ValueError("Invalid regularization method")
        alpha_v = np.broadcast_to(np.asarray(alpha, float), (self.k_fe,)).copy()
        mdf = self.fit(start_params=start_params, **fit_kwargs)._results
        cov_u, vc_u = mdf.cov_re_unscaled, mdf.vcomp / mdf.scale
        gd = self.grouped_design
        W = np.zeros((self.k_fe, self.k_fe))
        c = np.zeros(self.k_fe)
        for i in range(gd.n_groups):
            *_, XPX, _, XPr = gd.solve(i, cov_u, vc_u, np.zeros(self.k_fe))
            W += XPX
            c += XPr
        beta, _ = l1_coordinate_descent(W / mdf.scale, c / mdf.scale, alpha_v, np.asarray(mdf.fe_params, float),
                                        ceps, ptol, maxit)
        scale = self.get_scale(beta, cov_u, vc_u)
        _, H = gd.derivatives(beta, cov_u, vc_u, self.reml, hessian=True)
        assert H is not None
        params = np.concatenate([beta, cov_u[np.tril_indices(self.k_re)], vc_u])
        keep = np.abs(params) > ceps
        keep[self.k_fe:] = True
        pcov = np.full_like(H, np.nan)
        ii = np.flatnonzero(keep)
        pcov[np.ix_(ii, ii)] = _inverse_information(H[np.ix_(ii, ii)], None, warn=False)
        return self._regularized_results(mdf, beta, scale, pcov)

    def _regularized_results(self, mdf: Any, beta: np.ndarray, scale: float, pcov: np.ndarray
                             ) -> MixedLMResultsWrapper:
        from ..results.mixedlm import MixedLMEstimates, MixedLMResults, MixedLMResultsWrapper

        layout = mdf.layout
        cov_u, vc_u = mdf.cov_re_unscaled, mdf.vcomp / mdf.scale
        b = np.zeros(layout.re.q)
        for i in range(self.n_groups):
            b[layout.b_index[i]] = self.grouped_design.conditional(i, cov_u, vc_u, beta)[0]
        theta = mdf.theta
        est = MixedLMEstimates(layout=layout, theta=theta, fe_params=beta, cov_re=cov_u, vcomp=vc_u, scale=scale,
                               llf=self._loglike_at(theta, beta, self.reml), b=b, cov_params=pcov,
                               opt=mdf.opt_summary, reml=self.reml, criterion=mdf.objective, freepat=None,
                               cov_pen=self.cov_pen, fe_pen=None, converged=True)
        return MixedLMResultsWrapper(MixedLMResults(self, est))


def methods_name(name: str) -> str:
    """statsmodels' name of an interlace optimizer (for messages)."""
    return {"L-BFGS-B": "lbfgs", "Nelder-Mead": "nm", "Powell": "powell"}.get(name, name)


def _components_of(link: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph given by a boolean adjacency matrix."""
    k = link.shape[0]
    comp = -np.ones(k, dtype=np.int64)
    c = 0
    for s in range(k):
        if comp[s] >= 0:
            continue
        stack = [s]
        comp[s] = c
        while stack:
            v = stack.pop()
            for w in np.flatnonzero(link[v]):
                if comp[w] < 0:
                    comp[w] = c
                    stack.append(int(w))
        c += 1
    return comp


def _inverse_information(H: np.ndarray, pattern: np.ndarray | None, warn: bool = True) -> np.ndarray:
    """``(−H)⁻¹`` over the free parameters (zeros elsewhere, MixedLM's ``free`` convention).

    Warns (MixedLM's text) when a diagonal entry of the Hessian is not negative, and uses a
    pseudo-inverse when the information is singular (boundary fits).
    """
    if H.size == 0:
        return H.copy()
    ii = np.arange(H.shape[0]) if pattern is None else np.flatnonzero(pattern)
    out = np.zeros_like(H)
    if ii.size == 0:
        return out
    Hs = H[np.ix_(ii, ii)]
    if warn and np.any(np.diag(Hs) >= 0):
        warnings.warn("The Hessian matrix at the estimated parameter values is not positive definite.",
                      ConvergenceWarning, stacklevel=4)
    try:
        inv = np.linalg.inv(-Hs)
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(-Hs)
    out[np.ix_(ii, ii)] = inv
    return out


class MixedLMDistribution:
    """Simulates the response of a :class:`MixedLM` at given parameters (MixedLM's ``get_distribution``).

    ``y = Xβ + Σ_i Z_re,i a_i + Σ_j Σ_i Z_vc,ij c_ij + e`` with ``a_i ~ N(0, cov_re)``,
    ``c_ij ~ N(0, vcomp_j I)``, ``e ~ N(0, scale I)``.

    Parameters
    ----------
    model : MixedLM
    params : array-like
        Packed ``[fe_params, lower triangle of cov_re / scale, vcomp / scale]``.
    scale : float
    exog : array-like, optional
    """

    def __init__(self, model: MixedLM, params: npt.ArrayLike, scale: float, exog: npt.ArrayLike | None) -> None:
        self.model = model
        self.exog = np.asarray(model.exog if exog is None else exog, float)
        fe, cov, vc = model._unpack(np.asarray(params, float), use_sqrt=False, has_fe=True)
        assert fe is not None
        self.fe_params = fe
        self.cov_re = float(scale) * cov
        self.vcomp = float(scale) * vc
        self.scale = float(scale)

    def rvs(self, n: int | None = None, rng: Any = None, random_state: Any = None) -> np.ndarray:
        """One simulated response vector (``n`` is ignored, as in MixedLM).

        Parameters
        ----------
        n : int, optional
            Ignored.
        rng : int, numpy Generator or RandomState, optional
            Source of randomness (``random_state`` is its deprecated name).
        """
        if rng is None:
            rng = random_state
        gen = rng if isinstance(rng, (np.random.Generator, np.random.RandomState)) else np.random.default_rng(rng)
        m = self.model
        y = self.exog @ self.fe_params
        codes = m._group_codes
        if m.k_re:
            u = gen.standard_normal((m.n_groups, m.k_re)) @ MixedLM._cholesky(self.cov_re).T
            y = y + np.sum(u[codes] * np.asarray(m.exog_re, float), axis=1)
        for j in range(m.k_vc):
            for i, rows in enumerate(m._group_rows):
                Zij = m._vc_mats[j][i]
                c = np.sqrt(max(float(self.vcomp[j]), 0.0)) * gen.standard_normal(Zij.shape[1])
                y[rows] += np.asarray(Zij @ c).ravel()
        return y + np.sqrt(self.scale) * gen.standard_normal(y.shape[0])


def _eval_env(eval_env: Any, depth: int) -> patsy.EvalEnvironment | None:
    """statsmodels' ``eval_env`` (int depth from the caller, -1, or an EvalEnvironment) → a namespace.

    ``depth`` is the number of frames between the caller and this function's caller.
    """
    if isinstance(eval_env, patsy.EvalEnvironment):
        return eval_env
    if eval_env is None:
        eval_env = 0
    if eval_env == -1:
        return None
    return patsy.EvalEnvironment.capture(int(eval_env) + depth + 1)


def _used_columns(formulas: list[str], data: pd.DataFrame, env: patsy.EvalEnvironment | None
                  ) -> tuple[list[str], patsy.EvalEnvironment | None]:
    """Data columns a list of formulas refers to, and the part of ``env`` they need.

    Names that are neither columns nor interlace's or patsy's functions are taken from
    ``env`` (the caller's namespace); only those are kept, so a fitted model does not
    hold on to the caller's whole namespace.
    """
    cols: list[str] = []
    outer: dict[str, Any] = {}
    for f in formulas:
        try:
            desc = patsy.ModelDesc.from_formula(f if "~" in f else f"~ {f}")
        except patsy.PatsyError as exc:
            raise FormulaError(f"cannot parse formula {f!r}: {exc}") from None
        for term in desc.lhs_termlist + desc.rhs_termlist:
            for factor in term.factors:
                for name in sorted(formula_names(factor.code)):
                    if name in data.columns:
                        if name not in cols:
                            cols.append(name)
                    elif name in EVAL_NAMESPACE or name in _PATSY_FUNCS or hasattr(builtins, name):
                        continue
                    elif env is not None and name in env.namespace:
                        outer[name] = env.namespace[name]
                    else:
                        raise DataError(f"column {name!r} used in formula {f!r} is not in the data")
    return cols, (patsy.EvalEnvironment([outer]) if outer else None)


_PATSY_FUNCS = {"C", "I", "Q", "center", "standardize", "scale", "Treatment", "Sum", "Poly", "Helmert", "Diff",
                "bs", "cr", "cc", "te"}



#: ``"0 + C(x)"`` or ``"0 + x"`` (also ``-1``, with or without ``~``): the indicator columns of one factor.
_INDICATOR_FORMULA = re.compile(
    r"^~?\s*(?:0|-\s*1)\s*\+\s*(?:C\(\s*(?P<c>[A-Za-z_]\w*)\s*\)|(?P<bare>[A-Za-z_]\w*))\s*$")


def _indicator_designs(formula: str, data: pd.DataFrame, group_rows: list[np.ndarray]
                       ) -> tuple[list[list[str]], list[Any]] | None:
    """A factor's indicator columns within each group, as patsy makes them, without patsy (None: not such a formula).

    For ``"0 + C(x)"`` with ``x`` of integer, string or categorical type, and ``"0 + x"``
    with ``x`` of string or categorical type: in each group one column per level (the
    group's sorted values; a categorical's categories, used or not), named
    ``"C(x)[level]"`` or ``"x[level]"`` — patsy's columns and names.  Built as sparse
    matrices in one pass (the one-group crossed idiom's designs are mostly zeros).
    """
    m = _INDICATOR_FORMULA.match(formula.strip())
    if m is None:
        return None
    col = m.group("c") or m.group("bare")
    if col not in data.columns:
        return None
    v = data[col]
    categorical = isinstance(v.dtype, pd.CategoricalDtype)
    stringy = not categorical and pd.api.types.infer_dtype(v, skipna=False) == "string"
    integer = pd.api.types.is_integer_dtype(v.dtype) and not pd.api.types.is_bool_dtype(v.dtype)
    if not (categorical or stringy or (integer and m.group("c"))):
        return None
    prefix = f"C({col})" if m.group("c") else col
    values = v.to_numpy()
    if categorical:
        cats = list(v.cat.categories)
        all_codes = v.cat.codes.to_numpy()
    names, mats = [], []
    for rows in group_rows:
        if categorical:
            levels, codes = cats, all_codes[rows]
        else:
            levels, codes = np.unique(values[rows], return_inverse=True)
        names.append([f"{prefix}[{lev}]" for lev in levels])
        mats.append(sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), np.asarray(codes).ravel())),
                                  shape=(rows.size, len(levels))))
    return names, mats


def _vc_from_formulas(vc_formula: dict, data: pd.DataFrame, groups: np.ndarray, env: patsy.EvalEnvironment | None,
                      use_sparse: bool = False) -> VCSpec:
    """Evaluate each variance-component formula within each group (groups sorted), as MixedLM does.

    A factor's indicators (``"0 + C(x)"``) are made directly and kept sparse
    (:func:`_indicator_designs`); other formulas go through patsy, group by group.
    """
    codes, levels = pd.factorize(groups, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(levels) + 1))
    group_rows = [order[bounds[i]:bounds[i + 1]] for i in range(len(levels))]
    names = sorted(vc_formula)
    colnames, mats = [], []
    for name in names:
        f = str(vc_formula[name]).strip()
        fast = _indicator_designs(f, data, group_rows)
        if fast is not None:
            colnames.append(fast[0])
            mats.append(fast[1])
            continue
        rhs = f if f.startswith("~") else f"~ {f}"
        cn, ms = [], []
        for rows in group_rows:
            mm = build_matrix(rhs, data.iloc[rows], f"variance component {name!r}", env)
            cn.append(list(mm.design_info.column_names))
            m = check_columns(np.asarray(mm, dtype=float), cn[-1], f"variance component {name!r} column")
            ms.append(sp.csr_matrix(m) if use_sparse else m)
        colnames.append(cn)
        mats.append(ms)
    return VCSpec(names, colnames, mats)


def mixedlm(formula: str, data: pd.DataFrame, re_formula: str | None = None, vc_formula: dict[str, str] | None = None,
            subset: npt.ArrayLike | None = None, use_sparse: bool = False, missing: str = "none", *args: Any,
            **kwargs: Any) -> MixedLM:
    """``statsmodels.formula.api.mixedlm``: :meth:`MixedLM.from_formula` (formulas see the caller's names)."""
    kwargs["eval_env"] = _eval_env(kwargs.get("eval_env"), 1)
    if kwargs["eval_env"] is None:
        kwargs["eval_env"] = -1
    return MixedLM.from_formula(formula, data, re_formula, vc_formula, subset, use_sparse, missing,
                                *args, **kwargs)
