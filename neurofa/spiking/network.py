"""Brian2 objects of one spiking microcircuit: groups, synapses, timed inputs, coarse monitors and spike monitors.

:func:`build_circuit` creates the objects a :class:`~neurofa.spiking.structure.Structure` lists, with the per-run
values of a :class:`~neurofa.spiking.structure.RunValues` (weights, constants, input stream, seed). Nothing here
knows a rule or a population kind: the structure says what to build. In standalone mode the program built from
these objects serves every run (:mod:`neurofa.spiking.program`), without recompiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import (
    Clock,
    EventMonitor,
    Hz,
    Network,
    NeuronGroup,
    StateMonitor,
    Synapses,
    TimedArray,
    check_units,
    implementation,
    linked_var,
    ms,
)

from neurofa.spiking.structure import RunValues, Structure

__all__ = ["Circuit", "build_circuit", "quantity", "binomial_inverse", "POPULATION_SPIKES"]

_UNITS = {"Hz": Hz, "ms": ms, "1/ms": 1000.0 * Hz}


def quantity(value: float, unit: str) -> Any:
    """A Brian2 quantity from a value in one of the structure's units ("Hz", "1/ms", "ms", "1")."""
    return value if unit == "1" else value * _UNITS[unit]


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
    spike_monitors: dict[str, EventMonitor] = field(default_factory=dict)

    def assign(self, values: RunValues) -> None:
        """Runtime mode: set the per-run values directly (the TimedArrays were built with them)."""
        for (obj, var), (value, unit) in values.shared.items():
            setattr(self.objects[obj], var, quantity(value, unit))
        for obj, w in values.weights.items():
            self.objects[obj].w = np.asarray(w, dtype=float)
        if self.structure.regular_input:
            self.objects["P0"].phase = np.asarray(values.input_phase, dtype=float)
        self.objects["P0"].rng_seed = int(values.seed)


_BINOMIAL_CPP = """
static inline double population_spikes_scaled(const double u, const double n, const double p)
{
    // P(0) = (1-p)^n below the normal doubles: the same recursion on pmf and cdf divided by e^scale (scale =
    // ln P(0) at first; both are multiplied by the exact 2^-1000 whenever the cdf passes 1e300), and u >= cdf
    // compared as ln u >= ln cdf + scale
    const double odds = p / (1.0 - p);
    const double log_u = log(u);
    double scale = n * log1p(-p);
    double pmf = 1.0;
    double cdf = 1.0;
    double k = 0.0;
    while (k < n && log_u >= log(cdf) + scale) {
        pmf *= (n - k) / (k + 1.0) * odds;
        k += 1.0;
        cdf += pmf;
        if (cdf > 1e300) {
            pmf *= 9.3326361850321888e-302;  // 2^-1000
            cdf *= 9.3326361850321888e-302;
            scale += 693.14718055994531;  // 1000 ln 2
        }
    }
    return k;
}

static inline double population_spikes(const double u, const double n, const double p)
{
    // the inverse distribution function of Binomial(n, p) at u in [0, 1): k with F(k-1) <= u < F(k)
    if (p <= 0.0) return 0.0;
    if (p >= 1.0) return n;
    const double q = 1.0 - p;
    const double odds = p / q;
    double pmf = pow(q, n);
    if (pmf < 2.2250738585072014e-308) return population_spikes_scaled(u, n, p);  // below DBL_MIN
    double cdf = pmf;
    double k = 0.0;
    while (u >= cdf && k < n) {
        pmf *= (n - k) / (k + 1.0) * odds;
        k += 1.0;
        cdf += pmf;
    }
    return k;
}
"""


