"""The quickstart from the documentation, every block, as written.

Run: python examples/quickstart.py
"""
import numpy as np
import pandas as pd

import interlace

# --- Build a dataset -----------------------------------------------------
rng = np.random.default_rng(42)
n = 300
# Crossed structure: 30 students × 10 schools
student_ids = [f"s{i}" for i in rng.integers(1, 31, n)]
school_ids = [f"sch{i}" for i in rng.integers(1, 11, n)]
df = pd.DataFrame({
    "score": 60 + rng.normal(0, 8, n),
    "hours_studied": rng.uniform(0, 10, n),
    "prior_gpa": rng.uniform(2.0, 4.0, n),
    "student_id": student_ids,
    "school_id": school_ids,
})

# --- Fit the model -------------------------------------------------------
from interlace import fit  # noqa: E402

result = fit(
    formula="score ~ hours_studied + prior_gpa",
    data=df,
    groups=["student_id", "school_id"],  # crossed random intercepts
)

# --- Inspect results -----------------------------------------------------
print(result.fe_params)
print(result.fe_bse)
print(result.fe_pvalues)
print(result.variance_components)
print(result.scale)
print(result.aic, result.bic)

# --- Access random effects -----------------------------------------------
student_blups = result.random_effects["student_id"]
school_blups = result.random_effects["school_id"]
print(student_blups.head())

# --- Predict on new data -------------------------------------------------
df_new = pd.DataFrame({
    "hours_studied": [5.0, 8.0],
    "prior_gpa": [3.2, 3.8],
    "student_id": ["s1", "s_new"],  # s_new is unseen → shrinks to 0
    "school_id": ["sch1", "sch2"],
})
preds = result.predict(newdata=df_new)
print(preds)

# --- groups vs random ----------------------------------------------------
result = fit("score ~ hours_studied", data=df, groups=["student_id", "school_id"])
result = fit(
    "score ~ hours_studied",
    data=df,
    random=["(1 + hours_studied | student_id)", "(1 | school_id)"],
)

# --- Random slopes -------------------------------------------------------
result = fit(
    formula="score ~ hours_studied + prior_gpa",
    data=df,
    random=["(1 + hours_studied | student_id)", "(1 | school_id)"],
)
print(result.random_effects["student_id"])

# --- Bootstrap standard error (on the crossed-intercepts fit) ------------
result = fit("score ~ hours_studied + prior_gpa", data=df, groups=["student_id", "school_id"])
se = result.bootstrap_se(statistic="median", n_bootstrap=1000, seed=42)
print(f"Median SE (cluster bootstrap): {se:.4f}")

# --- Nested designs (lme4's Pastes data: casks within batches) -----------
df = interlace.datasets.load("pastes")
result = interlace.fit(
    "strength ~ 1",
    data=df,
    random=["(1|batch/cask)"],
)
batch_blups = result.random_effects["batch"]
batch_cask_blups = result.random_effects["batch:cask"]  # also by lme4's name "cask:batch"
print(result.variance_components["batch"])
print(result.variance_components["batch:cask"])
print(result)
