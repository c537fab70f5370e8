"""Subsamples the warmup's losses into the GP test's fixed-shape inputs.

The loss of step i sits at x = i / n, n the number of losses so far, so [0, 1] spans
the warmup and x = 1 is "now". Non-finite losses are left out with their x. Each draw
is without replacement, sorted, and seeded by (seed, test index): every worker of a
distributed run draws the same points from the same losses.
"""

from typing import NamedTuple

import numpy as np

NUM_FIT_POINTS = 100
NUM_CONDITIONING_POINTS = 500


class GPInputs(NamedTuple):
    fit_x: np.ndarray  # [NUM_FIT_POINTS]
    fit_y: np.ndarray
    fit_mask: np.ndarray
    cond_x: np.ndarray  # [num_predictions, NUM_CONDITIONING_POINTS]
    cond_y: np.ndarray
    cond_mask: np.ndarray
    finite_mean: float


def _padded_draw(rng, finite_indices, size):
    """`size` slots: a sorted draw of at most `size` indices, and its mask."""
    count = min(size, finite_indices.size)
    chosen = np.sort(rng.choice(finite_indices, count, replace=False))
    indices = np.zeros(size, np.int64)
    mask = np.zeros(size)
    indices[:count] = chosen
    mask[:count] = 1.0
    return indices, mask


def sample_gp_inputs(losses, num_predictions, seed, test_index, finite_indices=None, ceiling=np.inf, finite_mean=None):
    """Draws the fit points and one conditioning set per prediction from `losses`.

    Each drawn loss is clipped to `ceiling`. `finite_indices` and `finite_mean` (of the
    clipped finite losses) are computed when not given; a `LossRecord` keeps both, so
    that a draw costs the same at any number of losses.
    """
    losses = np.asarray(losses, np.float64)
    n = losses.size
    if finite_indices is None:
        finite_indices = np.flatnonzero(np.isfinite(losses))
    if finite_mean is None:
        finite_mean = float(np.minimum(losses[finite_indices], ceiling).mean())
    rng = np.random.default_rng([seed, test_index])

    def draw(size):
        indices, mask = _padded_draw(rng, finite_indices, size)
        y = np.where(mask > 0, np.minimum(losses[indices], ceiling), 0.0)
        return indices / n, y, mask

    fit = draw(NUM_FIT_POINTS)
    conditioning = [draw(NUM_CONDITIONING_POINTS) for _ in range(num_predictions)]
    cond_x, cond_y, cond_mask = (np.stack(parts) for parts in zip(*conditioning))
    return GPInputs(*fit, cond_x, cond_y, cond_mask, finite_mean)
