"""The low-rank GP test against TensorFlow Probability's exact GP."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_autowu.gp import minimum_test
from keras_autowu.gp import kernel_features
from keras_autowu.autowu import loss_sampling

tfd, psd = tfp.distributions, tfp.math.psd_kernels


def test_features_reproduce_the_kernel():
    """phi(x) . phi(x') equals the length-0.2 exponentiated quadratic on [0, 1]."""
    x = np.linspace(0.0, 1.0, 301)
    phi = kernel_features.features(x).numpy()
    exact = psd.ExponentiatedQuadratic(np.float64(1.0), np.float64(0.2)).matrix(x[:, None], x[:, None]).numpy()
    assert np.abs(phi @ phi.T - exact).max() < 1e-12


def _exact_kernel(outputscale):
    return psd.ExponentiatedQuadratic(np.sqrt(outputscale), np.float64(0.2))


def _curve(n, rng):
    x = np.arange(n) / n
    return (x - 0.6) ** 2 + 0.05 * rng.standard_normal(n)


def test_likelihood_matches_exact_gp():
    """The Woodbury likelihood equals TFP's GaussianProcess log_prob, padding ignored."""
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(size=60))
    y = (x - 0.4) ** 2 + 0.03 * rng.standard_normal(60)
    mask = np.r_[np.ones(45), np.zeros(15)]
    params = tf.constant([0.3, -6.0, 0.1], tf.float64)
    stats = minimum_test._fit_statistics(tf.constant(x), tf.constant(y), tf.constant(mask))
    ours = float(minimum_test._negative_log_likelihood_per_point(params, stats))
    outputscale, noise, constant = (float(v) for v in minimum_test._unpack(params))
    exact = tfd.GaussianProcess(
        _exact_kernel(outputscale), index_points=x[:45, None], observation_noise_variance=noise,
        mean_fn=lambda t: tf.fill(tf.shape(t)[:-1], tf.constant(constant, tf.float64)), jitter=0.0,
    )
    assert ours == pytest.approx(-float(exact.log_prob(y[:45])) / 45, rel=1e-9)


