"""How far the training loss has come, interval by interval: progress, rise, divergence.

AutoWU looks at the loss twice at every test boundary, in the warmup and after it:

- **Has it made real progress, and then turned?** A GP test can be statistically sure
  of a rise that is a wiggle on a plateau: batch-to-batch variation while the learning
  rate is still tiny, or a periodic pattern when the batches come in the same order
  every epoch. A positive test therefore also needs the loss to have fallen from where
  it started by `min_progress` of its starting level, and the last interval's mean to
  have risen above the best by `min_rise` of that progress. Interval means cancel a
  pattern whose period divides the interval, such as the batch order of an epoch.
- **Has it diverged?** A non-finite loss, or an interval's mean loss that has lost half
  the progress from the first interval to the best, by more than ten standard errors of
  batch noise: the loss blew up, or the network died back to its starting loss. Until
  the loss has fallen (`has_fallen`: by `min_progress` of its start, and by more than
  the noise of interval means), a rise counts only once it is `min_progress` above
  the start: a classifier at chance wanders by more than its step-to-step noise says.
- **Has it drifted up after the warmup?** The hand-over learning rate can sit above
  what stays stable: instability takes steps to build, so the loss climbs slowly after
  the switch instead of blowing up. After the warmup an interval has also drifted when
  its mean has doubled from the best and lost a tenth of the progress, beyond the same
  noise margin. Doubling only counts for a loss that is positive at its best, as
  cross-entropy and squared errors are.
- **Are the weights at its end healthy?** A network can die within one interval while
  the interval's mean still looks fine; a snapshot of its weights is then worthless.
  So an interval is healthy only when the mean of its last quarter has not risen either.
  Even then the last update is unseen: the loss of step s measures the weights before
  step s's update. The loss of the step after a snapshot is the snapshot's own, and
  `has_risen` judges it.

A pure function of the recorded losses, so that a replay makes the same calls.
"""

import collections
import math
from typing import NamedTuple, Optional

import numpy as np

# An interval has risen (diverged) when its mean has lost this share of the progress
# from the first interval to the best...
DIVERGENCE_RISE = 0.5
# ...by more than this many standard errors of an interval's mean: batch noise alone
# should never count as a divergence.
DIVERGENCE_NOISE_MARGIN = 10.0
# An interval has drifted when its mean is this many times the best...
DRIFT_RATIO = 2.0
# ...and has lost this share of the progress: a tiny loss late in a run may double by
# chance, but not come back a tenth of the way to where it started.
DRIFT_RISE = 0.1
# An interval shorter than this is judged on the mean of this many latest losses: the
# mean of two heavy-tailed losses is no measure of progress.
MIN_WINDOW = 10
# The loss has fallen only by more than this many standard errors of the difference of
# two interval means: with 15 % noise per step and 6-step intervals, the lowest of a
# flat start's interval means lies 10 to 20 % below the first by chance.
FALL_NOISE_MARGIN = 3.0
# For Gaussian noise, the median of |x_i - x_j| is 0.954 sigma.
_MEDIAN_ABS_DIFFERENCE_PER_SIGMA = 0.954


def robust_step_noise(losses):
    """The per-step noise (a standard deviation) of a loss series, from the median of
    its successive differences: the median ignores a trend and the odd spike."""
    if len(losses) < 2:
        return 0.0
    return float(np.median(np.abs(np.diff(losses)))) / _MEDIAN_ABS_DIFFERENCE_PER_SIGMA


class IntervalVerdict(NamedTuple):
    """What one test interval's losses say."""

    non_finite: Optional[str]  # "the loss of step 12 is nan", or None
    mean: float  # the interval's mean loss (nan when non-finite)
    risen: bool  # lost half the progress (see the module docstring)
    risen_in_a_row: int  # intervals in a row that have risen, this one included
    tail_risen: bool = False  # the mean of the interval's last quarter has risen
    drifted_in_a_row: int = 0  # intervals in a row that have drifted (see the module docstring)

    @property
    def healthy(self):
        """The loss is fine up to the interval's end: its weights are worth a snapshot."""
        return self.non_finite is None and not self.risen and not self.tail_risen


