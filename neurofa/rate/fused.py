r"""The ``lagged`` step of the rate microcircuit as one compiled kernel (numba), for small and wide networks alike.

:func:`neurofa.rate.schemes.lagged` advances a batch with about 40 numpy calls per step; at the PAL Fig 3 size
(5-20-10-20-5) each call costs more than its arithmetic, so the step costs the same for 1 seed as for 10. This
module compiles the same step (the same equations, in the same order, :mod:`neurofa.rate.schemes`) into one loop
over the seeds of the batch.

Results: the kernel computes the numpy step's expressions, compiled with fast-math (so a product and a sum may
become one fused multiply-add, and a dendritic sum may be added in another order than numpy's matmul): a step agrees
with the numpy step to rounding (the logistic is computed as 1/(1 + e^(−u)) instead of ½(1 + tanh(u/2))). Over a
run the differences stay at rounding level: measured on 2 s of Fig 3 at 10 seeds, 3e-14 of each quantity's
largest value; on 0.5 s of FA's 5-20-10-20-5, 4e-11 on the apical mismatch and the loss, which are small
differences of large terms (``tests/test_rate_fused.py``).

What it covers: the ``lagged`` scheme with logistic, ReLU or linear transfer functions and without rule hooks
(``bp``, ``kp``) or the forward low-pass τ_LO; :func:`unsupported_reason` says why a batch is not covered. The numpy
step stays the default and the reference (``simulation.rate_kernel: numpy``); ``fused`` asks for the kernel (an error
where it does not cover the model or numba is missing: ``pip install 'neurofa[fast]'``), ``auto`` takes it where
it can. :func:`fused_lagged_steps` runs a block of steps in one call (the runner's blocks end at the next
presentation, probe, record, test point or checkpoint), seed by seed, since the seeds are independent: bitwise the
same steps as one call each (``tests/test_rate_fused.py``). Measured on 10 seeds of Fig 3, whole ``simulate`` call:
about 1.7× the numpy step with one call per step, the blocks 1.23× faster again, and the apical update in one pass
per row (:func:`_apical`) 1.14× faster again on the compiled steps (paired rounds): 181,000 seed-steps/s over 10 s.
``scripts/bench_scale.py`` (*rate budget*) splits a seed-step: PAL's noise draws 0.96–1.18 µs, the compiled
dynamics without plasticity 1.8–2.8 µs, the compiled steps in full 3.1–5.1 µs (this machine's spread over six runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from neurofa.rate.dynamics import Microcircuit

__all__ = ["fused_lagged", "fused_lagged_steps", "unsupported_reason"]

_PHI = {"logistic": 0, "relu": 1, "linear": 2}
_SIGNALS = {"noise": 0, "apical": 1, "high_pass": 2, "rate": 3}

numba: Any
try:  # numba is optional (extra 'fast'); the numpy step is the reference
    import numba
except ImportError:  # pragma: no cover
    numba = None


def unsupported_reason(net: Microcircuit) -> str:
    """Why the kernel cannot run ``net`` ('' if it can)."""
    if numba is None:
        return "numba is not installed"
    if net.scheme_name != "lagged":
        return f"simulation.scheme = {net.scheme_name!r} (the kernel runs 'lagged')"
    if net.model.activation not in _PHI:
        return f"network.activation = {net.model.activation!r} (the kernel has {', '.join(_PHI)})"
    if net.W_lo is not None:
        return "the forward low-pass τ_LO"
    if net._after_forward:
        return "rule hooks after the forward update (" + ", ".join(p.name for p in net._after_forward) + ")"
    return ""


def _tables(net: Microcircuit) -> dict[str, Any]:
    """Offsets and shapes of the packed blocks and the channels' codes, as integer arrays for the kernel."""
    lay, n_in = net.layout, net.n_in
    f_off = np.cumsum([0] + [f[0].size for f in net.F])[:-1]
    g_off = np.cumsum([0] + [g[0].size for g in net.G])[:-1]
    F = np.array([[o, f.shape[1], f.shape[2], blk.start, s.start]
                  for o, f, blk, s in zip(f_off, net.F, lay.block, net._pre_F)], dtype=np.int64)
    G = np.array([[o, g.shape[1], g.shape[2], hid.start, s.start, lay.block[ell + 1].start]
                  for ell, (o, g, hid, s) in enumerate(zip(g_off, net.G, lay.pyr, net._pre_G))],
                 dtype=np.int64).reshape(-1, 6)
    channels = np.array([[_SIGNALS[c.post], _SIGNALS[c.pre], 0 if c.kind == "B" else 1] for c in net._channels],
                        dtype=np.int64).reshape(-1, 3)
    # the channels' working rates become rows of one array (set_learning_rate_factor writes them in place)
    lr = np.stack([c.lr for c in net._channels]) if net._channels else np.zeros((0, lay.n_units))
    for row, c in zip(lr, net._channels):
        c.lr = row
    linear = np.zeros(lay.n_units, dtype=np.bool_)
    if net.output_linear:
        linear[net.out] = True
        linear[net._out_int] = True
    return {"lr": lr, "F": F, "G": G, "channels": channels, "linear": linear, "int_idx": lay.int_idx.astype(np.int64),
            "pair_idx": lay.pair_idx.astype(np.int64), "n_in": np.int64(n_in)}


