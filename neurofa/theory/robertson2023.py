r"""Robertson2023: feedback alignment conserves a layer-wise quantity, and linear FA nets find the minimum norm.

Conservation. For bias-free ReLU or linear networks trained by FA with fixed B (δ_ℓ = φ'(a_ℓ) ⊙ B_ℓ δ_{ℓ+1}), every
hidden neuron i of layer ℓ conserves under gradient flow

    Q_ℓ[i] = ‖W_ℓ[i,:]‖² − 2 Σ_j B_ℓ[i,j] W_{ℓ+1}[j,i]          (:func:`neurofa.metrics.conserved_quantity`)

(B_ℓ shaped like W_{ℓ+1}ᵀ; the paper calls it B_{ℓ+1}), because φ'(a) a = φ(a) for ReLU and linear units. With
full-batch Euler steps of size η the drift max_t |Q(t) − Q(0)| over a fixed training time T = η·steps is O(η):
halving η halves it. A saturating nonlinearity (tanh) breaks the law (negative control).

Minimum norm. A two-layer linear network with more inputs than samples (d > n) trained by FA from small
initialisation interpolates with the end-to-end map M = W_2 W_1 = Y X⁺, the minimum-norm solution: W_1 only ever
moves within the span of the inputs, so M = Y X⁺ + W_2 W_1(0) P_⊥ and the second term is as small as the start.
From a large initialisation it is not.

All training runs through :func:`neurofa.rate.layered.train_step` with rule ``fa``.
Summary keys: ``q_drift_max`` (ReLU, largest |ΔQ| over neurons, times and seeds at step ``lr``),
``q_drift_ratio_half_eta`` (drift at lr/2 over drift at lr, same T; ≈ 0.5), ``q_drift_linear``, ``q_drift_tanh``,
``weight_change`` (ReLU, mean over neurons of |Δ‖W_ℓ[i]‖²| from start to end), ``drift_to_change`` (weight_change /
q_drift_max), ``minnorm_rel_error`` and ``minnorm_rel_error_large_init`` (‖M − Y X⁺‖_F / ‖Y X⁺‖_F),
``minnorm_train_loss`` (final loss of the small-init run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from tqdm import tqdm

from neurofa.config import dump_config
from neurofa.metrics import conserved_quantity, mse_loss
from neurofa.plotting import mean_sd_band, save_figure
from neurofa.rate import layered
from neurofa.results import Result, to_jsonable

__all__ = ["Settings", "run", "figure", "conservation_run", "min_norm_run"]

NAME = "robertson2023"


@dataclass
class Settings:
    """Conservation: deep net ``layers``, full-batch FA at ``lr`` (and lr/2, lr/4) for time ``train_time``;
    min-norm: 2-layer linear net d = ``minnorm_dim`` > n = ``minnorm_samples``, init scales small / large."""

    layers: list[int] = field(default_factory=lambda: [10, 40, 40, 4])
    n_samples: int = 40
    init_forward: float = 0.2
    init_feedback: float = 1.0
    lr: float = 0.003
    train_time: float = 20.0
    seeds: int = 5
    minnorm_dim: int = 60
    minnorm_samples: int = 20
    minnorm_hidden: int = 50
    minnorm_out: int = 3
    minnorm_init_small: float = 1e-4
    minnorm_init_large: float = 0.5
    minnorm_lr: float = 0.05
    minnorm_steps: int = 6000


def _weights(rng: np.random.Generator, sizes: list[int], scale: float) -> list[np.ndarray]:
    return [rng.uniform(-scale, scale, size=(sizes[i], sizes[i - 1])) for i in range(1, len(sizes))]


def _fa_net(seeds: list[int], sizes: list[int], init: float, feedback: float, act: str) -> layered.LayeredNet:
    """FA network of every seed; the same seed gives the same weights for every activation and step size."""
    Ws, Bs = [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 0])
        Ws.append(_weights(rng, sizes, init))
        Bs.append([rng.uniform(-feedback, feedback, size=(sizes[i], sizes[i + 1])) for i in range(1, len(sizes) - 1)])
    W = [np.stack([w[i] for w in Ws]) for i in range(len(sizes) - 1)]
    B = [np.stack([b[i] for b in Bs]) for i in range(len(sizes) - 2)]
    return layered.LayeredNet(W=W, rule="fa", activation=act, output_linear=True, B=B)


def _regression_data(seeds: list[int], sizes: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x ~ N(0, I/n_0) and targets from a random tanh teacher of the same sizes (a nonlinear task)."""
    xs, ys = [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 3])
        x = rng.normal(size=(n, sizes[0])) / np.sqrt(sizes[0])
        h = x
        for i, w in enumerate(_weights(rng, sizes, 1.0)):
            h = h @ (w.T * np.sqrt(3.0 / w.shape[1]) * 2.0)
            h = h if i == len(sizes) - 2 else np.tanh(h)
        xs.append(x)
        ys.append(h)
    return np.stack(xs), np.stack(ys)


