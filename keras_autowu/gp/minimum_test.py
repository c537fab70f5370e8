"""The "minimum passed?" test: a GP fitted to the warmup's losses.

A pure function of tensors: losses (already subsampled and padded to fixed shapes, see
`loss_sampling`) and the GP's carried-over state in; the new state and the decision's
ingredients out. It is traced once into a graph and runs on the host CPU; a run starts
building it in the background (`build_in_background`).

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
import threading
from typing import NamedTuple

import numpy as np

from keras_autowu.gp import kernel_features, substrate
from keras_autowu.gp.substrate import tf, tfp

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


@functools.lru_cache(maxsize=None)
def initial_gp_state():
    """The reference's starting values: outputscale softplus(0), noise 1e-3."""
    raw_noise = _noise_bijector().inverse(tf.constant(INITIAL_NOISE, tf.float64))
    params = tf.stack([tf.constant(0.0, tf.float64), raw_noise, tf.constant(0.0, tf.float64)])
    zeros = tf.zeros([3], tf.float64)
    return GPState(params, zeros, zeros, tf.constant(0.0, tf.float64))


def grid():
    return tf.constant(_grid_values())


@functools.lru_cache(maxsize=None)
def _grid_values():
    return np.linspace(0.0, 1.0, NUM_GRID_POINTS)


@functools.lru_cache(maxsize=None)
def _grid_features():
    """phi on the grid, and its differences to the last point, [r, G]: constants of the
    test, computed once so that no call or trace pays for them."""
    with tf.init_scope():
        phi_grid = np.asarray(kernel_features.features(_grid_values()))
    return phi_grid, np.ascontiguousarray((phi_grid - phi_grid[-1]).T)


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


def _residual_terms(params, stats):
    """e.e, z and w of the likelihood; e = y - constant on the valid points."""
    outputscale, noise, constant = _unpack(params)
    e_dot_e = stats["sum_y2"] - 2.0 * constant * stats["sum_y"] + constant**2 * stats["count"]
    # z: e projected on the eigenvectors of Phi^T Phi; e^T K^-1 e = (e.e - z.w) / noise.
    z = stats["projected_y"] - constant * stats["projected_ones"]
    w = z / (noise / outputscale + stats["eigenvalues"])
    return outputscale, noise, constant, e_dot_e, z, w


def _negative_log_likelihood_per_point(params, stats):
    outputscale, noise, _, e_dot_e, z, w = _residual_terms(params, stats)
    n, eigenvalues = stats["count"], stats["eigenvalues"]
    quadratic = (e_dot_e - tf.reduce_sum(z * w)) / noise
    log_det = n * tf.math.log(noise) + tf.reduce_sum(tf.math.log1p(outputscale * eigenvalues / noise))
    return 0.5 * (quadratic + log_det) / n + 0.5 * math.log(2.0 * math.pi)


def _likelihood_gradient(params, stats):
    """The gradient of `_negative_log_likelihood_per_point` in `params`.

    Written out rather than taken by a GradientTape: it is a third fewer ops in each
    of the fit's 100 steps, and a smaller graph to trace. A test checks it against
    the tape's.
    """
    outputscale, noise, constant, e_dot_e, z, w = _residual_terms(params, stats)
    n, eigenvalues = stats["count"], stats["eigenvalues"]
    z_dot_w = tf.reduce_sum(z * w)
    w_dot_w = tf.reduce_sum(w * w)
    spread = noise + outputscale * eigenvalues
    d_outputscale = -w_dot_w / outputscale**2 + tf.reduce_sum(eigenvalues / spread)
    d_noise = (
        -(e_dot_e - z_dot_w) / noise**2
        + w_dot_w / (outputscale * noise)
        + n / noise
        - tf.reduce_sum(outputscale * eigenvalues / spread) / noise
    )
    d_constant = 2.0 * (constant * n - stats["sum_y"] + tf.reduce_sum(w * stats["projected_ones"])) / noise
    # Both bijectors are softplus (plus a constant): d softplus(r) / dr = sigmoid(r).
    return (0.5 / n) * tf.stack(
        [d_outputscale * tf.math.sigmoid(params[0]), d_noise * tf.math.sigmoid(params[1]), d_constant]
    )


def _fit(state, stats):
    def adam_step(i, params, m, v, t):
        grad = _likelihood_gradient(params, stats)
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
    phi_grid, differences = _grid_features()  # [G, r], [r, G]
    mean = constant + amplitude * tf.linalg.matvec(tf.constant(phi_grid), weights)  # [P, G]
    # Var(f(x_i) - f(1)) = outputscale * |L^-1 (phi_i - phi_last)|^2
    differences = tf.broadcast_to(tf.constant(differences), [tf.shape(chol)[0], r, NUM_GRID_POINTS])
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
    # A new tensor, not a scatter: the NumPy substrate's scatter writes into its input.
    state = state._replace(params=tf.stack([state.params[0], state.params[1], constant_init]))
    state = _fit(state, _fit_statistics(fit_x, fit_y, fit_mask))
    mean, difference_variance = _predict(state.params, cond_x, cond_y, cond_mask)
    probability = _passed_probability(mean, difference_variance)
    argmin_x = tf.gather(grid(), tf.argmin(mean, axis=-1))
    return state, GPTestResult(probability, argmin_x, mean)


# On TensorFlow a graph, not XLA: XLA's compile (2 s on 2 cores) would cost a short
# fit more than its 4 ms a test saves.
compiled_gp_minimum_test = substrate.compile(gp_minimum_test)

_builds = {}  # the inputs' shapes -> the thread that builds the test for them
_builds_lock = threading.Lock()


def _shapes(inputs):
    return tuple(np.shape(v) for v in inputs)


def build_in_background(example_inputs):
    """Traces the compiled test and runs it once, on a thread of its own, for inputs of
    the shapes of `example_inputs` (fit_x .. constant_init of `gp_minimum_test`).

    A fresh process's first trace and graph optimisation of the test take about 0.4 s
    on 2 cores; started when a run starts, they overlap its first steps instead of
    holding up its first test. Once per process and shapes; the test is a pure
    function, so the extra call changes nothing.
    """
    if not substrate.ON_TENSORFLOW:
        return  # nothing to trace
    key = _shapes(example_inputs)
    with _builds_lock:
        if key in _builds:
            return
        # Not a daemon: a process that ends mid-build waits for it rather than tearing
        # TensorFlow down under it.
        _builds[key] = threading.Thread(target=_build, args=(example_inputs,), name="keras-autowu-gp-build")
    _builds[key].start()


def _build(example_inputs):
    try:
        run_gp_minimum_test(initial_gp_state(), example_inputs, wait=False)
    except Exception:  # pylint: disable=broad-except
        pass  # the run's own first test meets the same error, and reports it


def wait_for_build(inputs):
    """Returns once any build for the shapes of `inputs` has finished."""
    build = _builds.get(_shapes(inputs))
    if build is not None:
        build.join()


def run_gp_minimum_test(state, inputs, wait=True):
    """`compiled_gp_minimum_test` on the host CPU, with NumPy or tensor inputs, once
    any build of their shapes has finished."""
    if wait:
        wait_for_build(inputs)
    # Tensors, not Python floats, so that the compiled test never retraces.
    inputs = [tf.constant(value, tf.float64) for value in inputs]
    with tf.device("/CPU:0"):
        return compiled_gp_minimum_test(state, *inputs)

