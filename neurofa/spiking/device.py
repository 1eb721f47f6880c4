"""Running spiking microcircuits on Brian2's devices: ``runtime`` and ``cpp_standalone`` with one build per structure.

Standalone mode compiles one C++ program per :class:`~neurofa.spiking.structure.Structure` (in its own directory
under ``spiking.build_dir`` or ``~/.cache/neurofa/builds/<key>``), keeps it for the rest of the process and runs
every seed and every parameter that does not change the structure through ``device.run(run_args=...)``: initial
weights, the presentation sequence (TimedArrays), shared constants (conductances, ν_max, τ_s, τ_ξ, τ_HP, σ, α,
learning rates, τ_LO) and the random seed. The seed is a shared variable ``rng_seed`` of the input group; code
inserted after the run arguments reseeds the generator with it, so the same seed gives the same spikes and
different seeds different ones. Seeds of one call run one after another (a one-core program each; run several
processes for parallelism, e.g. through :mod:`neurofa.sweep`). :func:`stats` counts the builds of this process.

Progress: Brian2's ``report=`` makes the standalone main loop read the process CPU clock once per object and time
step (``std::clock``, a system call on virtual machines without a vDSO CPU clock: 5.8× slower measured on the Bars
network). Standalone builds therefore print progress from a tiny group instead: every 1 % of the simulated time a
``run_regularly`` calls :data:`PROGRESS_CPP`, which, if the run argument ``progress_on`` (``spiking.report``) is 1
and 10 s of wall time have passed since its last line (and always at the end), prints the simulated time, the
elapsed wall time (steady clock) and an estimate of the remaining time.

What needs a new build is what the structure holds: layer sizes, transfer function, which projections learn and
with which rule's code (``fa`` runs PAL's program with η_bw = σ = 0), τ_LO on/off, dt, presentation time and count,
record interval, ``record_detail``, ``spiking.input_spikes``, ``post_signal`` and ``pre_signal``
(:func:`neurofa.spiking.structure.structure_key`).

This module imports Brian2; :func:`neurofa.spiking.simulate` imports it on first use.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2 import Function, NeuronGroup, ms, prefs, second
from brian2 import seed as brian_seed
from brian2.core.variables import ArrayVariable
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import reset_device
from brian2.utils.filelock import FileLock
from brian2.utils.logger import BrianLogger

from neurofa.checkpoint import Checkpoint
from neurofa.config import Config
from neurofa.spiking.chunks import ChunkState, RunOutput, SeedStore, merge
from neurofa.spiking.network import Circuit, build_circuit
from neurofa.spiking.structure import RunValues, Structure

__all__ = ["stats", "RunOutput", "run_seed", "PROGRESS_CPP"]

_BUILDS: dict[str, _Build] = {}
_STATS: dict[str, float] = {"builds": 0, "build_s": 0.0, "run_s": 0.0}
_RUNTIME_RUNS = itertools.count()
# non-finite values are reported once, by neurofa (a DivergenceError naming seed, time and quantity), not per
# variable by Brian2 when the monitors are read
BrianLogger.suppress_name("invalid_values")


def stats() -> dict[str, Any]:
    """Builds and time spent in this process: ``builds``, ``cached_structures``, ``build_s``, ``run_s``."""
    return {"builds": int(_STATS["builds"]), "cached_structures": len(_BUILDS), "build_s": _STATS["build_s"],
            "run_s": _STATS["run_s"]}


# ------------------------------------------------------------------------------------------------------------
# execution


def _build_root(cfg: Config) -> Path:
    if cfg.spiking.build_dir:
        return Path(cfg.spiking.build_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurofa" / "builds"


def _times(monitor: Any, dt: float) -> np.ndarray:
    """A monitor's sample times in ms as exact multiples of dt (so chunks and whole runs agree bitwise)."""
    return np.rint(np.asarray(monitor.t / ms) / dt) * dt


