"""The compiled rate step (neurofa.rate.fused) computes the numpy step to rounding, and refuses what it does not
cover."""

from __future__ import annotations

import numpy as np
import pytest

from neurofa.circuit import initial_weights
from neurofa.config import ConfigError, load_config
from neurofa.rate import fused
from neurofa.rate.dynamics import Microcircuit, NoiseSource
from neurofa.rate.microcircuit import simulate

pytest.importorskip("numba")

FIG3 = "models/pal_backprojections.yaml"


def _both(path: str, duration: float, seeds: list[int], **over: object) -> tuple:
    base = {"simulation.duration": duration, "simulation.record_interval": duration / 4,
            "simulation.record_detail": True, **over}
    return tuple(simulate(load_config(path, {**base, "simulation.rate_kernel": k}), seeds)
                 for k in ("numpy", "fused"))


def _largest_relative_difference(a: object, b: object) -> float:
    worst = 0.0
    for name in a.data_vars:  # type: ignore[attr-defined]
        x, y = np.asarray(a[name], dtype=float), np.asarray(b[name], dtype=float)  # type: ignore[index]
        if x.size:
            worst = max(worst, float(np.nanmax(np.abs(x - y)) / max(np.nanmax(np.abs(x)), 1e-300)))
    return worst


@pytest.mark.parametrize("detail", [True, False])
def test_the_fused_step_follows_the_numpy_step_on_pal_fig3(detail: bool) -> None:
    # 20,000 steps of PAL and apical inhibition; without record_detail the kernel runs blocks of steps
    reference, compiled = _both(FIG3, 200.0, [0, 1, 2], **{"simulation.record_detail": detail})
    assert _largest_relative_difference(reference, compiled) < 1e-12
    # and it is the same run: PAL's angles moved, identically
    angles = reference["angle_B_WT"]
    assert bool((angles.isel(time=-1) < angles.isel(time=0) - 1.0).all())


def test_the_fused_step_follows_the_numpy_step_when_forward_weights_learn() -> None:
    reference, compiled = _both("models/microcircuit_teacher_30-50-10.yaml", 50.0, [0, 1],
                                **{"simulation.scheme": "lagged", "plasticity.tau_lo": 0.0})
    assert _largest_relative_difference(reference, compiled) < 1e-10


def test_what_the_kernel_does_not_cover_is_refused_or_left_to_numpy() -> None:
    cfg = load_config(FIG3, {"simulation.scheme": "instant", "simulation.rate_kernel": "fused"})
    with pytest.raises(ConfigError, match=r"rate_kernel = 'fused' is not allowed with simulation.scheme = 'instant'"):
        Microcircuit.of(cfg, initial_weights(cfg, [0]))
    auto = load_config(FIG3, {"simulation.scheme": "instant", "simulation.rate_kernel": "auto"})
    net = Microcircuit.of(auto, initial_weights(auto, [0]))
    assert net.scheme is not fused.fused_lagged
    bp = load_config("models/yinyang_bp.yaml", {"simulation.scheme": "lagged", "simulation.rate_kernel": "auto"})
    assert "rule hooks" in fused.unsupported_reason(Microcircuit.of(bp, initial_weights(bp, [0])))


def test_a_block_of_steps_is_bitwise_the_steps_one_by_one() -> None:
    """``Microcircuit.steps`` runs n steps in one compiled call; the state after blocks of odd and even length (the
    two rate buffers swap at every step) and across the end of a drawn noise block equals, bitwise, the state after
    the same steps one call each."""
    cfg = load_config(FIG3, {"simulation.rate_kernel": "fused"})
    x = np.random.default_rng(3).uniform(0.0, 1.0, (2, cfg.network.layers[0]))

    def run(blocks: list[int]) -> dict[str, np.ndarray]:
        net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1]))
        noise = NoiseSource(net, [0, 1], max_elements=16 * 2 * net.layout.n_units)  # 16 steps per drawn block
        net.present(x, None)
        for n in blocks:
            while n:
                block = noise.block(n)
                net.steps(block, block.shape[0])
                n -= block.shape[0]
        return {**net.state(), "pre": net.pre.copy(), "pre_old": net.pre_old.copy()}

    one_by_one = run([1] * 45)
    for blocks in ([7, 8, 30], [45], [2, 13, 1, 29]):
        state = run(blocks)
        assert all(np.array_equal(one_by_one[k], state[k]) for k in one_by_one), blocks
    assert not np.array_equal(one_by_one["_G_all"], run([1] * 44)["_G_all"])  # the apical weights did move


