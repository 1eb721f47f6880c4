r"""Discrete-time layered networks and the one implementation of every feedback rule (``docs/science.md`` §1).

Network (no biases): h_0 = x, a_ℓ = W_ℓ h_{ℓ−1}, h_ℓ = φ(a_ℓ), output y = h_L (or a_L with a linear read-out),
loss L = ½‖y − y*‖² averaged over the minibatch. Output error e = ∂L/∂a_L = (y − y*) ⊙ φ'(a_L) (or y − y* for a
linear read-out). Hidden errors δ_ℓ and forward updates ΔW_ℓ = −η ⟨δ_ℓ h_{ℓ−1}ᵀ⟩ (⟨·⟩ = minibatch mean):

========  ====================================================  ==========================================
rule      δ_ℓ (hidden)                                          feedback weights
========  ====================================================  ==========================================
bp        φ'(a_ℓ) ⊙ W_{ℓ+1}ᵀ δ_{ℓ+1}                            weight transport
fa        φ'(a_ℓ) ⊙ B_ℓ δ_{ℓ+1}                                 B fixed random (Lillicrap2016)
dfa       φ'(a_ℓ) ⊙ D_ℓ e                                       D fixed random (Nokland2016)
sign      φ'(a_ℓ) ⊙ sign(W_{ℓ+1})ᵀ δ_{ℓ+1}                      sign transport (Liao2016)
kp        as fa                                                 ΔB_ℓ = ΔW_{ℓ+1}ᵀ, both decay (Akrout2019)
mirror    as fa                                                 ΔB_ℓ = η_B(⟨ξ_ℓ (W_{ℓ+1} ξ_ℓ)ᵀ⟩ − α B_ℓ)
pal       as fa                                                 ΔB_ℓ = η_B(⟨ξ_ℓ HP[r_{ℓ+1}]ᵀ⟩ − α B_ℓ)
========  ====================================================  ==========================================

Indexing follows :mod:`neurofa.circuit`: every array carries a leading seed axis S; ``W[ℓ−1]`` is W_ℓ with shape
(S, n_ℓ, n_{ℓ−1}), ℓ = 1 … L; ``B[ℓ−1]`` is the feedback B_ℓ into hidden layer ℓ, shaped like W_{ℓ+1}ᵀ,
(S, n_ℓ, n_{ℓ+1}) (the theory papers write it B_{ℓ+1}); ``D[ℓ−1]`` is D_ℓ, (S, n_ℓ, n_L). Activities are
(S, batch, n_ℓ); inputs may also be (batch, n_0) and broadcast over seeds.

Decay and noise (``StepParams``): forward weights decay as W ← (1 − ηλ)W + ΔW with λ = ``weight_decay``; under kp
the feedback decays identically, so ‖W_{ℓ+1}(t) − B_ℓ(t)ᵀ‖ = (1 − ηλ)^t ‖W_{ℓ+1}(0) − B_ℓ(0)ᵀ‖ exactly.
mirror and pal share one correlation rule ΔB = η_B(⟨ξ rᵀ⟩ − α B) with decay α = ``feedback_decay``; its fixed
point is B = (σ²/α) E[∂r/∂ξ]ᵀ. They differ in where ξ and r come from:

- mirror: a separate mirror step after every SGD step (Akrout2019's mirror mode, interleaved): noise
  ξ_ℓ ~ N(0, σ²) is injected alone into layer ℓ and r = W_{ℓ+1} ξ_ℓ, so B_ℓ → (σ²/α) W_{ℓ+1}ᵀ.
- pal (discrete analogue of Max2024): no separate phase. During the ordinary training forward pass the hidden rates
  carry noise, h̃_ℓ = φ(a_ℓ) + ξ_ℓ, and r = HP[r_{ℓ+1}] is the high-passed rate r_{ℓ+1} = φ(a_{ℓ+1}) of the next
  layer (the value before its own noise is added, which is independent of ξ_ℓ and would only add variance).
  **HP choice**: HP[r] = r − r̄ with r̄ an exponential running mean over successive minibatches (rate
  ``hp_rate`` per step, per unit and seed). r̄ is updated only after it is used, so it is independent of the current
  ξ and the estimate ⟨ξ_ℓ HP[r_{ℓ+1}]ᵀ⟩ is unbiased: B_ℓ → (σ²/α) (φ'(a_{ℓ+1}) ⊙ W_{ℓ+1})ᵀ averaged over the
  data. The sample-to-sample variation of the signal is not removed (a discrete net has no time-scale
  separation between signal and noise); it only adds variance that the slow average (1/(η_B α) steps) removes.

Recorded alignment (``feedback_angles``): the angle between the feedback matrix a rule actually uses and the
transport it replaces, ∠(F_ℓ, W_{ℓ+1}ᵀ): F = W_{ℓ+1}ᵀ for bp (recorded as exactly 0°), sign(W_{ℓ+1})ᵀ for sign,
B_ℓ for fa/kp/mirror/pal. For dfa the transport it replaces is the product (W_L ⋯ W_{ℓ+1})ᵀ, so the angle is
∠(D_ℓ, (W_L ⋯ W_{ℓ+1})ᵀ) (for one hidden layer this is ∠(D_1, W_2ᵀ), the FA angle).

Each rule is a :class:`DiscreteRule` in the registry :data:`RULES`: how it carries δ back, which feedback
matrices it owns, how it updates them and which angle it reports. The pure functions below dispatch on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from tqdm import tqdm

from neurofa.activations import activation
from neurofa.circuit import STREAM_NOISE, STREAM_ORDER, STREAM_WEIGHTS, stream, teacher_weights, uniform_weights
from neurofa.config import Config, ConfigError, choice_error, register_check
from neurofa.divergence import DivergenceError, non_finite
from neurofa.estimate import Estimate, data_values
from neurofa.metrics import accuracy, alignment_angle, matrix_angle, mse_loss, update_angle
from neurofa.tasks import TASKS, load_task, task_spec
from neurofa.tasks.teacher import teacher_task

__all__ = [
    "RULES",
    "DiscreteRule",
    "forward",
    "output_error",
    "hidden_errors",
    "forward_updates",
    "kp_feedback_update",
    "noise_correlation_update",
    "mirror_probe",
    "feedback_angles",
    "StepParams",
    "StepRecord",
    "LayeredNet",
    "train_step",
    "normal_noise",
    "initial_net",
    "simulate",
    "estimate",
]

Array = np.ndarray


def _t(m: Array) -> Array:
    return np.swapaxes(m, -1, -2)


# ----------------------------------------------------------------------------------------------------------------
# pure functions: forward pass, errors, updates


def forward(
    W: Sequence[Array],
    x: Array,
    phi: Callable[[Array], Array],
    output_linear: bool = False,
    noise: Sequence[Array] | None = None,
) -> tuple[list[Array], list[Array]]:
    """Forward pass a_ℓ = W_ℓ h_{ℓ−1}, h_ℓ = φ(a_ℓ) (+ ξ_ℓ on hidden layers when ``noise`` is given).

    ``x`` is (S, batch, n_0) or (batch, n_0); ``noise`` lists one array per hidden layer, added to the hidden rates
    (PAL's noise riding on the signal). Returns ([a_1 … a_L], [h_0 … h_L]) with h_L = a_L for a linear read-out.
    """
    h = np.asarray(x, dtype=float)
    a_list: list[Array] = []
    h_list: list[Array] = [h]
    n = len(W)
    for i, w in enumerate(W):
        a = h @ _t(w)
        last = i == n - 1
        h = a if (last and output_linear) else phi(a)
        if noise is not None and not last:
            h = h + noise[i]
        a_list.append(a)
        h_list.append(h)
    return a_list, h_list


def output_error(a_out: Array, y: Array, target: Array, dphi: Callable[[Array], Array], output_linear: bool) -> Array:
    """e = ∂L/∂a_L = (y − y*) ⊙ φ'(a_L), or y − y* for a linear read-out."""
    e = y - target
    return e if output_linear else e * dphi(a_out)


def forward_updates(deltas: Sequence[Array], h_list: Sequence[Array], lr: float) -> list[Array]:
    """ΔW_ℓ = −η ⟨δ_ℓ h_{ℓ−1}ᵀ⟩ (mean over the minibatch), each (S, n_ℓ, n_{ℓ−1})."""
    out = []
    for delta, h in zip(deltas, h_list[:-1]):
        out.append((-lr / delta.shape[-2]) * (_t(delta) @ h))
    return out


def kp_feedback_update(B: Sequence[Array], dW: Sequence[Array], lr: float, decay: float) -> list[Array]:
    """Kolen–Pollack (Akrout2019): B_ℓ ← (1 − ηλ) B_ℓ + ΔW_{ℓ+1}ᵀ, the same increment and decay as W_{ℓ+1}."""
    return [(1.0 - lr * decay) * b + _t(dw) for b, dw in zip(B, dW[1:])]


def noise_correlation_update(
    B: Sequence[Array], xi: Sequence[Array], response: Sequence[Array], lr_feedback: float, decay: float
) -> list[Array]:
    """Noise-correlation learning of feedback (weight mirror, Akrout2019; PAL, Max2024):

    B_ℓ ← B_ℓ + η_B (⟨ξ_ℓ r_{ℓ+1}ᵀ⟩ − α B_ℓ), where ξ_ℓ (S, m, n_ℓ) is the noise of hidden layer ℓ and r_{ℓ+1}
    (S, m, n_{ℓ+1}) the next layer's (high-passed) response. Fixed point: (σ²/α) E[∂r/∂ξ]ᵀ.
    """
    out = []
    for b, x, r in zip(B, xi, response):
        corr = (_t(x) @ r) / x.shape[-2]
        out.append(b + lr_feedback * (corr - decay * b))
    return out


def mirror_probe(W: Sequence[Array], xi: Sequence[Array]) -> list[Array]:
    """Mirror-mode response r_{ℓ+1} = W_{ℓ+1} ξ_ℓ of layer ℓ+1 to noise ξ_ℓ injected alone into layer ℓ."""
    return [x @ _t(w) for w, x in zip(W[1:], xi)]


def _noise(net: LayeredNet, rngs: Sequence[np.random.Generator] | None, batch: int, sigma: float) -> list[Array]:
    if rngs is None:
        raise ValueError(f"rule {net.rule!r} needs random generators for its noise")
    return [normal_noise(rngs, (batch, net.sizes[ell + 1]), sigma) for ell in range(len(net.W) - 1)]


# ----------------------------------------------------------------------------------------------------------------
# the rules


class DiscreteRule:
    """How one rule carries the output error back and learns its feedback (base: backprop's weight transport)."""

    name: ClassVar[str] = "bp"
    #: the rule sends δ through its own feedback matrices B (fa-like) or directly from the output (D)
    owns_B: ClassVar[bool] = False
    owns_D: ClassVar[bool] = False

    def feedback(self, W: Sequence[Array], B: Sequence[Array]) -> list[Array]:
        """The matrices F_ℓ (shaped like W_{ℓ+1}ᵀ) that carry δ_{ℓ+1} to hidden layer ℓ."""
        return list(B)

    def hidden_errors(self, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array], a_list: Sequence[Array],
                      e: Array, dphi: Callable[[Array], Array]) -> list[Array]:
        n_hidden = len(W) - 1
        deltas: list[Array] = [np.empty(0)] * n_hidden + [e]
        F = self.feedback(W, B)
        for ell in range(n_hidden - 1, -1, -1):
            deltas[ell] = dphi(a_list[ell]) * (deltas[ell + 1] @ _t(F[ell]))
        return deltas

    def angles(self, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array]) -> Array:
        """∠(F_ℓ, W_{ℓ+1}ᵀ) per hidden layer, (S, L−1)."""
        F = self.feedback(W, B)
        return np.stack([alignment_angle(F[ell], W[ell + 1]) for ell in range(len(W) - 1)], axis=-1)

    def forward_noise(self, net: LayeredNet, rngs: Sequence[np.random.Generator] | None, batch: int,
                      params: StepParams) -> list[Array] | None:
        """Noise riding on the hidden rates of the training forward pass (PAL), or None."""
        return None

    def learn_feedback(self, net: LayeredNet, rec: StepRecord, noise: list[Array] | None, params: StepParams,
                       rngs: Sequence[np.random.Generator] | None) -> None:
        """Update the rule's feedback matrices after the forward weights changed."""


