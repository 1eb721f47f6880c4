"""Discrete-time layered networks: the learning rules' defining properties (docs/science.md §1, §1.3)."""

import numpy as np
import pytest

from neurofa import metrics
from neurofa.config import ConfigError, load_config
from neurofa.rate import layered as L


def _net(rule, sizes, seeds=2, scale=1.0, fb_scale=1.0, act="logistic", output_linear=False, rng=0):
    rng = np.random.default_rng(rng)
    W = [rng.uniform(-scale, scale, size=(seeds, sizes[i], sizes[i - 1])) for i in range(1, len(sizes))]
    B = [rng.uniform(-fb_scale, fb_scale, size=(seeds, sizes[i], sizes[i + 1])) for i in range(1, len(sizes) - 1)]
    D = [rng.uniform(-fb_scale, fb_scale, size=(seeds, sizes[i], sizes[-1])) for i in range(1, len(sizes) - 1)]
    return L.LayeredNet(W=W, rule=rule, activation=act, output_linear=output_linear,
                        B=B if rule in ("fa", "kp", "mirror", "pal") else [], D=D if rule == "dfa" else [])


def _regression_data(sizes, n=64, seeds=2, rng=1):
    rng = np.random.default_rng(rng)
    x = rng.uniform(0, 1, size=(seeds, n, sizes[0]))
    y = rng.uniform(0.1, 0.9, size=(seeds, n, sizes[-1]))
    return x, y


def test_bp_errors_are_the_exact_gradient():
    sizes = [3, 5, 4, 2]
    net = _net("bp", sizes, seeds=1, act="tanh")
    x, y = _regression_data(sizes, n=7, seeds=1)
    a_list, h_list = net.forward(x)
    e = L.output_error(a_list[-1], h_list[-1], y, net.dphi, net.output_linear)
    grads = [-g for g in L.forward_updates(net.errors("bp", a_list, e), h_list, 1.0)]

    def loss(W):
        return float(metrics.mse_loss(L.forward(W, x, net.phi)[1][-1], y)[0])

    eps = 1e-6
    for layer, g in enumerate(grads):
        i, j = 1, 0
        up = [m.copy() for m in net.W]
        down = [m.copy() for m in net.W]
        up[layer][0, i, j] += eps
        down[layer][0, i, j] -= eps
        numeric = (loss(up) - loss(down)) / (2 * eps)
        assert g[0, i, j] == pytest.approx(numeric, rel=1e-6, abs=1e-10)


def test_kolen_pollack_difference_decays_exactly():
    sizes = [4, 6, 5, 3]
    net = _net("kp", sizes, seeds=3)
    x, y = _regression_data(sizes, seeds=3)
    params = L.StepParams(lr=0.2, weight_decay=0.05)
    diff0 = [np.linalg.norm(net.W[k + 1] - np.swapaxes(net.B[k], -1, -2), axis=(-2, -1)) for k in range(2)]
    steps = 150
    for t in range(steps):
        L.train_step(net, x[:, (t * 8) % 64:(t * 8) % 64 + 8], y[:, (t * 8) % 64:(t * 8) % 64 + 8], params)
    factor = (1 - params.lr * params.weight_decay) ** steps
    for k in range(2):
        diff = np.linalg.norm(net.W[k + 1] - np.swapaxes(net.B[k], -1, -2), axis=(-2, -1))
        np.testing.assert_allclose(diff, factor * diff0[k], rtol=1e-10)


def test_sign_symmetry_angle_is_fixed_by_the_weight_distribution():
    rng = np.random.default_rng(2)
    a = 0.7
    W = [rng.uniform(-a, a, size=(2, 300, 10)), rng.uniform(-a, a, size=(2, 200, 300))]
    angle = L.feedback_angles("sign", W, [], [])
    expected = metrics.sign_angle_expected(a / 2, a * a / 3)  # arccos(√3/2) = 30°
    assert expected == pytest.approx(30.0)
    np.testing.assert_allclose(angle, expected, atol=0.5)
    Wn = [rng.normal(size=(1, 300, 10)), rng.normal(size=(1, 200, 300))]
    np.testing.assert_allclose(L.feedback_angles("sign", Wn, [], []),
                               metrics.sign_angle_expected(np.sqrt(2 / np.pi), 1.0), atol=0.5)