def _q(net: layered.LayeredNet) -> np.ndarray:
    """Q_ℓ[i] of every hidden layer, concatenated: (S, Σ n_ℓ)."""
    return np.concatenate([conserved_quantity(net.W[k], net.B[k], net.W[k + 1]) for k in range(len(net.B))], -1)


def _row_norms(net: layered.LayeredNet) -> np.ndarray:
    return np.concatenate([np.sum(net.W[k] ** 2, axis=-1) for k in range(len(net.B))], -1)


def conservation_run(
    s: Settings, seeds: list[int], act: str, lr: float, n_records: int = 50
) -> dict[str, np.ndarray]:
    """Full-batch FA for time ``s.train_time`` at step ``lr``; returns drift curve max_i |Q(t) − Q(0)| per seed,
    its record times, the loss curve and the mean |Δ‖W_ℓ[i]‖²| per seed."""
    net = _fa_net(seeds, s.layers, s.init_forward, s.init_feedback, act)
    x, y = _regression_data(seeds, s.layers, s.n_samples)
    steps = int(round(s.train_time / lr))
    q0, n0 = _q(net), _row_norms(net)
    params = layered.StepParams(lr=lr)
    every = max(1, steps // n_records)
    times, drift, loss = [], [], []
    for t in range(steps):
        rec = layered.train_step(net, x, y, params)
        if (t + 1) % every == 0 or t == steps - 1:
            times.append((t + 1) * lr)
            drift.append(np.abs(_q(net) - q0).max(axis=-1))
            loss.append(rec.loss)
    change = np.abs(_row_norms(net) - n0).mean(axis=-1)
    return {"time": np.asarray(times), "drift": np.stack(drift, -1), "loss": np.stack(loss, -1), "change": change}


def min_norm_run(s: Settings, seeds: list[int], init: float, steps: int) -> dict[str, np.ndarray]:
    """Two-layer linear FA net on d > n samples; relative distance of W_2 W_1 to Y X⁺ (per seed) and final loss."""
    sizes = [s.minnorm_dim, s.minnorm_hidden, s.minnorm_out]
    net = _fa_net(seeds, sizes, init, s.init_feedback, "linear")
    xs, ys = [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 4])
        xs.append(rng.normal(size=(s.minnorm_samples, s.minnorm_dim)) / np.sqrt(s.minnorm_dim))
        ys.append(rng.normal(size=(s.minnorm_samples, s.minnorm_out)))
    x, y = np.stack(xs), np.stack(ys)
    params = layered.StepParams(lr=s.minnorm_lr)
    for _ in range(steps):
        layered.train_step(net, x, y, params)
    # rows are samples: M* = (X⁺ Y)ᵀ = Y_colᵀ-convention's Y X⁺
    m_star = np.swapaxes(np.linalg.pinv(x) @ y, -1, -2)
    m = net.W[1] @ net.W[0]
    rel = np.linalg.norm(m - m_star, axis=(-2, -1)) / np.linalg.norm(m_star, axis=(-2, -1))
    return {"rel_error": rel, "loss": mse_loss(net.output(x), y)}