class Backprop(DiscreteRule):
    name = "bp"

    def feedback(self, W: Sequence[Array], B: Sequence[Array]) -> list[Array]:
        return [_t(w) for w in W[1:]]

    def angles(self, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array]) -> Array:
        return np.zeros((W[0].shape[0], len(W) - 1))


class FeedbackAlignment(DiscreteRule):
    name = "fa"
    owns_B = True


class SignSymmetry(DiscreteRule):
    name = "sign"

    def feedback(self, W: Sequence[Array], B: Sequence[Array]) -> list[Array]:
        return [np.sign(_t(w)) for w in W[1:]]


class DirectFeedbackAlignment(DiscreteRule):
    name = "dfa"
    owns_D = True

    def feedback(self, W: Sequence[Array], B: Sequence[Array]) -> list[Array]:
        raise ValueError("dfa sends the output error directly (D); it has no layer-to-layer feedback matrices")

    def hidden_errors(self, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array], a_list: Sequence[Array],
                      e: Array, dphi: Callable[[Array], Array]) -> list[Array]:
        n_hidden = len(W) - 1
        deltas: list[Array] = [np.empty(0)] * n_hidden + [e]
        for ell in range(n_hidden):
            deltas[ell] = dphi(a_list[ell]) * (e @ _t(D[ell]))
        return deltas

    def angles(self, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array]) -> Array:
        cols = []
        for ell in range(len(W) - 1):
            prod = W[-1]
            for w in W[-2:ell:-1]:
                prod = prod @ w
            cols.append(matrix_angle(D[ell], _t(prod)))
        return np.stack(cols, axis=-1)


