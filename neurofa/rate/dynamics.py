r"""Batched Euler dynamics of the dendritic cortical microcircuit: the rate interpreter of a model description.

One :class:`Microcircuit` holds the state of S seeds (leading batch axis) of a :class:`~neurofa.model.Model` and
advances all of them by one Euler step of size dt per :meth:`Microcircuit.step`. The equations are in
``docs/science.md`` §2 (voltages dimensionless, times in ms):

- dendrites: v_bas,ℓ = W_ℓ r_{ℓ−1}; v_api,ℓ = B_ℓ r_{ℓ+1} + B^{PI}_ℓ r^I_ℓ; v_den,ℓ = W^{IP}_ℓ r_ℓ;
- somata: τ u̇ = u_eff − u with u_eff = τ [g_bas v_bas + g_api (v_api + ξ)] (hidden pyramidal cells),
  τ_N [g_bas v_bas + g_ntgt u_tgt] (output, with target; g_bas v_bas/(g_l + g_bas) without), and
  τ_I [g_den v_den + g_nI ŭ^P_{ℓ+1}] (interneurons, nudged one-to-one by the next layer's pyramidal cells);
- rates r = φ(ŭ) with the prospective voltage ŭ = u + τ u̇ = u_eff (Haider2021), or φ(u) with
  ``simulation.prospective = false``;
- plasticity from the projections' rules (:mod:`neurofa.model.rules`): the dendritic prediction rule of W and
  W^{IP} (increments per step dt × η f(t) [φ(ŭ) − φ(v̂)] r_preᵀ, optionally low-passed with τ_LO), the fused
  Hebbian terms of the apical projections (PAL's ξ r^HPᵀ, apical inhibition's −v_api r^Iᵀ), multiplicative decays,
  and the rules' hooks (``bp`` imposes B = Wᵀ, ``kp`` mirrors ΔWᵀ).

The order of operations within a step is the scheme's (:mod:`neurofa.rate.schemes`, §2.5).

Mean field of the spiking model (``simulation.tau_syn`` > 0, §3.5): presynaptic rates are low-passed,
r̄ ← r̄ + (dt/τ_syn)(r − r̄), before they enter dendrites and plasticity (presynaptic factors, and r^HP = high-pass
of r̄); the input rates too. With ``simulation.filter_target`` the output's nudging potential passes the same
filter, ū_tgt ← ū_tgt + (dt/τ_syn)(u_tgt − ū_tgt), updated with the input traces.

Implementation: to keep the number of numpy calls per step independent of depth, units are packed layer-wise into
one vector per batch element, in blocks that share presynaptic partners:
``[P_1 | P_2 I_1 | P_3 I_2 | … | P_N I_{N−1}]`` (P_ℓ pyramidal cells of layer ℓ, I_ℓ interneurons of layer ℓ, which
are as many as P_{ℓ+1}). Then [W_{ℓ+1}; W^{IP}_ℓ] (both read r_ℓ) is one matrix writing block ℓ+1, and
[B_ℓ, B^{PI}_ℓ] (reading r_{ℓ+1} and r^I_ℓ) is one matrix reading block ℓ+1. ``W``, ``W_IP``, ``B`` and ``B_PI`` are
views into these stacked matrices.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurofa.activations import activation
from neurofa.circuit import STREAM_NOISE, InitialWeights, stream
from neurofa.config import Config, ConfigError, Simulation
from neurofa.model import Model, Projection, Rule, compile_model
from neurofa.model.rules.urbanczik import UrbanczikSenn
from neurofa.rate import fused
from neurofa.rate.schemes import SCHEMES, Scheme

__all__ = ["Layout", "Microcircuit", "NoiseSource", "logistic"]

Array = np.ndarray


def logistic(u: Array, out: Array | None = None) -> Array:
    """σ(u) = ½(1 + tanh(u/2)), written to ``out`` (overflow-free, same values as :mod:`neurofa.activations`)."""
    out = np.multiply(u, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def _transfer(name: str) -> Callable[[Array, Array], Array]:
    if name == "logistic":
        return logistic
    phi, _ = activation(name)

    def apply(u: Array, out: Array) -> Array:
        out[...] = phi(u)
        return out

    return apply


@dataclass(frozen=True)
class Layout:
    """Where each population sits in the packed unit vector (see the module docstring).

    Slices are in unit coordinates (0 … n_units); rate vectors additionally carry the n_in inputs in front.
    ``pyr[ℓ-1]`` layer ℓ = 1 … N, ``inter[ℓ-1]`` and ``hid[ℓ-1]`` layer ℓ = 1 … N−1, ``block[ℓ-1]`` block ℓ = 1 … N.
    """

    sizes: tuple[int, ...]
    n_units: int
    pyr: tuple[slice, ...]
    inter: tuple[slice, ...]
    block: tuple[slice, ...]
    pyr_idx: Array
    int_idx: Array
    pair_idx: Array  # for each interneuron (order of int_idx) the pyramidal cell that nudges it

    @classmethod
    def of(cls, sizes: list[int] | tuple[int, ...]) -> Layout:
        sizes = tuple(int(n) for n in sizes)
        n_layers = len(sizes) - 1
        pyr, inter, block = [slice(0, sizes[1])], [], [slice(0, sizes[1])]
        k = sizes[1]
        for ell in range(1, n_layers):
            m = sizes[ell + 1]
            pyr.append(slice(k, k + m))
            inter.append(slice(k + m, k + 2 * m))
            block.append(slice(k, k + 2 * m))
            k += 2 * m
        pyr_idx = np.concatenate([np.arange(s.start, s.stop) for s in pyr])
        int_idx = np.concatenate([np.arange(s.start, s.stop) for s in inter])
        pair_idx = np.concatenate([np.arange(p.start, p.stop) for p in pyr[1:]])
        return cls(sizes, k, tuple(pyr), tuple(inter), tuple(block), pyr_idx, int_idx, pair_idx)

    @property
    def n_layers(self) -> int:
        """N, the index of the output layer."""
        return len(self.sizes) - 1

    @property
    def hid_idx(self) -> Array:
        """Units of the hidden pyramidal cells (layers 1 … N−1)."""
        return np.concatenate([np.arange(s.start, s.stop) for s in self.pyr[:-1]])


@dataclass
class _Channel:
    """One fused Hebbian term of the apical blocks: post signal × pre signal over the projections of one kind."""

    post: str
    pre: str
    kind: str
    base: Array  # η dt on the postsynaptic units, unannealed
    lr: Array  # the working rate (base × f)


class Microcircuit:
    """State, weights and one Euler step of a batch of microcircuits (``docs/science.md`` §2).

    ``model`` is the description (:func:`neurofa.model.compile_model`), ``simulation`` the time stepping and
    ``weights`` the initial weights of the batch (:func:`neurofa.circuit.initial_weights`), copied. Call
    :meth:`present` to set the input rates (S, n_0) and the output target (S, n_N) or ``None``, then :meth:`step`
    with this step's PAL noise increment σ √(dt/τ_ξ) N(0, 1), shape (S, n_units) and zero outside hidden pyramidal
    cells (or ``None`` without noise); :class:`NoiseSource` draws it.

    ``simulation.rate_precision: single`` holds the weights, their increments, the state and the noise samples in
    float32 (``dtype``), which halves the memory traffic of a wide network's weights. The per-unit coefficients and
    the per-weight decays 1 − η α dt stay float64: in float32, 1 − 5e-6 (PAL's η_bw α dt) would carry a systematic
    error of up to 0.6 % of its decay rate, whereas the float64 product W (1 − η α dt), rounded to float32, errs
    without bias. The noise is drawn in float64 from the same streams and rounded.
    """

    def __init__(self, model: Model, simulation: Simulation, weights: InitialWeights):
        self.model = model
        self.layout = Layout.of(model.sizes)
        self.n_seeds = weights.W[0].shape[0]
        self.n_in = model.sizes[0]
        self.dt = simulation.dt
        self.dtype = np.dtype(np.float32 if simulation.rate_precision == "single" else np.float64)
        self.prospective = simulation.prospective
        self.scheme_name = simulation.scheme
        self.scheme: Scheme = SCHEMES[simulation.scheme]
        self.output_linear = model.output_linear
        self.phi = _transfer(model.activation)
        self._pack(weights)
        self._coefficients()
        self._learning()
        self._filters(simulation)
        self._allocate()
        for projection in model:
            projection.rule.rate_init(self, projection)
        self.reset_state()
        self._steps: Callable[[Microcircuit, Array | None, int], None] | None = None
        self._choose_kernel(simulation.rate_kernel)

    def _choose_kernel(self, kernel: str) -> None:
        """``simulation.rate_kernel``: the compiled step of :mod:`neurofa.rate.fused` where it covers the batch
        (``auto``) or always (``fused``, refused where it does not), else the scheme's numpy step."""
        if kernel == "numpy":
            return
        reason = fused.unsupported_reason(self)
        if reason and kernel == "fused":
            raise ConfigError(f"simulation.rate_kernel = 'fused' is not allowed with {reason}; allowed: "
                              "rate_kernel auto or numpy")
        if not reason:
            self.scheme = fused.fused_lagged
            self._steps = fused.fused_lagged_steps

    @classmethod
    def of(cls, cfg: Config, weights: InitialWeights) -> Microcircuit:
        """The kernel of a configuration (its model description and time stepping)."""
        return cls(compile_model(cfg), cfg.simulation, weights)

    # -- construction --------------------------------------------------------------------------------------------
    def _pack(self, weights: InitialWeights) -> None:
        """Stacked [W_{ℓ+1}; W^{IP}_ℓ] and [B_ℓ, B^{PI}_ℓ], views into one flat buffer each."""
        sizes, N = self.layout.sizes, self.layout.n_layers
        F_init = [np.asarray(weights.W[0], dtype=float)]
        F_init += [np.concatenate([weights.W[ell], weights.W_IP[ell - 1]], axis=1) for ell in range(1, N)]
        G_init = [np.concatenate([weights.B[ell - 1], weights.B_PI[ell - 1]], axis=2) for ell in range(1, N)]
        self._F_all, self.F = _packed(F_init, self.dtype)
        self._dF_all, self._dF = _packed([np.zeros_like(f) for f in F_init], self.dtype)
        self._G_all, self.G = _packed(G_init, self.dtype)
        self._dG_all, self._dG = _packed([np.zeros_like(gm) for gm in G_init], self.dtype)
        self.W = [self.F[0]] + [self.F[ell][:, : sizes[ell + 1], :] for ell in range(1, N)]
        self.W_IP = [self.F[ell][:, sizes[ell + 1]:, :] for ell in range(1, N)]
        self.B = [self.G[ell - 1][:, :, : sizes[ell + 1]] for ell in range(1, N)]
        self.B_PI = [self.G[ell - 1][:, :, sizes[ell + 1]:] for ell in range(1, N)]

    def _coefficients(self) -> None:
        """u_eff = a ⊙ (basal or dendritic potential) + b ⊙ (apical drive, target or nudging potential), the Euler
        rates k = dt/τ, with and without a target at the output, and the dendritic prediction's attenuation."""
        g, lay, dt = self.model.conductances, self.layout, self.dt
        N, U = lay.n_layers, lay.n_units
        tau_hid = 1.0 / (g.g_l + g.g_bas + g.g_api)
        tau_int = 1.0 / (g.g_l + g.g_den + g.g_nI)
        tau_out_tgt = 1.0 / (g.g_l + g.g_bas + g.g_ntgt)
        tau_out_free = 1.0 / (g.g_l + g.g_bas)
        a, b, tau, att = (np.zeros(U) for _ in range(4))
        for ell in range(1, N):
            s = lay.pyr[ell - 1]
            a[s], b[s], tau[s], att[s] = tau_hid * g.g_bas, tau_hid * g.g_api, tau_hid, g.g_bas * tau_hid
            s = lay.inter[ell - 1]
            a[s], b[s], tau[s] = tau_int * g.g_den, tau_int * g.g_nI, tau_int
            att[s] = g.g_den / (g.g_l + g.g_den)
        out = self.out = lay.pyr[N - 1]
        self._out_int = lay.inter[N - 2]
        att[out], tau[out] = g.g_bas * tau_out_free, tau_out_free
        self.a_tgt, self.b_tgt, self.k_nudged = a.copy(), b.copy(), dt / tau
        self.a_tgt[out], self.b_tgt[out] = tau_out_tgt * g.g_bas, tau_out_tgt * g.g_ntgt
        self.k_nudged[out] = dt / tau_out_tgt
        self.a_free, self.b_free, self.k_free = a.copy(), b.copy(), dt / tau
        self.a_free[out], self.b_free[out], self.k_free[out] = tau_out_free * g.g_bas, 0.0, dt / tau_out_free
        self.att = att  # v̂ = att ⊙ (basal or interneuron dendrite): the somatic potential predicted by the dendrite
        self.tau = tau
        self.a_int = a[lay.int_idx]
        self.b_int = b[lay.int_idx]

    def _learning(self) -> None:
        """Per-unit learning rates (dt included) of the forward blocks, the apical blocks' Hebbian channels,
        the multiplicative decays and the rules' hooks, from the projections' rules."""
        lay, dt, model = self.layout, self.dt, self.model
        U = lay.n_units
        lr_f = np.zeros(U)
        for p in model.of_kind("W"):
            lr_f[lay.pyr[p.layer - 1]] = _dendritic(p).eta * dt
        for p in model.of_kind("W_IP"):
            lr_f[lay.inter[p.layer - 1]] = _dendritic(p).eta * dt
        self.lr_f = lr_f
        self.learn_F = bool(np.any(lr_f != 0))
        self.learn_W = bool(np.any(lr_f[lay.pyr_idx] != 0))
        self._channels = _channels(model, lay, dt)
        self.learn_G = any(bool(np.any(c.lr != 0)) for c in self._channels)
        self.learn_B = any(c.pre == "high_pass" and bool(np.any(c.lr != 0)) for c in self._channels)
        self._decay_F, self._decay_F_rate = _decays(self.F, model, ("W", "W_IP"), lay, dt)
        # where each W_ℓ's entries start in the flat forward buffer (block ℓ−1 holds W_ℓ's rows first)
        self._W_offset = {f"W{ell}": sum(f[0].size for f in self.F[: ell - 1]) for ell in range(1, lay.n_layers + 1)}
        self._decay_G, self._decay_G_rate = _decays(self.G, model, ("B", "B_PI"), lay, dt)
        self._lr_base = lr_f.copy()
        self.lr_factor = 1.0
        forward = model.of_kind("W")
        self.tau_lo = max(_dendritic(p).low_pass for p in forward)
        self.k_lo = dt / self.tau_lo if self.tau_lo > 0 else 0.0
        self.W_lo = [np.zeros_like(w) for w in self.W] if (self.k_lo and self.learn_W) else None
        self._after_forward = [p for p in model
                               if p.learns and type(p.rule).rate_after_forward is not Rule.rate_after_forward]

    def _filters(self, sim: Simulation) -> None:
        """PAL's noise, the high-pass and the synaptic (mean-field) filters."""
        model, dt = self.model, self.dt
        self.noisy = model.noise_sigma > 0
        self.xi_decay = 1.0 - dt / model.tau_xi
        self.xi_scale = model.noise_sigma * np.sqrt(dt / model.tau_xi)
        self.k_hp = dt / model.tau_hp
        self.k_syn = dt / sim.tau_syn if sim.tau_syn > 0 else 0.0
        assert self.k_syn > 0 or not sim.filter_target, "validated: filter_target needs tau_syn > 0"
        self.k_target = self.k_syn if sim.filter_target else 0.0

    def _allocate(self) -> None:
        S, U, n_in = self.n_seeds, self.layout.n_units, self.n_in
        self.u = np.zeros((S, U), self.dtype)
        self.ueff = np.zeros((S, U), self.dtype)
        self.d1 = np.zeros((S, U), self.dtype)  # basal (pyramidal) or dendritic (interneuron) potential
        # apical potential (hidden), target (output), nudging potential (interneuron)
        self.d2 = np.zeros((S, U), self.dtype)
        self.xi = np.zeros((S, U), self.dtype)
        self.r = np.zeros((S, U), self.dtype)  # this step's rates φ(ŭ) of all units (the postsynaptic factor)
        self.pre = np.zeros((S, n_in + U), self.dtype)  # the rates the dendrites read this step (r, r̄ with τ_syn)
        self.pre_old = np.zeros((S, n_in + U), self.dtype)
        self.r_hp = np.zeros((S, U), self.dtype)
        self.target: Array | None = None  # the presented target u_tgt (the nudging potential is d2[:, out])
        self._x = self.inputs = np.zeros((S, n_in), self.dtype)
        self._tmp = np.zeros((S, U), self.dtype)
        self._tmp2 = np.zeros((S, U), self.dtype)
        self._err = np.zeros((S, U), self.dtype)
        n_ch = max(1, len(self._channels))
        self._post2 = np.zeros((S, U, n_ch), self.dtype)
        self._pre2 = np.zeros((S, n_ch, U), self.dtype)
        pyr_mask = np.zeros(U)
        pyr_mask[self.layout.pyr_idx] = 1.0
        self._masks = {"B": pyr_mask, "B_PI": 1.0 - pyr_mask}
        self._set_coefficients(None)
        self._pre_F = [slice(0, n_in)] + [_shift(s, n_in) for s in self.layout.pyr[:-1]]
        self._pre_G = [_shift(self.layout.block[ell], n_in) for ell in range(1, self.layout.n_layers)]

    @property
    def F_flat(self) -> Array:
        """Every forward and interneuron weight, (S, n): the packed [W_{ℓ+1}; W^IP_ℓ] buffer."""
        return self._F_all

    @property
    def G_flat(self) -> Array:
        """Every apical weight, (S, n): the packed [B_ℓ, B^PI_ℓ] buffer."""
        return self._G_all

    # -- what the rules' hooks use -------------------------------------------------------------------------------
    def forward_increment(self, layer: int) -> Array:
        """ΔW_ℓ applied in this step (after the low-pass, if any), (S, n_ℓ, n_{ℓ−1}). The numpy step stores it; the
        compiled step applies it without storing it and runs no rule that reads it (:mod:`neurofa.rate.fused`)."""
        if self.W_lo is not None:
            return self.W_lo[layer - 1]
        return self._dF[layer - 1][:, : self.layout.sizes[layer], :]

    def decay_factor(self, projection: str) -> float:
        """The factor 1 − η λ dt f(t) that multiplies the weights of ``projection`` (a W_ℓ name) this step."""
        if self._decay_F is None:
            return 1.0
        return float(self._decay_F[self._W_offset[projection]])

    def set_learning_rate_factor(self, f: float) -> None:
        """Multiply every plastic rate (η_fw, η_IP, η_PI, η_bw and the decays η α, η λ) by ``f`` from now on.

        The factor is the annealing schedule :func:`neurofa.circuit.learning_rate_factor`, one scalar for the
        whole batch; it applies to the unannealed rates of the configuration, so calls do not compound.
        """
        f = float(f)
        if f == self.lr_factor:
            return
        self.lr_factor = f
        np.multiply(self._lr_base, f, out=self.lr_f)
        if self.learn_G:
            for c in self._channels:
                np.multiply(c.base, f, out=c.lr)
        for decay, rate in ((self._decay_F, self._decay_F_rate), (self._decay_G, self._decay_G_rate)):
            if decay is not None and rate is not None:
                np.multiply(rate, -f, out=decay)
                decay += 1.0

    # -- the step ------------------------------------------------------------------------------------------------
    def _set_coefficients(self, target: Array | None) -> None:
        if target is None:
            self._a, self._b, self._k = self.a_free, self.b_free, self.k_free
        else:
            self._a, self._b, self._k = self.a_tgt, self.b_tgt, self.k_nudged

    def reset_state(self) -> None:
        """Voltages to the free fixed point of the current input (zeros before any input): all zero here."""
        for arr in (self.u, self.ueff, self.d1, self.d2, self.xi, self.r, self.r_hp):
            arr[...] = 0.0
        self.pre[...] = 0.0
        self.pre_old[...] = 0.0

    def present(self, x: Array, target: Array | None) -> None:
        """Set the input rates (S, n_0) and the output target voltages (S, n_N), or ``None`` for a free output."""
        n_in = self.n_in
        if self.k_syn == 0.0:
            self.pre[:, :n_in] = x
        self._x = self.inputs = np.asarray(x, dtype=self.dtype)
        if (target is None) != (self.target is None):
            self._set_coefficients(target)
        self.target = target
        if target is None:
            self.d2[:, self.out] = 0.0
        elif self.k_target == 0.0:
            self.d2[:, self.out] = target

    def step(self, noise: Array | None = None) -> None:
        """Advance the batch by one Euler step in the order of ``simulation.scheme``."""
        self.scheme(self, noise)

    def advance(self, noise: NoiseSource | None, n_steps: int) -> int:
        """Advance the batch by up to ``n_steps`` steps with PAL's noise from ``noise`` (or none) and return how many
        it took: fewer where the source's drawn block of samples ends. The compiled kernel draws the samples itself
        once the block is used up (the same numbers, :func:`neurofa.rate.fused.fused_lagged_steps`)."""
        if self._steps is not None and noise is not None and noise.drained:
            fused.fused_lagged_steps(self, None, n_steps, source=noise)
            return n_steps
        block = noise.block(n_steps) if noise is not None else None
        n = n_steps if block is None else block.shape[0]
        self.steps(block, n)
        return n

    def steps(self, noise: Array | None, n_steps: int) -> None:
        """Advance the batch by ``n_steps`` Euler steps with the noise samples ``noise[k]`` (seeds × units) of step
        k, or none: the same as ``n_steps`` calls of :meth:`step`; the compiled kernel takes them in one call."""
        if self._steps is not None:
            self._steps(self, noise, n_steps)
            return
        for k in range(n_steps):
            self.scheme(self, None if noise is None else noise[k])

    def rates(self, v: Array, out: Array) -> Array:
        """φ(v) into ``out`` (identity on linear output cells and the interneurons that mirror them)."""
        self.phi(v, out)
        if self.output_linear:
            out[:, self.out] = v[:, self.out]
            out[:, self._out_int] = v[:, self._out_int]
        return out

    def dendrites(self) -> None:
        """d1 = [W; W^IP] · pre (basal and interneuron dendrites), d2[hidden] = [B, B^PI] · pre (apical)."""
        pre, d1, d2 = self.pre, self.d1, self.d2
        lay = self.layout
        for F, s_in, blk in zip(self.F, self._pre_F, lay.block):
            np.matmul(F, pre[:, s_in, None], out=d1[:, blk, None])
        for G, s_in, hid in zip(self.G, self._pre_G, lay.pyr):
            np.matmul(G, pre[:, s_in, None], out=d2[:, hid, None])

    def drive(self) -> None:
        """u_eff = a ⊙ d1 + b ⊙ (d2 + ξ) with the noise sample of the previous step."""
        tmp = self._tmp
        np.add(self.d2, self.xi, out=tmp)
        tmp *= self._b
        np.multiply(self.d1, self._a, out=self.ueff)
        self.ueff += tmp

    def advance_noise(self, noise: Array | None) -> None:
        """ξ_k = ξ_{k−1} (1 − dt/τ_ξ) + σ √(dt/τ_ξ) N(0, 1)."""
        if self.noisy and noise is not None:
            self.xi *= self.xi_decay
            self.xi += noise

    def euler(self) -> None:
        """u ← u + (dt/τ)(u_eff − u)."""
        tmp = self._tmp
        np.subtract(self.ueff, self.u, out=tmp)
        tmp *= self._k
        self.u += tmp

    def update_pre(self) -> None:
        """pre_old ← pre; pre ← r (τ_syn = 0) or pre + (dt/τ_syn)(r − pre), for units and inputs."""
        self.pre, self.pre_old = self.pre_old, self.pre
        n_in = self.n_in
        if self.k_syn == 0.0:
            self.pre[:, :n_in] = self.pre_old[:, :n_in]
            self.pre[:, n_in:] = self.r
        else:
            pre, old, k = self.pre, self.pre_old, self.k_syn
            np.subtract(self._x, old[:, :n_in], out=pre[:, :n_in])
            np.subtract(self.r, old[:, n_in:], out=pre[:, n_in:])
            pre *= k
            pre += old

    def filter_target_and_high_pass(self) -> None:
        """ū_tgt ← ū_tgt + (dt/τ_syn)(u_tgt − ū_tgt) with the traces, and r^HP ← r^HP (1 − dt/τ_HP) + Δr̄."""
        if self.k_target and self.target is not None:  # d2[:, out] is a view
            d2_out = self.d2[:, self.out]
            d2_out += self.k_target * (self.target - d2_out)
        if self.learn_B:
            rhp = self.r_hp
            n_in = self.n_in
            np.subtract(self.pre[:, n_in:], self.pre_old[:, n_in:], out=self._tmp2)
            rhp *= 1.0 - self.k_hp
            rhp += self._tmp2

    def plasticity(self) -> None:
        """All weight updates of this step, presynaptic factor = the rates the dendrites read (``self.pre``)."""
        if self.learn_F:
            self._forward_plasticity()
        if self.learn_G:
            self._apical_plasticity()

    def _forward_plasticity(self) -> None:
        pre, err = self.pre, self._err
        np.multiply(self.d1, self.att, out=err)
        self.rates(err, self._tmp2)  # φ(v̂)
        np.subtract(self.r, self._tmp2, out=err)
        err *= self.lr_f
        for s_in, blk, dF in zip(self._pre_F, self.layout.block, self._dF):
            np.multiply(err[:, blk, None], pre[:, None, s_in], out=dF)
        if self._decay_F is not None:
            self._F_all *= self._decay_F
        if self.W_lo is not None:
            for F, dF, lo in zip(self.F, self._dF, self.W_lo):
                n = lo.shape[1]
                lo += self.k_lo * (dF[:, :n] - lo)
                F[:, :n] += lo
                F[:, n:] += dF[:, n:]
        else:
            self._F_all += self._dF_all
        if self.learn_W:
            for projection in self._after_forward:
                projection.rule.rate_after_forward(self, projection)

    def _apical_plasticity(self) -> None:
        post2, pre2 = self._post2, self._pre2
        signals = {"noise": self.xi, "apical": self.d2, "high_pass": self.r_hp, "rate": self.pre[:, self.n_in:]}
        for c, channel in enumerate(self._channels):
            np.multiply(signals[channel.post], channel.lr, out=post2[:, :, c])
            np.multiply(signals[channel.pre], self._masks[channel.kind], out=pre2[:, c, :])
        lay = self.layout
        for ell, dG in enumerate(self._dG):
            np.matmul(post2[:, lay.pyr[ell], :], pre2[:, :, lay.block[ell + 1]], out=dG)
        if self._decay_G is not None:
            self._G_all *= self._decay_G
        self._G_all += self._dG_all

    # -- read-out ------------------------------------------------------------------------------------------------
    def forward_gradient(self) -> list[Array]:
        """The Urbanczik–Senn factor [φ(ŭ_ℓ) − φ(v̂_bas,ℓ)] r_{ℓ−1}ᵀ of every W_ℓ in the current step (no η, no dt).

        Uses the quantities of the last :meth:`step` (``self.r``, ``self.d1``, ``self.pre``).
        """
        err = self.r - self.rates(self.d1 * self.att, np.empty_like(self.r))
        out = []
        for ell in range(self.layout.n_layers):
            s = self.layout.pyr[ell]
            out.append(err[:, s, None] * self.pre[:, None, self._pre_F[ell]])
        return out

    # -- checkpoints -----------------------------------------------------------------------------------------------
    #: the arrays that change while the batch runs: packed weights and their increments, voltages, dendritic
    #: potentials, PAL's noise, rates and traces, and the scratch buffers (so a resumed step is bitwise the step
    #: it continues); ``tests/test_checkpoint.py`` fails if an array changes that is not listed here
    STATE = ("_F_all", "_dF_all", "_G_all", "_dG_all", "u", "ueff", "d1", "d2", "xi", "r", "pre", "pre_old", "r_hp",
             "_tmp", "_tmp2", "_err", "_post2", "_pre2")

    def state(self) -> dict[str, Array]:
        """Copies of everything that changes while the batch runs: :data:`STATE`, the low-passed increments
        ``W_lo`` and the learning-rate factor. The presented input and target are not included: present them
        again, then :meth:`restore`."""
        out = {name: getattr(self, name).copy() for name in self.STATE}
        for i, w in enumerate(self.W_lo or []):
            out[f"W_lo{i}"] = w.copy()
        out["lr_factor"] = np.asarray(self.lr_factor)
        return out

    def restore(self, state: dict[str, Array]) -> None:
        """Continue from :meth:`state` (in place: the weight views W, B, … stay views of the packed buffers)."""
        self.set_learning_rate_factor(float(state["lr_factor"]))
        for name in self.STATE:
            np.copyto(getattr(self, name), state[name])
        for i, w in enumerate(self.W_lo or []):
            np.copyto(w, state[f"W_lo{i}"])

    def apical(self) -> list[Array]:
        """v_api,ℓ (without the noise) of the last step, per hidden layer, shape (S, n_ℓ)."""
        return [self.d2[:, s] for s in self.layout.pyr[:-1]]

    def prospective_voltage(self) -> Array:
        """ŭ of all units as used for this step's rates."""
        return self.ueff if self.prospective else self.u


def _dendritic(projection: Projection) -> UrbanczikSenn:
    """The dendritic prediction rule of a W or W^IP projection (the only rule the forward blocks interpret)."""
    rule = projection.rule
    assert isinstance(rule, UrbanczikSenn), f"{projection.name}: the rate kernel interprets urbanczik rules only"
    return rule


def _channels(model: Model, lay: Layout, dt: float) -> list[_Channel]:
    """The Hebbian terms of the apical projections, one channel per (post, pre, kind) in order of appearance."""
    channels: dict[tuple[str, str, str], _Channel] = {}
    for p in model:
        term = p.rule.hebbian()
        if term is None:
            continue
        key = (term.post, term.pre, p.kind)
        if key not in channels:
            base = np.zeros(lay.n_units)
            channels[key] = _Channel(term.post, term.pre, p.kind, base, base.copy())
        channels[key].base[lay.pyr[p.layer - 1]] = term.eta * dt
        channels[key].lr[...] = channels[key].base
    return list(channels.values())


def _decays(blocks: list[Array], model: Model, kinds: tuple[str, str], lay: Layout,
            dt: float) -> tuple[Array | None, Array | None]:
    """The flat factor 1 − η α dt of the packed blocks ([first kind; second kind] per layer) and its complement,
    or (None, None) when no projection of these kinds decays."""
    first, second = kinds
    if not any(p.rule.decay_rate() > 0 for p in model if p.kind in kinds):
        return None, None
    flat = []
    for index, block in enumerate(blocks):
        d = np.ones(block.shape[1:])
        if first == "W":  # block ℓ holds rows [W_{ℓ+1}; W^IP_ℓ]
            w = model.projection(f"W{index + 1}")
            d[: w.shape[0], :] = 1.0 - w.rule.decay_rate() * dt
            if index:
                d[w.shape[0]:, :] = 1.0 - model.projection(f"WIP{index}").rule.decay_rate() * dt
        else:  # block ℓ holds columns [B_ℓ, B^PI_ℓ]
            b = model.projection(f"B{index + 1}")
            d[:, : b.shape[1]] = 1.0 - b.rule.decay_rate() * dt
            d[:, b.shape[1]:] = 1.0 - model.projection(f"BPI{index + 1}").rule.decay_rate() * dt
        flat.append(d.ravel())
    decay = np.concatenate(flat)
    return decay, 1.0 - decay


def _packed(mats: list[Array], dtype: np.dtype) -> tuple[Array, list[Array]]:
    """One (S, total) buffer of ``dtype`` holding the batched matrices ``mats`` (S, m, n) back to back, and views
    of it."""
    S = mats[0].shape[0]
    sizes = [m[0].size for m in mats]
    buf = np.empty((S, sum(sizes)), dtype=dtype)
    views, k = [], 0
    for m, n in zip(mats, sizes):
        v = buf[:, k:k + n].reshape(m.shape)
        assert np.shares_memory(v, buf)
        v[...] = m
        views.append(v)
        k += n
    return buf, views


def _shift(s: slice, k: int) -> slice:
    return slice(s.start + k, s.stop + k)


class NoiseSource:
    """PAL's apical noise increments σ √(dt/τ_ξ) N(0, 1) for a batch, drawn in chunks from each seed's own stream.

    Seed s draws from :func:`neurofa.circuit.stream` (s, STREAM_NOISE) blocks of (chunk, n_hidden) normals in order,
    so a seed's noise sequence does not depend on which other seeds share its batch. With ``refine`` = m > 1 each
    increment is the sum of m increments drawn on the finer grid dt/m, i.e. the same Wiener path as a run with time
    step dt/m and ``refine`` = 1 (used to test convergence in dt with common noise).
    """

    def __init__(self, net: Microcircuit, seeds: list[int], refine: int = 1, max_elements: int = 2_000_000):
        lay = net.layout
        self.hid_idx = lay.hid_idx
        self.rngs = [stream(s, STREAM_NOISE) for s in seeds]
        self.refine = int(refine)
        self.scale = net.xi_scale / np.sqrt(self.refine)
        self.chunk = int(max(1, min(1000, max_elements // max(1, len(seeds) * lay.n_units))))
        self.buffer = np.zeros((self.chunk, len(seeds), lay.n_units), net.dtype)
        self.k = self.chunk

    def state(self) -> dict[str, Array]:
        """The generators' states (JSON), the drawn block and the position in it."""
        states = [rng.bit_generator.state for rng in self.rngs]
        return {"noise_rngs": np.asarray(json.dumps(states)), "noise_buffer": self.buffer.copy(),
                "noise_k": np.asarray(self.k)}

    def restore(self, state: dict[str, Array]) -> None:
        """Continue the noise sequence from :meth:`state`."""
        for rng, saved in zip(self.rngs, json.loads(str(state["noise_rngs"]))):
            rng.bit_generator.state = saved
        np.copyto(self.buffer, state["noise_buffer"])
        self.k = int(state["noise_k"])

    @property
    def drained(self) -> bool:
        """No drawn sample is left in the block: the next sample is the generators' next draw."""
        return self.k == self.chunk

    def next(self) -> Array:
        """The noise sample of the next step (seeds × units)."""
        return self.block(1)[0]

    def block(self, n_steps: int) -> Array:
        """The samples of the next steps, at most ``n_steps`` and at least one (fewer where the drawn block ends):
        (steps, seeds, units), a view of the block."""
        if self.k == self.chunk:
            for s, rng in enumerate(self.rngs):
                if not fused.fill_noise(rng, self.buffer, s, self.hid_idx, self.scale, self.refine):
                    self._fill(rng, s)
            self.k = 0
        out = self.buffer[self.k:self.k + max(1, n_steps)]
        self.k += out.shape[0]
        return out

    def _fill(self, rng: np.random.Generator, s: int) -> None:
        """Seed ``s``'s next block with numpy (the reference of :func:`neurofa.rate.fused.fill_noise`, which draws
        the same numbers about 3× faster where numba is installed)."""
        n_hid, m = self.hid_idx.size, self.refine
        z = rng.standard_normal((self.chunk * m, n_hid))
        if m > 1:
            z = z.reshape(self.chunk, m, n_hid).sum(axis=1)
        self.buffer[:, s, self.hid_idx] = self.scale * z

