r"""The weight-transport reference (``bp``): B_ℓ = W_{ℓ+1}ᵀ and B^{PI}_ℓ = −B_ℓ at all times.

With these backprojections the microcircuit's forward updates approximate backpropagation (Sacramento2018;
``docs/science.md`` §2.3). The rate backend imposes both equalities at the start and after every forward update.
The spiking backend keeps B = W_{ℓ+1}ᵀ without copying weights: B_ij receives exactly the increments of W_{ℓ+1,ji}
(the Urbanczik–Senn rule with pre and post swapped: a jump on the spike of cell j of layer ℓ+1, the clock-driven
−η φ(v̂_j) x_i), from B(0) = W_{ℓ+1}(0)ᵀ. B^{PI} = −B needs no synapses of its own: the backprojection reads the
difference of the traces of cell j and of its interneuron partner, v_api = Σ_j B_ij (x_j − x^I_j).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neurofa.config import Config
from neurofa.model.rule import Estimators, FeedbackRule, RateKernel, Rule, SynapseCode, register
from neurofa.model.rules.urbanczik import forward_rule, mirrored_synapse

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["Transpose", "Tied", "PARTNER_TRACE"]

#: the linked variable of layer ℓ+1's pyramidal cells that reads their interneuron partner's trace
PARTNER_TRACE = "x_inter"


@register
@dataclass(frozen=True)
class Transpose(FeedbackRule):
    """B_ℓ follows W_{ℓ+1} (its rate η and low-pass τ_LO, for the spiking mirror of its increments)."""

    name = "bp"
    without_plasticity = "bp"

    eta: float
    tau_lo: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> Transpose:
        forward = forward_rule(model, layer + 1)
        return cls(eta=forward.eta, tau_lo=forward.low_pass)

    @property
    def learns(self) -> bool:
        return self.eta > 0

    def initial(self, B: Any, W_next: Any) -> Any:
        return np.swapaxes(W_next, -1, -2).copy()

    def ties_apical_inhibition(self) -> bool:
        return True

    def rate_init(self, net: RateKernel, projection: Projection) -> None:
        self._impose(net, projection.layer)

    def rate_after_forward(self, net: RateKernel, projection: Projection) -> None:
        self._impose(net, projection.layer)

    @staticmethod
    def _impose(net: RateKernel, layer: int) -> None:
        np.copyto(net.B[layer - 1], np.swapaxes(net.W[layer], -1, -2))
        np.negative(net.B[layer - 1], out=net.B_PI[layer - 1])

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        summed = f"v_api_B_post = w*(x_pre - {PARTNER_TRACE}_pre) : 1 (summed)\n"
        links = ((PARTNER_TRACE, f"I{projection.layer}", "x"),)
        return mirrored_synapse(summed, self.learns, self.eta, self.tau_lo, 0.0, estimators, links)


@register
@dataclass(frozen=True)
class Tied(Rule):
    """B^{PI}_ℓ = −B_ℓ imposed by the backprojection's rule (rate: copied; spiking: no synapses, see the module
    docstring)."""

    name = "tied"
    kinds = ("B_PI",)

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode | None:
        return None
