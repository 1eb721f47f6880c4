"""Benchmark of the spiking backend: simulated seconds per wall second and synaptic updates per second.

Networks: Bars 9-30-3 (forward, lateral and PAL plasticity) and the PAL Fig 3 network 5-20-10-20-5 (backprojections
and apical inhibition plastic). Devices: ``cpp_standalone`` (first call = code generation + compilation + run;
second call = a new seed and a new η_bw through ``run_args``, which must not compile) and optionally ``runtime``
(Brian's default code generation target; short run, since the first Cython compilation alone takes minutes).

Synaptic updates per second count every synapse once per time step (all projections are clock-driven or summed
every step). Acceptance goal: standalone Fig 3 at dt 0.1 ms ≥ 5× faster than real time, re-run without compilation.

Usage: ``python scripts/bench_spiking.py [--seconds 20] [--runtime] [--out bench_spiking.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from neurofa.config import load_config  # noqa: E402


def configs(seconds: float) -> dict[str, dict]:
    common = {"spiking": {"report": False}, "simulation": {"record_interval": 10.0}}
    return {
        "bars_9-30-3_pal": {
            **common,
            "network": {"layers": [9, 30, 3]},
            "task": {"name": "bars", "n_train": 8, "t_pres": 50.0},
            "plasticity": {"feedback": "pal", "eta_fw": [0.002], "eta_ip": [0.002], "eta_pi": [0.002],
                           "eta_bw": [50.0], "tau_lo": 0.0},
            "simulation": {"duration": seconds * 1000.0, "record_interval": seconds * 100.0},
        },
        "fig3_5-20-10-20-5_pal": {
            **common,
            "task": {"name": "backprojection", "n_train": 100, "t_pres": 50.0},
            # eta_pi as models/spiking_backprojections.yaml after its rescaling (5/ms of rate time / k = 50)
            "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.1]},
            "simulation": {"duration": seconds * 1000.0, "record_interval": seconds * 100.0},
        },
    }


def n_synapses(sizes: list[int]) -> int:
    n = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))  # W
    n += 3 * sum(sizes[i] * sizes[i + 1] for i in range(1, len(sizes) - 1))  # W_IP, B_PI, B
    return n


def bench(name: str, data: dict, device_name: str, build_dir: str) -> list[dict]:
    from neurofa import spiking
    from neurofa.spiking import program

    data = json.loads(json.dumps(data))
    data["spiking"].update(device=device_name, build_dir=build_dir)
    rows = []
    for label, seed, eta_bw in (("first call", 0, 50.0), ("re-run (run_args)", 1, 20.0)):
        if device_name == "runtime" and label != "first call":
            continue
        cfg = load_config(data, {"plasticity.eta_bw": [eta_bw]})
        builds0 = program.stats()["builds"]
        start = time.perf_counter()
        ds = spiking.simulate(cfg, [seed], progress=False)
        wall = time.perf_counter() - start
        extra = ds.attrs["extra_summary"]
        sim_s = (extra["spiking_duration_ms"]) / 1000.0
        run_wall = extra["spiking_run_wall_s"]
        steps = sim_s / (cfg.spiking.dt / 1000.0)
        rows.append({
            "network": name, "device": device_name, "call": label, "builds": program.stats()["builds"] - builds0,
            "simulated_s": sim_s, "wall_s": wall, "run_wall_s": run_wall,
            "realtime_factor": sim_s / run_wall, "synapses": n_synapses(cfg.network.layers),
            "synaptic_updates_per_s": n_synapses(cfg.network.layers) * steps / run_wall,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per run")
    parser.add_argument("--runtime", action="store_true", help="also time Brian's runtime device (slow)")
    parser.add_argument("--build-dir", default="", help="standalone build root (default ~/.cache/neurofa/builds)")
    parser.add_argument("--out", default="bench_spiking.json")
    args = parser.parse_args()
    rows: list[dict] = []
    for name, data in configs(args.seconds).items():
        rows += bench(name, data, "cpp_standalone", args.build_dir)
        if args.runtime:
            short = json.loads(json.dumps(data))
            short["simulation"]["duration"] = min(2000.0, short["simulation"]["duration"])
            short["simulation"]["record_interval"] = short["simulation"]["duration"] / 10
            rows += bench(name, short, "runtime", args.build_dir)
    header = f"{'network':24s} {'device':15s} {'call':18s} {'builds':>6s} {'sim s':>7s} {'wall s':>8s} " \
             f"{'run s':>7s} {'×realtime':>9s} {'syn upd/s':>10s}"
    print(header)
    for r in rows:
        print(f"{r['network']:24s} {r['device']:15s} {r['call']:18s} {r['builds']:6d} {r['simulated_s']:7.1f} "
              f"{r['wall_s']:8.1f} {r['run_wall_s']:7.1f} {r['realtime_factor']:9.2f} "
              f"{r['synaptic_updates_per_s']:10.3g}")
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
