"""Where on the warmup's GP curve the decay starts: the hand-over learning rate.

The GP's posterior mean of the loss is a curve over the warmup so far, x in [0, 1],
and x maps to the warmup's learning rate. The reference hands on the learning rate at
the curve's minimum. Along a rising learning rate that minimum lies above what stays
stable for a whole run: an instability takes steps to show in the loss, so the loss
is still lowest at a learning rate that is already too high (the known bias of
learning-rate range tests). Two rules:

- "gp_minimum": the minimum of the posterior mean (the reference).
- "momentum_corrected" (the default): the minimum's learning rate as the optimizer's
  velocity saw it. Keras's SGD (and RMSprop with momentum) adds learning rate x
  gradient to a velocity, v <- momentum * v - lr * g, so a step's size follows the
  momentum-weighted average of the learning rates before it, which along a rising
  learning rate is below the current one. Held constant after the switch, the current
  one would grow the velocity past any size the loss was seen to take (to
  1 / (1 - momentum) times the learning rate, where along the climb it was that times
  the smaller average): the loss blows up some steps after the hand-over. Handing on
  the average keeps the steps' size. For optimizers that multiply an averaged update
  by the learning rate (Adam, LAMB), a step follows the current learning rate, and
  this is "gp_minimum".

Five other rules (a point before the minimum: the steepest fall, 80 % of the fall,
a half or a quarter of the minimum's learning rate, a lag of 5 steps) lost to these
two on the benchmarks and were removed; docs/benchmarks.md, section 4, keeps their
figures.

Pure NumPy on the test's posterior means, one choice per prediction.
"""

import numpy as np

LR_CHOICES = ("momentum_corrected", "gp_minimum")


def velocity_average(learning_rates, momentum):
    """The learning rate a velocity v <- momentum * v + lr * g, zero before the first
    of `learning_rates`, has averaged by the last: (1 - momentum) * sum over k of
    momentum**k * lr[-1 - k]. Held from then on, this learning rate keeps the steps'
    size (for a steady gradient)."""
    reversed_lrs = np.asarray(learning_rates, np.float64)[::-1]
    weights = (1.0 - momentum) * momentum ** np.arange(reversed_lrs.size)
    return float(weights @ reversed_lrs)


def handover_x(posterior_mean):
    """The point x in [0, 1] of each prediction's posterior mean [P, G] that both rules
    start from: its minimum."""
    mean = np.asarray(posterior_mean, np.float64)
    grid = np.linspace(0.0, 1.0, mean.shape[-1])
    return grid[np.argmin(mean, axis=-1)]


class Handover:
    """The learning rate a switch or the warmup's cap hands on, as part of `AutoWUScheduler`."""

    @property
    def _corrects_for_velocity(self):
        return self.config.lr_choice == "momentum_corrected" and bool(self.velocity_momentum)

    def _handed_on(self, lr, step):
        """The learning rate `lr_choice` hands on, from `lr` at the GP's minimum."""
        if self._corrects_for_velocity:
            return self._velocity_average_at(lr, step)
        return lr

    def _velocity_average_at(self, lr, step):
        """`lr`, as the optimizer's velocity averaged the climb up to the step that had it."""
        climb = self.plan.warmup_lrs(np.arange(step), self.state.fast_end)
        at = max(int(np.searchsorted(climb, lr, side="right")) - 1, 0)
        return lr * velocity_average(climb[: at + 1], self.velocity_momentum) / climb[at]

    def _handing_on_the_cap(self, state):
        """`state`, whose warmup ends at its cap, with the learning rate the cap hands on.

        The cap's own learning rate, as in the reference, but for "momentum_corrected"
        the climb's as the optimizer's velocity averaged it, as at a switch: held
        constant, the cap's learning rate would grow SGD's steps past any the loss was
        seen to take (a 5-epoch MLP on the digits handed on 0.90 and blew up 10 steps
        later). Set whenever the cap moves, so that the table holds it before the cap.
        """
        if not self._corrects_for_velocity or state.warmup_end <= 0:
            return state
        climb = self.plan.warmup_lrs(np.arange(state.warmup_end), state.fast_end)
        return state._replace(decay_base_lr=velocity_average(climb, self.velocity_momentum))
