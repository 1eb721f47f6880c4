"""Tasks: Yin-Yang geometry and splits (docs/science.md §4), bars, digits, MNIST file loaders, teachers."""

import gzip
import math

import numpy as np
import pytest

from neurofa.config import ConfigError, Task
from neurofa.tasks import load_task
from neurofa.tasks.mnist import IDX_FILES, idx_bytes, mnist_task, read_idx
from neurofa.tasks.teacher import linear_teacher_task, teacher_outputs, teacher_task
from neurofa.tasks.yinyang import SPLITS, yinyang_samples


@pytest.fixture(scope="module")
def yinyang():
    return load_task(Task(name="yinyang", target_low=0.0), n_in=4, n_out=3)


def _geometry_class(x, y):
    """docs/science.md §4, written independently of the generator."""
    d_r = math.hypot(x - 0.75, y - 0.5)
    d_l = math.hypot(x - 0.25, y - 0.5)
    if d_r < 0.1 or d_l < 0.1:
        return 2
    return int(d_r <= 0.1 or 0.1 < d_l <= 0.25 or (y > 0.5 and d_r > 0.25))


def test_yinyang_labels_match_the_geometry_for_every_sample(yinyang):
    for x, labels in ((yinyang.x_train, yinyang.labels_train), (yinyang.x_val, yinyang.labels_val),
                      (yinyang.x_test, yinyang.labels_test)):
        assert all(_geometry_class(a, b) == lab for (a, b), lab in zip(x[:, :2], labels))
        assert np.all(np.hypot(x[:, 0] - 0.5, x[:, 1] - 0.5) <= 0.5)  # inside the big circle


def test_yinyang_features_splits_and_balance(yinyang):
    sizes = {"train": yinyang.x_train, "validation": yinyang.x_val, "test": yinyang.x_test}
    for name, x in sizes.items():
        assert x.shape == (SPLITS[name][0], 4)
        np.testing.assert_allclose(x[:, 2:], 1.0 - x[:, :2])  # features (x, y, 1 − x, 1 − y)
    assert len({s for _, s in SPLITS.values()}) == 3  # no two splits share a seed
    assert not np.any(np.isin(yinyang.x_test[:, 0], yinyang.x_train[:, 0]))  # disjoint samples
    counts = np.bincount(yinyang.labels_train, minlength=3) / yinyang.labels_train.size
    np.testing.assert_allclose(counts, 1 / 3, atol=0.03)  # the goal class is drawn uniformly
    np.testing.assert_array_equal(yinyang.y_train.argmax(1), yinyang.labels_train)
    assert set(np.unique(yinyang.y_train)) == {0.0, 1.0}


def test_yinyang_is_deterministic(yinyang):
    again = load_task(Task(name="yinyang", target_low=0.0), n_in=4, n_out=3)
    np.testing.assert_array_equal(again.x_train, yinyang.x_train)
    x1, l1 = yinyang_samples(50, seed=3)
    x2, l2 = yinyang_samples(50, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.array_equal(yinyang_samples(50, seed=4)[0], x1)


def test_bars_patterns_and_labels():
    data = load_task(Task(name="bars", n_train=32), n_in=9, n_out=3)
    assert data.x_test.shape == (8, 9) and data.x_train.shape == (32, 9)
    assert np.bincount(data.labels_test).tolist() == [3, 3, 2]
    grids = data.x_test.reshape(8, 3, 3) == 1.0
    assert all(g.sum() == 3 for g in grids)
    diagonals = (np.eye(3, dtype=bool), np.fliplr(np.eye(3, dtype=bool)))
    for g, lab in zip(grids, data.labels_test):
        shape_of = {0: g.all(axis=1).any(), 1: g.all(axis=0).any(), 2: any(np.array_equal(g, d) for d in diagonals)}
        assert shape_of[lab], (lab, g)


def test_digits_split_sizes():
    pytest.importorskip("sklearn")
    data = load_task(Task(name="digits"), n_in=64, n_out=10)
    assert data.x_train.shape == (1397, 64) and data.x_test.shape == (400, 64)
    assert np.bincount(data.labels_test).tolist() == [40] * 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def _tiny_mnist(rng):
    return {
        "x_train": rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=6).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=3).astype(np.uint8),
    }