class KolenPollack(DiscreteRule):
    name = "kp"
    owns_B = True

    def learn_feedback(self, net: LayeredNet, rec: StepRecord, noise: list[Array] | None, params: StepParams,
                       rngs: Sequence[np.random.Generator] | None) -> None:
        net.B = kp_feedback_update(net.B, rec.dW, params.lr, params.weight_decay)


class WeightMirror(DiscreteRule):
    name = "mirror"
    owns_B = True

    def learn_feedback(self, net: LayeredNet, rec: StepRecord, noise: list[Array] | None, params: StepParams,
                       rngs: Sequence[np.random.Generator] | None) -> None:
        xi = _noise(net, rngs, rec.e.shape[-2], params.noise)
        net.B = noise_correlation_update(net.B, xi, mirror_probe(net.W, xi), params.lr_feedback,
                                         params.feedback_decay)


class PhaselessAlignment(DiscreteRule):
    name = "pal"
    owns_B = True

    def forward_noise(self, net: LayeredNet, rngs: Sequence[np.random.Generator] | None, batch: int,
                      params: StepParams) -> list[Array] | None:
        return _noise(net, rngs, batch, params.noise)

    def learn_feedback(self, net: LayeredNet, rec: StepRecord, noise: list[Array] | None, params: StepParams,
                       rngs: Sequence[np.random.Generator] | None) -> None:
        assert noise is not None
        n_hidden = len(net.W) - 1
        rates = [a if (ell == n_hidden - 1 and net.output_linear) else net.phi(a)
                 for ell, a in enumerate(rec.a_list[1:])]
        if net.hp_mean is None:
            net.hp_mean = [r.mean(axis=-2) for r in rates]
        hp = [r - m[..., None, :] for r, m in zip(rates, net.hp_mean)]
        net.B = noise_correlation_update(net.B, noise, hp, params.lr_feedback, params.feedback_decay)
        k = params.hp_rate
        net.hp_mean = [(1.0 - k) * m + k * r.mean(axis=-2) for m, r in zip(net.hp_mean, rates)]


