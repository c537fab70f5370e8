"""The "minimum passed?" test: a GP fitted to the warmup's losses.

A pure function of tensors: losses (already subsampled and padded to fixed shapes, see
`loss_sampling`) and the GP's carried-over state in; the new state and the decision's
ingredients out. It is compiled once with XLA and runs on the host CPU.

The model is the reference's: constant mean, kernel
`outputscale * exp(-(x - x')**2 / (2 * 0.2**2))`, Gaussian noise with a floor of 1e-4.
The outputscale, the noise and the constant are fitted by 100 Adam steps on the
negative marginal log-likelihood per point, on the outputscale's and the noise's
softplus-inverse as GPyTorch parameterises them; the fit starts from the previous
test's values and Adam state. Each prediction then conditions on its own subsample and
gives the latent posterior on 500 points of [0, 1]. Only what the decision needs is
computed: the posterior mean, and the variance of f(x_i) - f(1) for every grid point.

Both steps are exact (to float64 round-off) in the weight space of
`kernel_features`: with K = outputscale * Phi Phi^T + noise * I, Woodbury and the
determinant lemma reduce every solve to the 19 x 19 matrix Phi^T Phi.
float64 throughout: the noise can be 1e-4 of the outputscale, and the test is cheap.
"""

import functools
import math
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from keras_autowu.gp import kernel_features

NUM_GRID_POINTS = 500
NUM_FIT_STEPS = 100
FIT_LEARNING_RATE = 0.01
NOISE_FLOOR = 1e-4
INITIAL_NOISE = 1e-3
# Added to the variance of each difference, as the reference does, for stability.
DIFFERENCE_VARIANCE_JITTER = 1e-4

_ADAM_BETA_1, _ADAM_BETA_2, _ADAM_EPSILON = 0.9, 0.999, 1e-8
_outputscale_bijector = tfp.bijectors.Softplus()


@functools.lru_cache(maxsize=None)
def _noise_bijector():
    # Made on first use, not at import: a tensor made at import would start
    # TensorFlow's runtime, after which a script can no longer configure devices.
    return tfp.bijectors.Softplus(low=tf.constant(NOISE_FLOOR, tf.float64))


class GPState(NamedTuple):
    """The GP's fitted values and Adam's moments, carried from test to test.

    `params` holds (raw outputscale, raw noise, constant mean).
    """

    params: tf.Tensor
    adam_m: tf.Tensor
    adam_v: tf.Tensor
    adam_steps: tf.Tensor


class GPTestResult(NamedTuple):
    """The test's ingredients, one entry per prediction.

    passed_probability: max over earlier grid points of P(f(x_i) < f(1)).
    argmin_x: the grid point where the posterior mean is lowest.
    posterior_mean: the posterior mean on the grid, for plots.
    """

    passed_probability: tf.Tensor
    argmin_x: tf.Tensor
    posterior_mean: tf.Tensor


def initial_gp_state():
    """The reference's starting values: outputscale softplus(0), noise 1e-3."""
    raw_noise = _noise_bijector().inverse(tf.constant(INITIAL_NOISE, tf.float64))
    params = tf.stack([tf.constant(0.0, tf.float64), raw_noise, tf.constant(0.0, tf.float64)])
    zeros = tf.zeros([3], tf.float64)
    return GPState(params, zeros, zeros, tf.constant(0.0, tf.float64))


def grid():
    return tf.linspace(tf.constant(0.0, tf.float64), 1.0, NUM_GRID_POINTS)


def _unpack(params):
    outputscale = _outputscale_bijector.forward(params[0])
    noise = _noise_bijector().forward(params[1])
    return outputscale, noise, params[2]


def _fit_statistics(x, y, mask):
    """What the likelihood needs of the data, for any hyperparameters."""
    phi = kernel_features.features(x) * mask[:, None]
    y = y * mask
    eigenvalues, eigenvectors = tf.linalg.eigh(tf.linalg.matmul(phi, phi, transpose_a=True))
    eigenvalues = tf.maximum(eigenvalues, 0.0)
    project = lambda v: tf.linalg.matvec(eigenvectors, tf.linalg.matvec(phi, v, transpose_a=True), transpose_a=True)
    return dict(
        count=tf.reduce_sum(mask),
        sum_y=tf.reduce_sum(y),
        sum_y2=tf.reduce_sum(y * y),
        projected_y=project(y),
        projected_ones=project(mask),
        eigenvalues=eigenvalues,
    )


