"""Spiking backend (Brian2 cpp_standalone): Poisson rates, PAL vs FA alignment, seeding, validation.

One standalone build of a small 4-8-4 network serves every simulation test (module-scoped fixture); FA runs the
PAL program with η_bw = σ = 0, so both feedback rules and all seeds reuse it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from neurofa.circuit import circuit_task, initial_weights
from neurofa.config import ConfigError, check_backend, load_config
from neurofa.model import compile_model
from neurofa.model.rules.pal import derived_sigma, noise_gain
from neurofa.spiking import run_planned
from neurofa.spiking.params import effective_parameters, mean_field_config
from neurofa.spiking.structure import SpikingPlan


def check_spiking_config(cfg: object) -> None:
    check_backend(cfg, "spiking")


def plan_and_run(cfg: object) -> tuple:
    """Structure, run values and monitor output of seed 0 of ``cfg``."""
    return run_planned(SpikingPlan.of(cfg), circuit_task(cfg, 0), initial_weights(cfg, [0]), 0, 0)

brian2 = pytest.importorskip("brian2")
LD_BIND_NOW_AT_IMPORT = os.environ.get("LD_BIND_NOW")  # collected before any simulation of the session


def small_config(feedback: str, **overrides: object) -> object:
    data = {
        "name": "spiking_test",
        "network": {"layers": [4, 8, 4]},
        "task": {"name": "backprojection", "n_train": 20, "t_pres": 1.0},
        "simulation": {"duration": 400.0, "record_interval": 100.0, "record_detail": True},
        "plasticity": {"feedback": feedback, "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [500.0]},
        "spiking": {"device": "cpp_standalone", "report": False, "sigma": 6.0},
    }
    return load_config(data, overrides)


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    from neurofa import spiking

    before = spiking.build_stats()["builds"]
    out = {
        "pal": spiking.simulate(small_config("pal"), [0, 1], progress=False),
        "pal_again": spiking.simulate(small_config("pal"), [0], progress=False),
        "fa": spiking.simulate(small_config("fa"), [0, 1], progress=False),
        "pal_annealed": spiking.simulate(small_config("pal", **{"plasticity.eta_decay": 20.0}), [0], progress=False),
    }
    out["builds"] = spiking.build_stats()["builds"] - before
    return out


def test_params_module_does_not_import_brian2() -> None:
    code = ("import sys, neurofa, neurofa.spiking, neurofa.spiking.params, neurofa.spiking.structure; "
            "assert 'brian2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_spiking_keys_fail_with_clear_message() -> None:
    with pytest.raises(ConfigError, match="spiking.nu_maxx"):
        load_config({"spiking": {"nu_maxx": 100.0}})
    with pytest.raises(ConfigError, match="spiking.device"):
        load_config({"spiking": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="network.activation.*allowed: logistic"):
        check_spiking_config(load_config({"network": {"activation": "tanh"}}))
    with pytest.raises(ConfigError, match="spiking.threads"):
        check_spiking_config(load_config({"spiking": {"threads": 4, "device": "runtime"}}))
    with pytest.raises(ConfigError, match="spiking.nu_max"):
        check_spiking_config(load_config({"spiking": {"nu_max": 6000.0}}))


def test_effective_parameters_and_mean_field() -> None:
    cfg = load_config({"plasticity": {"feedback": "pal"}})
    eff = effective_parameters(cfg)
    assert eff.t_pres == pytest.approx(50.0)  # 5 spikes at half rate of 200 Hz
    assert eff.time_scale == pytest.approx(50.0)
    assert eff.tau_xi == pytest.approx(2 * cfg.spiking.tau_s)
    assert eff.tau_xi <= eff.tau_hp <= eff.t_pres / 4
    assert 0.2 < noise_gain(eff.tau_xi, eff.tau_s, eff.tau_hp) < 0.5
    assert eff.sigma == pytest.approx(derived_sigma(cfg, 200.0, 3.0))
    mf = mean_field_config(cfg)
    assert mf.simulation.dt == eff.dt and mf.task.t_pres == eff.t_pres and mf.simulation.tau_syn == eff.tau_s
    assert mf.simulation.scheme == "instant"
    assert mf.plasticity.sigma == pytest.approx(eff.sigma) and mf.plasticity.tau_hp == eff.tau_hp
    # the mean-field configuration is a fixed point: its own mean field and timing are unchanged
    mf2 = mean_field_config(mf)
    assert mf2.plasticity.eta_bw == pytest.approx(mf.plasticity.eta_bw)
    assert mf2.plasticity.alpha == pytest.approx(mf.plasticity.alpha)
    assert compile_model(mf2) == compile_model(mf)
    eff2 = effective_parameters(mf)
    assert eff2.duration == eff.duration and eff2.time_scale == 1.0
    annealed = load_config({"plasticity": {"feedback": "pal", "eta_decay": 20.0}})
    assert effective_parameters(annealed).eta_decay == pytest.approx(20.0 * eff.time_scale)
    assert mean_field_config(annealed).plasticity.eta_decay == pytest.approx(20.0 * eff.time_scale)
    fa = load_config({"plasticity": {"feedback": "fa"}})
    assert effective_parameters(fa).sigma == 0.0
    model = compile_model(mean_field_config(fa))
    assert model.noise_sigma == 0.0 and not any(p.learns for p in model.of_kind("B"))


def test_a_standalone_run_leaves_the_environment_as_it_found_it(runs: dict[str, object]) -> None:
    """Brian2 sets LD_BIND_NOW=1 for its binary; kept in os.environ it broke later subprocesses (SLURM's sinfo)."""
    assert os.environ.get("LD_BIND_NOW") == LD_BIND_NOW_AT_IMPORT


def test_one_build_serves_all_runs(runs: dict[str, object]) -> None:
    assert runs["builds"] <= 1  # 0 when an earlier test in this process built the same structure


def test_spike_rates_follow_phi(runs: dict[str, object]) -> None:
    """Spike count/(ν_max T) is a Poisson estimate of the window mean of φ(ŭ): z-scores are standard normal."""
    ds = runs["pal"]
    window = float(ds["time"][1] - ds["time"][0]) / 1000.0  # s
    nu = 200.0
    for kind in ("pyr", "int"):
        rate, phi = ds[f"rate_{kind}"].values, ds[f"phi_{kind}"].values
        ok = phi > 0.02
        z = (rate - phi)[ok] / np.sqrt(phi[ok] / (nu * window))
        assert np.all(np.abs(z) < 5.0)
        assert 0.5 < np.mean(z**2) < 1.6
        assert abs(np.mean(z)) < 4.0 / np.sqrt(z.size)


def test_pal_aligns_backprojections_fa_does_not(runs: dict[str, object]) -> None:
    pal, fa = runs["pal"], runs["fa"]
    drop = pal["angle_B_WT_initial"].values - pal["angle_B_WT"].isel(time=-1).values
    assert np.all(drop > 15.0), drop
    fa_change = np.abs(fa["angle_B_WT"].isel(time=-1).values - fa["angle_B_WT_initial"].values)
    assert np.all(fa_change < 1e-6)


def test_annealing_slows_late_plasticity(runs: dict[str, object]) -> None:
    """plasticity.eta_decay = T multiplies every learning rate by f(t) = 1/(1 + t/T) (here f ≤ 1/11 in the second
    half of the run), so B moves about f times as far there as with constant rates, drift and noise alike."""
    def late_change(ds: object) -> float:
        b = ds["weights_B"].sel(seed=0)
        half = b.sizes["time"] // 2
        return float(np.abs(b.isel(time=-1) - b.isel(time=half - 1)).sum())

    ratio = late_change(runs["pal_annealed"]) / late_change(runs["pal"])
    assert ratio < 0.3, ratio
    assert late_change(runs["pal_annealed"]) > 0.0


def test_standalone_reports_progress_when_asked(runs: dict[str, object], capfd: pytest.CaptureFixture) -> None:
    """spiking.report prints progress from the compiled program (always a last line at 100 %), without a rebuild."""
    import re

    from neurofa import spiking

    before = spiking.build_stats()["builds"]
    capfd.readouterr()
    spiking.simulate(small_config("pal", **{"spiking.report": True}), [0], progress=True)
    out = capfd.readouterr().out
    assert re.search(r"\(100%\) simulated in \d+ s", out), out[-500:]
    assert spiking.build_stats()["builds"] == before


def test_same_seed_same_spikes_different_seed_different(runs: dict[str, object]) -> None:
    a = runs["pal"].sel(seed=0)
    b = runs["pal_again"].sel(seed=0)
    np.testing.assert_array_equal(a["rate_pyr"].values, b["rate_pyr"].values)
    np.testing.assert_array_equal(a["weights_B"].values, b["weights_B"].values)
    other = runs["pal"].sel(seed=1)
    assert not np.array_equal(a["rate_pyr"].values, other["rate_pyr"].values)


def test_model_files_are_valid_spiking_configurations() -> None:
    """Every shipped spiking model loads, passes the backend checks and keeps rates ≤ 500 Hz (docs/science.md §3)."""
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "models").glob("spiking_*.yaml"))
    assert files
    for path in files:
        cfg = load_config(path)
        eff = effective_parameters(cfg)
        assert eff.nu_max <= 500.0, path.name
        assert eff.t_pres >= 10 * eff.tau_s - 1e-9, path.name  # traces settle within a presentation
        mf = mean_field_config(cfg)
        assert mf.simulation.tau_syn == eff.tau_s and mf.task.t_pres == eff.t_pres


