"""After the warmup: the guard, its rescues and the snapshots they go back to.

At every test interval after the switch the guard judges the loss (`progress`): a
non-finite loss, or two intervals in a row that lost half the progress or drifted
(doubled from the best and lost a tenth of the progress), is a divergence; so is a
hand-over whose learning rate fails its trial (none of the first `handover_trial`
intervals beats the warmup's best). A rescue halves the learning rate from that step
on, at most `max_rescues` times, and asks for the snapshot of the lowest loss back.

The snapshots: one is asked for at each test whose interval has the lowest loss so
far. It becomes the one a restore puts back only once its own loss, that of the step
after it, is known and healthy: the losses before a snapshot say nothing of the last
update, which may already have blown the weights up. At most two copies are kept at
once. Part of `AutoWUScheduler`, whose state it reads.
"""

import math
import warnings
from typing import NamedTuple, Optional

from keras_autowu.autowu import messages, schedule
from keras_autowu.core.requests import Request
from keras_autowu.core.stacklevel import user_stacklevel


class Rescue(NamedTuple):
    """A divergence after the warmup, and what the guard did about it."""

    step: int  # the first step at the lower learning rate
    reason: str
    learning_rate_before: float
    learning_rate: float
    restore_step: Optional[int]  # the snapshot put back, if any


class Guard:
    """The guard and the snapshots, as part of `AutoWUScheduler`."""

    def _guard(self, step, verdict):
        """After the warmup: a divergence is rescued, a healthy interval snapshotted."""
        reason = verdict.non_finite
        # Two intervals in a row, as in the warmup; a drift is slower than a blow-up
        # and caught sooner (see `progress`).
        if verdict.risen_in_a_row >= 2 or verdict.drifted_in_a_row >= 2:
            best, drift = min(self.progress.interval_means), verdict.risen_in_a_row < 2
            reason = f"{messages.rose(self._interval_start, step - 1, verdict.mean, best, drift)}, for the second interval in a row"
        unbeaten = self._unbeaten_trial_best(verdict)
        if reason is None and unbeaten is not None:
            reason = messages.failed_trial(
                self.departures.handover_trial, self.switch.step, unbeaten, self._interval_start, step - 1, verdict.mean
            )
        if reason is None:
            self._snapshot_if_best(step, verdict)
            return
        if step >= self.total_steps:
            return  # the run is over: nothing left to rescue
        if len(self.rescues) >= self.config.max_rescues:
            self._warn_rescues_spent(step, reason)
            return
        self._trial = None  # a rescue ends the trial: its learning rate is no longer the hand-over's
        before = float(self.learning_rates(step, step + 1)[0])
        self.state = self.state._replace(rescue_steps=self.state.rescue_steps + (step,))
        self.progress.forgive()
        rescue = Rescue(step, reason, before, before * schedule.RESCUE_FACTOR, self.snapshot_step)
        self.rescues.append(rescue)
        if self.snapshot_step is not None:
            self._request("restore", self.snapshot_step)
        self._say(messages.rescue(
            len(self.rescues), self.config.max_rescues, step, reason, before, rescue.learning_rate, rescue.restore_step
        ))

    def _start_trial(self):
        """After a switch: the hand-over's learning rate is on trial (with a guard, and
        a finite interval whose best there is to beat)."""
        trial = self.departures.handover_trial
        if trial and self.config.max_rescues and self.progress.interval_means:
            self._trial = (min(self.progress.interval_means), trial)

    def _unbeaten_trial_best(self, verdict):
        """Counts one interval of the hand-over's trial. Returns the warmup's best
        interval mean if this was the trial's last interval and none beat it, else None.

        The loss minimum along a rising learning rate lies above the rate that stays
        stable: instability takes steps to build. Held, such a rate makes the loss climb
        slowly instead of blowing up (LAMB on the digits: 0.14, 0.18, 0.32 against a
        best of 0.13, then 0.68, 0.90). The decay starts from the best's weights, so a
        learning rate that trains beats that best within a few intervals; one that does
        not is rescued before the climb.
        """
        if self._trial is None:
            return None
        best, left = self._trial
        if math.isfinite(verdict.mean) and verdict.mean < best:
            self._trial = None
            return None
        self._trial = None if left <= 1 else (best, left - 1)
        return best if left <= 1 else None

    def _warn_rescues_spent(self, step, reason):
        if not self._warned_rescues_spent and not self._quiet:
            text = messages.rescues_spent(step, reason, len(self.rescues), self.config.max_rescues)
            warnings.warn(text, RuntimeWarning, stacklevel=user_stacklevel())
            self._warned_rescues_spent = True

    def _snapshot_if_best(self, step, verdict):
        """Keeps the weights of the lowest loss so far: a switch, a divergence and a
        rescue all go back to them."""
        if verdict.healthy and verdict.mean <= min(self.progress.interval_means):
            self._request("snapshot", step)

    def _request(self, kind, step):
        if not self.departures.snapshots:
            return
        if kind == "snapshot":
            self.unverified_snapshot_step = step
        self._requests.append(Request(kind, step))
        if kind == "restore" and self.unverified_snapshot_step is not None:
            # Its weights belong to the trajectory the restore abandons.
            self._requests.append(Request("discard", self.unverified_snapshot_step))
            self.unverified_snapshot_step = None

    def _verify_snapshot(self):
        """The loss of the step after a snapshot is its weights' own: a healthy one makes
        it the snapshot a restore puts back, a blown-up one discards it."""
        step, self.unverified_snapshot_step = self.unverified_snapshot_step, None
        loss = float(self.losses.values[step])
        if math.isfinite(loss) and not self.progress.has_risen(loss):
            if self.snapshot_step is not None:
                self._requests.append(Request("discard", self.snapshot_step))
            self.snapshot_step = step
        else:
            self._requests.append(Request("discard", step))