#: the registry of discrete-time rules (``plasticity.feedback`` of ``model: mlp``), one line per rule
RULES: dict[str, DiscreteRule] = {rule.name: rule for rule in (
    Backprop(),
    FeedbackAlignment(),
    DirectFeedbackAlignment(),
    SignSymmetry(),
    KolenPollack(),
    WeightMirror(),
    PhaselessAlignment(),
)}


def _rule(name: str) -> DiscreteRule:
    if name not in RULES:  # configurations are validated by check_mlp; this is a programming error
        raise ValueError(f"rule {name!r} is unknown; allowed: {', '.join(RULES)}")
    return RULES[name]


def hidden_errors(
    rule: str,
    W: Sequence[Array],
    B: Sequence[Array],
    D: Sequence[Array],
    a_list: Sequence[Array],
    e: Array,
    dphi: Callable[[Array], Array],
) -> list[Array]:
    """Errors [δ_1 … δ_L] (δ_L = e) of every layer under ``rule`` (see the module table).

    Row-vector form: δ_ℓ = φ'(a_ℓ) ⊙ (δ_{ℓ+1} F_ℓᵀ) with F_ℓ the rule's :meth:`DiscreteRule.feedback`, or
    δ_ℓ = φ'(a_ℓ) ⊙ (e D_ℓᵀ) for dfa.
    """
    return _rule(rule).hidden_errors(W, B, D, a_list, e, dphi)


def feedback_angles(rule: str, W: Sequence[Array], B: Sequence[Array], D: Sequence[Array]) -> Array:
    """Angle (degrees) between each hidden layer's effective feedback and the transport it replaces, (S, L−1).

    bp → 0 exactly; sign → ∠(sign(W_{ℓ+1})ᵀ, W_{ℓ+1}ᵀ); fa, kp, mirror, pal → ∠(B_ℓ, W_{ℓ+1}ᵀ);
    dfa → ∠(D_ℓ, (W_L ⋯ W_{ℓ+1})ᵀ).
    """
    if len(W) == 1:
        return np.zeros((W[0].shape[0], 0))
    return _rule(rule).angles(W, B, D)