def run(settings: Settings, quick: bool = False, progress: bool = True) -> Result:
    """Conservation (ReLU at lr, lr/2, lr/4; linear; tanh control) and minimum norm (small vs large init)."""


    s = settings
    if quick:
        s = Settings(**{**settings.__dict__, "train_time": min(settings.train_time, 8.0),
                        "minnorm_steps": min(settings.minnorm_steps, 3000)})
    seeds = list(range(min(s.seeds, 3) if quick else s.seeds))
    etas = [s.lr, s.lr / 2, s.lr / 4]
    jobs = [("relu", eta) for eta in etas] + [("linear", s.lr), ("tanh", s.lr)]
    runs = {}
    for act, eta in tqdm(jobs, disable=not progress, desc=NAME, unit="run"):
        runs[(act, eta)] = conservation_run(s, seeds, act, eta)
    small = min_norm_run(s, seeds, s.minnorm_init_small, s.minnorm_steps)
    large = min_norm_run(s, seeds, s.minnorm_init_large, s.minnorm_steps)

    relu = runs[("relu", s.lr)]
    drift_max = {key: r["drift"].max(axis=-1) for key, r in runs.items()}  # per seed
    ds = xr.Dataset(coords={"seed": seeds, "time": relu["time"], "eta": etas})
    ds["time"].attrs["units"] = "training time η·steps"
    ds["q_drift"] = (("seed", "time"), relu["drift"], {"long_name": "max_i |Q(t) − Q(0)|, ReLU"})
    ds["q_drift_tanh_curve"] = (("seed", "time"), runs[("tanh", s.lr)]["drift"])
    ds["q_drift_linear_curve"] = (("seed", "time"), runs[("linear", s.lr)]["drift"])
    ds["loss"] = (("seed", "time"), relu["loss"])
    ds["q_drift_vs_eta"] = (("seed", "eta"), np.stack([drift_max[("relu", e)] for e in etas], -1))
    ds["weight_change"] = (("seed",), relu["change"])
    ds["minnorm_rel_error"] = (("seed",), small["rel_error"])
    ds["minnorm_rel_error_large_init"] = (("seed",), large["rel_error"])
    ds.attrs["experiment"] = NAME
    q_max = float(drift_max[("relu", s.lr)].max())
    summary = {
        "q_drift_max": q_max,
        "q_drift_ratio_half_eta": float(drift_max[("relu", s.lr / 2)].max() / q_max),
        "q_drift_ratio_quarter_eta": float(drift_max[("relu", s.lr / 4)].max() / q_max),
        "q_drift_linear": float(drift_max[("linear", s.lr)].max()),
        "q_drift_tanh": float(drift_max[("tanh", s.lr)].max()),
        "weight_change": float(relu["change"].mean()),
        "drift_to_change": float(relu["change"].mean() / q_max),
        "loss_ratio_relu": float(relu["loss"][:, -1].mean() / relu["loss"][:, 0].mean()),
        "minnorm_rel_error": float(small["rel_error"].mean()),
        "minnorm_rel_error_large_init": float(large["rel_error"].mean()),
        "minnorm_train_loss": float(small["loss"].mean()),
        "seeds": seeds,
        "quick": quick,
    }
    text = dump_config(s, extra={"experiment": NAME, "quick": quick})
    return Result(ds, to_jsonable(summary), text)


def figure(result: Result, directory: str | Path) -> list[Path]:
    """(a) drift of Q over training, ReLU vs linear vs tanh; (b) maximal drift vs η (log–log, slope 1);
    (c) distance of the end-to-end map to the minimum-norm solution from small and large initialisation."""


    ds = result.dataset
    t = ds["time"].values
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    ax = axes[0]
    for name, label in (("q_drift", "ReLU"), ("q_drift_linear_curve", "linear"), ("q_drift_tanh_curve", "tanh")):
        mean_sd_band(ax, t, np.maximum(ds[name].values, 1e-16), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("training time η·steps")
    ax.set_ylabel("max_i |Q(t) − Q(0)|")
    ax.set_title("conservation under FA; tanh breaks it")
    ax.legend(frameon=False)
    ax = axes[1]
    eta = ds["eta"].values
    drift = ds["q_drift_vs_eta"].values
    ax.loglog(eta, drift.max(axis=0), "o-", label="max over seeds")
    ax.loglog(eta, drift.max(axis=0)[0] * eta / eta[0], "k--", lw=0.8, label="∝ η")
    ax.set_xlabel("step size η")
    ax.set_ylabel("max drift of Q (ReLU)")
    ax.set_title("drift is O(η)")
    ax.legend(frameon=False)
    ax = axes[2]
    vals = [ds["minnorm_rel_error"].values, ds["minnorm_rel_error_large_init"].values]
    ax.bar([0, 1], [v.mean() for v in vals], yerr=[v.std() for v in vals], color=["C0", "C3"])
    ax.set_xticks([0, 1], ["small init", "large init"])
    ax.set_yscale("log")
    ax.set_ylabel("‖W₂W₁ − YX⁺‖ / ‖YX⁺‖")
    ax.axhline(0.01, color="0.5", ls="--", lw=0.8)
    ax.set_title("FA finds the minimum-norm map from small init")
    fig.suptitle("Robertson2023: layer-wise conservation under feedback alignment")
    return [save_figure(fig, Path(directory) / "robertson2023.png")]
