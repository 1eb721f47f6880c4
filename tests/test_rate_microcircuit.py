"""Rate microcircuit (docs/science.md §2): PAL alignment, self-prediction, backprop equivalence, mean field, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neurofa as nf
from neurofa.activations import activation
from neurofa.circuit import initial_weights, learning_rate_factor, steady_state
from neurofa.config import ConfigError, load_config
from neurofa.metrics import matrix_angle
from neurofa.rate.dynamics import Layout, Microcircuit, NoiseSource
from neurofa.rate.microcircuit import simulate


def small_backprojection(feedback: str, **sim) -> dict:
    """A 4-8-4 PAL Fig 3 analogue with faster plasticity (a few hundred ms instead of seconds)."""
    return {
        "name": f"test_{feedback}",
        "network": {"layers": [4, 8, 4]},
        "task": {"name": "backprojection", "n_train": 20},
        "plasticity": {"feedback": feedback, "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [20.0],
                       "eta_bw": [500.0], "alpha": 1e-4, "sigma": 0.1},
        "simulation": {"duration": 150.0, "dt": 0.01, "record_interval": 50.0, **sim},
    }


def test_layout_packs_blocks_that_share_presynaptic_partners():
    lay = Layout.of([5, 20, 10, 20, 5])
    assert lay.n_units == 20 + 2 * (10 + 20 + 5)
    assert lay.block[1] == slice(20, 40) and lay.pyr[1] == slice(20, 30) and lay.inter[0] == slice(30, 40)
    # each interneuron of layer ℓ is nudged by the pyramidal cell of layer ℓ+1 at the same position
    assert np.array_equal(lay.pair_idx - lay.int_idx, -np.repeat([10, 20, 5], [10, 20, 5]))


def test_pal_aligns_backprojections_while_fa_keeps_them():
    pal = nf.run(load_config(small_backprojection("pal")), seeds=[0, 1, 2], progress=False).dataset
    fa = simulate(load_config(small_backprojection("fa")), [0, 1, 2])
    start = pal["angle_B_WT_initial"].values[:, 0]
    assert np.allclose(start, fa["angle_B_WT_initial"].values[:, 0])
    assert np.all(start > 75.0)
    final_pal = pal["angle_B_WT"].isel(time=-1).values[:, 0]
    assert np.all(final_pal < start - 15.0), (start, final_pal)
    assert np.mean(start - final_pal) > 25.0
    assert np.allclose(fa["angle_B_WT"].values[:, :, 0], start[:, None], atol=1e-6)
    assert pal["time"].attrs["units"] == "ms"
    # PAL's B aligns with the transpose path φ'Wᵀφ' at least as well as with Wᵀ (Max2024)
    assert np.all(pal["angle_B_RHS"].isel(time=-1).values < start)


def test_self_predicting_state_keeps_the_apical_potential_near_zero():
    """Sacramento2018: with B^PI = −B and W^IP = c W the interneurons cancel the top-down input, so without a target
    the settled apical potential vanishes; a random lateral start does not, until the lateral plasticity learns it."""

    def mismatch(self_predicting: bool, learn_lateral: bool) -> np.ndarray:
        base = small_backprojection("fa", duration=20.0, record_interval=5.0)
        base["network"]["self_predicting"] = self_predicting
        base["plasticity"]["learn_lateral"] = learn_lateral
        return simulate(load_config(base), [0, 1])["apical_mismatch"].values

    assert mismatch(True, False).max() < 1e-12
    random_start = mismatch(False, False)
    assert random_start.min() > 0.1
    learned = mismatch(False, True)
    assert learned[:, -1].max() < 1e-6 * random_start[:, -1].min()


def test_batched_seeds_equal_separate_runs():
    cfg = load_config(small_backprojection("pal", duration=5.0, record_interval=1.0))
    both = simulate(cfg, [3, 4])
    one = simulate(cfg, [4])
    np.testing.assert_allclose(both["angle_B_WT"].sel(seed=4).values, one["angle_B_WT"].sel(seed=4).values,
                               rtol=1e-10, atol=1e-10)


def _nudged_equilibrium(output_linear: bool, g_ntgt: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """US factors of a 3-5-4-2 bp microcircuit at its nudged equilibrium, and the backprop gradient."""
    cfg = load_config({
        "network": {"layers": [3, 5, 4, 2], "output_linear": output_linear},
        "conductances": {"g_ntgt": g_ntgt},
        "plasticity": {"feedback": "bp", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.0]},
        "task": {"name": "teacher"},
        "simulation": {"dt": 0.1},
    })
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1, 2]))
    rng = np.random.default_rng(5)
    x, target = rng.uniform(0, 1, (3, 3)), rng.uniform(-1, 1, (3, 2))
    net.present(x, target)
    for _ in range(2000):
        net.step()
    us = [u[:, 0, :] for u in steady_state(cfg, net.W, x[:, None, :])]
    # Backprop of L = ½‖u_N − u_tgt‖² through the free steady state u_ℓ = k_ℓ W_ℓ φ(u_{ℓ−1}):
    # ∂L/∂W_ℓ = k_ℓ δ_ℓ r_{ℓ−1}ᵀ, δ_N = u_N − u_tgt, δ_ℓ = φ'(u_ℓ) ⊙ W_{ℓ+1}ᵀ k_{ℓ+1} δ_{ℓ+1}.
    # The Urbanczik–Senn factor φ(u_N) − φ(v̂_N) ≈ φ'(v̂_N) λ (u_tgt − v̂_N) weights the output error by φ'(u_N)
    # (1 for a linear output), and every hidden layer receives it through B = Wᵀ scaled by a positive factor.
    phi, dphi = activation("logistic")
    g = cfg.conductances
    k = [g.g_bas / (g.g_l + g.g_bas + g.g_api)] * 2 + [g.g_bas / (g.g_l + g.g_bas)]
    delta = (us[-1] - target) * (1.0 if output_linear else dphi(us[-1]))
    rates = [x] + [phi(u) for u in us[:-1]]
    grads: list[np.ndarray] = [np.empty(0)] * 3
    for ell in (2, 1, 0):
        grads[ell] = k[ell] * delta[:, :, None] * rates[ell][:, None, :]
        if ell:
            delta = dphi(us[ell - 1]) * np.einsum("sij,si->sj", net.W[ell], k[ell] * delta)
    return net.forward_gradient(), grads


@pytest.mark.parametrize("output_linear", [True, False])
def test_bp_mode_forward_updates_follow_the_backprop_gradient(output_linear):
    """At the nudged equilibrium the US update of every layer points along −∂L/∂W; the residual angle is O(λ)
    in the nudging strength λ = g_ntgt/(g_l+g_bas+g_ntgt) and vanishes in the weak-nudging limit."""
    angles = {}
    for g_ntgt in (0.01, 0.001):
        us_factor, grads = _nudged_equilibrium(output_linear, g_ntgt)
        angles[g_ntgt] = np.array([matrix_angle(f, -gr) for f, gr in zip(us_factor, grads)])
    assert np.all(angles[0.01] < 1.0), angles[0.01]
    assert np.all(angles[0.001] < 0.2 * angles[0.01] + 1e-3), (angles[0.001], angles[0.01])
    assert np.all(angles[0.001] < 0.1)


@pytest.mark.parametrize("scheme", ["lagged", "instant"])
def test_synaptic_low_pass_keeps_the_fixed_point(scheme):
    """τ_syn > 0 (mean field of the spiking model) filters the presynaptic rates; with a constant input the circuit
    settles to the same fixed point as without the filter."""
    out = {}
    for tau_syn in (0.0, 2.0):
        cfg = load_config({
            "network": {"layers": [3, 6, 4, 2]},
            "plasticity": {"feedback": "fa", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.0]},
            "simulation": {"dt": 0.05, "tau_syn": tau_syn, "scheme": scheme},
        })
        net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
        net.present(np.random.default_rng(1).uniform(0, 1, (2, 3)), None)
        for _ in range(5000):  # 250 ms ≫ τ_syn and the somatic τ ≈ 5 ms
            net.step()
        out[tau_syn] = (net.u.copy(), net.r.copy(), net.pre.copy())
    for a, b in zip(out[0.0], out[2.0]):
        np.testing.assert_allclose(a, b, atol=1e-8)
    # and the fixed point is the free steady state of the network
    cfg0 = load_config({"network": {"layers": [3, 6, 4, 2]}, "plasticity": {"feedback": "fa"}})
    x = np.random.default_rng(1).uniform(0, 1, (2, 3))
    net0 = Microcircuit.of(cfg0, initial_weights(cfg0, [0, 1]))
    u_out = steady_state(cfg0, net0.W, x[:, None, :])[-1][:, 0, :]
    np.testing.assert_allclose(out[2.0][0][:, net0.layout.pyr[-1]], u_out, atol=1e-8)


@pytest.mark.parametrize("scheme", ["lagged", "instant"])
def test_filtered_target_switches_together_with_the_input_traces(scheme):
    """simulation.filter_target: after a switch (x0, y0) → (x1, y1) the nudging potential has covered the same
    fraction 1 − (1 − dt/τ_syn)^m of its jump as the input traces, step by step; unfiltered, it jumps at once."""
    rng = np.random.default_rng(3)
    x0, x1 = rng.uniform(0, 1, (2, 2, 3))
    y0, y1 = rng.uniform(-4, 4, (2, 2, 2))
    dt, tau = 0.05, 2.0
    k = dt / tau
    for filtered in (True, False):
        cfg = load_config({
            "network": {"layers": [3, 6, 2]},
            "plasticity": {"feedback": "fa", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.0]},
            "simulation": {"dt": dt, "tau_syn": tau, "scheme": scheme, "filter_target": filtered},
        })
        net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
        net.present(x0, y0)
        for _ in range(1000):  # 25 τ_syn: settled on (x0, y0)
            net.step()
        net.present(x1, y1)
        for m in range(1, 41):
            net.step()
            f_in = (net.pre[:, :3] - x0) / (x1 - x0)
            f_tgt = (net.d2[:, net.out] - y0) / (y1 - y0)
            fraction = 1 - (1 - k) ** m
            np.testing.assert_allclose(f_in, fraction, atol=1e-6)
            np.testing.assert_allclose(f_tgt, fraction if filtered else 1.0, atol=1e-6)


def test_filtered_target_needs_a_synaptic_filter():
    with pytest.raises(ConfigError, match=r"simulation\.filter_target = True is not allowed for model 'mlp'"):
        load_config({"model": "mlp", "network": {"layers": [3, 4, 2]}, "task": {"name": "teacher"},
                     "simulation": {"filter_target": True}})
    cfg = load_config({"network": {"layers": [3, 4, 2]}, "simulation": {"filter_target": True}})
    with pytest.raises(ConfigError, match=r"simulation\.tau_syn > 0 in the rate backend"):
        nf.run(cfg, progress=False)


def test_runner_dataset_follows_the_backend_contract():
    cfg = load_config({
        "name": "detail",
        "network": {"layers": [9, 6, 3]},
        "task": {"name": "bars", "n_train": 8, "t_pres": 0.5},
        "plasticity": {"feedback": "pal", "eta_fw": [0.5], "eta_ip": [0.5]},
        "simulation": {"duration": 4.0, "dt": 0.05, "record_interval": 1.0, "record_detail": True,
                       "test_interval": 2.0},
    })
    result = nf.run(cfg, seeds=[0, 1], progress=False)
    ds = result.dataset
    assert ds["angle_B_WT"].dims == ("seed", "time", "layer")
    assert ds["loss"].dims == ("seed", "time")
    assert np.allclose(ds["time"].values, [1.0, 2.0, 3.0, 4.0]) and ds["time"].attrs["units"] == "ms"
    n_pyr, n_int, n_hid = 6 + 3, 3, 6
    assert ds["rate_pyr"].shape == (2, 4, n_pyr) and ds["rate_int"].shape == (2, 4, n_int)
    assert ds["v_bas"].shape == (2, 4, n_pyr) and ds["v_api"].shape == (2, 4, n_hid)
    assert ds["weights_W"].shape == (2, 4, 6 * 9 + 3 * 6) and ds["weights_B"].shape == (2, 4, 6 * 3)
    assert list(ds["pyr_layer"].values) == [1] * 6 + [2] * 3 and list(ds["int_layer"].values) == [1] * 3
    rates = ds["rate_pyr"].values
    assert np.all((rates > 0) & (rates < 1))
    assert ds["test_accuracy_curve"].shape == (2, 2)
    for key in ("test_accuracy", "train_accuracy", "loss_final", "angle_B_WT_final"):
        assert key in result.summary
    # the last weight snapshot is the final W_1 (row-major)
    assert np.all(np.isfinite(ds["weights_W"].values))


def test_learning_rate_factor_is_the_harmonic_schedule():
    """f(t) = 1/(1 + t/T): 1 at the start, ½ at t = T, ¼ at 3T, decreasing, ∝ T/t late; 1 everywhere when off."""
    p = load_config({"plasticity": {"eta_decay": 500.0}}).plasticity
    f = np.array([learning_rate_factor(t, p) for t in (0.0, 500.0, 1500.0, 5e5)])
    np.testing.assert_allclose(f[:3], [1.0, 0.5, 0.25])
    assert f[3] == pytest.approx(500.0 / 5e5, rel=1e-2)
    assert np.all(np.diff(f) < 0)
    off = load_config({}).plasticity
    assert off.eta_decay == 0.0 and learning_rate_factor(1e6, off) == 1.0


def _pal_learning(scale: float, factor: float) -> Microcircuit:
    """A 3-5-2 PAL microcircuit with every rate × ``scale``, run 400 steps with the annealing factor ``factor``."""
    cfg = load_config({
        "network": {"layers": [3, 5, 2], "self_predicting": False},
        "plasticity": {"feedback": "pal", "eta_fw": [2.0 * scale, 0.5 * scale], "eta_ip": [0.3 * scale],
                       "eta_pi": [1.0 * scale], "eta_bw": [50.0 * scale], "alpha": 0.05, "sigma": 0.1,
                       "tau_lo": 0.0},
        "task": {"name": "teacher"},
        "simulation": {"dt": 0.05, "scheme": "instant"},
    })
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
    net.set_learning_rate_factor(factor)
    noise = NoiseSource(net, [0, 1])
    rng = np.random.default_rng(3)
    for _ in range(20):
        net.present(rng.uniform(0, 1, (2, 3)), rng.uniform(-1, 1, (2, 2)))
        for _ in range(20):
            net.step(noise.next())
    return net


def test_annealing_factor_scales_every_plastic_rate_including_pal_decay():
    """Factor f on the rates of the configuration ≡ a configuration with all rates (η_fw, η_IP, η_PI, η_bw, and so
    PAL's decay η_bw α) multiplied by f: the same trajectory of every weight."""
    annealed, scaled, plain = _pal_learning(1.0, 0.3), _pal_learning(0.3, 1.0), _pal_learning(1.0, 1.0)
    for name in ("W", "W_IP", "B", "B_PI"):
        for a, b, c in zip(getattr(annealed, name), getattr(scaled, name), getattr(plain, name)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
            assert np.max(np.abs(a - c)) > 1e-4  # the factor matters for every weight type


def test_annealing_damps_the_late_weight_fluctuations_of_online_learning():
    """Per-sample online learning at a constant rate keeps fluctuating around its solution (a noise floor ∝ η);
    with f(t) = 1/(1 + t/T) the late weight increments shrink roughly like f (Robbins–Monro)."""

    def late_steps(eta_decay: float) -> np.ndarray:
        cfg = load_config({
            "network": {"layers": [4, 6, 2]},
            "plasticity": {"feedback": "bp", "eta_fw": [4.0, 1.0], "eta_ip": [3.0], "tau_lo": 0.0,
                           "eta_decay": eta_decay},
            "task": {"name": "teacher", "n_train": 50, "t_pres": 1.0},
            "simulation": {"duration": 400.0, "dt": 0.1, "record_interval": 20.0, "record_detail": True,
                           "scheme": "instant"},
        })
        w = simulate(cfg, [0, 1])["weights_W"].values
        return np.sqrt(np.mean(np.diff(w[:, -6:], axis=1) ** 2, axis=(1, 2)))  # RMS change per 20 ms, per seed

    constant, annealed = late_steps(0.0), late_steps(40.0)
    f_end = learning_rate_factor(400.0, load_config({"plasticity": {"eta_decay": 40.0}}).plasticity)
    assert np.all(constant > 0)
    assert np.all(annealed < 3.0 * f_end * constant), (annealed / constant, f_end)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"conductances.g_l": -0.1}, "conductances.g_l"),
        ({"conductances.g_api": -1}, "conductances.g_api"),
        ({"plasticity.feedback": "mirror_descent"}, "plasticity.feedback"),
        ({"plasticity.feedback": "dfa"}, "plasticity.feedback"),
        ({"task.name": "yinyang", "network.layers": [5, 20, 3]}, "network.layers"),
        ({"plasticity.eta_bw": [1.0, 2.0, 3.0]}, "plasticity.eta_bw"),
        ({"plasticity.eta_decay": -1.0}, "plasticity.eta_decay"),
    ],
)
def test_bad_configurations_fail_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config({"network": {"layers": [4, 8, 4]}}, overrides)


