"""statsmodels' ``MixedLM`` interface on interlace's engine.

:class:`MixedLM` accepts the calls ``statsmodels.regression.mixed_linear_model.MixedLM``
accepts (``MixedLM(endog, exog, groups, exog_re, exog_vc)``,
``MixedLM.from_formula(formula, data, groups=..., re_formula=..., vc_formula=...)``)
and returns results with MixedLM's attribute names, shapes and conventions
(:class:`~interlace.results.mixedlm.MixedLMResults`), while the estimates come from
interlace's penalized-least-squares engine and lme4's criterion.

MixedLM's model, in lme4 terms (``g`` the ``groups`` factor):

* ``exog_re`` / ``re_formula`` — correlated coefficients ``(exog_re | g)``
  (:class:`~interlace.design.covariance.Unstructured`);
* each variance component ``vc`` — coefficients grouped by ``g`` for the columns of
  the component's design within each group, all with one variance
  (:class:`~interlace.design.covariance.ScaledIdentity`).  A group's design may
  have its own columns (e.g. the casks present in that batch); column ``k`` of
  every group is laid in column ``k``, and groups with fewer columns leave the
  rest at zero (those random effects have no data and do not change the
  likelihood).

Both are blocks of one term grouped by ``g`` with a
:class:`~interlace.design.covariance.BlockDiagonal` covariance, so the PLS system
stays block-diagonal by group (MixedLM's independence of groups) and the blocked
engine factors it group by group.

Parameter conventions (MixedLM's "profile parameterization"): ``cov_re`` and
``vcomp`` are divided by the residual variance ``scale``, so ``cov_re / scale``
is ``T Tᵀ`` of lme4's relative covariance factor and ``vcomp / scale = θ²``.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from statsmodels.base.model import LikelihoodModel, Model

from ..design.covariance import BlockDiagonal, ScaledIdentity, Unstructured
from ..design.dataframe import align_vector, to_pandas
from ..design.fixed import build_fixed, build_matrix, check_columns
from ..design.frame import formula_columns, numeric_columns
from ..design.terms import RandomEffects, term_from_arrays
from ..errors import ConvergenceWarning, DataError, FormulaError, InterlaceError, warn_user
from ..linalg.engines import RowEngines, parse_engine
from ..objective import LMMDeviance
from ..objective.lmm import check_exact_fit, sigma_zero_message
from ..optimize import check_convergence, minimize

if TYPE_CHECKING:
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    from ..results.mixedlm import MixedLMResultsWrapper

__all__ = ["MixedLM", "VCSpec", "mixedlm"]

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
_INIT_KWARGS = ("missing_idx", "model_spec", "design_info", "formula")
#: statsmodels 0.15 renamed the models' ``design_info`` keyword to ``model_spec``.
_SPEC_KW = "model_spec" if "model_spec" in getattr(Model, "_kwargs_allowed", ["model_spec"]) else "design_info"


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
        (groups in sorted order, rows in data order).
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


def _dense(m) -> np.ndarray:
    if hasattr(m, "toarray"):
        m = m.toarray()
    m = np.asarray(m, dtype=float)
    return m[:, None] if m.ndim == 1 else m


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
        Stored for compatibility; start values given as packed vectors are read in
        this parameterization (Cholesky factor when True).
    missing : {"none", "drop", "raise"}
        Missing-value handling for the arrays (statsmodels' data handling).
    engine : {"auto", "blocked", "cholmod"}
        interlace's sparse Cholesky engine (an interlace extension).

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
                 missing: str = "none", engine: str = "auto", **kwargs: Any) -> None:
        bad = [k for k in kwargs if k not in _INIT_KWARGS]
        if bad:
            raise ValueError(f"argument {bad[0]} not permitted for MixedLM initialization")
        for k in ("model_spec", "design_info"):  # either name, passed on under the installed one's
            if k in kwargs and k != _SPEC_KW:
                kwargs[_SPEC_KW] = kwargs.pop(k)
        self.use_sqrt = bool(use_sqrt)
        self.engine = parse_engine(engine)
        self.reml = True
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
        self._init_keys.extend(["use_sqrt", "exog_vc", "engine"])
        self.k_fe = self.exog.shape[1]
        if exog_re is None and self.k_vc == 0:  # default: random intercept
            self.k_re = 1
            self.exog_re = np.ones((len(self.endog), 1))
            self.data.exog_re = self.exog_re
            re_names = ["Group Var"]
            param_names = list(self.exog_names) + re_names
            re_names_full = re_names
        else:
            if exog_re is not None:
                self.exog_re = np.asarray(self.exog_re, dtype=float)
                if self.exog_re.ndim == 1:
                    self.exog_re = self.exog_re[:, None]
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
        self._build_terms()
        self._deviances: dict[bool, LMMDeviance] = {}
        self._engines: RowEngines | None = None

    def _build_terms(self) -> None:
        """One lme4 term grouped by ``groups``: columns ``[exog_re | vc_1 | vc_2 …]``, block-diagonal Σ.

        The blocks are :class:`Unstructured` for ``exog_re`` and one
        :class:`ScaledIdentity` per variance component.  Keeping everything in one
        term keeps ΛᵀZᵀZΛ + I block-diagonal by group, as MixedLM's model is.
        """
        n = self.nobs
        blocks, covs, names, layout = [], [], [], []
        if self.k_re:
            blocks.append(np.asarray(self.exog_re, float))
            covs.append(Unstructured(self.k_re))
            names += list(self.data.exog_re_names)
            layout.append(("re", None))
        self._vc_ncols, self._vc_X = [], []
        for j, vname in enumerate(self.exog_vc.names):
            mats = self.exog_vc.mats[j]
            if len(mats) != self.n_groups:
                raise DataError(f"variance component {vname!r} has designs for {len(mats)} groups, "
                                f"the data have {self.n_groups}")
            dense = [_dense(m) for m in mats]
            ncols = np.array([m.shape[1] for m in dense], dtype=np.int64)
            p = int(ncols.max()) if ncols.size else 0
            if p == 0:
                raise DataError(f"variance component {vname!r} has no columns")
            Xj = np.zeros((n, p))
            for i, m in enumerate(dense):
                rows = self._group_rows[i]
                if m.shape[0] != rows.size:
                    raise DataError(f"variance component {vname!r}: group {self.group_labels[i]!r} has "
                                    f"{rows.size} rows but its design has {m.shape[0]}")
                Xj[rows, :m.shape[1]] = m  # column k of every group -> the term's column k
            self._vc_ncols.append(ncols)
            self._vc_X.append(Xj)
            blocks.append(Xj)
            covs.append(ScaledIdentity(p))
            names += [f"{vname}[{k}]" for k in range(p)]
            layout.append(("vc", j))
        if not blocks:
            raise DataError("the model has no random effects")
        name = str(self.group_name)
        cov = BlockDiagonal(covs)
        term = term_from_arrays(self.groups, np.hstack(blocks), names, cov, name=name,
                                source=f"MixedLM random effects within {name!r}")
        self.random_effects_structure = RandomEffects([term])
        self._layout = layout  # block k of the term's covariance: ("re", None) or ("vc", j)

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

    # ------------------------------------------------------------------ formula
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, re_formula: str | None = None,
                     vc_formula: dict[str, str] | None = None, subset: npt.ArrayLike | None = None,
                     use_sparse: bool = False, missing: str = "drop", *args: Any, **kwargs: Any) -> MixedLM:
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
            Accepted for compatibility (interlace's engines are sparse already).
        missing : {"drop", "raise", "none"}
            ``"drop"`` (default) drops rows with a missing value in any variable the
            formulas or ``groups`` use; otherwise missing values raise.

        Other Parameters
        ----------------
        groups : str or array-like
            Keyword, required: a column name or a vector of group labels.
        engine : {"auto", "blocked", "cholmod"}
            Keyword: interlace's engine.
        """
        if "groups" not in kwargs:
            raise AttributeError("'groups' is a required keyword argument in MixedLM.from_formula")
        groups = kwargs.pop("groups")
        kwargs.pop("eval_env", None)  # formulas are evaluated in interlace's namespace
        if not isinstance(formula, str) or "~" not in formula:
            raise FormulaError(f"formula must be a two-sided string 'y ~ x', got {formula!r}")
        if "|" in formula:
            raise FormulaError(f"MixedLM formulas hold fixed effects only, got {formula!r}; for lme4 terms "
                               "such as '(1 | g)' use interlace.fit (crossed designs included)")
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
        used = _used_columns(forms, data)
        data = numeric_columns(data, used)
        if missing == "drop":
            ok = data[used].notna().all(axis=1).to_numpy() & gvals.notna().to_numpy()
            data, gvals = data.loc[ok], gvals.loc[ok]
        elif data[used].isna().any().any() or gvals.isna().any():
            raise DataError("the data have missing values in the model's variables (use missing='drop')")
        if len(data) == 0:
            raise DataError("no rows left after dropping missing values")
        fx = build_fixed(formula, data)
        endog = pd.Series(fx.y, index=data.index, name=fx.response)
        exog = pd.DataFrame(fx.X, index=data.index, columns=fx.names)
        exog_re, re_names = None, [group_name] if vc_formula is None else []
        if re_formula is not None:
            rhs = re_formula.strip()
            mm = build_matrix(rhs if rhs.startswith("~") else f"~ {rhs}", data, f"re_formula {re_formula!r}")
            re_names = [c.replace("Intercept", group_name) for c in mm.design_info.column_names]
            exog_re = pd.DataFrame(check_columns(np.asarray(mm, float), re_names, "re_formula column"),
                                   index=data.index, columns=re_names)
        exog_vc = None
        if vc_formula is not None:
            exog_vc = _vc_from_formulas(vc_formula, data, np.asarray(gvals))
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
    def _theta(self, cov_re_unscaled, vcomp_unscaled) -> np.ndarray:
        """θ from MixedLM's profile parameters ``cov_re / scale`` and ``vcomp / scale``."""
        cov = self.random_effects_structure.terms[0].cov
        vcomp_unscaled = np.asarray(vcomp_unscaled, float).ravel()
        out = []
        for b, (kind, j) in zip(cov.blocks, self._layout):
            if kind == "re":
                out.append(b.theta_from_covariance(np.asarray(cov_re_unscaled, float), 1.0))
            else:
                out.append(np.array([np.sqrt(max(float(vcomp_unscaled[j]), 0.0))]))
        return np.concatenate(out)

    def _components(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(cov_re / scale, vcomp / scale)`` from θ."""
        cov = self.random_effects_structure.terms[0].cov
        theta = np.asarray(theta, float)
        cov_re = np.zeros((self.k_re, self.k_re))
        vc = np.zeros(self.k_vc)
        for k, (b, (kind, j)) in enumerate(zip(cov.blocks, self._layout)):
            th = theta[cov.theta_slice(k)]
            if kind == "re":
                cov_re = b.covariance(th, 1.0)
            else:
                vc[j] = float(th[0]) ** 2
        return cov_re, vc

    def _unpack(self, params, use_sqrt: bool | None = None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """MixedLMParams-like object or packed vector → (fe_params or None, cov_re/scale, vcomp/scale)."""
        use_sqrt = self.use_sqrt if use_sqrt is None else use_sqrt
        if hasattr(params, "cov_re") and hasattr(params, "vcomp"):
            fe = getattr(params, "fe_params", None)
            return (None if fe is None else np.asarray(fe, float), np.asarray(params.cov_re, float),
                    np.asarray(params.vcomp, float))
        v = np.asarray(params, float).ravel()
        nre = self.k_re2 + self.k_vc
        if v.size == self.k_fe + nre:
            fe, v = v[:self.k_fe], v[self.k_fe:]
        elif v.size == nre:
            fe = None
        else:
            raise ValueError(f"invalid start_params: expected {nre} or {self.k_fe + nre} values, got {v.size}")
        L = np.zeros((self.k_re, self.k_re))
        L[np.tril_indices(self.k_re)] = v[:self.k_re2]
        vc = v[self.k_re2:]
        if use_sqrt:
            cov, vc = L @ L.T, vc ** 2
        else:
            cov = L + L.T - np.diag(np.diag(L))
        return fe, cov, vc

    # ------------------------------------------------------------------ objective
    def deviance_function(self, reml: bool | None = None) -> LMMDeviance:
        """lme4's criterion of θ (REML criterion or deviance)."""
        reml = self.reml if reml is None else bool(reml)
        if reml not in self._deviances:
            if self._engines is None:
                self._engines = RowEngines(self.random_effects_structure, np.asarray(self.exog, float), self.engine)
            self._deviances[reml] = LMMDeviance.from_rows(self._engines, np.asarray(self.endog, float), None, reml)
        return self._deviances[reml]

    def loglike(self, params: MixedLMParams | npt.ArrayLike, profile_fe: bool = True) -> float:
        """Profile log-likelihood (σ² profiled out) at MixedLM-style parameters.

        Parameters
        ----------
        params : MixedLMParams-like or array
            A packed vector of the variance parameters (in the model's ``use_sqrt``
            parameterization), or an object with ``fe_params``, ``cov_re``, ``vcomp``
            (the profile parameterization, divided by ``scale``).
        profile_fe : bool
            True: β at its GLS value (then this is lme4's ``logLik``); False: at the
            given ``fe_params``.
        """
        fe, cov, vc = self._unpack(params)
        theta = self._theta(cov, vc)
        dev = self.deviance_function()
        if profile_fe or fe is None:
            return -0.5 * dev(theta)
        return self._loglike_at(theta, fe, dev)

    def _loglike_at(self, theta, beta, dev: LMMDeviance) -> float:
        f = dev.pls.factor(np.asarray(theta, float))
        if not f.ok:
            return -np.inf
        bhat, _ = dev.pls.solve()
        d = dev.pls.RX().T @ (np.asarray(beta, float) - bhat)
        q = f.pwrss + float(d @ d)
        nu = dev.dof
        val = f.ldL2 + nu * (1.0 + np.log(2.0 * np.pi * q / nu))
        if dev.reml:
            val += f.ldRX2
        return -0.5 * float(val)

    # ------------------------------------------------------------------ per-group algebra
    def _param_blocks(self, i: int) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """For group ``i``: each variance parameter's dV/dψ as ``Z S D Sᵀ Zᵀ`` — (column sets S, D), width."""
        sets, ds = [], []
        for a in range(self.k_re):
            for b in range(a + 1):
                if a == b:
                    sets.append(np.array([a]))
                    ds.append(np.ones((1, 1)))
                else:
                    sets.append(np.array([b, a]))
                    ds.append(np.array([[0.0, 1.0], [1.0, 0.0]]))
        off = self.k_re
        for j in range(self.k_vc):
            p = int(self._vc_ncols[j][i])
            sets.append(off + np.arange(p))
            ds.append(np.eye(p))
            off += p
        return sets, ds, off

    def _group_design(self, i: int) -> np.ndarray:
        """``Z`` of group ``i``: the ``exog_re`` rows, then each component's own columns (MixedLM's layout)."""
        rows = self._group_rows[i]
        parts = [self.exog_re[rows]] if self.k_re else []
        parts += [self._vc_X[j][rows, :int(self._vc_ncols[j][i])] for j in range(self.k_vc)]
        return np.hstack(parts) if parts else np.zeros((rows.size, 0))

    def _group_psi(self, i: int, cov_re_u: np.ndarray, vcomp_u: np.ndarray) -> np.ndarray:
        """Relative covariance of group ``i``'s random effects: blockdiag(cov_re/scale, vcomp_k/scale · I)."""
        d = [np.asarray(cov_re_u, float)] if self.k_re else []
        for j in range(self.k_vc):
            d.append(float(vcomp_u[j]) * np.eye(int(self._vc_ncols[j][i])))
        k = sum(m.shape[0] for m in d)
        out = np.zeros((k, k))
        pos = 0
        for m in d:
            out[pos:pos + m.shape[0], pos:pos + m.shape[0]] = m
            pos += m.shape[0]
        return out

    def _group_solve(self, i: int, cov_re_u, vcomp_u, beta):
        """``Z, Ψ, A = ZᵀV⁻¹Z, w = ZᵀV⁻¹r, B = ZᵀV⁻¹X`` and the group's ``XᵀV⁻¹X, rᵀV⁻¹r, XᵀV⁻¹r``.

        ``V = I + Z Ψ Zᵀ`` (the relative marginal covariance); ``ZᵀV⁻¹ = (I + ZᵀZΨ)⁻¹Zᵀ``,
        so nothing of size ``n_g × n_g`` is formed.
        """
        rows = self._group_rows[i]
        Z = self._group_design(i)
        X = np.asarray(self.exog, float)[rows]
        r = np.asarray(self.endog, float)[rows] - X @ beta
        Psi = self._group_psi(i, cov_re_u, vcomp_u)
        k = Z.shape[1]
        Zr, ZX = Z.T @ r, Z.T @ X
        K = np.eye(k) + (Z.T @ Z) @ Psi
        sol = np.linalg.solve(K, np.column_stack([Z.T @ Z, Zr, ZX]))
        A = sol[:, :k]
        A = 0.5 * (A + A.T)
        w, B = sol[:, k], sol[:, k + 1:]
        XPX = X.T @ X - ZX.T @ Psi @ B
        rPr = float(r @ r - Zr @ Psi @ w)
        XPr = X.T @ r - ZX.T @ Psi @ w
        return Z, Psi, A, w, B, XPX, rPr, XPr

    def hessian(self, params: MixedLMParams | npt.ArrayLike, reml: bool | None = None) -> tuple[np.ndarray, bool]:
        """Hessian of the profile log-likelihood in MixedLM's parameters (analytic).

        The log-likelihood (σ² profiled out, β free) is
        ``−½ log|V| − (ν/2) log rᵀV⁻¹r − [REML] ½ log|XᵀV⁻¹X|`` with ``V = I + ZΨZᵀ``,
        ``ν = n − k_fe`` (REML) or ``n``; the parameters are ``fe_params``, the lower
        triangle of ``cov_re / scale`` by rows and ``vcomp / scale`` (MixedLM's
        ``hessian`` layout, ``use_sqrt=False``).

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
        return self._hessian(fe, cov, vc, self.reml if reml is None else reml)[0], False

    def _hessian(self, beta, cov_re_u, vcomp_u, reml: bool):
        """Hessian and gradient of the profile log-likelihood; see :meth:`hessian`."""
        beta = np.asarray(beta, float)
        p = self.k_fe
        m = self.k_re2 + self.k_vc
        nu = self.nobs - p if reml else self.nobs
        M = np.zeros((p, p))
        q = 0.0
        s = np.zeros(p)
        qa = np.zeros(m)
        lda = np.zeros(m)
        Ma = np.zeros((m, p, p))
        qba = np.zeros((m, p))
        ldab = np.zeros((m, m))
        qab = np.zeros((m, m))
        Kab = np.zeros((m, m, p, p))
        for i in range(self.n_groups):
            _, _, A, w, B, XPX, rPr, XPr = self._group_solve(i, cov_re_u, vcomp_u, beta)
            M += XPX
            q += rPr
            s += XPr
            sets, ds, _ = self._param_blocks(i)
            Dw = [d @ w[S] for S, d in zip(sets, ds)]
            DB = [d @ B[S] for S, d in zip(sets, ds)]
            for a, (Sa, da) in enumerate(zip(sets, ds)):
                if Sa.size == 0:
                    continue
                lda[a] += np.sum(da * A[np.ix_(Sa, Sa)])
                qa[a] -= w[Sa] @ Dw[a]
                Ma[a] -= B[Sa].T @ DB[a]
                qba[a] += B[Sa].T @ Dw[a]
                for b in range(a + 1):
                    Sb = sets[b]
                    if Sb.size == 0:
                        continue
                    Aab = A[np.ix_(Sa, Sb)]
                    t = np.sum((da @ Aab) * (Aab @ ds[b]))  # tr(D_a A_ab D_b A_ba), A and D symmetric
                    ldab[a, b] -= t
                    qab[a, b] += 2.0 * Dw[a] @ Aab @ Dw[b]
                    Kab[a, b] += DB[a].T @ Aab @ DB[b]
        for a in range(m):
            for b in range(a):
                ldab[b, a] = ldab[a, b]
                qab[b, a] = qab[a, b]
                Kab[b, a] = Kab[a, b].T
        qb = -2.0 * s
        qbb = 2.0 * M
        qbeta_a = 2.0 * qba
        H = np.zeros((p + m, p + m))
        g = np.zeros(p + m)
        H[:p, :p] = -(nu / 2.0) * (qbb / q - np.outer(qb, qb) / q ** 2)
        g[:p] = -(nu / 2.0) * qb / q
        Minv = np.linalg.inv(M) if p else np.zeros((0, 0))
        for a in range(m):
            H[p + a, :p] = H[:p, p + a] = -(nu / 2.0) * (qbeta_a[a] / q - qb * qa[a] / q ** 2)
            g[p + a] = -0.5 * lda[a] - (nu / 2.0) * qa[a] / q
            if reml and p:
                g[p + a] -= 0.5 * np.trace(Minv @ Ma[a])
            for b in range(a + 1):
                h = -0.5 * ldab[a, b] - (nu / 2.0) * (qab[a, b] / q - qa[a] * qa[b] / q ** 2)
                if reml and p:
                    Mab = Kab[a, b] + Kab[a, b].T
                    h -= 0.5 * (np.trace(Minv @ Mab) - np.trace(Minv @ Ma[a] @ Minv @ Ma[b]))
                H[p + a, p + b] = H[p + b, p + a] = h
        return H, g

    def predict(self, params: MixedLMParams | npt.ArrayLike, exog: npt.ArrayLike | None = None) -> np.ndarray:
        """Fixed-effects predictions ``exog @ fe_params`` (MixedLM's semantics: no random effects)."""
        if exog is None:
            exog = self.exog
        fe = getattr(params, "fe_params", None)
        fe = np.asarray(params, float)[:self.k_fe] if fe is None else np.asarray(fe, float)
        return np.dot(np.asarray(exog, float), fe)

    # ------------------------------------------------------------------ fitting
    def fit(self, start_params: MixedLMParams | npt.ArrayLike | None = None, reml: bool = True, niter_sa: int = 0,
            do_cg: bool = True, fe_pen: None = None, cov_pen: None = None, free: MixedLMParams | None = None,
            full_output: bool = False, method: str | Sequence[str] | None = None,
            **fit_kwargs: Any) -> MixedLMResultsWrapper:
        """Fit by REML (default) or ML, minimizing lme4's criterion with interlace's engine.

        Parameters
        ----------
        start_params : array-like or MixedLMParams, optional
            MixedLM's start values (packed variance parameters, with or without the
            fixed effects, or a ``MixedLMParams``).  Default: identity relative
            covariances (MixedLM's and lme4's start).
        reml : bool
            REML (default) or maximum likelihood.
        niter_sa : int
            Accepted for compatibility, not used.
        full_output : bool
            Accepted for compatibility; ``full_output=True`` stores the optimizer
            record in ``hist``.
        do_cg : bool
            False returns results at the start values without optimizing.
        fe_pen, cov_pen, free : None
            Penalties and fixed parameters are not supported (NotImplementedError);
            for independent random coefficients use ``interlace.fit`` with
            ``"(x || g)"``.
        method : str or list of str, optional
            Optimizer: ``"bobyqa"`` (default, lme4's), ``"lbfgs"``/``"bfgs"``/``"cg"``
            (all run L-BFGS-B: the variances are bounded), ``"nm"``, ``"powell"``.
            A list is tried in turn until one converges.
        **fit_kwargs
            MixedLM's optimizer tolerances (``gtol``, ``maxiter``, …) are accepted
            and ignored; interlace's ``maxfun``, ``check_conv`` (default True) and
            ``optimizer_options`` are used.

        Returns
        -------
        MixedLMResultsWrapper
        """
        from ..results.mixedlm import MixedLMResults, MixedLMResultsWrapper

        if fe_pen is not None or cov_pen is not None:
            raise NotImplementedError("fe_pen and cov_pen are not supported by interlace's MixedLM")
        if free is not None and not _all_free(free):
            raise NotImplementedError(
                "free= (holding parameters fixed) is not supported; for independent random coefficients "
                "fit with interlace.fit and an lme4 '(x || g)' term")
        maxfun = fit_kwargs.pop("maxfun", None)
        check_conv = fit_kwargs.pop("check_conv", True)
        options = fit_kwargs.pop("optimizer_options", None)
        unknown = sorted(k for k in fit_kwargs if k not in _IGNORED_FIT_KWARGS)
        if unknown:
            warnings.warn(f"argument(s) {', '.join(unknown)} not used by MixedLM.fit", FutureWarning, stacklevel=2)
        methods = [method] if isinstance(method, str) else list(method or ["bobyqa"])
        opt_names = []
        for m in methods:
            key = str(m).lower()
            if key in ("newton", "ncg"):
                raise ValueError(f"method {m} not available for MixedLM")
            if key not in _METHODS:
                raise ValueError(f"unknown method {m!r}: use one of {', '.join(sorted(_METHODS))}")
            opt_names.append(_METHODS[key])
        self.reml = bool(reml)
        dev = self.deviance_function(self.reml)
        re = self.random_effects_structure
        if start_params is None:
            x0 = re.theta0
        else:
            _, cov0, vc0 = self._unpack(start_params)
            x0 = self._theta(cov0, vc0)
        check_exact_fit(dev, f"response {self.endog_names!r}")
        if do_cg:
            x = x0
            for i, name in enumerate(opt_names):
                try:
                    opt = minimize(dev, x, re.lower, optimizer=name, maxfun=maxfun, options=options, upper=dev.upper)
                except ValueError as exc:
                    raise InterlaceError(str(exc)) from None
                if opt.converged or i + 1 == len(opt_names):
                    break
                x = opt.x
            if check_conv:
                opt.messages = check_convergence(dev, opt.x, re.lower, opt.converged, opt.message)
                zero = sigma_zero_message(dev, opt.x, dev.solution(opt.x), f"response {self.endog_names!r}")
                if zero is not None:
                    warn_user(zero, ConvergenceWarning)
                    opt.messages = list(opt.messages) + [zero]
        else:
            from ..optimize import OptSummary

            x0 = np.maximum(np.asarray(x0, float), re.lower)
            opt = OptSummary("none", x0, re.lower, x0, dev(x0), 1, False, "do_cg=False: not optimized", 0.0)
        sol = dev.solution(opt.x)
        res = MixedLMResults(self, sol, opt)
        res.hist = [opt] if full_output else None
        return MixedLMResultsWrapper(res)


def _all_free(free) -> bool:
    parts = [getattr(free, a, None) for a in ("fe_params", "cov_re", "vcomp")]
    return all(p is None or np.all(np.asarray(p) == 1) for p in parts)


def _used_columns(formulas: list[str], data: pd.DataFrame) -> list[str]:
    """Data columns a list of formulas refers to (for dropping incomplete rows)."""
    cols: list[str] = []
    for f in formulas:
        cols += [c for c in formula_columns(f, data) if c not in cols]
    return cols



def _vc_from_formulas(vc_formula: dict, data: pd.DataFrame, groups: np.ndarray) -> VCSpec:
    """Evaluate each variance-component formula within each group (groups sorted), as MixedLM does."""
    codes, levels = pd.factorize(groups, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(levels) + 1))
    names = sorted(vc_formula)
    colnames, mats = [], []
    for name in names:
        f = str(vc_formula[name]).strip()
        rhs = f if f.startswith("~") else f"~ {f}"
        cn, ms = [], []
        for i in range(len(levels)):
            rows = order[bounds[i]:bounds[i + 1]]
            mm = build_matrix(rhs, data.iloc[rows], f"variance component {name!r}")
            cn.append(list(mm.design_info.column_names))
            ms.append(check_columns(np.asarray(mm, dtype=float), cn[-1], f"variance component {name!r} column"))
        colnames.append(cn)
        mats.append(ms)
    return VCSpec(names, colnames, mats)


def mixedlm(formula: str, data: pd.DataFrame, re_formula: str | None = None, vc_formula: dict[str, str] | None = None,
            subset: npt.ArrayLike | None = None, use_sparse: bool = False, missing: str = "drop", *args: Any,
            **kwargs: Any) -> MixedLM:
    """``statsmodels.formula.api.mixedlm``: :meth:`MixedLM.from_formula`."""
    return MixedLM.from_formula(formula, data, re_formula, vc_formula, subset, use_sparse, missing,
                                *args, **kwargs)
