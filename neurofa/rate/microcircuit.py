r"""Rate backend of the dendritic cortical microcircuit: ``simulate(cfg, seeds, progress) -> xarray.Dataset``.

All seeds of a run are simulated as one batch (:mod:`neurofa.rate.mc_dynamics`: equations, step order, the
``lagged``/``instant`` schemes and the mean field of the spiking model). This module drives the batch through the
task and records the dataset of :mod:`neurofa.runner`'s convention.

Tasks (SCIENCE.md §4): inputs are held for ``task.t_pres`` ms each, in a fresh random order per epoch and seed
(:func:`neurofa.circuit.presentation_order`).

- ``backprojection`` (PAL Fig 3): no target, the output is free;
- ``teacher``: the output is nudged towards the teacher's output voltage u_tgt (:func:`neurofa.circuit.circuit_task`);
- classification (``yinyang``, ``bars``, ``digits``, ``mnist``): the output is nudged towards the one-hot targets used
  directly as voltages, u_tgt ∈ {target_low, target_high}. With Urbanczik–Senn learning the output's free voltage
  v̂_N converges to u_tgt (φ(u_N) = φ(v̂_N) ⇔ u_N = v̂_N ⇔ v̂_N = u_tgt), so voltages are the natural target space
  and no inverse of φ is needed; the output rates are φ(u), monotone in u, so the class read-out is unaffected.

Recording (every ``simulation.record_interval`` ms, time coordinate t_k in ms): the quantities that need the network
state (loss, apical mismatch, the operating point of ∠(B, φ'Wᵀφ')) are sampled at the end of every presentation
(the settled state for that input; also at each record time) and averaged over the samples of the record window:

- ``loss``: ½‖u_N − u_tgt‖² of the free network's output u_N (its steady state for the presented input with the
  current weights, :func:`neurofa.circuit.steady_state`), where the task has targets; otherwise the apical mismatch
  averaged over hidden layers. (The nudged circuit's own prediction g_bas/(g_l+g_bas) v_bas,N is no measure of
  learning: the target reaches it through the apical feedback and through the weights' adaptation within the
  presentation);
- ``apical_mismatch`` (seed, time, layer): mean over the layer's cells of v_api² (without PAL's noise);
- ``angle_B_WT``: ∠(B_ℓ, W_{ℓ+1}ᵀ) at t_k; ``angle_B_RHS``: ∠(B_ℓ, R_ℓ) with
  R_ℓ[i, j] = W_{ℓ+1}[j, i] · ⟨φ'(ŭ_ℓ,i) φ'(ŭ_{ℓ+1},j)⟩, i.e. the average over the window's samples of the per-sample
  matrices φ'_ℓ W_{ℓ+1}ᵀ φ'_{ℓ+1} (with the current W) — the matrix PAL's B aligns with (Max2024);
  ``angle_*_initial`` (seed, layer) hold the values at t = 0 (R from the steady state of the training inputs);
- ``norm_ratio_B_W`` (seed, time, layer): ‖B_ℓ‖_F / ‖W_{ℓ+1}‖_F (PAL aligns direction, not scale).

Evaluation (end of run, and every ``simulation.test_interval`` ms if > 0): the free network's output on the test
inputs from :func:`neurofa.circuit.steady_state`. This assumes the self-predicting state (interneurons cancel the
top-down input, so the apical potential vanishes without a target), which the lateral plasticity maintains and the
default start provides; class = argmax of the output rates φ(u_N). ``test_accuracy``/``test_loss`` (½‖u_N − y‖²)
per seed; ``train_accuracy`` on (at most 10,000 of) the training samples; ``test_accuracy_curve`` (seed, test_time).

With ``simulation.record_detail`` the window means and weight snapshots of :mod:`neurofa.runner` are added.
"""

from __future__ import annotations

import math
import time as _time
from typing import Any

import numpy as np
import xarray as xr

from neurofa.activations import activation
from neurofa.circuit import circuit_task, initial_weights, learning_rate_factor, presentation_order, steady_state
from neurofa.config import Config
from neurofa.metrics import alignment_angle, matrix_angle, mse_loss
from neurofa.rate.mc_dynamics import Microcircuit, NoiseSource

