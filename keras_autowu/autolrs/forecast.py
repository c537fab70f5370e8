"""AutoLRS's forecast of where one explored learning rate's loss is heading.

AutoLRS (Jin et al., ICLR 2021, section 4.2) scores each learning rate it explores by
the loss it forecasts at the end of the stage, `tau` steps from the segment's start,
from the `tau'` losses of the segment. As the reference (`autolrs_server.py`,
`exp_forecast`) does it:

1. Smooth: fit a quadratic smoothing spline, drop the points farthest from it, and
   fit again; training losses: the worst 3 % each round, 10 rounds; validation losses:
   the single worst, once. Only points at an index below half the series' length may
   go; the index is the point's place among those left, so after a few rounds points
   a little past the middle may go too (as in the reference, whose forecasts this
   keeps).
2. Fit y = a * exp(b * x) + c to the smoothed curve at every step, with b = -exp(beta):
   for a given beta, a and c by least squares; beta by Nelder-Mead from 0.
3. The forecast is a * exp(b * horizon) + c; a series with a NaN scores `NAN_SCORE`.

The reference's spline is SciPy's `UnivariateSpline(k=2)` with its default smoothing
condition: the sum of squared residuals equals the number of points. When the
least-squares parabola already meets it (every series whose losses stay within about
one unit of a parabola, which is nearly every loss curve), FITPACK returns that
parabola, and so does `smoothing_spline` here. Otherwise FITPACK adds knots, up to
one per point; here a penalised quadratic spline with a knot at every point (at most
`MAX_KNOTS`, spread evenly), its penalty found by bisection, meets the same
condition: the same smoothness budget, not the same curve. Past `MAX_KNOTS`, a series
far noisier than a loss curve may not reach it (800 points whose noise is three times
their fall: forecasts within 15 % of SciPy's). `tests/test_autolrs_forecast.py` measures both against SciPy's.

Departures, each for a defect of the reference:
- A series of 16 points or fewer rounds 3 % to no point, and the reference then
  drops, each round, every point it may; here one point a round, as from 17 points.
- A series with an infinite loss scores `NAN_SCORE` too (the reference's spline
  fails on it).
- The exponential's residual is computed, not taken from `numpy.linalg.lstsq`, which
  returns none when the design is rank-deficient (beta so small that exp(b * x) is 1
  at every step): the reference's Nelder-Mead then fails on a slowly falling series.

NumPy, its linear algebra on one thread (`keras_autowu/blas.py`). A series near a
parabola takes 1 to 2 ms; one that needs the spline's knots 20 to 60 ms up to 800
points.
"""

import numpy as np

from keras_autowu.core import blas
from keras_autowu.gp.bayes_opt import NAN_SCORE

SPLINE_DEGREE = 2
TRAINING_FILTER = dict(share=0.03, rounds=10)
DROPPABLE_SHARE = 0.5  # only points before this share of the series may be dropped
MAX_KNOTS = 100  # interior knots of the penalised spline, at most
_NELDER_MEAD_TOLERANCE = 1e-5  # on beta and on the residual, as the reference's fmin


RULES = ("bounded", "reference")


def forecast(losses, horizon, training=True, rule="reference"):
    """The loss that the series `losses` (one per step, or per evaluation for validation
    losses) forecasts at step `horizon` counted from its first point.

    rule: "reference", the reference's fit; "bounded", the exponential's time constant
      at most the series' length, and the forecast not below 0 when no loss was: a
      series that falls almost linearly no longer extrapolates to a loss far below
      zero (see `fit_exponential`).
    """
    ys = np.asarray(losses, np.float64)
    if ys.size == 0 or not np.all(np.isfinite(ys)):
        return NAN_SCORE
    if ys.size <= SPLINE_DEGREE + 1:
        return float(ys[-1])  # too short for a spline: its last loss
    # A diverging series overflows: scored below. One BLAS thread: see `_blas`.
    with np.errstate(over="ignore", invalid="ignore"), blas.one_thread():
        return _forecast(ys, horizon, training, rule)