@pytest.fixture(scope="module")
def coding_runs() -> dict[str, object]:
    """Forward plasticity at the self-predicting fixed point (no target, FA): everything the weights do is noise.
    Two builds: Poisson inputs with the spike-based estimator, regular inputs with the rate estimator."""
    out = {}
    for name, coding, post in (("spikes", "poisson", "spikes"), ("rate", "regular", "rate")):
        cfg = small_config("fa", **{"plasticity.eta_fw": [0.1], "spiking.input_spikes": coding,
                                    "spiking.post_signal": post, "spiking.nu_max": 500.0, "spiking.tau_s": 20.0,
                                    "simulation.duration": 100.0, "simulation.record_interval": 50.0})
        out[name] = (effective_parameters(cfg), *plan_and_run(cfg))
    return out


def test_regular_inputs_fire_at_nu_max_x_to_within_one_spike(coding_runs: dict[str, object]) -> None:
    """spiking.input_spikes = 'regular': the count in any window is ν_max ∫x dt ± 1 (a Poisson encoder's SD is
    √(ν_max ∫x dt), several spikes here)."""
    deviations = {}
    for name in ("spikes", "rate"):
        eff, s, values, out = coding_runs[name]
        counts = np.diff(out.layers[("P0", "n_spk")], axis=0)  # (windows, inputs)
        per_window = int(round(s.record_interval / s.t_pres))
        stim = values.stim[: counts.shape[0] * per_window].reshape(counts.shape[0], per_window, -1)
        expected = eff.nu_max / 1000.0 * s.t_pres * stim.sum(axis=1)
        deviations[name] = np.abs(counts - expected)
        assert expected.mean() > 5.0
    assert deviations["rate"].max() <= 1.0 + 1e-9
    assert deviations["spikes"].max() > 2.0


