r"""Lillicrap2016's linear task: random feedback weights soon deliver useful hidden updates.

A linear 30-20-10 student learns y* = T x (x ~ N(0, I), T ~ U[−1, 1]; :func:`neurofa.tasks.teacher.linear_teacher_task`)
from W ~ U[±0.01] with fixed feedback B ~ U[±0.5], by minibatch SGD on ½‖y − y*‖². Feedback alignment (FA) and
backprop (BP) start from the same weights. At every update, on FA's own activities,

- ``angle_update_bp``: ∠(ΔW_1^FA, ΔW_1^BP), FA's hidden update against the one backprop would make
  (ΔW_1 = −η⟨δ_1 xᵀ⟩ with δ_1 = B e or W_2ᵀ e); it falls below 45° within tens of updates, once eᵀW_2Be > 0;
- ``angle_pinv``: ∠(B e, W_2⁺ e) over the minibatch's stacked error vectors: the hidden signal approaches the
  pseudo-inverse (Gauss–Newton-like) direction;
- ``angle_B_WT``: ∠(B, W_2ᵀ); ``loss_fa``, ``loss_bp``: minibatch loss of each rule.

Both rules run through :func:`neurofa.rate.layered.train_step` (the one implementation of each rule).
Summary keys: ``update_angle_final`` and ``pinv_angle_final`` (degrees, last update, mean over seeds),
``updates_to_45deg`` (mean over seeds of the first update with ∠ < 45°), ``angle_B_WT_final``, ``loss_final_fa``,
``loss_final_bp``, ``loss_ratio_fa`` (final / initial FA loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from tqdm import tqdm

from neurofa.config import dump_config
from neurofa.metrics import alignment_angle, matrix_angle, update_angle
from neurofa.plotting import mean_sd_band, save_figure
from neurofa.rate import layered
from neurofa.results import Result, to_jsonable
from neurofa.tasks.teacher import linear_teacher_task

__all__ = ["Settings", "run", "figure"]

NAME = "lillicrap2016"


@dataclass
class Settings:
    """Network sizes, initial scales, SGD step size and length, seeds (quick mode: fewer seeds and updates)."""

    n_in: int = 30
    n_hidden: int = 20
    n_out: int = 10
    init_forward: float = 0.01
    init_feedback: float = 0.5
    lr: float = 0.005
    batch_size: int = 20
    updates: int = 1000
    seeds: int = 10


def _first_below(curve: np.ndarray, bound: float) -> np.ndarray:
    """Index of the first entry below ``bound`` along the last axis (NaN if never)."""
    below = curve < bound
    idx = np.argmax(below, axis=-1).astype(float)
    idx[~below.any(axis=-1)] = np.nan
    return idx


def run(settings: Settings, quick: bool = False, progress: bool = True) -> Result:
    """Train FA and BP students side by side on every seed's teacher; record the alignment curves."""


    s = settings
    n_seeds = min(s.seeds, 4) if quick else s.seeds
    updates = min(s.updates, 400) if quick else s.updates
    seeds = list(range(n_seeds))
    sizes = [s.n_in, s.n_hidden, s.n_out]
    xs, ys, Ws, Bs = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 0])
        data, _ = linear_teacher_task(s.n_in, s.n_out, updates * s.batch_size, 0, rng)
        assert data.y_train is not None
        xs.append(data.x_train)
        ys.append(data.y_train)
        Ws.append([rng.uniform(-s.init_forward, s.init_forward, size=(sizes[i], sizes[i - 1])) for i in (1, 2)])
        Bs.append(rng.uniform(-s.init_feedback, s.init_feedback, size=(s.n_hidden, s.n_out)))
    x_all, y_all = np.stack(xs), np.stack(ys)
    W0 = [np.stack([w[i] for w in Ws]) for i in range(2)]
    B0 = np.stack(Bs)
    fa = layered.LayeredNet(W=[w.copy() for w in W0], rule="fa", activation="linear", output_linear=True, B=[B0])
    bp = layered.LayeredNet(W=[w.copy() for w in W0], rule="bp", activation="linear", output_linear=True)
    params = layered.StepParams(lr=s.lr)

    ang_upd = np.empty((n_seeds, updates))
    ang_pinv = np.empty((n_seeds, updates))
    ang_bw = np.empty((n_seeds, updates))
    loss_fa = np.empty((n_seeds, updates))
    loss_bp = np.empty((n_seeds, updates))
    for t in tqdm(range(updates), disable=not progress, desc=NAME, unit="update"):
        sl = slice(t * s.batch_size, (t + 1) * s.batch_size)
        x, y = x_all[:, sl], y_all[:, sl]
        W2 = fa.W[1]
        ang_bw[:, t] = alignment_angle(fa.B[0], W2)
        rec = layered.train_step(fa, x, y, params)
        bp_dW = layered.forward_updates(fa.errors("bp", rec.a_list, rec.e), rec.h_list, s.lr)
        ang_upd[:, t] = update_angle(rec.dW[0], bp_dW[0])
        e = rec.e  # (S, batch, n_out)
        hidden_fa = e @ np.swapaxes(fa.B[0], -1, -2)  # B e, row form
        hidden_pinv = e @ np.swapaxes(np.linalg.pinv(W2), -1, -2)  # W₂⁺ e
        ang_pinv[:, t] = matrix_angle(hidden_fa, hidden_pinv)
        loss_fa[:, t] = rec.loss
        loss_bp[:, t] = layered.train_step(bp, x, y, params).loss

    ds = xr.Dataset(coords={"seed": seeds, "time": np.arange(updates), "layer": [1]})
    ds["time"].attrs["units"] = "update"
    ds["angle_update_bp"] = (("seed", "time"), ang_upd, {"units": "deg"})
    ds["angle_pinv"] = (("seed", "time"), ang_pinv, {"units": "deg"})
    ds["angle_B_WT"] = (("seed", "time", "layer"), ang_bw[:, :, None], {"units": "deg"})
    ds["loss_fa"] = (("seed", "time"), loss_fa)
    ds["loss_bp"] = (("seed", "time"), loss_bp)
    ds.attrs["experiment"] = NAME
    tail = max(1, updates // 20)  # average the last 5 % of updates: single minibatches are noisy
    summary = {
        "update_angle_final": float(ang_upd[:, -tail:].mean()),
        "pinv_angle_final": float(ang_pinv[:, -tail:].mean()),
        "updates_to_45deg": float(np.nanmean(_first_below(ang_upd, 45.0))),
        "fraction_seeds_below_45deg": float(np.mean((ang_upd < 45.0).any(axis=-1))),
        "angle_B_WT_final": float(ang_bw[:, -1].mean()),
        "loss_final_fa": float(loss_fa[:, -tail:].mean()),
        "loss_final_bp": float(loss_bp[:, -tail:].mean()),
        "loss_ratio_fa": float(loss_fa[:, -tail:].mean() / loss_fa[:, 0].mean()),
        "seeds": seeds,
        "quick": quick,
    }
    text = dump_config(settings, extra={"experiment": NAME, "quick": quick})
    return Result(ds, to_jsonable(summary), text)


def figure(result: Result, directory: str | Path) -> list[Path]:
    """Loss of FA and BP, and the update / pseudo-inverse / feedback angles over updates (mean ± SD)."""


    ds = result.dataset
    t = ds["time"].values
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    mean_sd_band(axes[0], t, ds["loss_bp"].values, label="backprop")
    mean_sd_band(axes[0], t, ds["loss_fa"].values, label="feedback alignment")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("update")
    axes[0].set_ylabel("loss ½‖y − y*‖²")
    axes[0].legend(frameon=False)
    mean_sd_band(axes[1], t, ds["angle_update_bp"].values, label="∠(ΔW₁ FA, ΔW₁ BP)")
    mean_sd_band(axes[1], t, ds["angle_pinv"].values, label="∠(Be, W₂⁺e)")
    mean_sd_band(axes[1], t, ds["angle_B_WT"].values[:, :, 0], label="∠(B, W₂ᵀ)")
    axes[1].axhline(45.0, color="0.5", lw=0.8, ls="--")
    axes[1].axhline(90.0, color="0.5", lw=0.8, ls=":")
    axes[1].set_xlabel("update")
    axes[1].set_ylabel("angle (deg)")
    axes[1].set_ylim(0, 120)
    axes[1].legend(frameon=False)
    fig.suptitle("Lillicrap2016: linear 30-20-10 student of y = Tx")
    return [save_figure(fig, Path(directory) / "lillicrap2016.png")]
