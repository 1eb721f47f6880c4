import json

import numpy as np
import pytest
import xarray as xr

from neurofa.results import Result, atomic_write, merge_results, summary_from_dataset


def small_dataset(n_seeds=3, n_t=5, n_layers=2):
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {
            "angle_B_WT": (("seed", "time", "layer"), rng.uniform(0, 90, (n_seeds, n_t, n_layers))),
            "loss": (("seed", "time"), rng.uniform(0, 1, (n_seeds, n_t))),
            "test_accuracy": (("seed",), rng.uniform(0.5, 1, n_seeds)),
        },
        coords={"seed": np.arange(n_seeds), "time": np.arange(n_t) * 10.0, "layer": np.arange(1, n_layers + 1)},
    )


def test_summary_keys_are_means_over_seeds():
    ds = small_dataset()
    s = summary_from_dataset(ds)
    assert s["seeds"] == [0, 1, 2]
    assert np.allclose(s["angle_B_WT_final"], ds.angle_B_WT.isel(time=-1).mean("seed"))
    assert np.array(s["angle_B_WT_final_per_seed"]).shape == (3, 2)
    assert s["test_accuracy"] == pytest.approx(float(ds.test_accuracy.mean()))


def test_save_and_load_round_trip(tmp_path):
    ds = small_dataset()
    res = Result(ds, summary_from_dataset(ds), "name: x\n")
    res.save(tmp_path / "run")
    assert Result.is_complete(tmp_path / "run")
    back = Result.load(tmp_path / "run")
    xr.testing.assert_allclose(back.dataset, ds)
    xr.testing.assert_allclose(back.alignment_angles(), ds["angle_B_WT"])
    with pytest.raises(KeyError, match="angle_B_RHS"):
        back.alignment_angles("B_RHS")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["seeds"] == [0, 1, 2]
    assert (tmp_path / "run" / "figures" / "angle_B_WT.png").stat().st_size > 1000


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "results.nc"

    def boom(path):
        path.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_merge_points_makes_grid_dimensions():
    a, b = small_dataset(), small_dataset()
    b = b.assign(loss=b.loss * 2)
    merged = merge_results([({"eta": 1.0}, a), ({"eta": 2.0}, b)])
    assert merged.sizes["eta"] == 2
    assert np.allclose(merged.loss.sel(eta=2.0), 2 * a.loss)
