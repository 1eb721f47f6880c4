"""Benchmark of ``neurofa sweep``: parallel efficiency on a LocalCluster and the spiking backend's build reuse.

Rate: a 16-point sweep (4 values of η_bw × 4 seeds) of the PAL backprojection microcircuit (models/
pal_backprojections.yaml, shortened) with 1 and 2 worker processes. The points of one configuration run as one
batched task, so each task simulates 4 seeds. Reported: cluster start-up, sweep wall time (tasks, merge, files) and
parallel efficiency T₁ / (2 T₂), both for the sweep alone and end to end (start-up included), target ≥ 0.85 on an
otherwise idle machine; and the utilisation Σ task time / (workers × sweep wall time), the share of the sweep the
workers spent simulating (Dask, merging and file overhead and idle workers make up the rest), which CPU contention
from other processes does not distort.

Spiking (``--spiking``, when :mod:`neurofa.spiking` runs here): a sweep of 2 values of a run-time parameter × 2 seeds
of one structure on the workers, with the number of standalone builds per worker and the per-point run time after
the build (from the points' own timing).

    python scripts/bench_sweep.py [--duration MS] [--spiking] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_sweep(cfg, grid, seeds, n_workers, backend, out):
    from dask.distributed import LocalCluster

    from neurofa.sweep import sweep

    start = time.perf_counter()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        startup = time.perf_counter() - start
        t0 = time.perf_counter()
        result = sweep(cfg, grid, seeds=seeds, cluster=cluster.scheduler_address, out=out, backend=backend,
                       progress=False, plots=False)
        wall = time.perf_counter() - t0
        extra = {}
        if backend == "spiking":
            from dask.distributed import Client

            with Client(cluster.scheduler_address) as client:
                extra["worker_stats"] = client.run(
                    lambda: __import__("neurofa.spiking.program").spiking.program.stats())
    if result.failed:
        raise RuntimeError(f"{len(result.failed)} points failed, first: {result.failed[0]}")
    return startup, wall, result, extra


def bench_rate(duration: float, root: Path) -> dict:
    from neurofa.config import load_config

    cfg = load_config(ROOT / "models" / "pal_backprojections.yaml", {"simulation.duration": duration})
    grid = {"plasticity.eta_bw": [10, 20, 50, 100]}
    rows = {}
    for n in (1, 2):
        startup, wall, result, _ = timed_sweep(cfg, grid, 4, n, "rate", root / f"rate-{n}")
        points = [json.loads(p.read_text()) for p in (root / f"rate-{n}" / "points").glob("*.json")]
        tasks = {(p["config_hash"], tuple(p["batch_seeds"])): p["batch_wall_time_s"] for p in points}
        rows[n] = {"workers": n, "startup_s": startup, "sweep_s": wall, "total_s": startup + wall,
                   "points": len(points), "tasks": len(tasks), "task_mean_s": statistics.mean(tasks.values()),
                   "utilisation": sum(tasks.values()) / (n * wall)}
    eff = rows[1]["sweep_s"] / (2 * rows[2]["sweep_s"])
    eff_total = rows[1]["total_s"] / (2 * rows[2]["total_s"])
    return {"duration_ms": duration, "runs": list(rows.values()), "efficiency_sweep": eff,
            "efficiency_end_to_end": eff_total}


def bench_spiking(root: Path, duration: float) -> dict:
    from neurofa.config import load_config

    cfg = load_config(ROOT / "models" / "pal_backprojections.yaml",
                      {"simulation.duration": duration, "simulation.record_interval": 10.0})
    grid = {"plasticity.eta_bw": [20, 50]}
    startup, wall, result, extra = timed_sweep(cfg, grid, 2, 2, "spiking", root / "spiking")
    points = [json.loads(p.read_text()) for p in (root / "spiking" / "points").glob("*.json")]
    per_worker: dict[int, list[dict]] = {}
    for p in points:
        per_worker.setdefault(p["pid"], []).append(p)
    first, after = [], []
    for items in per_worker.values():
        items.sort(key=lambda p: p["finished"])
        first.append(items[0]["batch_wall_time_s"])
        after += [p["batch_wall_time_s"] for p in items[1:]]
    stats = extra["worker_stats"]
    return {"duration_ms": duration, "points": len(points), "workers": 2, "sweep_s": wall,
            "builds": sum(s["builds"] for s in stats.values()), "builds_per_worker": [s["builds"] for s in
                                                                                     stats.values()],
            "build_s": sum(s["build_s"] for s in stats.values()),
            "first_point_s": first, "point_after_build_s": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=800.0, help="simulated ms per rate point (default 800)")
    parser.add_argument("--spiking", action="store_true", help="also run the spiking sweep")
    parser.add_argument("--skip-rate", action="store_true", help="only the spiking sweep")
    parser.add_argument("--spiking-duration", type=float, default=200.0)
    parser.add_argument("--json", default="bench_sweep.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    report = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_rate:
            report["rate"] = rate = bench_rate(args.duration, Path(tmp))
            print(f"rate sweep: 16 points (4 eta_bw x 4 seeds), {args.duration:g} ms each, batched per configuration")
            print(f"{'workers':>7} {'tasks':>5} {'task s':>7} {'startup s':>9} {'sweep s':>8} {'total s':>8} "
                  f"{'utilisation':>11}")
            for r in rate["runs"]:
                print(f"{r['workers']:>7} {r['tasks']:>5} {r['task_mean_s']:>7.2f} {r['startup_s']:>9.2f} "
                      f"{r['sweep_s']:>8.2f} {r['total_s']:>8.2f} {r['utilisation']:>11.3f}")
            print(f"parallel efficiency T1/(2 T2): sweep {rate['efficiency_sweep']:.3f}, "
                  f"end to end {rate['efficiency_end_to_end']:.3f} (target >= 0.85)")
        if args.spiking:
            report["spiking"] = sp = bench_spiking(Path(tmp), args.spiking_duration)
            print(f"spiking sweep: {sp['points']} points on 2 workers in {sp['sweep_s']:.1f} s; standalone builds "
                  f"{sp['builds']} (per worker {sp['builds_per_worker']}, {sp['build_s']:.1f} s); first point per "
                  f"worker {[round(x, 1) for x in sp['first_point_s']]} s, later points "
                  f"{[round(x, 2) for x in sp['point_after_build_s']]} s")
    report["load_average_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average {report['load_average_start'][0]:.2f} -> {report['load_average_end'][0]:.2f}; "
          f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
