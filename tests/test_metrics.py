import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurofa import metrics


def test_angle_of_identical_orthogonal_and_opposite():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.matrix_angle(a, 3 * a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.matrix_angle(a, -a) == pytest.approx(180.0)
    assert metrics.matrix_angle(a, np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(90.0)


def test_random_high_dim_matrices_are_near_orthogonal():
    rng = np.random.default_rng(0)
    ang = metrics.alignment_angle(rng.normal(size=(200, 100)), rng.normal(size=(100, 200)))
    assert abs(ang - 90.0) < 2.0


def test_alignment_angle_uses_transpose_and_batches():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 3, 4))
    b = np.swapaxes(w, -1, -2) + 0.0
    assert np.allclose(metrics.alignment_angle(b, w), 0.0, atol=1e-5)


TINY = np.array([[1.3e-117, -2.0e-118, 0.0, 4.1e-117]] * 3)


@settings(max_examples=60, deadline=None, derandomize=True)
@example(TINY, 2.0 * TINY + 1e-120)  # squared norms ~1e-234, their product underflows
@example(np.zeros((3, 4)), np.ones((3, 4)))
@given(arrays(float, (3, 4), elements=st.floats(-10, 10)), arrays(float, (3, 4), elements=st.floats(-10, 10)))
def test_angle_is_symmetric_and_bounded(a, c):
    """NaN exactly when a matrix is zero; otherwise in [0°, 180°] and symmetric (also for entries near 1e-117)."""
    ang = metrics.matrix_angle(a, c)
    if not np.any(a) or not np.any(c):
        assert np.isnan(ang)
    else:
        assert 0.0 <= ang <= 180.0
        assert ang == pytest.approx(metrics.matrix_angle(c, a), abs=1e-9)


@pytest.mark.parametrize("scale", [1e-160, 1e-117, 1e120, 1e200])
def test_angle_does_not_depend_on_the_scale_of_either_matrix(scale):
    """∠(sA, C) = ∠(A, C) for any s > 0, including scales whose squared norms under- or overflow."""
    rng = np.random.default_rng(4)
    a, c = rng.normal(size=(2, 5, 6, 3))
    reference = metrics.matrix_angle(a, c)
    assert np.all(np.isfinite(reference))
    np.testing.assert_allclose(metrics.matrix_angle(scale * a, c), reference, rtol=1e-10)
    np.testing.assert_allclose(metrics.matrix_angle(scale * a, scale * c), reference, rtol=1e-10)


def test_sign_angle_matches_sampled_weights():
    rng = np.random.default_rng(2)
    w = rng.uniform(-1, 1, size=(400, 400))
    expected = metrics.sign_angle_expected(0.5, 1.0 / 3.0)
    assert expected == pytest.approx(30.0)
    assert metrics.matrix_angle(np.sign(w), w) == pytest.approx(expected, abs=0.2)


def test_conserved_quantity_is_conserved_by_continuous_fa_flow_linear():
    # small Euler steps of linear FA: Q drifts by O(eta) -> halving eta halves the drift
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 20))
    y = rng.normal(size=(2, 20))
    w1_0, w2_0, b2 = rng.normal(size=(4, 6)) * 0.3, rng.normal(size=(2, 4)) * 0.3, rng.normal(size=(4, 2))
    drifts = []
    for eta in (2e-3, 1e-3):
        w1, w2 = w1_0.copy(), w2_0.copy()
        q0 = metrics.conserved_quantity(w1, b2, w2)
        for _ in range(int(0.2 / eta)):
            h = w1 @ x
            e = w2 @ h - y
            d1 = b2 @ e
            w2 -= eta * e @ h.T / 20
            w1 -= eta * d1 @ x.T / 20
        drifts.append(np.max(np.abs(metrics.conserved_quantity(w1, b2, w2) - q0)))
    assert drifts[1] / drifts[0] == pytest.approx(0.5, rel=0.2)


def test_loss_and_accuracy():
    y = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert metrics.accuracy(y, np.array([1, 0])) == 1.0
    assert metrics.mse_loss(y, y) == 0.0
    assert metrics.cosine(np.ones(3), -np.ones(3)) == pytest.approx(-1.0)