def test_posterior_matches_exact_gp_regression():
    """Mean and Var(f(x_i) - f(1)) on the grid equal TFP's exact GP regression."""
    rng = np.random.default_rng(2)
    inputs = loss_sampling.sample_gp_inputs(_curve(700, rng), num_predictions=2, seed=0, test_index=0)
    params = tf.constant([0.5, -7.0, 0.2], tf.float64)
    mean, difference_variance = minimum_test._predict(params, inputs.cond_x, inputs.cond_y, inputs.cond_mask)
    outputscale, noise, constant = (float(v) for v in minimum_test._unpack(params))
    for j in range(2):
        exact = tfd.GaussianProcessRegressionModel(
            _exact_kernel(outputscale), index_points=minimum_test.grid()[:, None],
            observation_index_points=inputs.cond_x[j][:, None], observations=inputs.cond_y[j],
            observation_noise_variance=noise, predictive_noise_variance=0.0, jitter=0.0,
            mean_fn=lambda t: tf.fill(tf.shape(t)[:-1], tf.constant(constant, tf.float64)),
        )
        cov = exact.covariance().numpy()
        exact_variance = np.diag(cov) + cov[-1, -1] - 2 * cov[:, -1]
        np.testing.assert_allclose(mean[j], exact.mean(), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(difference_variance[j], exact_variance, rtol=1e-5, atol=1e-10)


def _run(fn, curve, state=None):
    inputs = loss_sampling.sample_gp_inputs(curve, 5, seed=0, test_index=0)
    args = [tf.constant(v, tf.float64) for v in inputs]
    return fn(state or minimum_test.initial_gp_state(), *args)


def test_compiled_equals_eager_and_traces_once():
    """The compiled test gives the eager result, and new data does not retrace it."""
    rng = np.random.default_rng(3)
    compiled = minimum_test.compiled_gp_minimum_test
    _, compiled_result = _run(compiled, _curve(900, rng))
    traces = compiled.experimental_get_tracing_count()
    _, eager_result = _run(minimum_test.gp_minimum_test, _curve(900, np.random.default_rng(3)))
    np.testing.assert_allclose(compiled_result.passed_probability, eager_result.passed_probability, rtol=1e-6)
    for n in (50, 3000, 20000):
        _run(compiled, _curve(n, rng))
    assert compiled.experimental_get_tracing_count() == traces


@pytest.mark.parametrize("params", [[0.3, -6.0, 0.1], [-2.0, 1.5, -0.7], [4.0, -9.0, 2.0]])
def test_likelihood_gradient_is_the_tapes(params):
    """The written-out gradient of the likelihood equals automatic differentiation's."""
    rng = np.random.default_rng(5)
    x = np.sort(rng.uniform(size=80))
    y = (x - 0.4) ** 2 + 0.03 * rng.standard_normal(80)
    mask = np.r_[np.ones(70), np.zeros(10)]
    stats = minimum_test._fit_statistics(tf.constant(x), tf.constant(y), tf.constant(mask))
    params = tf.constant(params, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = minimum_test._negative_log_likelihood_per_point(params, stats)
    np.testing.assert_allclose(minimum_test._likelihood_gradient(params, stats), tape.gradient(loss, params), rtol=1e-9)


def test_a_test_built_in_the_background_is_not_traced_again():
    """build_in_background traces the test for its inputs' shapes; the first real test
    of those shapes waits for it and traces nothing more."""
    compiled = minimum_test.compiled_gp_minimum_test
    shapes_of_no_other_test = dict(num_predictions=7, seed=0, test_index=0)
    before = compiled.experimental_get_tracing_count()
    minimum_test.build_in_background(loss_sampling.sample_gp_inputs(np.zeros(3), **shapes_of_no_other_test))
    inputs = loss_sampling.sample_gp_inputs(_curve(300, np.random.default_rng(6)), **shapes_of_no_other_test)
    minimum_test.wait_for_build(inputs)
    assert compiled.experimental_get_tracing_count() == before + 1
    _, result = minimum_test.run_gp_minimum_test(minimum_test.initial_gp_state(), inputs)
    assert compiled.experimental_get_tracing_count() == before + 1
    assert result.passed_probability.shape == (7,)


def test_fit_moves_hyperparameters_towards_the_data():
    """100 Adam steps lower the per-point negative log-likelihood and carry Adam's state."""
    rng = np.random.default_rng(4)
    curve = _curve(400, rng)
    state, _ = _run(minimum_test.compiled_gp_minimum_test, curve)
    assert float(state.adam_steps) == 100.0
    state, _ = _run(minimum_test.compiled_gp_minimum_test, curve, state)
    assert float(state.adam_steps) == 200.0
    noise = float(minimum_test._unpack(state.params)[1])
    assert noise > minimum_test.INITIAL_NOISE  # the data's noise variance is 2.5e-3


def test_minimum_in_the_past_is_detected_and_located():
    """A parabola with its minimum at x=0.6, seen up to x=1, votes 'passed' near 0.6."""
    state, result = _run(minimum_test.compiled_gp_minimum_test, _curve(1000, np.random.default_rng(5)))
    assert np.all(result.passed_probability.numpy() > 0.95)
    np.testing.assert_allclose(result.argmin_x, 0.6, atol=0.08)


def test_falling_curve_does_not_pass():
    """A loss that is still falling gives a low probability that the minimum is past."""
    x = np.arange(800) / 800
    curve = 1.0 - x + 0.05 * np.random.default_rng(6).standard_normal(800)
    _, result = _run(minimum_test.compiled_gp_minimum_test, curve)
    assert np.all(result.passed_probability.numpy() < 0.95)


def test_sampling_leaves_out_non_finite_losses_and_is_seeded():
    """Non-finite losses are never drawn; the same seed and test index draw the same points."""
    curve = _curve(1000, np.random.default_rng(7))
    curve[::7] = np.nan
    curve[3] = np.inf
    a = loss_sampling.sample_gp_inputs(curve, 5, seed=1, test_index=4)
    b = loss_sampling.sample_gp_inputs(curve, 5, seed=1, test_index=4)
    c = loss_sampling.sample_gp_inputs(curve, 5, seed=1, test_index=5)
    assert np.all(np.isfinite(a.cond_y)) and np.all(np.isfinite(a.fit_y))
    np.testing.assert_array_equal(a.cond_x, b.cond_x)
    assert not np.array_equal(a.cond_x, c.cond_x)
    assert a.cond_mask.sum() == 5 * 500 and a.fit_mask.sum() == 100
    np.testing.assert_allclose(a.cond_y, np.interp(a.cond_x, np.arange(1000) / 1000, np.nan_to_num(curve)))


def test_short_record_is_padded_and_masked():
    """With fewer losses than slots, every finite loss is used once and the rest is masked."""
    inputs = loss_sampling.sample_gp_inputs(np.arange(40.0), 3, seed=0, test_index=0)
    assert inputs.fit_mask.sum() == 40 and inputs.cond_mask.sum() == 3 * 40
    np.testing.assert_array_equal(inputs.cond_x[0][:40], np.arange(40) / 40)
