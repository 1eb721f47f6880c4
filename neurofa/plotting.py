"""Matplotlib figures of run results, used by the CLI (``neurofa plot``) and by users.

Every function takes arrays or an :class:`xarray.Dataset` and writes PNG files atomically; nothing here runs a
model. Curves over seeds are drawn as mean ± SD bands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["mean_sd_band", "plot_run", "save_figure", "angle_figure"]


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "png"):
        try:
            matplotlib.use("Agg")
        except Exception:  # a user's interactive backend already in use: keep it
            pass
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` atomically and close it."""
    from neurofa.results import atomic_write

    plt = _pyplot()
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
    return path


def mean_sd_band(ax: Any, x: np.ndarray, curves: np.ndarray, label: str | None = None, **kwargs: Any) -> None:
    """Draw mean ± SD over the first axis of ``curves`` (seeds × len(x))."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    mean = np.nanmean(curves, axis=0)
    line = ax.plot(x, mean, label=label, **kwargs)[0]
    if curves.shape[0] > 1:
        sd = np.nanstd(curves, axis=0)
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.25, linewidth=0)


def _time_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    t = ds["time"].values.astype(float)
    units = ds["time"].attrs.get("units", "")
    if units == "ms" and t.size and t[-1] >= 2000:
        return t / 1000.0, "time (s)"
    return t, f"time ({units})" if units else "time"


def angle_figure(ds: xr.Dataset, name: str = "angle_B_WT", title: str | None = None) -> Any:
    """Alignment angle per hidden layer over time, mean ± SD over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    t, xlabel = _time_axis(ds)
    da = ds[name].transpose("seed", "time", "layer")
    for k, layer in enumerate(ds["layer"].values):
        mean_sd_band(ax, t, da.values[:, :, k], label=f"hidden layer {int(layer)}")
    ax.set_xlabel(xlabel)
    sym = {"angle_B_WT": "∠(B, Wᵀ)", "angle_B_RHS": "∠(B, φ'Wᵀφ')"}.get(name, name)
    ax.set_ylabel(f"{sym} (deg)")
    ax.set_ylim(0, max(95.0, float(np.nanmax(da.values)) + 5 if np.isfinite(np.nanmax(da.values)) else 95.0))
    ax.set_title(title or sym)
    ax.legend(frameon=False)
    return fig


def _curve_figure(ds: xr.Dataset, name: str) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    t, xlabel = _time_axis(ds)
    da = ds[name]
    if "layer" in da.dims:
        da = da.transpose("seed", "time", "layer")
        for k, layer in enumerate(ds["layer"].values):
            mean_sd_band(ax, t, da.values[:, :, k], label=f"layer {int(layer)}")
        ax.legend(frameon=False)
    else:
        mean_sd_band(ax, t, da.transpose("seed", "time").values)
    values = da.values[np.isfinite(da.values)]
    if name.startswith("loss") and values.size and np.all(values > 0) and values.max() / values.min() > 100:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(name.replace("_", " "))
    return fig


def plot_run(result: Any, directory: str | Path) -> list[Path]:
    """The standard figures of a run: alignment angles, loss and every other per-time curve of the dataset."""
    ds = result.dataset if hasattr(result, "dataset") else result
    directory = Path(directory)
    written: list[Path] = []
    if "time" not in ds.dims or "seed" not in ds.dims:
        return written
    for name in ("angle_B_WT", "angle_B_RHS"):
        if name in ds and np.isfinite(ds[name].values).any():
            written.append(save_figure(angle_figure(ds, name), directory / f"{name}.png"))
    for name, da in ds.data_vars.items():
        if name in ("angle_B_WT", "angle_B_RHS") or "time" not in da.dims or da.dtype.kind not in "fi":
            continue
        if not set(da.dims) <= {"seed", "time", "layer"} or not np.isfinite(da.values).any():
            continue
        written.append(save_figure(_curve_figure(ds, name), directory / f"{name}.png"))
    return written