def test_rate_estimator_removes_postsynaptic_count_noise(coding_runs: dict[str, object]) -> None:
    """At the fixed point the spike-based estimator S/ν_max − φ(v̂) random-walks W (variance η² ∫ x² φ/ν_max dt);
    with spiking.post_signal = 'rate' only the apical fluctuations remain: W moves ≥ 5× less in RMS."""
    rms = {}
    for name in ("spikes", "rate"):
        out = coding_runs[name][3]
        w = out.weights["W1"]
        rms[name] = float(np.sqrt(np.mean((w[-1] - w[0]) ** 2)))
    assert rms["spikes"] > 0.0
    assert rms["rate"] < 0.2 * rms["spikes"], rms


def test_filtered_target_is_the_trace_of_the_target() -> None:
    """simulation.filter_target: the output is nudged by x_tgt with τ_s ẋ_tgt = u_tgt − x_tgt. With g_bas = 0 and a
    linear (relu) output the recorded φ(ŭ) is c·x_tgt, c = g_ntgt/(g_l + g_ntgt): every 2 ms window mean equals
    the Euler-filtered target, and differs from the unfiltered one by up to c·(1 − 0.2) after each switch."""
    cfg = load_config({
        "name": "spiking_target_trace",
        "network": {"layers": [9, 4, 3], "activation": "relu"},
        "conductances": {"g_bas": 0.0},
        "task": {"name": "bars", "t_pres": 1.0, "target_low": 0.2, "target_high": 1.0},
        "simulation": {"duration": 3.0, "record_interval": 0.1, "record_detail": True, "filter_target": True},
        "plasticity": {"feedback": "fa", "eta_fw": [0.0], "eta_ip": [0.0], "eta_pi": [0.0]},
        "spiking": {"device": "cpp_standalone", "report": False, "t_pres": 20.0, "tau_s": 5.0},
    })
    eff = effective_parameters(cfg)
    s, values, out = plan_and_run(cfg)
    assert "dx_tgt/dt" in next(g for g in s.groups if g.name == "P2").equations
    per_window = int(round(eff.record_interval / s.dt))
    n_windows = int(round(s.train_time / eff.record_interval))
    measured = (np.diff(out.layers[("P2", "A_rate")], axis=0) / eff.record_interval)[:n_windows]
    u_tgt = np.repeat(values.target[: s.n_train_pres], int(round(s.t_pres / s.dt)), axis=0)
    x, x_tgt = np.zeros(3), []
    for u in u_tgt:
        x_tgt.append(x)
        x = x + s.dt / eff.tau_s * (u - x)
    g = cfg.conductances
    c = g.g_ntgt / (g.g_l + g.g_ntgt)
    window = (n_windows, per_window, 3)
    np.testing.assert_allclose(measured, c * np.reshape(x_tgt, window).mean(axis=1), atol=1e-9)
    assert np.abs(measured - c * u_tgt.reshape(window).mean(axis=1)).max() > 0.4


