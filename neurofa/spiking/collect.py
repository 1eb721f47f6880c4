"""From monitor data of spiking runs to the dataset convention of :mod:`neurofa.runner` (numpy only).

Per record window (t_{k−1}, t_k] (times in ms, t_0 = 0 excluded from ``time`` as in the rate backend; the t = 0
values are ``angle_*_initial``):

- ``angle_B_WT``, ``angle_B_RHS``, ``norm_ratio_B_W`` from the weight snapshots at t_k; the operating point of
  R_ℓ = W_{ℓ+1}ᵀ ⊙ ⟨φ'_ℓ φ'_{ℓ+1}⟩ is the free steady state (:func:`neurofa.circuit.steady_state`) of up to 200
  training inputs under the current forward weights;
- ``loss``: with targets, the mean over the window's presentations of ½‖v̂_N − u_tgt‖², v̂_N averaged over the
  second half of each presentation (the settled half; averaging removes most spike noise); without targets the
  apical mismatch averaged over hidden layers (as the rate backend);
- ``apical_mismatch``: window mean of v_api² per cell, averaged over the layer (includes the spike-noise variance of
  v_api, which the rate mean field lacks);
- ``test_accuracy``: argmax of the output's basal prediction v̂_N (a weighted sum of the hidden layer's spike
  traces) averaged over the settled half of each test presentation (no nudging, no plasticity);
  ``test_accuracy_spikes`` the argmax of the output spike counts in the same halves (a few spikes per cell, so
  noisier); ``test_loss`` from v̂_N of the same halves (includes the read-out's spike noise);
  ``test_accuracy_steady_state`` / ``test_loss_steady_state`` the rate backend's read-out (steady state of the
  learned weights, no spike noise) for comparison;
- with ``record_detail``: ``rate_pyr``/``rate_int`` = spike count/(ν_max · window), ``phi_pyr``/``phi_int`` the window
  means of the instantaneous Poisson rate φ(ŭ) (so rate − φ is pure spike-count noise), ``v_bas``/``v_api`` window
  means, ``weights_W``/``weights_B`` snapshots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurofa.activations import activation
from neurofa.circuit import InitialWeights, steady_state
from neurofa.config import Config
from neurofa.metrics import alignment_angle, matrix_angle
from neurofa.spiking.params import EffectiveParameters
from neurofa.tasks import TaskData

__all__ = ["weight_history", "seed_dataset", "merge_seeds"]


def weight_history(out: Any, structure: Any, weights: InitialWeights, index: int) -> tuple[list, list]:
    """W_ℓ and B_ℓ at every record time (n_rec, rows, cols): snapshots if plastic, else the initial matrix."""
    N = structure.n_layers
    n_rec = len(out.record_times)
    Ws, Bs = [], []
    for ell in range(1, N + 1):
        w0 = weights.W[ell - 1][index]
        snap = out.weights.get(f"W{ell}")
        Ws.append(snap.reshape(n_rec, *w0.shape) if snap is not None else np.broadcast_to(w0, (n_rec, *w0.shape)))
    for ell in range(1, N):
        b0 = weights.B[ell - 1][index]
        snap = out.weights.get(f"B{ell}")
        Bs.append(snap.reshape(n_rec, *b0.shape) if snap is not None else np.broadcast_to(b0, (n_rec, *b0.shape)))
    return Ws, Bs


def _operating_point(cfg: Config, Ws: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """⟨φ'_ℓ ⊗ φ'_{ℓ+1}⟩ over inputs ``x`` at the free steady state, per record time and hidden layer."""
    phi_prime = activation(cfg.network.activation)[1]
    us = steady_state(cfg, Ws, x)  # each (n_rec, n_samples, n_ℓ)
    fp = [phi_prime(u) for u in us]
    return [np.mean(fp[ell][..., :, :, None] * fp[ell + 1][..., :, None, :], axis=-3) for ell in range(len(us) - 1)]


def _settled_means(values: np.ndarray, n_pres: int) -> np.ndarray:
    """Per-presentation mean over its second half, from an accumulator sampled every t_pres/2 (n_samples, cells),
    returned as the increment (the caller divides by the half-window)."""
    # samples at 0, h, 2h, ...: presentation p spans samples 2p … 2p+2; its settled half is 2p+1 → 2p+2
    need = 2 * n_pres + 1
    if values.shape[0] < need:
        pad = np.repeat(values[-1:], need - values.shape[0], axis=0)
        values = np.concatenate([values, pad])
    return values[2:need:2] - values[1:need:2]


def seed_dataset(cfg: Config, eff: EffectiveParameters, structure: Any, data: TaskData, values: Any, out: Any,
                 weights: InitialWeights, index: int) -> dict[str, np.ndarray]:
    """All per-seed arrays of the dataset (see the module docstring)."""
    s = structure
    N = s.n_layers
    Ws, Bs = weight_history(out, s, weights, index)
    times = out.record_times
    n_rec = len(times)
    rec = s.record_interval
    x_op = data.x_train[:200]
    res: dict[str, np.ndarray] = {}
    if any(structure.fw_plastic):
        dd = _operating_point(cfg, Ws, x_op)
    else:
        dd0 = _operating_point(cfg, [w[:1] for w in Ws], x_op)
        dd = [np.broadcast_to(d, (n_rec, *d.shape[1:])) for d in dd0]
    wt = np.stack([alignment_angle(Bs[ell], Ws[ell + 1]) for ell in range(N - 1)], -1)
    rhs = np.stack([matrix_angle(Bs[ell], dd[ell] * np.swapaxes(Ws[ell + 1], -1, -2)) for ell in range(N - 1)], -1)
    nr = np.stack([np.sqrt(np.sum(Bs[ell] ** 2, axis=(-2, -1)) / np.sum(Ws[ell + 1] ** 2, axis=(-2, -1)))
                   for ell in range(N - 1)], -1)
    res["angle_B_WT"], res["angle_B_WT_initial"] = wt[1:], wt[0]
    res["angle_B_RHS"], res["angle_B_RHS_initial"] = rhs[1:], rhs[0]
    res["norm_ratio_B_W"], res["norm_ratio_B_W_initial"] = nr[1:], nr[0]

    def window_mean(group: str, var: str) -> np.ndarray:
        acc = out.layers[(group, var)]
        return np.diff(acc, axis=0) / rec

    api = np.stack([np.mean(window_mean(f"P{ell}", "A_vapi2"), axis=-1) for ell in range(1, N)], -1)
    res["apical_mismatch"] = api
    if s.target:
        half = s.t_pres / 2
        vhat = _settled_means(out.test["A_vhat"], s.n_train_pres) / half
        y = values.target[: s.n_train_pres]
        per_pres = 0.5 * np.sum((vhat - y) ** 2, axis=-1)
        pres_per_rec = int(round(rec / s.t_pres))
        k = min(n_rec - 1, len(per_pres) // max(pres_per_rec, 1))
        loss = np.full(n_rec - 1, np.nan)
        if pres_per_rec >= 1:
            loss[:k] = per_pres[: k * pres_per_rec].reshape(k, pres_per_rec).mean(axis=1)
        res["loss"] = loss
        if s.n_test_pres:
            both = _settled_means(out.test["n_spk"], s.n_train_pres + s.n_test_pres)[s.n_train_pres:]
            vt = _settled_means(out.test["A_vhat"], s.n_train_pres + s.n_test_pres)[s.n_train_pres:] / half
            if data.labels_test is not None:
                res["test_accuracy"] = np.asarray(np.mean(np.argmax(vt, -1) == data.labels_test))
                res["test_accuracy_spikes"] = np.asarray(np.mean(_argmax_ties(both, vt) == data.labels_test))
                ss = steady_state(cfg, [w[-1] for w in Ws], data.x_test)[-1]
                res["test_accuracy_steady_state"] = np.asarray(np.mean(np.argmax(ss, -1) == data.labels_test))
            if data.y_test is not None:
                res["test_loss"] = np.asarray(np.mean(0.5 * np.sum((vt - data.y_test) ** 2, axis=-1)))
                ss = steady_state(cfg, [w[-1] for w in Ws], data.x_test)[-1]
                res["test_loss_steady_state"] = np.asarray(np.mean(0.5 * np.sum((ss - data.y_test) ** 2, axis=-1)))
    else:
        res["loss"] = api.mean(axis=-1)
    if s.detail:
        nu_window = eff.nu_max / 1000.0 * rec
        res["rate_pyr"] = np.concatenate([np.diff(out.layers[(f"P{ell}", "n_spk")], axis=0) / nu_window
                                          for ell in range(1, N + 1)], axis=1)
        res["rate_int"] = np.concatenate([np.diff(out.layers[(f"I{ell}", "n_spk")], axis=0) / nu_window
                                          for ell in range(1, N)], axis=1)
        res["phi_pyr"] = np.concatenate([window_mean(f"P{ell}", "A_rate") for ell in range(1, N + 1)], axis=1)
        res["phi_int"] = np.concatenate([window_mean(f"I{ell}", "A_rate") for ell in range(1, N)], axis=1)
        res["v_bas"] = np.concatenate([window_mean(f"P{ell}", "A_vbas") for ell in range(1, N + 1)], axis=1)
        res["v_api"] = np.concatenate([window_mean(f"P{ell}", "A_vapi") for ell in range(1, N)], axis=1)
        res["weights_W"] = np.concatenate([w[1:].reshape(n_rec - 1, -1) for w in Ws], axis=1)
        res["weights_B"] = np.concatenate([b[1:].reshape(n_rec - 1, -1) for b in Bs], axis=1)
    return res


def _argmax_ties(counts: np.ndarray, vhat: np.ndarray) -> np.ndarray:
    """Class with most spikes; ties broken by the larger mean basal prediction v̂."""
    key = counts + 1e-6 * (vhat - vhat.min()) / (np.ptp(vhat) + 1e-12)
    return np.argmax(key, axis=-1)


_DIMS = {
    "angle_B_WT": ("time", "layer"), "angle_B_RHS": ("time", "layer"), "norm_ratio_B_W": ("time", "layer"),
    "apical_mismatch": ("time", "layer"), "loss": ("time",),
    "angle_B_WT_initial": ("layer",), "angle_B_RHS_initial": ("layer",), "norm_ratio_B_W_initial": ("layer",),
    "test_accuracy": (), "test_accuracy_spikes": (), "test_accuracy_steady_state": (), "test_loss": (),
    "test_loss_steady_state": (),
    "rate_pyr": ("time", "pyr"), "rate_int": ("time", "int"), "phi_pyr": ("time", "pyr"),
    "phi_int": ("time", "int"), "v_bas": ("time", "pyr"), "v_api": ("time", "hid"),
    "weights_W": ("time", "w_index"), "weights_B": ("time", "b_index"),
}


def merge_seeds(cfg: Config, structure: Any, seeds: list[int], per_seed: list[dict[str, np.ndarray]],
                times: np.ndarray, extra: dict[str, Any]) -> xr.Dataset:
    """Stack per-seed arrays along ``seed`` into the runner's dataset."""
    N = structure.n_layers
    sizes = structure.sizes
    data_vars = {}
    for name in per_seed[0]:
        data_vars[name] = (("seed", *_DIMS[name]), np.stack([np.asarray(r[name], dtype=float) for r in per_seed]))
    coords: dict[str, Any] = {"seed": seeds, "time": times[1:], "layer": np.arange(1, N)}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["time"].attrs["units"] = "ms"
    for name in ("angle_B_WT", "angle_B_RHS"):
        ds[name].attrs["units"] = "deg"
    if structure.detail:
        ds = ds.assign_coords(
            pyr_layer=("pyr", np.concatenate([np.full(sizes[ell], ell) for ell in range(1, N + 1)])),
            int_layer=("int", np.concatenate([np.full(sizes[ell + 1], ell) for ell in range(1, N)])),
            hid_layer=("hid", np.concatenate([np.full(sizes[ell], ell) for ell in range(1, N)])),
        )
    ds.attrs["extra_summary"] = extra
    return ds
