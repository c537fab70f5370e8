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
- "momentum_corrected": the minimum's learning rate as the optimizer's velocity saw
  it. Keras's SGD (and RMSprop with momentum) adds learning rate x gradient to a
  velocity, v <- momentum * v - lr * g, so a step's size follows the momentum-weighted
  average of the learning rates before it, which along a rising learning rate is
  below the current one. Held constant after the switch, the current one would grow
  the velocity past any size the loss was seen to take (to 1 / (1 - momentum) times
  the learning rate, where along the climb it was that times the smaller average):
  the loss blows up some steps after the hand-over. Handing on the average keeps
  the steps' size. For optimizers that multiply an averaged update by the learning
  rate (Adam, LAMB), a step follows the current learning rate, and this is
  "gp_minimum".
- "lag_corrected": the learning rate LOSS_LAG_STEPS steps of the climb before the
  minimum's. The bias above is a lag: a step's loss answers the learning rates of the
  steps before it (momentum averages about ten updates, and an instability takes steps
  to build up), so the curve's minimum is the right point read against the wrong
  learning rate. The lag is counted in steps, so a climb that is faster per step (a
  short run, a large batch) is corrected more, and a slow one hardly at all.

Pure NumPy on the test's posterior means, one choice per prediction.
"""

import numpy as np

LR_CHOICES = ("momentum_corrected", "lag_corrected", "gp_minimum", "gp_minimum/2", "gp_minimum/4", "steepest", "drop_share")
DROP_SHARE = 0.8
# Measured on MNIST-1D with SGD at batch 2048 (docs/benchmarks.md, section 3): 5 steps
# hand on about half the minimum's learning rate there, 10 steps a third, too low.
LOSS_LAG_STEPS = 5


def lr_multiplier(lr_choice, climb_over_lag=1.0):
    """What the learning rate at `handover_x` is multiplied by. `climb_over_lag`: the
    warmup's learning rate now over its learning rate LOSS_LAG_STEPS steps earlier."""
    if lr_choice == "lag_corrected":
        return 1.0 / climb_over_lag
    _, _, divisor = lr_choice.partition("/")
    return 1.0 / int(divisor) if divisor else 1.0


def velocity_average(learning_rates, momentum):
    """The learning rate a velocity v <- momentum * v + lr * g, zero before the first
    of `learning_rates`, has averaged by the last: (1 - momentum) * sum over k of
    momentum**k * lr[-1 - k]. Held from then on, this learning rate keeps the steps'
    size (for a steady gradient)."""
    reversed_lrs = np.asarray(learning_rates, np.float64)[::-1]
    weights = (1.0 - momentum) * momentum ** np.arange(reversed_lrs.size)
    return float(weights @ reversed_lrs)


def handover_x(posterior_mean, lr_choice):
    """The chosen point x in [0, 1] of each prediction's posterior mean [P, G]."""
    mean = np.asarray(posterior_mean, np.float64)
    grid = np.linspace(0.0, 1.0, mean.shape[-1])
    minimum = np.argmin(mean, axis=-1)
    if lr_choice.startswith("gp_minimum") or lr_choice.endswith("_corrected"):
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
