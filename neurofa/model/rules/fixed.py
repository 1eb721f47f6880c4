r"""Feedback alignment (Lillicrap2016): fixed random backprojections, B_ℓ(t) = B_ℓ(0).

Nothing learns and nothing is injected. The spiking backend runs FA as PAL's program with η_bw = σ = 0 whenever
the configuration gives PAL a learning rate (``plasticity.eta_bw`` > 0 and ``learn_feedback``), so that one
standalone build serves both rules and a sweep over ``plasticity.feedback: [fa, pal]`` compiles once
(``docs/science.md`` §3.5); the weights stay exactly at their initial values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurofa.config import Config, layer_values
from neurofa.model.rule import Estimators, FeedbackRule, SynapseCode, register
from neurofa.model.rules.pal import pal_synapse

if TYPE_CHECKING:
    from neurofa.model.description import Projection

__all__ = ["Fixed"]


@register
@dataclass(frozen=True)
class Fixed(FeedbackRule):
    """Fixed B; ``shares_build`` runs PAL's code with η = 0 (decay ``alpha`` is then a dead parameter)."""

    name = "fa"
    without_plasticity = "fa"

    shares_build: bool = False
    alpha: float = 0.0

    @classmethod
    def from_config(cls, cfg: Config, layer: int, model: dict[str, Projection]) -> Fixed:
        p = cfg.plasticity
        eta_bw = layer_values(p.eta_bw, len(cfg.network.layers) - 2)[layer - 1]
        return cls(shares_build=p.learn_feedback and eta_bw > 0, alpha=p.alpha)

    def synapse(self, projection: Projection, estimators: Estimators, summed: str) -> SynapseCode:
        if self.shares_build:
            return pal_synapse(summed, 0.0, self.alpha)
        return SynapseCode("w : 1\n" + summed)
