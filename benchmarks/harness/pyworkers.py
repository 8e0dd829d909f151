"""Worker side of the Python tools that run in this Python: interlace, interlace.api, statsmodels and mixedlm.

Each ``fit_*`` function runs inside a worker subprocess (``run_benchmarks.py --worker
SPEC``) and returns the JSON-ready result of one spec.  Modes: ``time`` (one warm-up
fit, then ``repeats`` timed fits), ``baseline`` (import the same modules and load the
data, fit nothing) and, for interlace, ``peak`` (one fit in a fresh process, for its
peak memory).  Loading, timing, warnings and the spec/result protocol are the shared
helpers of ``benchmarks/interlace_lme_worker.py``.
"""
from __future__ import annotations

from ..interlace_lme_worker import load_frame, serve, thread_info, timed, with_warnings


def _timed_or_once(run, spec: dict) -> tuple:
    """``(seconds, result)``: ``run`` timed ``spec["repeats"]`` times, or once untimed in a peak-memory worker."""
    if spec["mode"] == "peak":
        return None, run()
    return timed(run, spec["repeats"], None, spec.get("progress"))


def _frame_cov(cov) -> list:
    """Covariance matrix (DataFrame or array) as nested lists."""
    import numpy as np

    return np.asarray(cov, float).tolist()


def _start(spec: dict, **extra) -> tuple:
    """The workload's data frame and the result fields every mode reports."""
    return load_frame(spec), {"status": "ok", "mode": spec["mode"], "threads": thread_info(), **extra}


def _theta_names(res) -> list | None:
    """lme4-style names of interlace's θ (``g.(Intercept)``) when every term is scalar, else None."""
    try:
        terms = res.model.random_effects_structure.terms
    except AttributeError:
        return None
    if any(t.cov.n_theta != 1 or len(t.coef_names) != 1 for t in terms):
        return None
    return [f"{t.name}.{t.coef_names[0]}" for t in terms]


def fit_interlace(spec: dict) -> dict:
    """Fit with ``interlace.fit`` (``interlace.glmer`` for a GLMM spec, ``interlace.coxme`` for a Cox spec):
    modes ``time``, ``peak``, ``baseline``."""
    from interlace import coxme, fit, glmer  # imported in every mode, so the baseline holds it too

    df, out = _start(spec)
    if spec["mode"] == "baseline":
        return out
    if spec.get("cox"):
        return _fit_coxme(spec, df, out, coxme)
    if spec.get("clmm"):
        return _fit_clmm(spec, df, out)
    if spec.get("family"):
        def run():
            return glmer(spec["formula"], df, family=spec["family"], link=spec["link"], nAGQ=spec["nagq"],
                         engine=spec["engine"])
    else:
        def run():
            return fit(spec["formula"], df, method=spec["method"], engine=spec["engine"])

    boot = None
    if spec.get("bootstrap"):  # the fit untimed; the timed call is the parametric bootstrap
        fitted = run()
        n_boot = int(spec["bootstrap"])
        calls = iter([20])  # the warm-up call: a short bootstrap

        def run():
            return fitted.bootstrap(n=next(calls, n_boot), seed=1, progress=False)

    seconds, res = _timed_or_once(run, spec)
    if spec.get("bootstrap"):
        boot, res = res, fitted
    pls = getattr(getattr(res.model, "_deviance", None), "pls", None)
    opt = res.opt_summary
    out.update(
        seconds=seconds,
        optimizer_seconds=float(opt.seconds),
        n_evals=int(opt.n_evals),
        engine_used=getattr(res, "engine", None) or getattr(pls, "engine", None),
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=[{"group": g, "names": list(c.index), "matrix": _frame_cov(c)}
             for g, c in res.random_effects_cov.items()],
        residual_var=float(res.scale),
        llf=float(res.llf),
        theta=[float(t) for t in res.theta],
        theta_names=_theta_names(res),
        messages=list(opt.messages),
        converged=bool(res.converged),
    )
    if boot is not None:
        out.update(bootstrap_n=boot.n, bootstrap_failed=boot.n_failed, bootstrap_singular=int(boot.singular.sum()),
                   bootstrap_se={str(k): float(v) for k, v in boot.se.items()})
    return out


