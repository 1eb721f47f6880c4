"""Wall time of one MNIST epoch with the model files ``models/mnist_fa.yaml`` (rate) and
``models/spiking_mnist_fa.yaml`` (spiking, at network.population 1 and 16), measured on MNIST-shaped stand-in data
(:func:`neurofa.tasks.mnist.synthetic_mnist`, written as IDX files: the loader and the network are those of real
MNIST, whose files cannot be downloaded here) and extrapolated linearly to 60,000 presentations.

- rate: ``--rate-samples`` presentations (default 600) at the file's 3 seeds, the whole ``run`` call;
- spiking: ``--spiking-seconds`` of training (default 4 s = 20 presentations) of one seed, timed as a re-run of
  the cached build (the program's main loop, ``spiking_run_wall_s``), after a first call that builds. The program
  then presents the test set (``task.n_test: 0`` = all of it, here the 100 stand-in images = 20 s), so the time
  per presentation divides by all 120 presentations (:func:`neurofa.spiking.simulated_time`). Dividing by the 20
  training presentations alone overstated the epoch six-fold (8.5 h instead of 1.5 h).

The extrapolation is the measured time per presentation × 60,000; the cost per presentation does not depend on
the data. Prints a table and writes ``scripts/bench_mnist.json``. Nothing else should run on the machine.

Usage: ``python scripts/bench_mnist.py [--out scripts/bench_mnist.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import neurofa as nf
from neurofa import spiking
from neurofa.config import load_config
from neurofa.tasks.mnist import synthetic_mnist, write_idx_folder

ROOT = Path(__file__).resolve().parents[1]
EPOCH = 60000  # MNIST training presentations per epoch
TEST = 10000  # MNIST test presentations (a spiking run presents them after training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-samples", type=int, default=600)
    parser.add_argument("--spiking-seconds", type=float, default=4.0)
    parser.add_argument("--populations", nargs="*", type=int, default=[1, 16])
    parser.add_argument("--out", default=str(ROOT / "scripts" / "bench_mnist.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_idx_folder(Path(tmp) / "mnist", **synthetic_mnist(max(args.rate_samples, 100), 100))
        rate = load_config(ROOT / "models" / "mnist_fa.yaml", [f"task.path={folder}"])
        duration = args.rate_samples * rate.task.t_pres
        run_cfg = load_config(rate, {"simulation.duration": duration, "simulation.record_interval": duration / 2})
        t0 = time.perf_counter()
        nf.run(run_cfg, backend="rate", progress=False)
        wall = time.perf_counter() - t0
        seeds = rate.simulation.seeds
        rows.append({"model": "mnist_fa (rate)", "seeds": seeds, "presentations": args.rate_samples,
                     "wall_s": wall, "epoch_s": wall / args.rate_samples * EPOCH})
        for population in args.populations:
            spk = load_config(ROOT / "models" / "spiking_mnist_fa.yaml", [f"task.path={folder}"])
            k = spk.spiking.t_pres / spk.task.t_pres
            cfg = load_config(spk, {"network.population": population, "simulation.seeds": 1,
                                    "simulation.duration": args.spiking_seconds * 1000.0 / k,
                                    "simulation.record_interval": args.spiking_seconds * 500.0 / k})
            # the program runs the training presentations and then the test set's (here the 100 stand-in images)
            simulated = spiking.simulated_time(cfg)
            presentations = simulated["total"] / simulated["t_pres"]
            nf.run(cfg, backend="spiking", seeds=[0], progress=False)  # builds (cached for the re-run)
            summary = nf.run(cfg, backend="spiking", seeds=[1], progress=False).summary
            wall = float(summary["spiking_run_wall_s"])
            rows.append({"model": f"spiking_mnist_fa (population {population})", "seeds": 1,
                         "presentations": presentations, "wall_s": wall,
                         "realtime_factor": float(summary["spiking_realtime_factor"]),
                         "epoch_s": wall / presentations * EPOCH, "test_pass_s": wall / presentations * TEST})
    print(f"{'model':<36} {'seeds':>5} {'presentations':>13} {'wall s':>8} {'s per epoch':>12} {'h per epoch':>11}")
    for r in rows:
        print(f"{r['model']:<36} {r['seeds']:>5} {r['presentations']:>13.0f} {r['wall_s']:>8.2f} "
              f"{r['epoch_s']:>12.0f} {r['epoch_s'] / 3600:>11.2f}")
    report = {"rows": rows, "epoch_presentations": EPOCH,
              "machine": {"python": platform.python_version(), "node": platform.node()}}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