# ----------------------------------------------------------------------------------------------------------------
# state and one training step


@dataclass
class StepParams:
    """Hyper-parameters of one SGD step: learning rates η (forward) and η_B (feedback), forward weight decay λ
    (also kp's feedback decay), mirror/pal feedback decay α, noise SD σ, PAL high-pass running-mean rate."""

    lr: float = 0.1
    lr_feedback: float = 0.0
    weight_decay: float = 0.0
    feedback_decay: float = 0.0
    noise: float = 0.0
    hp_rate: float = 0.1


@dataclass
class StepRecord:
    """What a training step computed (before the weights changed): activities, output error, errors, updates."""

    a_list: list[Array]
    h_list: list[Array]
    e: Array
    deltas: list[Array]
    dW: list[Array]
    loss: Array


@dataclass
class LayeredNet:
    """Weights of a batch of seeds and the rule that trains them (shapes in the module docstring).

    ``B`` holds the feedback matrices (empty for bp, sign, dfa); ``D`` the direct feedback (dfa only);
    ``hp_mean`` PAL's running means r̄_{ℓ+1} of the high-pass filter, one (S, n_{ℓ+1}) array per hidden layer.
    """

    W: list[Array]
    rule: str = "fa"
    activation: str = "logistic"
    output_linear: bool = False
    B: list[Array] = field(default_factory=list)
    D: list[Array] = field(default_factory=list)
    hp_mean: list[Array] | None = None

    def __post_init__(self) -> None:
        spec = _rule(self.rule)
        self.phi, self.dphi = activation(self.activation)
        n_hidden = len(self.W) - 1
        if spec.owns_B and len(self.B) != n_hidden:
            raise ValueError(f"rule {self.rule!r} needs {n_hidden} feedback matrices B, got {len(self.B)}")
        if spec.owns_D and len(self.D) != n_hidden:
            raise ValueError(f"rule {self.rule!r} needs {n_hidden} direct feedback matrices D, got {len(self.D)}")

    @property
    def n_seeds(self) -> int:
        return int(self.W[0].shape[0])

    @property
    def sizes(self) -> list[int]:
        return [int(self.W[0].shape[-1])] + [int(w.shape[-2]) for w in self.W]

    def forward(self, x: Array, noise: Sequence[Array] | None = None) -> tuple[list[Array], list[Array]]:
        return forward(self.W, x, self.phi, self.output_linear, noise)

    def output(self, x: Array) -> Array:
        """Noise-free network output y for inputs x, (S, batch, n_L)."""
        return self.forward(x)[1][-1]

    def errors(self, rule: str, a_list: Sequence[Array], e: Array) -> list[Array]:
        """Hidden errors of this network's activities under ``rule`` (e.g. 'bp' for the reference update)."""
        return hidden_errors(rule, self.W, self.B, self.D, a_list, e, self.dphi)

    def feedback_angles(self) -> Array:
        return feedback_angles(self.rule, self.W, self.B, self.D)


def normal_noise(rngs: Sequence[np.random.Generator], shape: tuple[int, ...], sigma: float) -> Array:
    """N(0, σ²) noise of ``shape`` for every seed, each from its own generator: (S, *shape)."""
    return np.stack([rng.normal(0.0, sigma, size=shape) for rng in rngs])


def train_step(
    net: LayeredNet,
    x: Array,
    target: Array,
    params: StepParams,
    rngs: Sequence[np.random.Generator] | None = None,
) -> StepRecord:
    """One minibatch step of ``net.rule`` in place: forward pass, errors, W ← (1 − ηλ)W + ΔW, feedback update.

    ``rngs`` (one generator per seed) supply the noise of mirror and pal; other rules are deterministic.
    """
    spec = _rule(net.rule)
    noise = spec.forward_noise(net, rngs, target.shape[-2], params)
    a_list, h_list = net.forward(x, noise)
    y = h_list[-1]
    loss = mse_loss(y, target)
    e = output_error(a_list[-1], y, target, net.dphi, net.output_linear)
    deltas = net.errors(net.rule, a_list, e)
    dW = forward_updates(deltas, h_list, params.lr)
    shrink = 1.0 - params.lr * params.weight_decay
    net.W = [shrink * w + dw for w, dw in zip(net.W, dW)]
    record = StepRecord(a_list, h_list, e, deltas, dW, loss)
    spec.learn_feedback(net, record, noise, params, rngs)
    return record


# ----------------------------------------------------------------------------------------------------------------
# configuration → network, data, simulation


