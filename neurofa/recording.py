r"""The read-out both microcircuit backends hand their arrays to: angles, norm ratios, the φ' operating point,
steady-state losses and accuracies, and the dataset with its coordinates (``docs/science.md`` §2.7).

Backends differ in how they observe a run (the rate kernel probes its state, the spiking backend reads monitors);
what they compute from the observations is here, once, so that the cross-backend invariants of ``neurofa compare``
hold by construction:

- :func:`alignment`: ∠(B_ℓ, W_{ℓ+1}ᵀ), ∠(B_ℓ, R_ℓ) with R_ℓ[i, j] = W_{ℓ+1}[j, i] ⟨φ'_ℓ,i φ'_{ℓ+1},j⟩ (the matrix
  PAL's B aligns with, Max2024) and ‖B_ℓ‖_F / ‖W_{ℓ+1}‖_F;
- :func:`operating_point`: ⟨φ'_ℓ ⊗ φ'_{ℓ+1}⟩ at the free steady state of the first
  :data:`OPERATING_POINT_SAMPLES` training inputs;
- :func:`steady_state_scores`: loss ½‖u_N − y‖² and accuracy (argmax of the output rates) of the free network at its
  steady state, which assumes the self-predicting state (the apical potential vanishes without a target);
- :func:`dataset`: the :class:`xarray.Dataset` of :mod:`neurofa.runner`'s convention from per-seed arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from neurofa.activations import activation
from neurofa.circuit import steady_state
from neurofa.metrics import alignment_angle, matrix_angle, mse_loss, norm_ratio
from neurofa.model import Model

__all__ = [
    "OPERATING_POINT_SAMPLES",
    "VARIABLES",
    "alignment",
    "operating_point",
    "output_rates",
    "steady_state_scores",
    "dataset",
    "unit_layers",
]

Array = np.ndarray

#: training inputs whose free steady state defines the φ' operating point of ∠(B, φ'Wᵀφ')
OPERATING_POINT_SAMPLES = 200

#: every variable a microcircuit dataset may hold: its dimensions after ``seed`` and its attributes
VARIABLES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "angle_B_WT": (("time", "layer"), {"units": "deg", "long_name": "∠(B_ℓ, W_{ℓ+1}ᵀ)"}),
    "angle_B_RHS": (("time", "layer"), {"units": "deg", "long_name": "∠(B_ℓ, φ'_ℓ W_{ℓ+1}ᵀ φ'_{ℓ+1})"}),
    "norm_ratio_B_W": (("time", "layer"), {"long_name": "‖B_ℓ‖ / ‖W_{ℓ+1}‖"}),
    "apical_mismatch": (("time", "layer"), {"long_name": "mean square apical potential"}),
    "loss": (("time",), {}),
    "angle_B_WT_initial": (("layer",), {"units": "deg"}),
    "angle_B_RHS_initial": (("layer",), {"units": "deg"}),
    "norm_ratio_B_W_initial": (("layer",), {}),
    "test_accuracy": ((), {}),
    "test_loss": ((), {}),
    "train_accuracy": ((), {}),
    "test_accuracy_spikes": ((), {"long_name": "test accuracy from output spike counts"}),
    "test_accuracy_steady_state": ((), {"long_name": "test accuracy of the final weights at the steady state"}),
    "test_loss_steady_state": ((), {"long_name": "test loss of the final weights at the steady state"}),
    "test_accuracy_curve": (("test_time",), {}),
    "rate_pyr": (("time", "pyr"), {}),
    "rate_int": (("time", "int"), {}),
    "phi_pyr": (("time", "pyr"), {}),
    "phi_int": (("time", "int"), {}),
    "v_bas": (("time", "pyr"), {}),
    "v_api": (("time", "hid"), {}),
    "weights_W": (("time", "w_index"), {}),
    "weights_B": (("time", "b_index"), {}),
}


def alignment(B: Sequence[Array], W: Sequence[Array], dd: Sequence[Array]) -> dict[str, Array]:
    """``angle_B_WT``, ``angle_B_RHS`` and ``norm_ratio_B_W``, each (..., layer), from the backprojections
    B_1 … B_{N−1}, the forward matrices W_1 … W_N and the operating points dd_ℓ = ⟨φ'_ℓ ⊗ φ'_{ℓ+1}⟩ (leading axes
    broadcast: seeds, record times)."""
    wt, rhs, nr = [], [], []
    for ell in range(len(B)):
        b, w_next = B[ell], W[ell + 1]
        wt.append(alignment_angle(b, w_next))
        rhs.append(matrix_angle(b, dd[ell] * np.swapaxes(w_next, -1, -2)))
        nr.append(norm_ratio(b, w_next))
    return {"angle_B_WT": np.stack(wt, -1), "angle_B_RHS": np.stack(rhs, -1), "norm_ratio_B_W": np.stack(nr, -1)}


def _phi_prime(model: Model, u: Array, layer: int) -> Array:
    if layer == model.n_layers and model.output_linear:
        return np.ones_like(u)
    return activation(model.activation)[1](u)


def phi_prime_products(model: Model, u: Array, layers: Sequence[slice]) -> list[Array]:
    """Per sample φ'_ℓ ⊗ φ'_{ℓ+1} (..., n_ℓ, n_{ℓ+1}) of the somatic potentials ``u`` (..., n_units) whose layer-ℓ
    cells are ``u[..., layers[ℓ − 1]]``, ℓ = 1 … N. φ' is taken of all units at once: it is elementwise, so the
    values are those of each layer's own call (one call instead of one per layer, at every presentation)."""
    fp_all = activation(model.activation)[1](u)
    fp = [fp_all[..., s] for s in layers]
    if model.output_linear:
        fp[-1] = np.ones_like(fp[-1])
    return [fp[ell][..., :, None] * fp[ell + 1][..., None, :] for ell in range(len(fp) - 1)]


