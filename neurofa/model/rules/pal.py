r"""Phaseless Alignment Learning (Max2024): backprojections learned from noise in the apical compartments.

Rate form (``docs/science.md`` §2.3): every hidden pyramidal cell carries Ornstein–Uhlenbeck noise ξ in its apical
compartment, τ_ξ ξ̇ = −ξ + σ √τ_ξ η(t), and

.. math:: \dot B_\ell = \eta_{bw} f(t) \left[\xi_\ell\, (r^{HP}_{\ell+1})^\top - \alpha B_\ell\right]

with r^HP the high-passed rates of layer ℓ+1, τ_HP ṙ^HP = τ_HP ṙ̄ − r^HP. The fixed point is B_ℓ ∝ (σ²/α)
φ'_ℓ W_{ℓ+1}ᵀ φ'_{ℓ+1}: PAL aligns direction, not scale. Spiking form (§3.2): ξ is the same OU process (Brian2's
``xi``), r^HP the high-passed presynaptic spike trace; the rule keeps the spike trace as its factor, since its
signal is the noise the spikes of layer ℓ+1 carry.

Time scale (§3.4): the estimator's drift ⟨ξ x^HP⟩ is σ² G with G the fraction of the noise covariance that survives
the two trace filters and the high-pass (:func:`noise_gain`). From a rate configuration (σ_r, G_r) to the spiking
network (σ_s, G_s) the learning rate is multiplied by c = σ_r² G_r / (σ_s² G_s) (besides 1/k) and α divided by c, so
the stationary B* = ⟨ξ x^HP⟩/α and its averaging time 1/(η_bw α) are the rate configuration's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neurofa.config import Config, layer_values
from neurofa.model.rule import Estimators, FeedbackRule, Hebbian, SynapseCode, TimeScale, register

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["PAL", "noise_gain", "derived_sigma", "pal_synapse"]


def noise_gain(tau_xi: float, tau_s: float, tau_hp: float) -> float:
    r"""Fraction G of PAL's noise covariance that survives two trace filters τ_s and the high-pass τ_HP
    (``docs/science.md`` §3.4): G = (τ_ξ/(τ_ξ+τ_s))² · τ_HP/(τ_HP+τ_ξ)."""
    return (tau_xi / (tau_xi + tau_s)) ** 2 * tau_hp / (tau_hp + tau_xi)


def derived_sigma(cfg: Config, nu_max_hz: float, tau_s: float) -> float:
    r"""σ with τ_P g_api σ/√2 = √(1/(4 ν_max τ_s)): the somatic noise equals one trace's shot noise at half rate
    (``docs/science.md`` §3.4); ν_max in Hz, τ_s in ms."""
    g = cfg.conductances
    if g.g_api == 0:
        return 0.0
    tau_p = 1.0 / (g.g_l + g.g_bas + g.g_api)
    nu = nu_max_hz / 1000.0  # per ms
    return math.sqrt(2.0) * math.sqrt(1.0 / (4.0 * nu * tau_s)) / (tau_p * g.g_api)


def pal_synapse(summed: str, eta: float, alpha: float) -> SynapseCode:
    """Brian2 code of Ḃ = η_bw λ_t (ξ_post x^HP_pre − α B) (λ_t: learning gate × annealing factor)."""
    model = ("eta : Hz (shared, constant)\nalpha : 1 (shared, constant)\n" + summed
             + "dw/dt = eta*learn_post*(noise_post*xhp_pre - alpha*w) : 1 (clock-driven)\n")
    return SynapseCode(model, values=(("eta", eta, "1/ms"), ("alpha", alpha, "1")))


@register
@dataclass(frozen=True)
class PAL(FeedbackRule):
    """η_bw (1/ms, 0 = fixed), decay α, noise amplitude σ."""

    name = "pal"
    without_plasticity = "fa"
    injects_noise = True

    eta: float
    alpha: float
    sigma: float

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> PAL:
        p = cfg.plasticity
        n_hidden = len(cfg.network.layers) - 2
        eta = layer_values(p.eta_bw, n_hidden)[layer - 1] if p.learn_feedback else 0.0
        return cls(eta=eta, alpha=p.alpha, sigma=p.sigma)

    @staticmethod
    def mean_field(cfg: Config, scale: TimeScale) -> dict[str, Any]:
        p = cfg.plasticity
        n_hidden = len(cfg.network.layers) - 2
        eta_bw = [e / scale.k if p.learn_feedback else 0.0 for e in layer_values(p.eta_bw, n_hidden)]
        g_rate = noise_gain(p.tau_xi, cfg.simulation.tau_syn, p.tau_hp)
        g_spk = noise_gain(scale.tau_xi, scale.tau_s, scale.tau_hp)
        c = (p.sigma**2 * g_rate) / (scale.sigma**2 * g_spk) if scale.sigma > 0 else 0.0
        return {"eta_bw": [e * c for e in eta_bw], "alpha": p.alpha / c if c > 0 else p.alpha,
                "sigma": scale.sigma}

    @property
    def learns(self) -> bool:
        return self.eta > 0

    def apical_noise(self) -> float:
        return self.sigma

    def hebbian(self) -> Hebbian | None:
        return Hebbian("noise", "high_pass", self.eta) if self.learns else None

    def decay_rate(self) -> float:
        return self.eta * self.alpha

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        if not self.learns:
            return SynapseCode("w : 1\n" + summed)
        return pal_synapse(summed, self.eta, self.alpha)
