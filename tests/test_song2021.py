"""Song2021 two-layer FA: exponential convergence, BP faster than FA, alignment cos(β, b) vs width and ridge."""

import json

import numpy as np
import pytest

from neurofa.cli import main
from neurofa.results import Result
from neurofa.theory import song2021
from neurofa.theory.song2021 import exponential_fit, init_problem, train


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``neurofa theory song2021 --quick`` through the CLI, shared by the scientific checks below."""
    out = tmp_path_factory.mktemp("song2021") / "run"
    assert main(["theory", "song2021", "--quick", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def summary(quick_run):
    return json.loads((quick_run / "summary.json").read_text())


def test_cli_writes_run_directory(quick_run, summary):
    for key in ("loss_final", "log_loss_slope", "log_loss_r2", "cos_beta_b_final", "bp_log_loss_slope",
                "slope_ratio_bp_fa", "cos_beta_b_vs_p", "cos_beta_b_vs_lam", "widths", "lams"):
        assert key in summary, key
    assert len(summary["cos_beta_b_vs_p"]) == len(summary["widths"])
    assert len(summary["cos_beta_b_vs_lam"]) == len(summary["lams"])
    assert (quick_run / "figures" / "song2021.png").stat().st_size > 10_000
    result = Result.load(quick_run)
    assert result.dataset.attrs["experiment"] == "song2021"
    assert "activation: relu" in (quick_run / "config.yaml").read_text()


def test_fa_loss_decays_exponentially(quick_run, summary):
    loss0 = float(Result.load(quick_run).dataset["loss"].sel(rule="fa").isel(step=0))
    assert summary["log_loss_r2"] > 0.99
    assert summary["log_loss_slope"] < 0
    assert summary["loss_final"] < 1e-4 * loss0


def test_backprop_converges_faster_than_fa(summary):
    assert summary["bp_log_loss_slope"] < summary["log_loss_slope"] < 0
    assert summary["slope_ratio_bp_fa"] > 1.5
    assert summary["bp_loss_final"] < summary["fa_loss_final"]


def test_alignment_vanishes_with_width_at_zero_ridge(summary):
    cos_p = np.array(summary["cos_beta_b_vs_p"])  # mean over 3 seeds, widths 100, 400, 1600
    assert np.all(np.diff(cos_p) < 0)
    assert cos_p[-1] < 0.6 * cos_p[0]
    assert -0.8 < summary["cos_beta_b_vs_p_exponent"] < -0.25  # finite-width effect, about p^(-1/2)


def test_ridge_aligns_second_layer_with_feedback(summary):
    lams, cos_lam = np.array(summary["lams"]), np.array(summary["cos_beta_b_vs_lam"])
    assert cos_lam[lams > 0].min() > 0.8
    assert cos_lam[lams > 0].min() > cos_lam[lams == 0].max() + 0.3


def test_bad_setting_is_a_config_error(tmp_path, capsys):
    code = main(["theory", "song2021", "--set", "activation=sigmoidx", "--quick", "--quiet", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "activation" in err and "relu" in err
    assert main(["theory", "song2021", "--set", "widths=[]", "--quick", "--quiet", "--out", str(tmp_path)]) == 2
    assert "widths" in capsys.readouterr().err


def test_quick_keeps_explicit_settings():
    s = song2021._effective(song2021.Settings(p=123), quick=True)
    assert s.p == 123 and s.steps == song2021.QUICK["steps"]


def _loss(x, y, w, beta, activation="tanh"):
    from neurofa.activations import activation as pair

    f = pair(activation)[0](x @ w.T) @ beta / np.sqrt(w.shape[0])
    return 0.5 * np.sum((f - y) ** 2)


def test_backprop_step_is_gradient_descent():
    """Under BP one step moves (W, β) by −η ∇L (finite differences), the reference for the FA variant."""
    prob = init_problem([3], p=7, n=5, d=3)
    x, y, w, beta = prob["x"][0], prob["y"][0], prob["w"][0], prob["beta"][0]
    eta = 1e-3
    tr = train(prob["x"], prob["y"], prob["w"], prob["beta"], prob["b"], steps=1, eta=eta, backprop=True,
               activation="tanh", schedule="constant")
    h = 1e-6
    grad_w = np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        dw = np.zeros_like(w)
        dw[idx] = h
        grad_w[idx] = (_loss(x, y, w + dw, beta) - _loss(x, y, w - dw, beta)) / (2 * h)
    grad_beta = np.array([(_loss(x, y, w, beta + h * e) - _loss(x, y, w, beta - h * e)) / (2 * h)
                          for e in np.eye(beta.size)])
    np.testing.assert_allclose((w - tr.w[0]) / eta, grad_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose((beta - tr.beta[0]) / eta, grad_beta, rtol=1e-5, atol=1e-7)
    assert tr.loss[0, 0] == pytest.approx(_loss(x, y, w, beta))


def test_fa_with_feedback_equal_to_beta_makes_the_bp_step():
    prob = init_problem([1], p=50, n=10, d=4)
    kwargs = dict(steps=1, eta=0.01, lam=0.1, schedule="constant")
    fa = train(prob["x"], prob["y"], prob["w"], prob["beta"], prob["beta"], backprop=False, **kwargs)
    bp = train(prob["x"], prob["y"], prob["w"], prob["beta"], prob["b"], backprop=True, **kwargs)
    np.testing.assert_allclose(fa.w, bp.w)
    np.testing.assert_allclose(fa.beta, bp.beta)
    # and with the random b it does not
    fa_b = train(prob["x"], prob["y"], prob["w"], prob["beta"], prob["b"], backprop=False, **kwargs)
    assert not np.allclose(fa_b.w, bp.w)


def test_large_ridge_needs_the_shrinking_step():
    """docs/science.md §1.1: with large λ a constant η diverges as W grows; η_t ∝ 1/λ_max(G(t)) stays stable."""
    prob = init_problem([0, 1], p=100, n=40, d=10)
    args = (prob["x"], prob["y"], prob["w"], prob["beta"], prob["b"])
    constant = train(*args, steps=1000, lam=1.0, schedule="constant")
    adaptive = train(*args, steps=1000, lam=1.0, schedule="adaptive")
    assert not np.all(np.isfinite(constant.loss))
    assert np.all(np.isfinite(adaptive.loss))
    assert np.all(adaptive.eta[:, -1] < 0.6 * adaptive.eta[:, 0])
    assert np.all(adaptive.cos_beta_b[:, -1] > 0.85)


def test_exponential_fit_recovers_rate_and_stops_at_floor():
    t = np.arange(3000)
    loss = 50.0 * np.exp(-0.02 * t) + 20.0 * np.exp(-0.5 * t)  # a fast transient on top of the slow mode
    slope, r2, start, stop = exponential_fit(loss)
    assert slope == pytest.approx(-0.02, rel=1e-3)
    assert r2 > 0.9999
    assert loss[stop - 1] >= 1e-10 > loss[stop]
    assert loss[start] < 1e-2 * loss[0]
    assert np.isnan(exponential_fit(np.array([1.0, np.inf, np.nan]))[0])
