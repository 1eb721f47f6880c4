r"""What a plasticity rule of the microcircuit declares, and the registry of rules.

A :class:`Rule` governs one projection of the model description (:mod:`neurofa.model.description`). It states,
in one module per rule (``neurofa/model/rules/``):

- its parameters, read once from the configuration (:meth:`Rule.from_config`) and their map to the spiking time
  scale, which is how the spiking configuration's exact rate mean field is made (:meth:`Rule.mean_field`);
- whether it learns (:attr:`Rule.learns`) and how the initial weights are set (:meth:`FeedbackRule.initial`);
- its numpy update for the rate backend, as *terms* the batched kernel fuses (:class:`Hebbian` increments
  post ⊗ pre, a multiplicative :meth:`Rule.decay_rate`) plus optional hooks that act on the kernel's weights
  (:meth:`Rule.rate_init`, :meth:`Rule.rate_after_forward`);
- its Brian2 synapse equations for the spiking backend (:meth:`Rule.synapse`, pure strings: nothing here
  imports Brian2).

The registry maps the names users write (``plasticity.feedback: pal``) to rule classes: :data:`FEEDBACK` for the
backprojections B, and :data:`RULES` for every rule. A rule module registers its class with :func:`register`;
``neurofa/model/rules/__init__.py`` imports each module, one line per rule. Equations: ``docs/science.md`` §2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from neurofa.config import Config
    from neurofa.model.description import Projection

__all__ = [
    "Hebbian",
    "SynapseCode",
    "Estimators",
    "TimeScale",
    "RateKernel",
    "Rule",
    "FeedbackRule",
    "RULES",
    "FEEDBACK",
    "register",
    "feedback_rule",
]

PostSignal = Literal["noise", "apical"]
PreSignal = Literal["rate", "high_pass"]


@dataclass(frozen=True)
class Hebbian:
    r"""A rate-backend increment ΔM = η dt f(t) · post ⊗ pre, every step (the kernel fuses all such terms of one
    apical block into a single batched product).

    ``post`` names a postsynaptic signal of the kernel: ``noise`` (PAL's apical OU noise ξ) or ``apical`` (the
    apical potential v_api without the noise); ``pre`` a presynaptic one: ``rate`` (the rate the dendrites read,
    r or its synaptic trace r̄) or ``high_pass`` (r^HP, the high-passed r̄). ``eta`` carries the rule's sign
    (apical inhibition: −η_PI).
    """

    post: PostSignal
    pre: PreSignal
    eta: float


@dataclass(frozen=True)
class SynapseCode:
    """Brian2 code of one projection: the ``Synapses`` model, its ``on_pre``/``on_post`` statements and the values
    of its shared constants as ``(variable, value, unit)`` with unit ``"1/ms"``, ``"ms"`` or ``"1"``."""

    model: str
    on_pre: str | None = None
    on_post: str | None = None
    values: tuple[tuple[str, float, str], ...] = ()
    #: linked variables the presynaptic group must carry, as (variable, source group, source variable)
    pre_links: tuple[tuple[str, str, str], ...] = ()
    #: Brian2 schedule order of the synapses' state update within the ``groups`` slot (objects of equal order run
    #: by name, neuron groups at order 0)
    order: int = 0

    @property
    def plastic(self) -> bool:
        return "clock-driven" in self.model or self.on_pre is not None or self.on_post is not None


@dataclass(frozen=True)
class Estimators:
    """How the spiking backend estimates the rate rule's factors (``docs/science.md`` §3.2): the postsynaptic term
    from spikes S/ν_max or from the rate φ(ŭ) (``spiking.post_signal``), the presynaptic factor from the trace x or
    its expectation x_r (``spiking.pre_signal``), and whether a spike event is one cell's or a population's."""

    post_spikes: bool = True
    pre_trace: bool = True
    #: whether cells come in populations (``network.population`` > 1): a unit's spike event then stands for
    #: ``n_fired`` of its ``pop_size`` cells, and a spike-driven increment is weighted by n_fired/pop_size
    population: bool = False

    def spike_weight(self, cell: str) -> str:
        """The factor of an increment per spike event of ``cell`` ('pre' or 'post'): 1 for single cells, the
        fraction of the population that fired, n_fired/N, for populations (``docs/science.md`` §3.9)."""
        return f"*n_fired_{cell}/pop_size_{cell}" if self.population else ""

    @property
    def factor(self) -> str:
        """The presynaptic trace variable of Urbanczik–Senn-type rules: ``x`` or ``xr``."""
        return "x" if self.pre_trace else "xr"


@dataclass(frozen=True)
class TimeScale:
    """The map from a configuration's rate time to the spiking network's (``docs/science.md`` §3.4): every time is
    multiplied by ``k`` and every learning rate divided by it; PAL's apical noise and high-pass time constants and
    amplitude of the spiking network (``tau_xi``, ``tau_hp``, ``sigma``) and its synaptic trace ``tau_s``."""

    k: float
    tau_s: float
    tau_xi: float
    tau_hp: float
    sigma: float


class RateKernel(Protocol):
    """What the rate kernel (:class:`neurofa.rate.dynamics.Microcircuit`) offers the rules' hooks: the weight views
    (batched, ``W[ℓ-1]`` is W_ℓ), the forward increment applied in this step, and the current decay factors."""

    W: list[np.ndarray]
    B: list[np.ndarray]
    B_PI: list[np.ndarray]

    def forward_increment(self, layer: int) -> np.ndarray: ...

    def decay_factor(self, projection: str) -> float: ...


class Rule:
    """A plasticity rule of one projection (base class: a fixed weight, no plasticity).

    Subclasses are frozen dataclasses holding the rule's parameters for one projection, built by
    :meth:`from_config`. Every method has the behaviour of a fixed weight unless overridden.
    """

    name: ClassVar[str] = ""
    #: the projection kinds the rule can govern ("W", "W_IP", "B", "B_PI")
    kinds: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def mean_field(cfg: Config, scale: TimeScale) -> dict[str, Any]:
        """The ``plasticity`` fields this rule owns, mapped from rate time to the spiking time scale (the values
        the exact mean field of the spiking configuration uses)."""
        return {}

    @property
    def learns(self) -> bool:
        """Whether the projection's weights change during a run."""
        return False

    # -- rate backend ------------------------------------------------------------------------------------------
    def hebbian(self) -> Hebbian | None:
        """The rule's fused increment term, if it has one (apical projections B and B^{PI})."""
        return None

    def decay_rate(self) -> float:
        """Rate (1/ms) of a multiplicative decay M ← (1 − rate · dt · f(t)) M applied with the increments."""
        return 0.0

    def rate_init(self, net: RateKernel, projection: Projection) -> None:
        """Hook after the rate kernel set its initial weights (e.g. to impose a constraint)."""

    def rate_after_forward(self, net: RateKernel, projection: Projection) -> None:
        """Hook after every update of the forward weights (e.g. to follow W)."""

    # -- spiking backend ---------------------------------------------------------------------------------------
    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode | None:
        """Brian2 model of the projection's synapses; ``summed`` is the statement that writes the dendritic
        potential (``v_bas_post = w*x_pre : 1 (summed)``). ``None``: the projection needs no synapses."""
        return SynapseCode("w : 1\n" + summed)


