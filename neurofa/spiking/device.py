"""Running spiking microcircuits on Brian2's devices: ``runtime`` and ``cpp_standalone`` with one build per structure.

Standalone mode compiles one C++ program per :class:`~neurofa.spiking.network.Structure` (in its own directory
under ``spiking.build_dir`` or ``~/.cache/neurofa/builds/<hash>``), keeps it for the rest of the process and runs
every seed and every sweepable parameter through ``device.run(run_args=...)``: initial weights, the presentation
sequence (TimedArrays), shared constants (conductances, ν_max, τ_s, τ_ξ, τ_HP, σ, α, learning rates, τ_LO) and the
random seed. The seed is a shared variable ``rng_seed`` of the input group; code inserted after the run arguments
reseeds the generator with it, so the same seed gives the same spikes and different seeds different ones. Seeds of
one call run one after another (a one-core program each; run several processes for parallelism, e.g. through
:mod:`neurofa.sweep`). :data:`BUILD_COUNT` / :func:`stats` count the builds of this process.

Progress: Brian2's ``report=`` makes the standalone main loop read the process CPU clock once per object and time
step (``std::clock``, a system call on virtual machines without a vDSO CPU clock: 5.8× slower measured on the Bars
network). Standalone builds therefore print progress from a tiny group instead: every 1 % of the simulated time a
``run_regularly`` calls :data:`PROGRESS_CPP`, which, if the run argument ``progress_on`` (``spiking.report``) is 1
and 10 s of wall time have passed since its last line (and always at the end), prints the simulated time, the
elapsed wall time (steady clock) and an estimate of the remaining time.

Only parameters that change the generated code need a new build: layer sizes, transfer function, ``bp`` vs
``fa``/``pal`` (FA is the PAL program with η_bw = σ = 0), which projections learn at all (a learning rate of zero
vs. non-zero), τ_LO on/off, dt, presentation time and count, record interval, ``record_detail``,
``spiking.input_spikes`` and ``spiking.post_signal``. Everything in
:data:`SWEEPABLE` goes through ``run_args``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurofa.circuit import InitialWeights, presentation_order
from neurofa.config import Config, layer_values
from neurofa.spiking.params import EffectiveParameters
from neurofa.tasks import TaskData

__all__ = [
    "SWEEPABLE",
    "BUILD_COUNT",
    "stats",
    "plan_structure",
    "plan_values",
    "RunOutput",
    "run_seed",
    "plan_and_run",
    "clear_builds",
]

#: Configuration keys whose change reuses a standalone build (learning rates among non-zero values).
SWEEPABLE = (
    "plasticity.feedback",  # between fa and pal
    "plasticity.eta_fw",
    "plasticity.eta_ip",
    "plasticity.eta_pi",
    "plasticity.eta_bw",
    "plasticity.alpha",
    "plasticity.tau_lo",
    "plasticity.eta_decay",
    "spiking.sigma",
    "spiking.tau_xi",
    "spiking.tau_hp",
    "spiking.nu_max",
    "spiking.tau_s",
    "conductances.g_l",
    "conductances.g_bas",
    "conductances.g_api",
    "conductances.g_den",
    "conductances.g_nI",
    "conductances.g_ntgt",
    "network.init_forward",
    "network.init_feedback",
    "network.init_forward_range",
    "network.init_feedback_range",
    "task.data_seed",
    "task.input_low",
    "task.input_high",
    "task.teacher_weights",
    "task.teacher_scale",
)

BUILD_COUNT = 0
_BUILDS: dict[str, Any] = {}
_TIMINGS: dict[str, float] = {"build_s": 0.0, "run_s": 0.0}


def stats() -> dict[str, Any]:
    """Builds and time spent in this process: ``builds``, ``cached_structures``, ``build_s``, ``run_s``."""
    return {"builds": BUILD_COUNT, "cached_structures": len(_BUILDS), **_TIMINGS}


def clear_builds() -> None:
    """Forget the cached standalone builds of this process (their directories stay on disk)."""
    _BUILDS.clear()


# ------------------------------------------------------------------------------------------------------------
# planning: structure and per-run values (no Brian2 objects yet)


def plan_structure(cfg: Config, eff: EffectiveParameters, data: TaskData) -> Any:
    """The :class:`~neurofa.spiking.network.Structure` of ``cfg``: what changes the generated code."""
    from neurofa.spiking.network import Structure

    p = cfg.plasticity
    sizes = tuple(int(n) for n in cfg.network.layers)
    n_w = len(sizes) - 1
    fw = tuple(e > 0 for e in eff.eta_fw)
    ip = tuple(e > 0 for e in eff.eta_ip)
    pi = tuple(e > 0 for e in eff.eta_pi)
    if p.feedback == "bp":
        bw = fw[1:]
    else:  # fa and pal share the code: FA runs it with η_bw = σ = 0
        bw = tuple(p.learn_feedback and e > 0 for e in layer_values(p.eta_bw, n_w - 1))
    has_target = data.y_train is not None
    n_test = 0 if data.x_test is None or not has_target else int(len(data.x_test))
    return Structure(
        sizes=sizes, activation=cfg.network.activation, mode="bp" if p.feedback == "bp" else "fa_pal",
        target=has_target, fw_plastic=fw, ip_plastic=ip, pi_plastic=pi, bw_plastic=bw,
        low_pass=eff.tau_lo > 0 and any(fw + ip), dt=eff.dt, t_pres=eff.t_pres,
        n_train_pres=int(round(eff.duration / eff.t_pres)), n_test_pres=n_test,
        record_interval=eff.record_interval, detail=bool(cfg.simulation.record_detail),
        regular_input=cfg.spiking.input_spikes == "regular", rate_estimator=cfg.spiking.post_signal == "rate",
        target_trace=has_target and cfg.simulation.filter_target, expected_trace=cfg.spiking.pre_signal == "rate",
    )


def plan_values(cfg: Config, eff: EffectiveParameters, structure: Any, data: TaskData, weights: InitialWeights,
                index: int, seed: int) -> Any:
    """Per-run values of seed ``seed`` (``index`` into the batch of ``weights``)."""
    from neurofa.spiking.network import RunValues, shared_values

    s = structure
    N = s.n_layers
    order = presentation_order(len(data.x_train), s.n_train_pres, seed)
    stim = data.x_train[order]
    target = data.y_train[order] if s.target else None
    learn = np.ones(s.n_train_pres)
    nudge = np.ones(s.n_train_pres)
    if s.n_test_pres:
        stim = np.concatenate([stim, data.x_test])
        target = np.concatenate([target, np.zeros((s.n_test_pres, s.sizes[-1]))])
        learn = np.concatenate([learn, np.zeros(s.n_test_pres)])
        nudge = np.concatenate([nudge, np.zeros(s.n_test_pres)])
    w: dict[str, np.ndarray] = {}
    for ell in range(1, N + 1):
        w[f"W{ell}"] = weights.W[ell - 1][index].ravel()
    for ell in range(1, N):  # every matrix is (post × pre), so row-major is the synapse order
        w[f"B{ell}"] = weights.B[ell - 1][index].ravel()
        w[f"BPI{ell}"] = weights.B_PI[ell - 1][index].ravel()
        w[f"WIP{ell}"] = weights.W_IP[ell - 1][index].ravel()
    return RunValues(
        shared=shared_values(s, cfg.conductances, eff), weights=w, stim=np.clip(stim, 0.0, None), target=target,
        gate_learn=learn, gate_nudge=nudge, seed=int(seed),
        input_phase=np.random.default_rng([int(seed), 1]).uniform(size=s.sizes[0]) if s.regular_input else None,
    )


# ------------------------------------------------------------------------------------------------------------
# execution


@dataclass
class RunOutput:
    """Monitor data of one run (times in ms): weight snapshots ``weights[name]`` (n_rec, n_syn), layer
    accumulators ``layers[(group, var)]`` (n_rec, n_cells), test samples ``test[var]`` (n_half_windows, n_out)."""

    record_times: np.ndarray
    weights: dict[str, np.ndarray]
    layers: dict[tuple[str, str], np.ndarray]
    test_times: np.ndarray | None
    test: dict[str, np.ndarray]
    wall_s: float


def _structure_key(structure: Any) -> str:
    text = json.dumps(asdict(structure), sort_keys=True)
    import brian2

    return hashlib.sha1(f"{text}|brian2 {brian2.__version__}".encode()).hexdigest()[:16]


def _build_root(cfg: Config) -> Path:
    if cfg.spiking.build_dir:
        return Path(cfg.spiking.build_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurofa" / "builds"


def _collect(circuit: Any) -> RunOutput:
    s = circuit.structure
    weights = {name: np.asarray(mon.w).T.copy() for name, mon in circuit.weight_monitors.items()}
    times = None
    layers: dict[tuple[str, str], np.ndarray] = {}
    for name, mon in circuit.layer_monitors.items():
        for var in mon.record_variables:
            layers[(name, var)] = np.asarray(getattr(mon, var)).T.copy()
        times = np.asarray(mon.t / _ms())
    for mon in circuit.weight_monitors.values():
        times = np.asarray(mon.t / _ms())
    if times is None:  # nothing plastic or recorded: only the grid is needed
        times = np.arange(0.0, s.train_time + s.dt / 2, s.record_interval)
    test: dict[str, np.ndarray] = {}
    test_times = None
    if circuit.test_monitor is not None:
        test = {var: np.asarray(getattr(circuit.test_monitor, var)).T.copy()
                for var in circuit.test_monitor.record_variables}
        test_times = np.asarray(circuit.test_monitor.t / _ms())
    return RunOutput(times, weights, layers, test_times, test, 0.0)


#: C++ implementation of ``neurofa_progress(t, on, t_end, period)``: a line of progress on stdout (``on`` > 0) at
#: most every 10 s of wall time, and always at the last call (``t + period > t_end``).
PROGRESS_CPP = r"""
double neurofa_progress(double t, double on, double t_end, double period)
{
    static const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    static double last = 0.0;
    if (on <= 0.0 || t <= 0.0)
        return 0.0;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (wall - last < 10.0 && t + period <= t_end)
        return 0.0;
    last = wall;
    std::printf("%.1f s (%.0f%%) simulated in %.0f s, estimated %.0f s remaining.\n",
                t, 100.0 * t / t_end, wall, wall * (t_end - t) / t);
    std::fflush(stdout);
    return 0.0;
}
"""


def _progress_group(run_time_ms: float, dt_ms: float, prefix: str) -> Any:
    """A one-cell group whose ``run_regularly`` reports progress every 1 % of ``run_time_ms`` (standalone)."""
    from brian2 import Function, NeuronGroup, ms, second

    func = Function(None, arg_units=[second, 1, second, second], return_unit=1, stateless=False)  # C++ only
    func.implementations.add_implementation("cpp", PROGRESS_CPP, name="neurofa_progress",
                                            compiler_kwds={"headers": ["<chrono>", "<cstdio>"]})
    period = max(1, round(run_time_ms / 100 / dt_ms)) * dt_ms
    group = NeuronGroup(1, "progress_on : 1 (shared, constant)\nprogress_out : 1 (shared)",
                        namespace={"neurofa_progress": func, "t_end": run_time_ms * ms, "period": period * ms},
                        name=f"{prefix}_progress")
    group.run_regularly("progress_out = neurofa_progress(t, progress_on, t_end, period)", dt=period * ms)
    return group


def _ms() -> Any:
    from brian2 import ms

    return ms


def _runtime_run(cfg: Config, structure: Any, values: Any) -> RunOutput:
    """Build and run in Brian2's runtime mode (code generation target from Brian's preferences)."""
    import brian2
    from brian2 import ms
    from brian2 import seed as brian_seed

    from neurofa.spiking.network import build_circuit

    global BUILD_COUNT
    brian2.set_device("runtime")
    brian_seed(int(values.seed))
    start = time.perf_counter()
    circuit = build_circuit(structure, values, prefix=f"nfrt{BUILD_COUNT}")
    circuit.network.run(structure.run_time * ms, report="text" if cfg.spiking.report else None)
    out = _collect(circuit)
    out.wall_s = time.perf_counter() - start
    _TIMINGS["run_s"] += out.wall_s
    return out


@dataclass
class _Build:
    device: Any
    circuit: Any
    directory: Path


def _standalone_build(cfg: Config, structure: Any, values: Any) -> _Build:
    """Generate and compile the program of ``structure`` once per process (cached by its hash)."""
    global BUILD_COUNT
    key = _structure_key(structure)
    if key in _BUILDS:
        return _BUILDS[key]
    import brian2
    from brian2 import ms, prefs
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
    from brian2.utils.filelock import FileLock

    from neurofa.spiking.network import build_circuit

    directory = _build_root(cfg) / key
    directory.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dev = CPPStandaloneDevice()
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
        circuit.network.run(structure.run_time * ms)
        with FileLock(str(directory) + ".lock"):
            dev.build(directory=str(directory), compile=True, run=False, with_output=False)
    finally:
        from brian2.devices.device import reset_device

        reset_device()
    BUILD_COUNT += 1
    _TIMINGS["build_s"] += time.perf_counter() - start
    build = _Build(dev, circuit, directory)
    _BUILDS[key] = build
    return build


def _standalone_run(cfg: Config, structure: Any, values: Any) -> RunOutput:
    build = _standalone_build(cfg, structure, values)
    results = tempfile.mkdtemp(prefix="results_", dir=build.directory)
    start = time.perf_counter()
    try:
        run_args = build.circuit.run_args(values)
        run_args[build.circuit.objects["progress"].progress_on] = float(cfg.spiking.report)
        build.device.run(directory=str(build.directory), results_directory=os.path.basename(results),
                         with_output=bool(cfg.spiking.report), run_args=run_args)
        out = _collect(build.circuit)
    finally:
        shutil.rmtree(results, ignore_errors=True)
    out.wall_s = time.perf_counter() - start
    _TIMINGS["run_s"] += out.wall_s
    return out


def run_seed(cfg: Config, structure: Any, values: Any) -> RunOutput:
    """Simulate one run on ``cfg.spiking.device``."""
    if cfg.spiking.device == "cpp_standalone":
        return _standalone_run(cfg, structure, values)
    return _runtime_run(cfg, structure, values)


def plan_and_run(cfg: Config, eff: EffectiveParameters, data: TaskData, weights: InitialWeights, index: int,
                 seed: int) -> tuple[Any, Any, RunOutput]:
    """Structure, per-run values and monitor output of seed ``seed`` (``index`` into the batch of ``weights``)."""
    structure = plan_structure(cfg, eff, data)
    values = plan_values(cfg, eff, structure, data, weights, index, seed)
    return structure, values, run_seed(cfg, structure, values)
