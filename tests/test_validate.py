"""The validation levels on synthetic spike statistics: Poisson counts around a known mean field must pass and
converge like 1/√scale; a biased 'spiking' model must fail the level it breaks."""

import json

import numpy as np
import pytest
import xarray as xr

from neurofa.config import load_config
from neurofa.validate import (
    Report,
    compare,
    convergence_level,
    dynamics_level,
    learning_level,
    rate_errors,
    task_level,
)
from neurofa.validation_stats import agreement

CFG = load_config({})
WINDOW_S = 0.5  # s per record window
NU_MAX = 200.0


def mean_field(n_seeds=3, n_t=12, n_pyr=40, n_int=10, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t) * 500.0
    data = {
        "rate_pyr": (("seed", "time", "pyr"), rng.uniform(0.05, 0.95, (n_seeds, n_t, n_pyr))),
        "rate_int": (("seed", "time", "int"), rng.uniform(0.05, 0.95, (n_seeds, n_t, n_int))),
        "v_bas": (("seed", "time", "pyr"), rng.normal(0.0, 1.0, (n_seeds, n_t, n_pyr))),
    }
    return xr.Dataset(data, coords={"seed": np.arange(n_seeds), "time": t})


def poisson_version(rate: xr.Dataset, scale: float, seed: int = 1, bias: float = 0.0) -> xr.Dataset:
    """Spike-count estimates of the rates (window means of a Poisson train at ν_max·scale·φ)."""
    rng = np.random.default_rng(seed)
    out = rate.copy(deep=True)
    expected = NU_MAX * scale * WINDOW_S
    for name in ("rate_pyr", "rate_int"):
        counts = rng.poisson(rate[name].values * expected)
        out[name].values[...] = counts / expected
    # the basal potential is a weighted sum of traces: noise of the same 1/√(ν T) order
    noise = rng.normal(0.0, 1.0, rate["v_bas"].shape) / np.sqrt(expected)
    out["v_bas"].values[...] = rate["v_bas"].values * (1.0 + bias) + noise
    return out


def test_poisson_estimates_of_the_mean_field_pass_the_dynamics_level():
    rate = mean_field()
    res = dynamics_level(rate, poisson_version(rate, 4.0), CFG)
    assert res["dynamics_passed"], res
    assert res["dynamics_rate_pyr_correlation"] > 0.95


def test_a_biased_basal_potential_fails_the_dynamics_level():
    rate = mean_field()
    res = dynamics_level(rate, poisson_version(rate, 4.0, bias=0.4), CFG)
    assert not res["dynamics_v_bas_passed"]
    assert not res["dynamics_passed"]
    assert res["dynamics_rate_pyr_passed"]  # the failing variable is named, the others still pass


def test_convergence_of_poisson_noise_has_slope_one_half():
    rate = mean_field(n_seeds=4)
    scales = [1.0, 4.0, 16.0, 64.0]
    errors = []
    for s in scales:
        errors.append(rate_errors(rate, poisson_version(rate, s, seed=int(s))))
    res = convergence_level(scales, np.array(errors), CFG)
    assert res["convergence_passed"], res
    assert res["convergence_slope_ci"][0] < 0.5 < res["convergence_slope_ci"][1]


def test_a_systematic_error_does_not_converge():
    rate = mean_field(n_seeds=4)
    scales = [1.0, 4.0, 16.0, 64.0]
    errors = []
    for s in scales:
        spk = poisson_version(rate, s, seed=int(s))
        ref, tst = rate["rate_pyr"].values, 1.1 * spk["rate_pyr"].values  # a 10 % gain error
        errors.append([agreement(ref[k], tst[k]).rel_rms for k in range(ref.shape[0])])
    res = convergence_level(scales, np.array(errors), CFG)
    assert not res["convergence_passed"]
    assert res["convergence_slope"] < 0.3


def angle_runs(n_seeds=5, n_t=30, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n_t) * 100.0
    base = 90.0 * np.exp(-t / 1000.0)[None, :, None] + 10.0
    angles = base + rng.normal(0.0, 2.0, (n_seeds, n_t, 3)) + offset
    return xr.Dataset(
        {"angle_B_WT": (("seed", "time", "layer"), angles),
         "loss": (("seed", "time"), np.abs(rng.normal(0.1, 0.01, (n_seeds, n_t))))},
        coords={"seed": np.arange(n_seeds), "time": t, "layer": [1, 2, 3]},
    )


def test_learning_level_accepts_another_draw_and_rejects_an_offset_curve():
    rate = angle_runs(seed=0)
    assert learning_level(rate, angle_runs(seed=1), CFG)["learning_passed"]
    res = learning_level(rate, angle_runs(seed=1, offset=15.0), CFG)
    assert not res["learning_passed"]
    assert res["learning_angle_max_excess"] > 5.0


