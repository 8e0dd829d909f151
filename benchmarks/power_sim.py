"""The interlace side of the powerSim timing in docs/power.md (R side: ``power_sim_lme4.R``).

1,000 simulations from the sleepstudy fit with the Days effect set to 3, each refitted
(``model.refit``) and tested (Satterthwaite t test; then Wald z).  Run once, from the
repository root, on a quiet machine: ``python3 -m benchmarks.power_sim [nsim]``.
"""
from __future__ import annotations

import sys
import time
import warnings

import interlace


def main(nsim: int = 1000) -> None:
    sleep = interlace.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = interlace.fit("Reaction ~ Days", sleep, random="(Days | Subject)")
        for method in ("satterthwaite", "normal"):
            t0 = time.perf_counter()
            pw = m.power_sim("Days", nsim=nsim, fixef={"Days": 3.0}, seed=1, progress=False, method=method)
            print(f"interlace power_sim ({method}), {nsim} sims: {time.perf_counter() - t0:.1f} s; {pw}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
