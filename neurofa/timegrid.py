"""Two results on one time grid: the spiking result's variables interpolated to the rate result's record times,
for the comparison levels (:mod:`neurofa.validate`) and their figures (:mod:`neurofa.plotting`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["on_rate_grid"]


def on_rate_grid(rate: xr.Dataset, spiking: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The variable ``name`` of both datasets on the rate dataset's time grid, as (seed, time, ...) arrays.

    The spiking backend may record on another grid (for example with test presentations between the training
    windows); its values are interpolated linearly in time to the rate record times."""
    if name not in rate or name not in spiking:
        missing = "rate" if name not in rate else "spiking"
        raise ValueError(f"the {missing} result has no {name!r} (was simulation.record_detail set?)")
    r, s = rate[name], spiking[name]
    if "time" in r.dims and not np.array_equal(r["time"].values, s["time"].values):
        s = s.interp(time=r["time"].values)
    order = [d for d in ("seed", "time") if d in r.dims]
    return r.transpose(*order, ...).values, s.transpose(*order, ...).values