def initial_net(cfg: Any, seeds: Sequence[int]) -> LayeredNet:
    """Weights of every seed from its weight stream (:func:`neurofa.circuit.stream`, k = 0).

    Draw order per seed: W_1 … W_L (U[±init_forward] or ``init_forward_range``), B_1 … B_{L−1} and then
    D_1 … D_{L−1} (U[±init_feedback] or ``init_feedback_range``), so W and B equal the microcircuit's for the same
    seed. B is drawn for every rule; bp, sign and dfa ignore it.
    """
    sizes = list(cfg.network.layers)
    net_cfg = cfg.network
    n = len(sizes)
    Ws, Bs, Ds = [], [], []
    for seed in seeds:
        rng = stream(seed, STREAM_WEIGHTS)
        Ws.append([uniform_weights(rng, (sizes[i], sizes[i - 1]), net_cfg.init_forward, net_cfg.init_forward_range)
                   for i in range(1, n)])
        Bs.append([uniform_weights(rng, (sizes[i], sizes[i + 1]), net_cfg.init_feedback, net_cfg.init_feedback_range)
                   for i in range(1, n - 1)])
        Ds.append([uniform_weights(rng, (sizes[i], sizes[-1]), net_cfg.init_feedback, net_cfg.init_feedback_range)
                   for i in range(1, n - 1)])

    def stack(per_seed: list[list[Array]]) -> list[Array]:
        return [np.stack([p[i] for p in per_seed]) for i in range(len(per_seed[0]))]

    rule = cfg.plasticity.feedback
    spec = _rule(rule)
    return LayeredNet(
        W=stack(Ws),
        rule=rule,
        activation=net_cfg.activation,
        output_linear=net_cfg.output_linear,
        B=stack(Bs) if spec.owns_B else [],
        D=stack(Ds) if spec.owns_D else [],
    )


def step_params(cfg: Any) -> StepParams:
    """:class:`StepParams` from ``cfg.training`` (lr, lr_feedback, weight_decay, noise) and
    ``cfg.plasticity.alpha`` (the mirror/pal feedback decay α)."""
    t = cfg.training
    return StepParams(lr=t.lr, lr_feedback=t.lr_feedback, weight_decay=t.weight_decay,
                      feedback_decay=cfg.plasticity.alpha, noise=t.noise)


@dataclass
class _Split:
    """Inputs, targets and labels (None for regression) of one split, with a leading seed axis."""

    x: Array
    y: Array
    labels: Array | None


@dataclass
class _Data:
    """Task splits with a leading seed axis (a broadcast view when all seeds share the data)."""

    train: _Split
    test: _Split | None
    validation: _Split | None
    classification: bool


def _task_data(cfg: Any, seeds: Sequence[int]) -> _Data:
    sizes = cfg.network.layers
    if task_spec(cfg.task.name).teacher:
        per_seed = [teacher_task(cfg.task, teacher_weights(cfg, s), sizes[0], cfg.network.activation,
                                 cfg.network.output_linear, seed=s) for s in seeds]
    else:
        one = load_task(cfg.task, n_in=sizes[0], n_out=sizes[-1], seed=int(seeds[0]))
        per_seed = [one]

    def stacked(name: str) -> Array | None:
        values = [getattr(d, name) for d in per_seed]
        if values[0] is None:
            return None
        arr = np.stack(values) if len(values) > 1 else np.asarray(values[0])[None]
        return np.broadcast_to(arr, (len(seeds),) + arr.shape[1:]) if arr.shape[0] == 1 else arr

    def split(name: str) -> _Split | None:
        x, y = stacked(f"x_{name}"), stacked(f"y_{name}")
        return None if x is None or y is None else _Split(x, y, stacked(f"labels_{name}"))

    train = split("train")
    assert train is not None, "validated: model 'mlp' needs a task with targets"
    return _Data(train, split("test"), split("val"), per_seed[0].kind == "classification")


def _evaluate(net: LayeredNet, x: Array, y: Array, labels: Array | None) -> tuple[Array, Array | None]:
    out = net.output(x)
    loss = mse_loss(out, y)
    acc = accuracy(out, labels) if labels is not None else None
    return loss, acc


def _update_angles(net: LayeredNet, x: Array, y: Array) -> Array:
    """∠(ΔW_ℓ rule, ΔW_ℓ bp) per hidden layer ℓ on the batch (x, y), noise-free, (S, L−1)."""
    a_list, h_list = net.forward(x)
    e = output_error(a_list[-1], h_list[-1], y, net.dphi, net.output_linear)
    n_hidden = len(net.W) - 1
    rule_dW = forward_updates(net.errors(net.rule, a_list, e)[:n_hidden], h_list, 1.0)
    bp_dW = forward_updates(net.errors("bp", a_list, e)[:n_hidden], h_list, 1.0)
    if not n_hidden:
        return np.zeros((net.n_seeds, 0))
    return np.stack([update_angle(r, b) for r, b in zip(rule_dW, bp_dW)], axis=-1)


