"""From monitor data of spiking runs to the dataset convention of :mod:`neurofa.runner` (numpy only).

Per record window (t_{k−1}, t_k] (times in ms, t_0 = 0 excluded from ``time`` as in the rate backend; the t = 0
values are ``angle_*_initial``):

- ``angle_B_WT``, ``angle_B_RHS``, ``norm_ratio_B_W`` (:func:`neurofa.recording.alignment`) from the weight
  snapshots at t_k; the operating point of R_ℓ = W_{ℓ+1}ᵀ ⊙ ⟨φ'_ℓ φ'_{ℓ+1}⟩ is the free steady state of the first
  training inputs under the current forward weights (:func:`neurofa.recording.operating_point`);
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
  learned weights, no spike noise, :func:`neurofa.recording.steady_state_scores`) for comparison;
- with ``record_detail``: ``rate_pyr``/``rate_int`` = spike count/(ν_max · window), ``phi_pyr``/``phi_int`` the window
  means of the instantaneous Poisson rate φ(ŭ) (so rate − φ is pure spike-count noise), ``v_bas``/``v_api`` window
  means, ``weights_W``/``weights_B`` snapshots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurofa.circuit import InitialWeights
from neurofa.model import Model
from neurofa.recording import alignment, dataset, operating_point, steady_state_scores
from neurofa.spikes import CellTable
from neurofa.spiking.params import EffectiveParameters
from neurofa.spiking.structure import RunValues, Structure
from neurofa.tasks import TaskData

__all__ = ["weight_history", "seed_dataset", "merge_seeds", "divergence", "max_abs_weight", "cell_table",
           "seed_spikes"]

Array = np.ndarray


def weight_history(out: Any, structure: Structure, weights: InitialWeights,
                   index: int) -> tuple[list[Array], list[Array]]:
    """W_ℓ and B_ℓ at every record time (n_rec, rows, cols): snapshots if plastic, else the initial matrix."""
    N = structure.n_layers
    n_rec = len(out.record_times)

    def history(name: str, w0: Array) -> Array:
        snap = out.weights.get(name)
        return snap.reshape(n_rec, *w0.shape) if snap is not None else np.broadcast_to(w0, (n_rec, *w0.shape))

    Ws = [history(f"W{ell}", weights.W[ell - 1][index]) for ell in range(1, N + 1)]
    Bs = [history(f"B{ell}", weights.B[ell - 1][index]) for ell in range(1, N)]
    return Ws, Bs


def _settled_means(values: Array, n_pres: int) -> Array:
    """Per-presentation mean over its second half, from an accumulator sampled every t_pres/2 (n_samples, cells),
    returned as the increment (the caller divides by the half-window)."""
    # samples at 0, h, 2h, ...: presentation p spans samples 2p … 2p+2; its settled half is 2p+1 → 2p+2
    need = 2 * n_pres + 1
    if values.shape[0] < need:
        pad = np.repeat(values[-1:], need - values.shape[0], axis=0)
        values = np.concatenate([values, pad])
    return values[2:need:2] - values[1:need:2]


def _alignment(model: Model, Ws: list[Array], Bs: list[Array], x: Array) -> dict[str, Array]:
    """Angles and norm ratios at every record time; the operating point follows the forward weights if they learn."""
    n_rec = Ws[0].shape[0]
    if any(p.learns for p in model.of_kind("W")):
        dd = operating_point(model, Ws, x)
    else:
        dd = [np.broadcast_to(d, (n_rec, *d.shape[1:])) for d in operating_point(model, [w[:1] for w in Ws], x)]
    res: dict[str, Array] = {}
    for name, values in alignment(Bs, Ws, dd).items():
        res[name], res[f"{name}_initial"] = values[1:], values[0]
    return res


def _loss(s: Structure, out: Any, values: RunValues, n_rec: int) -> Array:
    """Mean over each record window's presentations of ½‖v̂_N − u_tgt‖², v̂_N over the settled halves."""
    half = s.t_pres / 2
    vhat = _settled_means(out.test["A_vhat"], s.n_train_pres) / half
    assert values.target is not None
    y = values.target[: s.n_train_pres]
    per_pres = 0.5 * np.sum((vhat - y) ** 2, axis=-1)
    pres_per_rec = int(round(s.record_interval / s.t_pres))
    k = min(n_rec - 1, len(per_pres) // max(pres_per_rec, 1))
    loss = np.full(n_rec - 1, np.nan)
    if pres_per_rec >= 1:
        loss[:k] = per_pres[: k * pres_per_rec].reshape(k, pres_per_rec).mean(axis=1)
    return loss


def _test(model: Model, s: Structure, out: Any, data: TaskData, W_final: list[Array]) -> dict[str, Array]:
    """Test read-outs from the settled halves of the test presentations, and of the final weights' steady state."""
    half, both = s.t_pres / 2, s.n_train_pres + s.n_test_pres
    counts = _settled_means(out.test["n_spk"], both)[s.n_train_pres:]
    vt = _settled_means(out.test["A_vhat"], both)[s.n_train_pres:] / half
    assert data.x_test is not None
    steady = steady_state_scores(model, W_final, data.x_test, data.y_test, data.labels_test)
    res: dict[str, Array] = {}
    if data.labels_test is not None:
        res["test_accuracy"] = np.asarray(np.mean(np.argmax(vt, -1) == data.labels_test))
        res["test_accuracy_spikes"] = np.asarray(np.mean(_argmax_ties(counts, vt) == data.labels_test))
        res["test_accuracy_steady_state"] = np.asarray(steady["accuracy"])
    if data.y_test is not None:
        res["test_loss"] = np.asarray(np.mean(0.5 * np.sum((vt - data.y_test) ** 2, axis=-1)))
        res["test_loss_steady_state"] = np.asarray(steady["loss"])
    return res


def _detail(s: Structure, out: Any, eff: EffectiveParameters, Ws: list[Array], Bs: list[Array]) -> dict[str, Array]:
    N, rec, n_rec = s.n_layers, s.record_interval, len(out.record_times)

    def window_mean(group: str, var: str) -> Array:
        return np.diff(out.layers[(group, var)], axis=0) / rec

    nu_window = eff.nu_max / 1000.0 * rec
    return {
        "rate_pyr": np.concatenate([np.diff(out.layers[(f"P{ell}", "n_spk")], axis=0) / nu_window
                                    for ell in range(1, N + 1)], axis=1),
        "rate_int": np.concatenate([np.diff(out.layers[(f"I{ell}", "n_spk")], axis=0) / nu_window
                                    for ell in range(1, N)], axis=1),
        "phi_pyr": np.concatenate([window_mean(f"P{ell}", "A_rate") for ell in range(1, N + 1)], axis=1),
        "phi_int": np.concatenate([window_mean(f"I{ell}", "A_rate") for ell in range(1, N)], axis=1),
        "v_bas": np.concatenate([window_mean(f"P{ell}", "A_vbas") for ell in range(1, N + 1)], axis=1),
        "v_api": np.concatenate([window_mean(f"P{ell}", "A_vapi") for ell in range(1, N)], axis=1),
        "weights_W": np.concatenate([w[1:].reshape(n_rec - 1, -1) for w in Ws], axis=1),
        "weights_B": np.concatenate([b[1:].reshape(n_rec - 1, -1) for b in Bs], axis=1),
    }


def divergence(out: Any, structure: Structure, weights: InitialWeights, index: int) -> tuple[str, float] | None:
    """The first quantity of one seed's run that became non-finite and the first record time (ms) where it is."""
    Ws, Bs = weight_history(out, structure, weights, index)
    series = {"forward weights W": np.concatenate([w.reshape(len(w), -1) for w in Ws], axis=1),
              "backprojections B": np.concatenate([b.reshape(len(b), -1) for b in Bs], axis=1)}
    series.update({f"{var} of {group}": values for (group, var), values in out.layers.items()})
    for name, values in series.items():
        bad = ~np.isfinite(np.asarray(values, dtype=float).reshape(len(values), -1)).all(axis=1)
        if bad.any():
            return name, float(out.record_times[int(np.argmax(bad))])
    return None


def max_abs_weight(out: Any, structure: Structure, weights: InitialWeights, index: int) -> float:
    """The largest |w| of W and B over the run."""
    Ws, Bs = weight_history(out, structure, weights, index)
    return float(max(np.abs(m).max() for m in [*Ws, *Bs]))


def seed_dataset(model: Model, eff: EffectiveParameters, structure: Structure, data: TaskData, values: RunValues,
                 out: Any, weights: InitialWeights, index: int) -> dict[str, Array]:
    """All per-seed arrays of the dataset (see the module docstring)."""
    s = structure
    N = s.n_layers
    Ws, Bs = weight_history(out, s, weights, index)
    res = _alignment(model, Ws, Bs, data.x_train)
    api = np.stack([np.mean(np.diff(out.layers[(f"P{ell}", "A_vapi2")], axis=0) / s.record_interval, axis=-1)
                    for ell in range(1, N)], -1)
    res["apical_mismatch"] = api
    if s.target:
        res["loss"] = _loss(s, out, values, len(out.record_times))
        if s.n_test_pres:
            res.update(_test(model, s, out, data, [w[-1] for w in Ws]))
    else:
        res["loss"] = api.mean(axis=-1)
    if s.detail:
        res.update(_detail(s, out, eff, Ws, Bs))
    return res


def _argmax_ties(counts: Array, vhat: Array) -> Array:
    """Class with most spikes; ties broken by the larger mean basal prediction v̂."""
    key = counts + 1e-6 * (vhat - vhat.min()) / (np.ptp(vhat) + 1e-12)
    return np.argmax(key, axis=-1)


def cell_table(model: Model, structure: Structure) -> CellTable:
    """The cells whose spikes ``structure`` records, population by population."""
    return CellTable.of([(p.name, p.kind, p.layer, p.size) for name in structure.spike_groups
                         for p in [model.population(name)]])


def seed_spikes(cells: CellTable, structure: Structure, out: Any) -> tuple[Array, Array]:
    """(times in ms, cell indices into ``cells``) of one seed's recorded spikes, ordered by time, then cell; up to
    the end of the last presentation (not the extra step that lets the monitors sample it, nor a chunked run's
    padding)."""
    steps = [out.spikes[g][0] for g in structure.spike_groups]
    ids = [out.spikes[g][1].astype(np.int32) + cells.offset(g) for g in structure.spike_groups]
    step, cell = (np.concatenate(steps), np.concatenate(ids)) if steps else (np.zeros(0, np.int64), np.zeros(0))
    inside = step < round(structure.end_time / structure.dt)
    step, cell = step[inside], cell[inside]
    order = np.lexsort((cell, step))
    return step[order] * structure.dt, cell[order].astype(np.int32)


def merge_seeds(model: Model, structure: Structure, seeds: list[int], per_seed: list[dict[str, Array]],
                times: Array, extra: dict[str, Any]) -> xr.Dataset:
    """Stack per-seed arrays along ``seed`` into the runner's dataset (:func:`neurofa.recording.dataset`)."""
    arrays = {name: np.stack([np.asarray(r[name], dtype=float) for r in per_seed]) for name in per_seed[0]}
    return dataset(model, arrays, seeds, times[1:], structure.target, extra=extra)
