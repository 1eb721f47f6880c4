"""Benchmark of the spiking backend at width, with threads and in single precision, and of the rate reference.

Networks: Bars 9-30-3 (PAL), PAL Fig 3 5-20-10-20-5 (``models/spiking_backprojections.yaml``: backprojections
and apical inhibition plastic, dt 0.1 ms), and teacher-student 100-300-10 and 784-100-10 (every projection plastic,
FA, which runs PAL's program with η_bw = σ = 0).

For every network, thread count (1, 2) and precision (double, single), in an empty build directory (thread counts
above 1 only where the program splits a projection over threads, :func:`splits`; elsewhere they run the 1-thread
program):

- **first call**: a fresh process that builds and runs (seed 0);
- **re-run**: another fresh process, seed 1 and other learning rates through the run arguments of the cached build.
  *outside* is the time the call to ``neurofa.spiking.simulate`` spends outside the program's main loop (writing
  the run arguments, starting the program, reading its results, building the dataset); *process* also counts
  starting Python and importing neurofa (Brian2 is not imported on a re-run).

Speeds use the program's own main-loop time (``last_run_info.txt``, :func:`neurofa.spiking.program.stats`):
real-time factor = simulated s / main-loop s, where simulated s is all the program runs: the training time and
the teacher tasks' test presentations after it (:func:`neurofa.spiking.simulated_time`; the bench's 4 s of
training at 784-100-10 are 5 s of simulation). Synapse updates/s count every synapse of W, W^IP, B and B^PI once
per time step. Rate rows: seed-steps/s of the rate backend (``simulate``, the whole call) at 10 seeds on the same
sizes; *whole process* rows: Fig 3 at 10 seeds timed over a fresh Python process that imports neurofa and runs it
(:func:`rate_process_rows`). *Rate budget* row (Fig 3, with the rate rows): what a seed-step of the compiled rate kernel
costs at least, the noise draws plus the dynamics without plasticity (:func:`rate_budget_rows`). Runs one after
another: nothing else should run on the machine (a 2-thread run needs both cores).

*Thread speed-up* rows (:func:`thread_rows`): for every network that splits a projection, and for the wider
784-500-10, the 1-thread and the N-thread programs re-run alternately in fresh processes (5 pairs), and the ratio
of each pair's main-loop times: the speed-ups measured side by side.

*Dense loops alone* rows (with a thread count above 1; ``--no-ceiling`` skips them): the two loops of each
network's largest projection (at least ``PARALLEL_MIN_SYNAPSES`` synapses), compiled on their own from
:data:`CEILING_C` as OpenMP parallel regions and timed at 1 and N threads, alternating: what this machine gives for
those loops alone, with nothing else in the step.

Usage: ``python scripts/bench_scale.py [--quick] [--out scripts/bench_scale.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: simulated seconds per network (short enough for a bench, long enough that start-up does not dominate)
SECONDS = {"9-30-3": 20.0, "5-20-10-20-5": 20.0, "100-300-10": 4.0, "784-100-10": 4.0}
#: the wider network of the *thread speed-up* rows only (Sacramento et al.'s MNIST width), and its training seconds
WIDER = {"784-500-10": 1.0}


def network_config(name: str, seconds: float) -> dict[str, Any]:
    """The configuration (a mapping) of ``name`` for ``seconds`` of spiking time."""
    spiking = {"device": "cpp_standalone", "report": False}
    if name == "5-20-10-20-5":
        from neurofa.config import load_config, to_dict

        data = to_dict(load_config(ROOT / "models" / "spiking_backprojections.yaml"))
        k = data["spiking"]["t_pres"] / data["task"]["t_pres"]  # the file's time scale
        data["simulation"].update(duration=seconds * 1000.0 / k, record_interval=seconds * 100.0 / k)
        data["spiking"].update(spiking)
        return data
    if name == "9-30-3":
        return {"name": "bars", "network": {"layers": [9, 30, 3]},
                "task": {"name": "bars", "n_train": 8, "t_pres": 50.0},
                "plasticity": {"feedback": "pal", "eta_fw": [0.002], "eta_ip": [0.002], "eta_pi": [0.002],
                               "eta_bw": [50.0], "tau_lo": 0.0},
                "simulation": {"duration": seconds * 1000.0, "record_interval": seconds * 100.0},
                "spiking": spiking}
    layers = [int(n) for n in name.split("-")]
    return {"name": f"teacher_{name}", "network": {"layers": layers, "self_predicting": True},
            "plasticity": {"feedback": "fa", "eta_fw": [0.001, 0.001], "eta_ip": [0.001], "eta_pi": [0.001],
                           "tau_lo": 0.0},
            "task": {"name": "teacher", "n_train": 100, "n_test": 10, "t_pres": 100.0},
            "simulation": {"duration": seconds * 1000.0, "record_interval": seconds * 100.0},
            "spiking": {**spiking, "t_pres": 100.0}}


def n_synapses(layers: list[int]) -> int:
    n = sum(a * b for a, b in zip(layers[:-1], layers[1:]))  # W
    return n + 3 * sum(layers[i] * layers[i + 1] for i in range(1, len(layers) - 1))  # W_IP, B_PI, B


def largest_projection(name: str) -> tuple[int, int]:
    """(n_post, n_pre) of the largest projection of network ``name``: every projection (W, W^IP, B, B^PI) joins two
    neighbouring layers."""
    layers = [int(n) for n in name.split("-")]
    return max(zip(layers[1:], layers[:-1]), key=lambda pair: pair[0] * pair[1])


def splits(name: str) -> bool:
    """Whether the program of ``name`` splits any loop over threads (a projection of at least
    ``neurofa.spiking.kernels.PARALLEL_MIN_SYNAPSES`` synapses); if not, every thread count runs the same program."""
    from neurofa.spiking.kernels import PARALLEL_MIN_SYNAPSES

    n_post, n_pre = largest_projection(name)
    return n_post * n_pre >= PARALLEL_MIN_SYNAPSES


def _one(args: argparse.Namespace) -> None:
    """Worker mode: one spiking run in this fresh process; prints a JSON line."""
    started = time.perf_counter()
    from neurofa import spiking
    from neurofa.config import load_config
    from neurofa.spiking import program

    imported = time.perf_counter()
    data = network_config(args.network, args.seconds)
    over = {"spiking.threads": args.threads, "spiking.precision": args.precision, "spiking.build_dir": args.build_dir}
    if args.seed:  # a re-run: other learning rates through run arguments
        over["plasticity.eta_pi"] = [2 * e for e in load_config(data).plasticity.eta_pi]
    cfg = load_config(data, over)
    t0 = time.perf_counter()
    spiking.simulate(cfg, [args.seed], progress=False)
    call = time.perf_counter() - t0
    st = program.stats()
    brian2_imported = "brian2" in sys.modules  # before anything else can import it
    simulated_s = spiking.simulated_time(cfg)["total"] / 1000.0  # training and test presentations
    print(json.dumps({"import_s": imported - started, "simulated_s": simulated_s, "call_s": call,
                      "build_s": st["build_s"],
                      "builds": st["builds"], "simulation_s": st["simulation_s"], "process_s": time.perf_counter()
                      - started, "brian2_imported": brian2_imported, "layers": cfg.network.layers,
                      "dt_ms": cfg.spiking.dt}))


def spiking_rows(networks: list[str], threads: list[int], precisions: list[str], quick: bool) -> list[dict]:
    rows = []
    for name in networks:
        seconds = SECONDS[name] / (4 if quick else 1)
        for n_threads in threads:
            if n_threads > 1 and not splits(name):
                print(f"{name:>14} {n_threads:>2} threads: not run (no projection is split, so it is the 1-thread "
                      "program)", flush=True)
                continue
            for precision in precisions:
                with tempfile.TemporaryDirectory(prefix="bench_scale_") as build_dir:
                    for call, seed in (("first call", 0), ("re-run", 1)):
                        t0 = time.perf_counter()
                        r = _one_run(name, n_threads, precision, seed, seconds, build_dir)
                        wall = time.perf_counter() - t0
                        steps = r["simulated_s"] / (r["dt_ms"] / 1000.0)  # every step the program ran
                        sim = r["simulation_s"]
                        row = {"network": name, "threads": n_threads, "precision": precision, "call": call,
                               "trained_s": seconds, "simulated_s": r["simulated_s"], "builds": r["builds"],
                               "build_s": r["build_s"], "simulation_s": sim,
                               "realtime_factor": r["simulated_s"] / sim,
                               "synapses": n_synapses(r["layers"]),
                               "synapse_updates_per_s": n_synapses(r["layers"]) * steps / sim,
                               "outside_s": r["call_s"] - r["build_s"] - sim, "process_s": wall,
                               "process_outside_s": wall - r["build_s"] - sim, "import_s": r["import_s"],
                               "brian2_imported": r["brian2_imported"]}
                        rows.append(row)
                        print(f"{name:>14} {n_threads:>2} {precision:>6} {call:>10} {row['builds']:>2} "
                              f"{row['simulation_s']:8.2f} {row['realtime_factor']:9.2f} "
                              f"{row['synapse_updates_per_s']:10.3g} {row['outside_s']:8.2f} "
                              f"{row['process_outside_s']:8.2f}", flush=True)
    return rows


def _one_run(name: str, threads: int, precision: str, seed: int, seconds: float, build_dir: str) -> dict[str, Any]:
    """One spiking run of ``name`` in a fresh process (:func:`_one`): its JSON line."""
    done = subprocess.run([sys.executable, __file__, "--one", name, "--threads", str(threads), "--precision",
                           precision, "--seed", str(seed), "--seconds", str(seconds), "--build-dir", build_dir],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def thread_rows(networks: list[str], threads: list[int], quick: bool, rounds: int = 5) -> list[dict]:
    """The speed-up of N threads over 1, side by side: for each network that splits a projection (and the wider
    784-500-10), both programs (double precision) are built in one directory, then re-run alternately, 1 thread
    then N threads, ``rounds`` times; the ratio of each pair's main-loop times, median and range."""
    rows = []
    sizes = {name: SECONDS[name] for name in networks if name in SECONDS} | WIDER
    for name, seconds in sizes.items():
        seconds /= 4 if quick else 1
        if not splits(name):
            continue
        with tempfile.TemporaryDirectory(prefix="bench_threads_") as build_dir:
            for n in sorted(set(threads) | {1}):
                _one_run(name, n, "double", 0, seconds, build_dir)  # builds
            for n in sorted(set(threads) - {1}):
                pairs = [(_one_run(name, 1, "double", 1, seconds, build_dir)["simulation_s"],
                          _one_run(name, n, "double", 1, seconds, build_dir)["simulation_s"]) for _ in range(rounds)]
                ratios = sorted(a / b for a, b in pairs)
                row = {"network": name, "threads": n, "pairs_s": pairs, "speedup_median": ratios[len(ratios) // 2],
                       "speedup_min": ratios[0], "speedup_max": ratios[-1]}
                rows.append(row)
                print(f"{name:>14} {n} threads against 1, side by side ({rounds} alternating re-runs): "
                      f"{row['speedup_median']:.2f}x median ({ratios[0]:.2f}-{ratios[-1]:.2f}x)", flush=True)
    return rows


def rate_rows(networks: list[str], precisions: list[str], quick: bool) -> list[dict]:
    """Seed-steps/s of the rate backend at 10 seeds (whole ``simulate`` call), numpy and fused kernels, in each
    precision (``simulation.rate_precision``): Fig 3 for its 10 s, the other sizes for 10,000 steps."""
    from neurofa.circuit import initial_weights
    from neurofa.config import load_config
    from neurofa.rate import fused
    from neurofa.rate.dynamics import Microcircuit
    from neurofa.rate.microcircuit import simulate

    rows = []
    for name in networks + ["784-500-10"]:
        if name == "5-20-10-20-5":
            cfg = load_config(ROOT / "models" / "pal_backprojections.yaml")
            duration = 10000.0 / (10 if quick else 1)  # Fig 3: 10 s of rate time
        else:
            data = network_config("784-100-10" if name == "784-500-10" else name, 1.0)
            data["network"]["layers"] = [int(n) for n in name.split("-")]
            data.pop("spiking")
            cfg = load_config(data, {"simulation.scheme": "lagged"})
            duration = 100.0 / (10 if quick else 1)
        for precision in precisions:
            for kernel in ("numpy", "fused"):
                run = load_config(cfg, {"simulation.duration": duration, "simulation.record_interval": duration / 10,
                                        "simulation.rate_kernel": kernel, "simulation.rate_precision": precision})
                if kernel == "fused":
                    reason = fused.unsupported_reason(Microcircuit.of(run, initial_weights(run, [0])))
                    if reason:
                        print(f"{name:>14} rate fused: not covered ({reason})")
                        continue
                t0 = time.perf_counter()
                simulate(run, list(range(10)))
                wall = time.perf_counter() - t0
                steps = duration / run.simulation.dt
                rows.append({"network": name, "kernel": kernel, "precision": precision, "seeds": 10, "steps": steps,
                             "wall_s": wall, "seed_steps_per_s": 10 * steps / wall})
                print(f"{name:>14} rate {kernel:>5} {precision:>6} 10 seeds {steps:>9.0f} steps {wall:7.2f} s "
                      f"{10 * steps / wall:12,.0f} seed-steps/s", flush=True)
    return rows


#: a user's script running PAL's Fig 3 (10 seeds, ``duration`` ms of rate time) with the compiled step
WHOLE_PROCESS = """
from neurofa.config import load_config
from neurofa.rate.microcircuit import simulate
cfg = load_config({model!r}, {{"simulation.rate_kernel": "fused", "simulation.duration": {duration!r}}})
simulate(cfg, list(range(10)))
"""


def rate_process_rows(quick: bool, rounds: int = 3) -> list[dict]:
    """Seed-steps/s of Fig 3 at 10 seeds counted over a whole fresh process: Python's start-up, the imports,
    loading the compiled kernel from numba's cache, the run and the exit. A short run first fills the cache (and is
    not counted); then ``rounds`` runs of the full 10 s."""
    from neurofa.config import load_config

    model = str(ROOT / "models" / "pal_backprojections.yaml")
    duration = 10000.0 / (10 if quick else 1)
    subprocess.run([sys.executable, "-c", WHOLE_PROCESS.format(model=model, duration=100.0)], check=True, cwd=ROOT)
    seed_steps = 10 * duration / load_config(model).simulation.dt
    rows = []
    for k in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", WHOLE_PROCESS.format(model=model, duration=duration)], check=True,
                       cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        rows.append({"network": "5-20-10-20-5", "kernel": "fused", "round": k, "seeds": 10, "seed_steps": seed_steps,
                     "process_s": wall, "seed_steps_per_s": seed_steps / wall})
        print(f"{'5-20-10-20-5':>14} rate fused whole process, round {k}: {wall:6.2f} s "
              f"{seed_steps / wall:12,.0f} seed-steps/s", flush=True)
    return rows


def budget_networks(seeds: list[int]) -> dict[str, Any]:
    """PAL's Fig 3 batch (:class:`neurofa.rate.dynamics.Microcircuit`, compiled steps) as the file has it
    (``full``) and with every learning rate 0 (``dynamics``: the same equations with the weights fixed), each
    presented the same input; empty where the compiled kernel is not available."""
    import numpy as np

    from neurofa.circuit import initial_weights
    from neurofa.config import load_config
    from neurofa.rate import fused
    from neurofa.rate.dynamics import Microcircuit

    full = load_config(ROOT / "models" / "pal_backprojections.yaml", {"simulation.rate_kernel": "fused"})
    if fused.unsupported_reason(Microcircuit.of(full, initial_weights(full, [0]))):
        return {}
    fixed = load_config(full, {"plasticity.eta_pi": [0.0], "plasticity.eta_bw": [0.0]})
    inputs = np.random.default_rng(0).uniform(0.0, 1.0, (len(seeds), full.network.layers[0]))
    nets = {}
    for label, cfg in (("dynamics", fixed), ("full", full)):
        net = Microcircuit.of(cfg, initial_weights(cfg, seeds))
        net.present(inputs, None)
        nets[label] = net
    return nets


def rate_budget_rows(rounds: int = 7, block: int = 1000) -> list[dict]:
    """What a seed-step of the rate reference costs, on PAL's Fig 3 network at 10 seeds, each part in ns per
    seed-step, timed in alternating rounds of ``block`` steps (median of ``rounds``):

    - *noise*: :class:`neurofa.rate.dynamics.NoiseSource` filling a block of samples (the compiled draws of numpy's
      normals, which every committed result fixes: each seed's PCG64 stream);
    - *dynamics*: the compiled steps fed that block, with every learning rate 0 (no plasticity);
    - *full*: the compiled steps fed that block, as the file has them;
    - *drawing*: the compiled steps in full drawing their own noise, as a run takes them
      (:meth:`neurofa.rate.dynamics.Microcircuit.advance`).

    A step fed a block must also draw it, so 1/(noise + dynamics) bounds that path however fast its plasticity
    becomes; *drawing* is what a run's kernel call costs."""
    from neurofa.rate import fused
    from neurofa.rate.dynamics import Microcircuit, NoiseSource

    seeds = list(range(10))
    nets = budget_networks(seeds)
    if not nets:
        return []
    noise = NoiseSource(nets["full"], seeds, max_elements=block * len(seeds) * nets["full"].layout.n_units)
    sample = noise.block(block).copy()

    def draws() -> None:
        noise.block(block)  # the whole block was handed out: this call draws the next one

    def steps(net: Microcircuit) -> Any:
        return lambda: fused.fused_lagged_steps(net, sample, block)

    drawing_net = budget_networks(seeds)["full"]
    own = NoiseSource(drawing_net, seeds)

    def drawing() -> None:
        drawing_net.advance(own, block)

    parts = {"noise": draws, "dynamics": steps(nets["dynamics"]), "full": steps(nets["full"]), "drawing": drawing}
    times: dict[str, list[float]] = {name: [] for name in parts}
    for part in parts.values():
        part()  # compile and warm up
    for _ in range(rounds):
        for name, part in parts.items():
            t0 = time.perf_counter()
            part()
            times[name].append((time.perf_counter() - t0) / (block * len(seeds)) * 1e9)
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    floor = median["noise"] + median["dynamics"]
    row = {"network": "5-20-10-20-5", "seeds": len(seeds), "block_steps": block,
           **{f"{name}_ns_per_seed_step": t for name, t in median.items()},
           "bound_seed_steps_per_s": 1e9 / floor, "full_seed_steps_per_s": 1e9 / (median["noise"] + median["full"]),
           "drawing_seed_steps_per_s": 1e9 / median["drawing"]}
    print(f"{'5-20-10-20-5':>14} rate budget, ns per seed-step (median of {rounds}): noise block "
          f"{median['noise']:.0f}, compiled dynamics without plasticity {median['dynamics']:.0f}, compiled "
          f"steps in full {median['full']:.0f} (fed a block: at most {row['full_seed_steps_per_s']:,.0f} "
          f"seed-steps/s), drawing their own noise {median['drawing']:.0f} "
          f"({row['drawing_seed_steps_per_s']:,.0f} seed-steps/s)", flush=True)
    return [row]


#: the dense loops of one plastic all-to-all projection (neurofa/spiking/kernels.py): each step a weight update over
#: the rows of W, then the row sums of W x, each loop its own OpenMP parallel region split over the postsynaptic
#: rows, and nothing else: no neuron groups, no random numbers
CEILING_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
int main(int argc, char **argv) {
    const int n_post = atoi(argv[1]), n_pre = atoi(argv[2]), steps = atoi(argv[3]), threads = atoi(argv[4]);
    double *w = malloc(sizeof(double) * n_post * n_pre), *x = malloc(sizeof(double) * n_pre);
    double *post = malloc(sizeof(double) * n_post), *v = malloc(sizeof(double) * n_post);
    for (int k = 0; k < n_post * n_pre; k++) w[k] = 1e-3 * (k % 7);
    for (int j = 0; j < n_pre; j++) x[j] = 1e-3 * j;
    for (int i = 0; i < n_post; i++) { post[i] = 0.5 + 1e-3 * i; v[i] = 0.0; }
    const double start = omp_get_wtime();
    for (int s = 0; s < steps; s++) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (int i = 0; i < n_post; i++) {
            const double e = 1e-7 * (post[i] - v[i]);
            for (int j = 0; j < n_pre; j++) w[i * n_pre + j] += e * x[j];
        }
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (int i = 0; i < n_post; i++) {
            double sum = 0.0;
            for (int j = 0; j < n_pre; j++) sum += w[i * n_pre + j] * x[j];
            v[i] = 1e-3 * sum;
        }
    }
    printf("%.6f %.17g\n", omp_get_wtime() - start, v[0]);
    return 0;
}
"""


def ceiling_rows(networks: list[str], threads: list[int], rounds: int = 5) -> list[dict]:
    """The thread scaling of the dense loops alone, on this machine: for each network's largest projection, the
    loops of :data:`CEILING_C` compiled as Brian2 compiles (gcc -O3 -march=native -ffast-math), timed at 1 and at
    each other thread count, alternating, ``rounds`` times (best and median): how these loops alone scale on this
    machine, the reference for the *thread speed-up* rows of the whole program."""
    import shutil

    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None or max(threads) <= 1:
        return []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_ceiling_") as tmp:
        source, binary = Path(tmp) / "dense.c", Path(tmp) / "dense"
        source.write_text(CEILING_C)
        subprocess.run([compiler, "-O3", "-march=native", "-ffast-math", "-fopenmp", str(source), "-o", str(binary)],
                       check=True)
        for name in networks:
            if not splits(name):
                continue
            n_post, n_pre = largest_projection(name)
            steps = max(1000, int(2e9 / (n_post * n_pre * 2)))  # about 2e9 synapse visits per timing
            times: dict[int, list[float]] = {n: [] for n in sorted(set(threads) | {1})}
            for _ in range(rounds):
                for n in times:
                    out = subprocess.run([str(binary), str(n_post), str(n_pre), str(steps), str(n)],
                                         capture_output=True, text=True, check=True)
                    times[n].append(float(out.stdout.split()[0]))
            for n in times:
                if n == 1:
                    continue
                ratios = sorted(a / b for a, b in zip(times[1], times[n]))
                row = {"network": name, "projection": f"{n_pre}->{n_post}", "threads": n, "steps": steps,
                       "s_1_thread": times[1], f"s_{n}_threads": times[n],
                       "speedup_median": ratios[len(ratios) // 2], "speedup_best": ratios[-1],
                       "step_us_1_thread": 1e6 * min(times[1]) / steps}
                rows.append(row)
                print(f"{name:>14} dense loops alone ({n_pre}->{n_post}, {row['step_us_1_thread']:.1f} us/step): "
                      f"{n} threads {row['speedup_median']:.2f}x median, {row['speedup_best']:.2f}x best "
                      f"of {rounds}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the simulated time")
    parser.add_argument("--networks", nargs="*", default=list(SECONDS))
    parser.add_argument("--threads-list", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--precisions", nargs="*", default=["double", "single"])
    parser.add_argument("--no-rate", action="store_true")
    parser.add_argument("--no-spiking", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the thread scaling of the dense loops alone")
    parser.add_argument("--no-thread-pairs", action="store_true", help="skip the side-by-side thread speed-ups")
    parser.add_argument("--out", default=str(ROOT / "scripts" / "bench_scale.json"))
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="double", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--build-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.network = args.one
        _one(args)
        return
    print(f"{'network':>14} {'th':>2} {'prec':>6} {'call':>10} {'b':>2} {'loop s':>8} {'×realtime':>9} "
          f"{'syn upd/s':>10} {'outside':>8} {'+process':>8}")
    rows = [] if args.no_spiking else spiking_rows(args.networks, args.threads_list, args.precisions, args.quick)
    rate = [] if args.no_rate else rate_rows(args.networks, args.precisions, args.quick)
    fig3 = not args.no_rate and "5-20-10-20-5" in args.networks
    process = rate_process_rows(args.quick) if fig3 else []
    budget = rate_budget_rows() if fig3 else []
    pairs = [] if args.no_spiking or args.no_thread_pairs else thread_rows(args.networks, args.threads_list,
                                                                            args.quick)
    ceiling = [] if args.no_ceiling else ceiling_rows(args.networks, args.threads_list)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    report = {"spiking": rows, "thread_speedup": pairs, "rate": rate, "rate_whole_process": process,
              "rate_budget": budget, "dense_loop_ceiling": ceiling, "machine": machine}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
