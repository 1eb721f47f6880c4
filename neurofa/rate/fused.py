r"""The ``lagged`` step of the rate microcircuit as one compiled kernel (numba), for small and wide networks alike.

:func:`neurofa.rate.schemes.lagged` advances a batch with about 40 numpy calls per step; at the PAL Fig 3 size
(5-20-10-20-5) each call costs more than its arithmetic, so the step costs the same for 1 seed as for 10. This
module compiles the same step (the same equations, in the same order, :mod:`neurofa.rate.schemes`) into one loop
over the seeds of the batch, each seed running a whole block of steps (up to the next presentation, probe, record,
test point or checkpoint) while its weights stay in cache.

Results: the kernel computes the numpy step's expressions with fast-math (a product and a sum may become one fused
multiply-add, a dendritic sum may be added in another order than numpy's matmul), and the logistic as
1/(1 + e^(−u)) with its own exponential (:func:`_exp_into`, within 1 ulp of the C library's) instead of
½(1 + tanh(u/2)). A step agrees with the numpy step to rounding, and so does a run: the whole Fig 3 run (10 s,
10 seeds) to 1.3e-14 of each recorded quantity's largest value, 0.2 s of it at 3 seeds to 1e-12 and 0.1 s of FA's
5-20-10-20-5 to 1e-10 of the apical mismatch and the loss, which are small differences of large terms
(``tests/test_rate_fused.py``). PAL's noise samples are numpy's
own: :func:`fill_noise` fills a :class:`~neurofa.rate.dynamics.NoiseSource` block, and once a block is used up
the kernel draws each step's samples itself from the same generators (:func:`_draw_hidden`), bitwise the same.
The generators reach the kernel as one typed list (:func:`_generators`), so it is compiled once for every batch size
(about 2 s, then cached on disk with the rest of the kernel).

What makes it fast (measured on Fig 3 at 10 seeds, ``scripts/bench_scale.py``):

- the loops index with unsigned integers: numba's wrap-around of negative indices otherwise keeps LLVM from
  vectorising a loop;
- the apical update visits each run of columns with the channels that reach it (:func:`apical_segments`), not
  every channel on every column with masked zeros, and reads the channels' signals as rows of one array (a channel
  signal chosen by a function returning arrays cost about 1 µs per step);
- the logistic's exponential vectorises (90 calls of the C library's exp took a third of a step);
- the noise is drawn in the kernel, without a block of samples in memory.

What it covers: the ``lagged`` scheme with logistic, ReLU or linear transfer functions and without rule hooks
(``bp``, ``kp``) or the forward low-pass τ_LO; :func:`unsupported_reason` says why a batch is not covered. The numpy
step stays the default and the reference (``simulation.rate_kernel: numpy``); ``fused`` asks for the kernel (an error
where it does not cover the model or numba is missing: ``pip install 'neurofa[fast]'``), ``auto`` takes it where
it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from neurofa.rate.dynamics import Microcircuit, NoiseSource

__all__ = ["apical_segments", "exp", "fill_noise", "fused_lagged", "fused_lagged_steps", "unsupported_reason"]

_PHI = {"logistic": 0, "relu": 1, "linear": 2}
_SIGNALS = {"noise": 0, "apical": 1, "high_pass": 2, "rate": 3}

numba: Any
try:  # numba is optional (extra 'fast'); the numpy step is the reference
    import numba
    from numba.typed import List
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


def apical_segments(masks: np.ndarray, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column runs of the apical blocks that the same Hebbian channels reach.

    ``masks[c]`` is channel c's presynaptic mask over the units (B: the pyramidal cells, B^PI: the interneurons),
    ``blocks`` the apical blocks' rows (offset, rows, columns, first row unit, -, first column unit). Returns
    ``segments`` (block, first column, end column, start in ``members``, number of channels) for every maximal run
    of a block's columns on which the same channels are unmasked, and ``members``, those channels in order. The
    kernel then updates each weight from the channels that reach it only, instead of adding masked zeros.
    """
    rows: list[list[int]] = []
    members: list[int] = []
    for b in range(blocks.shape[0]):
        n, c1 = int(blocks[b, 2]), int(blocks[b, 5])
        reach = [tuple(c for c in range(masks.shape[0]) if masks[c, c1 + j] != 0) for j in range(n)]
        lo = 0
        for j in range(1, n + 1):
            if j == n or reach[j] != reach[lo]:
                rows.append([b, lo, j, len(members), len(reach[lo])])
                members.extend(reach[lo])
                lo = j
    return np.array(rows, dtype=np.int64).reshape(-1, 5), np.array(members, dtype=np.int64)


