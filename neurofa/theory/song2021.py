"""Song2021: convergence and alignment of a two-layer network trained with random backpropagation weights.

Model (Song2021, docs/science.md §1.1): f(x) = (1/√p) Σ_r β_r ψ(w_rᵀx) with p hidden units, loss ½ Σ_i e_i²,
e_i = f(x_i) − y_i. W, β and the fixed feedback vector b are drawn i.i.d. N(0, 1); the inputs x_i lie uniformly on
the unit sphere in R^d and the targets are y_i ~ U(−1, 1). Full-batch feedback alignment (the paper's Algorithm 1)
with ridge λ on the second layer:

    β_r ← (1 − ηλ) β_r − (η/√p) Σ_i e_i ψ(w_rᵀx_i)
    w_r ← w_r − (η/√p) Σ_i e_i b_r ψ'(w_rᵀx_i) x_i            (backprop: β_r in place of b_r)

Claims reproduced: without regularisation the training loss falls exponentially (log-loss linear in the step) and
backprop is faster; cos(β, b) is a finite-width effect that shrinks as p grows; with λ > 0, β aligns with b.

Step size. ``eta = 0`` picks η₀ = 1/λ_max(G(0)) with G_ij = (1/p) Σ_r ψ(w_r·x_i) ψ(w_r·x_j) (for λ > 0 also
η₀ ≤ 0.5/λ so the decay factor stays in (0, 1)). With the ``adaptive`` schedule (default) the step shrinks as the
first layer grows: η_t = η₀ · min(1, λ_max(G(0)) / λ_max(G(t))), λ_max(G(t)) tracked by one warm-started power
iteration per step. For λ = 0 the network stays in the lazy regime, G barely moves and the schedule changes η by a
few per cent; with a large ridge a constant η lets W grow until the run diverges (docs/science.md §1.1; measured:
λ = 0.3 at p = 1000 within 10,000 steps, λ = 1 at p = 100 within ~500 steps), which the schedule prevents.

With ``activation = 'linear'`` f is linear in x, so n > d points cannot be interpolated and the loss stalls at the
least-squares residual (a control, not a failure). Every seed is one element of a batch (the λ sweep runs one batch
per λ); each step is a few batched matrix products, about 0.5 µs per hidden unit and network on one core.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
import yaml
from tqdm.auto import tqdm

from neurofa.activations import activation as activation_pair
from neurofa.config import ConfigError, nonnegative, positive, provenance
from neurofa.metrics import cosine
from neurofa.plotting import mean_sd_band, pyplot, save_figure
from neurofa.results import Result, to_jsonable

__all__ = ["Settings", "Trajectory", "init_problem", "train", "exponential_fit", "run", "figure"]

LOSS_FLOOR = 1e-10  # the exponential phase ends when the loss falls below this (float64 noise starts far below)
TRANSIENT_DECADES = 2.0  # the phase starts once the loss fell by this many decades below its initial value


@dataclass
class Settings:
    """Settings of ``neurofa theory song2021`` (override with ``--set key=value``).

    The main run trains the network of width ``p`` on ``n`` points in R^``d`` with both FA and BP from the same
    initialisation (``rule`` picks which one the headline keys ``loss_final``, ``log_loss_slope``, ... describe).
    The width sweep trains FA at λ = 0 for every width in ``widths`` for ``steps`` steps; the λ sweep trains FA at
    width ``p`` for every ridge in ``lams`` for ``lam_steps`` steps; both average over ``sweep_seeds`` seeds.
    """

    p: int = positive(1000, "hidden width")
    n: int = positive(100, "number of training points")
    d: int = positive(20, "input dimension")
    lam: float = nonnegative(0.0, "ridge λ on the second layer (main run)")
    activation: Literal["relu", "tanh", "linear"] = "relu"
    steps: int = positive(2000, "full-batch steps of the main run and of the width sweep")
    rule: Literal["fa", "bp"] = "fa"
    seed: int = nonnegative(0, "seed of the main run; the sweeps use seed, seed+1, ...")
    eta: float = nonnegative(0.0, "step size; 0 = auto, 1/λ_max(G(0)) (and ≤ 0.5/λ)")
    eta_schedule: Literal["adaptive", "constant"] = "adaptive"
    widths: list[int] = field(default_factory=lambda: [250, 500, 1000, 2000, 4000],
                              metadata={"minimum": 0.0, "exclusive": True, "help": "widths of the λ = 0 sweep"})
    lams: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.03, 0.1, 0.3],
                              metadata={"minimum": 0.0, "exclusive": False, "help": "ridges of the λ sweep"})
    lam_steps: int = positive(4000, "steps of the λ sweep (alignment under ridge is slow)")
    sweep_seeds: int = positive(3, "seeds averaged in each sweep point")
    record_every: int = positive(10, "record cos(β, b) every this many steps")


#: what ``--quick`` changes (only settings still at their default): a smaller problem that runs in a few seconds
QUICK: dict[str, Any] = {
    "p": 400,
    "n": 40,
    "d": 10,
    "steps": 1000,
    "widths": [100, 400, 1600],
    "lams": [0.0, 0.1],
    "lam_steps": 1500,
    "sweep_seeds": 3,
}


@dataclass
class Trajectory:
    """Output of :func:`train` for a batch of S networks (leading axis of every array)."""

    loss: np.ndarray  # (S, steps + 1): ½ Σ_i e_i² before each step and after the last
    cos_beta_b: np.ndarray  # (S, records): cos(β, b) at steps ``record_steps``
    record_steps: np.ndarray  # (records,)
    eta: np.ndarray  # (S, steps): step size used at each step
    beta: np.ndarray  # (S, p) final second layer
    w: np.ndarray  # (S, p, d) final first layer


def _sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def init_problem(seeds: list[int], p: int, n: int, d: int) -> dict[str, np.ndarray]:
    """Data and initial weights for each seed, stacked on a leading batch axis.

    The data (x_i on the unit sphere of R^d, y_i ~ U(−1, 1)) depend on the seed only, so a width sweep trains every
    width on the same points; W (p × d), β and b (p) are N(0, 1) from a stream keyed by (seed, p).
    """
    xs, ys, ws, betas, bs = [], [], [], [], []
    for s in seeds:
        data_rng = np.random.default_rng([int(s), 0])
        xs.append(_sphere(data_rng, n, d))
        ys.append(data_rng.uniform(-1.0, 1.0, n))
        weight_rng = np.random.default_rng([int(s), 1, int(p)])
        ws.append(weight_rng.standard_normal((p, d)))
        betas.append(weight_rng.standard_normal(p))
        bs.append(weight_rng.standard_normal(p))
    return {"x": np.stack(xs), "y": np.stack(ys), "w": np.stack(ws), "beta": np.stack(betas), "b": np.stack(bs)}


def kernel_gram(h: np.ndarray) -> np.ndarray:
    """G = (1/p) ψ(XWᵀ) ψ(XWᵀ)ᵀ per batch element, from the hidden activities h (S, n, p)."""
    return h @ np.swapaxes(h, -1, -2) / h.shape[-1]


def auto_eta(h: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """η₀ = 1/λ_max(G(0)) (capped at 0.5/λ for λ > 0), with λ_max(G(0)) and its eigenvector per batch element."""
    evals, evecs = np.linalg.eigh(kernel_gram(h))
    lmax = evals[:, -1]
    eta = 1.0 / lmax
    with np.errstate(divide="ignore"):
        eta = np.where(lam > 0, np.minimum(eta, 0.5 / np.where(lam > 0, lam, 1.0)), eta)
    return eta, lmax, evecs[:, :, -1]


def train(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    beta: np.ndarray,
    b: np.ndarray,
    *,
    steps: int,
    lam: float | np.ndarray = 0.0,
    eta: float | np.ndarray = 0.0,
    backprop: bool | np.ndarray = False,
    activation: str = "relu",
    schedule: str = "adaptive",
    record_every: int = 10,
    callback: Any = None,
) -> Trajectory:
    """Full-batch FA (or BP) of Song2021's two-layer network for a batch of S problems.

    Shapes: x (S, n, d), y (S, n), w (S, p, d), beta and b (S, p). ``lam``, ``eta`` and ``backprop`` are scalars or
    per-batch arrays (S,); ``eta = 0`` means auto (see the module docstring). Both layers are updated from the same
    error e(t) (simultaneous updates, Algorithm 1 of Song2021). ``callback(k)`` is called after every 100 steps.
    """
    if schedule not in ("adaptive", "constant"):
        raise ValueError(f"schedule {schedule!r} is unknown; allowed: adaptive, constant")
    psi, dpsi = activation_pair(activation)
    n_batch, p = w.shape[0], w.shape[1]
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (n_batch,)).copy()
    backprop = np.broadcast_to(np.asarray(backprop, dtype=bool), (n_batch,))
    wt = np.ascontiguousarray(np.swapaxes(w, -1, -2), dtype=float)  # (S, d, p): W stored transposed for speed
    beta = beta.astype(float, copy=True)
    x = np.asarray(x, dtype=float)
    xt = np.ascontiguousarray(np.swapaxes(x, -1, -2))  # (S, d, n)
    sqrt_p = np.sqrt(p)
    a = np.empty((n_batch, x.shape[1], p))  # pre-activations w_r·x_i, (S, n, p)
    grad_wt = np.empty_like(wt)

    np.matmul(x, wt, out=a)
    h = psi(a)
    eta_auto, lmax0, v = auto_eta(h, lam)
    eta0 = np.broadcast_to(np.asarray(eta, dtype=float), (n_batch,))
    eta0 = np.where(eta0 > 0, eta0, eta_auto)

    record_steps = np.arange(0, steps + 1, record_every)
    if record_steps[-1] != steps:
        record_steps = np.append(record_steps, steps)
    loss = np.empty((n_batch, steps + 1))
    cos = np.empty((n_batch, record_steps.size))
    etas = np.empty((n_batch, steps))
    k_rec = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            if t > 0:
                np.matmul(x, wt, out=a)
                h = psi(a)
            e = (h @ beta[:, :, None])[:, :, 0] / sqrt_p - y  # (S, n)
            loss[:, t] = 0.5 * np.sum(e * e, axis=1)
            if k_rec < record_steps.size and record_steps[k_rec] == t:
                cos[:, k_rec] = cosine(beta, b)
                k_rec += 1
            if t == steps:
                break
            if schedule == "adaptive":
                u = (h @ (v[:, None, :] @ h)[:, 0, :, None])[:, :, 0] / p  # G v
                lmax = np.sum(u * v, axis=1)  # Rayleigh quotient (v is normalised)
                v = u / np.linalg.norm(u, axis=1, keepdims=True)
                step = eta0 * np.minimum(1.0, lmax0 / lmax)
            else:
                step = eta0
            etas[:, t] = step
            feedback = np.where(backprop[:, None], beta, b)  # b_r under FA, β_r under BP
            grad_beta = (e[:, None, :] @ h)[:, 0, :] / sqrt_p  # Σ_i e_i ψ(w_r·x_i) / √p
            delta = dpsi(a)
            delta *= e[:, :, None]  # e_i ψ'(w_r·x_i)
            np.matmul(xt, delta, out=grad_wt)  # Σ_i e_i ψ'(w_r·x_i) x_i, (S, d, p)
            grad_wt *= (step / sqrt_p)[:, None, None] * feedback[:, None, :]
            beta *= (1.0 - step * lam)[:, None]
            beta -= step[:, None] * grad_beta
            wt -= grad_wt
            if callback is not None and (t + 1) % 100 == 0:
                callback(100)
    if callback is not None and steps % 100:
        callback(steps % 100)
    w = np.swapaxes(wt, -1, -2)
    return Trajectory(loss, cos, record_steps, etas, beta, w)


def exponential_fit(loss: np.ndarray, floor: float = LOSS_FLOOR,
                    transient_decades: float = TRANSIENT_DECADES) -> tuple[float, float, int, int]:
    """Slope (per step) and R² of a straight-line fit of ln(loss) against the step, on the exponential phase.

    The phase ends at the first step whose loss is below ``floor`` (or at the last step) and starts at the first
    step whose loss is ``transient_decades`` decades below the initial loss, which drops the initial transient of
    the fast kernel modes; if that leaves fewer than 10 steps the fit starts at step 0. Returns
    ``(slope, r2, start, stop)``; a diverged run (non-finite loss) gives NaN.
    """
    loss = np.asarray(loss, dtype=float)
    if not np.all(np.isfinite(loss)) or loss[0] <= 0:
        return float("nan"), float("nan"), 0, 0
    below = np.flatnonzero(loss < floor)
    stop = int(below[0]) if below.size else loss.size
    past = np.flatnonzero(loss[:stop] < loss[0] * 10.0 ** (-transient_decades))
    start = int(past[0]) if past.size and stop - past[0] >= 10 else 0
    if stop - start < 3:
        return float("nan"), float("nan"), start, stop
    t = np.arange(start, stop, dtype=float)
    logl = np.log(loss[start:stop])
    slope, intercept = np.polyfit(t, logl, 1)
    resid = logl - (slope * t + intercept)
    var = np.sum((logl - logl.mean()) ** 2)
    r2 = 1.0 - np.sum(resid**2) / var if var > 0 else float("nan")
    return float(slope), float(r2), start, stop


def _power_law_exponent(x: np.ndarray, y: np.ndarray) -> float:
    """Slope of log y against log x (NaN with fewer than two distinct x or a non-positive y)."""
    if np.unique(x).size < 2 or np.any(~(y > 0)):
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _effective(settings: Settings, quick: bool) -> Settings:
    """``settings`` with the :data:`QUICK` values for every field still at its default (when ``quick``)."""
    if not quick:
        return settings
    default = Settings()
    changes = {k: v for k, v in QUICK.items() if getattr(settings, k) == getattr(default, k)}
    return dataclasses.replace(settings, **changes)


def _check(s: Settings) -> None:
    where = "theory song2021"
    if not s.widths:
        raise ConfigError(f"{where}: widths = [] is invalid: give at least one width")
    if not s.lams:
        raise ConfigError(f"{where}: lams = [] is invalid: give at least one ridge value")


def run(settings: Settings | None = None, quick: bool = False, progress: bool = True) -> Result:
    """Main FA and BP runs, the λ = 0 width sweep and the λ sweep; a :class:`Result` with summary keys

    ``loss_final``, ``log_loss_slope``, ``log_loss_r2``, ``cos_beta_b_final`` (the ``rule`` run), ``fa_*`` and
    ``bp_*`` versions of the same, ``slope_ratio_bp_fa``, ``widths``, ``cos_beta_b_vs_p`` (mean over seeds, λ = 0),
    ``cos_beta_b_vs_p_exponent`` (slope of log cos against log p; finite-width theory: about −1/2), ``lams``,
    ``cos_beta_b_vs_lam`` (mean over seeds, width ``p``), ``loss_vs_lam``, ``eta0``, ``fit_window`` (steps of the
    log-loss fit, see :func:`exponential_fit`), ``sweep_seeds`` and ``diverged``.
    """
    s = _effective(settings or Settings(), quick)
    _check(s)
    sweep_seeds = [s.seed + k for k in range(s.sweep_seeds)]
    total = s.steps * (1 + len(s.widths)) + s.lam_steps * len(s.lams)
    bar = None
    if progress:

        bar = tqdm(total=total, desc="song2021", unit="step", leave=False)
    tick = bar.update if bar is not None else None
    common: dict[str, Any] = {"activation": s.activation, "schedule": s.eta_schedule, "record_every": s.record_every,
              "callback": tick}
    try:
        # main run: FA and BP from the same initialisation, as one batch of two
        prob = init_problem([s.seed], s.p, s.n, s.d)
        pair = {k: np.concatenate([v, v]) for k, v in prob.items()}
        main = train(pair["x"], pair["y"], pair["w"], pair["beta"], pair["b"], steps=s.steps, lam=s.lam,
                     eta=s.eta, backprop=np.array([False, True]), **common)
        # width sweep at λ = 0 (FA), seeds batched
        cos_p = np.empty((len(s.widths), len(sweep_seeds)))
        loss_p = np.empty_like(cos_p)
        for i, width in enumerate(s.widths):
            pw = init_problem(sweep_seeds, width, s.n, s.d)
            tr = train(pw["x"], pw["y"], pw["w"], pw["beta"], pw["b"], steps=s.steps, lam=0.0, eta=s.eta, **common)
            cos_p[i], loss_p[i] = tr.cos_beta_b[:, -1], tr.loss[:, -1]
        # λ sweep at width p (FA), seeds batched, one batch per λ (small batches stay in cache)
        pl = init_problem(sweep_seeds, s.p, s.n, s.d)
        lam_runs = [train(pl["x"], pl["y"], pl["w"], pl["beta"], pl["b"], steps=s.lam_steps, lam=lam, eta=s.eta,
                          **common) for lam in s.lams]
    finally:
        if bar is not None:
            bar.close()

    rules = ["fa", "bp"]
    cos_lam_t = np.stack([tr.cos_beta_b for tr in lam_runs])  # (lam, seed, record)
    loss_lam = np.stack([tr.loss[:, -1] for tr in lam_runs])
    ds = xr.Dataset(
        {
            "loss": (("rule", "step"), main.loss, {"long_name": "training loss ½Σe²"}),
            "cos_beta_b": (("rule", "record"), main.cos_beta_b, {"long_name": "cos(β, b)"}),
            "eta": (("rule", "step"), np.concatenate([main.eta, np.full((2, 1), np.nan)], axis=1)),
            "cos_beta_b_vs_p": (("width", "seed"), cos_p, {"long_name": "final cos(β, b), FA, λ = 0"}),
            "loss_vs_p": (("width", "seed"), loss_p),
            "cos_beta_b_vs_lam_time": (("lam", "seed", "lam_record"), cos_lam_t),
            "cos_beta_b_vs_lam": (("lam", "seed"), cos_lam_t[:, :, -1], {"long_name": "final cos(β, b), FA"}),
            "loss_vs_lam": (("lam", "seed"), loss_lam),
        },
        coords={
            "rule": rules,
            "step": np.arange(s.steps + 1),
            "record": main.record_steps,
            "width": np.asarray(s.widths),
            "seed": np.asarray(sweep_seeds),
            "lam": np.asarray(s.lams, dtype=float),
            "lam_record": lam_runs[0].record_steps,
        },
        attrs={"experiment": "song2021", "quick": int(quick), "p": s.p, "n": s.n, "d": s.d,
               "activation": s.activation, "main_rule": s.rule, "main_lam": s.lam},
    )
    ds["step"].attrs["units"] = "steps"

    fits = {r: exponential_fit(main.loss[k]) for k, r in enumerate(rules)}
    k_main = rules.index(s.rule)
    summary: dict[str, Any] = {
        "experiment": "song2021",
        "rule": s.rule,
        "loss_final": float(main.loss[k_main, -1]),
        "log_loss_slope": fits[s.rule][0],
        "log_loss_r2": fits[s.rule][1],
        "cos_beta_b_final": float(main.cos_beta_b[k_main, -1]),
        "fit_window": [fits[s.rule][2], fits[s.rule][3]],
    }
    for r, k in zip(rules, range(2), strict=True):
        summary[f"{r}_loss_final"] = float(main.loss[k, -1])
        summary[f"{r}_log_loss_slope"] = fits[r][0]
        summary[f"{r}_log_loss_r2"] = fits[r][1]
        summary[f"{r}_cos_beta_b_final"] = float(main.cos_beta_b[k, -1])
    summary["slope_ratio_bp_fa"] = fits["bp"][0] / fits["fa"][0] if fits["fa"][0] else float("nan")
    summary["eta0"] = float(main.eta[0, 0])
    summary["widths"] = list(s.widths)
    summary["cos_beta_b_vs_p"] = cos_p.mean(axis=1).tolist()
    summary["cos_beta_b_vs_p_sd"] = cos_p.std(axis=1).tolist()
    summary["cos_beta_b_vs_p_exponent"] = _power_law_exponent(np.asarray(s.widths, float), cos_p.mean(axis=1))
    summary["lams"] = list(s.lams)
    summary["cos_beta_b_vs_lam"] = cos_lam_t[:, :, -1].mean(axis=1).tolist()
    summary["cos_beta_b_vs_lam_sd"] = cos_lam_t[:, :, -1].std(axis=1).tolist()
    summary["loss_vs_lam"] = loss_lam.mean(axis=1).tolist()
    summary["sweep_seeds"] = sweep_seeds
    finite = [np.isfinite(main.loss).all(), np.isfinite(loss_p).all()] + [np.isfinite(tr.loss).all() for tr in lam_runs]
    summary["diverged"] = not all(finite)

    data = dataclasses.asdict(s)
    data["quick"] = bool(quick)
    data["provenance"] = provenance()
    config_text = yaml.safe_dump(data, sort_keys=False)
    return Result(ds, to_jsonable(summary), config_text)


def figure(result: Result, directory: str | Path) -> list[Path]:
    """Song2021 figure: FA vs BP loss (log scale), cos(β, b) against the width at λ = 0, against λ, and over time."""

    plt = pyplot()
    ds = result.dataset
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))

    ax = axes[0]
    for rule, style in (("fa", "-"), ("bp", "--")):
        ax.plot(ds["step"].values, ds["loss"].sel(rule=rule).values, style, label=rule.upper())
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss ½Σe²")
    ax.set_title(f"p = {ds.attrs.get('p')}, λ = {ds.attrs.get('main_lam')}")
    ax.legend(frameon=False)

    ax = axes[1]
    widths = ds["width"].values
    cos_p = ds["cos_beta_b_vs_p"].transpose("seed", "width").values
    mean_sd_band(ax, widths, cos_p, marker="o", label="FA")
    ax.plot(widths, np.nanmean(cos_p[:, 0]) * np.sqrt(widths[0] / widths), "k:", label=r"$\propto p^{-1/2}$")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(widths, [str(int(w)) for w in widths])
    ax.legend(frameon=False)
    ax.set_xlabel("width p")
    ax.set_ylabel("cos(β, b)")
    ax.set_ylim(0, 1)
    ax.set_title("FA, λ = 0")

    ax = axes[2]
    lams = ds["lam"].values
    xpos = np.arange(lams.size)
    mean_sd_band(ax, xpos, ds["cos_beta_b_vs_lam"].transpose("seed", "lam").values, marker="o")
    ax.set_xticks(xpos, [f"{v:g}" for v in lams])
    ax.set_xlabel("ridge λ")
    ax.set_ylabel("cos(β, b)")
    ax.set_ylim(0, 1)
    ax.set_title(f"FA, p = {ds.attrs.get('p')}")

    ax = axes[3]
    for k, lam in enumerate(lams):
        mean_sd_band(ax, ds["lam_record"].values, ds["cos_beta_b_vs_lam_time"].isel(lam=k).values,
                     label=f"λ = {lam:g}")
    ax.set_xlabel("step")
    ax.set_ylabel("cos(β, b)")
    ax.set_ylim(-0.1, 1)
    ax.legend(frameon=False, fontsize="small")
    ax.set_title("alignment over training")
    fig.tight_layout()
    return [save_figure(fig, Path(directory) / "song2021.png")]
