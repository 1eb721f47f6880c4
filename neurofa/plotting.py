"""Matplotlib figures of run results, used by the CLI (``neurofa plot``) and by users.

Every function takes arrays or an :class:`xarray.Dataset` and writes PNG files atomically; nothing here runs a
model. Curves over seeds are drawn as mean ± SD bands.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofa.atomic import atomic_write
from neurofa.spikes import windows_of
from neurofa.timegrid import on_rate_grid

__all__ = ["pyplot", "mean_sd_band", "plot_run", "save_figure", "angle_figure", "comparison_figures",
           "raster_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` (matplotlib falls back to Agg where there is no display), imported on first use: a run
    that draws no figure does not pay matplotlib's import (about 0.3 s)."""
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` atomically and close it."""
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png"))
    pyplot().close(fig)
    return path


def mean_sd_band(ax: Any, x: np.ndarray, curves: np.ndarray, label: str | None = None, **kwargs: Any) -> None:
    """Draw mean ± SD over the first axis of ``curves`` (seeds × len(x))."""
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    with warnings.catch_warnings():  # times with no finite value (a diverged run) draw as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        sd = np.nanstd(curves, axis=0)
    line = ax.plot(x, mean, label=label, **kwargs)[0]
    if curves.shape[0] > 1:
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.25, linewidth=0)


def _time_axis(ds: xr.Dataset) -> tuple[np.ndarray, str]:
    t = ds["time"].values.astype(float)
    units = ds["time"].attrs.get("units", "")
    if units == "ms" and t.size and t[-1] >= 2000:
        return t / 1000.0, "time (s)"
    return t, f"time ({units})" if units else "time"


def angle_figure(ds: xr.Dataset, name: str = "angle_B_WT", title: str | None = None) -> Any:
    """Alignment angle per hidden layer over time, mean ± SD over seeds."""
    plt = pyplot()
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
    plt = pyplot()
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


def raster_figure(spikes: xr.Dataset, seed: int | None = None, max_windows: int = 2, bins: int = 200) -> Any:
    """Spike raster per population (rows) of one seed (default: the first), and below them each population's
    rate over time (spikes per cell and second in bins of 1/``bins`` of a window); one column per recorded window
    (the first and the last if there are more than ``max_windows``)."""
    seeds = json.loads(spikes.attrs["seeds"])
    seed = int(seeds[0] if seed is None else seed)
    windows = windows_of(spikes)
    if len(windows) > max_windows:
        windows = [windows[0], windows[-1]]
    populations = list(dict.fromkeys(str(p) for p in spikes["cell_population"].values))
    kinds = {str(p): str(k) for p, k in zip(spikes["cell_population"].values, spikes["cell_kind"].values)}
    cell_population = spikes["cell_population"].values.astype(str)
    mine = spikes["spike_seed"].values == seed
    times, cells = spikes["spike_time"].values[mine], spikes["spike_cell"].values[mine]
    scale, unit = (1000.0, "s") if windows[-1][1] >= 2000 else (1.0, "ms")
    from matplotlib import ticker

    plt = pyplot()
    fig, axes = plt.subplots(len(populations) + 1, len(windows), figsize=(4.5 * len(windows), 1.3 * len(populations)
                                                                          + 2.2), sharex="col", squeeze=False)
    for col, (start, stop) in enumerate(windows):
        inside = (times >= start) & (times < stop)
        edges = np.linspace(start, stop, bins + 1)
        for row, population in enumerate(populations):
            members = np.flatnonzero(cell_population == population)
            pick = inside & np.isin(cells, members)
            ax = axes[row, col]
            ax.scatter(times[pick] / scale, cells[pick] - members[0], s=1.0, marker="|", color=f"C{row}",
                       linewidths=0.5, rasterized=True)
            ax.set_ylim(-0.5, len(members) - 0.5)
            ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=4, integer=True))  # cell indices
            if col == 0:
                ax.set_ylabel(f"{population}\n({kinds[population]})")
            counts, _ = np.histogram(times[pick], edges)
            rate = counts / (len(members) * np.diff(edges) / 1000.0)
            axes[-1, col].plot(0.5 * (edges[1:] + edges[:-1]) / scale, rate, color=f"C{row}", label=population)
        axes[0, col].set_title(f"seed {seed}, {start / scale:g}–{stop / scale:g} {unit}")
        axes[-1, col].set_xlabel(f"time ({unit})")
    axes[-1, 0].set_ylabel("rate (Hz per cell)")
    axes[-1, -1].legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    return fig


def plot_run(ds: xr.Dataset, directory: str | Path, spikes: xr.Dataset | None = None) -> list[Path]:
    """The standard figures of a run's dataset: alignment angles, loss and every other per-time curve, and, with
    recorded ``spikes``, the raster and population rates (``spikes.png``, :func:`raster_figure`)."""
    directory = Path(directory)
    written: list[Path] = []
    if spikes is not None and spikes.sizes.get("spike", 0):
        written.append(save_figure(raster_figure(spikes), directory / "spikes.png"))
    if "time" not in ds.dims or "seed" not in ds.dims:
        return written
    for name in ("angle_B_WT", "angle_B_RHS"):
        if name in ds and np.isfinite(ds[name].values).any():
            written.append(save_figure(angle_figure(ds, name), directory / f"{name}.png"))
    for key, da in ds.data_vars.items():
        name = str(key)
        if name in ("angle_B_WT", "angle_B_RHS") or "time" not in da.dims or da.dtype.kind not in "fi":
            continue
        if not set(da.dims) <= {"seed", "time", "layer"} or not np.isfinite(da.values).any():
            continue
        written.append(save_figure(_curve_figure(ds, name), directory / f"{name}.png"))
    return written


def _comparison_scatter(rate: xr.Dataset, spiking: xr.Dataset, names: tuple[str, ...]) -> Any:
    names = tuple(n for n in names if n in rate and n in spiking)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        ref, tst = on_rate_grid(rate, spiking, name)
        r, s = ref[:, 1:].ravel(), tst[:, 1:].ravel()
        ax.plot(r, s, ".", ms=2, alpha=0.4)
        lo, hi = np.nanmin([r.min(), s.min()]), np.nanmax([r.max(), s.max()])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"{name} (rate)")
        ax.set_ylabel(f"{name} (spiking)")
    fig.suptitle("window means per neuron: spiking vs rate")
    fig.tight_layout()
    return fig


def _overlay(rate: xr.Dataset, spiking: xr.Dataset, name: str, n_units: int = 4) -> Any:
    """Traces of a few units of seed 0 in both backends (solid: rate, dashed: spiking)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    t, xlabel = _time_axis(rate)
    r = rate[name].transpose("seed", "time", ...).values[0]
    s = spiking[name].transpose("seed", "time", ...).values[0]
    ts, _ = _time_axis(spiking)
    picks = np.linspace(0, r.shape[-1] - 1, min(n_units, r.shape[-1])).astype(int)
    for k in picks:
        line = ax.plot(t, r[:, k], lw=1.2)[0]
        ax.plot(ts, s[:, k], "--", lw=1.0, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{name} (solid: rate, dashed: spiking)")
    return fig


def _angles_both(rate: xr.Dataset, spiking: xr.Dataset) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    t, xlabel = _time_axis(rate)
    ts, _ = _time_axis(spiking)
    r = rate["angle_B_WT"].transpose("seed", "time", "layer").values
    s = spiking["angle_B_WT"].transpose("seed", "time", "layer").values
    for k, layer in enumerate(rate["layer"].values):
        mean_sd_band(ax, t, r[:, :, k], label=f"rate, layer {int(layer)}")
        mean_sd_band(ax, ts, s[:, :, k], label=f"spiking, layer {int(layer)}", linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("∠(B, Wᵀ) (deg)")
    ax.legend(frameon=False, fontsize=7)
    return fig


def _fit_panel(ax: Any, scales: np.ndarray, errors: np.ndarray, slope: float, color: str, label: str,
               axis: str = "scale") -> None:
    """Errors (n_scales, n_seeds) on log–log axes with their fitted power law and the 1/√``axis`` reference."""
    for j in range(errors.shape[1]):
        ax.loglog(scales, errors[:, j], "o", color=color, alpha=0.5)
    with np.errstate(divide="ignore"):
        mean = np.exp(np.nanmean(np.where(errors > 0, np.log(errors), np.nan), axis=1))
    ax.loglog(scales, mean[0] * (scales / scales[0]) ** (-slope), "-", color=color,
              label=f"{label}: fit ∝ {axis}^−{slope:.2f}")
    ax.loglog(scales, mean[0] * (scales / scales[0]) ** -0.5, "--", color=color, lw=0.8, alpha=0.6)


def _convergence(summary: dict[str, Any], level: str = "convergence") -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    axis = "scale" if level == "convergence" else "N"
    _fit_panel(ax, np.asarray(summary[f"{level}_scales"], dtype=float),
               np.asarray(summary[f"{level}_errors"], dtype=float), float(summary[f"{level}_slope"]), "C0",
               "rates", axis)
    ax.set_xlabel("ν_max scale" if level == "convergence" else "cells per unit N")
    ax.set_ylabel("relative RMS error of rates")
    ax.set_title(f"dashed: 1/√{axis}", fontsize=8)
    ax.legend(frameon=False, fontsize=7)
    return fig


def _population_learning(summary: dict[str, Any]) -> Any:
    """The learning gaps against the cells per unit N, one panel per measure, with their fits."""
    sizes = np.asarray(summary["populations_learning_sizes"], dtype=float)
    measures = [m for m in ("weights", "angle", "accuracy") if f"populations_learning_{m}_slope" in summary]
    labels = {"weights": "RMS Δ weights / range", "angle": "|Δ final angle| (deg)", "accuracy": "|Δ final accuracy|"}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(measures), figsize=(4.0 * len(measures), 3.4), squeeze=False)
    for ax, m in zip(axes[0], measures):
        _fit_panel(ax, sizes, np.asarray(summary[f"populations_learning_{m}"], dtype=float),
                   float(summary[f"populations_learning_{m}_slope"]), "C1", m, "N")
        lo, hi = summary[f"populations_learning_{m}_slope_ci"]
        ax.set_title(f"95 % interval of the exponent: [{lo:.2f}, {hi:.2f}]", fontsize=8)
        ax.set_xlabel("cells per unit N")
        ax.set_ylabel(labels[m])
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle("spiking learning against its mean field (dashed: 1/√N)", fontsize=9)
    fig.tight_layout()
    return fig


def comparison_figures(datasets: dict[str, xr.Dataset], summary: dict[str, Any], directory: str | Path) -> list[Path]:
    """Figures of ``neurofa compare``: rate-vs-spiking scatter of neuron rates, overlaid potentials and weight
    trajectories, the angle curves of both backends and the convergence plots (in ν_max and in cells per unit)."""
    directory = Path(directory)
    written: list[Path] = []
    dyn_r, dyn_s = datasets.get("dynamics_rate"), datasets.get("dynamics_spiking")
    if dyn_r is not None and dyn_s is not None:
        written.append(save_figure(_comparison_scatter(dyn_r, dyn_s, ("rate_pyr", "rate_int", "v_bas", "v_api")),
                                   directory / "dynamics_scatter.png"))
        for name in ("v_bas", "v_api"):
            if name in dyn_r and name in dyn_s:
                written.append(save_figure(_overlay(dyn_r, dyn_s, name), directory / f"dynamics_{name}.png"))
    learn_r, learn_s = datasets.get("learning_rate"), datasets.get("learning_spiking")
    if learn_r is not None and learn_s is not None:
        if "angle_B_WT" in learn_r and "angle_B_WT" in learn_s:
            written.append(save_figure(_angles_both(learn_r, learn_s), directory / "learning_angles.png"))
        for name in ("weights_W", "weights_B"):
            if name in learn_r and name in learn_s:
                written.append(save_figure(_overlay(learn_r, learn_s, name, 6), directory / f"learning_{name}.png"))
    if "convergence_slope" in summary:
        written.append(save_figure(_convergence(summary), directory / "convergence.png"))
    if "populations_slope" in summary:
        written.append(save_figure(_convergence(summary, "populations"), directory / "populations.png"))
    if "populations_learning_weights_slope" in summary:
        written.append(save_figure(_population_learning(summary), directory / "populations_learning.png"))
    return written
