"""statsmodels MixedLM code, with one import changed, gives lme4's numbers.

1. sleepstudy, random intercept and slope per subject: statsmodels' MixedLM,
   interlace.api (same call) and lme4 (the stored reference fit), side by side.
2. Penicillin, plate and sample crossed: MixedLM's ``groups`` holds one nesting
   factor, so it cannot fit this directly; interlace fits it as lme4 does, and
   MixedLM's one-group variance-component idiom through interlace.api gives the
   same numbers.

Run: python examples/mixedlm_dropin.py   (a few seconds)
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

import interlace
import interlace.api as ia  # the one-import change: was `import statsmodels.formula.api as smf`
from interlace import datasets

REF = Path(__file__).resolve().parents[1] / "interlace" / "tests" / "reference" / "lmer"
pd.set_option("display.width", 120)

# --- 1. sleepstudy: the same call through statsmodels and interlace -----------------
sleep = datasets.load("sleepstudy")
call = {"groups": "Subject", "re_formula": "~Days"}
sm_res = smf.mixedlm("Reaction ~ Days", sleep, **call).fit()
il_res = ia.mixedlm("Reaction ~ Days", sleep, **call).fit()

lme4 = json.loads((REF / "sleepstudy_reml.json").read_text())
vc = {(r["var1"], r["var2"]): r["vcov"] for r in lme4["varcorr"] if r["grp"] == "Subject"}
lme4_col = {
    "Intercept": lme4["fixef"]["values"][0], "Days": lme4["fixef"]["values"][1],
    "se(Intercept)": lme4["se"][0], "se(Days)": lme4["se"][1],
    "var(Subject)": vc[("(Intercept)", None)], "cov(Subject, Days)": vc[("(Intercept)", "Days")],
    "var(Days)": vc[("Days", None)], "scale": lme4["sigma"] ** 2, "llf (REML)": lme4["loglik"],
}


def column(r):
    return {
        "Intercept": r.fe_params["Intercept"], "Days": r.fe_params["Days"],
        "se(Intercept)": r.bse_fe["Intercept"], "se(Days)": r.bse_fe["Days"],
        "var(Subject)": r.cov_re.loc["Subject", "Subject"], "cov(Subject, Days)": r.cov_re.loc["Subject", "Days"],
        "var(Days)": r.cov_re.loc["Days", "Days"], "scale": r.scale, "llf (REML)": r.llf,
    }


table = pd.DataFrame({"statsmodels MixedLM": column(sm_res), "interlace.api": column(il_res), "lme4 1.1-31": lme4_col})
table["interlace - lme4 (rel.)"] = (table["interlace.api"] - table["lme4 1.1-31"]) / table["lme4 1.1-31"].abs()
table["MixedLM - lme4 (rel.)"] = (table["statsmodels MixedLM"] - table["lme4 1.1-31"]) / table["lme4 1.1-31"].abs()
print("sleepstudy: Reaction ~ Days, groups='Subject', re_formula='~Days' (REML)\n")
print(table.to_string(float_format=lambda v: f"{v:.9g}" if abs(v) > 1e-3 else f"{v:.1e}"))
print("\nSame attribute names in both results:", list(il_res.params.index))
print("predict() is fixed effects only in both:",
      np.allclose(il_res.predict(sleep.head()), sm_res.predict(sleep.head()), rtol=1e-6))

# --- 2. Penicillin: crossed plate x sample ------------------------------------------
pen = datasets.load("penicillin")
crossed = interlace.fit("diameter ~ 1", pen, random=["(1 | plate)", "(1 | sample)"])
print("\nPenicillin: diameter ~ 1 + (1|plate) + (1|sample), fitted by interlace.fit (REML)")
print(crossed.varcorr.to_string(index=False))
print(f"logLik {crossed.llf:.6f}   intercept {crossed.fe_params['Intercept']:.6f} "
      f"(se {crossed.fe_bse['Intercept']:.6f})")

# MixedLM's idiom for crossed factors: one group holding everything, one variance component per factor
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    one = ia.mixedlm("diameter ~ 1", pen.assign(one=1), groups="one",
                     vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"}).fit()
print("\nSame model through interlace.api, MixedLM's one-group variance components:")
print(pd.Series(one.vcomp, index=["plate Var", "sample Var"]).to_string(),
      f"\nscale {one.scale:.6f}   llf {one.llf:.6f}")
