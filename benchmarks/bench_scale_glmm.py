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
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scale import _load, _maxrss_mb  # noqa: E402

FORMULA = "y ~ x + (1 | g1) + (1 | g2)"
L1, L2 = 1000, 200
CHUNK = 1_000_000
BEGIN, END = "<!-- scale-glmm-results -->", "<!-- /scale-glmm-results -->"


def generate(path: Path, rows: int) -> float:
    """Write ``rows`` simulated binary rows to ``path`` in 1M-row chunks; returns seconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    base = np.random.default_rng([20240602, 0])
    u1 = base.normal(scale=0.8, size=L1)
    u2 = base.normal(scale=0.5, size=L2)
    writer = None
    try:
        for k, start in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - start)
            rng = np.random.default_rng([20240602, k + 1])
            g1 = rng.integers(0, L1, n).astype(np.int32)
            g2 = rng.integers(0, L2, n).astype(np.int32)
            x = rng.normal(size=n)
            eta = -0.5 + 0.4 * x + u1[g1] + u2[g2]
            y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
            table = pa.table({"y": y, "x": x, "g1": g1, "g2": g2})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - t0


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
        out["base_mb"] = _maxrss_mb()
        t0 = time.perf_counter()
        ddf = dd.read_parquet(path, split_row_groups=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = glmer_dask(FORMULA, ddf, family="binomial", client=client, progress=False)
        out["seconds"] = time.perf_counter() - t0
        out["worker_peak_mb"] = sorted(client.run(_maxrss_mb).values())
        client.close()
        cluster.close()
    elif kind == "parquet":
        out["base_mb"] = _maxrss_mb()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = glmer_parquet(FORMULA, path, family="binomial", batch_size=batch_size, cache_dir=cache_dir,
                                progress=False)
        out["seconds"] = time.perf_counter() - t0
    elif kind == "memory":
        import pandas as pd

        out["base_mb"] = _maxrss_mb()
        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        out["read_seconds"] = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = interlace.glmer(FORMULA, df, family="binomial")
        out["seconds"] = time.perf_counter() - t0
    else:
        raise SystemExit(f"unknown kind {kind}")
    out["peak_mb"] = _maxrss_mb()
    out["timings"] = dict(getattr(res, "timings", {}) or {})
    out["passes"] = dict(getattr(res, "passes", {}) or {})
    out["chunks"] = getattr(res, "n_chunks", None)
    out["estimates"] = _estimates(res)
    return out


def run_worker(kind: str, path: Path, batch_size: int, cache_dir: Path, timeout: int) -> dict:
    load0 = _load()
    cmd = [sys.executable, __file__, "--worker", kind, "--path", str(path), "--batch-size", str(batch_size),
           "--dir", str(cache_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "error": f"timeout after {timeout} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return {"kind": kind, "error": (p.stderr or p.stdout)[-2000:], "wall": wall}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process_wall"] = wall
    out["load_start"], out["load_end"] = load0, _load()
    return out


def agreement(ref: dict, other: dict) -> dict:
    import numpy as np

    out = {}
    for key in ("fe_params", "fe_bse", "theta", "modes", "condsd"):
        a, b = np.asarray(ref[key], float), np.asarray(other[key], float)
        out[key] = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))
    out["llf_abs"] = abs(ref["llf"] - other["llf"])
    return out


def _fmt(x, digits=3):
    return "" if x is None else f"{x:.{digits}g}"


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
                per = _fmt(r["timings"].get("optimize", 0) / max(1, ps["joint"] + ps["conditional"]))
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
    page = ROOT / "docs" / "scale.md"
    text = page.read_text()
    m = results["machine"]
    rows_arg = "" if results["rows"] == 10_000_000 else f" --rows {results['rows']}"
    body = (f"{BEGIN}\n\nMeasured on {results['date']} by `python3 benchmarks/bench_scale_glmm.py"
            f"{rows_arg}` ({m['cpu_count']} cores, "
            f"{m['memory_gb']:.1f} GB, Python {m['python']}; the load average of the shared machine is given per "
            "row).\n\n" + table(results) + f"\n\n{END}")
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    page.write_text(text)


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
                     "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                                 "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9,
                                 "platform": platform.platform()},
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
