r"""Compiled spiking programs: built once per structure, run by neurofa directly (numpy only, no Brian2).

A standalone build (:mod:`neurofa.spiking.device`, which imports Brian2) leaves in its directory the compiled
program ``main`` and ``program.json``, the :class:`Program` manifest: the Brian2 name and type of every variable
and timed input a run may set, and the files in which the program leaves its monitors and its final state. Every
run goes through :func:`run_program`: it writes the run's arrays into the run's own results directory (scalars go
on the command line), calls ``main --results_dir DIR name=value ...``, reads the results and removes the
directory, so nothing of a run stays in the build. So a process that finds a finished build of its structure does
not import Brian2 or generate code at all (``scripts/bench_scale.py`` measures the time a re-run spends outside
the simulation itself).

A build's directory is named by :attr:`~neurofa.spiking.structure.Structure.key`, which hashes the structure,
the Brian2 version and the source of the modules that generate the code: a manifest therefore never describes
another program than the one beside it. :func:`stats` counts this process's builds and run time.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurofa.atomic import atomic_write_text
from neurofa.checkpoint import Checkpoint
from neurofa.config import Config, ConfigError
from neurofa.spiking.chunks import ChunkState, RunOutput, SeedStore, merge
from neurofa.spiking.structure import RunValues, Structure

__all__ = ["Program", "MonitorFiles", "run_seed", "run_program", "run_arguments", "stats", "available_cores",
           "build_root", "sample_times", "spike_steps", "record_grid", "MANIFEST"]

#: the manifest's file name in a build directory
MANIFEST = "program.json"
#: SI factor of each unit of :class:`~neurofa.spiking.structure.RunValues` (what ``value * unit`` is in Brian2)
_SI = {"Hz": 1.0, "1/ms": 1000.0, "ms": 0.001, "1": 1.0}

#: the programs this process has used, by build directory
_PROGRAMS: dict[str, Program] = {}
_STATS: dict[str, float] = {"builds": 0, "build_s": 0.0, "run_s": 0.0, "simulation_s": 0.0}


def stats() -> dict[str, Any]:
    """This process's ``builds`` and ``cached_structures``, and the seconds spent building (``build_s``), in
    runs of programs (``run_s``) and in the programs' main loops themselves (``simulation_s``)."""
    return {"builds": int(_STATS["builds"]), "cached_structures": len(_PROGRAMS), "build_s": _STATS["build_s"],
            "run_s": _STATS["run_s"], "simulation_s": _STATS["simulation_s"]}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which SLURM and taskset restrict)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_root(cfg: Config) -> Path:
    """``spiking.build_dir``, or ``$XDG_CACHE_HOME/neurofa/builds`` (``~/.cache/neurofa/builds``)."""
    if cfg.spiking.build_dir:
        return Path(cfg.spiking.build_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurofa" / "builds"


@dataclass(frozen=True)
class MonitorFiles:
    """Where a program leaves one monitor: ``role`` ("weights", "layer", "test" or "spikes"), its source object,
    the result file of its times (float64 s; for spikes also of its cell indices, int32) and, for state monitors,
    the file and dtype of each recorded variable with the number of recorded cells or synapses (the files are
    (samples × recorded) in C order)."""

    role: str
    source: str
    times: str
    indices: str = ""
    variables: tuple[tuple[str, str, str], ...] = ()
    n_recorded: int = 0


@dataclass(frozen=True)
class Program:
    """The manifest of one compiled program.

    ``variables`` maps every settable ``"object.variable"`` (neurofa's names) to its Brian2 name and dtype,
    ``timed`` every TimedArray to its Brian2 name and dtype (float64 in either precision), ``state`` every state
    variable to its result file, ``monitors`` the monitors' files.
    """

    key: str
    variables: dict[str, tuple[str, str]]
    timed: dict[str, tuple[str, str]]
    state: dict[str, str]
    monitors: tuple[MonitorFiles, ...]

    def save(self, directory: Path) -> None:
        atomic_write_text(directory / MANIFEST, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, directory: Path, key: str) -> Program | None:
        """The manifest in ``directory`` if it describes the build ``key`` and the program is there, else None."""
        path = directory / MANIFEST
        if not (path.is_file() and (directory / "main").is_file()):
            return None
        try:
            data = json.loads(path.read_text())
        except ValueError:  # a manifest cut short: build again
            return None
        if data.get("key") != key:
            return None
        return cls(data["key"], {k: (v[0], v[1]) for k, v in data["variables"].items()},
                   {k: (v[0], v[1]) for k, v in data["timed"].items()},
                   data["state"], tuple(MonitorFiles(**{**m, "variables": tuple(map(tuple, m["variables"]))})
                                        for m in data["monitors"]))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (processes that build the same structure wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def program_for(cfg: Config, structure: Structure, values: RunValues) -> tuple[Program, Path]:
    """The program of ``structure``: from this process's cache, from a finished build on disk, or built now
    (:func:`neurofa.spiking.device.build`, which imports Brian2)."""
    key = structure.key
    directory = (build_root(cfg) / key).absolute()  # the program runs in its directory
    if str(directory) in _PROGRAMS:
        return _PROGRAMS[str(directory)], directory
    program = Program.load(directory, key)
    if program is None:
        with _locked(Path(str(directory) + ".lock")):
            program = Program.load(directory, key)
            if program is None:
                start = time.perf_counter()
                device = importlib.import_module("neurofa.spiking.device")
                program = device.build(structure, values, directory)
                program.save(directory)
                _STATS["builds"] += 1
                _STATS["build_s"] += time.perf_counter() - start
    _PROGRAMS[str(directory)] = program
    return program, directory


def run_arguments(structure: Structure, values: RunValues, state: dict[str, np.ndarray] | None = None,
                  progress: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> dict[str, Any]:
    """Every per-run value in SI units, keyed ``"object.variable"`` or ``"timed:<name>"``: shared constants,
    initial weights (and input phases), the seed, the presentation arrays, and the progress switches (``on``,
    the run's start and the whole run's end in ms); ``state`` (a previous chunk's end) replaces the initial
    values it names."""
    args: dict[str, Any] = {f"{obj}.{var}": value * _SI[unit] for (obj, var), (value, unit) in values.shared.items()}
    initial: dict[str, Any] = {f"{obj}.w": w for obj, w in values.weights.items()}
    if structure.regular_input:
        initial["P0.phase"] = values.input_phase
    for name, array in {**initial, **(state or {})}.items():
        args[name] = np.asarray(array, dtype=float)
    args["P0.rng_seed"] = int(values.seed)  # an integer: a float32 seed would merge seeds above 2²⁴
    on, offset_ms, total_ms = progress
    args.update({"progress.progress_on": on, "progress.progress_offset": offset_ms * 1e-3,
                 "progress.progress_total": total_ms * 1e-3})
    args.update({f"timed:{name}": a for name, a in values.timed(structure).items()})
    return args


def _command_line(program: Program, results: Path, args: dict[str, Any]) -> list[str]:
    """``name=value`` arguments as Brian2's programs read them: one value on the command line, arrays as files
    (here in the run's own results directory, which is removed after the run)."""
    out = []
    for name, value in args.items():
        if name.startswith("timed:"):
            timed_name, dtype = program.timed[name[6:]]
            brian_name = timed_name + ".values"
        else:
            brian_name, dtype = program.variables[name]
        array = np.asarray(value, dtype=dtype)
        if array.size == 1:
            out.append(f"{brian_name}={array.item()!r}")
            continue
        path = results / f"arg_{brian_name.replace('.', '_')}.dat"
        array.tofile(path)
        out.append(f"{brian_name}={path}")
    return out


def sample_times(seconds: np.ndarray, dt: float) -> np.ndarray:
    """A monitor's sample times (s) in ms as exact multiples of dt (so chunks and whole runs agree bitwise)."""
    return np.rint(seconds / 0.001 / dt) * dt


def spike_steps(seconds: np.ndarray, dt: float) -> np.ndarray:
    """Spike times (s) as time steps of dt ms."""
    return np.rint(seconds / 0.001 / dt).astype(np.int64)


def record_grid(s: Structure) -> np.ndarray:
    """The record times of a run that records nothing (only the grid is needed: a chunk's end is the next's
    start)."""
    return (np.arange(0.0, s.chunk_pres * s.t_pres - s.dt / 2, s.record_interval) if s.chunk_pres
            else np.arange(0.0, s.train_time + s.dt / 2, s.record_interval))


def _read(results: Path, program: Program, structure: Structure) -> RunOutput:
    """The monitor data a program left in ``results`` (as :func:`neurofa.spiking.device.runtime_run` reads it from
    Brian2's monitors in runtime mode)."""
    s = structure

    def array(file: str, dtype: str) -> np.ndarray:
        return np.fromfile(results / file, dtype=dtype)

    weights, layers, test = {}, {}, {}
    times = test_times = None
    spikes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for mon in program.monitors:
        if mon.role == "spikes":
            spikes[mon.source] = (spike_steps(array(mon.times, "float64"), s.dt), array(mon.indices, "int32"))
            continue
        data = {var: array(file, dtype).reshape(-1, mon.n_recorded) for var, file, dtype in mon.variables}
        at = sample_times(array(mon.times, "float64"), s.dt)
        if mon.role == "test":
            test, test_times = data, at
        elif mon.role == "weights":
            weights[mon.source] = data["w"]
            times = at
        else:
            layers.update({(mon.source, var): v for var, v in data.items()})
            times = at
    if times is None:
        times = record_grid(s)
    return RunOutput(times, weights, layers, test_times, test, 0.0, spikes)


def run_program(cfg: Config, program: Program, directory: Path, structure: Structure, values: RunValues,
                state: ChunkState | None = None, offset_ms: float = 0.0) -> tuple[RunOutput, ChunkState]:
    """One run of a built program: from its initial values, or continuing ``state`` (a chunk's end); returns the
    monitor data and the state at the end."""
    results = Path(tempfile.mkdtemp(prefix="results_", dir=directory))
    start = time.perf_counter()
    try:
        args = run_arguments(structure, values, state.variables if state is not None else None,
                             (float(cfg.spiking.report), offset_ms, structure.end_time))
        if state is not None:
            state.rng.tofile(results / "neurofa_rng_in.bin")
        command = [str(directory / "main"), "--results_dir", f"{results}/", *_command_line(program, results, args)]
        # Brian2 runs its programs with LD_BIND_NOW=1; only the child's environment gets it
        env = {**os.environ, "LD_BIND_NOW": "1"}
        with open(results / "stdout.txt", "w") as stdout:
            done = subprocess.run(command, cwd=directory, env=env, stdout=None if cfg.spiking.report else stdout,
                                  stderr=subprocess.PIPE, text=True)
        # the program reports a run argument it cannot read on stderr and goes on with the built-in values
        if done.returncode or "Error" in done.stderr:
            raise RuntimeError(f"the spiking program failed (exit {done.returncode}; project directory "
                               f"{directory}):\n{done.stderr[-2000:]}{(results / 'stdout.txt').read_text()[-2000:]}")
        out = _read(results, program, structure)
        final = {name: np.fromfile(results / file, dtype=program.variables[name][1])
                 for name, file in program.state.items()}
        rng = np.fromfile(results / "neurofa_rng_out.bin", dtype=np.uint8)
        _STATS["simulation_s"] += float((results / "last_run_info.txt").read_text().split()[0])
    finally:
        shutil.rmtree(results, ignore_errors=True)  # the run arguments' files with the results
    out.wall_s = time.perf_counter() - start
    _STATS["run_s"] += out.wall_s
    return out, ChunkState((state.next_chunk if state else 0) + 1, final, rng)


def _chunked_run(cfg: Config, structure: Structure, values: RunValues, store: SeedStore | None) -> RunOutput:
    """The run in chunks (:mod:`neurofa.spiking.chunks`), from the last finished chunk in ``store`` if any."""
    s = structure
    program, directory = program_for(cfg, s, values.chunk(s, 0))
    state = store.state() if store is not None else None
    first = state.next_chunk if state is not None else 0
    outputs = [store.output(c) for c in range(first)] if store is not None else []
    for c in range(first, s.n_chunks):
        out, state = run_program(cfg, program, directory, s, values.chunk(s, c), state,
                                 offset_ms=c * s.chunk_pres * s.t_pres)
        if store is not None:
            store.save(c, out, state)
        outputs.append(out)
    assert state is not None
    return merge(s, outputs, state.variables)


def run_seed(cfg: Config, structure: Structure, values: RunValues, checkpoint: Checkpoint | None = None) -> RunOutput:
    """Simulate one run on ``cfg.spiking.device``; a structure cut into chunks runs chunk by chunk and, with a
    ``checkpoint``, continues from the last chunk it finished."""
    if cfg.spiking.device != "cpp_standalone":
        device = importlib.import_module("neurofa.spiking.device")
        out: RunOutput = device.runtime_run(cfg, structure, values)
        return out
    cores = available_cores()
    if structure.threads > cores:
        raise ConfigError(f"spiking.threads = {structure.threads} is too many for this process: {cores} cores are "
                          f"available to it (os.sched_getaffinity); allowed: 1 to {cores} (an oversubscribed threaded "
                          "program is many times slower)")
    if structure.chunk_pres:
        return _chunked_run(cfg, structure, values, SeedStore(checkpoint, values.seed) if checkpoint else None)
    program, directory = program_for(cfg, structure, values)
    return run_program(cfg, program, directory, structure, values)[0]