def fused_lagged(net: Microcircuit, noise: np.ndarray | None) -> None:
    """One ``lagged`` step of ``net`` (:func:`neurofa.rate.schemes.lagged`) in one compiled call."""
    fused_lagged_steps(net, None if noise is None else noise[None], 1)


def fused_lagged_steps(net: Microcircuit, noise: np.ndarray | None, n_steps: int) -> None:
    """``n_steps`` ``lagged`` steps of ``net`` in one compiled call, with the noise sample ``noise[k]`` (seeds ×
    units) at step k: the same steps as ``n_steps`` calls of :func:`fused_lagged`, without a call per step."""
    tables = net.__dict__.get("_fused_tables")
    if tables is None:
        tables = net.__dict__["_fused_tables"] = _tables(net)
    lr = tables["lr"]
    has_noise = net.noisy and noise is not None
    if has_noise:
        assert noise is not None and noise.shape[0] >= n_steps
    # every step swaps the buffers of the rates the dendrites read (pre) and of the previous step's (pre_old)
    _STEPS(n_steps, bool(net.prospective), net.u, net.ueff, net.d1, net.d2, net.xi, net.r, net.pre_old, net.pre,
           net.r_hp, net._x, net._F_all, net._dF_all, net._G_all, net._err, net._post2, net._pre2,
           net._a, net._b, net._k, net.att, net.lr_f, lr, net._masks["B"], net._masks["B_PI"],
           net._decay_F if net._decay_F is not None else np.ones(0), net._decay_G if net._decay_G is not None
           else np.ones(0), noise if has_noise else np.zeros((1, 1, 1)), tables["F"], tables["G"],
           tables["channels"], tables["linear"], tables["int_idx"], tables["pair_idx"], int(tables["n_in"]),
           _PHI[net.model.activation], float(net.k_syn), float(net.xi_decay), has_noise, bool(net.learn_F),
           bool(net.learn_G), bool(net.learn_B), float(net.k_hp),
           float(net.k_target) if net.target is not None else 0.0,
           net.target if net.target is not None else np.zeros((1, 1)), net.out.start)
    if n_steps % 2:
        net.pre, net.pre_old = net.pre_old, net.pre


def _phi(u: float, code: int, linear: bool) -> float:
    if linear or code == 2:
        return u
    if code == 0:  # σ(u) = 1/(1 + e^(−u)): the logistic of the numpy step, 0.5 (1 + tanh(u/2)), to rounding
        return 1.0 / (1.0 + np.exp(-u))
    return u if u > 0.0 else 0.0


def _matvec(W, x, out, table) -> None:  # noqa: ANN001
    """out[row0 + i] = Σ_j W[off + i n + j] x[col0 + j] for every block (off, m, n, row0, col0) of ``table``."""
    for blk in range(table.shape[0]):
        off, m, n, r0, c0 = table[blk, 0], table[blk, 1], table[blk, 2], table[blk, 3], table[blk, 4]
        xs = x[c0:c0 + n]
        for i in range(m):
            w = W[off + i * n: off + i * n + n]
            acc = 0.0
            for j in range(n):
                acc += w[j] * xs[j]
            out[r0 + i] = acc


def _inputs(src_s, r_s, pre_s, old_s, x_s, d2_s, linear, int_idx, pair_idx, n_in, phi, k_syn):  # noqa
    """(1) rates of the previous step's prospective voltage, the rates the dendrites read, the nudging."""
    n_units = r_s.size
    for i in range(n_units):
        r_s[i] = _phi(src_s[i], phi, linear[i])
    if k_syn == 0.0:
        for j in range(n_in):
            pre_s[j] = old_s[j]
        for i in range(n_units):
            pre_s[n_in + i] = r_s[i]
    else:
        for j in range(n_in):
            pre_s[j] = (x_s[j] - old_s[j]) * k_syn + old_s[j]
        for i in range(n_units):
            pre_s[n_in + i] = (r_s[i] - old_s[n_in + i]) * k_syn + old_s[n_in + i]
    for q in range(int_idx.size):
        d2_s[int_idx[q]] = src_s[pair_idx[q]]


