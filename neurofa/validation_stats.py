"""Statistics of the spiking-vs-rate validation: agreement measures, seed bands and the convergence slope.

Pure functions on arrays (no backend). The spiking microcircuit is the rate model with Poisson spikes
(docs/science.md §3): when the rate backend is its exact mean field, their differences are spike noise, whose size
falls like 1/√(ν_max T). :func:`convergence_slope` fits that law on a log–log scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["agreement", "Agreement", "convergence_slope", "Slope", "band_check", "BandCheck"]


@dataclass
class Agreement:
    """Pearson correlation and relative RMS error of paired per-neuron values."""

    correlation: float
    rel_rms: float
    n: int


def agreement(reference: np.ndarray, test: np.ndarray) -> Agreement:
    r"""Agreement of ``test`` (spiking) with ``reference`` (rate), over all finite pairs.

    .. math:: \mathrm{rel\,RMS} = \sqrt{\langle (x_s - x_r)^2\rangle} \,/\, \sqrt{\langle x_r^2\rangle}

    (relative to the RMS of the reference, so that a signal that hovers near zero, such as the apical potential
    in the self-predicting state, is judged against its own scale rather than a tiny mean).
    """
    ref = np.asarray(reference, dtype=float).ravel()
    tst = np.asarray(test, dtype=float).ravel()
    if ref.shape != tst.shape:
        raise ValueError(f"shapes differ: {np.shape(reference)} vs {np.shape(test)}")
    ok = np.isfinite(ref) & np.isfinite(tst)
    ref, tst = ref[ok], tst[ok]
    if ref.size < 2:
        return Agreement(float("nan"), float("nan"), int(ref.size))
    scale = np.sqrt(np.mean(ref**2))
    rel = float(np.sqrt(np.mean((tst - ref) ** 2)) / scale) if scale > 0 else float("nan")
    if np.std(ref) == 0 or np.std(tst) == 0:
        corr = float("nan")
    else:
        corr = float(np.corrcoef(ref, tst)[0, 1])
    return Agreement(corr, rel, int(ref.size))


@dataclass
class Slope:
    """Fitted exponent of error ∝ scale^(−slope), with a two-sided confidence interval."""

    slope: float
    ci_low: float
    ci_high: float
    r2: float
    confidence: float

    def within(self, target: float, tolerance: float) -> bool:
        return bool(abs(self.slope - target) <= tolerance)


def convergence_slope(scales: np.ndarray, errors: np.ndarray, confidence: float = 0.95) -> Slope:
    r"""Fit log(error) = c − s · log(scale) by least squares and return s with its confidence interval.

    ``errors`` is (n_scales,) or (n_scales, n_repeats) — repeats (e.g. seeds) at each scale add degrees of freedom.
    For spike noise s = ½ (errors ∝ 1/√(ν_max T), docs/science.md §3).
    """
    scales = np.asarray(scales, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if errors.ndim == 1:
        errors = errors[:, None]
    if errors.shape[0] != scales.size:
        raise ValueError(f"errors has {errors.shape[0]} rows for {scales.size} scales")
    if scales.size < 2:
        raise ValueError("need at least two scales for a slope")
    x = np.repeat(np.log(scales), errors.shape[1])
    y = np.log(errors.ravel())
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    from scipy import stats  # imported here: scipy.stats costs 0.4 s at import, and only this fit needs it

    fit = stats.linregress(x, y)
    dof = x.size - 2
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * fit.stderr) if dof > 0 else float("inf")
    slope = -float(fit.slope)
    return Slope(slope, slope - half, slope + half, float(fit.rvalue**2), confidence)


@dataclass
class BandCheck:
    """Whether a test curve stays within the reference's seed band (mean ± k SD) or a fixed tolerance."""

    passed: bool
    fraction_inside: float
    max_excess: float
    half_width: np.ndarray


def band_check(reference: np.ndarray, test: np.ndarray, k_sd: float = 2.0, tolerance: float = 0.0) -> BandCheck:
    """Compare ``test`` (mean over its seeds) with the band of ``reference`` over seeds.

    Both are (seed, time, ...) arrays on the same time grid. The allowed half-width at each point is the larger of
    ``k_sd`` reference SDs and ``tolerance`` (e.g. 5° for angles). ``max_excess`` is how far the test mean goes beyond
    it at worst (≤ 0 when it never leaves).
    """
    ref = np.asarray(reference, dtype=float)
    tst = np.asarray(test, dtype=float)
    ref_mean = np.nanmean(ref, axis=0)
    half = np.maximum(k_sd * np.nanstd(ref, axis=0), tolerance)
    dev = np.abs(np.nanmean(tst, axis=0) - ref_mean)
    excess = dev - half
    inside = excess <= 0
    return BandCheck(bool(np.all(inside)), float(np.mean(inside)), float(np.nanmax(excess)), half)
