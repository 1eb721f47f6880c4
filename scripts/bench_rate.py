"""Benchmark of the rate microcircuit: seed-steps per second of the PAL 5-20-10-20-5 network (PAL Fig 3 setting).

Batched: one :class:`neurofa.rate.dynamics.Microcircuit` with S = 1, 10, 100 seeds advances all of them per Euler
step (dynamics, PAL noise, plasticity of B and B^PI, a new input every t_pres). Baseline: a plain per-seed loop of the
same equations, i.e. 10 separate S = 1 circuits stepped one after the other. End to end: :func:`simulate` with
10 seeds, including recording. This bench times the numpy step (the reference), whose goal was ≥ 150,000
seed-steps/s at ≥ 10 seeds per batch. The PAL authors' per-seed numpy code, timed side by side on this machine, does
about 5,000 steps/s (100,100 steps in 20 s); an earlier figure of 1,500 steps/s in this docstring was wrong, so
150,000 is about 30× that code, not 100×. The 100× (≥ 500,000 seed-steps/s over a whole process running the 10 s)
is the compiled step's (``simulation.rate_kernel: fused``), which ``scripts/bench_scale.py`` measures beside the
numpy step (its *whole process* rows).

Usage: ``python scripts/bench_rate.py [--steps 20000] [--out scripts/bench_rate.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from neurofa.circuit import initial_weights
from neurofa.config import load_config
from neurofa.rate.dynamics import Microcircuit, NoiseSource
from neurofa.rate.microcircuit import simulate
from neurofa.results import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "pal_backprojections.yaml"


def _circuit(cfg, seeds: list[int]) -> tuple[Microcircuit, NoiseSource, np.ndarray]:
    net = Microcircuit.of(cfg, initial_weights(cfg, seeds))
    inputs = np.random.default_rng(0).uniform(0.0, 1.0, (100, len(seeds), cfg.network.layers[0]))
    return net, NoiseSource(net, seeds), inputs


def _run(net: Microcircuit, noise: NoiseSource, inputs: np.ndarray, n_steps: int, per_pres: int) -> None:
    p = 0
    for k in range(n_steps):
        if k % per_pres == 0:
            net.present(inputs[p % len(inputs)], None)
            p += 1
        net.step(noise.next())


def batched(cfg, n_seeds: int, n_steps: int) -> float:
    per_pres = int(round(cfg.task.t_pres / cfg.simulation.dt))
    net, noise, inputs = _circuit(cfg, list(range(n_seeds)))
    _run(net, noise, inputs, min(500, n_steps), per_pres)  # warm-up
    t0 = time.perf_counter()
    _run(net, noise, inputs, n_steps, per_pres)
    return n_seeds * n_steps / (time.perf_counter() - t0)


def per_seed_loop(cfg, n_seeds: int, n_steps: int) -> float:
    per_pres = int(round(cfg.task.t_pres / cfg.simulation.dt))
    circuits = [_circuit(cfg, [s]) for s in range(n_seeds)]
    t0 = time.perf_counter()
    for net, noise, inputs in circuits:
        _run(net, noise, inputs, n_steps, per_pres)
    return n_seeds * n_steps / (time.perf_counter() - t0)


def end_to_end(cfg, n_seeds: int, n_steps: int) -> float:
    duration = n_steps * cfg.simulation.dt
    cfg = load_config(cfg, {"simulation.duration": duration, "simulation.record_interval": duration / 10})
    t0 = time.perf_counter()
    simulate(cfg, list(range(n_seeds)))
    return n_seeds * n_steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="Euler steps per measurement")
    parser.add_argument("--out", default=str(ROOT / "scripts" / "bench_rate.json"))
    args = parser.parse_args()
    cfg = load_config(MODEL)
    rows = []
    for n_seeds in (1, 10, 100):
        steps = max(1000, args.steps // (10 if n_seeds == 100 else 1))
        rows.append({"method": "batched", "seeds_per_batch": n_seeds, "steps": steps,
                     "seed_steps_per_s": batched(cfg, n_seeds, steps)})
    steps = max(1000, args.steps // 10)
    rows.append({"method": "per-seed loop", "seeds_per_batch": 1, "seeds": 10, "steps": steps,
                 "seed_steps_per_s": per_seed_loop(cfg, 10, steps)})
    rows.append({"method": "simulate() end to end", "seeds_per_batch": 10, "steps": args.steps,
                 "seed_steps_per_s": end_to_end(cfg, 10, args.steps)})
    base = rows[3]["seed_steps_per_s"]
    print(f"{'method':<24}{'seeds/batch':>12}{'seed-steps/s':>16}{'× loop':>10}")
    for r in rows:
        r["speedup_vs_loop"] = r["seed_steps_per_s"] / base
        print(f"{r['method']:<24}{r['seeds_per_batch']:>12}{r['seed_steps_per_s']:>16,.0f}{r['speedup_vs_loop']:>10.1f}")
    goal = 150_000
    best = max(r["seed_steps_per_s"] for r in rows if r["method"] == "batched" and r["seeds_per_batch"] >= 10)
    verdict = "met" if best >= goal else "NOT met"
    print(f"goal ≥ {goal:,} seed-steps/s at ≥ 10 seeds per batch: best {best:,.0f} -> {verdict}")
    report = {
        "model": str(MODEL.relative_to(ROOT)),
        "network": cfg.network.layers,
        "rows": rows,
        "goal_seed_steps_per_s": goal,
        "goal_met": best >= goal,
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
