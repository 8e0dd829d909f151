"""Benchmark of the chunked GLMM paths (``interlace.scale.glmer_*``), run by hand.

    python3 benchmarks/bench_scale_glmm.py                  # 10M rows: in memory, parquet batches, Dask 2 workers
    python3 benchmarks/bench_scale_glmm.py --rows 200000    # a quick check that it all runs

Data: a binary crossed GLMM ``y ~ x + (1 | g1) + (1 | g2)`` (logit link), g1 with 1,000
levels crossed with g2 with 200 levels, simulated with numpy ``default_rng([20240602, chunk])``
and written chunk by chunk (1M rows per row group, never the whole data in memory) to a
parquet file under ``--dir`` (default ``/tmp/interlace_scale``), deleted at the end unless
``--keep``.

Each fit runs in a fresh Python process: in memory (``pandas.read_parquet`` then
``interlace.glmer``), parquet batches of 1M rows (``glmer_parquet``, the encoded batches
cached on disk under ``--dir``), and ``glmer_dask`` on a ``LocalCluster`` with 2 worker
processes (1 thread each) reading the file with ``dd.read_parquet``.  **peak MB** is the
fitting process's ``ru_maxrss`` (for Dask the client's; the workers' are given apart),
**base MB** the same process after its imports (and the cluster's start).  Agreement is
against the in-memory fit.  Results go to ``benchmarks/scale_glmm_results.json`` and the
table of ``docs/scale.md`` between the ``<!-- scale-glmm-results -->`` markers.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness.chunked import (  # noqa: E402
    CHUNK,
    fmt,
    machine,
    maxrss_mb,
    rel_diff,
    write_crossed_parquet,
    write_section,
)
from benchmarks.harness.chunked import run_worker as run_harness_worker  # noqa: E402

FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
L1, L2 = 1000, 200
BEGIN, END = "<!-- scale-glmm-results -->", "<!-- /scale-glmm-results -->"


def _binary_table(rng, n, g1, g2, re_sum):
    import numpy as np
    import pyarrow as pa

    x = rng.normal(size=n)
    eta = -0.5 + 0.4 * x + re_sum
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return pa.table({"y": y, "x": x, "g1": g1, "g2": g2})


def generate(path: Path, rows: int) -> float:
    """Write ``rows`` simulated binary rows to ``path`` in 1M-row chunks; returns seconds."""
    return write_crossed_parquet(path, rows, 20240602, (L1, L2), _binary_table)


def _estimates(res) -> dict:
    import numpy as np

    return {"fe_params": res.fe_params.tolist(), "fe_bse": res.fe_bse.tolist(), "theta": list(map(float, res.theta)),
            "llf": float(res.llf), "aic": float(res.aic), "deviance": float(res.deviance),
            "modes": np.concatenate([np.ravel(np.asarray(v, float)) for v in res.random_effects.values()]).tolist(),
            "condsd": np.concatenate([np.ravel(np.asarray(v, float))
                                      for v in res.random_effects_condsd.values()]).tolist(),
            "nobs": int(res.nobs), "engine": res.engine, "n_evals": int(res.opt_summary.n_evals)}


def worker(kind: str, path: str, batch_size: int, cache_dir: str) -> dict:
    import warnings

    import interlace
    from interlace.scale import glmer_dask, glmer_parquet  # noqa: F401

    out: dict = {"kind": kind}
    if kind == "dask":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        ddf = dd.read_parquet(path, split_row_groups=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = glmer_dask(FORMULA, ddf, family="binomial", client=client, progress=False)
        out["seconds"] = time.perf_counter() - t0
        out["worker_peak_mb"] = sorted(client.run(maxrss_mb).values())
        client.close()
        cluster.close()
    elif kind == "parquet":
        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = glmer_parquet(FORMULA, path, family="binomial", batch_size=batch_size, cache_dir=cache_dir,
                                progress=False)
        out["seconds"] = time.perf_counter() - t0
    elif kind == "memory":
        import pandas as pd

        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        out["read_seconds"] = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = interlace.glmer(FORMULA, df, family="binomial")
        out["seconds"] = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["peak_mb"] = maxrss_mb()
    out["timings"] = dict(getattr(res, "timings", {}) or {})
    out["passes"] = dict(getattr(res, "passes", {}) or {})
    out["chunks"] = getattr(res, "n_chunks", None)
    out["estimates"] = _estimates(res)
    return out


def run_worker(kind: str, path: Path, batch_size: int, cache_dir: Path, timeout: int) -> dict:
    return run_harness_worker(__file__, kind, ["--path", str(path), "--batch-size", str(batch_size),
                                               "--dir", str(cache_dir)], timeout)


def agreement(ref: dict, other: dict) -> dict:

    out = {key: rel_diff(ref[key], other[key]) for key in ("fe_params", "fe_bse", "theta", "modes", "condsd")}
    out["llf_abs"] = abs(ref["llf"] - other["llf"])
    return out


def table(results: dict) -> str:
    lines = ["| rows | path | s (total) | passes (PIRLS: stage 1 / stage 2) | s per pass | peak MB (client) | base MB "
             "| worker peak MB | file MB | max rel Δ vs in memory: FE / SE / θ / modes / cond. SD | \\|Δ llf\\| "
             "| load avg (start → end) |",
             "|---:|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for rows_key, block in results["runs"].items():
        if "results" not in block:
            lines.append(f"| {int(rows_key):,} | skipped: {block.get('skipped')} | | | | | | | | | | |")
            continue
        for r in block["results"]:
            if "error" in r:
                lines.append(f"| {int(rows_key):,} | {r['kind']} | failed: {r['error'].splitlines()[-1][:80]} "
                             "| | | | | | | | | |")
                continue
            label = {"memory": "in memory (`interlace.glmer`, pandas.read_parquet)",
                     "parquet": f"parquet batches (`glmer_parquet`, {r.get('chunks')} batches, disk cache)",
                     "dask": f"Dask LocalCluster, 2 worker processes (`glmer_dask`, {r.get('chunks')} partitions)",
                     }[r["kind"]]
            ps = r.get("passes") or {}
            if ps:
                passes = f"{ps['total']} ({ps['joint']} / {ps['conditional']})"
                per = fmt(r["timings"].get("optimize", 0) / max(1, ps["joint"] + ps["conditional"]))
            else:
                passes, per = "", ""
            ag = r.get("agreement")
            agree = "(reference)" if r["kind"] == "memory" else (
                " / ".join(f"{ag[k]:.1e}" for k in ("fe_params", "fe_bse", "theta", "modes", "condsd"))
                if ag else "(no in-memory fit)")
            dllf = "" if not ag else f"{ag['llf_abs']:.1e}"
            wk = ", ".join(f"{v:.0f}" for v in r.get("worker_peak_mb", []))
            ls, le = r.get("load_start", [0, 0, 0]), r.get("load_end", [0, 0, 0])
            lines.append(f"| {int(rows_key):,} | {label} | {r['seconds']:.0f} | {passes} | {per} | {r['peak_mb']:.0f} "
                         f"| {r['base_mb']:.0f} | {wk} | {block['file_mb']:.0f} | {agree} | {dllf} "
                         f"| {ls[0]:.2f} → {le[0]:.2f} |")
    return "\n".join(lines)


def write_docs(results: dict) -> None:
    m = results["machine"]
    rows_arg = "" if results["rows"] == 10_000_000 else f" --rows {results['rows']}"
    body = (f"Measured on {results['date']} by `python3 benchmarks/bench_scale_glmm.py{rows_arg}` "
            f"({m['cpu_count']} cores, {m['memory_gb']:.1f} GB, Python {m['python']}; the load average of the "
            "shared machine is given per row).\n\n" + table(results))
    write_section(ROOT / "docs" / "scale.md", BEGIN, END, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--path")
    ap.add_argument("--batch-size", type=int, default=CHUNK)
    ap.add_argument("--dir", default="/tmp/interlace_scale")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--skip", nargs="*", default=[], help="kinds to skip: memory parquet dask")
    ap.add_argument("--timeout", type=int, default=4 * 3600)
    ap.add_argument("--keep", action="store_true", help="keep the parquet file")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.batch_size, args.dir)))
        return

    import numpy as np

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "formula": FORMULA,
                     "family": "binomial", "levels": [L1, L2], "rows": args.rows, "batch_size": args.batch_size,
                     "machine": machine(),
                     "runs": {}}
    kinds = [k for k in ("memory", "parquet", "dask") if k not in args.skip]
    path = d / f"glmm_{args.rows}.parquet"
    try:
        free_gb = shutil.disk_usage(d).free / 1e9
        need_gb = args.rows * 60 / 1e9  # the file and the parquet path's disk cache
        if free_gb < 2 * need_gb:
            results["runs"][str(args.rows)] = {"skipped": f"{free_gb:.0f} GB free on {d}, need ~{need_gb:.0f} GB"}
        else:
            print(f"generating {args.rows:,} rows ...", flush=True)
            gen_s = generate(path, args.rows)
            block: dict = {"file_mb": path.stat().st_size / 1e6, "generate_seconds": gen_s, "results": []}
            results["runs"][str(args.rows)] = block
            for kind in kinds:
                print(f"  {kind} ...", flush=True)
                r = run_worker(kind, path, args.batch_size, d, args.timeout)
                block["results"].append(r)
                print("   ", {k: r.get(k) for k in ("seconds", "peak_mb", "base_mb", "passes", "error")}, flush=True)
            ref = next((r for r in block["results"] if r["kind"] == "memory" and "error" not in r), None)
            for r in block["results"]:
                if ref is not None and r is not ref and "error" not in r:
                    r["agreement"] = agreement(ref["estimates"], r["estimates"])
            for r in block["results"]:  # keep the JSON small: the modes only served the comparison
                if "estimates" in r:
                    r["estimates"].pop("modes", None)
                    r["estimates"].pop("condsd", None)
    finally:
        if not args.keep and path.exists():
            path.unlink()
    out = ROOT / "benchmarks" / "scale_glmm_results.json"
    out.write_text(json.dumps(results, indent=1, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    print(table(results))
    if not args.no_docs:
        write_docs(results)


if __name__ == "__main__":
    main()
