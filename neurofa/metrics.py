"""Alignment angles, losses, accuracy and conservation residuals.

Pure functions on numpy arrays; nothing here knows about a backend. Every function accepts a leading batch axis
(seeds) where it makes sense: matrices are ``(..., m, n)`` and the Frobenius reductions run over the last two axes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "matrix_angle",
    "alignment_angle",
    "update_angle",
    "cosine",
    "conserved_quantity",
    "norm_ratio",
    "sign_angle_expected",
    "mse_loss",
    "accuracy",
]


#: squared Frobenius norms (and their product) outside (_LOW, _HIGH) are recomputed on rescaled matrices
_LOW, _HIGH = 1e-300, 1e300


def _inner_and_norms(a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inner = np.sum(a * c, axis=(-2, -1))
    na2 = np.sum(a * a, axis=(-2, -1))
    nc2 = np.sum(c * c, axis=(-2, -1))
    return inner, na2, nc2


def _frobenius_cos(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """⟨A, C⟩_F / (‖A‖_F ‖C‖_F) over the last two axes; NaN where A or C is zero.

    The cosine does not depend on the matrices' scales, so where a squared norm or their product would underflow
    or overflow (entries below ~1e-150 or above ~1e150) it is computed from the matrices divided by their largest
    |entry|. Everywhere else the plain formula is used unchanged.
    """
    a = np.asarray(a, dtype=float)
    c = np.asarray(c, dtype=float)
    if a.shape[-2:] != c.shape[-2:]:
        raise ValueError(f"matrix shapes differ: {a.shape[-2:]} vs {c.shape[-2:]}")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        inner, na2, nc2 = _inner_and_norms(a, c)
        product = na2 * nc2
        ok = (na2 > _LOW) & (nc2 > _LOW) & (product > _LOW) & (product < _HIGH) & np.isfinite(inner)
    if not np.all(ok):
        sa = np.max(np.abs(a), axis=(-2, -1), keepdims=True)
        sc = np.max(np.abs(c), axis=(-2, -1), keepdims=True)
        inner_s, na2_s, nc2_s = _inner_and_norms(a / np.where(sa > 0, sa, 1.0), c / np.where(sc > 0, sc, 1.0))
        inner = np.where(ok, inner, inner_s)
        product = np.where(ok, product, na2_s * nc2_s)
    norms = np.sqrt(product)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, inner / np.where(norms > 0, norms, 1.0), np.nan)
    return np.clip(cos, -1.0, 1.0)


def matrix_angle(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    r"""Angle between two matrices in degrees.

    .. math:: \angle(A, C) = \arccos\frac{\langle A, C\rangle_F}{\|A\|_F\,\|C\|_F}

    Vectors are treated as one-column matrices. Returns NaN where either matrix is zero.
    """
    a = np.asarray(a, dtype=float)
    c = np.asarray(c, dtype=float)
    if a.ndim == 1:
        a, c = a[:, None], np.asarray(c, dtype=float)[:, None]
    return np.degrees(np.arccos(_frobenius_cos(a, c)))


def alignment_angle(b: np.ndarray, w_next: np.ndarray) -> np.ndarray:
    r"""∠(B_ℓ, W_{ℓ+1}ᵀ): how well the feedback matrix B_ℓ (n_ℓ × n_{ℓ+1}) matches the transpose of the forward
    matrix W_{ℓ+1} (n_{ℓ+1} × n_ℓ) that backprop would use (Lillicrap2016; Max2024 Fig 3)."""
    return matrix_angle(b, np.swapaxes(np.asarray(w_next), -1, -2))


def update_angle(delta_rule: np.ndarray, delta_bp: np.ndarray) -> np.ndarray:
    """Angle in degrees between a learning rule's weight update and backprop's update (Lillicrap2016 Fig 2)."""
    return matrix_angle(delta_rule, delta_bp)


def cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine similarity of vectors along the last axis, e.g. cos(β, b) of Song2021."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return np.sum(x * y, axis=-1) / np.sqrt(np.sum(x * x, axis=-1) * np.sum(y * y, axis=-1))


def conserved_quantity(w: np.ndarray, b_next: np.ndarray, w_next: np.ndarray) -> np.ndarray:
    r"""Per-neuron conserved quantity of feedback alignment in layer ℓ (Robertson2023).

    .. math:: Q_\ell[i] = \|W_\ell[i,:]\|^2 - 2\sum_j B_{\ell+1}[i,j]\, W_{\ell+1}[j,i]

    ``w`` is W_ℓ (n_ℓ × n_{ℓ−1}), ``b_next`` is B_{ℓ+1} shaped like W_{ℓ+1}ᵀ (n_ℓ × n_{ℓ+1}) and ``w_next`` is
    W_{ℓ+1} (n_{ℓ+1} × n_ℓ). For bias-free ReLU or linear networks trained by FA in continuous time Q_ℓ is constant;
    with Euler steps of size η its drift is O(η).
    """
    w = np.asarray(w, dtype=float)
    cross = np.sum(np.asarray(b_next) * np.swapaxes(np.asarray(w_next), -1, -2), axis=-1)
    return np.sum(w * w, axis=-1) - 2.0 * cross


def norm_ratio(b: np.ndarray, w_next: np.ndarray) -> np.ndarray:
    """‖B‖_F / ‖W‖_F (PAL aligns direction, not scale; this tracks the scale)."""
    b = np.asarray(b, dtype=float)
    w_next = np.asarray(w_next, dtype=float)
    return np.sqrt(np.sum(b * b, axis=(-2, -1)) / np.sum(w_next * w_next, axis=(-2, -1)))


def sign_angle_expected(mean_abs: float, mean_square: float) -> float:
    r"""Expected ∠(sign(W), W) in degrees for i.i.d. weights: arccos(E|w| / √E[w²]).

    For N(0, σ²) weights this is arccos(√(2/π)) ≈ 37.0°; for U(−a, a) it is arccos(√3/2) = 30°.
    """
    return float(np.degrees(np.arccos(mean_abs / np.sqrt(mean_square))))


def mse_loss(y: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean over samples of ½‖y − y*‖² (last axis is the output dimension)."""
    d = np.asarray(y, dtype=float) - np.asarray(target, dtype=float)
    return 0.5 * np.mean(np.sum(d * d, axis=-1), axis=-1)


def accuracy(y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fraction of samples whose largest output is the label (last axis outputs, second-last samples)."""
    return np.mean(np.argmax(np.asarray(y), axis=-1) == np.asarray(labels), axis=-1)
