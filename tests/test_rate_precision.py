"""``simulation.rate_precision: single``: the rate backend's weights and state in float32 follow the float64 run."""

from __future__ import annotations

import numpy as np
import pytest

from neurofa.circuit import initial_weights
from neurofa.config import ConfigError, load_config
from neurofa.rate.dynamics import Microcircuit, NoiseSource
from neurofa.rate.microcircuit import simulate

FIG3 = "models/pal_backprojections.yaml"


def _run(kernel: str, precision: str, duration: float = 300.0) -> object:
    cfg = load_config(FIG3, {"simulation.duration": duration, "simulation.record_interval": duration / 4,
                             "simulation.rate_kernel": kernel, "simulation.rate_precision": precision})
    return simulate(cfg, [0, 1])


def _relative(a: object, b: object) -> dict[str, float]:
    out = {}
    for name in a.data_vars:  # type: ignore[attr-defined]
        x, y = np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float)  # type: ignore[index]
        if x.size:
            out[str(name)] = float(np.nanmax(np.abs(x - y)) / max(np.nanmax(np.abs(x)), 1e-300))
    return out


def test_single_precision_holds_weights_state_and_noise_in_float32() -> None:
    cfg = load_config(FIG3, {"simulation.rate_precision": "single"})
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
    for name in ("F_flat", "G_flat", "u", "ueff", "d1", "d2", "xi", "r", "pre", "r_hp"):
        assert getattr(net, name).dtype == np.float32, name
    assert NoiseSource(net, [0, 1]).block(3).dtype == np.float32
    double = Microcircuit.of(load_config(FIG3), initial_weights(cfg, [0, 1]))
    assert double.G_flat.dtype == np.float64 and np.array_equal(double.G_flat.astype(np.float32), net.G_flat)


@pytest.mark.parametrize("kernel", ["numpy", "fused"])
def test_single_precision_follows_the_double_run_on_pal_fig3(kernel: str) -> None:
    """30,000 steps of PAL's Fig 3 (B learning from noise, B^PI from the apical mismatch): every recorded quantity
    within 2e-4 of its largest value (measured: 1e-5 to 4e-5), the angles within 0.01 degree, and B has moved."""
    double, single = _run("numpy", "double"), _run(kernel, "single")
    differences = _relative(double, single)
    assert max(differences.values()) < 2e-4, differences
    angles = double["angle_B_WT"]  # type: ignore[index]
    assert float(np.abs(angles - single["angle_B_WT"]).max()) < 0.01  # type: ignore[index]
    assert bool((angles.isel(time=-1) < angles.isel(time=0) - 1.0).all())
    assert max(differences.values()) > 0.0  # it did run in float32


def test_an_unknown_precision_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"simulation.rate_precision.*'half'.*double.*single"):
        load_config(FIG3, {"simulation.rate_precision": "half"})
