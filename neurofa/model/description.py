r"""The backend-neutral description of a dendritic cortical microcircuit, compiled once from a configuration.

:func:`compile_model` turns a validated configuration into a :class:`Model`: its populations and its projections,
each projection carrying the rule object that governs it (:mod:`neurofa.model.rule`). Both simulators interpret
this one description — the batched numpy kernel (:mod:`neurofa.rate.dynamics`) and the Brian2 network
(:mod:`neurofa.spiking.structure`) — and so do ``neurofa compare`` and the spiking mean field: nothing else
decides which weights learn, with which rule and which parameters. Equations: ``docs/science.md`` §2.

Populations (layers ℓ = 0 … N, sizes n_ℓ):

- ``P0`` the inputs (n_0 cells), ``P1`` … ``P{N-1}`` the hidden pyramidal cells (basal and apical compartments),
  ``P{N}`` the output pyramidal cells (basal only, nudged by the target);
- ``I1`` … ``I{N-1}``: the interneurons of hidden layer ℓ, as many as the pyramidal cells of layer ℓ+1, each nudged
  by its partner there.

Projections (weight matrices (n_post, n_pre), row-major synapse order):

====== ================== ================== ==================================================
name   pre → post         compartment        rule
====== ================== ================== ==================================================
W_ℓ    P_{ℓ−1} → P_ℓ      basal              ``urbanczik`` (dendritic prediction)
W^IP_ℓ P_ℓ → I_ℓ          dendrite           ``urbanczik``
B_ℓ    P_{ℓ+1} → P_ℓ      apical             ``plasticity.feedback``: ``bp``, ``fa``, ``pal``, ``kp``
B^PI_ℓ I_ℓ → P_ℓ          apical             ``apical_inhibition`` (or tied to −B_ℓ by ``bp``)
====== ================== ================== ==================================================

The learning switches of the configuration (``learn_forward``, ``learn_lateral``, ``learn_feedback``,
``freeze_hidden``) are applied here, once: a projection whose rate is switched off gets a rule with η = 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from neurofa.config import Conductances, Config, ConfigError, choice_error, register_check
from neurofa.model.rule import FEEDBACK, FeedbackRule, Rule, feedback_rule
from neurofa.model.rules.apical_inhibition import ApicalInhibition
from neurofa.model.rules.transpose import Tied
from neurofa.model.rules.urbanczik import UrbanczikSenn

__all__ = ["Population", "Projection", "Model", "compile_model", "check_microcircuit"]

PopulationKind = Literal["input", "hidden", "output", "interneuron"]
ProjectionKind = Literal["W", "W_IP", "B", "B_PI"]
Compartment = Literal["basal", "dendrite", "apical"]


@dataclass(frozen=True)
class Population:
    """A group of cells: ``name`` (``P0`` … ``P{N}``, ``I1`` …), its kind, its layer ℓ and its size."""

    name: str
    kind: PopulationKind
    layer: int
    size: int


@dataclass(frozen=True)
class Projection:
    """A weight matrix from population ``pre`` to a compartment of ``post``, with the rule that governs it."""

    name: str
    kind: ProjectionKind
    layer: int
    pre: Population
    post: Population
    compartment: Compartment
    rule: Rule

    @property
    def shape(self) -> tuple[int, int]:
        """(n_post, n_pre): the matrix shape, also the row-major order of the synapses."""
        return (self.post.size, self.pre.size)

    @property
    def learns(self) -> bool:
        return self.rule.learns


@dataclass(frozen=True)
class Model:
    """Populations and projections of one microcircuit, plus the neuron parameters both backends share."""

    sizes: tuple[int, ...]
    activation: str
    output_linear: bool
    conductances: Conductances
    populations: tuple[Population, ...]
    projections: tuple[Projection, ...]
    #: σ of PAL's Ornstein–Uhlenbeck noise in the hidden apical compartments (0 = no noise), its τ_ξ, and the
    #: time constant τ_HP of the high-passed presynaptic rates (ms)
    noise_sigma: float
    tau_xi: float
    tau_hp: float
    #: annealing time constant T_η of every plastic rate (ms, 0 = off)
    eta_decay: float
    #: spiking cells per rate unit (``network.population``): the spiking interpretation's population size; the
    #: rate interpretation is the mean field of every size (``docs/science.md`` §3.9)
    cells_per_unit: int = 1

    @property
    def n_layers(self) -> int:
        """N, the index of the output layer."""
        return len(self.sizes) - 1

    @property
    def learns(self) -> bool:
        """Whether any weight changes during a run."""
        return any(p.learns for p in self.projections)

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def projection(self, name: str) -> Projection:
        return next(p for p in self.projections if p.name == name)

    def of_kind(self, kind: ProjectionKind) -> list[Projection]:
        """The projections of one kind in layer order (W_1 … W_N, or B_1 … B_{N−1}, ...)."""
        return [p for p in self.projections if p.kind == kind]

    def __iter__(self) -> Iterator[Projection]:
        return iter(self.projections)

    def feedback(self, layer: int) -> FeedbackRule:
        """The rule of B_ℓ."""
        rule = self.projection(f"B{layer}").rule
        assert isinstance(rule, FeedbackRule)
        return rule


def _populations(sizes: tuple[int, ...]) -> dict[str, Population]:
    N = len(sizes) - 1
    pops = {"P0": Population("P0", "input", 0, sizes[0])}
    for ell in range(1, N):
        pops[f"P{ell}"] = Population(f"P{ell}", "hidden", ell, sizes[ell])
    pops[f"P{N}"] = Population(f"P{N}", "output", N, sizes[N])
    for ell in range(1, N):
        pops[f"I{ell}"] = Population(f"I{ell}", "interneuron", ell, sizes[ell + 1])
    return pops


def compile_model(cfg: Config) -> Model:
    """The model description of a microcircuit configuration (see the module docstring)."""
    sizes = tuple(int(n) for n in cfg.network.layers)
    N = len(sizes) - 1
    pops = _populations(sizes)
    built: dict[str, Projection] = {}

    def add(name: str, kind: ProjectionKind, layer: int, pre: str, post: str, compartment: Compartment,
            rule: Rule) -> None:
        built[name] = Projection(name, kind, layer, pops[pre], pops[post], compartment, rule)

    for ell in range(1, N + 1):
        add(f"W{ell}", "W", ell, f"P{ell - 1}", f"P{ell}", "basal", UrbanczikSenn.forward(cfg, ell))
    for ell in range(1, N):
        add(f"WIP{ell}", "W_IP", ell, f"P{ell}", f"I{ell}", "dendrite", UrbanczikSenn.lateral(cfg, ell))
    rule_class = feedback_rule(cfg.plasticity.feedback)
    feedback: list[FeedbackRule] = []
    for ell in range(1, N):
        rule = rule_class.from_config(cfg, ell, dict(built))
        assert isinstance(rule, FeedbackRule)
        feedback.append(rule)
        add(f"B{ell}", "B", ell, f"P{ell + 1}", f"P{ell}", "apical", rule)
    for ell, rule in enumerate(feedback, start=1):
        inhibition: Rule = Tied() if rule.ties_apical_inhibition() else ApicalInhibition.from_config(cfg, ell, built)
        add(f"BPI{ell}", "B_PI", ell, f"I{ell}", f"P{ell}", "apical", inhibition)
        decay = rule.forward_decay()
        if decay > 0:  # the feedback rule imposes a weight decay on the forward matrix it follows
            w = built[f"W{ell + 1}"]
            assert isinstance(w.rule, UrbanczikSenn)
            built[w.name] = Projection(w.name, w.kind, w.layer, w.pre, w.post, w.compartment,
                                       w.rule.with_decay(decay))
    order = [f"W{ell}" for ell in range(1, N + 1)] + [f"WIP{ell}" for ell in range(1, N)]
    order += [f"B{ell}" for ell in range(1, N)] + [f"BPI{ell}" for ell in range(1, N)]
    p = cfg.plasticity
    return Model(
        sizes=sizes, activation=cfg.network.activation, output_linear=cfg.network.output_linear,
        conductances=cfg.conductances, populations=tuple(pops.values()),
        projections=tuple(built[name] for name in order),
        noise_sigma=max((r.apical_noise() for r in feedback), default=0.0), tau_xi=p.tau_xi, tau_hp=p.tau_hp,
        eta_decay=p.eta_decay, cells_per_unit=cfg.network.population,
    )


@register_check("model")
def check_microcircuit(cfg: Config, where: str) -> None:
    """The microcircuit's own configuration checks: a registered feedback rule, a hidden layer, per-layer rates."""
    if cfg.model != "microcircuit":
        return
    layers = cfg.network.layers
    if cfg.plasticity.feedback not in FEEDBACK:
        raise choice_error(where, "plasticity.feedback", cfg.plasticity.feedback, FEEDBACK,
                           " for model 'microcircuit'")
    if len(layers) < 3:
        raise ConfigError(f"{where}network.layers = {layers!r} is invalid: a microcircuit needs a hidden layer")
    if cfg.network.self_predicting and cfg.conductances.g_den <= 0:
        raise ConfigError(
            f"{where}conductances.g_den = {cfg.conductances.g_den!r} is invalid with network.self_predicting: the "
            "self-predicting start W^IP = c W divides by g_den; give g_den > 0 or self_predicting: false")
    n_w = len(layers) - 1
    for name, n in (("eta_fw", n_w), ("eta_ip", n_w - 1), ("eta_pi", n_w - 1), ("eta_bw", n_w - 1)):
        value = getattr(cfg.plasticity, name)
        if len(value) not in (1, n):
            raise ConfigError(
                f"{where}plasticity.{name} = {value!r} is invalid: give one value or {n} (one per layer)"
            )
        if any(v < 0 for v in value):
            raise ConfigError(f"{where}plasticity.{name} = {value!r} is invalid: learning rates must be ≥ 0")
    sim = cfg.simulation
    if sim.dt > sim.duration:
        raise ConfigError(
            f"{where}simulation.dt = {sim.dt!r} is invalid: must not exceed simulation.duration = {sim.duration!r}"
        )
    if sim.dt > cfg.task.t_pres:
        raise ConfigError(
            f"{where}simulation.dt = {sim.dt!r} is invalid: must not exceed task.t_pres = {cfg.task.t_pres}"
        )
    if sim.record_interval < sim.dt:
        raise ConfigError(f"{where}simulation.record_interval = {sim.record_interval!r} is invalid: must be ≥ dt")
    if sim.record_interval > sim.duration:
        raise ConfigError(
            f"{where}simulation.record_interval = {sim.record_interval!r} is invalid: must not exceed "
            f"simulation.duration = {sim.duration!r} (nothing would be recorded)"
        )