def test_the_fused_step_follows_the_numpy_step_with_one_apical_channel() -> None:
    # FA learns only B^PI (apical inhibition's v_api r^I): one channel, paired with an exact zero in the kernel
    # v_api, and with it the apical mismatch and the loss, are differences of cancelling terms in FA (the mismatch
    # is about 1e-13 at most here): those to 1e-10, the angles and norms of the weights to 1e-12
    reference, compiled = _both("models/fa_backprojections.yaml", 100.0, [0, 1])
    assert _largest_relative_difference(reference, compiled) < 1e-10
    weights = [name for name in reference.data_vars if str(name).startswith(("angle_", "norm_ratio_"))]
    assert len(weights) >= 3
    assert _largest_relative_difference(reference[weights], compiled[weights]) < 1e-12
    angles = reference["angle_B_WT"]
    assert bool(np.isfinite(angles).all())


@pytest.mark.parametrize("n_channels", [1, 2, 3, 4])
@pytest.mark.parametrize("decays", [True, False])
def test_the_apical_update_is_the_decayed_weights_plus_the_sum_over_channels(n_channels: int, decays: bool) -> None:
    """The kernel's one-pass apical update equals W ⊙ decay + Σ_c (lr_c ⊙ post_c)(mask_c ⊙ pre_c)ᵀ on every block,
    for any number of channels (the kernel takes those that reach a column run, in pairs), and the column runs
    cover every column of every block once."""
    rng = np.random.default_rng(7)
    n_units = 12
    signals = rng.normal(size=(4, n_units))  # ξ, v_api, r^HP, rate
    codes = np.array([[0, 2, 0], [1, 3, 1], [3, 0, 0], [2, 1, 1]], dtype=np.int64)[:n_channels]
    lr = rng.uniform(0.0, 1e-3, (n_channels, n_units))
    masks = rng.integers(0, 2, (2, n_units)).astype(float)
    blocks = np.array([[0, 4, 6, 0, 0, 4], [24, 3, 5, 4, 0, 7]], dtype=np.int64)  # off, m, n, row0, -, col0
    G = rng.normal(size=39)
    decay = rng.uniform(0.99, 1.0, 39) if decays else np.ones(0)
    expected = G * decay if decays else G.copy()
    for off, m, n, r0, _, c1 in blocks:
        dW = sum(np.outer(signals[cp][r0:r0 + m] * lr[c][r0:r0 + m],
                          signals[cq][c1:c1 + n] * masks[kind][c1:c1 + n]) for c, (cp, cq, kind) in enumerate(codes))
        expected[off:off + m * n] += np.ravel(dW)
    segments, members = fused.apical_segments(masks[codes[:, 2]], blocks)
    fused._apical(*signals, np.zeros((4, n_units)), G, lr, decay, codes, segments, members, blocks)
    np.testing.assert_allclose(G, expected, rtol=1e-14, atol=1e-16)
    for b, (_, _, n, _, _, c1) in enumerate(blocks):
        runs = segments[segments[:, 0] == b]
        assert runs[0, 1] == 0 and runs[-1, 2] == n and np.array_equal(runs[1:, 1], runs[:-1, 2])
        for _, lo, hi, first, count in runs:
            reach = members[first:first + count]
            assert all(np.all(masks[codes[c, 2]][c1 + lo:c1 + hi] != 0) == (c in reach) for c in range(n_channels))