def _collect(circuit: Circuit) -> RunOutput:
    s = circuit.structure
    weights = {name: np.asarray(mon.w).T.copy() for name, mon in circuit.weight_monitors.items()}
    times = None
    layers: dict[tuple[str, str], np.ndarray] = {}
    for name, mon in circuit.layer_monitors.items():
        for var in mon.record_variables:
            layers[(name, var)] = np.asarray(getattr(mon, var)).T.copy()
        times = _times(mon, s.dt)
    for mon in circuit.weight_monitors.values():
        times = _times(mon, s.dt)
    if times is None:  # nothing plastic or recorded: only the grid is needed (a chunk's end is the next's start)
        times = (np.arange(0.0, s.chunk_pres * s.t_pres - s.dt / 2, s.record_interval) if s.chunk_pres
                 else np.arange(0.0, s.train_time + s.dt / 2, s.record_interval))
    test: dict[str, np.ndarray] = {}
    test_times = None
    if circuit.test_monitor is not None:
        test = {var: np.asarray(getattr(circuit.test_monitor, var)).T.copy()
                for var in circuit.test_monitor.record_variables}
        test_times = _times(circuit.test_monitor, s.dt)
    spikes = {name: (np.rint(np.asarray(mon.t / ms) / s.dt).astype(np.int64), np.asarray(mon.i, dtype=np.int32))
              for name, mon in circuit.spike_monitors.items()}
    return RunOutput(times, weights, layers, test_times, test, 0.0, spikes)


#: C++ implementation of ``neurofa_progress(t, on, t_end, period, t0)``: a line of progress on stdout (``on`` > 0)
#: at most every 10 s of wall time, and always at the last call (``t + period > t_end``); ``t`` is the time in the
#: whole run, ``t0`` where this program run began (a chunk's start): the wall time is this program run's, and the
#: estimate uses its speed.
PROGRESS_CPP = r"""
double neurofa_progress(double t, double on, double t_end, double period, double t0)
{
    static const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    static double last = 0.0;
    if (on <= 0.0 || t <= t0)
        return 0.0;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (wall - last < 10.0 && t + period <= t_end)
        return 0.0;
    last = wall;
    std::printf("%.1f s (%.0f%%) simulated in %.0f s, estimated %.0f s remaining.\n",
                t, 100.0 * t / t_end, wall, wall * (t_end - t) / (t - t0));
    std::fflush(stdout);
    return 0.0;
}
"""

#: restore the random generators from ``neurofa_rng_in.bin`` in the results directory, if the run was given one
#: (the state a previous chunk ended with); the bytes are those of this very program's generators
RNG_RESTORE_CPP = r"""
{
    std::ifstream rng_in(brian::results_dir + "neurofa_rng_in.bin", std::ios::binary);
    if (rng_in.good())
        for (auto &generator : brian::_random_generators)
            rng_in.read(reinterpret_cast<char*>(&generator), sizeof(generator));
}
"""
#: write the random generators' state at the end of the run to ``neurofa_rng_out.bin``
RNG_SAVE_CPP = r"""
{
    std::ofstream rng_out(brian::results_dir + "neurofa_rng_out.bin", std::ios::binary);
    for (auto &generator : brian::_random_generators)
        rng_out.write(reinterpret_cast<const char*>(&generator), sizeof(generator));
}
"""


#: Brian2's standalone scheduler treats clocks as simultaneous when their times differ by at most 1e-14 s, an
#: absolute tolerance: beyond about 64 s of simulated time one rounding step of t exceeds it, and a monitor with its
#: own dt (every record interval, every half presentation) then sometimes samples one time step late. neurofa's
#: programs compare relative to the time instead, as Brian2's clocks.h already does for a run's start and end.
CLOCK_COMPARISON = ("fabs(s-t)<=Clock_epsilon)", "fabs(s-t)<=Clock_epsilon*fmax(1.0, fabs(t)))")


