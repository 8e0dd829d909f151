"""all_fit against lme4's allFit (``make_allfit_reference.R``).

lme4's seven optimizers and interlace's (Py-BOBYQA, NLopt BOBYQA, L-BFGS-B, Nelder-Mead,
Powell) must all reach the same optimum: every interlace optimizer converges, its
log-likelihood is within 1e-4 (GLMMs 1e-3, the README's tolerances) of lme4's best,
and its fixed effects and θ within 1e-4 relative (GLMMs 1e-3) of the lme4 optimizer
with the highest log-likelihood.
"""
from __future__ import annotations

import numpy as np
import pytest

from interlace.inference.allfit import available_optimizers
from interlace.tests.analysis_cases import fit_case, load

REF = load("allfit")


@pytest.fixture(scope="module", params=list(REF))
def case(request):
    ref = REF[request.param]
    res = fit_case(ref["python"])
    return ref, res, res.all_fit()


def test_every_optimizer_converges(case):
    _, _, af = case
    assert list(af.table.index) == available_optimizers()
    assert af.table["ok"].all() and af.table["converged"].all(), af.table
    assert not af.errors


def test_same_optimum_as_lme4(case):
    ref, res, af = case
    tol = 1e-4 if ref["python"]["entry"] == "fit" else 1e-3
    best = max(ref["llik"], key=ref["llik"].get)
    assert np.all(np.abs(af.table["llf"] - ref["llik"][best]) < tol)
    for opt in af.table.index:
        np.testing.assert_allclose(af.fixef.loc[opt], ref["fixef"][best], rtol=tol, atol=1e-6)
        np.testing.assert_allclose(af.theta.loc[opt], ref["theta"][best], rtol=tol, atol=1e-6)
    assert af.llf_spread < tol


def test_summary_shape(case):
    _, res, af = case
    s = af.summary()
    assert set(s) == {"which_ok", "msgs", "fixef", "llik", "sdcor", "theta", "times", "feval"}
    assert list(s["fixef"].columns) == list(res.fe_params.index)
    assert (s["times"] > 0).all() and (s["feval"] > 0).all()
    assert "converged" in repr(af)


def test_failing_optimizer_is_recorded():
    res = fit_case(REF["sleepstudy"]["python"])
    af = res.all_fit(optimizers=["Powell", "no-such-optimizer"])
    assert af.table.loc["Powell", "converged"]
    assert not af.table.loc["no-such-optimizer", "ok"]
    assert "unknown optimizer" in af.errors["no-such-optimizer"]