def test_expected_trace_removes_the_errors_in_variables_ridge() -> None:
    """The output rule reads the noisy hidden trace x in its dendritic prediction and as its presynaptic factor, so
    E[ΔW] carries −ρ φ' a W Var(x) with Var(x) = φ/(2 ν_max τ_s): W shrinks more at lower ν_max. With
    spiking.pre_signal = 'rate' the factor is x_r = E[x | rate] and the learned W no longer depends on ν_max (same
    mean field, one build per rule, ν_max changed through run_args)."""
    norms = {}
    for pre in ("trace", "rate"):
        for nu in (100.0, 400.0):
            cfg = load_config({
                "name": "spiking_pre_signal",
                "network": {"layers": [3, 6, 2]},
                "task": {"name": "teacher", "n_train": 10, "t_pres": 1.0, "input_low": 0.0},
                "simulation": {"duration": 400.0, "record_interval": 100.0},
                "plasticity": {"feedback": "fa", "eta_fw": [0.0, 0.05], "eta_ip": [0.0], "eta_pi": [0.0]},
                "spiking": {"device": "cpp_standalone", "report": False, "nu_max": nu, "tau_s": 5.0,
                            "t_pres": 100.0, "pre_signal": pre},
            })
            s, _, out = plan_and_run(cfg)
            assert ("dxr/dt" in next(g for g in s.groups if g.name == "P1").equations) == (pre == "rate")
            norms[pre, nu] = float(np.linalg.norm(out.weights["W2"][-1]))
    assert norms["trace", 400.0] - norms["trace", 100.0] > 0.1, norms  # ridge Var(x) ∝ 1/ν_max
    assert norms["rate", 100.0] - norms["trace", 100.0] > 0.2, norms
    assert abs(norms["rate", 400.0] - norms["rate", 100.0]) < 0.02 * norms["rate", 100.0], norms


