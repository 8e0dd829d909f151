"""Parametric bootstrap LR tests against pbkrtest 0.5.2's PBmodcomp (``make_pbmodcomp_reference.R``).

The observed statistic and the χ² p-value are deterministic (1e-4 absolute for LMMs,
1e-3 for the GLMM).  The PBtest p-value is a Monte-Carlo estimate on both sides: with
n₁ = ``NSIM`` replicates here and n₂ in R, their difference has standard error
√(p (1 − p)(1/n₁ + 1/n₂)); the test allows 4 of those plus 1/(n₁ + 1) for the
discreteness (a false failure about once in 15 000 runs).  The two simulated reference
distributions are compared with a two-sample Kolmogorov-Smirnov test (p > 1e-3).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st

from interlace.errors import InterlaceError
from interlace.tests.analysis_cases import fit_case, load

REF = load("pbmodcomp")
NSIM = {"sleepstudy_corr": 300, "factorial_interaction": 300, "cbpp_period": 100}


@pytest.fixture(scope="module", params=list(REF))
def case(request):
    ref = REF[request.param]
    large, small = fit_case(ref["large"]), fit_case(ref["small"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pb = large.pb_modcomp(small, nsim=NSIM[request.param], seed=17, progress=False)
    return ref, pb


def test_observed_statistic(case):
    ref, pb = case
    tol = 1e-4 if ref["large"]["entry"] == "fit" else 1e-3
    lrt = ref["test"]["LRT"]
    assert pb.df == lrt["df"]
    np.testing.assert_allclose(pb.tobs, lrt["stat"], atol=tol, rtol=tol)
    np.testing.assert_allclose(pb.test.loc["LRT", "p.value"], lrt["p.value"], rtol=10 * tol)


def test_pb_pvalue_within_monte_carlo_error(case):
    ref, pb = case
    p_r = ref["test"]["PBtest"]["p.value"]
    p = 0.5 * (p_r + pb.pvalue)
    se = np.sqrt(p * (1 - p) * (1 / pb.npos + 1 / ref["npos"]))
    assert abs(pb.pvalue - p_r) <= 4 * se + 1 / (pb.npos + 1), (pb.pvalue, p_r, se)


def test_reference_distributions_agree(case):
    ref, pb = case
    ours = pb.ref[np.isfinite(pb.ref)]
    theirs = np.asarray(ref["ref"], float)
    assert st.ks_2samp(ours, theirs).pvalue > 1e-3
    assert set(pb.test.index) == {"LRT", "PBtest", "Gamma", "Bartlett", "F"}


def test_seed_reproducible_and_parallel():
    ref = REF["sleepstudy_corr"]
    large, small = fit_case(ref["large"]), fit_case(ref["small"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = large.pb_modcomp(small, nsim=30, seed=5, progress=False)
        b = small.pb_modcomp(large, nsim=30, seed=5, progress=False, n_jobs=2)
    np.testing.assert_allclose(a.ref, b.ref)
    assert a.pvalue == b.pvalue


def test_not_nested_or_other_data():
    ref = REF["sleepstudy_corr"]
    large = fit_case(ref["large"])
    with pytest.raises(InterlaceError, match="same number"):
        large.pb_modcomp(large, nsim=5)
    other = fit_case(REF["factorial_interaction"]["small"])
    with pytest.raises(InterlaceError, match="same data"):
        large.pb_modcomp(other, nsim=5)
