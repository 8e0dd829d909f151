"""``str(result.summary())``: the printed numbers are lme4's at the printed precision.

Every number is read back from the printed text and compared with the lme4
reference (reference/lmer/*.json, R 4.2.2, lme4 1.1-31) rounded to the number of
decimals printed: |printed − reference| ≤ ½·10^(−decimals).

lme4's own print of ``summary(lmer(Reaction ~ Days + (Days | Subject), sleepstudy))``
(tight control as in the reference script), for comparison::

    REML criterion at convergence: 1743.6
    Scaled residuals:
        Min      1Q  Median      3Q     Max
    -3.9536 -0.4634  0.0231  0.4634  5.1793
    Random effects:
     Groups   Name        Variance Std.Dev. Corr
     Subject  (Intercept) 612.09   24.740
              Days         35.07    5.922   0.07
     Residual             654.94   25.592
    Number of obs: 180, groups:  Subject, 18
    Fixed effects:
                Estimate Std. Error t value
    (Intercept)  251.405      6.825  36.838
    Days          10.467      1.546   6.771
"""
from __future__ import annotations

import re
import warnings

import pytest
import scipy.stats as st

import interlace
from interlace.tests.conftest import case_data, load_case

NUM = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"


def _printed_equals(text: str, ref: float) -> None:
    """``text`` is ``ref`` rounded to the decimals shown."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert abs(float(text) - ref) <= 0.5 * 10 ** (-decimals) + 1e-12, (text, ref)


def _line(text: str, first: str, ntok: int) -> list[str]:
    """Tokens of the single line of ``ntok`` tokens whose first token is ``first``."""
    rows = [t for t in (ln.split() for ln in text.splitlines()) if t[:1] == [first] and len(t) == ntok]
    assert len(rows) == 1, (first, rows)
    return rows[0]


def _field(text: str, label: str) -> str:
    m = re.search(re.escape(label) + r"\s+" + NUM, text)
    assert m, label
    return m.group(1)


def _varcorr(ref, grp, var1, var2=None):
    for row in ref["varcorr"]:
        if row["grp"] == grp and row["var1"] == var1 and row["var2"] == var2:
            return row
    raise KeyError((grp, var1, var2))


@pytest.fixture(scope="module")
def sleep_reml():
    ref = load_case("lmer", "sleepstudy_reml")
    res = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random=["(Days | Subject)"])
    return ref, str(res.summary())


def test_header_and_criterion(sleep_reml):
    ref, text = sleep_reml
    assert "Linear mixed model fit by REML" in text
    assert re.search(r"Formula:\s+Reaction ~ Days\s", text)
    _printed_equals(_field(text, "REML criterion:"), ref["reml_criterion"])   # 1743.6283
    _printed_equals(_field(text, "Log-Likelihood:"), ref["loglik"])
    _printed_equals(_field(text, "AIC:"), ref["aic"])
    _printed_equals(_field(text, "BIC:"), ref["bic"])
    _printed_equals(_field(text, "Scale (sigma^2):"), ref["sigma"] ** 2)
    assert re.search(r"Converged:\s+Yes", text)


def test_observations_and_groups(sleep_reml):
    ref, text = sleep_reml
    assert int(_field(text, "No. Observations:")) == ref["nobs"] == 180
    assert re.search(r"Groups \(levels\):\s+Subject \(18\)", text) and ref["ngroups"] == {"Subject": 18}


def test_fixed_effects_table(sleep_reml):
    ref, text = sleep_reml
    est, se = ref["fixef"]["values"], ref["se"]
    satt = load_case("lmertest", "sleepstudy_reml")["satterthwaite"]  # lmerTest's summary(m)
    assert re.search(r"Coef\.\s+Std\.Err\.\s+df Satt\.\s+t\s+P>\|t\|", text)
    for name, b, s, df in zip(["Intercept", "Days"], est, se, satt["df"]):
        tok = _line(text, name, 8)  # name, Coef., Std.Err., df, t, P>|t|, [0.025, 0.975]
        _printed_equals(tok[1], b)
        _printed_equals(tok[2], s)
        _printed_equals(tok[3], df)                                      # lmerTest df 17.000
        _printed_equals(tok[4], b / s)                                   # lme4 t value 36.838, 6.771
        assert float(tok[5]) == 0.0                                      # p < 5e-5 prints 0.0000
        q = st.t.isf(0.025, df)
        _printed_equals(tok[6], b - q * s)
        _printed_equals(tok[7], b + q * s)


def test_normal_df_method_prints_wald_z():
    ref = load_case("lmer", "sleepstudy_reml")
    res = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random=["(Days | Subject)"],
                        df_method="normal")
    text = str(res.summary())
    for name, b, s in zip(["Intercept", "Days"], ref["fixef"]["values"], ref["se"]):
        tok = _line(text, name, 7)  # name, Coef., Std.Err., z, P>|z|, [0.025, 0.975]
        _printed_equals(tok[3], b / s)
        _printed_equals(tok[5], b - 1.959963984540054 * s)
        _printed_equals(tok[6], b + 1.959963984540054 * s)
    assert "p-values and intervals for fixed effects: Wald z (normal approximation)." in " ".join(text.split())


def test_random_effects_table(sleep_reml):
    ref, text = sleep_reml
    tok = _line(text, "Subject", 4)
    assert tok[1] == "Intercept"
    row = _varcorr(ref, "Subject", "(Intercept)")
    _printed_equals(tok[2], row["vcov"])     # 612.1   (lme4 612.09)
    _printed_equals(tok[3], row["sdcor"])    # 24.74   (lme4 24.740)
    tok = _line(text, "Days", 4)
    row = _varcorr(ref, "Subject", "Days")
    _printed_equals(tok[1], row["vcov"])     # 35.07
    _printed_equals(tok[2], row["sdcor"])    # 5.922
    _printed_equals(tok[3], _varcorr(ref, "Subject", "(Intercept)", "Days")["sdcor"])  # corr 0.07
    tok = _line(text, "Residual", 3)
    row = _varcorr(ref, "Residual", None)
    _printed_equals(tok[1], row["vcov"])     # 654.9
    _printed_equals(tok[2], row["sdcor"])    # 25.59


def test_scaled_residuals(sleep_reml):
    _, text = sleep_reml
    m = re.search(r"Scaled residuals" + 5 * (r"\s+" + NUM), text)
    # lme4: quantile(residuals(m, type = "pearson", scaled = TRUE)), printed to 4 decimals
    assert [m.group(i) for i in range(1, 6)] == ["-3.9536", "-0.4634", "0.0231", "0.4634", "5.1793"]


def test_df_method_note(sleep_reml):
    _, text = sleep_reml
    flat = " ".join(text.split())
    assert "Fixed effects: t tests with Satterthwaite's degrees of freedom" in flat


def test_ml_summary_prints_deviance():
    ref = load_case("lmer", "sleepstudy_ml")  # lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
    res = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random=["(Days | Subject)"],
                        method="ML")
    text = str(res.summary())
    assert "Linear mixed model fit by maximum likelihood" in text and "REML criterion" not in text
    _printed_equals(_field(text, "Deviance:"), ref["objective"])  # 1751.9393
    _printed_equals(_field(text, "Log-Likelihood:"), ref["loglik"])


def test_crossed_groups_and_dropped_rows():
    ref = load_case("lmer", "crossed_missing_reml")  # lmer(y ~ x1 + x2 + (1 | g1) + (1 | g2), na.omit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.MissingDataWarning)
        res = interlace.fit("y ~ x1 + x2", case_data(ref), random=["(1 | g1)", "(1 | g2)"])
    text = str(res.summary())
    assert re.search(r"Groups \(levels\):\s+g1 \(40\), g2 \(25\)", text)
    assert ref["ngroups"] == {"g1": 40, "g2": 25}
    assert int(_field(text, "No. Observations:")) == ref["nobs"] == 1287
    assert int(_field(text, "Dropped (missing):")) == ref["na_dropped"] == 213
    for grp in ("g1", "g2"):
        tok = _line(text, grp, 4)
        _printed_equals(tok[2], _varcorr(ref, grp, "(Intercept)")["vcov"])