def test_unused_subexpressions_are_not_computed() -> None:
    """φ(v̂) and the learning gate are computed only where a synapse reads them (``equations.without_unused``):
    PAL Fig 3's forward weights and W^IP are fixed, so no group computes φ(v̂); the spike-train rule's forward
    weights learn from φ(v̂) of their postsynaptic cells; a network without plasticity reads no learning gate."""
    from neurofa.spiking import equations as eq

    def subexpressions(path: str, over: dict | None = None) -> tuple[dict[str, set[str]], tuple[str, ...]]:
        cfg = load_config(path, over or {})
        s = SpikingPlan.of(cfg).structure(circuit_task(cfg, 0))
        names = {g.name: {line.split("=")[0].strip() for line in g.equations.splitlines()
                          if "=" in line and "(constant over dt)" in line} for g in s.groups}
        return names, s.timed_inputs

    fig3, timed = subexpressions("models/spiking_backprojections.yaml")
    assert all("phi_hat" not in names for names in fig3.values())
    assert {"learn", "rate", "u_eff", "v_api"} <= fig3["P1"]  # B learns from P1's gate, P1 spikes at its rate
    assert "learn" not in fig3["P4"] and "learn" not in fig3["I1"]  # W4 and W^IP_1 are fixed
    assert "gate_learn" in timed
    spikes, _ = subexpressions("models/spiking_yinyang_spikes_fa.yaml")
    assert {"phi_hat", "learn"} <= spikes["P1"] and {"phi_hat", "learn"} <= spikes["I1"]
    _, still = subexpressions("models/spiking_backprojections.yaml",
                              {"plasticity.eta_bw": [0.0], "plasticity.eta_pi": [0.0]})
    assert "gate_learn" not in still
    # a chain goes as a whole, differential equations and parameters stay, order is kept
    text = "a : 1\nt_run = 2*a : 1\nlearn = t_run + 1 : 1\nused = a : 1\ndx/dt = -used*x/ms : 1\n"
    assert eq.without_unused(text, set()) == "a : 1\nused = a : 1\ndx/dt = -used*x/ms : 1\n"
    assert eq.without_unused(text, {"learn"}) == text


@pytest.mark.parametrize("name", ["spiking_bars_fa", "spiking_digits_fa", "spiking_yinyang_fa",
                                  "spiking_teacher_1-1-1_fa", "quickstart", "spiking_mnist_fa"])
def test_the_step_estimate_counts_the_test_presentations_the_run_makes(name: str, tmp_path) -> None:
    """The estimate of a spiking run's time steps (its ``max_steps`` guard and printed estimate) counts the test set
    that the run presents after training, with each task's own test size (``TaskSpec.test_samples``): the fixed
    splits of Bars, digits and Yin-Yang, ``task.n_test`` of the teacher and all of MNIST's at ``n_test: 0``; the
    input-only backprojection task has none. It presents exactly what the planned structure simulates."""
    from pathlib import Path

    from neurofa import spiking
    from neurofa.tasks.mnist import synthetic_mnist, write_idx_folder

    root = Path(__file__).resolve().parents[1]
    over = ["simulation.duration=40.0", "simulation.record_interval=20.0"]
    if name == "spiking_mnist_fa":
        folder = write_idx_folder(tmp_path / "mnist", **synthetic_mnist(30, 10_000, seed=0))
        over.append(f"task.path={folder}")  # n_test: 0 = the whole test split, 10,000 images
    cfg = load_config(root / "models" / f"{name}.yaml", over)
    s = SpikingPlan.of(cfg).structure(circuit_task(cfg, 0))
    expected_test = {"spiking_bars_fa": 8, "spiking_digits_fa": 400, "spiking_yinyang_fa": 1000,
                     "spiking_teacher_1-1-1_fa": int(cfg.task.n_test), "quickstart": 0, "spiking_mnist_fa": 10_000}
    assert s.n_test_pres == expected_test[name]
    steps = spiking.estimate(cfg, 3).steps / 3
    assert steps * s.dt == pytest.approx(s.end_time + s.dt, rel=1e-12), (steps * s.dt, s.end_time)