def _negative_log_likelihood_per_point(params, stats):
    outputscale, noise, constant = _unpack(params)
    n = stats["count"]
    # Residual e = y - constant on the valid points.
    e_dot_e = stats["sum_y2"] - 2.0 * constant * stats["sum_y"] + constant**2 * n
    z = stats["projected_y"] - constant * stats["projected_ones"]
    eigenvalues = stats["eigenvalues"]
    # e^T K^-1 e = (e.e - sum_j z_j^2 / (noise / outputscale + lambda_j)) / noise
    quadratic = (e_dot_e - tf.reduce_sum(z**2 / (noise / outputscale + eigenvalues))) / noise
    log_det = n * tf.math.log(noise) + tf.reduce_sum(tf.math.log1p(outputscale * eigenvalues / noise))
    return 0.5 * (quadratic + log_det) / n + 0.5 * math.log(2.0 * math.pi)


def _fit(state, stats):
    def adam_step(i, params, m, v, t):
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = _negative_log_likelihood_per_point(params, stats)
        grad = tape.gradient(loss, params)
        t = t + 1.0
        m = _ADAM_BETA_1 * m + (1.0 - _ADAM_BETA_1) * grad
        v = _ADAM_BETA_2 * v + (1.0 - _ADAM_BETA_2) * grad**2
        m_hat = m / (1.0 - _ADAM_BETA_1**t)
        v_hat = v / (1.0 - _ADAM_BETA_2**t)
        params = params - FIT_LEARNING_RATE * m_hat / (tf.sqrt(v_hat) + _ADAM_EPSILON)
        return i + 1, params, m, v, t

    _, params, m, v, t = tf.while_loop(
        lambda i, *_: i < NUM_FIT_STEPS,
        adam_step,
        (tf.constant(0), state.params, state.adam_m, state.adam_v, state.adam_steps),
    )
    return GPState(params, m, v, t)


def _predict(params, x, y, mask):
    """Posterior on the grid given one subsample per row of x, y, mask."""
    outputscale, noise, constant = _unpack(params)
    amplitude = tf.sqrt(outputscale)
    phi = kernel_features.features(x) * mask[..., None]  # [P, n, r]
    residual = (y - constant) * mask
    r = kernel_features.num_features()
    # Posterior of the weights w in f = constant + amplitude * phi . w, w ~ N(0, I).
    precision = tf.eye(r, dtype=tf.float64) + (outputscale / noise) * tf.linalg.matmul(phi, phi, transpose_a=True)
    chol = tf.linalg.cholesky(precision)
    rhs = (amplitude / noise) * tf.linalg.matvec(phi, residual, transpose_a=True)
    weights = tf.linalg.cholesky_solve(chol, rhs[..., None])[..., 0]
    phi_grid = kernel_features.features(grid())  # [G, r]
    mean = constant + amplitude * tf.linalg.matvec(phi_grid, weights)  # [P, G]
    # Var(f(x_i) - f(1)) = outputscale * |L^-1 (phi_i - phi_last)|^2
    differences = tf.transpose(phi_grid - phi_grid[-1])  # [r, G]
    differences = tf.broadcast_to(differences, [tf.shape(chol)[0], r, NUM_GRID_POINTS])
    solved = tf.linalg.triangular_solve(chol, differences, lower=True)
    difference_variance = outputscale * tf.reduce_sum(solved**2, axis=-2)
    return mean, difference_variance


def _passed_probability(mean, difference_variance):
    """max_i P(f(x_i) < f(1)) over earlier grid points, from the marginals of the differences."""
    mean_difference = mean[..., :-1] - mean[..., -1:]
    std = tf.sqrt(difference_variance[..., :-1] + DIFFERENCE_VARIANCE_JITTER)
    return tf.reduce_max(tfp.distributions.Normal(mean_difference, std).cdf(0.0), axis=-1)


def gp_minimum_test(state, fit_x, fit_y, fit_mask, cond_x, cond_y, cond_mask, constant_init):
    """Refits the GP and runs its predictions.

    Args:
      state: `GPState` from the previous test (or `initial_gp_state()`).
      fit_x, fit_y, fit_mask: [F] float64: the points the hyperparameters are fitted on.
      cond_x, cond_y, cond_mask: [P, C] float64: one subsample per prediction.
      constant_init: float64 scalar, the mean of the finite losses; the constant mean
        restarts from it at every test, as in the reference.

    Returns:
      (new `GPState`, `GPTestResult`).
    """
    state = state._replace(params=tf.tensor_scatter_nd_update(state.params, [[2]], [constant_init]))
    state = _fit(state, _fit_statistics(fit_x, fit_y, fit_mask))
    mean, difference_variance = _predict(state.params, cond_x, cond_y, cond_mask)
    probability = _passed_probability(mean, difference_variance)
    argmin_x = tf.gather(grid(), tf.argmin(mean, axis=-1))
    return state, GPTestResult(probability, argmin_x, mean)


compiled_gp_minimum_test = tf.function(gp_minimum_test, jit_compile=True)
