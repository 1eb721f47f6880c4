r"""The dendritic prediction rule of forward and interneuron weights (Urbanczik2014; Sacramento2018 Eqs 7–8).

Rate form (``docs/science.md`` §2.3), for W_ℓ into the basal compartment of P_ℓ and W^{IP}_ℓ into the dendrite of
the interneurons I_ℓ:

.. math:: \dot W = \eta\, f(t)\, [\varphi(\breve u_{post}) - \varphi(\hat v_{post})]\, \bar r_{pre}^\top
          \;-\; \eta\, f(t)\, \lambda\, W

with v̂ the somatic potential the dendrite predicts (v̂ = g_bas/(g_l+g_bas+g_api) v_bas in hidden cells,
g_bas/(g_l+g_bas) v_bas at the output, g_den/(g_l+g_den) v_den in interneurons), f(t) the annealing factor and λ a
weight decay that only Kolen–Pollack backprojections impose (0 otherwise). Forward increments may pass a low-pass
τ_LO Δ̇ = −Δ + increment before they are applied (Max2024); the interneuron weights are never low-passed.

Spiking form (§3.2): φ(ŭ_post) becomes the spike train S_post/ν_max, a jump η f x_pre/ν_max per postsynaptic spike
(or, with ``spiking.post_signal: rate``, φ(ŭ_post) itself); the presynaptic factor is the trace x_pre (or its
expectation x_r with ``spiking.pre_signal: rate``). :func:`urbanczik_senn` also writes the mirrored form that
backprojections following W_{ℓ+1} use (the rule with pre and post swapped).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from neurofa.config import Config, layer_values
from neurofa.model.rule import Estimators, Rule, SynapseCode, TimeScale, register

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["UrbanczikSenn", "urbanczik_senn", "mirrored_synapse", "forward_rule", "MIRROR_ORDER"]

#: schedule order of synapses that mirror W_{ℓ+1}'s increments: after the neuron groups (order 0), as W's own state
#: update runs (its name sorts after the groups'), so that both read the traces of the same step
MIRROR_ORDER = 1


def urbanczik_senn(summed: str, cell: str, other: str, tau_lo: float, decay: float,
                   estimators: Estimators) -> tuple[str, str | None]:
    """Brian2 model and spike code of Ẇ = η λ_t [S_cell/ν_max − φ(v̂_cell)] x_other − η λ_t λ w.

    ``cell`` ('post' or 'pre') is the side whose spikes and dendritic prediction drive the rule, ``other`` the
    side whose trace is the factor; λ_t = ``learn`` is the learning gate times the annealing factor. With the rate
    estimator there is no spike code; with populations a spike event of n_fired of the N cells jumps by n_fired/N
    times the single cell's jump."""
    factor = estimators.factor
    spike = estimators.spike_weight(cell)
    head = "eta : Hz (shared, constant)\n" + summed
    post_rate = f"(-phi_hat_{cell})" if estimators.post_spikes else f"(rate_{cell} - phi_hat_{cell})"
    shrink = ""
    if decay > 0:
        head += "lam : 1 (shared, constant)\n"
        shrink = f" - eta*learn_{cell}*lam*w"
    if tau_lo > 0:
        model = head + f"""tau_lo : second (shared, constant)
dw/dt = delta{shrink} : 1 (clock-driven)
ddelta/dt = (-delta + eta*learn_{cell}*{post_rate}*{factor}_{other})/tau_lo : Hz (clock-driven)
"""
        jump = f"delta += eta*learn_{cell}*{factor}_{other}{spike}/(nu_max_{cell}*tau_lo)"
    else:
        model = head + f"dw/dt = eta*learn_{cell}*{post_rate}*{factor}_{other}{shrink} : 1 (clock-driven)\n"
        jump = f"w += eta*learn_{cell}*{factor}_{other}{spike}/nu_max_{cell}"
    return model, jump if estimators.post_spikes else None


