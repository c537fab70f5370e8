"""AutoLRS's Bayesian optimisation of one stage's learning rate, in TensorFlow Probability.

The reference (`autolrs_server.py`) asks scikit-optimize for each learning rate to
explore: `Optimizer([Real(min_lr, max_lr, "log-uniform")], "GP", n_initial_points=1,
acq_func="LCB", acq_func_kwargs={"kappa": 1e6})`, fresh at every stage. That is:

- the learning rate on a log scale, normalised to [0, 1];
- the first one drawn log-uniformly at random;
- each next one at the minimum of the lower confidence bound mu - kappa * sigma of a
  GP fitted to the forecasts so far (constant * Matern 5/2 + white noise, targets
  standardised). With kappa = 1e6 the mean hardly counts: it is the point the GP is
  least sure of, an exploration spread by what the GP has learnt of the curve's
  length scale;
- a learning rate already tried is never explored again.

Here the same model, with its hyperparameters at the maximum of the marginal
likelihood within scikit-optimize's bounds (constant in [0.01, 1000], length scale in
[0.01, 100], noise in [1e-5, 1e5]). scikit-learn finds that maximum by L-BFGS from three
starts; here the constant is solved for in closed form and the length scale and the
noise-to-constant ratio are searched on a coarse log grid and then on a fine one
around the coarse grid's best, at a fixed cost: 1 ms a call, where one fine grid over
the whole range took 14 ms. The acquisition is minimised over `NUM_CANDIDATES` evenly
spaced points (scikit-optimize samples 10,000 and polishes five by L-BFGS).

One departure: a candidate within a quarter of 1 / k of the range from a point explored
is no candidate. When the forecasts are noisy the fitted GP's noise is large, its
uncertainty almost flat, and scikit-optimize proposes points a hair from one explored
(the reference only skips exact repeats): 0.999 next to 1.0, the same learning rate
explored twice. Traced once into a TensorFlow graph, run on the host CPU,
deterministic for a given seed.
"""

import functools

import numpy as np

from keras_autowu.gp import substrate
from keras_autowu.gp.substrate import tf, tfp

# The score of an explored learning rate whose loss was not finite (the reference's).
NAN_SCORE = 1e6
KAPPA = 1e6
NUM_CANDIDATES = 1001
SEPARATION = 0.25  # over the number of points explored: see `LearningRateSearch`
CONSTANT_BOUNDS = (1e-2, 1e3)
LENGTH_SCALE_BOUNDS = (1e-2, 1e2)
NOISE_BOUNDS = (1e-5, 1e5)
# The coarse grid: 11 length scales (0.4 decades apart) by 16 ratios of noise over
# constant (every ratio the bounds allow between the two, 0.67 decades apart).
_LENGTH_SCALES = np.geomspace(*LENGTH_SCALE_BOUNDS, 11)
_NOISE_RATIOS = np.geomspace(NOISE_BOUNDS[0] / CONSTANT_BOUNDS[1], NOISE_BOUNDS[1] / CONSTANT_BOUNDS[0], 16)
# The fine grid: FINE_POINTS a side, spanning one coarse step either side of the best.
FINE_POINTS = 11


def candidates():
    """The points of [0, 1] (log learning rate, normalised) the acquisition is minimised over."""
    return np.linspace(0.0, 1.0, NUM_CANDIDATES)


def _standardised(y, mask):
    count = tf.reduce_sum(mask)
    mean = tf.reduce_sum(y * mask) / count
    std = tf.sqrt(tf.reduce_sum(tf.square(y - mean) * mask) / count)
    std = tf.where(std > 0, std, tf.ones_like(std))
    return (y - mean) / std * mask


def _masked_matrix(correlation, ratio, mask):
    """C + ratio * I over the observed points; the identity where a slot is padding, so
    that a padded slot adds nothing to the likelihood and nothing to the posterior."""
    pair = mask[:, None] * mask[None, :]
    eye = tf.eye(tf.shape(mask)[0], dtype=correlation.dtype)
    return correlation * pair + eye * (ratio[..., None, None] * mask + (1.0 - mask))