def _forecast(ys, horizon, training, rule):
    xs = np.arange(ys.size, dtype=np.float64)
    kept_x, kept_y = drop_outliers(xs, ys, training)
    smoothed = smoothing_spline(kept_x, kept_y, xs)
    bounded = rule == "bounded"
    a, b, c = fit_exponential(xs, smoothed, max_time_constant=float(ys.size) if bounded else None)
    value = a * np.exp(b * horizon) + c
    if bounded and np.all(ys >= 0):
        value = max(value, 0.0)
    return float(value) if np.isfinite(value) else NAN_SCORE


def drop_outliers(xs, ys, training=True):
    """The points left after the rounds of step 1 (see the module docstring)."""
    # The reference compares the current index with this, fixed before the rounds.
    bound = int((xs.size - 1) * DROPPABLE_SHARE)
    rounds = TRAINING_FILTER["rounds"] if training else 1
    for _ in range(rounds):
        if xs.size <= SPLINE_DEGREE + 2:
            break
        distance = np.abs(ys - smoothing_spline(xs, ys, xs))
        count = max(1, int(round(xs.size * TRAINING_FILTER["share"]))) if training else 1
        worst = np.argsort(distance, kind="stable")[-count:]
        drop = worst[worst < bound]
        keep = np.ones(xs.size, bool)
        keep[drop] = False
        xs, ys = xs[keep], ys[keep]
    return xs, ys


def smoothing_spline(xs, ys, at):
    """A quadratic spline through (xs, ys) whose squared residuals sum to len(xs)
    (SciPy's default), evaluated at `at`."""
    smoothing = float(xs.size)
    parabola = np.polyfit(xs, ys, SPLINE_DEGREE)
    if np.sum((np.polyval(parabola, xs) - ys) ** 2) <= smoothing:
        return np.polyval(parabola, at)
    return _penalised_spline(xs, ys, at, smoothing)


def _truncated_power_basis(x, knots, scale):
    u = x[:, None] / scale
    polynomial = u ** np.arange(SPLINE_DEGREE + 1)
    return np.hstack([polynomial, np.maximum(u - knots[None, :] / scale, 0.0) ** SPLINE_DEGREE])


def _penalised_spline(xs, ys, at, smoothing):
    """Ridge on the knots' coefficients, its weight found so that the residual meets
    `smoothing`: more weight, a smoother curve and a larger residual.

    In the orthonormal basis of the fit's space that diagonalises the penalty (Demmler
    and Reinsch), the fit at weight w is sum_i t_i / (1 + w * lambda_i) times the i-th
    orthonormal column, so each step of the bisection costs O(knots), not a solve.
    """
    scale = max(float(xs[-1] - xs[0]), 1.0)
    knots = xs[1:-1]
    if knots.size > MAX_KNOTS:  # evenly among the points: the cost stays flat in the length
        knots = knots[np.linspace(0, knots.size - 1, MAX_KNOTS).round().astype(int)]
    basis = _truncated_power_basis(xs, knots, scale)
    penalty = np.array([0.0] * (SPLINE_DEGREE + 1) + [1.0] * knots.size)
    # basis = U S V' (its rank r: with a knot at every inner point there is one more
    # column than points): the fit is U z, and the penalty, in z, z' S^-1 V' P V S^-1 z.
    left, singular, right_t = np.linalg.svd(basis, full_matrices=False)
    rank = int(np.sum(singular > singular[0] * 1e-12))
    inverse = right_t[:rank].T / singular[:rank]
    penalty_eigenvalues, rotation = np.linalg.eigh(inverse.T @ (penalty[:, None] * inverse))
    penalty_eigenvalues = np.maximum(penalty_eigenvalues, 0.0)
    to_coefficients = inverse @ rotation
    t = rotation.T @ (left[:, :rank].T @ ys)
    base_residual = float(np.sum(ys**2) - np.sum(t**2))  # what no weight can fit

    def residual(log_weight):
        shrink = 1.0 - 1.0 / (1.0 + np.exp(log_weight) * penalty_eigenvalues)
        return base_residual + float(np.sum((t * shrink) ** 2))

    low, high = -30.0, 30.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if residual(middle) > smoothing:
            high = middle
        else:
            low = middle
    coefficients = to_coefficients @ (t / (1.0 + np.exp(low) * penalty_eigenvalues))
    return _truncated_power_basis(np.asarray(at, np.float64), knots, scale) @ coefficients