class _Device(CPPStandaloneDevice):
    """Brian2's ``cpp_standalone`` device whose network compares clock times relatively (:data:`CLOCK_COMPARISON`)."""

    def generate_network_source(self, writer: Any, compiler: Any) -> None:
        write = writer.write

        def relative(filename: str, contents: Any) -> None:
            if filename == "network.cpp":
                old, new = CLOCK_COMPARISON
                if old not in contents:
                    raise RuntimeError(f"Brian2 {brian2.__version__}: network.cpp no longer compares clocks as "
                                       f"{old!r}; update neurofa.spiking.device.CLOCK_COMPARISON")
                contents = contents.replace(old, new)
            write(filename, contents)

        writer.write = relative
        try:
            super().generate_network_source(writer, compiler)
        finally:
            writer.write = write


def _progress_group(run_time_ms: float, dt_ms: float, prefix: str) -> Any:
    """A one-cell group whose ``run_regularly`` reports progress every 1 % of ``run_time_ms`` (standalone); the
    run arguments ``progress_on``, ``progress_offset`` (the run's start in the whole run) and ``progress_total``
    (the whole run's end) set it per run."""
    func = Function(None, arg_units=[second, 1, second, second, second], return_unit=1, stateless=False)
    func.implementations.add_implementation("cpp", PROGRESS_CPP, name="neurofa_progress",
                                            compiler_kwds={"headers": ["<chrono>", "<cstdio>"]})
    period = max(1, round(run_time_ms / 100 / dt_ms)) * dt_ms
    group = NeuronGroup(1, "progress_on : 1 (shared, constant)\nprogress_out : 1 (shared)\n"
                           "progress_offset : second (shared, constant)\nprogress_total : second (shared, constant)",
                        namespace={"neurofa_progress": func, "period": period * ms}, name=f"{prefix}_progress")
    group.run_regularly("progress_out = neurofa_progress(t + progress_offset, progress_on, progress_total, period, "
                        "progress_offset)", dt=period * ms)
    return group


def _runtime_run(cfg: Config, structure: Structure, values: RunValues) -> RunOutput:
    """Build and run in Brian2's runtime mode (code generation target from Brian's preferences)."""
    brian2.set_device("runtime")
    brian_seed(int(values.seed))
    start = time.perf_counter()
    circuit = build_circuit(structure, values, prefix=f"nfrt{next(_RUNTIME_RUNS)}")
    circuit.network.run(structure.run_time * ms, report="text" if cfg.spiking.report else None)
    out = _collect(circuit)
    out.wall_s = time.perf_counter() - start
    _STATS["run_s"] += out.wall_s
    return out


@dataclass
class _Build:
    device: Any
    circuit: Circuit
    directory: Path
    state: list[tuple[str, str]]


def _standalone_build(cfg: Config, structure: Structure, values: RunValues) -> _Build:
    """Generate and compile the program of ``structure`` once per process (cached by its key)."""
    key = structure.key
    if key in _BUILDS:
        return _BUILDS[key]
    directory = _build_root(cfg) / key
    directory.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dev = _Device()
    brian2.set_device(dev, build_on_run=False)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    prefs.devices.cpp_standalone.openmp_threads = 0
    try:
        circuit = build_circuit(structure, values, prefix=f"nf{key[:6]}")
        progress = _progress_group(structure.run_time, structure.dt, prefix=f"nf{key[:6]}")
        circuit.objects["progress"] = progress
        circuit.network.add(progress)
        dev.apply_run_args()
        seed_array = dev.get_array_name(circuit.objects["P0"].variables["rng_seed"])
        dev.insert_code("main", f"brian::_random_generators[0].seed((unsigned long) {seed_array}[0]);")
        dev.insert_code("main", RNG_RESTORE_CPP)
        circuit.network.run(structure.run_time * ms)
        dev.insert_code("main", RNG_SAVE_CPP)
        with FileLock(str(directory) + ".lock"):
            dev.build(directory=str(directory), compile=True, run=False, with_output=False)
    finally:
        reset_device()
    _STATS["builds"] += 1
    _STATS["build_s"] += time.perf_counter() - start
    build = _Build(dev, circuit, directory, _state_variables(circuit))
    _BUILDS[key] = build
    return build