@pytest.mark.parametrize("compressed", [False, True])
def test_mnist_reads_idx_folders(tmp_path, compressed):
    arrays = _tiny_mnist(np.random.default_rng(0))
    for key, stem in IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if compressed:
            (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (tmp_path / stem).write_bytes(raw)
    data = mnist_task(Task(name="mnist", path=str(tmp_path), n_train=0, n_test=0, target_low=0.0))
    np.testing.assert_allclose(data.x_train, arrays["x_train"].reshape(6, 12) / 255.0)
    np.testing.assert_array_equal(data.labels_test, arrays["y_test"])
    np.testing.assert_array_equal(data.y_train.argmax(1), arrays["y_train"])
    head = mnist_task(Task(name="mnist", path=str(tmp_path), n_train=4, n_test=2))
    assert head.x_train.shape == (4, 12) and head.x_test.shape == (2, 12)


def test_mnist_reads_npz(tmp_path):
    arrays = _tiny_mnist(np.random.default_rng(1))
    np.savez(tmp_path / "mnist.npz", **arrays)
    data = mnist_task(Task(name="mnist", path=str(tmp_path / "mnist.npz"), n_train=0, n_test=0))
    np.testing.assert_allclose(data.x_test, arrays["x_test"].reshape(3, 12) / 255.0)
    np.testing.assert_array_equal(data.labels_train, arrays["y_train"])


def test_mnist_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="task.path.*no such"):
        mnist_task(Task(name="mnist", path=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="missing train-images-idx3-ubyte"):
        mnist_task(Task(name="mnist", path=str(tmp_path)))
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rubbish")
    with pytest.raises(ConfigError, match="bad magic"):
        read_idx(bad)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))[:-1])
    with pytest.raises(ConfigError, match="needs"):
        read_idx(truncated)
    arrays = _tiny_mnist(np.random.default_rng(2))
    np.savez(tmp_path / "partial.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(ConfigError, match="lacks x_test, y_test"):
        mnist_task(Task(name="mnist", path=str(tmp_path / "partial.npz")))
    arrays["y_test"] = arrays["y_test"][:2]
    np.savez(tmp_path / "mismatch.npz", **arrays)
    with pytest.raises(ConfigError, match="test labels"):
        mnist_task(Task(name="mnist", path=str(tmp_path / "mismatch.npz")))


def test_linear_teacher_is_lillicrap_task():
    data, T = linear_teacher_task(30, 10, 500, 100, np.random.default_rng(0))
    assert T.shape == (10, 30) and np.abs(T).max() <= 1.0
    np.testing.assert_allclose(data.y_train, data.x_train @ T.T)
    np.testing.assert_allclose(data.x_train.std(), 1.0, atol=0.05)
    assert data.y_test.shape == (100, 10)


def test_nonlinear_teacher_task():
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-1, 1, size=(7, 4)), rng.uniform(-1, 1, size=(2, 7))]
    task = Task(name="teacher", n_train=50, n_test=20, input_low=-1.0)
    data = teacher_task(task, weights, n_in=4, activation="tanh", output_linear=True, seed=3)
    np.testing.assert_allclose(data.y_train, np.tanh(data.x_train @ weights[0].T) @ weights[1].T)
    assert data.y_test.shape == (20, 2) and data.x_train.min() >= -1.0
    relu_out = teacher_outputs(weights, data.x_train, "relu", output_linear=False)
    assert np.all(relu_out >= 0)
    other = teacher_task(task, weights, n_in=4, activation="tanh", seed=4)
    assert not np.allclose(other.x_train, data.x_train)  # inputs depend on the seed