def _soma(u_s, ueff_s, d1_s, d2_s, xi_s, noise_s, a, b, k, xi_decay, has_noise):  # noqa
    """(2) drive with the previous noise sample, (3) the new sample, (4) the Euler step."""
    for i in range(u_s.size):
        ueff_s[i] = d1_s[i] * a[i] + (d2_s[i] + xi_s[i]) * b[i]
    if has_noise:
        for i in range(u_s.size):
            xi_s[i] = xi_s[i] * xi_decay + noise_s[i]
    for i in range(u_s.size):
        u_s[i] = u_s[i] + (ueff_s[i] - u_s[i]) * k[i]


def _forward(r_s, d1_s, pre_s, err_s, F_s, dF_s, att, lr_f, decay_f, Ft, phi, linear):  # noqa
    """(5) the dendritic prediction rule of the forward blocks, then their decay and increment."""
    for i in range(r_s.size):
        err_s[i] = (r_s[i] - _phi(d1_s[i] * att[i], phi, linear[i])) * lr_f[i]
    for blk in range(Ft.shape[0]):
        off, m, n, r0, c0 = Ft[blk, 0], Ft[blk, 1], Ft[blk, 2], Ft[blk, 3], Ft[blk, 4]
        ps = pre_s[c0:c0 + n]
        for i in range(m):
            e = err_s[r0 + i]
            row = dF_s[off + i * n: off + i * n + n]
            for j in range(n):
                row[j] = e * ps[j]
    _apply(F_s, dF_s, decay_f)


def _apical(xi_s, d2_s, rhp_s, rate_s, post_s, pre2_s, G_s, lr, mask_b, mask_bpi, decay_g, ch, Gt):  # noqa
    """(5) the Hebbian channels of the apical blocks (PAL's ξ r^HP, apical inhibition's v_api r^I), decay and
    increment, in one pass over each row per pair of channels: W ← W ⊙ decay + (p_0 a_0 + p_1 a_1), then
    W ← W + (p_2 a_2 + p_3 a_3) and so on (a lone last channel with p = 0 for its partner, which adds an exact
    zero). With one or two channels (every model so far) this is the numpy step's W ⊙ decay + ΔW, ΔW the matmul
    over the channels; with more, the sums are associated differently, to rounding."""
    n_ch = ch.shape[0]
    for c in range(n_ch):
        mask = mask_b if ch[c, 2] == 0 else mask_bpi
        sig_post = _signal(ch[c, 0], xi_s, d2_s, rhp_s, rate_s)
        sig_pre = _signal(ch[c, 1], xi_s, d2_s, rhp_s, rate_s)
        lr_c, pre_c = lr[c], pre2_s[c]
        for i in range(rate_s.size):
            post_s[i, c] = sig_post[i] * lr_c[i]
            pre_c[i] = sig_pre[i] * mask[i]
    decays = decay_g.size > 0
    for blk in range(Gt.shape[0]):
        off, m, n, r0, c1 = Gt[blk, 0], Gt[blk, 1], Gt[blk, 2], Gt[blk, 3], Gt[blk, 5]
        for c in range(0, n_ch, 2):
            paired = c + 1 < n_ch
            a0 = pre2_s[c, c1:c1 + n]
            a1 = pre2_s[c + 1 if paired else c, c1:c1 + n]
            for i in range(m):
                w = G_s[off + i * n: off + i * n + n]
                p0 = post_s[r0 + i, c]
                p1 = post_s[r0 + i, c + 1] if paired else 0.0
                if c == 0 and decays:
                    d = decay_g[off + i * n: off + i * n + n]
                    for j in range(n):
                        w[j] = w[j] * d[j] + (p0 * a0[j] + p1 * a1[j])
                else:
                    for j in range(n):
                        w[j] = w[j] + (p0 * a0[j] + p1 * a1[j])


def _apply(W_s, dW_s, decay):  # noqa
    """W ← W ⊙ decay + ΔW (no decay: W + ΔW)."""
    if decay.size:
        for q in range(W_s.size):
            W_s[q] = W_s[q] * decay[q] + dW_s[q]
    else:
        for q in range(W_s.size):
            W_s[q] = W_s[q] + dW_s[q]