_BINOMIAL_CYTHON = """
cdef double population_spikes_scaled(double u, double n, double p):
    # P(0) below the normal doubles: the scaled recursion of the C++ implementation
    cdef double odds = p / (1.0 - p)
    cdef double log_u = log(u) if u > 0.0 else -1e308
    cdef double scale = n * log1p(-p)
    cdef double pmf = 1.0
    cdef double cdf = 1.0
    cdef double k = 0.0
    while k < n and log_u >= log(cdf) + scale:
        pmf *= (n - k) / (k + 1.0) * odds
        k += 1.0
        cdf += pmf
        if cdf > 1e300:
            pmf *= 9.3326361850321888e-302
            cdf *= 9.3326361850321888e-302
            scale += 693.14718055994531
    return k

cdef double population_spikes(double u, double n, double p):
    # the inverse distribution function of Binomial(n, p) at u in [0, 1), as the C++ implementation
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    cdef double q = 1.0 - p
    cdef double odds = p / q
    cdef double pmf = q**n
    if pmf < 2.2250738585072014e-308:
        return population_spikes_scaled(u, n, p)
    cdef double cdf = pmf
    cdef double k = 0.0
    while u >= cdf and k < n:
        pmf *= (n - k) / (k + 1.0) * odds
        k += 1.0
        cdf += pmf
    return k
"""


#: the exact 2^-1000 by which the scaled recursion shrinks its pmf and cdf, and its logarithm
_SHRINK, _LOG_SHRINK = 2.0 ** -1000, 1000.0 * np.log(2.0)


def _binomial_inverse_scaled(u: np.ndarray, n: float, p: np.ndarray) -> np.ndarray:
    """:func:`binomial_inverse` where P(0) = (1 − p)^n is below the normal doubles: the same recursion on the pmf and
    cdf divided by e^scale (scale = ln P(0) at first, then shrunk by 2^−1000 as the cdf grows past 1e300), with
    u ≥ F(k) compared as ln u ≥ ln cdf + scale."""
    odds = p / (1.0 - p)
    with np.errstate(divide="ignore"):
        log_u = np.log(u)
    scale = n * np.log1p(-p)
    pmf, cdf, k = np.ones_like(u), np.ones_like(u), np.zeros_like(u)
    for step in range(int(n)):
        more = log_u >= np.log(cdf) + scale
        if not more.any():
            break
        pmf = np.where(more, pmf * (n - step) / (step + 1.0) * odds, pmf)
        k = np.where(more, step + 1.0, k)
        cdf = np.where(more, cdf + pmf, cdf)
        big = cdf > 1e300
        pmf, cdf = np.where(big, pmf * _SHRINK, pmf), np.where(big, cdf * _SHRINK, cdf)
        scale = np.where(big, scale + _LOG_SHRINK, scale)
    return k


def binomial_inverse(u: np.ndarray, n: float, p: np.ndarray) -> np.ndarray:
    """The inverse distribution function of Binomial(n, p) at u ∈ [0, 1), elementwise: the same recursion
    P(k+1) = P(k) (n − k)/(k + 1) · p/(1 − p) from P(0) = (1 − p)^n as the C++ implementation, and like it scaled
    (:func:`_binomial_inverse_scaled`) where P(0) is below the normal doubles, so any n and p are exact."""
    u = np.asarray(u, dtype=float)
    p = np.broadcast_to(np.asarray(p, dtype=float), u.shape)
    n = float(np.max(n))
    inner = (p > 0) & (p < 1)
    q = np.where(inner, 1.0 - p, 1.0)
    odds = np.where(inner, p, 0.0) / q
    pmf = q**n
    scaled = inner & (pmf < np.finfo(float).tiny)
    inner = inner & ~scaled
    cdf = pmf.copy()
    k = np.zeros_like(u)
    for step in range(int(n)):
        more = inner & (u >= cdf)
        if not more.any():
            break
        pmf = pmf * (n - step) / (step + 1.0) * odds
        k = np.where(more, step + 1.0, k)
        cdf = np.where(more, cdf + pmf, cdf)
    if scaled.any():
        k[scaled] = _binomial_inverse_scaled(u[scaled], n, p[scaled])
    return np.where(p >= 1, n, k)


@implementation("cpp", _BINOMIAL_CPP)
@implementation("cython", _BINOMIAL_CYTHON)
@check_units(u=1, n=1, p=1, result=1)
def population_spikes(u: Any, n: Any, p: Any) -> Any:
    """Brian2 function: how many of a population's n cells fire, given the uniform number u and each cell's
    probability p (:func:`binomial_inverse`; ``docs/science.md`` §3.9)."""
    return binomial_inverse(u, n, p)


