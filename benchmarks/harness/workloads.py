"""The benchmark workloads: model, data and per-tool settings, and the targets the report checks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .common import INSTEVAL_CSV, VERBAGG_CSV, fmt_seconds, row_key
from .simulate import (
    make_clmm_crossed,
    make_cox_5k,
    make_cox_100k,
    make_cox_crossed_20k,
    make_cox_strata_counting,
    make_crossed_1m,
    make_crossed_200x100,
    make_crossed_slopes_3m,
    make_crossed_slopes_200k,
    make_glmm_binary_crossed,
    make_idiom_600,
    make_idiom_5000,
    make_sleepstudy,
    make_slopes_500,
    make_users_items,
)


@dataclass(frozen=True)
class Workload:
    """One benchmark model and the data it is fitted to.

    Attributes
    ----------
    name : str
        Key used by ``--only``.
    formula : str
        lme4 formula, passed unchanged to ``lmer`` and to ``interlace.fit``.
    method : {"REML", "ML"}
    summary : str
        One-line description for the report.
    data : callable or None
        ``data(directory) -> Path`` writes the CSV and returns its path; None
        for a file shipped in the repository (``path``).
    path : Path, optional
        Data file when ``data`` is None.
    r_factors : tuple of str
        Columns R turns into factors (grouping factors and factor covariates).
    py_categorical : tuple of str
        Columns Python reads as strings (categorical); grouping columns may stay
        integer-coded.
    statsmodels : dict or None
        ``MixedLM.from_formula`` arguments, or None when statsmodels is skipped.
    statsmodels_note : str
        Why statsmodels is skipped, or how it is set up.
    target : callable or None
        ``target(rows) -> list of (text, measured, ok)`` for the issue's goals.
    notes : str
        Extra remarks for the report (e.g. exactly which model is fitted).
    family : str or None
        GLMM family (``"binomial"``) fitted with ``interlace.glmer`` and lme4's
        ``glmer``; None for a linear mixed model (``interlace.fit``, ``lmer``).
    link : str
        GLMM link function (R's name).
    nagq : int
        GLMM ``nAGQ`` (0: PIRLS only; 1: Laplace).
    mixedlm_skip : str
        Why mixedlm is not run on this workload ("" to run it).
    ilme_skip : str
        Why interlace-lme is not run on this workload ("" to run it).
    ilme_binary : tuple
        ``(column, success)``: interlace-lme needs a numeric 0/1 response, so
        its worker codes ``column == success`` as 1 after loading (untimed).
    reference : str
        The tool the agreement columns compare with: ``"lme4"``, or ``"coxme"`` for a
        Cox model (``interlace.coxme`` against R's ``coxme``; ``formula`` is then the coxme
        formula, which interlace reads unchanged, and ``method`` the ties), or ``"ordinal"`` for a
        cumulative link mixed model (``interlace.clmm`` against R's ``ordinal::clmm``; ``formula``
        is the clmm formula and ``response`` the ordinal response column).
    response : str
        The ordinal response of a CLMM workload (read as an ordered factor by R).
    bootstrap : int
        0: the timed call is the fit.  n > 0: the model is fitted once, untimed, and the
        timed call is a parametric bootstrap of ``n`` refits (interlace ``res.bootstrap``,
        lme4 ``bootMer``, mixedlm ``bootMer``); the agreement columns compare the fit.
    """

    name: str
    formula: str
    method: str
    summary: str
    data: Callable[[Path], Path] | None = None
    path: Path | None = None
    r_factors: tuple = ()
    py_categorical: tuple = ()
    statsmodels: dict | None = None
    statsmodels_note: str = ""
    target: Callable | None = None
    notes: str = ""
    family: str | None = None
    link: str = "logit"
    nagq: int = 1
    mixedlm_skip: str = ""
    ilme_skip: str = ""
    ilme_binary: tuple = ()
    reference: str = "lme4"
    bootstrap: int = 0
    response: str = ""

    @property
    def is_cox(self) -> bool:
        """Whether this is a Cox model with frailties (``interlace.coxme`` against R's ``coxme``)."""
        return self.reference == "coxme"

    @property
    def is_clmm(self) -> bool:
        """Whether this is a cumulative link mixed model (``interlace.clmm`` against ``ordinal::clmm``)."""
        return self.reference == "ordinal"

    @property
    def is_glmm(self) -> bool:
        """Whether this is a GLMM workload (``glmer``) rather than an LMM (``lmer``)."""
        return self.family is not None

    def prepare(self, directory: Path) -> Path:
        """Path of the workload's data: simulated and written to ``directory``, or the shipped file."""
        return self.data(directory) if self.data else self.path

    @property
    def fit_label(self) -> str:
        """How the model is fitted, for the report: ``REML`` or ``binomial (logit), Laplace (nAGQ=1)``."""
        if self.is_cox:
            return f"Cox, {self.method} ties (coxme's default estimation)"
        if self.is_clmm:
            return f"cumulative {self.link}, Laplace (ordinal's default estimation)"
        if not self.is_glmm:
            return self.method
        how = {0: "PIRLS only", 1: "Laplace"}.get(self.nagq, "adaptive Gauss-Hermite")
        return f"{self.family} ({self.link}), {how} (nAGQ={self.nagq})"


# ----------------------------------------------------------------------------- targets
def _seconds(rows, tool="interlace", engine="auto"):
    """Median seconds of one row of a workload's results (None if missing)."""
    r = rows.get(row_key(tool, engine))
    return r.get("median_seconds") if r and r.get("status") == "ok" else None


def _time_target(limit: float) -> Callable:
    """Target ``interlace (auto) median ≤ limit`` seconds."""
    def check(rows):
        t = _seconds(rows)
        return [(f"interlace (auto) ≤ {limit:g} s", fmt_seconds(t), None if t is None else t <= limit)]
    return check


def _insteval_target(rows):
    """insteval (issue 20): ≤ 1 s, peak RSS ≤ 300 MB, ≥ 8× faster than lme4 in the same run."""
    out = _time_and_peak_target(1.0, 0.3)(rows)
    t, tr = _seconds(rows), _seconds(rows, "lme4", "")
    speedup = None if (t is None or tr is None) else tr / t
    out.append(("interlace (auto) ≥ 8× faster than lme4", "n/a" if speedup is None else f"{speedup:.1f}×",
                None if speedup is None else speedup >= 8))
    return out + _ahead_of(rows, "mixedlm")


def _ahead_of(rows, tool: str) -> list:
    """Target ``interlace (auto) faster than <tool>`` in the same run (no row if the tool did not run)."""
    t, to = _seconds(rows), _seconds(rows, tool, "")
    if to is None:
        return []
    ok = None if t is None else t < to
    measured = "n/a" if ok is None else f"{fmt_seconds(t)} vs {fmt_seconds(to)}"
    return [(f"interlace (auto) faster than {tool}", measured, ok)]


def _time_and_peak_target(limit_s: float, limit_gb: float) -> Callable:
    """Target ``interlace (auto) median ≤ limit_s`` seconds and peak RSS ≤ ``limit_gb`` (fresh process, total)."""
    def check(rows):
        out = _time_target(limit_s)(rows)
        r = rows.get(row_key("interlace", "auto"), {})
        peak = r.get("peak_mb")
        out.append((f"interlace (auto) peak RSS ≤ {limit_gb:g} GB (whole process)",
                    "n/a" if peak is None else
                    f"{peak / 1000:.2f} GB (fit alone {r.get('delta_mb', 0) / 1000:.2f} GB)",
                    None if peak is None else peak <= limit_gb * 1000))
        return out
    return check


#: crossed_1m: ≤ 5 s and ≤ 1.5 GB peak RSS (fresh process, total).
_crossed_1m_target = _time_and_peak_target(5.0, 1.5)


def _slopes_target(rows):
    """slopes_500: interlace ahead of lme4 and mixedlm."""
    return _ahead_of(rows, "lme4") + _ahead_of(rows, "mixedlm")


def _glmm_binary_target(rows):
    """glmm_binary_crossed (issue 20): ≤ 2 s and ahead of lme4 in the same run."""
    return _time_target(2.0)(rows) + _faster_than_lme4_target(rows)


def _faster_than_lme4_target(rows):
    """interlace (auto) ahead of lme4 in the same run."""
    t, tr = _seconds(rows), _seconds(rows, "lme4", "")
    ok = None if (t is None or tr is None) else t < tr
    measured = "n/a" if ok is None else f"{fmt_seconds(t)} s vs {fmt_seconds(tr)} s ({tr / t:.1f}×)"
    return [("interlace (auto) faster than lme4", measured, ok)]


#: The drop-in (``interlace.api``) against statsmodels' own MixedLM on the crossed idiom.
DROPIN_SPEEDUP = 10.0
DROPIN_LLF_TOL = 1e-6


def _dropin_target(rows):
    """interlace.api ≥ 10× faster than statsmodels in the same run, at the same optimum.

    The same optimum: interlace.api's llf is statsmodels' own ``loglike`` at interlace.api's
    estimate and interlace.fit's llf (to 1e-6), and not below statsmodels' fitted llf by more
    than 1e-6 (it is above where statsmodels' optimizer stops short).
    """
    t, ts = _seconds(rows, "interlace.api", ""), _seconds(rows, "statsmodels", "")
    speedup = None if (t is None or ts is None) else ts / t
    out = [(f"interlace.api ≥ {DROPIN_SPEEDUP:g}× faster than statsmodels",
            "n/a" if speedup is None else f"{fmt_seconds(t)} vs {fmt_seconds(ts)} s ({speedup:.1f}×)",
            None if speedup is None else speedup >= DROPIN_SPEEDUP)]
    api = rows.get(row_key("interlace.api", ""), {})
    ok_api = api.get("status") == "ok"
    at = api.get("llf_statsmodels_at_estimate")
    d = abs(api["llf"] - at) if ok_api and at is not None else None
    out.append((f"interlace.api llf = statsmodels' loglike at its estimate, to {DROPIN_LLF_TOL:g}",
                "n/a" if d is None else f"{d:.1e}", None if d is None else d <= DROPIN_LLF_TOL))
    fit = rows.get(row_key("interlace", "auto"), {})
    d = abs(api["llf"] - fit["llf"]) if ok_api and fit.get("status") == "ok" else None
    out.append((f"interlace.api llf = interlace.fit's to {DROPIN_LLF_TOL:g}", "n/a" if d is None else f"{d:.1e}",
                None if d is None else d <= DROPIN_LLF_TOL))
    sm = rows.get("statsmodels", {})
    d = api["llf"] - sm["llf"] if ok_api and sm.get("status") == "ok" else None
    out.append((f"interlace.api llf ≥ statsmodels' fitted llf − {DROPIN_LLF_TOL:g} (higher where statsmodels stops "
                "short)", "n/a" if d is None else f"{d:+.1e}", None if d is None else d >= -DROPIN_LLF_TOL))
    return out


#: statsmodels' crossed idiom: one all-rows group, a variance component per crossed factor.
IDIOM_STATSMODELS = {"formula": "y ~ x", "groups": "_one", "re_formula": "0",
                     "vc_formula": {"g1": "0 + C(g1)", "g2": "0 + C(g2)"}}
IDIOM_NOTE = ("crossed factors as variance components of one all-rows group: "
              "`groups=1, re_formula='0', vc_formula={'g1': '0 + C(g1)', 'g2': '0 + C(g2)'}`; "
              "interlace.api runs the same call")


def _cox_target(rows):
    """Cox workloads: interlace (auto) at least as fast as R's coxme, the same integrated log-likelihood to 1e-6."""
    t, tr = _seconds(rows), _seconds(rows, "coxme", "")
    out = [("interlace (auto) at least as fast as coxme",
            "n/a" if t is None or tr is None else f"{fmt_seconds(t)} s vs {fmt_seconds(tr)} s ({tr / t:.1f}×)",
            None if t is None or tr is None else t <= tr)]
    ag = rows.get(row_key("interlace", "auto"), {}).get("agreement")
    out.append(("\\|llf − llf_coxme\\| ≤ 1e-6 (integrated log-likelihood)",
                "n/a" if not ag else f"{ag['llf_abs']:.1e}", None if not ag else ag["llf_abs"] <= 1e-6))
    return out


#: statsmodels, mixedlm and interlace-lme have no Cox model with random effects.
COX_OTHERS = "not run: no Cox model with random effects"
#: Why the Python peers have no CLMM row.
CLMM_MIXEDLM = "not run: mixedlm 1.3 has no cumulative link (ordinal) mixed model (only `lmer`, `glmer`, `nlmer`)"
CLMM_OTHERS = "not run: no cumulative link mixed model"


def _clmm_target(rows):
    """CLMM workloads: interlace (auto) ≤ 1 s and faster than ordinal's clmm; its log-likelihood not below
    ordinal's by more than 1e-6 (higher where ordinal's default gradient tolerance stops it short)."""
    out = _time_target(1.0)(rows)
    t, tr = _seconds(rows), _seconds(rows, "ordinal", "")
    out.append(("interlace (auto) faster than ordinal::clmm",
                "n/a" if t is None or tr is None else f"{fmt_seconds(t)} s vs {fmt_seconds(tr)} s ({tr / t:.1f}×)",
                None if t is None or tr is None else t < tr))
    r, ref = rows.get(row_key("interlace", "auto"), {}), rows.get(row_key("ordinal", ""), {})
    d = r["llf"] - ref["llf"] if r.get("status") == "ok" and ref.get("status") == "ok" else None
    out.append(("llf − llf_ordinal ≥ −1e-6", "n/a" if d is None else f"{d:+.1e}", None if d is None else d >= -1e-6))
    return out

# ----------------------------------------------------------------------------- workloads
#: statsmodels has no maximum-likelihood GLMM to compare with.
GLMM_STATSMODELS_NOTE = ("not run: statsmodels has no maximum-likelihood GLMM (its `BinomialBayesMixedGLM` "
                         "is a variational-Bayes fit)")
#: VerbAgg's columns that R turns into factors (``r2``: N/Y, so "Y" is the success as in lme4).
VERBAGG_FACTORS = ("id", "item", "r2", "Gender", "btype", "situ")
VERBAGG_NOTES = ("`r2` (N/Y) is a factor in R, so Y is the success; interlace codes a two-level string "
                 "response the same way (second sorted level = 1). `Gender`, `btype`, `situ` are factors "
                 "(treatment contrasts, first level dropped) in both tools; `id` is read as an integer code.")

#: statsmodels cannot fit random slopes on two crossed factors.
CROSSED_SLOPES_STATSMODELS = ("skipped: statsmodels has one grouping factor; crossed random slopes would be "
                              "variance components of one all-rows group (no correlation between a factor's "
                              "intercept and slope)")
CROSSED_SLOPES_NOTES = ("Simulated by `simulate_crossed_slopes` (numpy seed offsets 31 and 32): each row draws its "
                        "`a` and `b` levels uniformly, `y = 1 + 0.5 x + a0[a] + a1[a] x + b0[b] + b1[b] x + e` with "
                        "(a0, a1) of sds 1 and 0.5 and correlation 0.3, (b0, b1) of sds 0.7 and 0.4 and correlation "
                        "−0.4, `x, e ~ N(0, 1)`: both covariance matrices well identified (θ of 6 entries, none "
                        "near 0).")

WORKLOADS: list[Workload] = [
    Workload(
        "sleepstudy", "Reaction ~ Days + (Days | Subject)", "REML",
        "lme4's sleepstudy, 180 rows, 18 subjects, correlated intercept and slope",
        data=make_sleepstudy, r_factors=("Subject",),
        statsmodels={"formula": "Reaction ~ Days", "groups": "Subject", "re_formula": "~Days"},
        statsmodels_note="`mixedlm('Reaction ~ Days', groups='Subject', re_formula='~Days')`",
        target=_time_target(0.004)),
    Workload(
        "bootstrap_sleepstudy", "Reaction ~ Days + (Days | Subject)", "REML",
        "1,000 parametric-bootstrap refits of the sleepstudy fit in one process (the fit itself untimed)",
        data=make_sleepstudy, r_factors=("Subject",), bootstrap=1000,
        statsmodels_note="not run: statsmodels has no parametric bootstrap of a mixed model",
        ilme_skip="not run: interlace-lme has no parametric bootstrap",
        target=_time_target(1.0),
        notes="Timed: interlace `res.bootstrap(n=1000, seed=1, progress=False)` (every parameter of each "
              "refit); lme4 `bootMer(m, FUN = function(x) c(fixef(x), getME(x, 'theta')), nsim = 1000)`; "
              "mixedlm `mixedlm.bootMer(m, nsim=1000, seed=1)`. The warm-up call of each worker is a "
              "bootstrap of 20 refits. evals and opt s are those of the fit."),
    Workload(
        "crossed_200x100", "y ~ x + (1 | g1) + (1 | g2)", "REML",
        "simulated, 20,000 rows, g1: 200 levels crossed with g2: 100 levels",
        data=make_crossed_200x100, r_factors=("g1", "g2"),
        statsmodels=IDIOM_STATSMODELS, statsmodels_note=IDIOM_NOTE,
        target=_time_target(0.015)),
    Workload(
        "insteval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)", "REML",
        "lme4's InstEval, 73,421 rows, s: 2,972 × d: 1,128 crossed, dept: 14",
        path=INSTEVAL_CSV, r_factors=("s", "d", "dept", "service"),
        statsmodels_note="skipped: measured at > 600 s and 11.8 GB (one all-rows group with ~4,100 dense "
                         "variance-component columns)",
        target=_insteval_target,
        notes="R: `service` is a factor (levels 0, 1; fixed effect `service1`). Python: `service` is "
              "numeric 0/1 (fixed effect `service`): the same model matrix."),
    Workload(
        "insteval_4theta_ml", "y ~ 1 + service + (1 | s) + (1 | d) + (0 + service | dept)", "ML",
        "InstEval, ML, by-dept 2×2 covariance of the service levels",
        path=INSTEVAL_CSV, r_factors=("s", "d", "dept", "service"), py_categorical=("service",),
        statsmodels_note="skipped: same data as insteval, larger model",
        target=_time_target(2.5),
        notes="`service` is a factor in both tools, so `(0 + service | dept)` has two columns "
              "(service0, service1 indicators) with an unstructured 2×2 covariance per dept: θ has "
              "5 entries (s, d, and 3 for the dept block), not 4 as the name suggests (a numeric 0/1 "
              "`service` would give 3). Fixed effects: intercept and `service1` (`service[T.1]`).",
        ilme_skip="not run: interlace-lme reads the factor `service` in `(0 + service | dept)` as one "
                  "column, so it fits one dept variance (θ of 3 entries) instead of lme4's 2×2 covariance "
                  "(5 entries): a different model"),
    Workload(
        "crossed_1m", "y ~ x1 + x2 + (1 | g1) + (1 | g2)", "REML",
        "simulated, 1,000,000 rows, g1: 1,000 levels crossed with g2: 500 levels",
        data=make_crossed_1m, r_factors=("g1", "g2"),
        statsmodels_note="skipped: statsmodels can only treat crossed factors as variance components of one "
                         "group, whose dense 1,000,000 × 1,500 design alone is 12 GB",
        target=_crossed_1m_target),
    Workload(
        "slopes_500", "y ~ x + (1 + x | g)", "REML",
        "simulated, 50,000 rows, 500 groups × 100 rows, correlated intercept and slope",
        data=make_slopes_500, r_factors=("g",),
        statsmodels={"formula": "y ~ x", "groups": "g", "re_formula": "~x"},
        statsmodels_note="`mixedlm('y ~ x', groups='g', re_formula='~x')`",
        target=_slopes_target),
    Workload(
        "crossed_slopes_200k", "y ~ x + (1 + x | a) + (1 + x | b)", "REML",
        "simulated, 200,000 rows, correlated random intercepts and slopes on a: 1,000 levels crossed with "
        "b: 500 levels",
        data=make_crossed_slopes_200k, r_factors=("a", "b"),
        statsmodels_note=CROSSED_SLOPES_STATSMODELS,
        target=_time_target(2.0), notes=CROSSED_SLOPES_NOTES),
    Workload(
        "crossed_slopes_3m", "y ~ x + (1 + x | a) + (1 + x | b)", "REML",
        "simulated, 3,000,000 rows, correlated random intercepts and slopes on a: 2,000 levels crossed with "
        "b: 1,000 levels",
        data=make_crossed_slopes_3m, r_factors=("a", "b"),
        statsmodels_note=CROSSED_SLOPES_STATSMODELS,
        target=_time_target(30.0), notes=CROSSED_SLOPES_NOTES),
    Workload(
        "users_items", "y ~ 1 + (1 | user) + (1 | item)", "REML",
        "simulated ratings of the MovieLens-1M shape, 965,985 rows, user: 6,040 × item: 3,699 crossed, "
        "skewed counts (20–2,314 ratings per user, lognormal item popularity), no repeated (user, item) pair",
        data=make_users_items, r_factors=("user", "item"),
        statsmodels_note="skipped: crossed factors would be variance components of one all-rows group, whose "
                         "dense 965,985 × 9,739 design alone is 75 GB",
        target=_time_and_peak_target(30.0, 1.0),
        notes="Simulated by `simulate_users_items` (numpy seed offset 8): ratings per user `20 + lognormal(0, "
              "1.1)` scaled to the total and capped at 2,314, items drawn without replacement with lognormal(0, "
              "1.2) popularity; `y = 3.6 + u[user] + v[item] + e`, sd 0.45, 0.55, 0.9. One lme4 fit of this shape "
              "was reported at 584 s (issue 5): its row is `timeout` when its warm-up and timed fits do not all "
              "finish within `--timeout`, with the fits it completed in the Notes."),
    Workload(
        "glmm_binary_crossed", "y ~ x + (1 | g1) + (1 | g2)", "ML",
        "simulated binary response, 100,000 rows, g1: 1,000 levels crossed with g2: 200 levels",
        data=make_glmm_binary_crossed, r_factors=("g1", "g2"),
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_glmm_binary_target,
        family="binomial", nagq=1),
    Workload(
        "verbagg_laplace", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "ML",
        "lme4's VerbAgg, 7,584 rows, id: 316 × item: 24 crossed",
        path=VERBAGG_CSV, r_factors=VERBAGG_FACTORS,
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_time_target(0.5), notes=VERBAGG_NOTES,
        family="binomial", nagq=1, ilme_binary=("r2", "Y")),
    Workload(
        "verbagg_nagq0", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "ML",
        "lme4's VerbAgg, as verbagg_laplace",
        path=VERBAGG_CSV, r_factors=VERBAGG_FACTORS,
        statsmodels_note=GLMM_STATSMODELS_NOTE, target=_time_target(0.3), notes=VERBAGG_NOTES,
        family="binomial", nagq=0, ilme_binary=("r2", "Y"),
        ilme_skip="not run: interlace-lme's `glmer` has no nAGQ=0 (it requires nAGQ ≥ 1)"),
]
WORKLOADS += [
    Workload(
        f"idiom_{n}", "y ~ x + (1 | g1) + (1 | g2)", "REML",
        f"statsmodels' crossed idiom, {summary}: `mixedlm` from interlace.api and from statsmodels",
        data=make, r_factors=("g1", "g2"), statsmodels=IDIOM_STATSMODELS, statsmodels_note=IDIOM_NOTE,
        target=_dropin_target,
        notes="The drop-in's row (`interlace.api`) fits the statsmodels call; interlace and lme4 fit the lme4 "
              "formula: the same model. Its targets: at least 10× statsmodels' time in the same run, at the same "
              "optimum (its log-likelihood equal to statsmodels' own `loglike` at its estimate and to "
              "interlace.fit's, to 1e-6, and not below statsmodels' fitted value).")
    for n, summary, make in (
        ("600", "simulated, 600 rows, g1: 150 levels crossed with g2: 12 levels", make_idiom_600),
        ("5000", "simulated, 5,000 rows, g1: 100 levels crossed with g2: 50 levels", make_idiom_5000),
        ("20000", "crossed_200x100's data (20,000 rows, 200 × 100 levels)", make_crossed_200x100),
    )
]
WORKLOADS += [
    Workload(
        "cox_5k", "Surv(time, status) ~ x + z + (1 | g)", "efron",
        "simulated survival times, 5,000 rows, 100 frailty groups, about 62 % events",
        data=make_cox_5k, r_factors=("g",), statsmodels_note=COX_OTHERS, target=_cox_target,
        mixedlm_skip=COX_OTHERS, ilme_skip=COX_OTHERS, reference="coxme"),
    Workload(
        "cox_100k", "Surv(time, status) ~ x + z + (1 | g)", "efron",
        "simulated survival times, 100,000 rows, 1,000 frailty groups",
        data=make_cox_100k, r_factors=("g",), statsmodels_note=COX_OTHERS, target=_cox_target,
        mixedlm_skip=COX_OTHERS, ilme_skip=COX_OTHERS, reference="coxme"),
    Workload(
        "cox_crossed_20k", "Surv(time, status) ~ x + z + (1 | a) + (1 | b)", "efron",
        "simulated survival times, 20,000 rows, crossed frailties a: 200 levels × b: 50 levels",
        data=make_cox_crossed_20k, r_factors=("a", "b"), statsmodels_note=COX_OTHERS, target=_cox_target,
        mixedlm_skip=COX_OTHERS, ilme_skip=COX_OTHERS, reference="coxme",
        notes="coxme's sparse approximation applies to `a` (200 levels, each under 2 % of the rows), which "
              "is written first; `b` is a dense block in both tools."),
    Workload(
        "cox_strata_counting", "Surv(tstart, tstop, status) ~ x + z + strata(site) + (1 | g)", "efron",
        "simulated counting-process data: 10,000 subjects in about 20,400 (start, stop] rows with a covariate "
        "changing at 0.5, 1, 1.5, four strata, 200 frailty groups",
        data=make_cox_strata_counting, r_factors=("g",), statsmodels_note=COX_OTHERS, target=_cox_target,
        mixedlm_skip=COX_OTHERS, ilme_skip=COX_OTHERS, reference="coxme"),
]
WORKLOADS += [
    Workload(
        "clmm_crossed", "rating ~ x + (1 | judge) + (1 | item)", "Laplace",
        "simulated ordinal ratings (5 categories), 10,000 rows, 100 judges × 50 items crossed",
        data=make_clmm_crossed, r_factors=("judge", "item"), statsmodels_note=CLMM_OTHERS, target=_clmm_target,
        mixedlm_skip=CLMM_MIXEDLM, ilme_skip=CLMM_OTHERS, reference="ordinal", response="rating",
        notes="`rating` is read as an ordered factor by R (`factor(rating, ordered = TRUE)`) and as integers "
              "ordered by value by interlace."),
]
BY_NAME = {w.name: w for w in WORKLOADS}