def test_task_level_band_on_final_loss():
    rate = angle_runs(seed=0)
    assert task_level(rate, angle_runs(seed=1), CFG)["task_passed"]
    worse = angle_runs(seed=1)
    worse["loss"] = worse["loss"] * 3.0
    assert not task_level(rate, worse, CFG)["task_passed"]


def test_report_writes_a_complete_directory(tmp_path):
    rate = mean_field()
    spk = poisson_version(rate, 4.0)
    summary = {**dynamics_level(rate, spk, CFG), "passed": True}
    report = Report(summary, True, {"dynamics_rate": rate, "dynamics_spiking": spk}, "name: x\n")
    report.save(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["dynamics_passed"] is True
    merged = xr.load_dataset(tmp_path / "results.nc", engine="scipy")
    assert "dynamics_spiking_rate_pyr" in merged
    assert (tmp_path / "figures" / "dynamics_scatter.png").stat().st_size > 0


@pytest.mark.parametrize("bad", [[1.0], [1.0, -4.0]])
def test_bad_scales_are_rejected(bad):
    from neurofa.config import ConfigError
    from neurofa.validate import compare

    with pytest.raises(ConfigError, match="scales"):
        compare({}, seeds=1, scales=bad, levels=("dynamics",))


# ---------------------------------------------------------------------------------------------------------------
# both real backends on a tiny PAL network (one standalone build, reused for every scale and the perturbation)

TINY = {
    "name": "tiny_compare",
    "network": {"layers": [4, 12, 4]},
    "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0]},
    "task": {"name": "backprojection", "n_train": 40},
    "simulation": {"duration": 100.0, "record_interval": 10.0, "seeds": 2},
    "validation": {"dynamics_duration": 100.0},
}


@pytest.fixture(scope="module")
def tiny_report():
    return compare(TINY, scales=[1, 4, 16], populations=[1, 4, 16], levels=("dynamics",), progress=False)


def test_spiking_rates_match_their_mean_field_and_converge(tiny_report):
    s = tiny_report.summary
    assert s["dynamics_passed"], s
    assert s["dynamics_rate_pyr_correlation"] > 0.95 and s["dynamics_v_bas_correlation"] > 0.95
    errors = np.array(s["convergence_errors"])
    assert np.all(errors[-1] < errors[0])  # 16x the rate: smaller error for every seed
    # a tiny network gives a noisy fit: the quick check allows 0.5 ± 0.3 (the models/ check uses ± 0.15)
    assert 0.2 < s["convergence_slope"] < 0.8, s["convergence_slope"]


def test_populations_keep_the_mean_field_and_converge(tiny_report, tmp_path):
    """N cells per unit (docs/science.md §3.9): the same mean field, spike noise falling like 1/√N. N = 4 and 16
    share one build (``pop_size`` is a run argument); N = 1 is the single-cell run of the dynamics level."""
    s = tiny_report.summary
    assert s["populations_scales"] == [1.0, 4.0, 16.0]
    errors = np.array(s["populations_errors"])
    assert np.array_equal(errors[0], np.array(s["convergence_errors"])[0])  # N = 1 is the plain run
    assert np.all(errors[-1] < errors[0]) and np.all(errors[-1] < 0.5 * errors[0])
    assert 0.2 < s["populations_slope"] < 0.8, s["populations_slope"]
    tiny_report.save(tmp_path / "report")
    assert (tmp_path / "report" / "figures" / "populations.png").stat().st_size > 0


def test_a_wrong_apical_conductance_fails_the_dynamics_level():
    report = compare(TINY, levels=("dynamics",), progress=False, perturb={"conductances.g_api": 0.3})
    assert not report.passed
    assert report.summary["dynamics_passed"] is False
    assert report.summary["levels_checked"] == ["dynamics"]


def test_the_report_figures_read_a_spiking_run_on_another_time_grid(tmp_path):
    """The spiking backend may record more windows than the rate run (test presentations): the levels and the
    dynamics scatter both read it on the rate grid."""
    rate = mean_field(n_t=10)
    spk = poisson_version(mean_field(n_t=19), 4.0).assign_coords(time=np.arange(19) * 250.0)
    summary = {**dynamics_level(rate, spk, CFG), "passed": True}
    Report(summary, True, {"dynamics_rate": rate, "dynamics_spiking": spk}).save(tmp_path)
    assert (tmp_path / "figures" / "dynamics_scatter.png").stat().st_size > 0
