r"""Apical inhibition by the interneurons (Sacramento2018 Eq 9): B^{PI}_ℓ learns to cancel the top-down input.

Rate form (``docs/science.md`` §2.3): :math:`\dot B^{PI}_\ell = -\eta_{PI} f(t)\, v_{api,\ell}\, (\bar r^I_\ell)^\top`,
with v_api the apical potential without PAL's noise and r̄^I the interneuron rates the dendrites read. Its fixed
point is a vanishing apical potential when there is no target: the self-predicting state. Spiking form (§3.2): the
same with the interneuron trace x^I (or its expectation x_r) as the factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neurofa.config import Config, layer_values
from neurofa.model.rule import Estimators, Hebbian, Rule, SynapseCode, TimeScale, register

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["ApicalInhibition"]


@register
@dataclass(frozen=True)
class ApicalInhibition(Rule):
    """−η_PI v_api r̄^Iᵀ with η_PI (1/ms, 0 = fixed)."""

    name = "apical_inhibition"
    kinds = ("B_PI",)

    eta: float

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> ApicalInhibition:
        p = cfg.plasticity
        n_hidden = len(cfg.network.layers) - 2
        return cls(eta=layer_values(p.eta_pi, n_hidden)[layer - 1] if p.learn_lateral else 0.0)

    @staticmethod
    def mean_field(cfg: Config, scale: TimeScale) -> dict[str, Any]:
        n_hidden = len(cfg.network.layers) - 2
        return {"eta_pi": [e / scale.k for e in layer_values(cfg.plasticity.eta_pi, n_hidden)]}

    @property
    def learns(self) -> bool:
        return self.eta > 0

    def hebbian(self) -> Hebbian | None:
        return Hebbian("apical", "rate", -self.eta) if self.learns else None

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        if not self.learns:
            return SynapseCode("w : 1\n" + summed)
        model = ("eta : Hz (shared, constant)\n" + summed
                 + f"dw/dt = -eta*learn_post*v_api_post*{estimators.factor}_pre : 1 (clock-driven)\n")
        return SynapseCode(model, values=(("eta", self.eta, "1/ms"),))
