"""Recorded spikes: one dataset convention for storing, reading, exporting and plotting them (numpy and xarray).

A spiking run with ``spiking.record_spikes`` returns, beside its result dataset, a spike dataset (written as
``spikes.nc`` in the run directory) with two dimensions:

- ``cell``: every recorded cell, with coordinates ``cell_population`` (``P0`` … ``P{N}``, ``I1`` …), ``cell_kind``
  (input, hidden, output, interneuron), ``cell_layer`` (ℓ) and ``cell_index`` (its index in the population);
- ``spike``: every recorded spike of every seed, in the order they occurred: ``spike_seed``, ``spike_cell`` (an
  index into ``cell``) and ``spike_time`` (ms since the start of the seed's run, an exact multiple of dt).

``attrs``: ``windows`` (JSON list of [start, stop] ms: the intervals recorded, whole presentations), ``t_stop`` (ms,
end of the run), ``dt`` (ms), ``nu_max`` (Hz) and ``seeds`` (JSON list).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["SPIKE_DIMS", "ATTR", "CellTable", "spike_dataset", "spike_trains", "spike_counts", "windows_of",
           "merge_windows", "window_bounds"]

#: the dimensions of the spike dataset
SPIKE_DIMS = ("spike", "cell")
#: the attribute under which a backend hands its spike dataset to :mod:`neurofa.runner` (with its result dataset)
ATTR = "spikes"


@dataclass(frozen=True)
class CellTable:
    """The recorded cells: per cell its population, kind, layer and index in the population (see the module)."""

    population: np.ndarray
    kind: np.ndarray
    layer: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, populations: Sequence[tuple[str, str, int, int]]) -> CellTable:
        """From (name, kind, layer, size) of each recorded population, in order."""
        rows = [(name, kind, layer, i) for name, kind, layer, size in populations for i in range(size)]
        return cls(np.array([r[0] for r in rows], dtype=str), np.array([r[1] for r in rows], dtype=str),
                   np.array([r[2] for r in rows], dtype=np.int64), np.array([r[3] for r in rows], dtype=np.int64))

    def offset(self, population: str) -> int:
        """The index of the first cell of ``population``."""
        return int(np.argmax(self.population == population))

    def __len__(self) -> int:
        return len(self.population)


def window_bounds(window: Sequence[float], end_of_training: float) -> tuple[float, float]:
    """[start, stop] ms of the run from a ``spiking.record_spikes_windows`` entry: negative values and a stop of 0
    count from the end of training."""
    start, stop = window
    return (start + end_of_training if start < 0 else start), (stop + end_of_training if stop <= 0 else stop)


def merge_windows(windows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Sorted, with overlapping or touching intervals joined."""
    out: list[list[float]] = []
    for start, stop in sorted((float(a), float(b)) for a, b in windows):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], stop)
        else:
            out.append([start, stop])
    return out


def spike_dataset(cells: CellTable, seeds: Sequence[int], per_seed: Sequence[tuple[np.ndarray, np.ndarray]],
                  windows: Sequence[Sequence[float]], t_stop: float, dt: float, nu_max: float) -> xr.Dataset:
    """The spike dataset of ``seeds``; ``per_seed[k]`` = (times in ms, cell indices) of seed ``seeds[k]``."""
    times = np.concatenate([np.asarray(t, dtype=float) for t, _ in per_seed]) if per_seed else np.zeros(0)
    cell = np.concatenate([np.asarray(c, dtype=np.int32) for _, c in per_seed]) if per_seed else np.zeros(0, int)
    seed = np.concatenate([np.full(len(t), int(s), dtype=np.int64) for s, (t, _) in zip(seeds, per_seed)]) \
        if per_seed else np.zeros(0, np.int64)
    ds = xr.Dataset(
        {"spike_time": ("spike", times), "spike_cell": ("spike", cell), "spike_seed": ("spike", seed)},
        coords={"cell_population": ("cell", cells.population), "cell_kind": ("cell", cells.kind),
                "cell_layer": ("cell", cells.layer), "cell_index": ("cell", cells.index)},
    )
    ds["spike_time"].attrs["units"] = "ms"
    ds.attrs.update(windows=json.dumps(merge_windows(windows)), t_stop=float(t_stop), dt=float(dt),
                    nu_max=float(nu_max), seeds=json.dumps([int(s) for s in seeds]))
    return ds


def windows_of(spikes: xr.Dataset) -> list[list[float]]:
    """The recorded intervals [start, stop] (ms)."""
    return [[float(a), float(b)] for a, b in json.loads(spikes.attrs["windows"])]


def spike_trains(spikes: xr.Dataset, seed: int) -> list[np.ndarray]:
    """Per cell (in the order of ``cell``) the sorted spike times (ms) of ``seed``."""
    mine = spikes["spike_seed"].values == int(seed)
    cells = spikes["spike_cell"].values[mine]
    times = spikes["spike_time"].values[mine]
    order = np.lexsort((times, cells))
    cells, times = cells[order], times[order]
    bounds = np.searchsorted(cells, np.arange(spikes.sizes["cell"] + 1))
    return [times[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def spike_counts(spikes: xr.Dataset, seed: int, start: float = -np.inf, stop: float = np.inf) -> np.ndarray:
    """Per cell the number of spikes of ``seed`` with start ≤ t < stop."""
    mine = spikes["spike_seed"].values == int(seed)
    t = spikes["spike_time"].values[mine]
    inside = (t >= start) & (t < stop)
    return np.bincount(spikes["spike_cell"].values[mine][inside], minlength=spikes.sizes["cell"])