def _tables(net: Microcircuit) -> dict[str, Any]:
    """Offsets and shapes of the packed blocks, the channels' codes and column runs, and the kernel's scratch."""
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
    masks = np.array([net._masks[c.kind] for c in net._channels]).reshape(-1, lay.n_units)
    segments, members = apical_segments(masks, G)
    # the channels' working rates become rows of one array (set_learning_rate_factor writes them in place)
    lr = np.stack([c.lr for c in net._channels]) if net._channels else np.zeros((0, lay.n_units))
    for row, c in zip(lr, net._channels):
        c.lr = row
    linear = np.zeros(lay.n_units, dtype=np.bool_)
    if net.output_linear:
        linear[net.out] = True
        linear[net._out_int] = True
    return {"lr": lr, "F": F, "G": G, "channels": channels, "segments": segments, "members": members,
            "linear_idx": np.flatnonzero(linear).astype(np.int64), "int_idx": lay.int_idx.astype(np.int64),
            "pair_idx": lay.pair_idx.astype(np.int64), "n_in": np.int64(n_in),
            "scratch": np.zeros((6, lay.n_units)), "bits": np.zeros(lay.n_units, dtype=np.int64),
            "normals": np.zeros(lay.hid_idx.size)}


def fused_lagged(net: Microcircuit, noise: np.ndarray | None) -> None:
    """One ``lagged`` step of ``net`` (:func:`neurofa.rate.schemes.lagged`) in one compiled call."""
    fused_lagged_steps(net, None if noise is None else noise[None], 1)


def fused_lagged_steps(net: Microcircuit, noise: np.ndarray | None, n_steps: int,
                       source: NoiseSource | None = None) -> None:
    """``n_steps`` ``lagged`` steps of ``net`` in one compiled call, with the noise sample ``noise[k]`` (seeds ×
    units) at step k: the same steps as ``n_steps`` calls of :func:`fused_lagged`, without a call per step.

    With ``source`` instead of ``noise`` (a :class:`~neurofa.rate.dynamics.NoiseSource` with no drawn samples left),
    each step draws its samples from the source's generators itself (:func:`_draw_hidden`, the same numbers as the
    source's blocks), without a block of samples in memory.
    """
    tables = net.__dict__.get("_fused_tables")
    if tables is None:
        tables = net.__dict__["_fused_tables"] = _tables(net)
    draw = net.noisy and source is not None
    has_noise = draw or (net.noisy and noise is not None)
    if draw:
        assert source is not None and source.drained, "the source's drawn samples come first"
        rngs, scale, refine = _generators(source), source.scale, source.refine
        noise = np.zeros((1, len(source.rngs), net.layout.n_units), dtype=net.dtype)  # a sample per seed, per step
    else:
        rngs, scale, refine = _NO_GENERATORS, 0.0, 1
        if has_noise:
            assert noise is not None and noise.shape[0] >= n_steps
        noise = np.ascontiguousarray(noise) if has_noise else np.zeros((1, 1, 1), dtype=net.dtype)
    # every step swaps the buffers of the rates the dendrites read (pre) and of the previous step's (pre_old)
    _STEPS(n_steps, bool(net.prospective), net.u, net.ueff, net.d1, net.d2, net.xi, net.r, net.pre_old, net.pre,
           net.r_hp, net._x, net._F_all, net._G_all, net._err,
           net._a, net._b, net._k, net.att, net.lr_f, tables["lr"],
           net._decay_F if net._decay_F is not None else np.ones(0), net._decay_G if net._decay_G is not None
           else np.ones(0), noise, tables["F"], tables["G"], tables["channels"], tables["segments"],
           tables["members"], tables["linear_idx"], tables["int_idx"], tables["pair_idx"], int(tables["n_in"]),
           _PHI[net.model.activation], float(net.k_syn), float(net.xi_decay), has_noise, bool(net.learn_F),
           bool(net.learn_G), bool(net.learn_B), float(net.k_hp),
           float(net.k_target) if net.target is not None else 0.0,
           net.target if net.target is not None else np.zeros((1, 1)), net.out.start, tables["scratch"],
           tables["bits"], draw, rngs, net.layout.hid_idx, float(scale), int(refine), tables["normals"])
    if n_steps % 2:
        net.pre, net.pre_old = net.pre_old, net.pre


