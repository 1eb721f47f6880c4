"""What a run will cost, estimated before anything is allocated, and the bounds a run may not exceed.

Each backend estimates its time steps (summed over seeds) and the memory it needs: the network (weights, their
increments and state), the task's data, the presentation sequence and the recordings. The runner refuses a
configuration above ``simulation.max_steps`` or ``simulation.max_memory_gb`` with a one-line error that gives the
estimate (raise the bound with ``--set`` to run it anyway). The estimates are upper bounds of the large arrays to
within a small factor, not a profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from neurofa.config import Config, ConfigError
from neurofa.tasks import task_spec

__all__ = ["Estimate", "check_bounds", "GIB", "microcircuit_size", "data_values"]

GIB = 2.0**30


@dataclass(frozen=True)
class Estimate:
    """``steps``: time steps (or minibatch updates) summed over seeds; ``bytes``: memory of the recordings."""

    steps: float
    bytes: float

    def describe(self) -> str:
        return f"{self.steps:.3g} time steps, about {self.bytes / 2**20:.3g} MiB of memory"


def check_bounds(cfg: Config, estimate: Estimate, where: str = "") -> None:
    """Refuse a run whose estimate exceeds the configuration's bounds (one line naming the key and the estimate)."""
    sim = cfg.simulation
    if estimate.steps > sim.max_steps:
        raise ConfigError(
            f"{where}the run needs {estimate.steps:.3g} time steps over all seeds, more than simulation.max_steps = "
            f"{sim.max_steps:.3g} (check simulation.duration and dt; --set simulation.max_steps=... to run it)")
    if estimate.bytes > sim.max_memory_gb * GIB:
        raise ConfigError(
            f"{where}the run needs about {estimate.bytes / GIB:.3g} GiB of memory, more than "
            f"simulation.max_memory_gb = {sim.max_memory_gb:g} (a smaller network or data set, or fewer records: "
            "simulation.record_interval, record_detail, spiking.record_spikes and its windows; "
            "--set simulation.max_memory_gb=... to run it)")


def microcircuit_size(sizes: list[int]) -> tuple[float, float]:
    """(weights, units) of a microcircuit with layer sizes ``sizes``: W, W^IP, B and B^PI, and every pyramidal
    cell and interneuron (floats: sizes from a configuration may be absurd, and must not overflow)."""
    n = [float(v) for v in sizes]
    forward = sum(a * b for a, b in zip(n[1:], n[:-1]))
    lateral = sum(n[ell] * n[ell + 1] for ell in range(1, len(n) - 1))
    return forward + 3.0 * lateral, sum(n[1:]) + sum(n[2:])


def data_values(cfg: Config, n_seeds: int) -> float:
    """Values of the task's inputs and targets: samples × (n_0 + n_N), per seed for synthetic inputs."""
    spec = task_spec(cfg.task.name)
    sizes = cfg.network.layers
    return float(spec.samples(cfg.task)) * (float(sizes[0]) + float(sizes[-1])) * (n_seeds if spec.synthetic else 1)
