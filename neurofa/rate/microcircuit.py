r"""Rate backend of the dendritic cortical microcircuit: ``simulate(cfg, seeds, progress) -> xarray.Dataset``.

All seeds of a run are simulated as one batch of the configuration's model description
(:func:`neurofa.model.compile_model`) by :mod:`neurofa.rate.dynamics` (equations, the mean field of the spiking
model) in the order of :mod:`neurofa.rate.schemes`. This module drives the batch through the task, probes its
state and hands the observations to :mod:`neurofa.recording`.

Tasks (``docs/science.md`` §4): inputs are held for ``task.t_pres`` ms each, in a fresh random order per epoch and
seed (:func:`neurofa.circuit.presentation_order`).

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
- ``angle_B_WT``, ``angle_B_RHS``, ``norm_ratio_B_W`` (:func:`neurofa.recording.alignment`) at t_k, the operating
  point of R_ℓ being the average over the window's samples of the per-sample matrices φ'_ℓ ⊗ φ'_{ℓ+1} of the probed
  state; ``angle_*_initial`` (seed, layer) hold the values at t = 0 (R from the steady state of the training
  inputs, :func:`neurofa.recording.operating_point`).

Evaluation (end of run, and every ``simulation.test_interval`` ms if > 0): the free network's output on the test
inputs at its steady state (:func:`neurofa.recording.steady_state_scores`; class = argmax of the output rates).
``test_accuracy``/``test_loss`` (½‖u_N − y‖²) per seed; ``train_accuracy`` on (at most 10,000 of) the training
samples; ``test_accuracy_curve`` (seed, test_time).

With ``simulation.record_detail`` the window means and weight snapshots of :mod:`neurofa.runner` are added.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from neurofa.checkpoint import Checkpoint
from neurofa.circuit import circuit_task, initial_weights, learning_rate_factor, presentation_order, steady_state
from neurofa.config import Config, ConfigError, register_check
from neurofa.divergence import DivergenceError, non_finite
from neurofa.estimate import Estimate, data_values, microcircuit_size
from neurofa.model import Model, compile_model
from neurofa.rate.dynamics import Microcircuit, NoiseSource
from neurofa.recording import alignment, dataset, operating_point, phi_prime_products, steady_state_scores
from neurofa.tasks import task_spec

__all__ = ["simulate", "estimate", "TaskStream", "check_rate_microcircuit"]

MAX_TRAIN_EVAL = 10_000
#: the name of the rate backend's checkpoint file (:mod:`neurofa.checkpoint`)
CHECKPOINT = "rate"


class TaskStream:
    """Inputs and targets of every seed: the arrays of :func:`neurofa.circuit.circuit_task` and the order.

    Fixed data sets are loaded once and shared by the seeds; synthetic ones (backprojection, teacher) are stacked
    per seed. ``x_train`` is (n, n_0) when shared, (S, n, n_0) otherwise; likewise ``y_*`` and the test arrays.
    """

    def __init__(self, cfg: Config, seeds: list[int], n_presentations: int):
        self.shared = not task_spec(cfg.task.name).synthetic
        datas = [circuit_task(cfg, seeds[0])] * len(seeds) if self.shared else [circuit_task(cfg, s) for s in seeds]
        d0 = datas[0]
        self.kind = d0.kind
        self.has_target = d0.y_train is not None

        def stack(name: str) -> np.ndarray | None:
            first = getattr(d0, name)
            if first is None:
                return None
            return np.asarray(first, dtype=float) if self.shared else np.stack([getattr(d, name) for d in datas])

        x_train = stack("x_train")
        assert x_train is not None
        self.x_train = x_train
        self.y_train = stack("y_train")
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


class _Recorder:
    """Window accumulators of the probe quantities and the recorded time series."""

    def __init__(self, model: Model, net: Microcircuit, n_records: int, detail: bool):
        lay = net.layout
        S, N = net.n_seeds, lay.n_layers
        self.model, self.net = model, net
        self.n_hidden = N - 1
        self.count = 0
        self.loss_sum = np.zeros(S)
        self.api_sum = np.zeros((S, N - 1))
        self.dd_sum = [np.zeros((S, lay.sizes[ell], lay.sizes[ell + 1])) for ell in range(1, N)]
        shape = (S, n_records, N - 1)
        self.series = {name: np.full(shape, np.nan) for name in ("angle_B_WT", "angle_B_RHS", "norm_ratio_B_W",
                                                                 "apical_mismatch")}
        self.series["loss"] = np.full((S, n_records), np.nan)
        self.detail = detail
        if detail:
            self._detail_arrays(n_records)

    def _detail_arrays(self, n_records: int) -> None:
        net, lay = self.net, self.net.layout
        S = net.n_seeds
        self.steps = 0
        self.r_sum = np.zeros((S, lay.n_units))
        self.d1_sum = np.zeros((S, lay.n_units))
        self.d2_sum = np.zeros((S, lay.n_units))
        self.hid_idx = lay.hid_idx
        n_w = sum(w[0].size for w in net.W)
        n_b = sum(b[0].size for b in net.B)
        self.series.update({
            "rate_pyr": np.full((S, n_records, lay.pyr_idx.size), np.nan),
            "rate_int": np.full((S, n_records, lay.int_idx.size), np.nan),
            "v_bas": np.full((S, n_records, lay.pyr_idx.size), np.nan),
            "v_api": np.full((S, n_records, self.hid_idx.size), np.nan),
            "weights_W": np.full((S, n_records, n_w), np.nan),
            "weights_B": np.full((S, n_records, n_b), np.nan),
        })

    def probe(self) -> None:
        """Sample the settled state at the end of a presentation."""
        net, lay = self.net, self.net.layout
        mismatch = [np.mean(v * v, axis=-1) for v in net.apical()]
        for ell, m in enumerate(mismatch):
            self.api_sum[:, ell] += m
        if net.target is not None:
            u_free = steady_state(self.model, net.W, net.inputs[:, None, :])[-1][:, 0, :]
            d = u_free - net.target
            self.loss_sum += 0.5 * np.sum(d * d, axis=-1)
        else:
            self.loss_sum += np.mean(mismatch, axis=0)
        for ell, dd in enumerate(phi_prime_products(self.model, net.prospective_voltage(), lay.pyr)):
            self.dd_sum[ell] += dd
        self.count += 1

    def accumulate(self) -> None:
        net = self.net
        self.r_sum += net.r
        self.d1_sum += net.d1
        self.d2_sum += net.d2
        self.steps += 1

    #: attributes that are configuration, not state
    _FIXED = ("model", "net", "n_hidden", "detail", "hid_idx")

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the window accumulators and the series recorded so far."""
        out: dict[str, np.ndarray] = {}
        for name, value in vars(self).items():
            if name in self._FIXED:
                continue
            if isinstance(value, dict):
                out.update({f"rec_{name}.{k}": v.copy() for k, v in value.items()})
            elif isinstance(value, list):
                out.update({f"rec_{name}.{i}": v.copy() for i, v in enumerate(value)})
            else:
                out[f"rec_{name}"] = np.array(value)
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state`."""
        for name, value in vars(self).items():
            if name in self._FIXED:
                continue
            if isinstance(value, dict):
                for k, v in value.items():
                    np.copyto(v, state[f"rec_{name}.{k}"])
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    np.copyto(v, state[f"rec_{name}.{i}"])
            elif isinstance(value, np.ndarray):
                np.copyto(value, state[f"rec_{name}"])
            else:
                setattr(self, name, type(value)(state[f"rec_{name}"]))

    def truncate(self, records: int) -> None:
        """Forget what was accumulated after the first ``records`` windows (NaN from there on)."""
        for values in self.series.values():
            values[:, records:] = np.nan

    def record(self, j: int) -> None:
        if self.count == 0:
            self.probe()
        c, net, series = self.count, self.net, self.series
        for name, values in alignment(net.B, net.W, [m / c for m in self.dd_sum]).items():
            series[name][:, j] = values
        series["apical_mismatch"][:, j] = self.api_sum / c
        series["loss"][:, j] = self.loss_sum / c
        self.count = 0
        self.loss_sum[...] = 0.0
        self.api_sum[...] = 0.0
        for m in self.dd_sum:
            m[...] = 0.0
        if self.detail:
            self._record_detail(j)

    def _record_detail(self, j: int) -> None:
        net, lay, n, series = self.net, self.net.layout, max(self.steps, 1), self.series
        series["rate_pyr"][:, j] = self.r_sum[:, lay.pyr_idx] / n
        series["rate_int"][:, j] = self.r_sum[:, lay.int_idx] / n
        series["v_bas"][:, j] = self.d1_sum[:, lay.pyr_idx] / n
        series["v_api"][:, j] = self.d2_sum[:, self.hid_idx] / n
        series["weights_W"][:, j] = np.concatenate([w.reshape(w.shape[0], -1) for w in net.W], axis=1)
        series["weights_B"][:, j] = np.concatenate([b.reshape(b.shape[0], -1) for b in net.B], axis=1)
        for arr in (self.r_sum, self.d1_sum, self.d2_sum):
            arr[...] = 0.0
        self.steps = 0


def _steps(duration: float, dt: float) -> int:
    return max(1, int(round(duration / dt)))


@dataclass(frozen=True)
class _Schedule:
    """Step counts of a run: total, per presentation, per record window, per test (0 = no test curve)."""

    n_steps: int
    per_pres: int
    per_record: int
    per_test: int

    @classmethod
    def of(cls, cfg: Config) -> _Schedule:
        sim = cfg.simulation
        per_test = _steps(sim.test_interval, sim.dt) if sim.test_interval > 0 else 0
        return cls(_steps(sim.duration, sim.dt), _steps(cfg.task.t_pres, sim.dt),
                   _steps(sim.record_interval, sim.dt), per_test)

    @property
    def n_presentations(self) -> int:
        return -(-self.n_steps // self.per_pres)

    @property
    def n_records(self) -> int:
        return self.n_steps // self.per_record


@dataclass
class _Run:
    """The batch, its input stream and recorder, and the test-accuracy curve of one simulation."""

    cfg: Config
    model: Model
    net: Microcircuit
    data: TaskStream
    noise: NoiseSource | None
    rec: _Recorder
    schedule: _Schedule
    seeds: list[int]
    initial: dict[str, np.ndarray]
    test_times: list[float]
    test_curve: list[np.ndarray]

    def loop(self, progress: bool, label: str, checkpoint: Checkpoint | None = None) -> None:
        """Every Euler step: annealing, presentations, probes, records, test points and checkpoints; from the
        last checkpoint if ``checkpoint`` holds one."""
        cfg, net, data, rec, s = self.cfg, self.net, self.data, self.rec, self.schedule
        dt = cfg.simulation.dt
        detail = cfg.simulation.record_detail
        anneal = cfg.plasticity.eta_decay > 0
        per_checkpoint = _steps(cfg.simulation.checkpoint_interval, dt) if cfg.simulation.checkpoint_interval else 0
        start, j, p = self.resume(checkpoint) if checkpoint is not None else (0, 0, -1)
        bar = tqdm(total=s.n_steps, initial=start, desc=label, unit="step", unit_scale=True) if progress else None
        # steps run in blocks up to the next step at which anything outside the kernel happens (a presentation, a
        # probe, a record, a test point, a checkpoint); annealing and detailed records act at every step
        periods = [per for per in (s.per_pres, s.per_record, s.per_test if data.x_test is not None else 0,
                                   per_checkpoint if checkpoint is not None else 0) if per]
        single = anneal or detail
        k = start
        while k < s.n_steps:
            if anneal:
                net.set_learning_rate_factor(learning_rate_factor(k * dt, cfg.plasticity))
            if k % s.per_pres == 0:
                p += 1
                net.present(*data.sample(p))
            n = 1 if single else min([s.n_steps - k] + [per - k % per for per in periods])
            kk = k = k + net.advance(self.noise, n)
            if kk % s.per_pres == 0:
                rec.probe()
            if detail:
                rec.accumulate()
            if kk % s.per_record == 0 and j < s.n_records:
                self.check_finite(kk * dt, j)
                rec.record(j)
                j += 1
                if bar is not None:
                    bar.update(s.per_record)
            if s.per_test and kk % s.per_test == 0 and data.x_test is not None:
                self.test_point(kk * dt)
            if checkpoint is not None and per_checkpoint and kk % per_checkpoint == 0 and kk < s.n_steps:
                checkpoint.save(CHECKPOINT, self.state(kk, j, p))
        if bar is not None:
            bar.close()

    def state(self, k: int, j: int, p: int) -> dict[str, np.ndarray]:
        """Everything the loop needs to continue at step ``k`` (record ``j``, presentation ``p``)."""
        out: dict[str, np.ndarray] = {"position": np.array([k, j, p]), **self.net.state(), **self.rec.state()}
        if self.noise is not None:
            out.update(self.noise.state())
        out["test_times"] = np.asarray(self.test_times, dtype=float)
        out["test_curve"] = np.stack(self.test_curve) if self.test_curve else np.zeros((0, len(self.seeds)))
        return out

    def resume(self, checkpoint: Checkpoint) -> tuple[int, int, int]:
        """Restore the last checkpoint, if any: (next step, next record, current presentation)."""
        state = checkpoint.load(CHECKPOINT)
        if state is None:
            return 0, 0, -1
        k, j, p = (int(v) for v in state["position"])
        if p >= 0:
            self.net.present(*self.data.sample(p))
        self.net.restore(state)
        self.rec.restore(state)
        if self.noise is not None:
            self.noise.restore(state)
        self.test_times[:] = state["test_times"].tolist()
        self.test_curve[:] = list(state["test_curve"])
        return k, j, p

    def check_finite(self, t: float, records: int) -> None:
        """Raise :class:`DivergenceError` (with the ``records`` windows recorded so far) if the state went
        non-finite."""
        net = self.net
        found = non_finite({"forward weights (W, W^IP)": net.F_flat, "apical weights (B, B^PI)": net.G_flat,
                            "somatic potentials": net.ueff}, self.seeds)
        if found is not None:
            quantity, bad = found
            self.rec.truncate(records)
            raise DivergenceError(self.cfg.name, bad, t, "ms", quantity,
                                  partial=_dataset(self, self.seeds, self.initial, {}, final=False))

    def test_point(self, t: float) -> None:
        assert self.data.x_test is not None
        ev = steady_state_scores(self.model, self.net.W, self.data.x_test, self.data.y_test, self.data.labels_test)
        if "accuracy" in ev:
            self.test_curve.append(ev["accuracy"])
            self.test_times.append(t)


def simulate(cfg: Config, seeds: list[int], progress: bool = False, noise_refine: int = 1,
             checkpoint: Checkpoint | None = None) -> xr.Dataset:
    """Simulate ``cfg`` for all ``seeds`` as one batch and return the run's dataset (see the module docstring).

    ``noise_refine`` = m draws PAL's noise on the grid dt/m and sums it (common Wiener path for dt-convergence
    studies, :class:`~neurofa.rate.dynamics.NoiseSource`); the default 1 is the plain Euler–Maruyama scheme.
    ``checkpoint``: continue from its last checkpoint, if any, and write one every
    ``simulation.checkpoint_interval`` ms (:data:`CHECKPOINT`: the batch's whole state, so the result is bitwise
    that of an uninterrupted run).
    """
    seeds = [int(s) for s in seeds]
    schedule = _Schedule.of(cfg)
    model = compile_model(cfg)
    data = TaskStream(cfg, seeds, schedule.n_presentations)
    net = Microcircuit(model, cfg.simulation, initial_weights(cfg, seeds, model))
    noise = NoiseSource(net, seeds, refine=noise_refine) if net.noisy else None
    rec = _Recorder(model, net, schedule.n_records, cfg.simulation.record_detail)
    initial = alignment(net.B, net.W, operating_point(model, net.W, data.x_train))
    run = _Run(cfg, model, net, data, noise, rec, schedule, seeds, initial, [], [])
    start = _time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging state is caught at the next record
        run.loop(progress, f"{cfg.name} rate ×{len(seeds)}", checkpoint)
    wall = _time.perf_counter() - start
    run.check_finite(schedule.n_steps * cfg.simulation.dt, schedule.n_records)
    extra = {"rate_wall_time_s": wall, "rate_seed_steps_per_s": len(seeds) * schedule.n_steps / max(wall, 1e-9),
             "n_steps": schedule.n_steps,
             "max_abs_weight": float(max(np.abs(net.F_flat).max(), np.abs(net.G_flat).max(initial=0.0)))}
    return _dataset(run, seeds, initial, extra)


def _dataset(run: _Run, seeds: list[int], initial: dict[str, np.ndarray], extra: dict[str, Any],
             final: bool = True) -> xr.Dataset:
    """The run's dataset; ``final = False`` (a diverged run) leaves out the evaluation of the final weights."""
    cfg, model, net, data, rec = run.cfg, run.model, run.net, run.data, run.rec
    times = (np.arange(1, run.schedule.n_records + 1) * run.schedule.per_record) * cfg.simulation.dt
    arrays: dict[str, np.ndarray] = {name: rec.series[name] for name in ("angle_B_WT", "angle_B_RHS",
                                                                           "norm_ratio_B_W", "apical_mismatch", "loss")}
    arrays.update({f"{name}_initial": values for name, values in initial.items()})
    if final and data.x_test is not None:
        ev = steady_state_scores(model, net.W, data.x_test, data.y_test, data.labels_test)
        if "accuracy" in ev:
            arrays["test_accuracy"] = ev["accuracy"]
        if "loss" in ev:
            arrays["test_loss"] = ev["loss"]
    if final and data.labels_train is not None:
        n = min(MAX_TRAIN_EVAL, data.n_train)
        arrays["train_accuracy"] = steady_state_scores(model, net.W, data.x_train[..., :n, :], None,
                                                       data.labels_train[:n])["accuracy"]
    test_times = None
    if run.test_curve:
        arrays["test_accuracy_curve"] = np.stack(run.test_curve, axis=1)
        test_times = np.asarray(run.test_times)
    if rec.detail:
        arrays.update({name: rec.series[name] for name in ("rate_pyr", "rate_int", "v_bas", "v_api", "weights_W",
                                                           "weights_B")})
    ds = dataset(model, arrays, seeds, times, data.has_target, test_times, extra)
    ds.attrs["rate_scheme"] = cfg.simulation.scheme
    return ds


def estimate(cfg: Config, n_seeds: int) -> Estimate:
    """Euler steps over all seeds, and the memory: the packed weights with their increments (×5), about 20
    vectors of units, the operating point's per-sample products (200 × weights), the task's data, the presentation
    order and the recorded series (4 per hidden layer and the loss per record; with ``record_detail`` the
    per-neuron means and weight snapshots); 8 bytes each."""
    s = _Schedule.of(cfg)
    sizes = cfg.network.layers
    weights, units = microcircuit_size(sizes)
    per_record = 4.0 * (len(sizes) - 2) + 1
    if cfg.simulation.record_detail:
        per_record += 2.0 * units + weights
    per_seed = 5 * weights + 20 * units + 200 * weights + s.n_records * per_record + s.n_presentations
    return Estimate(steps=float(n_seeds) * s.n_steps, bytes=8.0 * (n_seeds * per_seed + data_values(cfg, n_seeds)))


@register_check("backend:rate")
def check_rate_microcircuit(cfg: Config, where: str) -> None:
    """The rate backend low-pases a filtered target with τ_syn, so ``filter_target`` needs ``tau_syn`` > 0."""
    if cfg.model == "microcircuit" and cfg.simulation.filter_target and cfg.simulation.tau_syn <= 0:
        raise ConfigError(
            f"{where}simulation.filter_target = True needs simulation.tau_syn > 0 in the rate backend (the target is "
            f"low-passed with τ_syn); got tau_syn = {cfg.simulation.tau_syn!r}"
        )
