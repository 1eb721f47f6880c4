"""Transfer functions φ and their derivatives φ', by name (shared by every model)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["activation", "ACTIVATIONS"]

Array = np.ndarray


def _logistic(u: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # overflow-free σ(u)


def _logistic_prime(u: Array) -> Array:
    s = _logistic(u)
    return s * (1.0 - s)


def _softplus(u: Array) -> Array:
    return np.logaddexp(0.0, u)


def _softplus_prime(u: Array) -> Array:
    return _logistic(u)


ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "logistic": (_logistic, _logistic_prime),
    "relu": (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(float)),
    "tanh": (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    "linear": (lambda u: np.asarray(u, dtype=float), lambda u: np.ones_like(u, dtype=float)),
    "softplus": (_softplus, _softplus_prime),
}


def activation(name: str) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """``(φ, φ')`` for ``name`` in logistic, relu, tanh, linear, softplus."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} is unknown; allowed: {', '.join(ACTIVATIONS)}") from None