def simulate(cfg: Config, seeds: Sequence[int], progress: bool = True) -> xr.Dataset:
    """Minibatch SGD of ``cfg.model == 'mlp'`` for all ``seeds`` at once; returns the run's xarray.Dataset.

    Each epoch shows every training sample once in a fresh per-seed random order (stream k = 1), in minibatches of
    ``training.batch_size`` (the last one may be smaller); mirror/pal noise comes from stream k = 2.
    Variables (time = epoch, 0 = before training): ``loss`` (seed, time) noise-free loss on the whole training set;
    ``accuracy`` (seed, time) test accuracy (classification with a test set); ``angle_B_WT`` (seed, time, layer)
    from :func:`feedback_angles`; ``angle_update_bp`` (seed, time, layer) ∠(ΔW_ℓ, ΔW_ℓ^bp) of the weights into
    hidden layer ℓ on the first ≤1000 training samples; per seed ``train_accuracy``, ``test_accuracy``,
    ``test_loss``, ``validation_accuracy`` where the task defines them. ``attrs['extra_summary']`` adds
    ``angle_update_bp_final`` (per hidden layer, mean over seeds) and ``validation_accuracy`` to summary.json.
    """
    seeds = [int(s) for s in seeds]
    data = _task_data(cfg, seeds)
    net = initial_net(cfg, seeds)
    epochs = int(cfg.training.epochs)
    curves = _Curves(net, data, epochs)
    curves.record(0)
    order_rngs = [stream(s, STREAM_ORDER) for s in seeds]
    noise_rngs = [stream(s, STREAM_NOISE) for s in seeds]
    for epoch in tqdm(range(1, epochs + 1), disable=not progress, desc=cfg.name, unit="epoch"):
        with np.errstate(over="ignore", invalid="ignore"):
            _epoch(net, data.train, step_params(cfg), int(cfg.training.batch_size), order_rngs, noise_rngs)
        found = non_finite({"forward weights W": np.concatenate([w.reshape(len(seeds), -1) for w in net.W], 1)},
                           seeds)
        if found is not None:
            raise DivergenceError(cfg.name, found[1], epoch, "epochs", found[0], partial=curves.dataset(seeds, False),
                                  hint="lower training.lr")
        curves.record(epoch)
    return curves.dataset(seeds)


def _epoch(net: LayeredNet, train: _Split, params: StepParams, batch: int, order_rngs: list[np.random.Generator],
           noise_rngs: list[np.random.Generator]) -> None:
    """Every training sample once, in a fresh per-seed order, in minibatches of ``batch``."""
    n_train = train.x.shape[1]
    seed_index = np.arange(len(order_rngs))[:, None]
    perm = np.stack([rng.permutation(n_train) for rng in order_rngs])
    for start in range(0, n_train, batch):
        idx = perm[:, start:start + batch]
        train_step(net, train.x[seed_index, idx], train.y[seed_index, idx], params, noise_rngs)


