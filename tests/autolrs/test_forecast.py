"""AutoLRS's loss forecast against the reference's SciPy computation, and its rules."""

import numpy as np
import pytest
from scipy import optimize
from scipy.interpolate import UnivariateSpline

from keras_autowu.autolrs import forecast as autolrs_forecast
from keras_autowu.core.keras_compat import keras
from keras_autowu.autolrs.forecast import NAN_SCORE, drop_outliers, forecast, nelder_mead_1d, smoothing_spline
from reference_forecast import reference_forecast

HORIZON = 1000  # tau: the stage's training steps, which the forecast reaches


def recorded_losses(learning_rate, steps=100, seed=0):
    """Per-step training losses of an MLP on scikit-learn's digits at one learning rate."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng(seed).permutation(len(x))
    losses = []
    for step in range(steps):
        rows = order[(step * 32) % (len(x) - 32):][:32]
        result = model.train_on_batch(x[rows], y[rows])
        losses.append(float(np.ravel(result)[0]))
    return losses


@pytest.mark.parametrize("learning_rate", [0.003, 0.03, 0.3, 3.0])
@pytest.mark.parametrize("training", [True, False])
def test_forecast_of_recorded_losses_is_the_reference_s(learning_rate, training):
    """Real series, from a slow start to a diverging one: the reference's forecast.
    Every one stays within a unit of a parabola, where FITPACK's spline is the
    least-squares parabola. At 0.003 the loss falls almost linearly: the fit's optimum
    is flat in beta, where rounding moves Nelder-Mead's path (and the reference's
    forecast is below zero, a straight line's extrapolation), hence 1e-3."""
    losses = recorded_losses(learning_rate)
    expected = reference_forecast(losses, HORIZON, training)
    if not np.all(np.isfinite(losses)):
        assert forecast(losses, HORIZON, training) == NAN_SCORE
    else:
        assert forecast(losses, HORIZON, training) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_forecast_of_noisy_exponentials_is_the_reference_s(seed):
    rng = np.random.default_rng(seed)
    steps = np.arange(rng.choice([100, 200, 400]))
    losses = rng.uniform(0.5, 3) * np.exp(-steps / rng.uniform(20, 300)) + rng.uniform(0, 1)
    losses = losses + rng.uniform(0.01, 0.3) * rng.standard_normal(steps.size)
    assert forecast(losses, HORIZON) == pytest.approx(reference_forecast(losses, HORIZON), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_a_long_series_too_noisy_for_any_parabola_forecasts_near_the_reference(seed):
    """800 steps whose noise is three times the fall: SciPy's spline takes a knot per
    point or so, ours at most MAX_KNOTS, which bounds its cost; the forecasts stay
    within 15 %."""
    rng = np.random.default_rng(seed)
    steps = np.arange(800, dtype=np.float64)
    losses = 2.0 * np.exp(-steps / 200.0) + 0.5 + 1.5 * rng.standard_normal(steps.size)
    expected = reference_forecast(losses, 8000)
    assert forecast(losses, 8000) == pytest.approx(expected, rel=0.15)


def test_the_exponential_fit_recovers_an_exponential():
    steps = np.arange(100, dtype=np.float64)
    a, b, c = autolrs_forecast.fit_exponential(steps, 2.0 * np.exp(-0.02 * steps) + 0.5)
    assert (a, b, c) == pytest.approx((2.0, -0.02, 0.5), rel=1e-3)


def test_a_nan_or_an_infinity_scores_the_reference_s_penalty():
    losses = list(np.linspace(2.0, 1.0, 100))
    assert forecast(losses[:50] + [np.nan] + losses[51:], HORIZON) == NAN_SCORE
    assert forecast(losses[:50] + [np.inf] + losses[51:], HORIZON) == NAN_SCORE


def test_only_the_first_half_loses_points():
    """Outliers in the second half stay; the first half's go, 3 % a round in training,
    the single worst once for validation losses."""
    steps = np.arange(100, dtype=np.float64)
    losses = 1.0 + 0.001 * np.sin(steps)
    losses[[10, 20, 30, 70, 80]] += 5.0
    kept, _ = drop_outliers(steps, losses, training=True)
    assert {10.0, 20.0, 30.0}.isdisjoint(kept) and {70.0, 80.0} <= set(kept)
    kept, _ = drop_outliers(steps, losses, training=False)
    assert len(kept) == 99 and {70.0, 80.0} <= set(kept)


def test_a_short_series_loses_one_point_a_round():
    """Departure: the reference rounds 3 % of 16 points to none and then drops every
    point it may each round (7 in the first); here the worst one, each of 10 rounds."""
    steps = np.arange(16, dtype=np.float64)
    losses = np.exp(-steps / 10.0)
    losses[3] += 1.0
    kept, _ = drop_outliers(steps, losses, training=True)
    assert 3.0 not in kept and len(kept) == 16 - 10


def test_a_noisy_series_gets_a_spline_that_meets_the_smoothing_condition():
    """Losses more than a unit from any parabola: the spline's squared residuals sum to
    the number of points, as SciPy's do."""
    rng = np.random.default_rng(0)
    steps = np.arange(100, dtype=np.float64)
    losses = 50.0 * np.exp(-steps / 30.0) + 3.0 * rng.standard_normal(steps.size)
    ours = smoothing_spline(steps, losses, steps)
    scipy_spline = UnivariateSpline(steps, losses, k=2)(steps)
    assert np.sum((ours - losses) ** 2) == pytest.approx(len(steps), rel=1e-3)
    assert np.sum((scipy_spline - losses) ** 2) == pytest.approx(len(steps), rel=1e-3)


@pytest.mark.parametrize("function", [lambda b: (b - 1.3) ** 2, lambda b: np.cos(b) + 0.1 * b * b, lambda b: abs(b + 2.7) ** 1.5])
def test_nelder_mead_takes_scipy_s_steps(function):
    expected = optimize.fmin(lambda v: function(v[0]), 0.0, xtol=1e-5, ftol=1e-5, disp=False)[0]
    assert nelder_mead_1d(function, 0.0) == expected


@pytest.mark.parametrize("seed", range(3))
def test_the_smoothed_fit_recovers_an_exponential_through_noise_and_outliers(seed):
    """20 exp(-0.02 x) + 5 with unit noise, and spikes of +30 at 5 % of the first
    half's steps: the rounds drop every spike, and the fit finds a within 10 % and b
    and c within 30 %. The spline's smoothing budget, one unit per point (the
    reference's), flattens the curve's steep start: SciPy's spline gives the same b
    and c (-0.0143 to -0.0165, 3.72 to 4.23 over these seeds), and a curve that falls
    by less than a few units is smoothed to a parabola."""
    rng = np.random.default_rng(seed)
    steps = np.arange(200, dtype=np.float64)
    losses = 20.0 * np.exp(-0.02 * steps) + 5.0 + rng.standard_normal(steps.size)
    spikes = rng.choice(100, 10, replace=False)
    losses[spikes] += 30.0
    kept_x, kept_y = drop_outliers(steps, losses)
    assert set(spikes) <= set(steps) - set(kept_x)
    a, b, c = autolrs_forecast.fit_exponential(steps, smoothing_spline(kept_x, kept_y, steps))
    assert a == pytest.approx(20.0, rel=0.1)
    assert (b, c) == pytest.approx((-0.02, 5.0), rel=0.3)
    assert forecast(losses, HORIZON) == pytest.approx(c, rel=1e-4)


def test_the_forecast_runs_numpy_s_linear_algebra_on_one_thread(monkeypatch):
    # OpenBLAS's threads wait for the cores TensorFlow holds: 31 ms an SVD inside a fit
    # against 2.5 ms on one thread (keras_autowu/_blas.py).
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    if not blas_threads() or max(blas_threads()) == 1:
        pytest.skip("NumPy's BLAS runs on one thread here already")
    seen = []
    spline = autolrs_forecast.smoothing_spline

    def recording_spline(*args):
        seen.append(blas_threads())
        return spline(*args)

    monkeypatch.setattr(autolrs_forecast, "smoothing_spline", recording_spline)
    noisy = 2.0 * np.exp(-np.arange(200) / 50.0) + np.random.default_rng(0).normal(0, 2.0, 200)
    forecast(noisy, HORIZON, training=True)
    assert seen and all(threads == [1] * len(threads) for threads in seen)
    assert max(blas_threads()) > 1  # and back to as many as before, after the forecast