def _generators(source: NoiseSource) -> Any:
    """The source's generators as one numba typed list, made once per source (the same generator objects: a draw in
    the kernel advances them as a draw in Python would). Passed as a tuple, ten generators cost 67 µs per call
    (numba unboxes each through ctypes), more than the 1.5 ms of a Fig 3 presentation's steps can hide; the list
    costs about 1 µs."""
    rngs = tuple(source.rngs)
    cached = source.__dict__.get("_fused_generators")
    if cached is None or cached[0] != rngs:  # generators compare by identity
        cached = source.__dict__["_fused_generators"] = (rngs, _AS_LIST(rngs))
    return cached[1]


def _as_list(rngs):  # noqa: ANN001
    """A numba typed list of the generators ``rngs`` (a tuple), built in compiled code so that the build is cached
    on disk with it."""
    out = List()
    for rng in rngs:
        out.append(rng)
    return out


# -- e^x, vectorisable --------------------------------------------------------------------------------------------
#: ln 2 split for the Cody–Waite reduction (k ln2_hi is exact for |k| < 2^20), and log2(e)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634


def _exp_into(x, sign, out, bits):  # noqa: ANN001
    r"""out = e^(sign·x), elementwise, within 1 ulp of the C library's exp; ``out`` must not be ``x``.

    sign·x = k ln 2 + r with k = round(sign·x / ln 2) and |r| ≤ ln2/2 (Cody–Waite: ln 2 in two parts), e^r by its
    Taylor series to r^13 (truncation below 4e-18) and 2^k written as exponent bits. Unlike a call of the C library
    per element, the loop vectorises: the 90 exponentials of a Fig 3 step cost about a third. The argument is
    clamped at ±708 (e^708 ≈ 3e307, so the logistic of −708 is 3e-308 instead of 0); NaN stays NaN. Compiled
    without reassociation, so the two-part reduction is kept as written (``tests/test_rate_fused.py``).
    """
    scale = bits.view(np.float64)
    for i in range(x.size):
        v = sign * x[i]
        c = min(max(v, -708.0), 708.0)
        k = np.floor(c * _LOG2E + 0.5)
        r = (c - k * _LN2_HI) - k * _LN2_LO
        p = 1.6059043836821613e-10  # 1/13!, then 1/12! … 1/2!, 1, 1 (Horner)
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        bits[i] = (np.int64(k) + 1023) << 52
        out[i] = p * scale[i] if v == v else v


def exp(x: np.ndarray) -> np.ndarray:
    """e^x of a float64 array by the kernel's vectorisable exponential (for tests: it agrees with ``np.exp`` to
    about 1 ulp)."""
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    out = np.empty_like(x)
    _EXP(x, 1.0, out, np.empty(x.size, dtype=np.int64))
    return out


def _rates(v, out, phi, linear_idx, e, bits):  # noqa: ANN001
    """out = φ(v) (logistic 1/(1 + e^(−v)), ReLU or linear), identity on the linear units."""
    n = v.size
    if phi == 0:
        _EXP(v, -1.0, e, bits)
        for i in range(n):
            out[i] = 1.0 / (1.0 + e[i])
    elif phi == 1:
        for i in range(n):
            out[i] = v[i] if v[i] > 0.0 else 0.0
    else:
        for i in range(n):
            out[i] = v[i]
    for q in range(linear_idx.size):
        out[linear_idx[q]] = v[linear_idx[q]]


def _u(x):  # noqa: ANN001, ANN202
    """An index as uint64: unsigned indices spare numba's negative-index wrap-around, which blocks vectorising."""
    return numba.uint64(x)