class _Curves:
    """Per-epoch loss, test accuracy, feedback and update angles, and the final dataset."""

    def __init__(self, net: LayeredNet, data: _Data, epochs: int):
        self.net, self.data = net, data
        S, n_hidden = net.n_seeds, len(net.W) - 1
        n_probe = min(data.train.x.shape[1], 1000)
        self.probe = (data.train.x[:, :n_probe], data.train.y[:, :n_probe])
        self.loss = np.full((S, epochs + 1), np.nan)
        self.test_accuracy = np.full((S, epochs + 1), np.nan)
        self.angles = np.full((S, epochs + 1, n_hidden), np.nan)
        self.update_angles = np.full((S, epochs + 1, n_hidden), np.nan)

    def record(self, k: int) -> None:
        net, data = self.net, self.data
        self.loss[:, k] = _evaluate(net, data.train.x, data.train.y, None)[0]
        if data.test is not None and data.classification:
            self.test_accuracy[:, k] = _evaluate(net, data.test.x, data.test.y, data.test.labels)[1]
        self.angles[:, k] = net.feedback_angles()
        self.update_angles[:, k] = _update_angles(net, *self.probe)

    def dataset(self, seeds: list[int], final: bool = True) -> xr.Dataset:
        """The run's dataset; ``final = False`` (a diverged run) leaves out the evaluation of the final weights."""
        net, data = self.net, self.data
        n_hidden = len(net.W) - 1
        coords = {"seed": seeds, "time": np.arange(self.loss.shape[1]), "layer": np.arange(1, n_hidden + 1)}
        ds = xr.Dataset(coords=coords)
        ds["time"].attrs["units"] = "epoch"
        ds["loss"] = (("seed", "time"), self.loss, {"long_name": "training loss ½‖y − y*‖² (noise-free)"})
        if n_hidden:
            ds["angle_B_WT"] = (("seed", "time", "layer"), self.angles,
                                {"long_name": "angle between the rule's feedback and the transport it replaces",
                                 "units": "deg"})
            ds["angle_update_bp"] = (("seed", "time", "layer"), self.update_angles,
                                     {"long_name": "angle between the rule's hidden update and backprop's",
                                      "units": "deg"})
        extra: dict[str, Any] = {"feedback": net.rule}
        ds.attrs["feedback"] = net.rule
        ds.attrs["extra_summary"] = extra
        if not final:
            return ds
        train_acc = _evaluate(net, data.train.x, data.train.y, data.train.labels)[1]
        if train_acc is not None:
            ds["train_accuracy"] = (("seed",), train_acc)
        if data.test is not None:
            test_loss, test_acc = _evaluate(net, data.test.x, data.test.y, data.test.labels)
            ds["test_loss"] = (("seed",), test_loss)
            if test_acc is not None:
                ds["test_accuracy"] = (("seed",), test_acc)
                ds["accuracy"] = (("seed", "time"), self.test_accuracy, {"long_name": "test accuracy"})
        val = data.validation
        if val is not None and val.labels is not None:
            ds["validation_accuracy"] = (("seed",), _evaluate(net, val.x, val.y, val.labels)[1])
        if n_hidden:
            extra["angle_update_bp_final"] = self.update_angles[:, -1].mean(axis=0).tolist()
        if "validation_accuracy" in ds:
            extra["validation_accuracy"] = float(ds["validation_accuracy"].mean())
        extra["max_abs_weight"] = float(max(np.abs(w).max() for w in [*net.W, *net.B, *net.D]))
        return ds


def estimate(cfg: Config, n_seeds: int) -> Estimate:
    """Minibatch updates over all seeds, and the memory: weights, feedback and updates (×4), the activities of the
    largest evaluation (every sample through every layer), the task's data and the per-epoch curves; 8 bytes each."""
    sizes = [float(v) for v in cfg.network.layers]
    spec = task_spec(cfg.task.name)
    n_train = max(int(cfg.task.n_train) if spec.synthetic else spec.samples(cfg.task), 1)
    updates = int(cfg.training.epochs) * -(-n_train // int(cfg.training.batch_size))
    weights = sum(a * b for a, b in zip(sizes[1:], sizes[:-1])) + sum(a * sizes[-1] for a in sizes[1:-1])
    samples = float(spec.samples(cfg.task))
    curves = (int(cfg.training.epochs) + 1) * (2.0 + 2.0 * (len(sizes) - 2))
    per_seed = 4 * weights + 2 * samples * sum(sizes) + curves
    return Estimate(steps=float(n_seeds) * updates, bytes=8.0 * (n_seeds * per_seed + data_values(cfg, n_seeds)))


@register_check("model")
def check_mlp(cfg: Config, where: str) -> None:
    """A discrete-time network needs a registered rule and a task with targets; the target filter and checkpoints
    are microcircuit options."""
    if cfg.model != "mlp":
        return
    if cfg.plasticity.feedback not in RULES:
        raise choice_error(where, "plasticity.feedback", cfg.plasticity.feedback, RULES, " for model 'mlp'")
    spec = TASKS.get(cfg.task.name)
    if spec is not None and not spec.targets:
        raise ConfigError(
            f"{where}task.name = {cfg.task.name!r} is not allowed for model 'mlp' (it has no targets); allowed: "
            f"{', '.join(sorted(n for n in TASKS if TASKS[n].targets))}"
        )
    if cfg.simulation.filter_target:
        raise ConfigError(
            f"{where}simulation.filter_target = True is not allowed for model 'mlp'; allowed: model 'microcircuit'"
        )
    if cfg.simulation.checkpoint_interval > 0:
        raise ConfigError(
            f"{where}simulation.checkpoint_interval = {cfg.simulation.checkpoint_interval!r} is not allowed for "
            "model 'mlp' (its runs take seconds to minutes); allowed: 0, or model 'microcircuit'"
        )