def test_weight_mirror_converges_to_scaled_transpose():
    sizes = [3, 8, 4]
    net = _net("mirror", sizes, seeds=2, fb_scale=1.0)
    sigma, decay = 0.3, 0.5
    params = L.StepParams(lr=0.0, lr_feedback=0.02, feedback_decay=decay, noise=sigma)  # forward weights frozen
    x, y = _regression_data(sizes, n=32, seeds=2)
    rngs = [np.random.default_rng([s, 2]) for s in range(2)]
    for _ in range(1500):
        L.train_step(net, x, y, params, rngs)
    target = (sigma ** 2 / decay) * np.swapaxes(net.W[1], -1, -2)
    assert np.all(metrics.alignment_angle(net.B[0], net.W[1]) < 3.0)
    rel = np.linalg.norm(net.B[0] - target, axis=(-2, -1)) / np.linalg.norm(target, axis=(-2, -1))
    assert np.all(rel < 0.06)


def test_pal_aligns_feedback_without_a_phase():
    sizes = [5, 12, 4]
    net = _net("pal", sizes, seeds=2, output_linear=True)
    params = L.StepParams(lr=0.0, lr_feedback=0.5, feedback_decay=0.01, noise=0.1)
    rng = np.random.default_rng(3)
    rngs = [np.random.default_rng([s, 2]) for s in range(2)]
    start = metrics.alignment_angle(net.B[0], net.W[1])
    assert np.all(start > 60)
    for _ in range(1500):
        x = rng.uniform(0, 1, size=(2, 16, 5))
        L.train_step(net, x, np.zeros((2, 16, 4)), params, rngs)
    # linear read-out: B → (σ²/α) W_2ᵀ
    assert np.all(metrics.alignment_angle(net.B[0], net.W[1]) < 10.0)
    assert np.all(metrics.norm_ratio(net.B[0], net.W[1]) == pytest.approx(1.0, abs=0.2))


def test_from_zero_init_bp_is_stuck_while_fa_and_dfa_learn():
    sizes = [6, 10, 3]
    x, _ = _regression_data(sizes, n=64, seeds=2)
    x = x - 0.5
    y = x @ np.random.default_rng(5).uniform(-1, 1, size=(sizes[0], sizes[-1]))  # a linear teacher
    losses = {}
    for rule in ("bp", "fa", "dfa"):
        net = _net(rule, sizes, seeds=2, act="tanh", output_linear=True, fb_scale=0.5)
        net.W = [np.zeros_like(w) for w in net.W]
        first = None
        for _ in range(300):
            rec = L.train_step(net, x, y, L.StepParams(lr=0.1))
            first = rec.loss if first is None else first
        losses[rule] = (first, L.train_step(net, x, y, L.StepParams(lr=0.0)).loss)
        if rule == "bp":
            assert all(np.all(w == 0) for w in net.W)
    assert np.all(losses["bp"][1] == losses["bp"][0])
    for rule in ("fa", "dfa"):
        assert np.all(losses[rule][1] < 0.5 * losses[rule][0])


def test_dfa_equals_fa_with_one_hidden_layer_and_d_equal_b():
    sizes = [4, 7, 3]
    fa = _net("fa", sizes, seeds=2)
    dfa = L.LayeredNet(W=[w.copy() for w in fa.W], rule="dfa", D=[b.copy() for b in fa.B])
    x, y = _regression_data(sizes)
    a_list, h_list = fa.forward(x)
    e = L.output_error(a_list[-1], h_list[-1], y, fa.dphi, False)
    np.testing.assert_allclose(fa.errors("fa", a_list, e)[0], dfa.errors("dfa", a_list, e)[0])
    np.testing.assert_allclose(fa.feedback_angles(), dfa.feedback_angles())