def test_the_benchs_rate_budget_times_the_same_dynamics_with_the_weights_fixed() -> None:
    """``scripts/bench_scale.py`` bounds the rate reference's speed by the dynamics without plasticity: that network
    must be Fig 3's, stepping the same voltages from the same weights, with nothing learning."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    nets = bench.budget_networks([0, 1])
    fixed, full = nets["dynamics"], nets["full"]
    assert not (fixed.learn_F or fixed.learn_G or fixed.learn_B) and full.learn_G and full.learn_B
    weights = fixed.G_flat.copy(), fixed.F_flat.copy()
    noise = NoiseSource(full, [0, 1]).block(200)
    fused.fused_lagged_steps(fixed, noise, 1)
    fused.fused_lagged_steps(full, noise, 1)
    assert np.array_equal(fixed.u, full.u)  # one step: the same dynamics from the same weights
    fused.fused_lagged_steps(fixed, noise[1:], 199)
    fused.fused_lagged_steps(full, noise[1:], 199)
    assert np.array_equal(fixed.G_flat, weights[0]) and np.array_equal(fixed.F_flat, weights[1])
    assert not np.array_equal(full.G_flat, weights[0])
    assert not np.array_equal(fixed.u, full.u)  # the full network learned, and its voltages moved apart


def test_the_kernels_exponential_is_within_one_ulp_of_numpys() -> None:
    """The vectorisable e^x of the logistic (Cody–Waite reduction, Taylor series to r^13, 2^k from its bits) agrees
    with the C library's to 1 ulp over the whole clamped range, is clamped at ±708 and keeps NaN."""
    rng = np.random.default_rng(11)
    x = np.concatenate([np.linspace(-708.0, 708.0, 200_001), rng.uniform(-40.0, 40.0, 200_000),
                        rng.normal(0.0, 1e-3, 10_000), [0.0, -0.0, 1e-300, np.log(2.0), -np.log(2.0) / 2]])
    reference = np.exp(x)
    ulps = np.abs(fused.exp(x) - reference) / np.spacing(reference)
    assert float(ulps.max()) <= 1.0, float(ulps.max())
    assert float(np.mean(ulps > 0)) < 0.1  # mostly exact (measured: 7.8 % differ by 1 ulp)
    edges, clamped = fused.exp(np.array([1e4, -1e4, np.nan])), fused.exp(np.array([708.0, -708.0]))
    assert edges[0] == clamped[0] and edges[1] == clamped[1] and np.isnan(edges[2])


@pytest.mark.parametrize("refine", [1, 3])
@pytest.mark.parametrize("precision", ["double", "single"])
def test_the_compiled_noise_draws_are_numpys_bitwise(refine: int, precision: str) -> None:
    """``NoiseSource`` fills its blocks with the compiled loop (numba draws numpy's normals from the same bit
    generator): the samples, and the generators' states after them, equal the numpy reference bitwise."""
    cfg = load_config(FIG3, {"simulation.rate_precision": precision})
    net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1, 2]))
    compiled, reference = (NoiseSource(net, [0, 1, 2], refine=refine, max_elements=40 * 3 * 90) for _ in range(2))
    for _ in range(3):  # three drawn blocks of 40 steps
        drawn = compiled.block(40).copy()
        for s, rng in enumerate(reference.rngs):
            reference._fill(rng, s)
        assert np.array_equal(drawn, reference.buffer) and drawn.dtype == net.dtype
    assert [r.bit_generator.state for r in compiled.rngs] == [r.bit_generator.state for r in reference.rngs]
    hidden = np.zeros(net.layout.n_units, dtype=bool)
    hidden[net.layout.hid_idx] = True
    assert np.all(drawn[:, :, ~hidden] == 0) and np.all(drawn[:, :, hidden] != 0)
    # the samples have the increments' variance σ² dt/τ_ξ (refine sums refine draws of variance 1/refine)
    assert abs(float(np.var(drawn[:, :, hidden])) / net.xi_scale**2 - 1.0) < 0.1


@pytest.mark.parametrize("refine", [1, 2])
def test_steps_that_draw_their_own_noise_are_bitwise_the_steps_fed_drawn_blocks(refine: int) -> None:
    """``Microcircuit.advance``: once a source's drawn block is used up, the compiled kernel draws each step's
    samples from the source's generators itself. The states, and the generators after the run, equal those of the
    same steps fed the source's blocks, bitwise, across several blocks' ends (the fed source draws a block ahead, so
    its generators' states differ until the blocks are used up); a source with samples left hands those out first."""
    cfg = load_config(FIG3, {"simulation.rate_kernel": "fused"})
    x = np.random.default_rng(5).uniform(0.0, 1.0, (3, cfg.network.layers[0]))

    def run(draw: bool) -> dict[str, np.ndarray]:
        net = Microcircuit.of(cfg, initial_weights(cfg, [0, 1, 2]))
        noise = NoiseSource(net, [0, 1, 2], refine=refine, max_elements=16 * 3 * net.layout.n_units)
        net.present(x, None)
        noise.block(5)  # a drawn block with 11 samples left: those come first in either case
        for n in [20, 7, 30, 1, 40]:
            while n:
                if draw:
                    taken = net.advance(noise, n)
                else:
                    block = noise.block(n)
                    taken = block.shape[0]
                    net.steps(block, taken)
                n -= taken
        return {**net.state(), "pre": net.pre.copy()}

    drawn, fed = run(True), run(False)
    assert all(np.array_equal(drawn[k], fed[k]) for k in fed)
    assert not np.array_equal(drawn["xi"], 0.0)
