"""Write the quickstart's simulated data (examples/quickstart.py) for the lme4 reference script.

Run from the repository root before make_lmer_reference.R:
    python3 interlace/tests/reference/make_quickstart_data.py
"""
import numpy as np
import pandas as pd

rng = np.random.default_rng(42)
n = 300
student_ids = [f"s{i}" for i in rng.integers(1, 31, n)]
school_ids = [f"sch{i}" for i in rng.integers(1, 11, n)]
df = pd.DataFrame({
    "score": 60 + rng.normal(0, 8, n),
    "hours_studied": rng.uniform(0, 10, n),
    "prior_gpa": rng.uniform(2.0, 4.0, n),
    "student_id": student_ids,
    "school_id": school_ids,
})
df.to_csv("interlace/tests/reference/data/quickstart.csv", index=False, float_format="%.17g")