def _log_likelihoods(x, z, mask, length_scales, ratios):
    """The log marginal likelihood (up to a constant) of the standardised targets `z` at
    every (length scale, noise ratio) pair, with the constant at its best: [L, R], and
    what the posterior needs (constant, Cholesky factors, weights)."""
    count = tf.reduce_sum(mask)
    kernel = tfp.math.psd_kernels.MaternFiveHalves(length_scale=length_scales[:, None])  # batch [L, 1]
    correlation = kernel.matrix(x[:, None], x[:, None])  # [L, 1, n, n]
    matrices = _masked_matrix(correlation, ratios[None, :], mask)  # [L, R, n, n]
    chol = tf.linalg.cholesky(matrices)
    alpha = tf.linalg.cholesky_solve(chol, tf.broadcast_to(z[:, None], tf.concat([tf.shape(matrices)[:-1], [1]], 0)))
    quad = tf.reduce_sum(z[:, None] * alpha, axis=[-2, -1])
    log_det = 2.0 * tf.reduce_sum(tf.math.log(tf.linalg.diag_part(chol)), axis=-1)
    # The constant that maximises the likelihood for this correlation, within bounds.
    constant = tf.clip_by_value(quad / count, *CONSTANT_BOUNDS)
    log_likelihood = -0.5 * (quad / constant + log_det + count * tf.math.log(constant))
    noise = ratios[None, :] * constant
    allowed = (noise >= NOISE_BOUNDS[0]) & (noise <= NOISE_BOUNDS[1])
    log_likelihood = tf.where(allowed & tf.math.is_finite(log_likelihood), log_likelihood, -np.inf)
    return log_likelihood, constant, chol, alpha


# Entries this close to the largest count as tied with it: with few explored points the
# likelihood is flat over much of the grid, and which of the tied entries is largest
# is float round-off, which differs between TensorFlow and NumPy.
TIE_TOLERANCE = 1e-9


def _best(log_likelihood):
    """The (row, column) of the largest entry, the first of those tied with it;
    tf.gather-able scalars."""
    flat = tf.reshape(log_likelihood, [-1])
    largest = tf.reduce_max(flat)
    tied = flat >= largest - TIE_TOLERANCE * (1.0 + tf.abs(largest))
    best = tf.argmax(tf.cast(tied, tf.int32))
    columns = tf.cast(tf.shape(log_likelihood)[1], best.dtype)
    return best, best // columns, best % columns


def _around(values, index, low=None, high=None):
    """FINE_POINTS log-spaced values from one grid step below values[index] to one above."""
    step = np.log(values[1] / values[0])
    centre = tf.math.log(tf.gather(tf.constant(values, tf.float64), index))
    fine = tf.exp(centre + tf.constant(np.linspace(-step, step, FINE_POINTS), tf.float64))
    return fine if low is None else tf.clip_by_value(fine, low, high)