#: the Brian2 function the population draw of :func:`neurofa.spiking.equations.population_draw` calls
POPULATION_SPIKES = population_spikes


def _connect_dense(syn: Synapses, n_pre: int, n_post: int) -> None:
    """All-to-all in row-major order of the (post × pre) matrix."""
    pre = np.tile(np.arange(n_pre), n_post)
    post = np.repeat(np.arange(n_post), n_pre)
    syn.connect(i=pre, j=post)


def _timed_arrays(s: Structure, values: RunValues, prefix: str) -> dict[str, TimedArray]:
    t_pres = s.t_pres * ms
    return {name: TimedArray(a, dt=t_pres, name=f"{prefix}_{name}") for name, a in values.timed(s).items()}


def build_circuit(structure: Structure, values: RunValues, prefix: str) -> Circuit:
    """Create every Brian2 object of ``structure`` with ``values`` as their initial values.

    ``prefix`` makes object names unique per build (several structures may live in one process); objects are
    scheduled by Brian2 in the order (slot, order, name), so the prefix does not change it.
    """
    s = structure
    timed = _timed_arrays(s, values, prefix)
    namespace: dict[str, Any] = dict(timed, population_spikes=POPULATION_SPIKES)
    objects: dict[str, Any] = {}
    # one clock for every group and synapse object (and one per monitor interval): Brian2's standalone scheduler
    # collects the clocks due at every step, so each extra clock costs time every step (same times, same schedule)
    clock = Clock(dt=s.dt * ms, name=f"{prefix}_clock")
    monitor_clocks: dict[float, Clock] = {}
    for g in s.groups:
        group = NeuronGroup(g.size, g.equations, threshold=g.threshold, reset=g.reset, method="euler",
                            events=dict(g.events) or None, namespace=namespace, name=f"{prefix}_{g.name}",
                            order=g.order, clock=clock)
        if g.before_thresholds:  # in the group's order, so the draws keep the order of the thresholds
            group.run_regularly(g.before_thresholds, when="before_thresholds", order=g.order,
                                name=f"{prefix}_{g.name}_draw")
        objects[g.name] = group
    for g in s.groups:
        for variable, source, source_variable in g.links:
            setattr(objects[g.name], variable, linked_var(objects[source], source_variable))
    for syn in s.synapses:
        obj = Synapses(objects[syn.pre], objects[syn.post], model=syn.model, on_pre=syn.on_pre, on_post=syn.on_post,
                       method="euler", namespace=namespace, name=f"{prefix}_{syn.name}", clock=clock,
                       order=syn.order)
        _connect_dense(obj, len(objects[syn.pre]), len(objects[syn.post]))
        objects[syn.name] = obj
    circuit = Circuit(s, Network(), objects, timed)
    circuit.assign(values)
    for mon in s.monitors:
        if mon.event:
            circuit.spike_monitors[mon.source] = EventMonitor(objects[mon.source], mon.event,
                                                              name=f"{prefix}_{mon.name}")
            continue
        if mon.dt not in monitor_clocks:
            monitor_clocks[mon.dt] = Clock(dt=mon.dt * ms, name=f"{prefix}_clock_{len(monitor_clocks)}")
        monitor = StateMonitor(objects[mon.source], list(mon.variables), record=True, clock=monitor_clocks[mon.dt],
                               when="start", name=f"{prefix}_{mon.name}")
        if mon.name == "mon_test":
            circuit.test_monitor = monitor
        elif mon.variables == ("w",):
            circuit.weight_monitors[mon.source] = monitor
        else:
            circuit.layer_monitors[mon.source] = monitor
    circuit.network.add(*objects.values(), *circuit.weight_monitors.values(), *circuit.layer_monitors.values(),
                        *circuit.spike_monitors.values())
    if circuit.test_monitor is not None:
        circuit.network.add(circuit.test_monitor)
    return circuit
