import numpy as np
import pytest

from neurofa.validation_stats import agreement, band_check, convergence_slope


def poisson_rate_estimates(rates_hz, window_s, rng):
    return rng.poisson(rates_hz * window_s) / window_s


def test_poisson_estimation_error_falls_like_one_over_sqrt_scale():
    # the law the spiking validation relies on, checked on pure Poisson counts
    rng = np.random.default_rng(0)
    rates = rng.uniform(5, 150, size=200)
    scales = np.array([1.0, 4.0, 16.0])
    errors = np.array([[agreement(rates, poisson_rate_estimates(rates, 0.2 * s, rng)).rel_rms for _ in range(5)]
                       for s in scales])
    fit = convergence_slope(scales, errors)
    assert fit.within(0.5, 0.05)
    assert fit.ci_low < 0.5 < fit.ci_high
    assert agreement(rates, poisson_rate_estimates(rates, 20.0, rng)).correlation > 0.99


def test_a_biased_estimate_does_not_converge():
    rng = np.random.default_rng(1)
    rates = rng.uniform(5, 150, size=200)
    scales = np.array([1.0, 4.0, 16.0])
    errors = np.array([agreement(rates, 0.8 * poisson_rate_estimates(rates, 0.2 * s, rng)).rel_rms for s in scales])
    assert not convergence_slope(scales, errors).within(0.5, 0.15)


def test_band_check_passes_inside_and_fails_outside():
    rng = np.random.default_rng(2)
    t = np.linspace(0, 1, 50)
    ref = 90 * np.exp(-3 * t)[None, :] + rng.normal(0, 2, (10, 50))
    good = 90 * np.exp(-3 * t)[None, :] + rng.normal(0, 2, (3, 50))
    assert band_check(ref, good, tolerance=5).passed
    bad = 90 * np.exp(-1 * t)[None, :] + rng.normal(0, 2, (3, 50))
    check = band_check(ref, bad, tolerance=5)
    assert not check.passed and check.max_excess > 10


def test_agreement_rejects_shape_mismatch_and_ignores_nans():
    with pytest.raises(ValueError):
        agreement(np.ones(3), np.ones(4))
    a = agreement(np.array([1.0, 2.0, np.nan, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert a.n == 3 and a.rel_rms == 0 and a.correlation == pytest.approx(1.0)