class FeedbackRule(Rule):
    """A rule of the backprojections B_ℓ (the choice ``plasticity.feedback``), with what it decides beyond B."""

    kinds = ("B",)
    #: the registered rule this one becomes with plasticity and apical noise off (``neurofa compare``'s dynamics)
    without_plasticity: ClassVar[str] = ""
    #: the rule injects noise into the apical compartments (its spiking σ is derived from the shot noise)
    injects_noise: ClassVar[bool] = False

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> FeedbackRule:
        """The rule of B_ℓ (``layer`` = ℓ) from the validated configuration; ``model`` maps the names of the
        projections built so far (``"W2"``) to them, for rules that follow W_{ℓ+1}."""
        raise NotImplementedError

    def initial(self, B: Any, W_next: Any) -> Any:
        """B_ℓ(0) from the drawn random matrix ``B`` and the forward matrix W_{ℓ+1} (shapes (..., n_ℓ, n_{ℓ+1}) and
        (..., n_{ℓ+1}, n_ℓ)); the drawn matrix by default."""
        return B

    def apical_noise(self) -> float:
        """σ of the Ornstein–Uhlenbeck noise the rule injects into the apical compartments (0 = none)."""
        return 0.0

    def forward_decay(self) -> float:
        """λ of a weight decay η λ W that the rule imposes on W_{ℓ+1} (Kolen–Pollack)."""
        return 0.0

    def ties_apical_inhibition(self) -> bool:
        """Whether B^{PI}_ℓ = −B_ℓ is imposed instead of learned (the weight-transport reference)."""
        return False


R = TypeVar("R", bound=type[Rule])

#: every registered rule by name
RULES: dict[str, type[Rule]] = {}
#: the rules users choose with ``plasticity.feedback`` for microcircuits
FEEDBACK: dict[str, type[FeedbackRule]] = {}


def register(cls: R) -> R:
    """Class decorator: register a rule under ``cls.name`` (and as a feedback choice if it governs B)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in RULES and RULES[cls.name] is not cls:
        raise TypeError(f"a rule named {cls.name!r} is already registered ({RULES[cls.name].__name__})")
    RULES[cls.name] = cls
    if issubclass(cls, FeedbackRule):
        FEEDBACK[cls.name] = cls
    return cls


def feedback_rule(name: str) -> type[FeedbackRule]:
    """The feedback rule registered as ``name`` (validated at the edge, so a miss is a programming error)."""
    return FEEDBACK[name]