__all__ = ["simulate", "TaskStream", "evaluate", "SHARED_DATA_TASKS"]

SHARED_DATA_TASKS = ("yinyang", "bars", "digits", "mnist")
MAX_TRAIN_EVAL = 10_000


class TaskStream:
    """Inputs and targets of every seed: the arrays of :func:`neurofa.circuit.circuit_task` and the order.

    Fixed data sets are loaded once and shared by the seeds; synthetic ones (backprojection, teacher) are stacked
    per seed. ``x_train`` is (n, n_0) when shared, (S, n, n_0) otherwise; likewise ``y_*`` and the test arrays.
    """

    def __init__(self, cfg: Config, seeds: list[int], n_presentations: int):
        self.shared = cfg.task.name in SHARED_DATA_TASKS
        datas = [circuit_task(cfg, seeds[0])] * len(seeds) if self.shared else [circuit_task(cfg, s) for s in seeds]
        d0 = datas[0]
        self.kind = d0.kind
        self.has_target = d0.y_train is not None

        def stack(name: str) -> np.ndarray | None:
            first = getattr(d0, name)
            if first is None:
                return None
            return np.asarray(first, dtype=float) if self.shared else np.stack([getattr(d, name) for d in datas])

        self.x_train, self.y_train = stack("x_train"), stack("y_train")
        self.x_test, self.y_test = stack("x_test"), stack("y_test")
        self.labels_train, self.labels_test = d0.labels_train, d0.labels_test
        self.n_train = d0.x_train.shape[0]
        self.order = np.stack([presentation_order(self.n_train, n_presentations, s) for s in seeds])
        self._rows = np.arange(len(seeds))

    def sample(self, p: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Inputs (S, n_0) and targets (S, n_N) or None of presentation ``p``."""
        idx = self.order[:, p]
        if self.shared:
            x = self.x_train[idx]
            y = None if self.y_train is None else self.y_train[idx]
        else:
            x = self.x_train[self._rows, idx]
            y = None if self.y_train is None else self.y_train[self._rows, idx]
        return x, y


def _output_rates(cfg: Config, u_out: np.ndarray) -> np.ndarray:
    if cfg.network.output_linear:
        return u_out
    return activation(cfg.network.activation)[0](u_out)


def evaluate(cfg: Config, W: list[np.ndarray], x: np.ndarray, y: np.ndarray | None,
             labels: np.ndarray | None) -> dict[str, np.ndarray]:
    """Accuracy and loss (per seed) of the free network at its steady state on inputs ``x`` (self-predicting)."""
    u_out = steady_state(cfg, W, x)[-1]
    out: dict[str, np.ndarray] = {}
    if y is not None:
        out["loss"] = mse_loss(u_out, y)
    if labels is not None:
        pred = np.argmax(_output_rates(cfg, u_out), axis=-1)
        out["accuracy"] = np.mean(pred == np.asarray(labels), axis=-1)
    return out


class _Recorder:
    """Window accumulators of the probe quantities and the recorded time series."""

    def __init__(self, cfg: Config, net: Microcircuit, n_records: int, detail: bool):
        lay = net.layout
        self.cfg = cfg
        S, N = net.n_seeds, lay.n_layers
        self.net = net
        self.n_hidden = N - 1
        self.count = 0
        self.loss_sum = np.zeros(S)
        self.api_sum = np.zeros((S, N - 1))
        self.dd_sum = [np.zeros((S, lay.sizes[ell], lay.sizes[ell + 1])) for ell in range(1, N)]
        shape = (S, n_records, N - 1)
        self.angle_WT, self.angle_RHS, self.norm_ratio = (np.full(shape, np.nan) for _ in range(3))
        self.apical = np.full(shape, np.nan)
        self.loss = np.full((S, n_records), np.nan)
        self.detail = detail
        self.phi_prime = net.phi_prime
        if detail:
            self.steps = 0
            self.r_sum = np.zeros((S, lay.n_units))
            self.d1_sum = np.zeros((S, lay.n_units))
            self.d2_sum = np.zeros((S, lay.n_units))
            self.hid_idx = np.concatenate([np.arange(s.start, s.stop) for s in lay.pyr[:-1]])
            n_w = sum(w[0].size for w in net.W)
            n_b = sum(b[0].size for b in net.B)
            self.rate_pyr = np.full((S, n_records, lay.pyr_idx.size), np.nan)
            self.rate_int = np.full((S, n_records, lay.int_idx.size), np.nan)
            self.v_bas = np.full((S, n_records, lay.pyr_idx.size), np.nan)
            self.v_api = np.full((S, n_records, self.hid_idx.size), np.nan)
            self.weights_W = np.full((S, n_records, n_w), np.nan)
            self.weights_B = np.full((S, n_records, n_b), np.nan)

    def _phi_prime(self, v: np.ndarray, layer: int) -> np.ndarray:
        if layer == self.net.layout.n_layers and self.net.output_linear:
            return np.ones_like(v)
        return self.phi_prime(v)

    def probe(self) -> None:
        """Sample the settled state at the end of a presentation."""
        net, lay = self.net, self.net.layout
        api = net.apical()
        for ell, v in enumerate(api):
            self.api_sum[:, ell] += np.mean(v * v, axis=-1)
        if net.target is not None:
            u_free = steady_state(self.cfg, net.W, net.inputs[:, None, :])[-1][:, 0, :]
            d = u_free - net.target
            self.loss_sum += 0.5 * np.sum(d * d, axis=-1)
        else:
            self.loss_sum += np.mean([np.mean(v * v, axis=-1) for v in api], axis=0)
        uu = net.prospective_voltage()
        fp = [self._phi_prime(uu[:, s], ell) for ell, s in enumerate(lay.pyr, start=1)]
        for ell in range(self.n_hidden):
            self.dd_sum[ell] += fp[ell][:, :, None] * fp[ell + 1][:, None, :]
        self.count += 1

    def accumulate(self) -> None:
        net = self.net
        self.r_sum += net.r
        self.d1_sum += net.d1
        self.d2_sum += net.d2
        self.steps += 1

    def angles(self, dd: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        net = self.net
        wt, rhs, nr = [], [], []
        for ell in range(self.n_hidden):
            B, W_next = net.B[ell], net.W[ell + 1]
            wt.append(alignment_angle(B, W_next))
            rhs.append(matrix_angle(B, dd[ell] * np.swapaxes(W_next, -1, -2)))
            nr.append(np.sqrt(np.sum(B * B, axis=(-2, -1)) / np.sum(W_next * W_next, axis=(-2, -1))))
        return np.stack(wt, -1), np.stack(rhs, -1), np.stack(nr, -1)

    def record(self, j: int) -> None:
        if self.count == 0:
            self.probe()
        c = self.count
        dd = [m / c for m in self.dd_sum]
        self.angle_WT[:, j], self.angle_RHS[:, j], self.norm_ratio[:, j] = self.angles(dd)
        self.apical[:, j] = self.api_sum / c
        self.loss[:, j] = self.loss_sum / c
        self.count = 0
        self.loss_sum[...] = 0.0
        self.api_sum[...] = 0.0
        for m in self.dd_sum:
            m[...] = 0.0
        if self.detail:
            net, lay, n = self.net, self.net.layout, max(self.steps, 1)
            self.rate_pyr[:, j] = self.r_sum[:, lay.pyr_idx] / n
            self.rate_int[:, j] = self.r_sum[:, lay.int_idx] / n
            self.v_bas[:, j] = self.d1_sum[:, lay.pyr_idx] / n
            self.v_api[:, j] = self.d2_sum[:, self.hid_idx] / n
            self.weights_W[:, j] = np.concatenate([w.reshape(w.shape[0], -1) for w in net.W], axis=1)
            self.weights_B[:, j] = np.concatenate([b.reshape(b.shape[0], -1) for b in net.B], axis=1)
            for arr in (self.r_sum, self.d1_sum, self.d2_sum):
                arr[...] = 0.0
            self.steps = 0


def _initial_operating_point(cfg: Config, net: Microcircuit, data: TaskStream) -> list[np.ndarray]:
    """⟨φ'_ℓ ⊗ φ'_{ℓ+1}⟩ over (up to 200) training inputs at the free steady state, per hidden layer."""
    x = data.x_train[..., :200, :]
    us = steady_state(cfg, net.W, x)
    N = net.layout.n_layers
    fp = [np.ones_like(u) if (ell == N and cfg.network.output_linear) else net.phi_prime(u)
          for ell, u in enumerate(us, start=1)]
    return [np.mean(fp[ell][..., :, :, None] * fp[ell + 1][..., :, None, :], axis=-3) for ell in range(N - 1)]


def _steps(duration: float, dt: float) -> int:
    return max(1, int(round(duration / dt)))


def simulate(cfg: Config, seeds: list[int], progress: bool = False, noise_refine: int = 1) -> xr.Dataset:
    """Simulate ``cfg`` for all ``seeds`` as one batch and return the run's dataset (see the module docstring).

    ``noise_refine`` = m draws PAL's noise on the grid dt/m and sums it (common Wiener path for dt-convergence
    studies, :class:`~neurofa.rate.mc_dynamics.NoiseSource`); the default 1 is the plain Euler–Maruyama scheme.
    """
    seeds = [int(s) for s in seeds]
    sim = cfg.simulation
    dt = sim.dt
    n_steps = _steps(sim.duration, dt)
    per_pres = _steps(cfg.task.t_pres, dt)
    per_record = _steps(sim.record_interval, dt)
    per_test = _steps(sim.test_interval, dt) if sim.test_interval > 0 else 0
    n_pres = -(-n_steps // per_pres)
    n_records = n_steps // per_record

    data = TaskStream(cfg, seeds, n_pres)
    net = Microcircuit(cfg, initial_weights(cfg, seeds))
    noise = NoiseSource(net, seeds, refine=noise_refine) if net.noisy else None
    rec = _Recorder(cfg, net, n_records, sim.record_detail)
    init_wt, init_rhs, init_nr = rec.angles(_initial_operating_point(cfg, net, data))
    test_curve: list[np.ndarray] = []
    test_times: list[float] = []

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc=f"{cfg.name} rate ×{len(seeds)}", unit="step", unit_scale=True)
    start = _time.perf_counter()
    j = 0
    p = -1
    detail = sim.record_detail
    anneal = cfg.plasticity.eta_decay > 0
    for k in range(n_steps):
        if anneal:
            net.set_learning_rate_factor(learning_rate_factor(k * dt, cfg.plasticity))
        if k % per_pres == 0:
            p += 1
            x, y = data.sample(p)
            net.present(x, y)
        net.step(noise.next() if noise is not None else None)
        kk = k + 1
        if kk % per_pres == 0:
            rec.probe()
        if detail:
            rec.accumulate()
        if kk % per_record == 0 and j < n_records:
            rec.record(j)
            j += 1
            if bar is not None:
                bar.update(per_record)
        if per_test and kk % per_test == 0 and data.x_test is not None:
            ev = evaluate(cfg, net.W, data.x_test, data.y_test, data.labels_test)
            if "accuracy" in ev:
                test_curve.append(ev["accuracy"])
                test_times.append(kk * dt)
    wall = _time.perf_counter() - start
    if bar is not None:
        bar.close()
    if not np.all(np.isfinite(net.u)):
        raise FloatingPointError(
            f"{cfg.name}: the rate microcircuit diverged (non-finite voltages); lower the learning rates or dt"
        )
    return _dataset(cfg, seeds, net, data, rec, n_records, per_record,
                    (init_wt, init_rhs, init_nr), test_times, test_curve,
                    {"rate_wall_time_s": wall, "rate_seed_steps_per_s": len(seeds) * n_steps / max(wall, 1e-9),
                     "n_steps": n_steps})


def _dataset(cfg: Config, seeds: list[int], net: Microcircuit, data: TaskStream, rec: _Recorder, n_records: int,
             per_record: int, initial: tuple[np.ndarray, ...], test_times: list[float],
             test_curve: list[np.ndarray], extra: dict[str, Any]) -> xr.Dataset:
    N = net.layout.n_layers
    times = (np.arange(1, n_records + 1) * per_record) * cfg.simulation.dt
    coords: dict[str, Any] = {"seed": seeds, "time": times, "layer": np.arange(1, N)}
    stl = ("seed", "time", "layer")
    ds = xr.Dataset(
        {
            "angle_B_WT": (stl, rec.angle_WT, {"units": "deg", "long_name": "∠(B_ℓ, W_{ℓ+1}ᵀ)"}),
            "angle_B_RHS": (stl, rec.angle_RHS, {"units": "deg", "long_name": "∠(B_ℓ, φ'_ℓ W_{ℓ+1}ᵀ φ'_{ℓ+1})"}),
            "norm_ratio_B_W": (stl, rec.norm_ratio, {"long_name": "‖B_ℓ‖ / ‖W_{ℓ+1}‖"}),
            "apical_mismatch": (stl, rec.apical, {"long_name": "mean square apical potential"}),
            "loss": (("seed", "time"), rec.loss,
                     {"long_name": "½‖u_N(free) − u_tgt‖²" if data.has_target else "mean square apical potential"}),
            "angle_B_WT_initial": (("seed", "layer"), initial[0], {"units": "deg"}),
            "angle_B_RHS_initial": (("seed", "layer"), initial[1], {"units": "deg"}),
            "norm_ratio_B_W_initial": (("seed", "layer"), initial[2]),
        },
        coords=coords,
    )
    ds["time"].attrs["units"] = "ms"
    if data.x_test is not None:
        ev = evaluate(cfg, net.W, data.x_test, data.y_test, data.labels_test)
        if "accuracy" in ev:
            ds["test_accuracy"] = ("seed", ev["accuracy"])
        if "loss" in ev:
            ds["test_loss"] = ("seed", ev["loss"])
    if data.labels_train is not None:
        n = min(MAX_TRAIN_EVAL, data.n_train)
        ev = evaluate(cfg, net.W, data.x_train[..., :n, :], None, data.labels_train[:n])
        ds["train_accuracy"] = ("seed", ev["accuracy"])
    if test_curve:
        ds["test_accuracy_curve"] = (("seed", "test_time"), np.stack(test_curve, axis=1))
        ds = ds.assign_coords(test_time=("test_time", np.asarray(test_times)))
        ds["test_time"].attrs["units"] = "ms"
    if rec.detail:
        lay = net.layout
        hid_idx = rec.hid_idx
        ds["rate_pyr"] = (("seed", "time", "pyr"), rec.rate_pyr)
        ds["rate_int"] = (("seed", "time", "int"), rec.rate_int)
        ds["v_bas"] = (("seed", "time", "pyr"), rec.v_bas)
        ds["v_api"] = (("seed", "time", "hid"), rec.v_api)
        ds["weights_W"] = (("seed", "time", "w_index"), rec.weights_W)
        ds["weights_B"] = (("seed", "time", "b_index"), rec.weights_B)
        ds = ds.assign_coords(
            pyr_layer=("pyr", lay.unit_layer(lay.pyr_idx)),
            int_layer=("int", lay.unit_layer(lay.int_idx)),
            hid_layer=("hid", lay.unit_layer(hid_idx)),
        )
    ds.attrs["extra_summary"] = extra
    ds.attrs["rate_scheme"] = cfg.simulation.scheme
    return ds


def steps_of(cfg: Config) -> int:
    """Number of Euler steps of a run of ``cfg``."""
    return _steps(cfg.simulation.duration, cfg.simulation.dt)


def presentations_of(cfg: Config) -> int:
    """Number of input presentations of a run of ``cfg``."""
    return math.ceil(steps_of(cfg) / _steps(cfg.task.t_pres, cfg.simulation.dt))