def _exponential_design(xs, beta):
    return np.stack([np.exp(-np.exp(beta) * xs), np.ones_like(xs)], axis=1)


def _residual(beta, xs, ys):
    """The least-squares residual of a * exp(-exp(beta) * x) + c, a and c solved in
    closed form: Nelder-Mead calls this some 60 times a forecast, and
    `numpy.linalg.lstsq` cost two thirds of the forecast's time."""
    u = np.exp(-np.exp(beta) * xs)
    centred_u, centred_y = u - u.mean(), ys - ys.mean()
    spread = float(centred_u @ centred_u)
    # lstsq's rank test (rcond=None): the design's smaller singular value, about the
    # centred column's norm, below eps * max(n, 2) times the larger one.
    if spread <= (np.finfo(np.float64).eps * max(xs.size, 2)) ** 2 * float(u @ u + xs.size):
        return float(centred_y @ centred_y)  # exp(b * x) is a constant: c alone
    slope = float(centred_u @ centred_y) / spread
    return float(np.sum((centred_y - slope * centred_u) ** 2))


def fit_exponential(xs, ys, max_time_constant=None):
    """(a, b, c) of y = a * exp(b * x) + c, b < 0, fitted as in step 2.

    max_time_constant: when given, -1 / b is at most this. A series that falls almost
    linearly is fitted best by a time constant far beyond its length, with a and c
    huge and of opposite signs, and its forecast is a straight line's extrapolation;
    the bound keeps the curve's bend within the series seen.
    """
    low = -np.log(max_time_constant) if max_time_constant else -np.inf
    beta = max(nelder_mead_1d(lambda value: _residual(max(value, low), xs, ys), 0.0), low)
    design = _exponential_design(xs, beta)
    a, c = np.linalg.lstsq(design, ys, rcond=None)[0]
    return float(a), float(-np.exp(beta)), float(c)


def nelder_mead_1d(function, start, tolerance=_NELDER_MEAD_TOLERANCE, max_iterations=200):
    """The minimiser of `function` near `start`, by Nelder-Mead's simplex in one
    dimension, started, stepped and stopped as SciPy's `fmin` (its defaults, and
    xtol = ftol = `tolerance`). With two vertices, reflecting the worst never lands
    between them: it expands, contracts outside or inside, or shrinks."""
    simplex = np.array([start, start * 1.05 if start != 0 else 0.00025], np.float64)
    values = np.array([function(x) for x in simplex])
    calls = 2
    while calls < max_iterations:
        order = np.argsort(values, kind="stable")
        simplex, values = simplex[order], values[order]
        if abs(simplex[1] - simplex[0]) <= tolerance and abs(values[1] - values[0]) <= tolerance:
            break
        best, worst = simplex
        reflected = 2.0 * best - worst
        f_reflected = function(reflected)
        calls += 1
        if f_reflected < values[0]:
            expanded = 3.0 * best - 2.0 * worst
            f_expanded = function(expanded)
            calls += 1
            simplex[1], values[1] = (expanded, f_expanded) if f_expanded < f_reflected else (reflected, f_reflected)
            continue
        outside = f_reflected < values[1]
        contracted = 1.5 * best - 0.5 * worst if outside else 0.5 * best + 0.5 * worst
        f_contracted = function(contracted)
        calls += 1
        if (f_contracted <= f_reflected) if outside else (f_contracted < values[1]):
            simplex[1], values[1] = contracted, f_contracted
        else:
            simplex[1] = best + 0.5 * (worst - best)
            values[1] = function(simplex[1])
            calls += 1
    return float(simplex[np.argmin(values)])