def _matvec(W, x, out, table):  # noqa: ANN001
    """out[row0 + i] = Σ_j W[off + i n + j] x[col0 + j] for every block (off, m, n, row0, col0) of ``table``."""
    for blk in range(table.shape[0]):
        off, m, n, r0, c0 = _u(table[blk, 0]), _u(table[blk, 1]), _u(table[blk, 2]), _u(table[blk, 3]), \
            _u(table[blk, 4])
        for i in range(m):
            base = off + i * n
            acc = 0.0
            for j in range(n):
                acc += W[base + j] * x[c0 + j]
            out[r0 + i] = acc


def _inputs(src, r, pre, old, x, d2, linear_idx, int_idx, pair_idx, n_in, phi, k_syn, e, bits):  # noqa
    """(1) rates of the previous step's prospective voltage, the rates the dendrites read, the nudging."""
    _rates(src, r, phi, linear_idx, e, bits)
    nin = _u(n_in)
    if k_syn == 0.0:
        for j in range(nin):
            pre[j] = old[j]
        for i in range(_u(r.size)):
            pre[nin + i] = r[i]
    else:
        for j in range(nin):
            pre[j] = (x[j] - old[j]) * k_syn + old[j]
        for i in range(_u(r.size)):
            pre[nin + i] = (r[i] - old[nin + i]) * k_syn + old[nin + i]
    for q in range(int_idx.size):
        d2[int_idx[q]] = src[pair_idx[q]]


def _soma(u, ueff, d1, d2, xi, noise, a, b, k, xi_decay, has_noise):  # noqa
    """(2) drive with the previous noise sample, (3) the new sample, (4) the Euler step."""
    n = _u(u.size)
    for i in range(n):
        ueff[i] = d1[i] * a[i] + (d2[i] + xi[i]) * b[i]
    if has_noise:
        for i in range(n):
            xi[i] = xi[i] * xi_decay + noise[i]
    for i in range(n):
        u[i] = u[i] + (ueff[i] - u[i]) * k[i]


def _forward(r, d1, pre, err, F, att, lr_f, decay_f, Ft, phi, linear_idx, vhat, e, bits):  # noqa
    """(5) the dendritic prediction rule of the forward blocks: W ← W ⊙ decay + [φ(ŭ) − φ(v̂)] η dt preᵀ, in one
    pass over each row (the numpy step forms the increment first; the same sums, rounded once here)."""
    n_units = _u(r.size)
    for i in range(n_units):
        vhat[i] = d1[i] * att[i]
    _rates(vhat, vhat, phi, linear_idx[:0], e, bits)
    for q in range(linear_idx.size):
        vhat[linear_idx[q]] = d1[linear_idx[q]] * att[linear_idx[q]]
    for i in range(n_units):
        err[i] = (r[i] - vhat[i]) * lr_f[i]
    decays = decay_f.size > 0
    for blk in range(Ft.shape[0]):
        off, m, n, r0, c0 = _u(Ft[blk, 0]), _u(Ft[blk, 1]), _u(Ft[blk, 2]), _u(Ft[blk, 3]), _u(Ft[blk, 4])
        for i in range(m):
            e_i = err[r0 + i]
            base = off + i * n
            if decays:
                for j in range(n):
                    F[base + j] = F[base + j] * decay_f[base + j] + e_i * pre[c0 + j]
            else:
                for j in range(n):
                    F[base + j] = F[base + j] + e_i * pre[c0 + j]


