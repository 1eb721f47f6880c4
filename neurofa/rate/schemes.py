r"""The step schemes of the rate microcircuit: the order of operations within one Euler step (``docs/science.md``
§2.5). A scheme is a function ``scheme(net, noise)`` of a :class:`~neurofa.rate.dynamics.Microcircuit`; the
registry :data:`SCHEMES` maps ``simulation.scheme`` to it.

- ``lagged`` (the PAL authors' discretisation): (1) r̆_k = φ(ŭ_k) with ŭ_k the previous step's u_eff, and the
  dendrites' presynaptic rates and the interneurons' nudging follow; (2) dendrites and somatic drive with the
  previous noise sample; (3) ξ_k drawn; (4) somatic Euler step; (5) plasticity from this step's quantities, B from ξ_k
  and r^HP of the previous step; (6) target filter and r^HP update. A signal crosses one layer per step.
- ``instant``: the dendrites read the rates stored by the previous step, u_eff follows from them (the interneurons'
  nudging from this step's u_eff of their partners), and this step's rates are φ(u_eff) of the same step — the
  Poisson rate of the spiking backend. Presynaptic rates are updated after plasticity.

Both share the feed-forward chain r → v → u_eff → r; they differ in the postsynaptic factor of plasticity (this
step's φ(u_eff) against the previous step's), in the interneuron nudging and in when a new input reaches the first
dendrites. In the lagged scheme the first step after an input switch pairs the previous input's rate with the new
basal prediction, a spurious forward update of the size of the input change; models that learn forward weights
therefore use ``instant``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from neurofa.rate.dynamics import Microcircuit

__all__ = ["SCHEMES", "Scheme", "lagged", "instant"]

Scheme = Callable[["Microcircuit", "np.ndarray | None"], None]


def lagged(net: Microcircuit, noise: np.ndarray | None) -> None:
    """One step in the authors' order (module docstring)."""
    lay = net.layout
    src = net.prospective_voltage()
    net.rates(src, net.r)
    net.update_pre()
    net.d2[:, lay.int_idx] = np.take(src, lay.pair_idx, axis=1)
    net.dendrites()
    net.drive()
    net.advance_noise(noise)
    net.euler()
    net.plasticity()
    net.filter_target_and_high_pass()


def instant(net: Microcircuit, noise: np.ndarray | None) -> None:
    """One step with this step's rates from this step's u_eff (module docstring)."""
    lay = net.layout
    net.dendrites()
    net.drive()
    nudge = np.take(net.prospective_voltage(), lay.pair_idx, axis=1)
    net.d2[:, lay.int_idx] = nudge
    net.ueff[:, lay.int_idx] = net.a_int * net.d1[:, lay.int_idx] + net.b_int * nudge
    net.advance_noise(noise)
    net.euler()
    net.rates(net.prospective_voltage(), net.r)
    net.plasticity()
    net.update_pre()
    net.filter_target_and_high_pass()


SCHEMES: dict[str, Scheme] = {"lagged": lagged, "instant": instant}
