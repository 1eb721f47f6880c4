"""MNIST from local files (nothing is downloaded).

``task.path`` names either

- a folder with the four IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally gzipped, ``.gz``); or
- an ``.npz`` file with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (images as (n, 28, 28) or (n, 784)
  uint8 0…255 or floats in [0, 1]; integer labels).

IDX format (LeCun's): big-endian, magic = two zero bytes, a type code (0x08 = unsigned byte) and the number of
dimensions, then one 32-bit size per dimension, then the data. Images are flattened row-major and scaled to
[0, 1]. ``task.n_train`` / ``task.n_test`` keep the first n samples of each split (0 = all). Targets are one-hot
in [target_low, target_high]. Problems raise a :class:`~neurofa.config.ConfigError` naming ``task.path``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from neurofa.config import ConfigError
from neurofa.tasks.base import TaskData, TaskSpec, one_hot_targets, register_task

__all__ = ["IDX_FILES", "N_CLASSES", "read_idx", "idx_bytes", "write_idx", "write_idx_folder", "synthetic_mnist",
           "mnist_arrays", "mnist_task"]

N_CLASSES = 10
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _bad(path: Path | str, why: str) -> ConfigError:
    return ConfigError(f"task.path = {str(path)!r}: {why}")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or ``.gz``) into an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise _bad(path, f"cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise _bad(path, "not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise _bad(path, "truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != need:
        raise _bad(path, f"IDX data has {len(raw) - header} bytes, the header {shape} needs {need}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def idx_bytes(array: np.ndarray) -> bytes:
    """The unsigned-byte IDX encoding of ``array`` (magic 0x0000 08 ndim, big-endian sizes, the bytes)."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"IDX files here hold unsigned bytes; got dtype {arr.dtype}")
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an unsigned-byte IDX file (the inverse of :func:`read_idx` for uint8 data)."""
    path = Path(path)
    path.write_bytes(idx_bytes(array))
    return path


def write_idx_folder(folder: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray) -> Path:
    """Write the four MNIST IDX files (:data:`IDX_FILES`) of uint8 images and labels into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, arr in {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}.items():
        write_idx(folder / IDX_FILES[key], arr)
    return folder


def synthetic_mnist(n_train: int, n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """MNIST-shaped stand-in data for tests and benchmarks: 28×28 uint8 images, one random smooth template per
    class (10 classes) plus pixel noise, with their labels; a network that learns separates the classes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    templates = np.zeros((N_CLASSES, 28, 28))
    for c in range(N_CLASSES):
        for cy, cx in rng.uniform(4, 24, size=(3, 2)):
            templates[c] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
    templates /= templates.max(axis=(1, 2), keepdims=True)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, N_CLASSES, size=n)
        images = np.clip(templates[labels] + rng.normal(0.0, 0.15, (n, 28, 28)), 0.0, 1.0)
        return np.round(255 * images).astype(np.uint8), labels.astype(np.uint8)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise _bad(folder, f"missing {stem} (or {stem}.gz)")


def _images(x: np.ndarray, where: Path | str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise _bad(where, f"images must have at least 2 dimensions, got shape {x.shape}")
    flat = x.reshape(x.shape[0], -1).astype(float)
    if x.dtype.kind in "ui" or flat.max(initial=0.0) > 1.0:
        flat = flat / 255.0
    return flat


def _labels(y: np.ndarray, n: int, where: Path | str, split: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise _bad(where, f"{split} labels have shape {y.shape}, expected ({n},) to match the images")
    if y.dtype.kind not in "ui" and not np.all(np.equal(np.mod(y, 1), 0)):
        raise _bad(where, f"{split} labels must be integers")
    y = y.astype(int)
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise _bad(where, f"{split} labels must lie in 0…{N_CLASSES - 1}")
    return y


def mnist_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """``x_train``, ``y_train``, ``x_test``, ``y_test`` from a folder of IDX files or an ``.npz`` file."""
    if not str(path):
        raise ConfigError("task.path is required for task 'mnist' (a folder with IDX files or an .npz file)")
    p = Path(path)
    if not p.exists():
        raise _bad(p, "no such file or folder")
    if p.is_dir():
        raw = {key: read_idx(_find_idx(p, stem)) for key, stem in IDX_FILES.items()}
    else:
        try:
            with np.load(p, allow_pickle=False) as npz:
                missing = [k for k in IDX_FILES if k not in npz.files]
                if missing:
                    raise _bad(p, f"the .npz lacks {', '.join(missing)} (has {', '.join(npz.files) or 'nothing'})")
                raw = {k: npz[k] for k in IDX_FILES}
        except (OSError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise _bad(p, f"not a readable .npz file ({exc})") from None
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x = _images(raw[f"x_{split}"], p)
        out[f"x_{split}"] = x
        out[f"y_{split}"] = _labels(raw[f"y_{split}"], x.shape[0], p, split)
    if out["x_train"].shape[1] != out["x_test"].shape[1]:
        raise _bad(p, f"train images have {out['x_train'].shape[1]} pixels, test images {out['x_test'].shape[1]}")
    return out


def mnist_task(task: Any) -> TaskData:
    """MNIST from ``task.path``; the first ``task.n_train`` / ``task.n_test`` samples (0 = all)."""
    arrays = mnist_arrays(task.path)

    def head(a: np.ndarray, n: int) -> np.ndarray:
        return a[:n] if n else a

    x_tr, l_tr = head(arrays["x_train"], task.n_train), head(arrays["y_train"], task.n_train)
    x_te, l_te = head(arrays["x_test"], task.n_test), head(arrays["y_test"], task.n_test)

    def targets(labels: np.ndarray) -> np.ndarray:
        return one_hot_targets(labels, N_CLASSES, task.target_low, task.target_high)

    return TaskData(
        "mnist", "classification",
        x_train=x_tr, y_train=targets(l_tr), labels_train=l_tr,
        x_test=x_te, y_test=targets(l_te), labels_test=l_te,
    )


def check_mnist(cfg: Any, where: str) -> None:
    """MNIST needs ``task.path`` (the files are never downloaded)."""
    if not cfg.task.path:
        raise ConfigError(f"{where}task.path is required for task 'mnist' (a folder with IDX files or an .npz file)")


def _load(task: Any, n_in: int, n_out: int, seed: int) -> TaskData:
    return mnist_task(task)


def _test_samples(task: Any) -> int:
    return int(task.n_test) or 10_000


def _samples(task: Any) -> int:
    return (int(task.n_train) or 60_000) + _test_samples(task)


register_task(TaskSpec("mnist", _load, classification=True, io=(784, 10), samples=_samples,
                       test_samples=_test_samples, check=check_mnist))
