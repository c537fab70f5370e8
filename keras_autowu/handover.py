"""Where on the warmup's GP curve the decay starts: the hand-over learning rate.

The GP's posterior mean of the loss is a curve over the warmup so far, x in [0, 1],
and x maps to the warmup's learning rate. The reference hands on the learning rate at
the curve's minimum. Along a rising learning rate that minimum lies above what stays
stable for a whole run: an instability takes steps to show in the loss, so the loss
is still lowest at a learning rate that is already too high (the known bias of
learning-rate range tests). The other rules pick a point before the minimum:

- "gp_minimum": the minimum of the posterior mean (the reference).
- "steepest": where the posterior mean falls fastest per unit of x (per unit of log
  learning rate, for the exponential warmup), before the minimum.
- "drop_share": the first point where the posterior mean has made DROP_SHARE of its
  whole fall from x = 0 to the minimum.
- "gp_minimum/2", "gp_minimum/4": a half, a quarter of the learning rate at the minimum.

Pure NumPy on the test's posterior means, one choice per prediction.
"""

import numpy as np

LR_CHOICES = ("gp_minimum", "gp_minimum/2", "gp_minimum/4", "steepest", "drop_share")
DROP_SHARE = 0.8


def lr_multiplier(lr_choice):
    """What the learning rate at `handover_x` is multiplied by."""
    _, _, divisor = lr_choice.partition("/")
    return 1.0 / int(divisor) if divisor else 1.0


def handover_x(posterior_mean, lr_choice):
    """The chosen point x in [0, 1] of each prediction's posterior mean [P, G]."""
    mean = np.asarray(posterior_mean, np.float64)
    grid = np.linspace(0.0, 1.0, mean.shape[-1])
    minimum = np.argmin(mean, axis=-1)
    if lr_choice.startswith("gp_minimum"):
        return grid[minimum]
    chosen = np.empty(mean.shape[0], np.int64)
    for row, (curve, stop) in enumerate(zip(mean, minimum)):
        before = curve[: stop + 1]
        if stop == 0:
            chosen[row] = 0
        elif lr_choice == "steepest":
            chosen[row] = int(np.argmin(np.diff(before)))
        else:
            target = before[0] - DROP_SHARE * (before[0] - before[-1])
            chosen[row] = int(np.argmax(before <= target))
    return grid[chosen]
