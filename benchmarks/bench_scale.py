"""Benchmark of the chunked LMM paths (``interlace.scale``), run by hand.

    python3 benchmarks/bench_scale.py                 # 10M rows: in memory, parquet batches, Dask 2 workers
    python3 benchmarks/bench_scale.py --big           # also 100M rows (parquet path only; ~3 GB of disk)

Data: ``y ~ x1 + x2 + (1 | g1) + (1 | g2)``, g1 with 1,000 levels crossed with g2 with
500 levels, simulated with numpy ``default_rng([20240601, chunk])`` and written chunk by
chunk (1M rows per row group) to a parquet file under ``--dir`` (default
``/tmp/interlace_scale``), deleted at the end unless ``--keep``.

Each measurement runs in a fresh Python process; **peak MB** is that process's
``ru_maxrss`` (the client's, for Dask: the workers are other processes, reported
separately), **base MB** the same process after its imports, before reading any data.
Agreement is against the in-memory fit of the same file (when it ran).  Results go to
``benchmarks/scale_results.json`` and the table of ``docs/scale.md`` (between the
``<!-- scale-results -->`` markers).
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

FORMULA = "y ~ x1 + x2 + (1 | g1) + (1 | g2)"
L1, L2 = 1000, 500
BEGIN, END = "<!-- scale-results -->", "<!-- /scale-results -->"


# ----------------------------------------------------------------------------- data
def _lmm_table(rng, n, g1, g2, re_sum):
    import pyarrow as pa

    x1 = rng.normal(size=n)
    x2 = rng.uniform(-1, 1, size=n)
    y = 2.0 + 0.5 * x1 - 0.3 * x2 + re_sum + rng.normal(size=n)
    return pa.table({"y": y, "x1": x1, "x2": x2, "g1": g1, "g2": g2})


def generate(path: Path, rows: int) -> float:
    """Write ``rows`` simulated rows to ``path`` in 1M-row chunks; returns seconds."""
    return write_crossed_parquet(path, rows, 20240601, (L1, L2), _lmm_table)


# ----------------------------------------------------------------------------- workers (one per process)
def _estimates(res) -> dict:
    import numpy as np

    return {
        "fe_params": res.fe_params.tolist(), "fe_bse": res.fe_bse.tolist(), "theta": list(map(float, res.theta)),
        "scale": float(res.scale), "llf": float(res.llf), "aic": float(res.aic), "bic": float(res.bic),
        "vc": [float(v) for v in res.varcorr["vcov"]],
        "blups": {k: np.asarray(v, float).ravel().tolist() for k, v in res.random_effects.items()},
        "fe_pvalues": res.fe_pvalues.tolist(), "nobs": int(res.nobs), "engine": res.engine,
    }


def worker(kind: str, path: str, batch_size: int) -> dict:
    import warnings

    import interlace  # noqa: F401
    from interlace.scale import fit_parquet  # noqa: F401

    out = {"kind": kind}
    if kind == "dask":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        from interlace.scale import fit_dask

        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        try:
            ddf = dd.read_parquet(path, split_row_groups=True)
        except TypeError:  # pragma: no cover - older/newer dask signatures
            ddf = dd.read_parquet(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit_dask(FORMULA, ddf, client=client)
        out["seconds"] = time.perf_counter() - t0
        out["partitions"] = res.n_chunks
        # the first fit includes the workers' first imports of interlace; a second one shows the steady state
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res2 = fit_dask(FORMULA, ddf, client=client)
        out["seconds_warm"] = time.perf_counter() - t1
        out["timings_warm"] = dict(res2.timings)
        del res2
        out["worker_peak_mb"] = sorted(client.run(maxrss_mb).values())
        client.close()
        cluster.close()
    elif kind == "parquet":
        from interlace.scale import fit_parquet

        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit_parquet(FORMULA, path, batch_size=batch_size)
        out["seconds"] = time.perf_counter() - t0
        out["batches"] = res.n_chunks
    elif kind == "memory":
        import pandas as pd

        from interlace import fit

        out["base_mb"] = maxrss_mb()
        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        out["read_seconds"] = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit(FORMULA, df)
        out["seconds"] = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["peak_mb"] = maxrss_mb()
    out["timings"] = dict(getattr(res, "timings", {}) or {})
    out["opt_seconds"] = float(res.opt_summary.seconds)
    out["estimates"] = _estimates(res)
    return out


def run_worker(kind: str, path: Path, batch_size: int, timeout: int) -> dict:
    return run_harness_worker(__file__, kind, ["--path", str(path), "--batch-size", str(batch_size)], timeout)


# ----------------------------------------------------------------------------- agreement
def agreement(ref: dict, other: dict) -> dict:
    import numpy as np

    def ab(a, b):
        return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))

    out = {}
    for key in ("fe_params", "fe_bse", "theta", "scale", "vc", "llf", "aic", "bic"):
        out[key] = {"abs": ab(ref[key], other[key]), "rel": rel_diff(ref[key], other[key])}
    a = np.concatenate([np.asarray(v) for v in ref["blups"].values()])
    b = np.concatenate([np.asarray(v) for v in other["blups"].values()])
    out["blups"] = {"abs": ab(a, b), "rel": rel_diff(a, b)}
    return out


# ----------------------------------------------------------------------------- report
def table(results: dict) -> str:
    lines = ["| rows | path | s (total) | of which: levels pass / blocks pass / optimize | peak MB (client) "
             "| base MB | worker peak MB | file MB | max rel Δ vs in memory: FE / SE / θ / σ² / BLUPs | \\|Δ llf\\| "
             "| load avg (start → end) |",
             "|---:|---|---:|---|---:|---:|---:|---:|---|---:|---|"]
    for rows_key, block in results["runs"].items():
        for r in block["results"]:
            if "error" in r:
                lines.append(f"| {int(rows_key):,} | {r['kind']} | failed: {r['error'].splitlines()[-1][:80]} "
                             "| | | | | | | | |")
                continue
            t = r.get("timings", {})
            parts = " / ".join(fmt(t.get(k)) for k in ("levels_pass", "blocks_pass", "optimize")) if t else \
                f"read {fmt(r.get('read_seconds'))}, optimize {fmt(r['opt_seconds'])}"
            ag = r.get("agreement")
            agree = "(reference)" if r["kind"] == "memory" else (
                " / ".join(f"{ag[k]['rel']:.1e}" for k in ("fe_params", "fe_bse", "theta", "scale", "blups"))
                if ag else "(no in-memory fit)")
            dllf = "" if not ag else f"{ag['llf']['abs']:.1e}"
            wk = ", ".join(f"{v:.0f}" for v in r.get("worker_peak_mb", [])) or ""
            label = {"memory": "in memory (`interlace.fit`, pandas.read_parquet)",
                     "parquet": f"parquet batches (`fit_parquet`, {r.get('batches')} batches)",
                     "dask": f"Dask LocalCluster, 2 worker processes (`fit_dask`, {r.get('partitions')} partitions)"
                     }[r["kind"]]
            ls, le = r.get("load_start", [0, 0, 0]), r.get("load_end", [0, 0, 0])
            secs = f"{r['seconds']:.1f}"
            if "seconds_warm" in r:
                tw = r["timings_warm"]
                secs += f" (again: {r['seconds_warm']:.1f})"
                again = " / ".join(fmt(tw.get(k)) for k in ("levels_pass", "blocks_pass", "optimize"))
                parts += f" (again: {again})"
            lines.append(f"| {int(rows_key):,} | {label} | {secs} | {parts} | {r['peak_mb']:.0f} "
                         f"| {r['base_mb']:.0f} | {wk} | {block['file_mb']:.0f} | {agree} | {dllf} "
                         f"| {ls[0]:.2f} → {le[0]:.2f} |")
    return "\n".join(lines)


def write_docs(results: dict) -> None:
    m = results["machine"]
    body = (f"Measured on {results['date']} by `python3 benchmarks/bench_scale.py"
            f"{' --big' if len(results['runs']) > 1 else ''}` ({m['cpu_count']} cores, "
            f"{m['memory_gb']:.1f} GB, Python {m['python']}; the cores are shared with other work, so times are "
            "noisy: the load average is given per row).\n\n" + table(results))
    write_section(ROOT / "docs" / "scale.md", BEGIN, END, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--path")
    ap.add_argument("--batch-size", type=int, default=CHUNK)
    ap.add_argument("--dir", default="/tmp/interlace_scale")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--big", action="store_true", help="also 100,000,000 rows (parquet path)")
    ap.add_argument("--big-rows", type=int, default=100_000_000)
    ap.add_argument("--skip", nargs="*", default=[], help="kinds to skip: memory parquet dask")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--keep", action="store_true", help="keep the parquet files")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.batch_size)))
        return

    import numpy as np

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "formula": FORMULA,
               "levels": [L1, L2], "batch_size": args.batch_size,
               "machine": machine(),
               "runs": {}}
    plans = [(args.rows, [k for k in ("memory", "parquet", "dask") if k not in args.skip])]
    if args.big:
        plans.append((args.big_rows, ["parquet"]))
    try:
        for rows, kinds in plans:
            path = d / f"scale_{rows}.parquet"
            free_gb = shutil.disk_usage(d).free / 1e9
            need_gb = rows * 40 / 1e9
            if free_gb < 2 * need_gb:
                results["runs"][str(rows)] = {"skipped": f"{free_gb:.0f} GB free on {d}, need ~{need_gb:.0f} GB"}
                continue
            print(f"generating {rows:,} rows ...", flush=True)
            gen_s = generate(path, rows)
            block = {"file_mb": path.stat().st_size / 1e6, "generate_seconds": gen_s, "results": []}
            results["runs"][str(rows)] = block
            for kind in kinds:
                print(f"  {kind} ...", flush=True)
                r = run_worker(kind, path, args.batch_size, args.timeout)
                block["results"].append(r)
                print("   ", {k: r.get(k) for k in ("seconds", "peak_mb", "base_mb", "error")}, flush=True)
            ref = next((r for r in block["results"] if r["kind"] == "memory" and "error" not in r), None)
            for r in block["results"]:
                if ref is not None and r is not ref and "error" not in r:
                    r["agreement"] = agreement(ref["estimates"], r["estimates"])
            for r in block["results"]:  # keep the JSON small: the BLUPs only served the comparison
                if "estimates" in r:
                    r["estimates"].pop("blups", None)
            if not args.keep:
                path.unlink()
    finally:
        if not args.keep:
            for p in d.glob("scale_*.parquet"):
                p.unlink()
    out = ROOT / "benchmarks" / "scale_results.json"
    out.write_text(json.dumps(results, indent=1, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    print(table(results))
    if not args.no_docs:
        write_docs(results)


if __name__ == "__main__":
    main()