def test_models_load():
    models = sorted(Path(__file__).resolve().parents[1].glob("models/*.yaml"))
    mine = [m for m in models if m.stem.split("_")[0] in ("pal", "fa", "bp", "microcircuit", "yinyang", "bars")
            and "mlp" not in m.stem and not m.stem.startswith("spiking")]
    assert len(mine) >= 12
    for path in mine:
        cfg = load_config(path)
        assert cfg.model == "microcircuit"


def test_somata_relax_to_their_drive_under_a_target_without_prospective_coding():
    """With simulation.prospective = false the rates read the Euler-integrated soma u; with a target presented,
    every u (hidden, interneuron and the nudged output) still relaxes to u_eff with its own τ."""
    cfg = load_config({"network": {"layers": [3, 5, 2]}, "task": {"name": "teacher"},
                       "plasticity": {"feedback": "fa", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.0]},
                       "simulation": {"dt": 0.05, "prospective": False, "scheme": "instant"}})
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
    rng = np.random.default_rng(0)
    net.present(rng.uniform(0, 1, (2, 3)), rng.uniform(-1, 1, (2, 2)))
    for _ in range(4000):  # 200 ms ≫ τ ≈ 5 ms
        net.step()
    assert np.max(np.abs(net.u)) > 0.1
    np.testing.assert_allclose(net.u, net.ueff, atol=1e-9)


def test_teacher_is_learned_without_prospective_coding():
    """PAL Fig 4's 1-1-1 teacher, weight transport, rates φ(u) of the Euler somata: the test loss falls from
    ≈0.6 to ≈0.01 within 1.5 s (prospective coding: ≈0.0005; before the Euler rate under nudging was kept apart
    from the target filter's, the somata froze at u = 0 and the loss stayed at 0.47)."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "models" / "bp_teacher_1-1-1.yaml",
                      {"simulation.prospective": False, "simulation.duration": 1500.0, "simulation.dt": 0.05,
                       "simulation.record_interval": 100.0})
    result = nf.run(cfg, seeds=[0, 1], progress=False)
    start = result.dataset["loss"].isel(time=0).values
    test_loss = result.dataset["test_loss"].values
    assert np.all(start > 0.4)
    assert np.all(test_loss < 0.03), test_loss
