"""Has the loss moved yet? What ends the warmup's fast climb over a flat start.

The exponential warmup spends as many steps on each decade of the learning rate, and
at `min_lr` most networks do not train: on our benchmarks the loss stays at its
starting level for the first two or three of the five decades, close to a third of a
short run. So while the loss has not moved, the warmup climbs `flat_start_speedup`
times faster, and it returns to its steady pace at the first check where it has (see
`schedule.warmup_position`). The checks come `flat_start_speedup` times as often as
the tests, so that the learning rate climbs no further between two of them than it
does between two tests.

The loss has moved when the mean of the latest `window` losses differs from the mean
of the first test interval's by more than `MIN_MOVE` of it and by more than
`NOISE_MARGIN` standard errors of that difference: batch noise alone must not end the
fast climb. A non-finite loss has moved. A pure function of the losses, so that a
replay decides alike.
"""

import math

import numpy as np

from keras_autowu.autowu.progress import robust_step_noise

# A loss that has moved by this share of its starting level is training (a floor: the
# noise margin below decides where the batch noise is larger).
MIN_MOVE = 0.005
# ...and by this many standard errors of the difference of the two means.
NOISE_MARGIN = 5.0
# The latest losses a check averages, at most (at least its own interval's).
MAX_WINDOW = 8


def check_interval(test_interval, speedup, steps_per_execution=1, steps_per_epoch=None):
    """Steps between the fast climb's checks: `speedup` to a test interval.

    A check's decision changes the learning rate of the steps after it, so it must
    fall where the training loop hands over the losses: a multiple of
    `steps_per_execution` (chunks that restart every epoch: at the tests only).
    """
    if speedup <= 1:
        return test_interval
    chunk = max(1, steps_per_execution)
    if steps_per_epoch is not None and steps_per_epoch % chunk:
        return test_interval
    return max(chunk, test_interval // speedup // chunk * chunk)


def window(test_interval, interval):
    """How many latest losses a check every `interval` steps averages."""
    return max(interval, min(test_interval, MAX_WINDOW))


def loss_has_moved(losses, reference_count, window_size):
    """Whether the last `window_size` of `losses` (all the run's so far) have moved from
    the first `reference_count`; see the module docstring. None: too few losses yet."""
    losses = np.asarray(losses, np.float64)
    if losses.size < reference_count + window_size:
        return None
    latest = losses[-window_size:]
    if not np.all(np.isfinite(latest)):
        return True
    reference = losses[:reference_count]
    reference = reference[np.isfinite(reference)]
    if not reference.size:
        return True
    start, now = float(reference.mean()), float(latest.mean())
    noise = robust_step_noise(losses[np.isfinite(losses)])
    margin = max(MIN_MOVE * abs(start), NOISE_MARGIN * noise * math.sqrt(1 / reference.size + 1 / latest.size))
    return abs(now - start) > margin


def loss_rose(losses, reference_count, window_size):
    """Whether a loss that has moved (`loss_has_moved`) went up: its latest losses are
    not all finite, or their mean is above the first `reference_count`'s."""
    losses = np.asarray(losses, np.float64)
    latest, reference = losses[-window_size:], losses[:reference_count]
    reference = reference[np.isfinite(reference)]
    if not np.all(np.isfinite(latest)) or not reference.size:
        return True
    return float(latest.mean()) > float(reference.mean())