def _fit_coxme(spec: dict, df, out: dict, coxme) -> dict:
    """``interlace.coxme`` on a Cox workload (ties in ``method``), with coxme's default estimation."""
    import warnings

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return coxme(spec["formula"], df, ties=spec["method"], engine=spec["engine"])

    seconds, res = _timed_or_once(run, spec)
    opt = res.opt_summary
    cov = [{"group": name, "names": [str(c) for c in C.index], "matrix": _frame_cov(C)}
           for name, C in res.random_effects_cov.items()]
    out.update(
        seconds=seconds,
        optimizer_seconds=float(opt.seconds) if getattr(opt, "seconds", None) is not None else None,
        # coxme's starting grid (4 values per variance), the BFGS evaluations (gradients included), the final fit
        n_evals=4 ** len(res.theta) + int(opt.n_evals) + 1,
        engine_used=res.engine,
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=cov,
        residual_var=1.0,
        llf=float(res.llf),
        theta=[float(t) for t in res.theta],
        messages=list(opt.messages),
        converged=bool(res.converged),
    )
    return out


def _fit_clmm(spec: dict, df, out: dict) -> dict:
    """``interlace.clmm`` on a CLMM workload (the response's integers ordered by value), default controls."""
    from interlace import clmm

    def run():
        return clmm(spec["formula"], df, link=spec["link"], engine=spec["engine"])

    seconds, res = _timed_or_once(run, spec)
    opt = res.opt_summary
    vc = res.variance_components
    out.update(
        seconds=seconds,
        optimizer_seconds=float(opt.seconds),
        n_evals=int(opt.n_evals),
        engine_used=res.engine,
        fe={str(k): float(v) for k, v in res.params.items()},
        cov=[{"group": str(g), "names": ["(Intercept)"], "matrix": [[float(v)]]} for (g, _), v in vc.items()],
        residual_var=1.0,
        llf=float(res.llf),
        theta=[float(t) for t in res.theta],
        messages=list(opt.messages),
        converged=bool(res.converged),
    )
    return out


def fit_statsmodels(spec: dict, smf=None) -> dict:
    """Fit with statsmodels ``MixedLM``: modes ``time`` (each fit limited to ``per_fit_timeout`` s) and ``baseline``.

    ``smf``: the module whose ``mixedlm`` is called (default ``statsmodels.formula.api``;
    :func:`fit_interlace_api` passes ``interlace.api``).
    """
    if smf is None:
        import statsmodels.formula.api as smf

    sm_args = dict(spec["statsmodels"])
    df, out = _start({**spec, "add_constant_group": sm_args.get("groups") == "_one"})
    if spec["mode"] == "baseline":
        return out
    formula = sm_args.pop("formula")

    def call():
        return smf.mixedlm(formula, df, **sm_args).fit(reml=spec["method"] == "REML", full_output=True)

    try:
        seconds, (res, messages) = timed(with_warnings(call), spec["repeats"], spec.get("per_fit_timeout"),
                                         spec.get("progress"))
    except TimeoutError:
        return {**out, "status": "timeout"}
    cov = []
    if res.k_re:
        cov.append({"group": sm_args["groups"], "names": list(res.cov_re.index), "matrix": _frame_cov(res.cov_re)})
    if res.k_vc:
        for name, v in zip(res.model.exog_vc.names, res.vcomp, strict=True):
            cov.append({"group": name, "names": [name], "matrix": [[float(v)]]})
    hist = res.hist or []
    opt = getattr(res, "opt_summary", None)  # interlace.api: the optimizer record
    if opt is not None:
        out.update(optimizer_seconds=float(opt.seconds), n_evals=int(opt.n_evals),
                   terms=[f"{t.name} ({t.nlevels} levels)" for t in res.model.random_effects_structure.terms])
    else:
        out.update(n_evals=int(sum(h.get("fcalls", 0) for h in hist)),
                   n_grad_evals=int(sum(h.get("gcalls", 0) for h in hist)))
    out.update(
        seconds=seconds,
        fe={str(k): float(v) for k, v in res.fe_params.items()},
        cov=cov,
        residual_var=float(res.scale),
        llf=float(res.llf),
        messages=messages,
        converged=bool(res.converged),
    )
    return out


