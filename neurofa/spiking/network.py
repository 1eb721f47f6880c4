"""Brian2 objects of one spiking microcircuit: groups, synapses, timed inputs and coarse monitors.

:func:`build_circuit` creates the objects of a :class:`Structure` (everything that changes generated code) with
the per-run values of a :class:`RunValues` (weights, parameters, input stream, seed). In standalone mode the same
objects are rebuilt for every run through :meth:`Circuit.run_args`, without recompiling.

Synapse order: each projection is connected row-major in its matrix (post-major), so synapse k of W_ℓ is
W_ℓ[k // n_{ℓ−1}, k % n_{ℓ−1}] and the weight vector is the flattened matrix of :mod:`neurofa.circuit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import (
    Hz,
    Network,
    NeuronGroup,
    StateMonitor,
    Synapses,
    TimedArray,
    linked_var,
    ms,
)

from neurofa.spiking import equations as eq

__all__ = ["Structure", "RunValues", "Circuit", "build_circuit"]


@dataclass(frozen=True)
class Structure:
    """What fixes the generated code: sizes, transfer function, which projections learn, timing and monitors."""

    sizes: tuple[int, ...]
    activation: str
    mode: str  # "bp" or "fa_pal"
    target: bool
    fw_plastic: tuple[bool, ...]
    ip_plastic: tuple[bool, ...]
    pi_plastic: tuple[bool, ...]
    bw_plastic: tuple[bool, ...]
    low_pass: bool
    dt: float
    t_pres: float
    n_train_pres: int
    n_test_pres: int
    record_interval: float
    detail: bool
    regular_input: bool = False
    rate_estimator: bool = False
    target_trace: bool = False
    expected_trace: bool = False

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def train_time(self) -> float:
        return self.n_train_pres * self.t_pres

    @property
    def run_time(self) -> float:
        """Training, test presentations and one extra step so the monitors sample t = end of training."""
        return (self.n_train_pres + self.n_test_pres) * self.t_pres + self.dt


@dataclass
class RunValues:
    """Per-run data: shared parameters ``shared[(object, variable)]`` (Brian quantities), initial weights
    ``weights[object]`` (flattened row-major), the presentation arrays and the random seed."""

    shared: dict[tuple[str, str], Any]
    weights: dict[str, np.ndarray]
    stim: np.ndarray  # (n_pres, n_in) input values in [0, 1]
    target: np.ndarray | None  # (n_pres, n_out) target potentials
    gate_learn: np.ndarray  # (n_pres,)
    gate_nudge: np.ndarray  # (n_pres,)
    seed: int
    input_phase: np.ndarray | None = None  # (n_in,) initial phases of regular input cells


@dataclass
class Circuit:
    """The Brian2 objects of one structure and the names under which run values address them."""

    structure: Structure
    network: Network
    objects: dict[str, Any]
    timed: dict[str, TimedArray]
    weight_monitors: dict[str, StateMonitor] = field(default_factory=dict)
    layer_monitors: dict[str, StateMonitor] = field(default_factory=dict)
    test_monitor: StateMonitor | None = None

    def run_args(self, values: RunValues) -> dict[Any, Any]:
        """Standalone ``run_args``: every per-run value keyed by its variable view or TimedArray."""
        args: dict[Any, Any] = {}
        for (obj, var), value in values.shared.items():
            args[getattr(self.objects[obj], var)] = value
        for obj, w in values.weights.items():
            args[self.objects[obj].w] = np.asarray(w, dtype=float)
        args[self.objects["P0"].rng_seed] = float(values.seed)
        if self.structure.regular_input:
            args[self.objects["P0"].phase] = np.asarray(values.input_phase, dtype=float)
        args[self.timed["stim"]] = np.asarray(values.stim, dtype=float)
        args[self.timed["gate_learn"]] = np.asarray(values.gate_learn, dtype=float)
        if self.structure.target:
            args[self.timed["target"]] = np.asarray(values.target, dtype=float)
            args[self.timed["gate_nudge"]] = np.asarray(values.gate_nudge, dtype=float)
        return args

    def assign(self, values: RunValues) -> None:
        """Runtime mode: set the per-run values directly (the TimedArrays were built with them)."""
        for (obj, var), value in values.shared.items():
            setattr(self.objects[obj], var, value)
        for obj, w in values.weights.items():
            self.objects[obj].w = np.asarray(w, dtype=float)
        if self.structure.regular_input:
            self.objects["P0"].phase = np.asarray(values.input_phase, dtype=float)


def _connect_dense(syn: Synapses, n_pre: int, n_post: int) -> None:
    """All-to-all in row-major order of the (post × pre) matrix."""
    pre = np.tile(np.arange(n_pre), n_post)
    post = np.repeat(np.arange(n_post), n_pre)
    syn.connect(i=pre, j=post)


def build_circuit(structure: Structure, values: RunValues, prefix: str) -> Circuit:
    """Create every Brian2 object of ``structure`` with ``values`` as their initial values.

    ``prefix`` makes object names unique per build (several structures may live in one process).
    """
    s = structure
    sizes, N = s.sizes, s.n_layers
    act = s.activation
    t_pres = s.t_pres * ms
    timed = {
        "stim": TimedArray(np.asarray(values.stim, dtype=float), dt=t_pres, name=f"{prefix}_stim"),
        "gate_learn": TimedArray(np.asarray(values.gate_learn, dtype=float), dt=t_pres, name=f"{prefix}_gate_learn"),
    }
    namespace: dict[str, Any] = {"stim": timed["stim"], "gate_learn": timed["gate_learn"]}
    if s.target:
        timed["target"] = TimedArray(np.asarray(values.target, dtype=float), dt=t_pres, name=f"{prefix}_target")
        timed["gate_nudge"] = TimedArray(np.asarray(values.gate_nudge, dtype=float), dt=t_pres,
                                         name=f"{prefix}_gate_nudge")
        namespace.update(target=timed["target"], gate_nudge=timed["gate_nudge"])

    objects: dict[str, Any] = {}

    def group(name: str, n: int, eqs: str, high_pass: bool, order: int, regular: bool = False) -> NeuronGroup:
        if s.expected_trace and name != f"P{N}":  # x_r is read by the rules of every cell's outgoing synapses
            eqs += eq.expected_trace()  # except the output's (its B rule reads xhp, its trace feeds dendrites only)
        g = NeuronGroup(n, eqs, threshold=eq.threshold(regular), reset=eq.reset(high_pass, regular),
                        method="euler", namespace=namespace, name=f"{prefix}_{name}", order=order, dt=s.dt * ms)
        objects[name] = g
        return g

    group("P0", sizes[0], eq.input_equations(s.regular_input), False, 0, s.regular_input)
    for ell in range(1, N):
        group(f"P{ell}", sizes[ell], eq.hidden_equations(act, s.detail), True, 0)
    group(f"P{N}", sizes[N], eq.output_equations(act, s.target, s.detail, s.target_trace), True, 0)
    for ell in range(1, N):
        inter = group(f"I{ell}", sizes[ell + 1], eq.interneuron_equations(act, s.detail), False, 1)
        inter.u_nudge = linked_var(objects[f"P{ell + 1}"], "u_eff")

    def synapses(name: str, pre: str, post: str, model: str, on_pre: str | None = None,
                 on_post: str | None = None) -> Synapses:
        syn = Synapses(objects[pre], objects[post], model=model, on_pre=on_pre, on_post=on_post, method="euler",
                       namespace=namespace, name=f"{prefix}_{name}", dt=s.dt * ms)
        _connect_dense(syn, len(objects[pre]), len(objects[post]))
        objects[name] = syn
        return syn

    factor = "xr" if s.expected_trace else "x"  # presynaptic factor of W, W^IP, B^PI (and bp's B)
    for ell in range(1, N + 1):
        model, on_post = eq.forward_synapse("v_bas", s.fw_plastic[ell - 1], s.low_pass, s.rate_estimator, factor)
        synapses(f"W{ell}", f"P{ell - 1}", f"P{ell}", model, on_post=on_post)
    for ell in range(1, N):
        model, on_post = eq.forward_synapse("v_den", s.ip_plastic[ell - 1], s.low_pass, s.rate_estimator, factor)
        synapses(f"WIP{ell}", f"P{ell}", f"I{ell}", model, on_post=on_post)
        synapses(f"BPI{ell}", f"I{ell}", f"P{ell}", eq.apical_inhibition_synapse(s.pi_plastic[ell - 1], factor))
        model, on_pre = eq.backprojection_synapse("bp" if s.mode == "bp" else "pal", s.bw_plastic[ell - 1],
                                                  s.low_pass, s.rate_estimator, factor)
        synapses(f"B{ell}", f"P{ell + 1}", f"P{ell}", model, on_pre=on_pre)

    circuit = Circuit(s, Network(), objects, timed)
    _set_values(circuit, values)
    _add_monitors(circuit, prefix)
    circuit.network.add(*objects.values(), *circuit.weight_monitors.values(), *circuit.layer_monitors.values())
    if circuit.test_monitor is not None:
        circuit.network.add(circuit.test_monitor)
    return circuit


def _set_values(circuit: Circuit, values: RunValues) -> None:
    circuit.assign(values)
    circuit.objects["P0"].rng_seed = float(values.seed)


def _add_monitors(circuit: Circuit, prefix: str) -> None:
    s = circuit.structure
    N = s.n_layers
    rec = s.record_interval * ms
    plastic = {f"W{ell}": s.fw_plastic[ell - 1] for ell in range(1, N + 1)}
    plastic.update({f"B{ell}": s.bw_plastic[ell - 1] for ell in range(1, N)})
    for name, is_plastic in plastic.items():
        if is_plastic:
            circuit.weight_monitors[name] = StateMonitor(circuit.objects[name], "w", record=True, dt=rec,
                                                         name=f"{prefix}_mon_{name}")
    for ell in range(1, N + 1):
        hidden = ell < N
        variables = ["A_vapi2"] if hidden else (["A_loss"] if s.target else [])
        if s.detail:
            variables += ["n_spk", "A_vbas", "A_rate"] + (["A_vapi"] if hidden else [])
        if variables:
            circuit.layer_monitors[f"P{ell}"] = StateMonitor(circuit.objects[f"P{ell}"], variables, record=True,
                                                             dt=rec, name=f"{prefix}_mon_P{ell}")
    if s.detail:
        circuit.layer_monitors["P0"] = StateMonitor(circuit.objects["P0"], ["n_spk"], record=True, dt=rec,
                                                    name=f"{prefix}_mon_P0")
        for ell in range(1, N):
            circuit.layer_monitors[f"I{ell}"] = StateMonitor(circuit.objects[f"I{ell}"], ["n_spk", "A_rate"],
                                                             record=True, dt=rec, name=f"{prefix}_mon_I{ell}")
    if s.target:  # per-presentation read-out (loss, test accuracy): samples every t_pres/2
        circuit.test_monitor = StateMonitor(circuit.objects[f"P{N}"], ["n_spk", "A_vhat"], record=True,
                                            dt=s.t_pres / 2 * ms, name=f"{prefix}_mon_test")


def shared_values(structure: Structure, cfg_conductances: Any, eff: Any) -> dict[tuple[str, str], Any]:
    """The (object, variable) → quantity map of every shared constant, from conductances and effective
    parameters (:class:`neurofa.spiking.params.EffectiveParameters`)."""
    s = structure
    N = s.n_layers
    g = cfg_conductances
    out: dict[tuple[str, str], Any] = {}
    for ell in range(0, N + 1):
        out[(f"P{ell}", "nu_max")] = eff.nu_max * Hz
        out[(f"P{ell}", "tau_s")] = eff.tau_s * ms
    for ell in range(1, N + 1):
        out[(f"P{ell}", "g_l")] = g.g_l
        out[(f"P{ell}", "g_bas")] = g.g_bas
        out[(f"P{ell}", "tau_hp")] = eff.tau_hp * ms
    anneal = (1.0 / eff.eta_decay if eff.eta_decay > 0 else 0.0) * 1000.0 * Hz
    for name in [f"P{ell}" for ell in range(1, N + 1)] + [f"I{ell}" for ell in range(1, N)]:
        out[(name, "anneal_rate")] = anneal
    for ell in range(1, N):
        out[(f"P{ell}", "g_api")] = g.g_api
        out[(f"P{ell}", "tau_xi")] = eff.tau_xi * ms
        out[(f"P{ell}", "sigma")] = eff.sigma
        out[(f"I{ell}", "nu_max")] = eff.nu_max * Hz
        out[(f"I{ell}", "tau_s")] = eff.tau_s * ms
        out[(f"I{ell}", "g_l")] = g.g_l
        out[(f"I{ell}", "g_den")] = g.g_den
        out[(f"I{ell}", "g_nI")] = g.g_nI
    if s.target:
        out[(f"P{N}", "g_ntgt")] = g.g_ntgt
    per_ms = 1000.0 * Hz
    for ell in range(1, N + 1):
        if s.fw_plastic[ell - 1]:
            out[(f"W{ell}", "eta")] = eff.eta_fw[ell - 1] * per_ms
            if s.low_pass:
                out[(f"W{ell}", "tau_lo")] = eff.tau_lo * ms
    for ell in range(1, N):
        if s.ip_plastic[ell - 1]:
            out[(f"WIP{ell}", "eta")] = eff.eta_ip[ell - 1] * per_ms
            if s.low_pass:
                out[(f"WIP{ell}", "tau_lo")] = eff.tau_lo * ms
        if s.pi_plastic[ell - 1]:
            out[(f"BPI{ell}", "eta")] = eff.eta_pi[ell - 1] * per_ms
        if s.bw_plastic[ell - 1]:
            if s.mode == "bp":
                out[(f"B{ell}", "eta")] = eff.eta_fw[ell] * per_ms
                if s.low_pass:
                    out[(f"B{ell}", "tau_lo")] = eff.tau_lo * ms
            else:
                out[(f"B{ell}", "eta")] = eff.eta_bw[ell - 1] * per_ms
                out[(f"B{ell}", "alpha")] = eff.alpha
    return out
