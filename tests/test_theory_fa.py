"""Quick versions of the FA theory reproductions (Lillicrap2016, Robertson2023) and their acceptance properties."""

import numpy as np
import pytest

from neurofa.config import from_dict
from neurofa.results import Result
from neurofa.theory import experiment


@pytest.fixture(scope="module")
def lillicrap():
    module = experiment("lillicrap2016")
    return module, module.run(module.Settings(), quick=True, progress=False)


@pytest.fixture(scope="module")
def robertson():
    module = experiment("robertson2023")
    return module, module.run(module.Settings(), quick=True, progress=False)


def test_lillicrap_fa_update_comes_within_45_degrees_of_backprop(lillicrap):
    _, result = lillicrap
    s = result.summary
    assert s["fraction_seeds_below_45deg"] == 1.0
    assert s["updates_to_45deg"] < 50  # "within tens of updates"
    assert s["update_angle_final"] < 45.0
    angles = result.dataset["angle_update_bp"].values
    assert np.all(angles[:, 0] > 70.0)  # it starts near orthogonal: W₂ and B are unrelated
    assert np.all(result.dataset["angle_pinv"].values[:, 0] > 70.0)
    assert s["pinv_angle_final"] < 25.0  # B e approaches the pseudo-inverse signal W₂⁺ e
    assert s["loss_ratio_fa"] < 1e-2  # and FA learns the linear map


def test_lillicrap_result_roundtrip_and_figure(lillicrap, tmp_path):
    module, result = lillicrap
    assert result.dataset.attrs["experiment"] == "lillicrap2016"
    result.save(tmp_path / "run", plots=False)
    loaded = Result.load(tmp_path / "run")
    paths = module.figure(loaded, tmp_path / "figs")
    assert paths and all(p.exists() and p.stat().st_size > 1000 for p in paths)


def test_robertson_quantity_is_conserved_with_drift_proportional_to_eta(robertson):
    _, result = robertson
    s = result.summary
    assert s["q_drift_ratio_half_eta"] == pytest.approx(0.5, abs=0.1)
    assert s["q_drift_ratio_quarter_eta"] == pytest.approx(0.25, abs=0.05)
    assert s["weight_change"] > 100 * s["q_drift_max"]  # the law holds while the weights change a lot
    assert s["loss_ratio_relu"] < 0.2  # the network does learn
    assert s["q_drift_tanh"] > 30 * s["q_drift_max"]  # tanh breaks the law (negative control)
    assert s["q_drift_linear"] < 0.05 * s["weight_change"]


def test_robertson_linear_fa_finds_the_minimum_norm_solution_from_small_init(robertson):
    _, result = robertson
    s = result.summary
    assert s["minnorm_train_loss"] < 1e-6  # it interpolates
    assert s["minnorm_rel_error"] < 0.01
    assert s["minnorm_rel_error_large_init"] > 0.1


def test_robertson_figure_and_settings_override(robertson, tmp_path):
    module, result = robertson
    assert result.dataset.attrs["experiment"] == "robertson2023"
    assert all(p.exists() for p in module.figure(result, tmp_path))
    settings = from_dict(module.Settings, {"lr": 0.01, "layers": [5, 8, 3]})
    assert settings.lr == 0.01 and settings.layers == [5, 8, 3]