def operating_point(model: Model, W: Sequence[Array], x: Array) -> list[Array]:
    """⟨φ'_ℓ ⊗ φ'_{ℓ+1}⟩ over the first :data:`OPERATING_POINT_SAMPLES` inputs of ``x`` (..., n, n_0) at the free
    steady state of the forward weights ``W`` (leading axes broadcast), per hidden layer."""
    us = steady_state(model, W, x[..., :OPERATING_POINT_SAMPLES, :])
    fp = [_phi_prime(model, u, ell) for ell, u in enumerate(us, start=1)]
    return [np.mean(fp[ell][..., :, :, None] * fp[ell + 1][..., :, None, :], axis=-3) for ell in range(len(us) - 1)]


def output_rates(model: Model, u_out: Array) -> Array:
    """φ(u_N), or u_N itself for a linear output."""
    return u_out if model.output_linear else activation(model.activation)[0](u_out)


def steady_state_scores(model: Model, W: Sequence[Array], x: Array, y: Array | None,
                        labels: Array | None) -> dict[str, Array]:
    """``loss`` ½‖u_N − y‖² (mean over samples) and ``accuracy`` (argmax of the output rates) of the free network
    at its steady state on inputs ``x``, per leading axis of ``W`` (seeds)."""
    u_out = steady_state(model, W, x)[-1]
    out: dict[str, Array] = {}
    if y is not None:
        out["loss"] = mse_loss(u_out, y)
    if labels is not None:
        pred = np.argmax(output_rates(model, u_out), axis=-1)
        out["accuracy"] = np.mean(pred == np.asarray(labels), axis=-1)
    return out


def unit_layers(model: Model) -> dict[str, tuple[str, Array]]:
    """The layer of every unit of the per-neuron variables: ``pyr_layer`` (pyramidal cells of layers 1 … N),
    ``int_layer`` (interneurons, by the layer they belong to), ``hid_layer`` (hidden pyramidal cells)."""
    sizes, N = model.sizes, model.n_layers
    return {
        "pyr_layer": ("pyr", np.concatenate([np.full(sizes[ell], ell) for ell in range(1, N + 1)])),
        "int_layer": ("int", np.concatenate([np.full(sizes[ell + 1], ell) for ell in range(1, N)])),
        "hid_layer": ("hid", np.concatenate([np.full(sizes[ell], ell) for ell in range(1, N)])),
    }


def dataset(model: Model, arrays: dict[str, Array], seeds: Sequence[int], times: Array, has_target: bool,
            test_times: Array | None = None, extra: dict[str, Any] | None = None) -> xr.Dataset:
    """The run's dataset from ``arrays`` (each with a leading seed axis, dims in :data:`VARIABLES`): coords
    ``seed``, ``time`` (ms, the end of each record window), ``layer`` (hidden layers 1 … N−1), ``test_time`` and the
    unit layers when those variables are present; ``extra`` becomes ``attrs['extra_summary']``."""
    data_vars = {}
    for name, values in arrays.items():
        dims, attrs = VARIABLES[name]
        attrs = dict(attrs)
        if name == "loss":
            attrs["long_name"] = "½‖u_N(free) − u_tgt‖²" if has_target else "mean square apical potential"
        data_vars[name] = (("seed", *dims), np.asarray(values), attrs)
    coords: dict[str, Any] = {"seed": list(seeds), "time": times, "layer": np.arange(1, model.n_layers)}
    ds = xr.Dataset(data_vars, coords=coords)
    ds["time"].attrs["units"] = "ms"
    if test_times is not None:
        ds = ds.assign_coords(test_time=("test_time", np.asarray(test_times)))
        ds["test_time"].attrs["units"] = "ms"
    if "rate_pyr" in arrays:
        ds = ds.assign_coords(unit_layers(model))
    ds.attrs["extra_summary"] = extra or {}
    return ds
