"""What the rate and spiking microcircuits share: initial weights, the input stream and teacher targets.

Both backends build their start from these functions, so a configuration and a seed give the same initial
weights, the same sequence of presented samples and the same targets in both (the precondition of
``neurofa compare``). Nothing here simulates.

Indexing (``docs/science.md`` §2.1): layers ℓ = 0 (input) … N (output), sizes n_ℓ.

- ``W[ℓ-1]`` is W_ℓ, forward weights into layer ℓ, shape (S, n_ℓ, n_{ℓ−1}) for S seeds, ℓ = 1 … N;
- ``B[ℓ-1]`` is B_ℓ, backprojection from layer ℓ+1 to the apical dendrites of layer ℓ, shape (S, n_ℓ, n_{ℓ+1}),
  ℓ = 1 … N−1;
- ``B_PI[ℓ-1]`` is B^{PI}_ℓ, interneurons of layer ℓ to its apical dendrites, shape (S, n_ℓ, n_{ℓ+1});
- ``W_IP[ℓ-1]`` is W^{IP}_ℓ, pyramidal cells of layer ℓ to its interneurons, shape (S, n_{ℓ+1}, n_ℓ).

Random streams: each seed s owns independent generators ``default_rng([s, k])`` with k = 0 for weights,
1 for the presentation order, 2 for the backend's noise (PAL's ξ, spikes), 3 for the teacher.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neurofa.activations import activation
from neurofa.config import Config, Plasticity
from neurofa.model import Model, compile_model
from neurofa.tasks import TaskData, load_task, task_spec
from neurofa.tasks.teacher import teacher_sizes

__all__ = [
    "STREAM_WEIGHTS",
    "STREAM_ORDER",
    "STREAM_NOISE",
    "STREAM_TEACHER",
    "stream",
    "InitialWeights",
    "uniform_weights",
    "initial_weights",
    "interneuron_scale",
    "presentation_order",
    "steady_state",
    "teacher_weights",
    "circuit_task",
    "learning_rate_factor",
]

STREAM_WEIGHTS, STREAM_ORDER, STREAM_NOISE, STREAM_TEACHER = 0, 1, 2, 3


def stream(seed: int, kind: int) -> np.random.Generator:
    """The independent random generator ``kind`` of ``seed``."""
    return np.random.default_rng([int(seed), int(kind)])


@dataclass
class InitialWeights:
    """Weights of a batch of seeds at t = 0 (see the module docstring for shapes)."""

    W: list[np.ndarray]
    B: list[np.ndarray]
    B_PI: list[np.ndarray]
    W_IP: list[np.ndarray]


def uniform_weights(
    rng: np.random.Generator, shape: tuple[int, ...], scale: float, bounds: list[float]
) -> np.ndarray:
    """Weights U[bounds[0], bounds[1]] when an interval is given, else U[−scale, scale]."""
    low, high = (bounds[0], bounds[1]) if bounds else (-scale, scale)
    return rng.uniform(low, high, size=shape)


def interneuron_scale(cfg: Config, layer: int) -> float:
    r"""Factor c_ℓ with W^{IP}_ℓ = c_ℓ W_{ℓ+1} in the self-predicting state (Sacramento2018):

    .. math:: c_\ell = \frac{g_{bas}(g_l + g_{den})}{g_{den}(g_l + g_{bas} + g_{api})}

    with g_api dropped when layer ℓ+1 is the output (its pyramidal cells have no apical compartment).
    """
    g = cfg.conductances
    n_layers = len(cfg.network.layers) - 1
    g_api = 0.0 if layer + 1 == n_layers else g.g_api
    return g.g_bas * (g.g_l + g.g_den) / (g.g_den * (g.g_l + g.g_bas + g_api))


def initial_weights(cfg: Config, seeds: list[int], model: Model | None = None) -> InitialWeights:
    """Draw W, B (and B^{PI}, W^{IP}) for each seed from its weight stream.

    Draw order per seed: W_1 … W_N, then B_1 … B_{N−1}, then (without self-prediction) B^{PI}, W^{IP}. The
    feedback rule then sets B_ℓ(0) from the drawn matrix and W_{ℓ+1} (``bp``: B_ℓ = W_{ℓ+1}ᵀ; the others keep it,
    :meth:`neurofa.model.rule.FeedbackRule.initial`). In the self-predicting start B^{PI}_ℓ = −B_ℓ and
    W^{IP}_ℓ = c_ℓ W_{ℓ+1}. ``model`` is the configuration's description (compiled here when not given).
    """
    model = compile_model(cfg) if model is None else model
    sizes = cfg.network.layers
    net = cfg.network
    per_seed: list[tuple[list[np.ndarray], ...]] = []
    for seed in seeds:
        rng = stream(seed, STREAM_WEIGHTS)
        W = [uniform_weights(rng, (sizes[i], sizes[i - 1]), net.init_forward, net.init_forward_range)
             for i in range(1, len(sizes))]
        B = [uniform_weights(rng, (sizes[i], sizes[i + 1]), net.init_feedback, net.init_feedback_range)
             for i in range(1, len(sizes) - 1)]
        B = [model.feedback(ell).initial(B[ell - 1], W[ell]) for ell in range(1, len(W))]
        if net.self_predicting:
            B_PI = [-b for b in B]
            W_IP = [interneuron_scale(cfg, ell) * W[ell] for ell in range(1, len(W))]
        else:
            B_PI = [uniform_weights(rng, b.shape, net.init_feedback, []) for b in B]
            W_IP = [uniform_weights(rng, W[ell].shape, net.init_forward, []) for ell in range(1, len(W))]
        per_seed.append((W, B, B_PI, W_IP))
    stack = [[np.stack([p[k][i] for p in per_seed]) for i in range(len(per_seed[0][k]))] for k in range(4)]
    return InitialWeights(*stack)


def presentation_order(n_samples: int, n_presentations: int, seed: int) -> np.ndarray:
    """Sample index shown at each presentation: a fresh random permutation of the samples per epoch."""
    rng = stream(seed, STREAM_ORDER)
    n_epochs = -(-n_presentations // n_samples)
    return np.concatenate([rng.permutation(n_samples) for _ in range(n_epochs)])[:n_presentations]


def steady_state(spec: Config | Model, W: Sequence[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    r"""Somatic potentials of a microcircuit at its fixed point without target and without apical input.

    Hidden layers: u_ℓ = g_bas/(g_l+g_bas+g_api) · W_ℓ φ(u_{ℓ−1}); output: u_N = g_bas/(g_l+g_bas) · W_N φ(u_{N−1}),
    with r_0 = x (the input rates). In the self-predicting state the apical potential vanishes, so this is also the
    state the network settles to (Sacramento2018). ``spec`` is a configuration or a model description (its transfer
    function and conductances); ``W`` entries may carry a leading batch axis; ``x`` is (..., n_samples, n_0).
    Returns [u_1, …, u_N], each (..., n_samples, n_ℓ).
    """
    name = spec.activation if isinstance(spec, Model) else spec.network.activation
    phi, _ = activation(name)
    g = spec.conductances
    r = np.asarray(x, dtype=float)
    us = []
    for i, w in enumerate(W):
        last = i == len(W) - 1
        att = g.g_bas / (g.g_l + g.g_bas + (0.0 if last else g.g_api))
        u = att * r @ np.swapaxes(w, -1, -2)
        us.append(u)
        r = phi(u)
    return us


def teacher_weights(cfg: Config, seed: int) -> list[np.ndarray]:
    """Fixed weights of the teacher microcircuit for ``seed``.

    ``task.teacher_weights`` gives them explicitly, flattened layer by layer in row-major order (e.g. ``[2, 2]``
    for the 1-1-1 chain of PAL Fig 4); otherwise they are drawn U(−1, 1) × ``task.teacher_scale`` from the
    teacher stream, with sizes ``task.teacher_layers`` (default: the student's).
    """
    sizes = teacher_sizes(cfg)
    shapes = [(sizes[i], sizes[i - 1]) for i in range(1, len(sizes))]
    if cfg.task.teacher_weights:  # their number is checked with the configuration (tasks.teacher.check_teacher)
        flat = np.asarray(cfg.task.teacher_weights, dtype=float)
        out, k = [], 0
        for a, b in shapes:
            out.append(flat[k:k + a * b].reshape(a, b))
            k += a * b
        return out
    rng = stream(seed, STREAM_TEACHER)
    return [cfg.task.teacher_scale * rng.uniform(-1.0, 1.0, size=s) for s in shapes]


def circuit_task(cfg: Config, seed: int) -> TaskData:
    """The task data for one seed; for ``teacher`` the targets are the teacher's output potentials u_N."""
    sizes = cfg.network.layers
    data = load_task(cfg.task, n_in=sizes[0], n_out=sizes[-1], seed=seed)
    if task_spec(cfg.task.name).teacher:
        teacher_cfg = cfg
        if cfg.task.teacher_layers:
            teacher_cfg = dataclasses.replace(
                cfg, network=dataclasses.replace(cfg.network, layers=list(cfg.task.teacher_layers))
            )
        tw = teacher_weights(cfg, seed)
        data.y_train = steady_state(teacher_cfg, tw, data.x_train)[-1]
        if data.x_test is not None:
            data.y_test = steady_state(teacher_cfg, tw, data.x_test)[-1]
    return data


def learning_rate_factor(t_ms: float, plasticity: Plasticity) -> float:
    r"""Annealing factor of every plastic learning rate at simulated time ``t_ms`` (ms):

    .. math:: f(t) = \frac{1}{1 + t / T_\eta}, \qquad T_\eta = \texttt{plasticity.eta\_decay}

    and f = 1 when ``eta_decay`` = 0 (off). f multiplies η_fw, η_IP, η_PI and PAL's η_bw — the whole right-hand
    side of every plasticity equation, including PAL's decay −η_bw α B — so annealing slows plasticity down in
    time without moving its fixed points (PAL's B still settles at the same σ²/α scale; only its averaging time
    1/(η_bw α f) grows). The 1/t tail is the Robbins–Monro schedule that lets per-sample online SGD converge
    instead of fluctuating at a noise floor set by η.
    """
    tau = plasticity.eta_decay
    return 1.0 if tau <= 0.0 else 1.0 / (1.0 + float(t_ms) / tau)