def _apical(xi, d2, r_hp, rate, signals, G, lr, decay_g, ch, segments, members, Gt):  # noqa: ANN001
    """(5) the Hebbian channels of the apical blocks (PAL's ξ r^HP, apical inhibition's v_api r^I), decay and
    increment: W ← W ⊙ decay + Σ_c (lr_c ⊙ post_c)(mask_c ⊙ pre_c)ᵀ, where ``ch[c]`` codes channel c's post and
    pre signals (rows of ``signals``, filled here). Each column run of :func:`apical_segments` takes only the
    channels that reach it (mask 1; the others add exact zeros), in pairs in one pass over each row:
    W ← W ⊙ decay + (p_0 a_0 + p_1 a_1), then W ← W + (p_2 a_2 + p_3 a_3) and so on; with one channel
    W ← W ⊙ decay + p_0 a_0."""
    for i in range(_u(xi.size)):
        signals[0, i] = xi[i]
        signals[1, i] = d2[i]
        signals[2, i] = r_hp[i]
        signals[3, i] = rate[i]
    decays = decay_g.size > 0
    for q in range(segments.shape[0]):
        blk, first, count = segments[q, 0], segments[q, 3], segments[q, 4]
        lo, width = _u(segments[q, 1]), _u(segments[q, 2] - segments[q, 1])
        off, m, n, r0 = _u(Gt[blk, 0]), _u(Gt[blk, 1]), _u(Gt[blk, 2]), _u(Gt[blk, 3])
        col = _u(Gt[blk, 5]) + lo
        if count == 0:
            if decays:
                for i in range(m):
                    base = off + i * n + lo
                    for j in range(width):
                        G[base + j] = G[base + j] * decay_g[base + j]
            continue
        for k in range(0, count, 2):
            c0 = members[first + k]
            paired = k + 1 < count
            c1 = members[first + k + 1] if paired else c0
            post0, pre0, post1, pre1 = _u(ch[c0, 0]), _u(ch[c0, 1]), _u(ch[c1, 0]), _u(ch[c1, 1])
            decay_now = decays and k == 0
            for i in range(m):
                row = r0 + i
                base = off + i * n + lo
                p0 = signals[post0, row] * lr[c0, row]
                if paired:
                    p1 = signals[post1, row] * lr[c1, row]
                    if decay_now:
                        for j in range(width):
                            G[base + j] = G[base + j] * decay_g[base + j] + (p0 * signals[pre0, col + j]
                                                                              + p1 * signals[pre1, col + j])
                    else:
                        for j in range(width):
                            G[base + j] = G[base + j] + (p0 * signals[pre0, col + j] + p1 * signals[pre1, col + j])
                elif decay_now:
                    for j in range(width):
                        G[base + j] = G[base + j] * decay_g[base + j] + p0 * signals[pre0, col + j]
                else:
                    for j in range(width):
                        G[base + j] = G[base + j] + p0 * signals[pre0, col + j]


def _seed_steps(n_steps, s, src, u, ueff, d1, d2, xi, r, pre_a, pre_b, r_hp, x, F, G, err, a, b, k,  # noqa
                att, lr_f, lr, decay_f, decay_g, noise, Ft, Gt, ch, segments, members,
                linear_idx, int_idx, pair_idx, n_in, phi, k_syn, xi_decay, has_noise, learn_f, learn_g, learn_b,
                k_hp, k_target, target, out0, scratch, bits, draw, rng, hid_idx, scale, refine, normals):
    """``n_steps`` lagged steps of seed ``s`` (its rows of the batch's arrays; ``noise[k, s]`` its sample of step
    k, or with ``draw`` ``noise[0, s]`` filled from ``rng`` at every step), in the order of
    :func:`neurofa.rate.schemes.lagged`. Step k reads the rates into ``pre_a`` if k is even
    (``pre_b`` holding the previous step's), into ``pre_b`` if odd, as the per-step wrapper's swap of the two
    buffers."""
    e, vhat, signals = scratch[0], scratch[1], scratch[2:]
    nin = _u(n_in)
    for step in range(n_steps):
        if step % 2 == 0:
            pre, old = pre_a, pre_b
        else:
            pre, old = pre_b, pre_a
        _inputs(src, r, pre, old, x, d2, linear_idx, int_idx, pair_idx, n_in, phi, k_syn, e, bits)
        _matvec(F, pre, d1, Ft)
        _matvec(G, pre, d2, Gt)
        if draw:
            _draw_hidden(rng, hid_idx, scale, refine, normals, noise[0, s])
        sample = noise[0, s] if draw else (noise[step, s] if has_noise else noise[0, 0])
        _soma(u, ueff, d1, d2, xi, sample, a, b, k, xi_decay, has_noise)
        if learn_f:
            _forward(r, d1, pre, err, F, att, lr_f, decay_f, Ft, phi, linear_idx, vhat, e, bits)
        if learn_g:
            _apical(xi, d2, r_hp, pre[nin:], signals, G, lr, decay_g, ch, segments, members, Gt)
        # (6) target filter and high pass
        if k_target != 0.0:
            for i in range(_u(target.size)):
                d2[out0 + i] = d2[out0 + i] + k_target * (target[i] - d2[out0 + i])
        if learn_b:
            for i in range(_u(r_hp.size)):
                r_hp[i] = r_hp[i] * (1.0 - k_hp) + (pre[nin + i] - old[nin + i])


