r"""Kolen–Pollack backprojections (Akrout2019) in the microcircuit: B_ℓ receives the increments of W_{ℓ+1}ᵀ, and
both decay.

Rate form (``docs/science.md`` §2.3), with the forward rule's increment ΔW_{ℓ+1} (after its low-pass, if any):

.. math:: W_{\ell+1} \leftarrow (1 - \eta\lambda\,dt\,f) W_{\ell+1} + \Delta W_{\ell+1}, \qquad
          B_\ell \leftarrow (1 - \eta\lambda\,dt\,f) B_\ell + \Delta W_{\ell+1}^\top

with η = η_fw of layer ℓ+1 and λ = ``plasticity.alpha``. Whatever the increments, the difference obeys
W_{ℓ+1} − B_ℓᵀ ← (1 − ηλ dt f)(W_{ℓ+1} − B_ℓᵀ): it decays geometrically and B aligns with W_{ℓ+1}ᵀ from any start.
B^{PI} learns by apical inhibition, as with fixed feedback. Spiking form: the mirrored Urbanczik–Senn increments
of the ``bp`` rule (:mod:`neurofa.model.rules.transpose`) plus the decay −η λ_t λ w on both W_{ℓ+1} and B_ℓ, so
‖W − Bᵀ‖ follows the same geometric law in the spiking network, spike noise and all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from neurofa.config import Config
from neurofa.model.rule import Estimators, FeedbackRule, RateKernel, SynapseCode, register
from neurofa.model.rules.urbanczik import forward_rule, mirrored_synapse

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["KolenPollack"]


@register
@dataclass(frozen=True)
class KolenPollack(FeedbackRule):
    """B_ℓ mirrors W_{ℓ+1}'s increments (its η and τ_LO), with decay λ on both."""

    name = "kp"
    without_plasticity = "fa"

    eta: float
    decay: float
    tau_lo: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> KolenPollack:
        forward = forward_rule(model, layer + 1)
        eta = forward.eta if cfg.plasticity.learn_feedback else 0.0
        return cls(eta=eta, decay=cfg.plasticity.alpha, tau_lo=forward.low_pass)

    @property
    def learns(self) -> bool:
        return self.eta > 0

    def forward_decay(self) -> float:
        return self.decay if self.learns else 0.0

    def rate_after_forward(self, net: RateKernel, projection: Projection) -> None:
        ell = projection.layer
        B = net.B[ell - 1]
        B *= net.decay_factor(f"W{ell + 1}")
        B += np.swapaxes(net.forward_increment(ell + 1), -1, -2)

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        return mirrored_synapse(summed, self.learns, self.eta, self.tau_lo, self.decay, estimators)