def _state_variables(circuit: Circuit) -> list[tuple[str, str]]:
    """Every (object, variable) that carries the network from one step to the next: the writable, non-constant
    arrays each group and synapse object owns (weights, traces, voltages, noise, accumulators, summed dendritic
    potentials and the stored ``constant over dt`` expressions). Constants (set per run) and what Brian2 manages
    (indices, clocks) are left out."""
    out = []
    for name, obj in circuit.objects.items():
        if name == "progress":
            continue
        for var_name, var in obj.variables.items():
            if (isinstance(var, ArrayVariable) and not var.read_only and not var.constant
                    and not var_name.startswith("_") and getattr(var.owner, "name", None) == obj.name):
                out.append((name, var_name))
    return out


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """Undo what Brian2's ``device.run`` writes into ``os.environ`` for its binary (``LD_BIND_NOW=1``): left in
    place, it reaches every later subprocess of this process (SLURM's ``sinfo`` then fails to load its plugins)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


def _standalone_run(cfg: Config, build: _Build, values: RunValues, state: ChunkState | None = None,
                    offset_ms: float = 0.0) -> tuple[RunOutput, ChunkState]:
    """One run of a built program: from its initial values, or continuing ``state`` (a chunk's end); returns the
    monitor data and the state at the end."""
    circuit = build.circuit
    results = tempfile.mkdtemp(prefix="results_", dir=build.directory)
    start = time.perf_counter()
    try:
        run_args = circuit.run_args(values, state.variables if state is not None else None)
        progress = circuit.objects["progress"]
        run_args[progress.progress_on] = float(cfg.spiking.report)
        run_args[progress.progress_offset] = offset_ms * ms
        run_args[progress.progress_total] = circuit.structure.end_time * ms
        if state is not None:
            state.rng.tofile(os.path.join(results, "neurofa_rng_in.bin"))
        with _environment_kept():
            build.device.run(directory=str(build.directory), results_directory=os.path.basename(results),
                             with_output=bool(cfg.spiking.report), run_args=run_args)
        out = _collect(circuit)
        final = {f"{obj}.{var}": np.asarray(getattr(circuit.objects[obj], var)[:]).copy() for obj, var in build.state}
        rng = np.fromfile(os.path.join(results, "neurofa_rng_out.bin"), dtype=np.uint8)
    finally:
        # The state's run-argument files stay in static_arrays/ (named by their content, as Brian2 names them): a
        # file of a weight that never changes is also another run's initial weights, which a concurrent run of the
        # same build may be about to read.
        shutil.rmtree(results, ignore_errors=True)
    out.wall_s = time.perf_counter() - start
    _STATS["run_s"] += out.wall_s
    return out, ChunkState((state.next_chunk if state else 0) + 1, final, rng)


def _chunked_run(cfg: Config, structure: Structure, values: RunValues, store: SeedStore | None) -> RunOutput:
    """The run in chunks (:mod:`neurofa.spiking.chunks`), from the last finished chunk in ``store`` if any."""
    s = structure
    build = _standalone_build(cfg, s, values.chunk(s, 0))
    state = store.state() if store is not None else None
    first = state.next_chunk if state is not None else 0
    outputs = [store.output(c) for c in range(first)] if store is not None else []
    for c in range(first, s.n_chunks):
        out, state = _standalone_run(cfg, build, values.chunk(s, c), state, offset_ms=c * s.chunk_pres * s.t_pres)
        if store is not None:
            store.save(c, out, state)
        outputs.append(out)
    assert state is not None
    return merge(s, outputs, state.variables)


def run_seed(cfg: Config, structure: Structure, values: RunValues, checkpoint: Checkpoint | None = None) -> RunOutput:
    """Simulate one run on ``cfg.spiking.device``; a structure cut into chunks runs chunk by chunk and, with a
    ``checkpoint``, continues from the last chunk it finished."""
    if cfg.spiking.device != "cpp_standalone":
        return _runtime_run(cfg, structure, values)
    if structure.chunk_pres:
        return _chunked_run(cfg, structure, values, SeedStore(checkpoint, values.seed) if checkpoint else None)
    return _standalone_run(cfg, _standalone_build(cfg, structure, values), values)[0]
