"""Reproduce PAL Fig 3a–c (Max2024) with the rate microcircuit, plus the FA control and a dt-convergence check.

1. ``models/pal_backprojections.yaml`` (5-20-10-20-5, forward weights fixed) for 10 seeds × 10 s through
   :func:`neurofa.runner.run`: ∠(B_ℓ, W_{ℓ+1}ᵀ) per hidden layer, mean ± SD over seeds (published: ≈90° → ≈21°, 10°,
   11° after 10 s).
2. ``models/fa_backprojections.yaml`` for the same seeds: fixed random B, the angles must not move.
3. Convergence in dt: 1 s PAL runs at dt, dt/2 and dt/4 (time constants fixed in ms) driven by the same Wiener path
   (noise drawn on the dt/4 grid and summed, ``noise_refine``); the final angles at dt/2 and dt/4 should differ less
   than those at dt and dt/2.

Writes ``<out>/pal_fig3.png`` and ``<out>/pal_fig3.json``. ``--quick``: 3 seeds × 2 s, and 3 seeds × 0.3 s for the
dt check (a smoke run, not the acceptance numbers).

Usage: ``python scripts/reproduce_pal_fig3.py [--quick] [--out runs/pal_fig3]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import neurofa as nf
from neurofa.config import load_config
from neurofa.plotting import mean_sd_band, save_figure
from neurofa.rate.microcircuit import simulate
from neurofa.results import atomic_write_text, to_jsonable

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = [21.0, 10.0, 11.0]
BOUNDS = [25.0, 15.0, 15.0]


def dt_convergence(seeds: list[int], duration: float, dt: float) -> dict:
    """Final angles (mean over seeds) of ``duration`` ms PAL runs at dt, dt/2, dt/4 with a common noise path."""
    finals = {}
    for m in (1, 2, 4):
        cfg = load_config(ROOT / "models" / "pal_backprojections.yaml",
                          {"simulation.duration": duration, "simulation.dt": dt / m,
                           "simulation.record_interval": duration / 10})
        ds = simulate(cfg, seeds, noise_refine=4 // m)
        finals[dt / m] = ds["angle_B_WT"].isel(time=-1).mean("seed").values
    a, b, c = (finals[dt / m] for m in (1, 2, 4))
    d1, d2 = np.abs(a - b), np.abs(b - c)
    return {
        "duration_ms": duration,
        "dt": [dt, dt / 2, dt / 4],
        "final_angles": [finals[dt / m].tolist() for m in (1, 2, 4)],
        "diff_dt_dt2": d1.tolist(),
        "diff_dt2_dt4": d2.tolist(),
        "converging": bool(np.all(d2 < d1)),
        "converging_mean": bool(d2.mean() < d1.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds x 2 s (smoke run)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "pal_fig3"))
    parser.add_argument("--seeds", type=int, default=None)
    args = parser.parse_args()
    out = Path(args.out)
    n_seeds = args.seeds or (3 if args.quick else 10)
    seeds = list(range(n_seeds))
    duration = 2000.0 if args.quick else 10000.0
    overrides = {"simulation.duration": duration}

    t0 = time.perf_counter()
    pal = nf.run(ROOT / "models" / "pal_backprojections.yaml", seeds=seeds, overrides=overrides, progress=True)
    t_pal = time.perf_counter() - t0
    fa = nf.run(ROOT / "models" / "fa_backprojections.yaml", seeds=seeds, overrides=overrides, progress=True)
    ds, ds_fa = pal.dataset, fa.dataset
    start = ds["angle_B_WT_initial"].mean("seed").values
    final = ds["angle_B_WT"].isel(time=-1).mean("seed").values
    final_sd = ds["angle_B_WT"].isel(time=-1).std("seed").values
    fa_change = np.abs(ds_fa["angle_B_WT"].isel(time=-1) - ds_fa["angle_B_WT_initial"]).max("seed").values

    t1 = time.perf_counter()
    conv = dt_convergence(seeds, 300.0 if args.quick else 1000.0, load_config(
        ROOT / "models" / "pal_backprojections.yaml").simulation.dt)
    t_conv = time.perf_counter() - t1

    plt = __import__("matplotlib.pyplot", fromlist=["pyplot"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    t = np.concatenate([[0.0], ds["time"].values]) / 1000.0
    for k, layer in enumerate(ds["layer"].values):
        curves = np.concatenate([ds["angle_B_WT_initial"].values[:, None, k], ds["angle_B_WT"].values[:, :, k]], 1)
        mean_sd_band(ax, t, curves, label=f"PAL, hidden layer {int(layer)}")
        ax.axhline(PUBLISHED[k], color=ax.lines[-1].get_color(), ls=":", lw=0.8)
    for k in range(ds_fa.sizes["layer"]):
        fa_curves = np.concatenate([ds_fa["angle_B_WT_initial"].values[:, None, k],
                                    ds_fa["angle_B_WT"].values[:, :, k]], 1)
        ax.plot(t, fa_curves.mean(0), color="gray", ls="--", lw=0.8, label="FA" if k == 0 else None)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("∠(B, Wᵀ) (deg)")
    ax.set_ylim(0, 100)
    ax.set_title(f"PAL Fig 3 (rate microcircuit, {n_seeds} seeds; dotted: published)")
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, out / "pal_fig3.png")

    report = {
        "seeds": n_seeds,
        "duration_ms": duration,
        "angle_start_mean": start.tolist(),
        "angle_final_mean": final.tolist(),
        "angle_final_sd": final_sd.tolist(),
        "angle_RHS_final_mean": ds["angle_B_RHS"].isel(time=-1).mean("seed").values.tolist(),
        "published_final": PUBLISHED,
        "acceptance_bounds": BOUNDS,
        "within_bounds": bool(np.all(final <= BOUNDS)),
        "fa_max_abs_change": fa_change.tolist(),
        "fa_within_5deg": bool(np.all(fa_change <= 5.0)),
        "dt_convergence": conv,
        "wall_time_pal_s": t_pal,
        "wall_time_dt_convergence_s": t_conv,
    }
    atomic_write_text(out / "pal_fig3.json", json.dumps(to_jsonable(report), indent=2) + "\n")
    print(json.dumps(to_jsonable(report), indent=2))


if __name__ == "__main__":
    main()