class LossProgress:
    """The per-interval record of one run's loss; see the module docstring."""

    def __init__(self, min_progress, min_rise):
        self.min_progress = min_progress
        self.min_rise = min_rise
        self.interval_means = []
        self.risen_in_a_row = 0
        # The median |difference| of successive losses, one per interval: O(intervals).
        self._interval_noise = []
        self._last_finite = None
        self._recent = collections.deque(maxlen=MIN_WINDOW)
        self._interval_size = 0  # losses in an interval's mean (the first interval's)

    def add_interval(self, first_step, losses):
        """Records the losses of steps first_step.. (one test interval); returns its verdict."""
        losses = np.asarray(losses, np.float64)
        finite = losses[np.isfinite(losses)]
        if self._last_finite is not None:
            finite = np.concatenate([[self._last_finite], finite])
        if finite.size > 1:
            self._interval_noise.append(float(np.median(np.abs(np.diff(finite)))))
            self._last_finite = float(finite[-1])
        elif finite.size:
            self._last_finite = float(finite[-1])
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            self.risen_in_a_row = self.drifted_in_a_row = 0
            self._recent.clear()
            reason = f"the loss of step {first_step + int(bad[0])} is {losses[bad[0]]}"
            return IntervalVerdict(reason, math.nan, False, 0)
        self._recent.extend(losses.tolist())
        window = losses if losses.size >= MIN_WINDOW else np.asarray(self._recent)
        mean = float(window.mean())
        if not self.interval_means:
            self._interval_size = window.size
        self.interval_means.append(mean)
        risen = self.has_risen(mean, window.size)
        tail = window[-max(1, window.size // 4) :]
        self.risen_in_a_row = self.risen_in_a_row + 1 if risen else 0
        self.drifted_in_a_row = self.drifted_in_a_row + 1 if self.has_drifted(mean, window.size) else 0
        tail_risen = self.has_risen(float(tail.mean()), tail.size)
        return IntervalVerdict(None, mean, risen, self.risen_in_a_row, tail_risen, self.drifted_in_a_row)

    def has_risen(self, mean, count=1):
        """Whether a mean of `count` losses has lost half the progress, beyond noise."""
        return self._risen_by(DIVERGENCE_RISE, mean, count)

    def has_drifted(self, mean, count=1):
        """Whether a mean of `count` losses has doubled from a positive best and lost a
        tenth of the progress, beyond noise."""
        best = min(self.interval_means)
        return best > 0 and mean > DRIFT_RATIO * best and self._risen_by(DRIFT_RISE, mean, count)

    def _risen_by(self, share, mean, count):
        first, best = self.interval_means[0], min(self.interval_means)
        noise = DIVERGENCE_NOISE_MARGIN * self.step_noise() / math.sqrt(count)
        if not self.has_fallen():
            # A loss that never left its start (a classifier at chance) wanders by more
            # than its step-to-step noise says; only a rise clear of the start counts.
            return mean > first + max(self.min_progress * abs(first), noise)
        return mean > best + max(share * (first - best), noise)

    def forgive(self):
        """After a roll-back: the risen intervals, and the losses before it, are history."""
        self.risen_in_a_row = self.drifted_in_a_row = 0
        self._recent.clear()

    def step_noise(self):
        """A robust estimate of the per-step loss noise, from successive differences.

        The median ignores a trend and the odd spike.
        """
        if not self._interval_noise:
            return 0.0
        return float(np.median(self._interval_noise)) / _MEDIAN_ABS_DIFFERENCE_PER_SIGMA

    def progress(self):
        """(first interval's mean - best interval's mean, last's mean - best's)."""
        if not self.interval_means:
            return 0.0, 0.0
        best = min(self.interval_means)
        return self.interval_means[0] - best, self.interval_means[-1] - best

    def has_fallen(self):
        """Whether the best interval's mean lies below the first's by `min_progress` of
        it, and by more than the noise of interval means could take it (the lowest of
        many noisy means lies below their level by chance). Always, with min_progress 0."""
        if self.min_progress <= 0:
            return True
        if not self.interval_means:
            return False
        progress, _ = self.progress()
        return progress >= self.min_progress * abs(self.interval_means[0]) and progress > self._mean_noise(FALL_NOISE_MARGIN)

    def turned_after_progress(self):
        """Whether the loss has fallen (`has_fallen`) and then risen by min_rise of that
        fall: what a positive test needs besides the GP's certainty."""
        if self.min_progress <= 0 and self.min_rise <= 0:
            return True  # the reference's test: the GP alone decides
        if not self.interval_means:
            return False
        progress, rise = self.progress()
        return self.has_fallen() and progress > 0 and rise > 0 and rise >= self.min_rise * progress

    def _mean_noise(self, standard_errors):
        """`standard_errors` standard errors of the difference of two interval means."""
        size = max(self._interval_size, 1)
        return standard_errors * self.step_noise() * math.sqrt(2.0 / size)