def _steps(n_steps, prospective, u, ueff, d1, d2, xi, r, pre_a, pre_b, r_hp, x, F, G, err, a, b,  # noqa
           k, att, lr_f, lr, decay_f, decay_g, noise, Ft, Gt, ch, segments, members,
           linear_idx, int_idx, pair_idx, n_in, phi, k_syn, xi_decay, has_noise, learn_f, learn_g, learn_b, k_hp,
           k_target, target, out0, scratch, bits, draw, rngs, hid_idx, scale, refine, normals):
    """``n_steps`` lagged steps of every seed of the batch. The seeds are independent, so each runs all its steps
    before the next seed starts (its weights stay in cache)."""
    for s in range(u.shape[0]):
        src = ueff[s] if prospective else u[s]
        target_s = target[s] if k_target != 0.0 else target[0]
        column = s if has_noise else 0
        rng = rngs[s if draw else 0]
        _seed_steps(n_steps, column, src, u[s], ueff[s], d1[s], d2[s], xi[s], r[s], pre_a[s],
                    pre_b[s], r_hp[s], x[s], F[s], G[s], err[s], a, b, k, att, lr_f, lr,
                    decay_f, decay_g, noise, Ft, Gt, ch, segments, members, linear_idx, int_idx,
                    pair_idx, n_in, phi, k_syn, xi_decay, has_noise, learn_f, learn_g, learn_b, k_hp, k_target,
                    target_s, out0, scratch, bits, draw, rng, hid_idx, scale, refine, normals)


# -- PAL's noise ------------------------------------------------------------------------------------------------
def _draw_hidden(rng, hid_idx, scale, refine, z, sample):  # noqa: ANN001
    """sample[hid_idx] = scale Σ_{m < refine} z_m with the next refine × n_hid normals of ``rng`` (row-major: the
    refine rows of hidden units one after another), summed in order. Compiled without fast-math, so the product is
    rounded as numpy rounds ``scale * z``: the same samples as :meth:`neurofa.rate.dynamics.NoiseSource._fill`,
    bitwise (numba draws numpy's normals from the same bit generator)."""
    n_hid = hid_idx.size
    for q in range(n_hid):
        z[q] = rng.standard_normal()
    for _ in range(refine - 1):
        for q in range(n_hid):
            z[q] = z[q] + rng.standard_normal()
    for q in range(n_hid):
        sample[hid_idx[q]] = scale * z[q]


def _fill_noise(rng, buffer, s, hid_idx, scale, refine):  # noqa: ANN001
    """Seed ``s``'s next block: ``buffer[k, s]`` from :func:`_draw_hidden` for every step k of the block."""
    z = np.empty(hid_idx.size)
    for k in range(buffer.shape[0]):
        _draw_hidden(rng, hid_idx, scale, refine, z, buffer[k, s])


def fill_noise(rng: np.random.Generator, buffer: np.ndarray, s: int, hid_idx: np.ndarray, scale: float,
               refine: int) -> bool:
    """Draw seed ``s``'s next block of noise samples into ``buffer`` (steps, seeds, units) with the compiled loop
    (:func:`_fill_noise`); ``False`` (nothing drawn) where numba is missing."""
    if numba is None:  # pragma: no cover
        return False
    _FILL(rng, buffer, int(s), hid_idx, float(scale), int(refine))
    return True


if numba is not None:
    _u = numba.njit(cache=True, inline="always")(_u)
    _EXP = numba.njit(cache=True, fastmath={"contract", "nsz"}, error_model="numpy")(_exp_into)
    _jit = numba.njit(cache=True, fastmath=True, error_model="numpy")
    _rates, _matvec, _inputs, _soma, _forward, _apical = (_jit(f) for f in (_rates, _matvec, _inputs, _soma,
                                                                          _forward, _apical))
    _seed_steps = _jit(_seed_steps)
    _STEPS = _jit(_steps)
    _draw_hidden = numba.njit(cache=True)(_draw_hidden)
    _FILL = numba.njit(cache=True)(_fill_noise)
    _AS_LIST = numba.njit(cache=True)(_as_list)
else:  # pragma: no cover
    _STEPS = _steps

#: the generators argument of a call without drawing (never used; one element so that it types)
_NO_GENERATORS = (np.random.default_rng(0),)
