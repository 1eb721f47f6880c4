r"""The spiking interpreter of a model description: Brian2 groups, synapses and monitors as plain data (no Brian2).

:func:`plan_structure` turns a :class:`~neurofa.model.Model` (compiled from the spiking configuration's exact mean
field, :func:`neurofa.spiking.params.mean_field_config`) into a :class:`Structure`: every ``NeuronGroup`` with its
equations (:mod:`neurofa.spiking.equations`), every ``Synapses`` object with the code its rule writes
(:meth:`neurofa.model.rule.Rule.synapse`), every monitor, and the timing. The structure is everything that changes
the generated code; its :attr:`Structure.key` names the standalone build. :func:`plan_values` gives the values of
one run (shared constants, initial weights, input stream, seed), which reach a cached build through ``run_args``.

Synapse order: each projection is connected row-major in its matrix (post-major), so synapse k of W_ℓ is
W_ℓ[k // n_{ℓ−1}, k % n_{ℓ−1}] and the weight vector is the flattened matrix of :mod:`neurofa.circuit`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from neurofa.circuit import InitialWeights, circuit_task, presentation_order
from neurofa.config import Config
from neurofa.model import Model, Projection, compile_model
from neurofa.model.rule import Estimators
from neurofa.spikes import merge_windows, window_bounds
from neurofa.spiking import equations as eq
from neurofa.spiking.params import EffectiveParameters, effective_parameters, mean_field_config
from neurofa.tasks import TaskData

__all__ = ["GroupSpec", "SynapseSpec", "MonitorSpec", "Structure", "RunValues", "SpikingPlan", "plan_structure",
           "plan_values", "structure_key", "spike_groups", "spike_window", "recorded_windows",
           "SUMMED_TARGET"]

#: the dendritic potential each projection kind writes (a summed variable of its postsynaptic group)
SUMMED_TARGET = {"W": "v_bas", "W_IP": "v_den", "B": "v_api_B", "B_PI": "v_api_I"}


#: the modules that write Brian2 objects, generated code or the manifest: their source is part of every build key,
#: so a build on disk always belongs to the code that would generate and read it now
_CODE_SOURCES = ("network.py", "device.py", "kernels.py", "schedule.py", "program.py")
_CODE_HASH = hashlib.sha1(b"".join((Path(__file__).parent / name).read_bytes()
                                   for name in _CODE_SOURCES)).hexdigest()[:12]


@dataclass(frozen=True)
class GroupSpec:
    """A ``NeuronGroup``: size, equations, threshold and reset, schedule order, linked variables (variable, source
    group, source variable) set after every group exists, custom events (name, condition), code run every step
    before the thresholds, and whether each unit is a population of ``pop_size`` cells (``network.population``)."""

    name: str
    size: int
    equations: str
    threshold: str
    reset: str
    order: int
    links: tuple[tuple[str, str, str], ...] = ()
    events: tuple[tuple[str, str], ...] = ()
    before_thresholds: str = ""
    population: bool = False


@dataclass(frozen=True)
class SynapseSpec:
    """A ``Synapses`` object of one projection, all-to-all in row-major order."""

    name: str
    pre: str
    post: str
    model: str
    on_pre: str | None
    on_post: str | None
    plastic: bool
    order: int = 0


@dataclass(frozen=True)
class MonitorSpec:
    """A ``StateMonitor`` of ``variables`` of every cell or synapse of ``source``, sampled every ``dt`` ms at the
    start of a time step (Brian2's default): the sample at t is the state after exactly t/dt steps, so an
    accumulator's sample is its integral over [0, t) and a run cut into chunks at sample times gives the same
    samples. With ``event``, a ``SpikeMonitor`` of that event of ``source``."""

    name: str
    source: str
    variables: tuple[str, ...]
    dt: float
    event: str = ""


@dataclass(frozen=True)
class Structure:
    """What fixes the generated code: groups, synapses, monitors, the timed inputs and the timing (ms)."""

    sizes: tuple[int, ...]
    groups: tuple[GroupSpec, ...]
    synapses: tuple[SynapseSpec, ...]
    monitors: tuple[MonitorSpec, ...]
    target: bool
    regular_input: bool
    dt: float
    t_pres: float
    n_train_pres: int
    n_test_pres: int
    record_interval: float
    detail: bool
    #: groups whose spikes are recorded, and whether a per-presentation window gates the recording
    spike_groups: tuple[str, ...] = ()
    spike_windows: bool = False
    #: presentations per chunk of a run cut into chunks for checkpoints (0: one run)
    chunk_pres: int = 0
    #: threads of the standalone program (1: one thread, no pool) and its floating-point type ("double", "single")
    threads: int = 1
    precision: str = "double"

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def train_time(self) -> float:
        return self.n_train_pres * self.t_pres

    @property
    def end_time(self) -> float:
        """The end of the last presentation (training and test), ms."""
        return (self.n_train_pres + self.n_test_pres) * self.t_pres

    @property
    def run_time(self) -> float:
        """The simulated time of one program run: the whole run and one extra step so the monitors sample its
        end, or one chunk (its end state is the next chunk's first sample)."""
        return self.chunk_pres * self.t_pres if self.chunk_pres else self.end_time + self.dt

    @property
    def n_chunks(self) -> int:
        n_pres = self.n_train_pres + self.n_test_pres
        return -(-n_pres // self.chunk_pres) if self.chunk_pres else 1

    @property
    def simulated_time(self) -> float:
        """The spiking time one seed's program simulates, ms: every chunk of training *and* test presentations
        (plus the final step). Speeds (× real time, synapse updates/s) divide by this, not by the training time."""
        return self.n_chunks * self.run_time

    @property
    def key(self) -> str:
        """A 16-hex-digit hash of the structure and the Brian2 version: the name of its standalone build."""
        text = json.dumps(asdict(self), sort_keys=True)
        salt = f"brian2 {version('brian2')}|{_CODE_HASH}"
        return hashlib.sha1(f"{text}|{salt}".encode()).hexdigest()[:16]

    def synapse(self, name: str) -> SynapseSpec | None:
        return next((s for s in self.synapses if s.name == name), None)

    @property
    def timed_inputs(self) -> tuple[str, ...]:
        """The TimedArrays the equations read: the stimulus; the learning gate if a group computes λ(t) (a network
        without plastic weights has none); the target and the nudging gate with targets; the spike window."""
        names = ["stim"]
        if any("gate_learn(" in g.equations for g in self.groups):
            names.append("gate_learn")
        if self.target:
            names += ["target", "gate_nudge"]
        if self.spike_windows:
            names.append("spike_window")
        return tuple(names)


@dataclass
class RunValues:
    """Per-run data: shared constants ``shared[(object, variable)] = (value, unit)`` (unit "Hz", "1/ms", "ms" or
    "1"), initial weights ``weights[object]`` (flattened row-major), the presentation arrays and the seed."""

    shared: dict[tuple[str, str], tuple[float, str]]
    weights: dict[str, np.ndarray]
    stim: np.ndarray  # (n_pres, n_in) input values in [0, 1]
    target: np.ndarray | None  # (n_pres, n_out) target potentials
    gate_learn: np.ndarray  # (n_pres,)
    gate_nudge: np.ndarray  # (n_pres,)
    seed: int
    input_phase: np.ndarray | None = None  # (n_in,) initial phases of regular input cells
    spike_window: np.ndarray | None = None  # (n_pres,) 1 where spikes are recorded
    extra: dict[str, Any] = field(default_factory=dict)

    def timed(self, structure: Structure) -> dict[str, np.ndarray]:
        """The presentation arrays of ``structure``'s TimedArrays (:attr:`Structure.timed_inputs`), by name."""
        arrays = {"stim": self.stim, "gate_learn": self.gate_learn, "target": self.target,
                  "gate_nudge": self.gate_nudge, "spike_window": self.spike_window}
        out = {name: arrays[name] for name in structure.timed_inputs}
        missing = [name for name, a in out.items() if a is None]
        if missing:
            raise ValueError(f"the run values lack the timed inputs {missing} that the structure reads")
        return {name: np.asarray(a, dtype=float) for name, a in out.items()}

    def chunk(self, structure: Structure, index: int) -> RunValues:
        """The values of chunk ``index`` of a chunked run: its presentations (the last chunk padded with silent
        presentations: no input, no target, no learning, no recording) and its first time step ``step_offset``."""
        s = structure
        if not s.chunk_pres:
            return self
        rows = slice(index * s.chunk_pres, (index + 1) * s.chunk_pres)

        def part(a: np.ndarray | None) -> np.ndarray | None:
            if a is None:
                return None
            piece = a[rows]
            pad = s.chunk_pres - len(piece)
            return np.concatenate([piece, np.zeros((pad, *piece.shape[1:]))]) if pad else piece

        offset = (float(index * s.chunk_pres * round(s.t_pres / s.dt)), "1")  # in time steps
        shared = {**self.shared, **{(g.name, "step_offset"): offset for g in s.groups
                                    if "step_offset" in g.equations}}
        stim, learn, nudge = part(self.stim), part(self.gate_learn), part(self.gate_nudge)
        assert stim is not None and learn is not None and nudge is not None
        return replace(self, shared=shared, stim=stim, target=part(self.target), gate_learn=learn, gate_nudge=nudge,
                       spike_window=part(self.spike_window))


def _estimators(cfg: Config) -> Estimators:
    return Estimators(post_spikes=cfg.spiking.post_signal == "spikes", pre_trace=cfg.spiking.pre_signal == "trace",
                      population=cfg.network.population > 1)


def _population(spec: GroupSpec, high_pass: bool) -> GroupSpec:
    """The group with every unit represented by ``pop_size`` cells: the number that fire is drawn before the
    thresholds, the unit's event is that at least one fired, its trace jumps by the fraction that fired
    (:func:`neurofa.spiking.equations.population_draw`)."""
    return replace(spec, equations=spec.equations + eq.population_equations(), threshold=eq.POPULATION_THRESHOLD,
                   reset=eq.population_reset(high_pass), before_thresholds=eq.population_draw(), population=True)


def _synapses(model: Model, cfg: Config) -> dict[str, tuple[Projection, Any]]:
    """Every projection's synapse code, in the creation order W_1 … W_N, then per hidden layer W^IP, B^PI, B."""
    estimators = _estimators(cfg)
    N = model.n_layers
    names = [f"W{ell}" for ell in range(1, N + 1)]
    for ell in range(1, N):
        names += [f"WIP{ell}", f"BPI{ell}", f"B{ell}"]
    out = {}
    for name in names:
        p = model.projection(name)
        code = p.rule.synapse(p, estimators, f"{SUMMED_TARGET[p.kind]}_post = w*x_pre : 1 (summed)\n")
        if code is not None:
            out[name] = (p, code)
    return out


def spike_groups(model: Model, cfg: Config) -> tuple[str, ...]:
    """The groups ``spiking.record_spikes`` names (input, hidden, interneuron, output or all)."""
    kinds = set(cfg.spiking.record_spikes)
    return tuple(p.name for p in model.populations if "all" in kinds or p.kind in kinds)


def _windowed(spec: GroupSpec, regular: bool) -> GroupSpec:
    """The group with a ``recorded`` event: its spikes inside the recording window. A Poisson cell draws its spike
    into ``spiked`` before the thresholds (in the same group order, so the random draws and the spikes are those
    of the unrecorded network), and both the threshold and the event read it."""
    window = "spike_window(t) > 0"
    if regular:
        return replace(spec, events=(("recorded", f"phase >= 1.0 and {window}"),))
    return replace(spec, equations=spec.equations + "spiked : 1\n", threshold="spiked > 0.5",
                   events=(("recorded", f"spiked > 0.5 and {window}"),),
                   before_thresholds="spiked = int(rand() < nu_max*rate*dt)")


_SYNAPTIC_NAME = re.compile(r"\b(\w+)_(pre|post)\b")


def _synaptic_reads(codes: dict[str, tuple[Projection, Any]]) -> dict[str, set[str]]:
    """Per group, the variables its synapses' code reads or writes (``name_pre``, ``name_post``)."""
    read: dict[str, set[str]] = {}
    for p, code in codes.values():
        for m in _SYNAPTIC_NAME.finditer(code.model + (code.on_pre or "") + (code.on_post or "")):
            read.setdefault((p.pre if m[2] == "pre" else p.post).name, set()).add(m[1])
    return read


def _read_outside(synaptic: dict[str, set[str]], groups: list[GroupSpec],
                  monitors: list[MonitorSpec]) -> dict[str, set[str]]:
    """Per group, the names that code outside its equations reads: its synapses, the links of other groups, the
    monitors, its own threshold, reset, events and pre-threshold code."""
    read: dict[str, set[str]] = {g.name: set(synaptic.get(g.name, ())) for g in groups}
    for g in groups:
        for variable, source, source_variable in g.links:
            read[g.name].add(variable)
            read[source].add(source_variable)
        read[g.name] |= eq.identifiers(" ".join([g.threshold, g.reset, g.before_thresholds,
                                                 *(condition for _, condition in g.events)]))
    for mon in monitors:
        if mon.source in read:
            read[mon.source] |= set(mon.variables)
    return read


def _groups(model: Model, cfg: Config, codes: dict[str, tuple[Projection, Any]], target: bool,
            monitors: list[MonitorSpec]) -> list[GroupSpec]:
    """The neuron groups P0 … PN, I1 … I_{N−1} with the traces and links their synapses read, and without the
    subexpressions that nothing reads (:func:`neurofa.spiking.equations.without_unused`)."""
    N, act, detail = model.n_layers, model.activation, cfg.simulation.record_detail
    regular = cfg.spiking.input_spikes == "regular"
    synaptic = _synaptic_reads(codes)
    expected = {name for name, read in synaptic.items() if "xr" in read}  # a rule reads the trace expectation x_r
    links: dict[str, list[tuple[str, str, str]]] = {}
    for p, code in codes.values():
        links.setdefault(p.pre.name, []).extend(code.pre_links)
    specs = [(f"P{ell}", eq.hidden_equations(act, detail), True, 0) for ell in range(1, N)]
    specs = [("P0", eq.input_equations(regular), False, 0)] + specs
    specs.append((f"P{N}", eq.output_equations(act, target, detail, target and cfg.simulation.filter_target), True, 0))
    specs += [(f"I{ell}", eq.interneuron_equations(act, detail), False, 1) for ell in range(1, N)]
    groups = []
    for name, eqs, high_pass, order in specs:
        if name in expected:
            eqs += eq.expected_trace()
        own = tuple(links.get(name, ()))
        eqs += "".join(eq.linked(var) for var, _, _ in own)
        if name.startswith("I"):  # the one-to-one nudging by the partner (declared in the interneuron equations)
            own += (("u_nudge", f"P{int(name[1:]) + 1}", "u_eff"),)
        is_input = name == "P0"
        spec = GroupSpec(name, model.population(name).size, eqs, eq.threshold(is_input and regular),
                         eq.reset(high_pass, is_input and regular), order, own)
        if cfg.spiking.record_spikes and cfg.spiking.record_spikes_windows:
            spec = _windowed(spec, is_input and regular)
        if cfg.network.population > 1 and not (is_input and regular):  # regular inputs are a deterministic code
            spec = _population(spec, high_pass)
        groups.append(spec)
    read = _read_outside(synaptic, groups, monitors)
    return [replace(g, equations=eq.without_unused(g.equations, read[g.name])) for g in groups]


def _monitors(model: Model, synapses: list[SynapseSpec], target: bool, detail: bool, record: float,
              t_pres: float) -> list[MonitorSpec]:
    N = model.n_layers
    out = [MonitorSpec(f"mon_{s.name}", s.name, ("w",), record) for s in synapses
           if s.plastic and s.name[0] in "WB" and not s.name.startswith(("WIP", "BPI"))]
    for ell in range(1, N + 1):
        hidden = ell < N
        variables = ["A_vapi2"] if hidden else (["A_loss"] if target else [])
        if detail:
            variables += ["n_spk", "A_vbas", "A_rate"] + (["A_vapi"] if hidden else [])
        if variables:
            out.append(MonitorSpec(f"mon_P{ell}", f"P{ell}", tuple(variables), record))
    if detail:
        out.append(MonitorSpec("mon_P0", "P0", ("n_spk",), record))
        out += [MonitorSpec(f"mon_I{ell}", f"I{ell}", ("n_spk", "A_rate"), record) for ell in range(1, N)]
    if target:  # per-presentation read-out (loss, test accuracy): samples every t_pres/2
        out.append(MonitorSpec("mon_test", f"P{N}", ("n_spk", "A_vhat"), t_pres / 2))
    return out


def _spike_monitors(groups: tuple[str, ...], windows: bool) -> list[MonitorSpec]:
    return [MonitorSpec(f"spikes_{g}", g, (), 0.0, event="recorded" if windows else "spike") for g in groups]


def plan_structure(model: Model, cfg: Config, eff: EffectiveParameters, data: TaskData) -> Structure:
    """The :class:`Structure` of ``model`` for the spiking configuration ``cfg`` and its task data."""
    target = data.y_train is not None
    n_test = 0 if data.x_test is None or not target else int(len(data.x_test))
    codes = _synapses(model, cfg)
    synapses = [SynapseSpec(name, p.pre.name, p.post.name, code.model, code.on_pre, code.on_post, code.plastic,
                            code.order) for name, (p, code) in codes.items()]
    detail = bool(cfg.simulation.record_detail)
    recorded = spike_groups(model, cfg)
    windows = bool(recorded and cfg.spiking.record_spikes_windows)
    monitors = _monitors(model, synapses, target, detail, eff.record_interval, eff.t_pres)
    n_train = int(round(eff.duration / eff.t_pres))
    return Structure(
        sizes=model.sizes, groups=tuple(_groups(model, cfg, codes, target, monitors)), synapses=tuple(synapses),
        monitors=tuple(monitors + _spike_monitors(recorded, windows)),
        target=target, regular_input=cfg.spiking.input_spikes == "regular", dt=eff.dt, t_pres=eff.t_pres,
        n_train_pres=n_train, n_test_pres=n_test,
        record_interval=eff.record_interval, detail=detail, spike_groups=recorded, spike_windows=windows,
        chunk_pres=chunk_presentations(eff, n_train + n_test, target),
        threads=cfg.spiking.threads, precision=cfg.spiking.precision,
    )


def chunk_presentations(eff: EffectiveParameters, n_pres: int, target: bool) -> int:
    """Presentations per chunk for ``eff.checkpoint_interval`` (0: no checkpoints, or one chunk would hold the
    whole run): the interval rounded up so that every chunk starts at a sample time of every monitor (a whole
    number of presentations, of record intervals and, with targets, of half presentations)."""
    if eff.checkpoint_interval <= 0:
        return 0
    pres = round(eff.t_pres / eff.dt)
    unit = math.lcm(pres, round(eff.record_interval / eff.dt), *([round(eff.t_pres / 2 / eff.dt)] if target else []))
    steps = -(-round(eff.checkpoint_interval / eff.dt) // unit) * unit
    chunk = steps // pres
    return chunk if chunk < n_pres else 0


def spike_window(windows: list[list[float]], n_pres: int, n_train_pres: int, t_pres: float) -> np.ndarray:
    """Per presentation 1 where it overlaps one of ``windows``, else 0. A window is [start, stop] in ms of the run
    (training from 0, then the test presentations); negative values and a stop of 0 count from the end of
    training, so [-10000, 0] is the last 10 s of learning; each window is widened to whole presentations."""
    end = n_train_pres * t_pres
    gate = np.zeros(n_pres)
    starts = np.arange(n_pres) * t_pres
    for window in windows:
        start, stop = window_bounds(window, end)
        gate[(starts + t_pres > start) & (starts < stop)] = 1.0
    return gate


def recorded_windows(structure: Structure, gate: np.ndarray | None) -> list[list[float]]:
    """The intervals [start, stop] (ms) in which spikes are recorded: the whole run without windows."""
    if gate is None:
        return [[0.0, structure.end_time]]
    t = structure.t_pres
    return merge_windows([[p * t, (p + 1) * t] for p in np.flatnonzero(gate)])


def _neuron_values(model: Model, eff: EffectiveParameters, target: bool) -> dict[tuple[str, str], tuple[float, str]]:
    """The shared constants of every group: rates, time constants, conductances, PAL's noise."""
    N, g = model.n_layers, model.conductances
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for ell in range(0, N + 1):
        out[(f"P{ell}", "nu_max")] = (eff.nu_max, "Hz")
        out[(f"P{ell}", "tau_s")] = (eff.tau_s, "ms")
    for ell in range(1, N + 1):
        out[(f"P{ell}", "g_l")] = (g.g_l, "1")
        out[(f"P{ell}", "g_bas")] = (g.g_bas, "1")
        out[(f"P{ell}", "tau_hp")] = (eff.tau_hp, "ms")
    anneal = (1.0 / eff.eta_decay if eff.eta_decay > 0 else 0.0, "1/ms")
    for name in [f"P{ell}" for ell in range(1, N + 1)] + [f"I{ell}" for ell in range(1, N)]:
        out[(name, "anneal_rate")] = anneal
        out[(name, "step_offset")] = (0.0, "1")
    for ell in range(1, N):
        out[(f"P{ell}", "g_api")] = (g.g_api, "1")
        out[(f"P{ell}", "tau_xi")] = (eff.tau_xi, "ms")
        out[(f"P{ell}", "sigma")] = (model.noise_sigma, "1")
        out[(f"I{ell}", "nu_max")] = (eff.nu_max, "Hz")
        out[(f"I{ell}", "tau_s")] = (eff.tau_s, "ms")
        out[(f"I{ell}", "g_l")] = (g.g_l, "1")
        out[(f"I{ell}", "g_den")] = (g.g_den, "1")
        out[(f"I{ell}", "g_nI")] = (g.g_nI, "1")
    if target:
        out[(f"P{N}", "g_ntgt")] = (g.g_ntgt, "1")
    return out


def _population_values(structure: Structure, cells: int) -> dict[tuple[str, str], tuple[float, str]]:
    """``pop_size`` of every group whose units are populations: a run argument, so one build serves every N > 1."""
    return {(g.name, "pop_size"): (float(cells), "1") for g in structure.groups if g.population}


def plan_values(model: Model, cfg: Config, eff: EffectiveParameters, structure: Structure, data: TaskData,
                weights: InitialWeights, index: int, seed: int) -> RunValues:
    """Per-run values of seed ``seed`` (``index`` into the batch of ``weights``)."""
    s = structure
    order = presentation_order(len(data.x_train), s.n_train_pres, seed)
    stim = data.x_train[order]
    target = data.y_train[order] if data.y_train is not None and s.target else None
    learn = np.ones(s.n_train_pres)
    nudge = np.ones(s.n_train_pres)
    if s.n_test_pres and target is not None and data.x_test is not None:
        stim = np.concatenate([stim, data.x_test])
        target = np.concatenate([target, np.zeros((s.n_test_pres, s.sizes[-1]))])
        learn = np.concatenate([learn, np.zeros(s.n_test_pres)])
        nudge = np.concatenate([nudge, np.zeros(s.n_test_pres)])
    shared = _neuron_values(model, eff, s.target)
    shared.update(_population_values(s, model.cells_per_unit))
    matrices = {"W": weights.W, "B": weights.B, "B_PI": weights.B_PI, "W_IP": weights.W_IP}
    w: dict[str, np.ndarray] = {}
    for name, (p, code) in _synapses(model, cfg).items():
        # every matrix is (post × pre), so row-major is the synapse order
        w[name] = matrices[p.kind][p.layer - 1][index].ravel()
        shared.update({(name, var): (value, unit) for var, value, unit in code.values})
    phase = np.random.default_rng([int(seed), 1]).uniform(size=s.sizes[0]) if s.regular_input else None
    window = (spike_window(cfg.spiking.record_spikes_windows, len(learn), s.n_train_pres, s.t_pres)
              if s.spike_windows else None)
    return RunValues(shared=shared, weights=w, stim=np.clip(stim, 0.0, None), target=target, gate_learn=learn,
                     gate_nudge=nudge, seed=int(seed), input_phase=phase, spike_window=window)


@dataclass(frozen=True)
class SpikingPlan:
    """Everything a spiking run of ``cfg`` is planned from: its exact mean field (:func:`mean_field_config`), the
    model description compiled from it, and the spiking timing."""

    cfg: Config
    mean_field: Config
    model: Model
    eff: EffectiveParameters

    @classmethod
    def of(cls, cfg: Config) -> SpikingPlan:
        mean_field = mean_field_config(cfg)
        return cls(cfg, mean_field, compile_model(mean_field), effective_parameters(cfg))

    def structure(self, data: TaskData) -> Structure:
        return plan_structure(self.model, self.cfg, self.eff, data)

    def values(self, structure: Structure, data: TaskData, weights: InitialWeights, index: int,
               seed: int) -> RunValues:
        return plan_values(self.model, self.cfg, self.eff, structure, data, weights, index, seed)


def structure_key(cfg: Config) -> str:
    """The build key of ``cfg``'s spiking network: configurations that share it share one standalone build and
    differ only in run arguments (``neurofa sweep`` groups its spiking points by it)."""
    return SpikingPlan.of(cfg).structure(circuit_task(cfg, 0)).key