def _seed_steps(n_steps, src, u, ueff, d1, d2, xi, r, pre_a, pre_b, r_hp, x, F, dF, G, err, post2, pre2, a,  # noqa
                b, k, att, lr_f, lr, mask_b, mask_bpi, decay_f, decay_g, noise, Ft, Gt, ch, linear, int_idx, pair_idx,
                n_in, phi, k_syn, xi_decay, has_noise, learn_f, learn_g, learn_b, k_hp, k_target, target, out0):
    """``n_steps`` lagged steps of one seed (its rows of the batch's arrays; ``noise[k]`` the sample of step k), in
    the order of :func:`neurofa.rate.schemes.lagged`. Step k reads the rates into ``pre_a`` if k is even (``pre_b``
    holding the previous step's), into ``pre_b`` if odd, as the per-step wrapper's swap of the two buffers."""
    for step in range(n_steps):
        if step % 2 == 0:
            pre, old = pre_a, pre_b
        else:
            pre, old = pre_b, pre_a
        _inputs(src, r, pre, old, x, d2, linear, int_idx, pair_idx, n_in, phi, k_syn)
        _matvec(F, pre, d1, Ft)
        _matvec(G, pre, d2, Gt)
        _soma(u, ueff, d1, d2, xi, noise[step if has_noise else 0], a, b, k, xi_decay, has_noise)
        if learn_f:
            _forward(r, d1, pre, err, F, dF, att, lr_f, decay_f, Ft, phi, linear)
        if learn_g:
            _apical(xi, d2, r_hp, pre[n_in:], post2, pre2, G, lr, mask_b, mask_bpi, decay_g, ch, Gt)
        # (6) target filter and high pass
        if k_target != 0.0:
            for i in range(target.size):
                d2[out0 + i] = d2[out0 + i] + k_target * (target[i] - d2[out0 + i])
        if learn_b:
            for i in range(r_hp.size):
                r_hp[i] = r_hp[i] * (1.0 - k_hp) + (pre[n_in + i] - old[n_in + i])


def _steps(n_steps, prospective, u, ueff, d1, d2, xi, r, pre_a, pre_b, r_hp, x, F, dF, G, err, post2,  # noqa
           pre2, a, b, k, att, lr_f, lr, mask_b, mask_bpi, decay_f, decay_g, noise, Ft, Gt, ch, linear, int_idx,
           pair_idx, n_in, phi, k_syn, xi_decay, has_noise, learn_f, learn_g, learn_b, k_hp, k_target, target, out0):
    """``n_steps`` lagged steps of every seed of the batch. The seeds are independent, so each runs all its steps
    before the next seed starts (its weights stay in cache)."""
    for s in range(u.shape[0]):
        src = ueff[s] if prospective else u[s]
        target_s = target[s] if k_target != 0.0 else target[0]
        noise_s = noise[:, s] if has_noise else noise[:, 0]
        _seed_steps(n_steps, src, u[s], ueff[s], d1[s], d2[s], xi[s], r[s], pre_a[s], pre_b[s], r_hp[s], x[s], F[s],
                    dF[s], G[s], err[s], post2[s], pre2[s], a, b, k, att, lr_f, lr, mask_b, mask_bpi, decay_f,
                    decay_g, noise_s, Ft, Gt, ch, linear, int_idx, pair_idx, n_in, phi, k_syn, xi_decay, has_noise,
                    learn_f, learn_g, learn_b, k_hp, k_target, target_s, out0)


def _signal(code: int, xi, d2, r_hp, rate):  # noqa: ANN001
    """The channel signal ``code`` of one seed: ξ, v_api (d2), r^HP or the rates the dendrites read."""
    if code == 0:
        return xi
    if code == 1:
        return d2
    if code == 2:
        return r_hp
    return rate


if numba is not None:
    _phi = numba.njit(cache=True, inline="always")(_phi)
    _signal = numba.njit(cache=True, inline="always")(_signal)
    _jit = numba.njit(cache=True, fastmath=True, error_model="numpy")
    _matvec, _inputs, _soma, _forward, _apical, _apply = (_jit(f) for f in (_matvec, _inputs, _soma, _forward,
                                                                          _apical, _apply))
    _seed_steps = _jit(_seed_steps)
    _STEPS = _jit(_steps)
else:  # pragma: no cover
    _STEPS = _steps
