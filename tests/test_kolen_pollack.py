"""Kolen–Pollack backprojections in the microcircuit (``feedback: kp``; Akrout2019, docs/science.md §2.3): B_ℓ
receives the increments of W_{ℓ+1}ᵀ and both decay with λ, so W_{ℓ+1} − B_ℓᵀ shrinks by (1 − η λ dt f) every step
in both backends, and the spiking network's weights follow the rate mean field of its Brian2 equations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neurofa as nf
from neurofa.circuit import initial_weights, learning_rate_factor
from neurofa.config import load_config
from neurofa.metrics import alignment_angle
from neurofa.rate.dynamics import Microcircuit
from neurofa.spiking.params import mean_field_config
from neurofa.validate import learning_level

brian2 = pytest.importorskip("brian2")


def kp_config(**overrides: object) -> nf.Config:
    data = {
        "name": "kp_test",
        "network": {"layers": [3, 5, 2], "init_forward": 0.5, "init_feedback": 1.0},
        "plasticity": {"feedback": "kp", "eta_fw": [2.0, 0.5], "eta_ip": [0.3], "eta_pi": [0.5], "alpha": 0.05,
                       "tau_lo": 0.0},
        "task": {"name": "teacher", "n_train": 20, "t_pres": 1.0},
        "simulation": {"dt": 0.05, "scheme": "instant", "duration": 200.0, "record_interval": 50.0},
    }
    return load_config(data, overrides)


def difference(W: list[np.ndarray], B: list[np.ndarray]) -> np.ndarray:
    """‖W_2 − B_1ᵀ‖_F per seed."""
    return np.linalg.norm(W[1] - np.swapaxes(B[0], -1, -2), axis=(-2, -1))


@pytest.mark.parametrize("tau_lo", [0.0, 20.0])
def test_rate_difference_decays_by_the_product_of_the_decay_factors(tau_lo: float) -> None:
    """‖W_2(k) − B_1(k)ᵀ‖ = Π_j (1 − η_2 λ dt f_j) ‖W_2(0) − B_1(0)ᵀ‖, whatever the increments (with and without
    the forward low-pass, with annealing), while W_2 itself learns and B_1 turns towards W_2ᵀ."""
    cfg = kp_config(**{"plasticity.tau_lo": tau_lo, "plasticity.eta_decay": 30.0})
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
    W0 = [w.copy() for w in net.W]
    start = difference(net.W, net.B)
    angle0 = alignment_angle(net.B[0], net.W[1])
    rng = np.random.default_rng(2)
    expected, dt = 1.0, cfg.simulation.dt
    for k in range(2000):
        f = learning_rate_factor(k * dt, cfg.plasticity)
        net.set_learning_rate_factor(f)
        if k % 20 == 0:
            net.present(rng.uniform(0, 1, (2, 3)), rng.uniform(-1, 1, (2, 2)))
        net.step()
        expected *= 1.0 - 0.5 * 0.05 * dt * f
    np.testing.assert_allclose(difference(net.W, net.B), expected * start, rtol=1e-9)
    assert np.all(np.linalg.norm(net.W[1] - W0[1], axis=(-2, -1)) > 0.05)  # W_2 learned
    assert np.all(alignment_angle(net.B[0], net.W[1]) < angle0)


def test_kp_aligns_backprojections_that_fa_keeps() -> None:
    """From the same start, Kolen–Pollack's ∠(B, Wᵀ) falls to a fraction of its start and of fixed feedback's
    (where only W_2 moves, aligning a little with B: Lillicrap2016)."""
    kp = nf.run(kp_config(**{"simulation.duration": 400.0}), seeds=[0, 1], progress=False).dataset
    fa = nf.run(kp_config(**{"simulation.duration": 400.0, "plasticity.feedback": "fa"}), seeds=[0, 1],
                progress=False).dataset
    start = kp["angle_B_WT_initial"].values[:, 0]
    assert np.all(start > 45.0)
    final_kp = kp["angle_B_WT"].isel(time=-1).values[:, 0]
    final_fa = fa["angle_B_WT"].isel(time=-1).values[:, 0]
    np.testing.assert_allclose(fa["angle_B_WT_initial"].values[:, 0], start)
    assert np.all(final_kp < 0.5 * start) and np.all(final_kp < 0.5 * final_fa), (start, final_kp, final_fa)


ETA_OUT, LAMBDA, DT = 0.01, 0.03, 0.1  # η of W_2 (1/ms; time scale k = 1: task.t_pres = spiking t_pres), λ, dt


def test_yinyang_model_file_aligns_backprojections_within_an_epoch() -> None:
    """models/yinyang_kp.yaml for one epoch (of its 20): ∠(B_1, W_2ᵀ) falls from ≈90° to a few degrees and
    ‖B_1‖/‖W_2‖ → 1 (B becomes W_2ᵀ, scale included), while the network already classifies well above chance."""
    path = Path(__file__).resolve().parents[1] / "models" / "yinyang_kp.yaml"
    cfg = load_config(path, {"simulation.duration": 10000.0, "simulation.test_interval": 0.0})
    ds = nf.run(cfg, seeds=[0, 1], progress=False).dataset
    assert np.all(ds["angle_B_WT_initial"].values > 80.0)
    assert np.all(ds["angle_B_WT"].isel(time=-1).values < 12.0)
    np.testing.assert_allclose(ds["norm_ratio_B_W"].isel(time=-1).values, 1.0, atol=0.1)
    assert np.all(ds["test_accuracy"].values > 0.7)


def spiking_kp_config() -> nf.Config:
    return kp_config(**{
        "plasticity.eta_fw": [0.002, ETA_OUT], "plasticity.eta_ip": [0.003], "plasticity.eta_pi": [0.005],
        "plasticity.alpha": LAMBDA, "task.t_pres": 100.0, "simulation.duration": 4000.0,
        "simulation.record_interval": 1000.0, "simulation.record_detail": True,
        "spiking.device": "cpp_standalone", "spiking.report": False, "spiking.nu_max": 1000.0,
        "spiking.tau_s": 5.0, "spiking.dt": DT,
    })


@pytest.fixture(scope="module")
def spiking_runs() -> dict[str, object]:
    cfg = spiking_kp_config()
    return {"cfg": cfg, "spiking": nf.run(cfg, backend="spiking", seeds=[0, 1], progress=False).dataset,
            "rate": nf.run(mean_field_config(cfg), seeds=[0, 1], progress=False).dataset}


def test_spiking_difference_decays_geometrically_spike_noise_and_all(spiking_runs: dict[str, object]) -> None:
    """B_ij gets exactly W_2,ji's increments (the same spikes, the same clock-driven term) and both decay with
    η λ, so ‖W_2 − B_1ᵀ‖ falls by (1 − η_2 λ dt) per step in the spiking network too."""
    ds = spiking_runs["spiking"]
    W = ds["weights_W"].values[:, :, 5 * 3:].reshape(2, -1, 2, 5)
    B = ds["weights_B"].values.reshape(2, -1, 5, 2)
    d = np.linalg.norm(W - np.swapaxes(B, -1, -2), axis=(-2, -1))
    steps = np.round(np.diff(ds["time"].values) / DT)
    expected = (1.0 - ETA_OUT * LAMBDA * DT) ** steps
    np.testing.assert_allclose(d[:, 1:] / d[:, :-1], np.broadcast_to(expected, d[:, 1:].shape), rtol=1e-6)
    # the rate mean field obeys the same law, so the two differences are equal
    rate = spiking_runs["rate"]
    W_r = rate["weights_W"].values[:, :, 5 * 3:].reshape(2, -1, 2, 5)
    B_r = rate["weights_B"].values.reshape(2, -1, 5, 2)
    np.testing.assert_allclose(np.linalg.norm(W_r - np.swapaxes(B_r, -1, -2), axis=(-2, -1)), d, rtol=1e-6)


def test_spiking_weights_follow_the_rate_mean_field(spiking_runs: dict[str, object]) -> None:
    """The rate update is the mean field of the Brian2 equations (spike-train rule, 1000 Hz): the spiking
    trajectories of W and B lie within 10 % of their range of the mean field's (the rest is spike noise, which
    mostly inflates the small output weights' norm), and B aligns with W_2ᵀ in both."""
    cfg = spiking_runs["cfg"]
    res = learning_level(spiking_runs["rate"], spiking_runs["spiking"], cfg)
    assert res["learning_weights_W_rel_rms"] < 0.1, res
    assert res["learning_weights_B_rel_rms"] < 0.1, res
    for ds in (spiking_runs["rate"], spiking_runs["spiking"]):
        start = ds["angle_B_WT_initial"].values[:, 0]
        assert np.all(ds["angle_B_WT"].isel(time=-1).values[:, 0] < start - 10.0)
