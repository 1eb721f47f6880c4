"""Divergence and saturation: a run whose state became non-finite stops with a clear error, what it recorded kept.

Backends raise :class:`DivergenceError` naming the seeds, the simulated time and the quantity that went
non-finite, with the dataset recorded so far (records after the divergence are NaN). :func:`neurofa.runner.run`
turns that dataset into a :class:`~neurofa.results.Result` whose summary says ``"diverged": true``, and the command
line writes it to the run directory and exits with :data:`EXIT_DIVERGED`. :func:`saturation_warnings` names what a
finished run could see of a silent failure (a loss that grew by orders of magnitude, weights at the float limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["EXIT_DIVERGED", "WEIGHT_LIMIT", "LOSS_GROWTH", "DivergenceError", "non_finite", "saturation_warnings"]

#: exit status of ``neurofa run`` when the simulation diverged (partial results are on disk)
EXIT_DIVERGED = 4
#: weights beyond this magnitude are at the float limit (squares overflow)
WEIGHT_LIMIT = 1e100
#: a final loss this many times the first recorded one is a warning
LOSS_GROWTH = 1e2


class DivergenceError(FloatingPointError):
    """The state of ``seeds`` became non-finite (``quantity``) by simulated time ``time`` (in ``units``).

    ``partial`` is the dataset recorded up to then; the runner attaches the :class:`~neurofa.results.Result` built
    from it as ``result``."""

    def __init__(self, name: str, seeds: Sequence[int], time: float, units: str, quantity: str,
                 partial: xr.Dataset | None = None, hint: str = "lower the learning rates or dt"):
        self.seeds = [int(s) for s in seeds]
        self.time, self.units, self.quantity = float(time), units, quantity
        self.partial = partial
        self.result: Any = None
        which = ", ".join(map(str, self.seeds))
        super().__init__(f"{name}: diverged: {quantity} of seed {which} became non-finite by t = {time:g} {units} "
                         f"({hint}); the results recorded until then are kept")

    def summary(self) -> dict[str, Any]:
        """The summary keys of a diverged run."""
        return {"diverged": True, "diverged_seeds": self.seeds, "diverged_time": self.time,
                "diverged_time_units": self.units, "diverged_quantity": self.quantity}


def non_finite(arrays: Mapping[str, np.ndarray], seeds: Sequence[int]) -> tuple[str, list[int]] | None:
    """The first of ``arrays`` (name → array with a leading seed axis) that holds a non-finite value, and the
    seeds where it does; None when all are finite."""
    for name, values in arrays.items():
        values = np.asarray(values, dtype=float)
        bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
        if bad.any():
            return name, [int(s) for s, b in zip(seeds, bad) if b]
    return None


def saturation_warnings(ds: xr.Dataset, max_abs_weight: float | None) -> list[str]:
    """Warnings for a finished run that may have failed silently: the loss grew by more than :data:`LOSS_GROWTH`
    from its first record to its last (per seed), or a weight exceeds :data:`WEIGHT_LIMIT`."""
    out = []
    if "loss" in ds and "time" in ds["loss"].dims and ds.sizes.get("time", 0) > 1:
        loss = ds["loss"].transpose("seed", "time").values
        first, last = loss[:, 0], loss[:, -1]
        grew = np.isfinite(first) & np.isfinite(last) & (first > 0) & (last > LOSS_GROWTH * first)
        if grew.any():
            seeds = [int(s) for s, g in zip(ds["seed"].values, grew) if g]
            out.append(f"the loss grew more than {LOSS_GROWTH:g}-fold during the run (seeds {seeds}): the learning "
                       "rates may be too large")
    if max_abs_weight is not None and max_abs_weight > WEIGHT_LIMIT:
        out.append(f"weights reached {max_abs_weight:.3g}, at the float limit: the run saturated (lower the learning "
                   "rates)")
    return out