def test_unknown_rule_fails_at_the_edge_and_in_the_core():
    with pytest.raises(ConfigError, match=r"plasticity\.feedback = 'bogus'.*model 'mlp'; allowed: bp, dfa, fa"):
        load_config({"model": "mlp", "network": {"layers": [3, 4, 2]}, "task": {"name": "teacher"},
                     "plasticity": {"feedback": "bogus"}})
    with pytest.raises(ValueError, match="allowed: bp"):
        L.hidden_errors("bogus", [], [], [], [], np.zeros(1), np.tanh)


def _mlp_cfg(rule, **training):
    pal = rule == "pal"  # PAL's B → (σ²/α)(φ'W)ᵀ: a larger σ²/α keeps its hidden updates comparable
    return load_config({
        "name": f"bars_{rule}", "model": "mlp",
        "network": {"layers": [9, 12, 3], "init_forward": 1.0, "init_feedback": 1.0},
        "plasticity": {"feedback": rule, "alpha": 6.25e-4 if pal else 2.5e-3},
        "task": {"name": "bars", "n_train": 256, "target_low": 0.0},
        "training": {"epochs": 40, "batch_size": 8, "lr": 2.0, "lr_feedback": 0.4 if pal else 0.1, "noise": 0.05,
                     "weight_decay": 1e-3, **training},
    })


@pytest.mark.parametrize("rule", ["bp", "fa", "dfa", "sign", "kp", "mirror", "pal"])
def test_simulate_every_rule_learns_bars(rule):
    ds = L.simulate(_mlp_cfg(rule), seeds=[0, 1], progress=False)
    assert set(ds.dims) == {"seed", "time", "layer"}
    assert ds["time"].attrs["units"] == "epoch" and ds.sizes["time"] == 41
    for name in ("loss", "angle_B_WT", "angle_update_bp", "accuracy", "test_accuracy", "train_accuracy"):
        assert name in ds, name
    assert np.all(ds["loss"].isel(time=-1) < 0.4 * ds["loss"].isel(time=0))
    assert np.all(ds["test_accuracy"] == 1.0)
    if rule == "bp":
        assert np.all(ds["angle_update_bp"] == 0)
    if rule in ("kp", "mirror", "pal"):  # learned feedback aligns
        assert np.all(ds["angle_B_WT"].isel(time=-1) < ds["angle_B_WT"].isel(time=0))


def test_seed_batch_is_independent_of_its_companions():
    cfg = _mlp_cfg("pal", epochs=3)
    both = L.simulate(cfg, seeds=[4, 7], progress=False)
    alone = L.simulate(cfg, seeds=[7], progress=False)
    np.testing.assert_allclose(both["loss"].sel(seed=7), alone["loss"].sel(seed=7), rtol=1e-12)
    np.testing.assert_allclose(both["angle_B_WT"].sel(seed=7), alone["angle_B_WT"].sel(seed=7), rtol=1e-12)
    assert not np.allclose(both["loss"].sel(seed=4), both["loss"].sel(seed=7))


def test_simulate_teacher_task_kp_aligns_and_fits():
    cfg = load_config({
        "name": "teacher_kp", "model": "mlp",
        "network": {"layers": [6, 15, 4], "activation": "tanh", "output_linear": True, "init_forward": 0.5},
        "plasticity": {"feedback": "kp"},
        "task": {"name": "teacher", "n_train": 200, "n_test": 100, "input_low": -1.0},
        "training": {"epochs": 30, "batch_size": 10, "lr": 0.05, "weight_decay": 0.05},
    })
    ds = L.simulate(cfg, seeds=[0, 1], progress=False)
    assert "test_loss" in ds and "test_accuracy" not in ds
    assert np.all(ds["loss"].isel(time=-1) < 0.2 * ds["loss"].isel(time=0))
    assert np.all(ds["angle_B_WT"].isel(time=0) > 60.0)
    assert np.all(ds["angle_B_WT"].isel(time=-1) < 30.0)
