"""What every fitted mixed model knows without its rows: β̂ and its covariance, θ̂ and VarCorr,
the BLUPs / conditional modes and their conditional variances, the likelihood and AIC/BIC,
and the linear predictor of new data.

:class:`RandomEffectsFit` is shared by the in-memory results (:class:`~interlace.results.base.MixedResultsBase`)
and the chunked LMM result (:class:`~interlace.scale.results.ChunkedLMEResult`), which keeps no rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..design.fixed import new_matrix
from ..design.terms import group_labels
from ..errors import DataError, UnseenLevelWarning, warn_user
from ..optimize import is_singular
from .varcorr import ByGroup, GroupBlock, VarianceComponents, group_aliases, group_blocks, varcorr_frame

__all__ = ["RandomEffectsFit"]


def _per_level(values: np.ndarray, blk: GroupBlock) -> pd.Series | pd.DataFrame:
    """One row per level of a grouping factor: a Series for a lone random intercept, else a DataFrame."""
    df = pd.DataFrame(values, index=blk.levels, columns=blk.coef_names)
    return df.iloc[:, 0].rename(blk.name) if df.shape[1] == 1 and blk.coef_names == ["Intercept"] else df


def _warn_unseen(terms: list, designs: list[tuple[np.ndarray, np.ndarray]], newdata: pd.DataFrame) -> None:
    """An :class:`~interlace.errors.UnseenLevelWarning` naming the terms whose levels in ``newdata``
    were not seen in fitting (their random effects are predicted as 0, lme4's ``allow.new.levels``)."""
    parts = {}
    for t, (_, codes) in zip(terms, designs):
        miss = codes < 0
        if miss.any() and t.name not in parts:  # (x || g) makes several terms of one factor
            example = np.asarray(group_labels(newdata, t.spec.group), dtype=object)[miss][0]
            example = example.item() if isinstance(example, np.generic) else example
            parts[t.name] = (f"{int(miss.sum())} row{'s' if miss.sum() > 1 else ''} with a level of {t.name!r} "
                             f"not seen in fitting (e.g. {example!r})")
    if parts:
        warn_user("; ".join(parts.values()) + ": their random effects are predicted as 0, the population mean "
                  "(lme4's allow.new.levels = TRUE)", UnseenLevelWarning)


class RandomEffectsFit:
    """Results quantities that need no rows (see the module docstring).

    Subclasses set ``self.model``, ``self.sol`` (with ``theta`` and ``b``),
    ``self.opt_summary``, ``params``/``bse``/``tvalues``/``cov_params()`` and ``_re_scale``
    (σ² for Gaussian responses, 1 for binomial/Poisson), then call :meth:`_init_shared`;
    :meth:`factored_engine` gives the fit's own engine factored at θ̂.
    """

    _re_scale = 1.0
    #: positions of the fixed effects β in ``params`` (CLMM results put thresholds first)
    _fe = slice(None)
    #: the fit's engines and objectives: not pickled (a CHOLMOD factor does not pickle, and they are
    #: as large as the data); rebuilt on demand from the model by :meth:`factored_engine`
    _rebuilt_on_demand: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in self._rebuilt_on_demand:
            state.pop(key, None)
        ddf = state.get("_ddf_engines")
        if ddf and "_marginal" in ddf:  # the df engines keep small arrays only; their derivatives hold the rows
            state["_ddf_engines"] = {k: v for k, v in ddf.items() if k != "_marginal"}
        return state

    def _init_shared(self, model) -> None:
        self.theta = self.sol.theta
        self.df_resid = model.df_resid  # statsmodels' n − p (the mixed-model tests use their own df)
        self._names = list(model.exog_names)
        #: fixed-effect coefficients besides the intercept (statsmodels' ``df_model``)
        self.df_model = float(len(self._names) - ("Intercept" in self._names))
        self._blocks: list[GroupBlock] = group_blocks(model.random_effects_structure)

    # ------------------------------------------------------------ fixed effects
    def _series(self, values, name=None) -> pd.Series:
        return pd.Series(np.asarray(values, float), index=self._names, name=name)

    @property
    def fe_params(self) -> pd.Series:
        """Fixed-effect estimates β̂."""
        return self._series(np.asarray(self.params)[self._fe], "fe_params")

    @property
    def fe_bse(self) -> pd.Series:
        """Standard errors of β̂ (from σ² (RX RXᵀ)⁻¹, lme4's ``vcov``)."""
        return self._series(np.asarray(self.bse)[self._fe], "fe_bse")

    @property
    def fe_tvalues(self) -> pd.Series:
        """Wald statistics β̂ / SE."""
        return self._series(np.asarray(self.tvalues)[self._fe], "fe_tvalues")

    @property
    def fe_pvalues(self) -> pd.Series:
        """Two-sided p-values from the normal approximation."""
        return self._series(2 * st.norm.sf(np.abs(np.asarray(self.tvalues)[self._fe])), "fe_pvalues")

    def fe_conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals for β (normal quantiles)."""
        z = st.norm.isf(alpha / 2)
        b, se = np.asarray(self.params)[self._fe], np.asarray(self.bse)[self._fe]
        return pd.DataFrame({"lower": b - z * se, "upper": b + z * se}, index=self._names)

    @property
    def cov_fe(self) -> pd.DataFrame:
        """Covariance matrix of β̂."""
        return pd.DataFrame(np.asarray(self.cov_params())[self._fe, self._fe], index=self._names,
                            columns=self._names)

    # ------------------------------------------------------------ likelihood and fit status
    @property
    def llf(self) -> float:
        """Log-likelihood, ``−objective/2`` (the REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        """``−2 llf + 2 k`` with k = :attr:`df_modelwc` (from the REML criterion for REML fits, as lme4)."""
        return -2 * self.llf + 2 * self.df_modelwc

    @property
    def bic(self) -> float:
        """``−2 llf + log(n) k`` (n the rows; the events for Cox models, as coxme)."""
        return -2 * self.llf + np.log(self._bic_n) * self.df_modelwc

    @property
    def _bic_n(self) -> int:
        return self.nobs

    @property
    def nobs(self) -> int:
        return int(self.model.nobs)

    @property
    def converged(self) -> bool:
        """True when the optimizer succeeded and no convergence warning was raised."""
        return self.opt_summary.converged and not any(
            m.startswith(("Model failed", "optimizer", "PIRLS", "unable")) for m in self.opt_summary.messages)

    # ------------------------------------------------------------ variance parameters
    def _cov_of(self, blk: GroupBlock) -> pd.DataFrame:
        re = self.model.random_effects_structure
        k = sum(len(re.terms[i].coef_names) for i in blk.term_index)
        C = np.zeros((k, k))
        pos = 0
        for i in blk.term_index:
            t = re.terms[i]
            C[pos:pos + t.p, pos:pos + t.p] = t.cov.covariance(self.theta[re.theta_slice(i)], self._re_scale)
            pos += t.p
        return pd.DataFrame(C, index=blk.coef_names, columns=blk.coef_names)

    @property
    def random_effects_cov(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of the random effects per grouping factor (lme4's ``VarCorr``)."""
        return ByGroup({b.name: self._cov_of(b) for b in self._blocks}, group_aliases(self._blocks))

    @property
    def variance_components(self) -> pd.Series:
        """Variance of every random coefficient, indexed by (group, coefficient): the variances of
        lme4's ``VarCorr`` (``vc["Subject", "Days"]``, ``vc["batch"]`` for a group's coefficients).

        Covariances: :attr:`random_effects_cov`; correlations: :attr:`random_effects_corr`;
        lme4's whole table: :attr:`varcorr`.
        """
        keys, values = [], []
        for b in self._blocks:
            C = self._cov_of(b)
            for coef in C.index:
                keys.append((b.name, coef))
                values.append(float(C.loc[coef, coef]))
        index = pd.MultiIndex.from_tuples(keys, names=["group", "coefficient"]) if keys else \
            pd.MultiIndex.from_arrays([[], []], names=["group", "coefficient"])
        vc = VarianceComponents(values, index=index, dtype=float, name="variance")
        vc.aliases = group_aliases(self._blocks)
        return vc

    @property
    def random_effects_sd(self) -> dict[str, pd.Series]:
        """Standard deviations of the random effects per grouping factor."""
        return ByGroup({k: pd.Series(np.sqrt(np.diag(C)), index=C.index) for k, C in self.random_effects_cov.items()},
                       group_aliases(self._blocks))

    @property
    def random_effects_corr(self) -> dict[str, pd.DataFrame]:
        """Correlation matrices of the random effects per grouping factor."""
        out = {}
        for k, C in self.random_effects_cov.items():
            sd = np.sqrt(np.diag(C.values))
            with np.errstate(invalid="ignore", divide="ignore"):
                R = C.values / np.outer(sd, sd)
            np.fill_diagonal(R, 1.0)
            out[k] = pd.DataFrame(R, index=C.index, columns=C.columns)
        return ByGroup(out, group_aliases(self._blocks))

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor (residual last)."""
        return varcorr_frame(self.random_effects_cov, self._residual_variance, self._blocks)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor."""
        return ByGroup({b.name: len(b.levels) for b in self._blocks}, group_aliases(self._blocks))

    @property
    def is_singular(self) -> bool:
        """A variance or correlation on the boundary (any bounded θ < 1e-4, lme4's ``isSingular``)."""
        return is_singular(self.theta, self.model.random_effects_structure.lower)

    # ------------------------------------------------------------ random effects
    @property
    def random_effects(self) -> dict:
        """BLUPs per grouping factor: a Series for a random intercept, else a DataFrame by coefficient."""
        re = self.model.random_effects_structure
        parts = re.split_b(self.sol.b)
        out = {}
        for blk in self._blocks:
            cols = np.column_stack([parts[i] for i in blk.term_index])
            out[blk.name] = _per_level(cols, blk)
        return ByGroup(out, group_aliases(self._blocks))

    def coef(self) -> dict[str, pd.DataFrame]:
        """lme4's ``coef(m)``: per grouping factor, one row per level and a column per fixed effect,
        holding β̂ plus the level's BLUP for the coefficients with a random effect of that factor
        and β̂ alone for the others (a random intercept shifts only the intercept).

        Returns
        -------
        dict of DataFrame
            Keyed by grouping factor (as :attr:`random_effects`); columns in the fixed effects' order.

        Raises
        ------
        InterlaceError
            A random coefficient that is not a fixed effect (e.g. ``(0 + f | g)`` with ``f``'s
            treatment-coded fixed effects), as lme4's "unable to align random and fixed effects".
        """
        from ..errors import InterlaceError

        fe = self.fe_params
        out = {}
        for name, re in self.random_effects.items():
            re = re.to_frame("Intercept") if isinstance(re, pd.Series) else re
            missing = [c for c in re.columns if c not in fe.index]
            if missing:
                raise InterlaceError(f"unable to align random and fixed effects of {name!r}: random coefficient(s) "
                                     f"{missing} are not fixed effects ({list(fe.index)})")
            table = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            table[re.columns] += re.to_numpy()
            out[name] = table
        return out

    # ------------------------------------------------------------ fitted values
    def _linear_predictor(self, X: np.ndarray, term_designs, offset) -> np.ndarray:
        eta = X @ np.asarray(self.params)[self._fe] if X.shape[1] else np.zeros(X.shape[0])
        if offset is not None:
            eta = eta + offset
        re = self.model.random_effects_structure
        if term_designs is not None:
            parts = re.split_b(self.sol.b)
            for k, (Xk, codes) in enumerate(term_designs):
                seen = codes >= 0
                B = parts[k][np.where(seen, codes, 0)]
                eta = eta + np.where(seen, np.sum(Xk * B, axis=1), 0.0)
        return eta

    # ------------------------------------------------------------ conditional variances
    def factored_engine(self) -> Any:
        """The fit's own PLS engine factored at θ̂ (at the working weights of the modes for
        GLMMs and CLMMs): conditional variances, hat values, derivatives read it."""
        raise NotImplementedError

    def _condvar_terms(self) -> list[np.ndarray]:
        """Per term (fitting order): ``(nlevels, p, p)`` conditional covariances σ² T Bᵢ Tᵀ."""
        cached = getattr(self, "_condvar_cache", None)
        if cached is not None:
            return cached
        re = self.model.random_effects_structure
        blocks = self.factored_engine().cond_cov_blocks()
        out = []
        for k, t in enumerate(re.terms):
            T = t.cov.template(self.theta[re.theta_slice(k)])
            out.append(self._re_scale * np.einsum("ab,ibc,dc->iad", T, blocks[k], T))
        self._condvar_cache = out
        return out

    @property
    def random_effects_condvar(self) -> dict[str, np.ndarray]:
        """Conditional covariance of each level's random effects given the data and the estimates,
        an array ``(nlevels, k, k)`` per grouping factor (lme4's ``attr(ranef(m, condVar=TRUE)[[g]], "postVar")``)."""
        terms = self._condvar_terms()
        out = {}
        for blk in self._blocks:
            k = len(blk.coef_names)
            V = np.zeros((len(blk.levels), k, k))
            pos = 0
            for i in blk.term_index:
                p = terms[i].shape[1]
                V[:, pos:pos + p, pos:pos + p] = terms[i]
                pos += p
            out[blk.name] = V
        return ByGroup(out, group_aliases(self._blocks))

    @property
    def random_effects_condsd(self) -> dict:
        """Conditional standard deviations of the BLUPs / conditional modes, shaped as :attr:`random_effects`."""
        out = {}
        for blk in self._blocks:
            V = self.random_effects_condvar[blk.name]
            sd = np.sqrt(np.maximum(np.diagonal(V, axis1=1, axis2=2), 0.0))
            out[blk.name] = _per_level(sd, blk)
        return ByGroup(out, group_aliases(self._blocks))

    def _predict_eta(self, newdata: pd.DataFrame | None, include_re: bool, offset: Any, exog: Any,
                     transform: bool) -> tuple[np.ndarray, Any]:
        """The linear predictor and its row index for ``predict``: the fitted rows, new data, or
        (statsmodels' ``exog`` with ``transform=False``) a fixed-effects model matrix."""
        newdata, Xnew, xindex = self._new_rows(newdata, exog, transform)
        if Xnew is not None:
            return self._linear_predictor(Xnew, None, None if offset is None else np.asarray(offset, float)), xindex
        if newdata is None:
            return self._eta_fit(include_re), self.model.data.row_labels
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
        return self._eta_new(newdata, include_re, offset), newdata.index

    def _new_rows(self, newdata: pd.DataFrame | None, exog: Any, transform: bool
                  ) -> tuple[pd.DataFrame | None, np.ndarray | None, Any]:
        """statsmodels' ``predict(exog=, transform=)`` read as ``newdata`` or a model matrix.

        Returns ``(newdata, X, index)``: ``exog`` with ``transform=True`` is new data in the
        original variables (as ``newdata``); with ``transform=False`` it is the fixed-effects
        model matrix ``X`` (its columns those of ``params``), whose predictions are Xβ̂ only.
        """
        if exog is None:
            return newdata, None, None
        if newdata is not None:
            raise DataError("give the new data once: newdata= or exog= (statsmodels' name), not both")
        if transform:
            if isinstance(exog, pd.Series):
                exog = exog.to_frame().T
            return exog, None, None
        X = np.asarray(exog, float)
        if X.ndim == 1:
            X = X[None, :] if X.size == len(self._names) else X[:, None]
        if X.ndim != 2 or X.shape[1] != len(self._names):
            raise DataError(f"exog with transform=False must be the fixed-effects model matrix with "
                            f"{len(self._names)} columns ({self._names}), got shape {np.shape(exog)}")
        index = exog.index if isinstance(exog, (pd.DataFrame, pd.Series)) and np.ndim(exog) == 2 else None
        return None, X, index if index is not None else pd.RangeIndex(X.shape[0])

    def _eta_new(self, newdata: pd.DataFrame, include_re: bool, offset) -> np.ndarray:
        """Linear predictor for new data (unseen levels contribute 0, with an :class:`UnseenLevelWarning`)."""
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        fx = self.model.fixed_design
        X = new_matrix(fx.design_info, newdata, "the fixed effects")[:, fx.keep]
        off = None
        off_arg = getattr(self.model, "offset_arg", None)
        if offset is not None:
            off = np.asarray(offset, float)
        elif self.model.offset is not None:
            if isinstance(off_arg, str) and off_arg in newdata.columns:
                off = newdata[off_arg].to_numpy(float)
            else:
                raise DataError("the model has an offset: pass offset= for newdata "
                                "(or give the offset as a column name when fitting)")
        designs = None
        if include_re:
            terms = self.model.random_effects_structure.terms
            designs = [t.new_design(newdata) for t in terms]
            _warn_unseen(terms, designs, newdata)
        return self._linear_predictor(X, designs, off)
