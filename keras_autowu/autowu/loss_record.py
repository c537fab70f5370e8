"""The run's per-step losses, kept so that a test costs the same at any run length.

A test needs the losses so far, the indices of the finite ones (the GP leaves the
others out) and their mean, clipped to the first test interval's highest (see
`AutoWUScheduler`). Rebuilding these from a Python list at every test cost O(steps):
34 ms at 500,000 steps. Here they grow with the run, in amortised O(1) a step, and a
test reads them as views.
"""

import math

import numpy as np


class LossRecord:
    """The losses of steps 0..len-1 (float64), the finite ones' indices, and their
    running clipped sum."""

    def __init__(self):
        self._values = np.empty(1024)
        self._finite = np.empty(1024, np.int64)
        self._size = 0
        self._finite_size = 0
        self.ceiling = math.inf
        self._clipped_sum = 0.0

    def __len__(self):
        return self._size

    def __getitem__(self, item):
        return self.values[item]

    def __iter__(self):
        return iter(self.values)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype)

    @property
    def values(self):
        """The losses, a view."""
        return self._values[: self._size]

    @property
    def finite_indices(self):
        """The steps whose loss is finite, in order, a view."""
        return self._finite[: self._finite_size]

    def extend(self, losses):
        losses = np.asarray(losses, np.float64).ravel()
        start, stop = self._size, self._size + losses.size
        self._values = _grown(self._values, stop)
        self._values[start:stop] = losses
        finite = np.flatnonzero(np.isfinite(losses))
        self._finite = _grown(self._finite, self._finite_size + finite.size)
        self._finite[self._finite_size : self._finite_size + finite.size] = finite + start
        self._finite_size += finite.size
        self._size = stop
        self._clipped_sum += float(np.minimum(losses[finite], self.ceiling).sum())

    def clip_at(self, ceiling):
        """From now on the clipped sum counts a loss above `ceiling` as `ceiling`."""
        self.ceiling = float(ceiling)
        self._clipped_sum = float(np.minimum(self.values[self.finite_indices], self.ceiling).sum())

    def finite_count(self, stop=None):
        """How many of the losses of steps 0..stop-1 are finite."""
        return self._finite_size if stop is None else int(np.searchsorted(self.finite_indices, stop))

    def clipped_finite_mean(self):
        return self._clipped_sum / self._finite_size if self._finite_size else math.nan

    def tolist(self):
        return self.values.tolist()


def _grown(buffer, size):
    if size <= buffer.size:
        return buffer
    grown = np.empty(max(size, 2 * buffer.size), buffer.dtype)
    grown[: buffer.size] = buffer
    return grown