def lower_confidence_bound(x, y, mask, kappa=KAPPA):
    """mu - kappa * sigma of the fitted GP at every candidate, and the fitted
    (constant, length scale, noise).

    x, y, mask: the explored points in [0, 1], their forecasts and 1.0 for a slot in use
    (0.0 for padding), each of the stage's fixed length.
    """
    dtype = tf.float64
    x, y, mask = (tf.cast(t, dtype) for t in (x, y, mask))
    z = _standardised(y, mask)
    coarse, _, _, _ = _log_likelihoods(x, z, mask, tf.constant(_LENGTH_SCALES, dtype), tf.constant(_NOISE_RATIOS, dtype))
    _, i, j = _best(coarse)
    # tf.gather, not indexing by a computed tensor: it also compiles under XLA once, where
    # indexing needs a slice's bounds at compile time.
    length_scales = _around(_LENGTH_SCALES, i, *LENGTH_SCALE_BOUNDS)
    ratios = _around(_NOISE_RATIOS, j)  # the centre is the coarse best: the fine best is no worse
    log_likelihood, constant, chol, alpha = _log_likelihoods(x, z, mask, length_scales, ratios)
    best, i, j = _best(log_likelihood)
    fitted_constant = tf.gather(tf.reshape(constant, [-1]), best)
    length_scale = tf.gather(length_scales, i)
    chosen_chol = tf.gather_nd(chol, tf.stack([i, j]))
    chosen_alpha = tf.gather_nd(alpha, tf.stack([i, j]))[:, 0]
    at = tf.constant(candidates(), dtype)
    cross = tfp.math.psd_kernels.MaternFiveHalves(length_scale=length_scale).matrix(at[:, None], x[:, None]) * mask
    mean = tf.linalg.matvec(cross, chosen_alpha)
    # The latent function's variance (no observation noise), in units of the constant.
    solved = tf.linalg.triangular_solve(chosen_chol, tf.transpose(cross), lower=True)
    variance = tf.maximum(1.0 - tf.reduce_sum(tf.square(solved), axis=0), 0.0)
    sigma = tf.sqrt(variance * fitted_constant)
    hyperparameters = tf.stack([fitted_constant, length_scale, tf.gather(ratios, j) * fitted_constant])
    return mean - kappa * sigma, hyperparameters


@functools.lru_cache(maxsize=None)
def _compiled():
    # On TensorFlow a graph, not XLA: XLA on the CPU compiles for 3 s and runs the
    # small batched Cholesky factorisations slower (3.5 ms a call against 0.9).
    return substrate.compile(lower_confidence_bound)


class LearningRateSearch:
    """One stage's search: `propose()` the next learning rate to explore, `tell()` its
    forecast. Seeded: the same forecasts give the same learning rates.

    Args:
      min_lr, max_lr: the search's bounds.
      explored: how many learning rates the stage explores (k).
      seed: the first learning rate's draw.
    """

    def __init__(self, min_lr, max_lr, explored, seed):
        self.min_lr, self.max_lr, self.explored = float(min_lr), float(max_lr), int(explored)
        self._rng = np.random.default_rng(seed)
        self.points, self.forecasts = [], []
        # Closer than this (on the normalised scale) to a point explored, a point is the
        # same learning rate again.
        self.separation = SEPARATION / self.explored
        self.hyperparameters = None

    def learning_rate(self, point):
        return float(self.min_lr * (self.max_lr / self.min_lr) ** point)

    def propose(self):
        """The next learning rate to explore: log-uniform at first, then the LCB's minimum."""
        if len(self.points) >= self.explored:
            raise RuntimeError(f"AutoLRS: this stage has explored its {self.explored} learning rates")
        if len(self.points) != len(self.forecasts):
            raise RuntimeError("AutoLRS: tell() the last learning rate's forecast before the next propose()")
        if not self.points:
            point = float(self._rng.uniform())
        else:
            point = self._acquisition_minimum()
        self.points.append(point)
        return self.learning_rate(point)

    def _acquisition_minimum(self):
        n = self.explored
        x, y, mask = np.zeros(n), np.zeros(n), np.zeros(n)
        count = len(self.points)
        x[:count], y[:count], mask[:count] = self.points, self.forecasts, 1.0
        with tf.device("/CPU:0"):
            bound, hyperparameters = _compiled()(tf.constant(x), tf.constant(y), tf.constant(mask))
        self.hyperparameters = np.asarray(hyperparameters)
        near = np.min(np.abs(candidates()[:, None] - np.asarray(self.points)[None, :]), axis=1) < self.separation
        bound = np.where(near, np.inf, np.asarray(bound))
        if np.all(near):  # a range too small for the points: any new one
            bound = np.where(np.isin(candidates(), self.points), np.inf, 0.0)
        return float(candidates()[int(np.argmin(bound))])

    def tell(self, forecast):
        """The forecast loss of the learning rate last proposed (not finite: the reference's 1e6)."""
        if len(self.forecasts) != len(self.points) - 1:
            raise RuntimeError("AutoLRS: tell() follows a propose()")
        forecast = float(forecast)
        self.forecasts.append(forecast if np.isfinite(forecast) else NAN_SCORE)
