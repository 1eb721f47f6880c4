"""Benchmark of spike recording: memory and time of recording every spike of the quickstart network.

The default model (models/quickstart.yaml: the 5-20-10-20-5 microcircuit, 95 cells with the interneurons) runs for
``--seconds`` of spiking time (default 100 s) with one seed, once without recording spikes and once with
``spiking.record_spikes: all`` (and, with ``--checkpoint``, also in chunks of 10 s with checkpoints), each in a
fresh process. Reported per variant: the spikes recorded, the peak resident memory of the Python process (which
holds Brian2's copy of the monitor, the spike dataset and the result) and of the standalone program (which
records them), wall time, and the size of ``spikes.nc``; neurofa's own memory estimate (an upper bound: every cell
at ν_max) beside them. Each variant runs once first to make its build; the second run is the one reported.

    python scripts/bench_spikes.py [--seconds 100] [--checkpoint] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(seconds: float, record: bool, checkpoint: bool, out: str) -> None:
    """One variant in this process; prints a JSON line."""
    from neurofa.config import load_config
    from neurofa.runner import estimate, run

    base = load_config(ROOT / "models" / "quickstart.yaml")
    k = 50.0  # quickstart: spiking t_pres 50 ms for the rate model's 1 ms
    over = {"simulation.duration": seconds * 1000.0 / k, "simulation.record_interval": seconds * 1000.0 / k / 10,
            "simulation.seeds": 1}
    if record:
        over["spiking.record_spikes"] = ["all"]
    if checkpoint:
        over["simulation.checkpoint_interval"] = 10_000.0 / k
    cfg = load_config(base, over)
    cost = estimate(cfg, "spiking", 1)
    start = time.perf_counter()
    result = run(cfg, backend="spiking", seeds=[0], progress=False,
                 checkpoint=Path(out) / "checkpoint" if checkpoint else None)
    wall = time.perf_counter() - start
    result.save(Path(out) / "run", plots=False)
    spikes = result.spikes
    nc = Path(out) / "run" / "spikes.nc"
    print(json.dumps({
        "record": record, "checkpoint": checkpoint, "seconds": seconds, "wall_s": wall,
        "spikes": int(spikes.sizes["spike"]) if spikes is not None else 0,
        "cells": int(spikes.sizes["cell"]) if spikes is not None else 0,
        "python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "program_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        "estimate_mb": cost.bytes / 2**20,
        "spikes_nc_mb": nc.stat().st_size / 2**20 if nc.exists() else 0.0,
    }))


def variant(seconds: float, record: bool, checkpoint: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, __file__, "--child", str(seconds), str(int(record)),
                               str(int(checkpoint)), out], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=100.0)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds, record, checkpoint, out = args.child
        child(float(seconds), bool(int(record)), bool(int(checkpoint)), out)
        return
    cases = [(False, False), (True, False)] + ([(True, True)] if args.checkpoint else [])
    for record, checkpoint in cases:  # the builds (a structure holds the run's length): untimed
        variant(args.seconds, record, checkpoint)
    rows = [variant(args.seconds, record, checkpoint) for record, checkpoint in cases]
    print(f"quickstart 5-20-10-20-5, {args.seconds:g} s of spiking time, 1 seed")
    print(f"{'variant':<22}{'spikes':>10}{'python MB':>11}{'program MB':>12}{'estimate MB':>13}{'spikes.nc MB':>14}"
          f"{'wall s':>8}")
    for row in rows:
        name = "record all" if row["record"] else "no recording"
        name += " + chunks" if row["checkpoint"] else ""
        print(f"{name:<22}{row['spikes']:>10}{row['python_peak_mb']:>11.1f}{row['program_peak_mb']:>12.1f}"
              f"{row['estimate_mb']:>13.1f}{row['spikes_nc_mb']:>14.1f}{row['wall_s']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