def code_values(eta: float, tau_lo: float, decay: float) -> tuple[tuple[str, float, str], ...]:
    """The shared constants of :func:`urbanczik_senn`'s model."""
    values: list[tuple[str, float, str]] = [("eta", eta, "1/ms")]
    if tau_lo > 0:
        values.append(("tau_lo", tau_lo, "ms"))
    if decay > 0:
        values.append(("lam", decay, "1"))
    return tuple(values)


def mirrored_synapse(summed: str, learns: bool, eta: float, tau_lo: float, decay: float, estimators: Estimators,
                     pre_links: tuple[tuple[str, str, str], ...] = ()) -> SynapseCode:
    """Brian2 code of a backprojection B_ℓ whose synapse ij receives exactly the increments of W_{ℓ+1, ji}: the rule
    with pre and post swapped (a jump on the spike of cell j of layer ℓ+1, the clock-driven −η φ(v̂_j) x_i, the
    decay −η λ w), scheduled after the neuron groups as W's own update is, so both read the same traces."""
    if not learns:
        return SynapseCode("w : 1\n" + summed, pre_links=pre_links)
    model, on_pre = urbanczik_senn(summed, "pre", "post", tau_lo, decay, estimators)
    return SynapseCode(model, on_pre=on_pre, values=code_values(eta, tau_lo, decay), pre_links=pre_links,
                       order=MIRROR_ORDER)


@register
@dataclass(frozen=True)
class UrbanczikSenn(Rule):
    """Dendritic prediction of somatic activity: η (1/ms, 0 = fixed), low-pass τ_LO (ms, 0 = off), decay λ."""

    name = "urbanczik"
    kinds = ("W", "W_IP")

    eta: float
    tau_lo: float = 0.0
    decay: float = 0.0

    @classmethod
    def forward(cls, cfg: Config, layer: int) -> UrbanczikSenn:
        """The rule of W_ℓ: η_fw of the layer, switched off by ``learn_forward = false`` and, below the output,
        by ``freeze_hidden``."""
        p = cfg.plasticity
        n_w = len(cfg.network.layers) - 1
        frozen = (p.freeze_hidden and layer < n_w) or not p.learn_forward
        return cls(eta=0.0 if frozen else layer_values(p.eta_fw, n_w)[layer - 1], tau_lo=p.tau_lo)

    @classmethod
    def lateral(cls, cfg: Config, layer: int) -> UrbanczikSenn:
        """The rule of W^{IP}_ℓ: η_IP of the layer, switched off by ``learn_lateral = false``; no low-pass."""
        p = cfg.plasticity
        n_hidden = len(cfg.network.layers) - 2
        return cls(eta=layer_values(p.eta_ip, n_hidden)[layer - 1] if p.learn_lateral else 0.0)

    @staticmethod
    def mean_field(cfg: Config, scale: TimeScale) -> dict[str, Any]:
        p = cfg.plasticity
        n_w = len(cfg.network.layers) - 1
        return {
            "eta_fw": [e / scale.k for e in layer_values(p.eta_fw, n_w)],
            "eta_ip": [e / scale.k for e in layer_values(p.eta_ip, n_w - 1)],
            "tau_lo": p.tau_lo * scale.k,
        }

    @property
    def learns(self) -> bool:
        return self.eta > 0

    @property
    def low_pass(self) -> float:
        """τ_LO of the increments when the rule learns, else 0."""
        return self.tau_lo if self.learns else 0.0

    def with_decay(self, decay: float) -> UrbanczikSenn:
        return replace(self, decay=decay if self.learns else 0.0)

    def decay_rate(self) -> float:
        return self.eta * self.decay

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        if not self.learns:
            return SynapseCode("w : 1\n" + summed)
        model, on_post = urbanczik_senn(summed, "post", "pre", self.low_pass, self.decay, estimators)
        return SynapseCode(model, on_post=on_post, values=code_values(self.eta, self.low_pass, self.decay))


def forward_rule(model: dict[str, Projection], layer: int) -> UrbanczikSenn:
    """The rule of W_ℓ among the projections built so far (for rules of B_{ℓ−1} that follow it)."""
    rule = model[f"W{layer}"].rule
    assert isinstance(rule, UrbanczikSenn)
    return rule
