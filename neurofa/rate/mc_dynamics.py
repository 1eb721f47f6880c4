r"""Batched Euler dynamics of the dendritic cortical microcircuit (SCIENCE.md §2; Sacramento2018, Max2024).

One :class:`Microcircuit` holds the state of S seeds (leading batch axis) and advances all of them by one Euler
step of size dt per call of :meth:`Microcircuit.step`. The equations (voltages dimensionless, times in ms):

- dendrites: v_bas,ℓ = W_ℓ r_{ℓ−1}; v_api,ℓ = B_ℓ r_{ℓ+1} + B^{PI}_ℓ r^I_ℓ; v_den,ℓ = W^{IP}_ℓ r_ℓ;
- somata: τ u̇ = u_eff − u with u_eff = τ [g_bas v_bas + g_api (v_api + ξ)] (hidden pyramidal cells),
  τ_N [g_bas v_bas + g_ntgt u_tgt] (output, with target; g_bas v_bas/(g_l + g_bas) without), and
  τ_I [g_den v_den + g_nI ŭ^P_{ℓ+1}] (interneurons, nudged one-to-one by the next layer's pyramidal cells);
- rates r = φ(ŭ) with the prospective voltage ŭ = u + τ u̇ (Haider2021), or φ(u) with ``prospective=False``;
- plasticity, all at once (no phases), increments per step = dt × rate × f(t), with f the annealing factor of
  :func:`neurofa.circuit.learning_rate_factor` (1 without ``plasticity.eta_decay``):
  Ẇ_ℓ = η_ℓ [φ(ŭ_ℓ) − φ(v̂_bas,ℓ)] r_{ℓ−1}ᵀ (Urbanczik2014; optionally low-passed with τ_LO, Max2024),
  Ẇ^{IP}_ℓ = η_IP [φ(ŭ^I_ℓ) − φ(v̂_den,ℓ)] r_ℓᵀ, Ḃ^{PI}_ℓ = −η_PI v_api,ℓ r^I_ℓᵀ, and the backprojections B_ℓ by
  mode: ``bp`` B_ℓ = W_{ℓ+1}ᵀ and B^{PI}_ℓ = −B_ℓ every step; ``fa`` fixed; ``pal`` Ḃ_ℓ = η_bw [ξ_ℓ r^HP_{ℓ+1}ᵀ − α B_ℓ]
  with ξ an Ornstein–Uhlenbeck process in the apical compartment and r^HP a high-pass of the presynaptic rates.

Step order (``scheme='lagged'``, the authors' discretisation, SCIENCE.md §2): (1) r̆_k = φ(ŭ_k) with ŭ_k the previous
step's u_eff; (2) dendrites from r̆_k, apical drive v_api + ξ_{k−1}; (3) ξ_k drawn; (4) somatic Euler step;
(5) plasticity from this step's quantities, B from ξ_k and r^HP of the previous step; (6) r^HP update.
``scheme='instant'``: the dendrites read the rates stored by the previous step, u_eff follows from them, and this
step's rates are φ(u_eff) of the same step (no extra one-step lag) — the Poisson rate of the spiking backend.
The pyramidal feed-forward chain r → v → u_eff → r is the same in both; they differ in the postsynaptic factor of
plasticity (this step's φ(u_eff) against the previous step's), in the interneuron nudging (this step's ŭ^P against
the previous step's) and in when the presented input reaches the first dendrites. Consequence for learning: in the
lagged scheme the first step after an input switch pairs the previous input's rate φ(ŭ_k) with the new basal
prediction, a spurious forward update of the size of the input change; with few steps per input it outweighs the
error signal (measured: the 3×3 bars task at 100 steps per input is learned to 100 % within 10 epochs with
``instant``, not within 40 with ``lagged``), so models with forward learning use ``instant``; PAL Fig 3 (forward
weights fixed) keeps the authors' ``lagged``.

Mean field of the spiking model (``tau_syn > 0``): presynaptic rates are low-passed, r̄ ← r̄ + (dt/τ_syn)(r − r̄),
before they enter dendrites and plasticity (presynaptic factors, and r^HP = high-pass of r̄); the input rates too.
In both schemes the presynaptic factor of every plasticity rule is the rate the dendrites read in that step.
With ``filter_target`` the output's nudging potential passes the same filter, ū_tgt ← ū_tgt + (dt/τ_syn)(u_tgt −
ū_tgt), updated with the input traces: a teacher whose signal reaches the output through synapses, so that after an
input switch target and input traces change together instead of pairing the new target with the old input's traces.

Implementation: to keep the number of numpy calls per step independent of depth, units are packed layer-wise into
one vector per batch element, in blocks that share presynaptic partners:
``[P_1 | P_2 I_1 | P_3 I_2 | … | P_N I_{N−1}]`` (P_ℓ pyramidal cells of layer ℓ, I_ℓ interneurons of layer ℓ, which
are as many as P_{ℓ+1}). Then [W_{ℓ+1}; W^{IP}_ℓ] (both read r_ℓ) is one matrix writing block ℓ+1, and
[B_ℓ, B^{PI}_ℓ] (reading r_{ℓ+1} and r^I_ℓ) is one matrix reading block ℓ+1. ``W``, ``W_IP``, ``B`` and ``B_PI`` are
views into these stacked matrices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neurofa.activations import activation
from neurofa.circuit import STREAM_NOISE, InitialWeights, stream
from neurofa.config import Config, ConfigError, layer_values

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

    def unit_layer(self, idx: Array) -> Array:
        """Layer index ℓ of the units ``idx`` (pyramidal: their layer; interneurons: the layer they belong to)."""
        out = np.empty(len(idx), dtype=int)
        for i, u in enumerate(idx):
            for ell, s in enumerate(self.pyr, start=1):
                if s.start <= u < s.stop:
                    out[i] = ell
            for ell, s in enumerate(self.inter, start=1):
                if s.start <= u < s.stop:
                    out[i] = ell
        return out


class Microcircuit:
    """State, weights and one Euler step of a batch of microcircuits (SCIENCE.md §2).

    ``weights`` are the initial weights of the batch (:func:`neurofa.circuit.initial_weights`), copied. Call
    :meth:`present` to set the input rates (S, n_0) and the output target (S, n_N) or ``None``, then :meth:`step`
    with this step's PAL noise increment σ √(dt/τ_ξ) N(0, 1), shape (S, n_units) and zero outside hidden pyramidal
    cells (or ``None`` without noise); :class:`NoiseSource` draws it.
    """

    def __init__(self, cfg: Config, weights: InitialWeights):
        self.cfg = cfg
        lay = self.layout = Layout.of(cfg.network.layers)
        sizes, N, U = lay.sizes, lay.n_layers, lay.n_units
        S = weights.W[0].shape[0]
        self.n_seeds = S
        g = cfg.conductances
        p = cfg.plasticity
        sim = cfg.simulation
        dt = self.dt = sim.dt
        self.mode = p.feedback
        self.prospective = sim.prospective
        self.instant = sim.scheme == "instant"
        self.output_linear = cfg.network.output_linear
        self.phi = _transfer(cfg.network.activation)
        self.phi_prime = activation(cfg.network.activation)[1]

        # -- weights: stacked [W_{ℓ+1}; W^{IP}_ℓ] and [B_ℓ, B^{PI}_ℓ], views into one flat buffer each -----------
        F_init = [np.asarray(weights.W[0], dtype=float)]
        F_init += [np.concatenate([weights.W[ell], weights.W_IP[ell - 1]], axis=1) for ell in range(1, N)]
        G_init = [np.concatenate([weights.B[ell - 1], weights.B_PI[ell - 1]], axis=2) for ell in range(1, N)]
        self._F_all, self.F = _packed(F_init)
        self._dF_all, self._dF = _packed([np.zeros_like(f) for f in F_init])
        self._G_all, self.G = _packed(G_init)
        self._dG_all, self._dG = _packed([np.zeros_like(gm) for gm in G_init])
        self.W = [self.F[0]] + [self.F[ell][:, : sizes[ell + 1], :] for ell in range(1, N)]
        self.W_IP = [self.F[ell][:, sizes[ell + 1]:, :] for ell in range(1, N)]
        self.B = [self.G[ell - 1][:, :, : sizes[ell + 1]] for ell in range(1, N)]
        self.B_PI = [self.G[ell - 1][:, :, sizes[ell + 1]:] for ell in range(1, N)]

        # -- per-unit coefficients -------------------------------------------------------------------------------
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
        self.a_tgt, self.b_tgt, self.k_tgt = a.copy(), b.copy(), dt / tau
        self.a_tgt[out], self.b_tgt[out] = tau_out_tgt * g.g_bas, tau_out_tgt * g.g_ntgt
        self.k_tgt[out] = dt / tau_out_tgt
        self.a_free, self.b_free, self.k_free = a.copy(), b.copy(), dt / tau
        self.a_free[out], self.b_free[out], self.k_free[out] = tau_out_free * g.g_bas, 0.0, dt / tau_out_free
        self.att = att  # v̂ = att ⊙ (basal or interneuron dendrite): the somatic potential predicted by the dendrite
        self.tau = tau
        self.a_int = a[lay.int_idx]
        self.b_int = b[lay.int_idx]

        # -- learning rates per unit (dt included) and switches --------------------------------------------------
        eta_fw = layer_values(p.eta_fw, N)
        eta_ip = layer_values(p.eta_ip, N - 1)
        eta_pi = layer_values(p.eta_pi, N - 1)
        eta_bw = layer_values(p.eta_bw, N - 1)
        lr_f = np.zeros(U)
        for ell in range(1, N + 1):
            frozen = p.freeze_hidden and ell < N
            lr_f[lay.pyr[ell - 1]] = 0.0 if (frozen or not p.learn_forward) else eta_fw[ell - 1] * dt
        for ell in range(1, N):
            lr_f[lay.inter[ell - 1]] = eta_ip[ell - 1] * dt if p.learn_lateral else 0.0
        self.lr_f = lr_f
        self.learn_F = bool(np.any(lr_f != 0))
        self.learn_W = bool(np.any(lr_f[lay.pyr_idx] != 0))
        lr_pi, lr_bw = np.zeros(U), np.zeros(U)  # lr_pi carries the minus sign of −η_PI v_api
        for ell in range(1, N):
            s = lay.pyr[ell - 1]
            lr_pi[s] = -eta_pi[ell - 1] * dt if (p.learn_lateral and self.mode != "bp") else 0.0
            lr_bw[s] = eta_bw[ell - 1] * dt if (p.learn_feedback and self.mode == "pal") else 0.0
        self.lr_pi, self.lr_bw = lr_pi, lr_bw
        self.learn_G = bool(np.any(lr_pi != 0) or np.any(lr_bw != 0))
        self.learn_B = bool(np.any(lr_bw != 0))
        decay = []  # multiplies the flat G buffer: 1 − η_bw α dt on B entries, 1 on B^{PI} entries
        for ell in range(1, N):
            d = np.ones((sizes[ell], 2 * sizes[ell + 1]))
            d[:, : sizes[ell + 1]] = 1.0 - eta_bw[ell - 1] * p.alpha * dt
            decay.append(d.ravel())
        self._decay_G = np.concatenate(decay) if self.learn_B and p.alpha > 0 else None
        # unannealed copies: set_learning_rate_factor(f) rescales the working rates from these
        self._lr_base = (lr_f.copy(), lr_pi.copy(), lr_bw.copy())
        self._decay_rate = None if self._decay_G is None else 1.0 - self._decay_G  # η_bw α dt on B entries, 0 else
        self.lr_factor = 1.0
        self.tau_lo = p.tau_lo
        self.k_lo = dt / p.tau_lo if p.tau_lo > 0 else 0.0
        self.W_lo = [np.zeros_like(w) for w in self.W] if (self.k_lo and self.learn_W) else None
        self.noisy = self.mode == "pal" and p.sigma > 0
        self.xi_decay = 1.0 - dt / p.tau_xi
        self.xi_scale = p.sigma * np.sqrt(dt / p.tau_xi)
        self.k_hp = dt / p.tau_hp
        self.k_syn = dt / sim.tau_syn if sim.tau_syn > 0 else 0.0
        if sim.filter_target and self.k_syn == 0.0:
            raise ConfigError(
                "simulation.filter_target = True needs simulation.tau_syn > 0 in the rate backend (the target is "
                f"low-passed with τ_syn); got tau_syn = {sim.tau_syn!r}"
            )
        self.k_tgt = self.k_syn if sim.filter_target else 0.0

        # -- state ---------------------------------------------------------------------------------------------
        n_in = sizes[0]
        self.n_in = n_in
        self.u = np.zeros((S, U))
        self.ueff = np.zeros((S, U))
        self.d1 = np.zeros((S, U))  # basal (pyramidal) or dendritic (interneuron) potential
        self.d2 = np.zeros((S, U))  # apical potential (hidden), target (output), nudging potential (interneuron)
        self.xi = np.zeros((S, U))
        self.r = np.zeros((S, U))  # this step's rates φ(ŭ) of all units (the postsynaptic factor)
        self.pre = np.zeros((S, n_in + U))  # the rates the dendrites read this step (r, or r̄ with τ_syn)
        self.pre_old = np.zeros((S, n_in + U))
        self.r_hp = np.zeros((S, U))
        self.target: Array | None = None  # the presented target u_tgt (the nudging potential is d2[:, out])
        self._x = self.inputs = np.zeros((S, n_in))
        self._tmp = np.zeros((S, U))
        self._tmp2 = np.zeros((S, U))
        self._err = np.zeros((S, U))
        self._post2 = np.zeros((S, U, 2))
        self._pre2 = np.zeros((S, 2, U))
        pyr_mask = np.zeros(U)
        pyr_mask[lay.pyr_idx] = 1.0
        self._pyr_mask, self._int_mask = pyr_mask, 1.0 - pyr_mask
        self._set_coefficients(None)
        self._build_views()
        if self.mode == "bp":
            self.enforce_bp()
        self.reset_state()

    def set_learning_rate_factor(self, f: float) -> None:
        """Multiply every plastic rate (η_fw, η_IP, η_PI, η_bw and PAL's decay η_bw α) by ``f`` from now on.

        The factor is the annealing schedule :func:`neurofa.circuit.learning_rate_factor`, one scalar for the
        whole batch; it applies to the unannealed rates of the configuration, so calls do not compound.
        """
        f = float(f)
        if f == self.lr_factor:
            return
        self.lr_factor = f
        base_f, base_pi, base_bw = self._lr_base
        np.multiply(base_f, f, out=self.lr_f)
        if self.learn_G:
            np.multiply(base_pi, f, out=self.lr_pi)
            np.multiply(base_bw, f, out=self.lr_bw)
        if self._decay_G is not None:
            np.multiply(self._decay_rate, -f, out=self._decay_G)
            self._decay_G += 1.0

    # ------------------------------------------------------------------------------------------------------------
    def _build_views(self) -> None:
        lay, n_in = self.layout, self.n_in
        # presynaptic views for F_ℓ: input rates for ℓ = 1, pyramidal rates of layer ℓ−1 otherwise
        self._pre_F = []
        for ell in range(1, lay.n_layers + 1):
            s = slice(0, n_in) if ell == 1 else _shift(lay.pyr[ell - 2], n_in)
            self._pre_F.append(s)
        self._pre_G = [_shift(lay.block[ell], n_in) for ell in range(1, lay.n_layers)]

    def _set_coefficients(self, target: Array | None) -> None:
        if target is None:
            self._a, self._b, self._k = self.a_free, self.b_free, self.k_free
        else:
            self._a, self._b, self._k = self.a_tgt, self.b_tgt, self.k_tgt

    def reset_state(self) -> None:
        """Voltages to the free fixed point of the current input (zeros before any input): all zero here."""
        for arr in (self.u, self.ueff, self.d1, self.d2, self.xi, self.r, self.r_hp):
            arr[...] = 0.0
        self.pre[...] = 0.0
        self.pre_old[...] = 0.0

    def enforce_bp(self) -> None:
        """Backprop reference: B_ℓ = W_{ℓ+1}ᵀ and B^{PI}_ℓ = −B_ℓ."""
        for ell in range(len(self.B)):
            np.copyto(self.B[ell], np.swapaxes(self.W[ell + 1], -1, -2))
            np.negative(self.B[ell], out=self.B_PI[ell])

    def present(self, x: Array, target: Array | None) -> None:
        """Set the input rates (S, n_0) and the output target voltages (S, n_N), or ``None`` for a free output."""
        n_in = self.n_in
        if self.k_syn == 0.0:
            self.pre[:, :n_in] = x
        self._x = self.inputs = np.asarray(x, dtype=float)
        if (target is None) != (self.target is None):
            self._set_coefficients(target)
        self.target = target
        if target is None:
            self.d2[:, self.out] = 0.0
        elif self.k_tgt == 0.0:
            self.d2[:, self.out] = target

    # ------------------------------------------------------------------------------------------------------------
    def _rates(self, v: Array, out: Array) -> Array:
        self.phi(v, out)
        if self.output_linear:  # linear output cells, and the interneurons that mirror them
            out[:, self.out] = v[:, self.out]
            out[:, self._out_int] = v[:, self._out_int]
        return out

    def _dendrites(self) -> None:
        pre, d1, d2 = self.pre, self.d1, self.d2
        lay = self.layout
        for F, s_in, blk in zip(self.F, self._pre_F, lay.block):
            np.matmul(F, pre[:, s_in, None], out=d1[:, blk, None])
        for G, s_in, hid in zip(self.G, self._pre_G, lay.pyr):
            np.matmul(G, pre[:, s_in, None], out=d2[:, hid, None])

    def _update_pre(self) -> None:
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

    def step(self, noise: Array | None = None) -> None:
        """Advance the batch by one Euler step (see the module docstring for the order of operations)."""
        lay = self.layout
        u, ueff, d1, d2, tmp = self.u, self.ueff, self.d1, self.d2, self._tmp
        src = ueff if self.prospective else u
        if not self.instant:
            # (1) this step's rates from the previous step's prospective voltage; dendrites read them
            self._rates(src, self.r)
            self._update_pre()
            nudge = np.take(src, lay.pair_idx, axis=1)
            d2[:, lay.int_idx] = nudge
        # (2) dendrites and somatic drive with the previous noise sample
        self._dendrites()
        np.add(d2, self.xi, out=tmp)
        tmp *= self._b
        np.multiply(d1, self._a, out=ueff)
        ueff += tmp
        if self.instant:
            nudge = np.take(ueff if self.prospective else u, lay.pair_idx, axis=1)
            d2[:, lay.int_idx] = nudge
            ueff[:, lay.int_idx] = self.a_int * d1[:, lay.int_idx] + self.b_int * nudge
        # (3) OU noise ξ_k
        if self.noisy and noise is not None:
            self.xi *= self.xi_decay
            self.xi += noise
        # (4) somatic Euler step
        np.subtract(ueff, u, out=tmp)
        tmp *= self._k
        u += tmp
        if self.instant:
            self._rates(ueff if self.prospective else u, self.r)
        # (5) plasticity, presynaptic factor = the rates the dendrites read (self.pre)
        self._plasticity()
        if self.instant:
            self._update_pre()
        if self.k_tgt and self.target is not None:  # ū_tgt, with the traces (d2[:, out] is a view)
            d2_out = d2[:, self.out]
            d2_out += self.k_tgt * (self.target - d2_out)
        # (6) high-pass of the presynaptic rates
        if self.learn_B:
            rhp = self.r_hp
            n_in = self.n_in
            np.subtract(self.pre[:, n_in:], self.pre_old[:, n_in:], out=self._tmp2)
            rhp *= 1.0 - self.k_hp
            rhp += self._tmp2

    def _plasticity(self) -> None:
        pre = self.pre
        if self.learn_F:
            err = self._err
            np.multiply(self.d1, self.att, out=err)
            self._rates(err, self._tmp2)  # φ(v̂)
            np.subtract(self.r, self._tmp2, out=err)
            err *= self.lr_f
            for s_in, blk, dF in zip(self._pre_F, self.layout.block, self._dF):
                np.multiply(err[:, blk, None], pre[:, None, s_in], out=dF)
            if self.W_lo is not None:
                for F, dF, lo in zip(self.F, self._dF, self.W_lo):
                    n = lo.shape[1]
                    lo += self.k_lo * (dF[:, :n] - lo)
                    F[:, :n] += lo
                    F[:, n:] += dF[:, n:]
            else:
                self._F_all += self._dF_all
            if self.mode == "bp" and self.learn_W:
                self.enforce_bp()
        if self.learn_G:
            post2, pre2 = self._post2, self._pre2
            np.multiply(self.xi, self.lr_bw, out=post2[:, :, 0])
            np.multiply(self.d2, self.lr_pi, out=post2[:, :, 1])
            np.multiply(self.r_hp, self._pyr_mask, out=pre2[:, 0, :])
            np.multiply(pre[:, self.n_in:], self._int_mask, out=pre2[:, 1, :])
            lay = self.layout
            for ell, dG in enumerate(self._dG):
                np.matmul(post2[:, lay.pyr[ell], :], pre2[:, :, lay.block[ell + 1]], out=dG)
            if self._decay_G is not None:
                self._G_all *= self._decay_G
            self._G_all += self._dG_all

    # ------------------------------------------------------------------------------------------------------------
    def forward_gradient(self) -> list[Array]:
        """The Urbanczik–Senn factor [φ(ŭ_ℓ) − φ(v̂_bas,ℓ)] r_{ℓ−1}ᵀ of every W_ℓ in the current step (no η, no dt).

        Uses the quantities of the last :meth:`step` (``self.r``, ``self.d1``, ``self.pre``).
        """
        err = self.r - self._rates(self.d1 * self.att, np.empty_like(self.r))
        out = []
        for ell in range(self.layout.n_layers):
            s = self.layout.pyr[ell]
            out.append(err[:, s, None] * self.pre[:, None, self._pre_F[ell]])
        return out

    def apical(self) -> list[Array]:
        """v_api,ℓ (without the noise) of the last step, per hidden layer, shape (S, n_ℓ)."""
        return [self.d2[:, s] for s in self.layout.pyr[:-1]]

    def basal_prediction(self) -> list[Array]:
        """v̂_bas,ℓ = att ⊙ v_bas,ℓ of the last step, per layer (the free output's voltage at ℓ = N)."""
        return [self.d1[:, s] * self.att[s] for s in self.layout.pyr]

    def prospective_voltage(self) -> Array:
        """ŭ of all units as used for this step's rates."""
        return self.ueff if self.prospective else self.u


def _packed(mats: list[Array]) -> tuple[Array, list[Array]]:
    """One (S, total) buffer holding the batched matrices ``mats`` (S, m, n) back to back, and views of it."""
    S = mats[0].shape[0]
    sizes = [m[0].size for m in mats]
    buf = np.empty((S, sum(sizes)))
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
        self.hid_idx = np.concatenate([np.arange(s.start, s.stop) for s in lay.pyr[:-1]])
        self.rngs = [stream(s, STREAM_NOISE) for s in seeds]
        self.refine = int(refine)
        self.scale = net.xi_scale / np.sqrt(self.refine)
        self.chunk = int(max(1, min(1000, max_elements // max(1, len(seeds) * lay.n_units))))
        self.buffer = np.zeros((self.chunk, len(seeds), lay.n_units))
        self.k = self.chunk

    def next(self) -> Array:
        if self.k == self.chunk:
            n_hid, m = self.hid_idx.size, self.refine
            for s, rng in enumerate(self.rngs):
                z = rng.standard_normal((self.chunk * m, n_hid))
                if m > 1:
                    z = z.reshape(self.chunk, m, n_hid).sum(axis=1)
                self.buffer[:, s, self.hid_idx] = self.scale * z
            self.k = 0
        out = self.buffer[self.k]
        self.k += 1
        return out
