"""Brian2 for spiking microcircuits: the standalone build of a structure, and runs in runtime mode.

:func:`build` generates and compiles one C++ program per :class:`~neurofa.spiking.structure.Structure` (with
Brian2's ``cpp_standalone`` device, in the directory :mod:`neurofa.spiking.program` names by the structure's key)
and returns the manifest with which :func:`neurofa.spiking.program.run_program` runs it for every seed and every
parameter that does not change the structure: initial weights, the presentation sequence (TimedArrays), shared
constants (conductances, ν_max, τ_s, τ_ξ, τ_HP, σ, α, learning rates, τ_LO) and the random seed. The seed is a
shared variable ``rng_seed`` of the input group; code inserted after the run arguments reseeds the generator with
it (:data:`SEED_CPP`), so the same seed gives the same spikes and different seeds different ones.

The generated code differs from Brian2's own in two places: the dense loops of every projection
(:mod:`neurofa.spiking.kernels`) and a few lines of the scheduler (:data:`NETWORK_PATCHES`; with ``spiking.threads``
> 1 also the step of :mod:`neurofa.spiking.schedule`, in which worker threads compute the rows of the wide
projections while the main thread goes on with the rest of the step).

Progress: Brian2's ``report=`` makes the standalone main loop read the process CPU clock once per object and time
step (``std::clock``, a system call on virtual machines without a vDSO CPU clock: 5.8× slower measured on the Bars
network). Standalone builds therefore print progress from a tiny group instead: every 1 % of the simulated time a
``run_regularly`` calls :data:`PROGRESS_CPP`, which, if the run argument ``progress_on`` (``spiking.report``) is 1
and 10 s of wall time have passed since its last line (and always at the end), prints the simulated time, the
elapsed wall time (steady clock) and an estimate of the remaining time.

What needs a new build is what the structure holds: layer sizes, transfer function, which projections learn and
with which rule's code (``fa`` runs PAL's program with η_bw = σ = 0), τ_LO on/off, dt, presentation time and count,
record interval, ``record_detail``, ``spiking.input_spikes``, ``post_signal``, ``pre_signal``, ``threads`` and
``precision`` (:func:`neurofa.spiking.structure.structure_key`).

This module imports Brian2; :mod:`neurofa.spiking.program` imports it only to build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brian2
import numpy as np
from brian2 import Function, NeuronGroup, ms, prefs, second
from brian2 import seed as brian_seed
from brian2.core.variables import ArrayVariable
from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
from brian2.devices.device import reset_device
from brian2.utils.logger import BrianLogger

from neurofa.config import Config
from neurofa.spiking import kernels, schedule
from neurofa.spiking.chunks import RunOutput
from neurofa.spiking.kernels import DenseProjection
from neurofa.spiking.network import Circuit, build_circuit
from neurofa.spiking.program import MonitorFiles, Program, record_grid, sample_times, spike_steps
from neurofa.spiking.structure import RunValues, Structure

__all__ = ["build", "runtime_run", "PROGRESS_CPP", "NETWORK_PATCHES"]

_RUNTIME_RUNS = itertools.count()
# non-finite values are reported once, by neurofa (a DivergenceError naming seed, time and quantity), not per
# variable by Brian2 when the monitors are read
BrianLogger.suppress_name("invalid_values")


# ------------------------------------------------------------------------------------------------------------
# execution


def _collect(circuit: Circuit) -> RunOutput:
    s = circuit.structure
    weights = {name: np.asarray(mon.w).T.copy() for name, mon in circuit.weight_monitors.items()}
    times = None
    layers: dict[tuple[str, str], np.ndarray] = {}
    for name, mon in circuit.layer_monitors.items():
        for var in mon.record_variables:
            layers[(name, var)] = np.asarray(getattr(mon, var)).T.copy()
        times = sample_times(np.asarray(mon.t_), s.dt)
    for mon in circuit.weight_monitors.values():
        times = sample_times(np.asarray(mon.t_), s.dt)
    if times is None:
        times = record_grid(s)
    test: dict[str, np.ndarray] = {}
    test_times = None
    if circuit.test_monitor is not None:
        test = {var: np.asarray(getattr(circuit.test_monitor, var)).T.copy()
                for var in circuit.test_monitor.record_variables}
        test_times = sample_times(np.asarray(circuit.test_monitor.t_), s.dt)
    spikes = {name: (spike_steps(np.asarray(mon.t_), s.dt), np.asarray(mon.i, dtype=np.int32))
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

#: seed the program's random generator from the run argument ``rng_seed`` (one generator: the random numbers are
#: drawn on the main thread whatever ``spiking.threads`` is, :mod:`neurofa.spiking.schedule`)
SEED_CPP = "brian::_random_generators[0].seed((unsigned long) {seed});"

#: Brian2's floating-point type of ``spiking.precision``
FLOAT_TYPES = {"double": np.float64, "single": np.float32}

#: link arguments of ``spiking.precision``. In single precision the program is linked with ``-ffast-math``, which
#: makes gcc add ``crtfastmath.o``: it sets flush-to-zero and denormals-are-zero at start-up, so a float32 value
#: that decays below 1.2e-38 (a trace of a silent cell) becomes 0 instead of a subnormal, whose arithmetic is slow
#: (100-300-10 in float32 ran 3.2× slower than with it, and slower than in double). Double keeps IEEE subnormals, and
#: with them its results bitwise.
PRECISION_LINK_ARGS = {"double": [], "single": ["-ffast-math"]}

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
#: Brian2's main loop reads the process CPU clock after every time step (``std::clock``, a system call where the
#: virtual machine has no vDSO CPU clock: 200,000 calls were most of the kernel time of 20 s of the Fig 3
#: network), and reports that CPU time as the run time (with threads, the sum over threads). neurofa's programs
#: read a steady wall clock once before and once after the loop, and report that
CLOCK_HEADER = ("#include <ctime>\n", "#include <ctime>\n#include <chrono>\n")
CLOCK_START = ("    start = std::clock();\n",
               "    start = std::clock();\n    const auto neurofa_wall_start = std::chrono::steady_clock::now();\n")
CLOCK_READ = ("        current = std::clock();\n"
              "        elapsed_realtime = (double)(current - start)/(1 * CLOCKS_PER_SEC);\n", "")
CLOCK_READ_AFTER = ("    Network::_globally_running = false;\n",
                    "    Network::_globally_running = false;\n    elapsed_realtime = std::chrono::duration<double>("
                    "std::chrono::steady_clock::now() - neurofa_wall_start).count();\n")
NETWORK_PATCHES = (CLOCK_COMPARISON, CLOCK_HEADER, CLOCK_START, CLOCK_READ, CLOCK_READ_AFTER)


class _Device(CPPStandaloneDevice):
    """Brian2's ``cpp_standalone`` device whose network compares clock times relatively and reads the CPU clock
    once (:data:`NETWORK_PATCHES`), whose dense projections run the loops of :mod:`neurofa.spiking.kernels` and,
    with more than one thread, whose step overlaps the rows of the wide projections with the rest
    (:mod:`neurofa.spiking.schedule`)."""

    def __init__(self, projections: dict[str, DenseProjection] | None = None, threads: int = 1) -> None:
        super().__init__()
        self.dense_projections = projections or {}
        self.dense_threads = threads
        #: the footprint of every code object function written so far, and of those that post a row job
        self.footprints: dict[str, schedule.Footprint] = {}
        self.job_footprints: dict[str, schedule.JobFootprint] = {}
        #: the file and source of every neuron group's state update written so far, by function
        self.state_updates: dict[str, tuple[str, str]] = {}

    def _record(self, filename: str, source: str) -> None:
        """Keep the footprint of the code object functions ``source`` defines (as a row job's if it posts one)."""
        footprint = schedule.footprint(source)
        job = schedule.job_footprint(source) if schedule.POST in source else None
        for function in schedule.functions(source):
            self.footprints[function] = footprint
            if job is not None:
                self.job_footprints[function] = job
            elif filename.endswith("_stateupdater_codeobject.cpp"):
                self.state_updates[function] = (filename, source)

    def _double_buffer(self, write: Any) -> None:
        """Rewrite (with ``write``) a neuron group's state update that writes an array some job's rows read, where
        :func:`neurofa.spiking.kernels.double_buffered` applies and it is the only one that does for that array: it
        may then run beside the job. (Other writers, such as a reset, write in place and wait for the job.)"""
        read = frozenset().union(*(job.rows.uses for job in self.job_footprints.values()))
        for name in sorted(read):
            rewrites = {function: kernels.double_buffered(source, name)
                        for function, (filename, source) in self.state_updates.items()
                        if name in self.footprints[function].writes}
            swappable = [(function, source) for function, source in rewrites.items() if source is not None]
            if len(swappable) != 1:
                continue
            function, source = swappable[0]
            filename = self.state_updates[function][0]
            write(filename, source)
            self.state_updates[function] = (filename, source)
            footprint = self.footprints[function]
            self.footprints[function] = dataclasses.replace(footprint, swapped=footprint.swapped | {name})

    def _network_patches(self, write: Any) -> tuple[tuple[str, str], ...]:
        if self.dense_threads <= 1:
            return NETWORK_PATCHES
        self._double_buffer(write)
        swapped = sorted(frozenset().union(*(footprint.swapped for footprint in self.footprints.values())))
        prefetches = tuple(kernels.prefetch_function(name) for name in swapped)
        restores = tuple(kernels.restore_function(name) for name in swapped)
        return NETWORK_PATCHES + schedule.network_patches(self.job_footprints, self.footprints, prefetches, restores)

    @contextlib.contextmanager
    def _rewritten(self, writer: Any) -> Iterator[None]:
        write = writer.write

        def rewritten(filename: str, contents: Any) -> None:
            if filename == "network.cpp":
                for old, new in self._network_patches(write):
                    if contents.count(old) != 1:
                        raise RuntimeError(f"Brian2 {brian2.__version__}: network.cpp no longer contains {old!r} "
                                           "once; update neurofa.spiking.device.NETWORK_PATCHES or "
                                           "neurofa.spiking.schedule")
                    contents = contents.replace(old, new)
            elif isinstance(contents, str):
                contents = kernels.rewrite(filename, contents, self.dense_projections, self.dense_threads)
                if self.dense_threads > 1 and filename.startswith("code_objects/") and filename.endswith(".cpp"):
                    self._record(filename, contents)
            write(filename, contents)

        writer.write = rewritten
        try:
            yield
        finally:
            writer.write = write

    def generate_network_source(self, writer: Any, compiler: Any) -> None:
        with self._rewritten(writer):
            super().generate_network_source(writer, compiler)

    def generate_codeobj_source(self, writer: Any) -> None:
        with self._rewritten(writer):
            super().generate_codeobj_source(writer)
        if self.dense_threads > 1:
            writer.write(schedule.HEADER, schedule.row_pool_header(self.dense_threads))


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


def runtime_run(cfg: Config, structure: Structure, values: RunValues) -> RunOutput:
    """Build and run in Brian2's runtime mode (code generation target from Brian's preferences)."""
    brian2.set_device("runtime")
    prefs.core.default_float_dtype = FLOAT_TYPES[structure.precision]
    brian_seed(int(values.seed))
    start = time.perf_counter()
    try:
        circuit = build_circuit(structure, values, prefix=f"nfrt{next(_RUNTIME_RUNS)}")
        circuit.network.run(structure.run_time * ms, report="text" if cfg.spiking.report else None)
    finally:
        prefs.core.default_float_dtype = np.float64
    out = _collect(circuit)
    out.wall_s = time.perf_counter() - start
    return out


def build(structure: Structure, values: RunValues, directory: Path) -> Program:
    """Generate and compile the program of ``structure`` in ``directory`` (with ``values`` as the built-in
    initial values; every run sets its own) and return its manifest (:class:`~neurofa.spiking.program.Program`)."""
    key = structure.key
    directory.mkdir(parents=True, exist_ok=True)
    prefix = f"nf{key[:6]}"
    dev = _Device(_dense_projections(structure, prefix), threads=structure.threads)
    compile_args, link_args = list(prefs.codegen.cpp.extra_compile_args_gcc), list(prefs.codegen.cpp.extra_link_args)
    brian2.set_device(dev, build_on_run=False)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    prefs.devices.cpp_standalone.openmp_threads = 0  # not Brian2's OpenMP mode: see neurofa.spiking.schedule
    prefs.core.default_float_dtype = FLOAT_TYPES[structure.precision]
    prefs.codegen.cpp.extra_link_args = link_args + PRECISION_LINK_ARGS[structure.precision]
    if structure.threads > 1:  # the worker threads of neurofa.spiking.schedule
        prefs.codegen.cpp.extra_compile_args_gcc = compile_args + ["-pthread"]
        prefs.codegen.cpp.extra_link_args = link_args + PRECISION_LINK_ARGS[structure.precision] + ["-pthread"]
    try:
        circuit = build_circuit(structure, values, prefix=prefix)
        progress = _progress_group(structure.run_time, structure.dt, prefix=prefix)
        circuit.objects["progress"] = progress
        circuit.network.add(progress)
        dev.apply_run_args()
        seed_array = dev.get_array_name(circuit.objects["P0"].variables["rng_seed"])
        dev.insert_code("main", SEED_CPP.format(seed=f"{seed_array}[0]"))
        dev.insert_code("main", RNG_RESTORE_CPP)
        circuit.network.run(structure.run_time * ms)
        dev.insert_code("main", RNG_SAVE_CPP)
        with _environment_kept():
            dev.build(directory=str(directory), compile=True, run=False, with_output=False)
        return _manifest(dev, circuit, key)
    finally:
        reset_device()
        prefs.core.default_float_dtype = np.float64
        prefs.codegen.cpp.extra_compile_args_gcc, prefs.codegen.cpp.extra_link_args = compile_args, link_args


def _manifest(dev: Any, circuit: Circuit, key: str) -> Program:
    """What :func:`neurofa.spiking.program.run_program` needs to run the built program without Brian2."""
    variables = {}
    for name, obj in circuit.objects.items():
        for var_name, var in obj.variables.items():
            if isinstance(var, ArrayVariable) and not var_name.startswith("_") and getattr(var.owner, "name",
                                                                                           None) == obj.name:
                variables[f"{name}.{var_name}"] = (f"{obj.name}.{var_name}", np.dtype(var.dtype).name)
    state = {f"{obj}.{var}": dev.get_array_filename(circuit.objects[obj].variables[var])
             for obj, var in _state_variables(circuit)}
    monitors = []

    def state_monitor(role: str, source: str, mon: Any) -> MonitorFiles:
        return MonitorFiles(role, source, dev.get_array_filename(mon.variables["t"]), variables=tuple(
            (v, dev.get_array_filename(mon.variables[v]), np.dtype(mon.variables[v].dtype).name)
            for v in mon.record_variables), n_recorded=int(mon.n_indices))

    monitors += [state_monitor("weights", src, mon) for src, mon in circuit.weight_monitors.items()]
    monitors += [state_monitor("layer", src, mon) for src, mon in circuit.layer_monitors.items()]
    if circuit.test_monitor is not None:
        monitors.append(state_monitor("test", f"P{circuit.structure.n_layers}", circuit.test_monitor))
    monitors += [MonitorFiles("spikes", src, dev.get_array_filename(mon.variables["t"]),
                              dev.get_array_filename(mon.variables["i"]))
                 for src, mon in circuit.spike_monitors.items()]
    timed = {name: (ta.name, np.dtype(ta.values.dtype).name) for name, ta in circuit.timed.items()}
    return Program(key, variables, timed, state, tuple(monitors))


def _dense_projections(structure: Structure, prefix: str) -> dict[str, DenseProjection]:
    """Every synapse object of ``structure`` (all are all-to-all, row-major) by its Brian2 name."""
    sizes = {g.name: g.size for g in structure.groups}
    return {f"{prefix}_{syn.name}": DenseProjection(f"{prefix}_{syn.name}", sizes[syn.pre], sizes[syn.post])
            for syn in structure.synapses}


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
    """Undo what Brian2 writes into ``os.environ`` for its programs (``LD_BIND_NOW=1``): left in place, it reaches
    every later subprocess of this process (SLURM's ``sinfo`` then fails to load its plugins)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        for key, value in saved.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
