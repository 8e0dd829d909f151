"""Write the data of the MixedLM drop-in's lme4 references (make_mixedlm_reference.R).

Run from the repository root before make_mixedlm_reference.R:
    python3 interlace/tests/reference/make_mixedlm_data.py

* ``mixedlm_singular.csv``: the data of statsmodels' ``test_singular``
  (``statsmodels/regression/tests/test_lme.py``: ``RandomState(3423)``, 100 rows, ``Y``
  and ``X`` standard normal, ``class = row % 3``), where statsmodels' optimizer runs to a
  zero group variance;
* ``mixedlm_independent.csv``: the data of statsmodels' ``test_vcomp_1`` (``RandomState(4279)``,
  100 groups of 4, a fixed slope ``x`` without intercept, independent random slopes of
  ``z1`` and ``z2`` with SDs 1 and 2), fitted there with ``free=`` a diagonal pattern;
* ``mixedlm_crossed.csv``: the crossed idiom's shape at 600 rows (``a``: 150 levels crossed
  with ``b``: 12 levels, one covariate), ``default_rng(16)``.
"""
import numpy as np
import pandas as pd

OUT = "interlace/tests/reference/data/"

rs = np.random.RandomState(3423)
d = pd.DataFrame(rs.randn(100, 2), columns=["Y", "X"])
d["class"] = np.arange(100) % 3
d.to_csv(OUT + "mixedlm_singular.csv", index=False, float_format="%.17g")

rs = np.random.RandomState(4279)
x = rs.normal(size=(400, 1))
z = rs.normal(size=(400, 2))
g = np.kron(np.arange(100), np.ones(4)).astype(int)
slopes = rs.normal(size=(100, 2))
slopes[:, 1] *= 2
y = x.sum(1) + (np.kron(slopes, np.ones((4, 1))) * z).sum(1) + rs.normal(size=400)
pd.DataFrame({"y": y, "x": x[:, 0], "z1": z[:, 0], "z2": z[:, 1], "g": g}).to_csv(
    OUT + "mixedlm_independent.csv", index=False, float_format="%.17g")

rng = np.random.default_rng(16)
n, na, nb = 600, 150, 12
a = np.concatenate([np.arange(na), rng.integers(0, na, n - na)])
b = np.concatenate([np.arange(nb), rng.integers(0, nb, n - nb)])
xc = rng.standard_normal(n)
yc = 1 + 0.5 * xc + rng.standard_normal(na)[a] + 0.7 * rng.standard_normal(nb)[b] + rng.standard_normal(n)
pd.DataFrame({"y": yc, "x": xc, "a": a, "b": b}).to_csv(OUT + "mixedlm_crossed.csv", index=False,
                                                        float_format="%.17g")