def fit_interlace_api(spec: dict) -> dict:
    """Fit the workload's statsmodels call with ``interlace.api.mixedlm`` (the drop-in): modes ``time``, ``peak``,
    ``baseline``; the timing worker also evaluates statsmodels' ``loglike`` at the estimate, untimed."""
    import interlace.api as ia

    if spec["mode"] == "peak":  # one fit in a fresh process, for the peak memory (as interlace's row)
        sm_args = dict(spec["statsmodels"])
        df, out = _start({**spec, "add_constant_group": sm_args.get("groups") == "_one"})
        ia.mixedlm(sm_args.pop("formula"), df, **sm_args).fit(reml=spec["method"] == "REML")
        return out
    out = fit_statsmodels(spec, ia)
    if out.get("status") == "ok" and spec["mode"] == "time":
        out["llf_statsmodels_at_estimate"] = _statsmodels_llf_at(spec)
    return out


def _statsmodels_llf_at(spec: dict) -> float:
    """statsmodels' own ``MixedLM.loglike`` at interlace.api's estimate (untimed; the same call, fitted again)."""
    import statsmodels.formula.api as smf

    import interlace.api as ia

    sm_args = dict(spec["statsmodels"])
    df, _ = _start({**spec, "add_constant_group": sm_args.get("groups") == "_one"})
    formula = sm_args.pop("formula")
    res = ia.mixedlm(formula, df, **sm_args).fit(reml=spec["method"] == "REML")
    model = smf.mixedlm(formula, df, **sm_args)
    model.reml, model.cov_pen, model.fe_pen = spec["method"] == "REML", None, None  # what its fit sets first
    return float(model.loglike(res.params_object, profile_fe=False))


def fit_mixedlm(spec: dict) -> dict:
    """Fit with the PyPI package mixedlm (``mixedlm.lmer`` / ``mixedlm.glmer``, lme4 formula, default control):
    modes ``time`` and ``baseline``."""
    from importlib.metadata import version

    from mixedlm import glmer as ml_glmer  # imported in every mode, so the baseline holds it too
    from mixedlm import lmer as ml_lmer

    df, out = _start(spec, tool_version=version("mixedlm"))
    if spec["mode"] == "baseline":
        return out
    if spec.get("family"):
        from mixedlm.families import Binomial, Poisson

        family = {"binomial": Binomial, "poisson": Poisson}[spec["family"]](link=spec["link"])

        def call():
            return ml_glmer(spec["formula"], df, family=family, nAGQ=spec["nagq"])
    else:
        def call():
            return ml_lmer(spec["formula"], df, REML=spec["method"] == "REML")

    boot = None
    if spec.get("bootstrap"):  # the fit untimed; the timed call is mixedlm's parametric bootstrap
        from mixedlm import bootMer

        fitted, fit_messages = with_warnings(call)()
        sizes = iter([20])  # the warm-up call: a short bootstrap

        def call():
            return bootMer(fitted, nsim=next(sizes, int(spec["bootstrap"])), seed=1)

    seconds, (res, messages) = timed(with_warnings(call), spec["repeats"], None, spec.get("progress"))
    if spec.get("bootstrap"):
        boot, res, messages = res, fitted, fit_messages
    vc = res.VarCorr()
    cov = [{"group": name, "names": list(g.term_names), "matrix": _frame_cov(g.cov)} for name, g in vc.groups.items()]
    structs = res.matrices.random_structures
    theta_names = ([f"{st.grouping_factor}.{st.term_names[0]}" for st in structs]
                   if all(len(st.term_names) == 1 for st in structs) else None)
    evals = getattr(res, "function_evals", None)  # LMMs only; GlmerResult reports iterations (n_iter) alone
    out.update(
        seconds=seconds,
        n_evals=None if spec.get("family") or evals is None else int(evals),
        n_iter=int(res.n_iter),
        optimizer=str(getattr(res, "optimizer", "")),
        fe={str(k): float(v) for k, v in zip(res.matrices.fixed_names, res.beta, strict=True)},
        cov=cov,
        residual_var=1.0 if spec.get("family") else float(res.sigma) ** 2,
        llf=float(res.logLik().value),
        theta=[float(t) for t in res.theta],
        theta_names=theta_names,
        messages=messages,
        converged=bool(res.converged),
    )
    if boot is not None:
        out.update(bootstrap_n=int(boot.n_boot))
    return out


#: Worker function of each tool that runs in this Python.
FITTERS = {"interlace": fit_interlace, "interlace.api": fit_interlace_api, "statsmodels": fit_statsmodels,
           "mixedlm": fit_mixedlm}


def worker_main(spec_path: str) -> None:
    """Entry point of a Python worker subprocess: run the spec's tool, write its result JSON."""
    serve(spec_path, lambda spec: FITTERS[spec["tool"]](spec))
