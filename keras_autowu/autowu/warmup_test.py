"""The warmup's test: has the loss minimum passed, or has the warmup diverged?

At each test boundary of the warmup the GP of `keras_autowu.gp.minimum_test` runs on
the losses so far; with the departures on, a positive test also needs the progress
gate (`progress`), and a non-finite loss or a risen interval mean ends the warmup as
a divergence. Part of `AutoWUScheduler`, whose state it reads.
"""

import math
import warnings
from typing import NamedTuple, Optional

import numpy as np

from keras_autowu.autowu import handover, loss_sampling, messages, schedule
from keras_autowu.autowu.progress import robust_step_noise
from keras_autowu.core.stacklevel import user_stacklevel
from keras_autowu.gp import minimum_test

# A warmup that blew up before its loss fell hands on this many times less than the
# learning rate at which the loss first rose clear of its start: by BLOW_UP_RISE of
# it, and by BLOW_UP_NOISE_MARGIN times its step noise (`_below_the_blow_up`).
BLOW_UP_BACKOFF = 8.0
BLOW_UP_RISE = 0.2
BLOW_UP_NOISE_MARGIN = 5.0
# Fewer finite losses than this give the GP nothing to fit.
MIN_FINITE_LOSSES = 3
# test_interval="auto": this many tests fit in the longest warmup (at most one an epoch).
AUTO_TESTS_PER_WARMUP = 20


class GPTestRecord(NamedTuple):
    """One "minimum passed?" test: at `step`, over the losses of steps 0..step-1.

    `positive` needs both the GP's vote and `loss_turned`: the loss has made real
    progress and then risen (see `progress`).
    """

    step: int
    passed_probability: np.ndarray  # one per prediction
    positive: bool
    lr_at_minimum: float  # the learning rate at the GP's minimum, mean over predictions
    posterior_mean: Optional[np.ndarray]  # [num_predictions, 500] on x in [0, 1]
    handover_lr: float = math.nan  # the learning rate `lr_choice` picks, mean over predictions
    loss_turned: bool = True


class Divergence(NamedTuple):
    """Why and where the warmup was cut short by a diverging loss."""

    step: int  # the first step after the warmup
    reason: str
    learning_rate: float  # what the warmup handed on
    fallback: bool  # True: the GP had no estimate; the LR at the lowest finite loss
    before_the_loss_fell: bool = False  # True: BLOW_UP_BACKOFF below where the blow-up began


def resolve_test_interval(test_interval, plan):
    """The steps between tests that `test_interval` ("auto", "epoch" or an int) means."""
    if test_interval == "epoch":
        return plan.steps_per_epoch
    if test_interval == "auto":
        return min(plan.steps_per_epoch, auto_test_interval(plan))
    return test_interval


def auto_test_interval(plan):
    """1/AUTO_TESTS_PER_WARMUP of the longest warmup (every step for a tiny one)."""
    if plan.max_warmup_steps <= 0:
        return plan.steps_per_epoch
    return max(1, plan.max_warmup_steps // AUTO_TESTS_PER_WARMUP)


def aligned_test_interval(test_interval, plan, steps_per_execution):
    """(interval, warning or None): the test interval rounded up so that each test falls
    at the end of a chunk of `steps_per_execution` steps, where the loop hands over the
    losses; a decision inside a chunk would take effect late. Chunks restart every epoch."""
    chunk, steps_per_epoch = steps_per_execution, plan.steps_per_epoch
    interval = resolve_test_interval(test_interval, plan)
    if chunk <= 1 or (interval % chunk == 0 and steps_per_epoch % chunk == 0) or interval % steps_per_epoch == 0:
        return interval, None
    if steps_per_epoch % chunk == 0:
        aligned = -(-interval // chunk) * chunk
    else:
        aligned = -(-interval // steps_per_epoch) * steps_per_epoch
    warning = None
    if test_interval != "auto":
        warning = messages.test_interval_rounded(test_interval, interval, aligned, chunk, steps_per_epoch)
    return aligned, warning


class WarmupTest:
    """The warmup's test, as part of `AutoWUScheduler`."""

    def _test_warmup(self, step, verdict):
        reason = None
        if self.departures.divergence_rule:
            reason = verdict.non_finite
            risen = messages.rose(self._interval_start, step - 1, verdict.mean, min(self.progress.interval_means)) if verdict.risen else None
            # Two intervals in a row: a single bad batch is noise, a blow-up persists.
            if verdict.risen_in_a_row >= 2:
                reason = risen
            # No later test can confirm it, and the reference would hand the cap's learning
            # rate on, which is higher still: at the last tests, one risen interval will do.
            elif risen and self._is_last_chance(step):
                where = "at the warmup's end" if step == self._warmup_cap() else "at the last test before the warmup's end"
                reason = f"{risen}, {where}"
        record = self._gp_test(step)
        if reason is None:
            self._record_test(record, verdict)
            return
        self.tests.append(record)
        fallback = not math.isfinite(record.handover_lr)
        if fallback:
            lr = self._fallback_lr()
        else:  # the GP extrapolates past the last finite loss; never go beyond its LR
            lr = min(record.handover_lr, self._last_finite_lr())
        # The GP's minimum of a loss that never fell is noise, anywhere from min_lr to
        # the blow-up: what is known is where the blow-up began.
        unmoved = not fallback and not self.progress.has_fallen()
        if unmoved:
            lr = self._below_the_blow_up(step)
        self.divergence = Divergence(step, reason, lr, fallback, unmoved)
        self._switch(record._replace(handover_lr=lr), restore=True)

    def _record_test(self, record, verdict):
        self.tests.append(record)
        self._recent_positives.append(record.positive)
        # At the last test the alternative is the cap's learning rate, past the
        # minimum by the GP's own account: one positive test will do.
        last_chance = self.departures.cap_test and record.positive and self._is_last_chance(record.step)
        self._snapshot_if_best(record.step, verdict)
        if sum(self._recent_positives) >= self.config.patience or last_chance:
            # The weights at a switch were trained past the minimum: the decay starts
            # from the snapshot of the lowest loss instead.
            self._switch(record, restore=True)

    def _is_last_chance(self, step):
        """Whether the test at `step` is the last on the grid before the warmup's cap,
        or the one at the cap: the warmup's last chance to end on its own terms."""
        cap = self._warmup_cap()
        return step in ((cap - 1) // self.test_interval * self.test_interval, cap)

    def _last_finite_lr(self):
        finite = self.losses.finite_indices
        return self.plan.warmup_lr(int(finite[-1]), self.state.fast_end) if finite.size else self.config.min_lr

    def _below_the_blow_up(self, step):
        """For a warmup that blew up before its loss fell: BLOW_UP_BACKOFF below the
        learning rate of the first step whose loss rose clear of the start (by
        BLOW_UP_RISE of it, and beyond the step noise) or was not finite. Such a loss
        trains only near its limit, and the limit lies below where the blow-up began,
        by the climb of the steps instability takes to show."""
        losses = self.losses.values[:step]
        first = losses[: self.test_interval]
        first = first[np.isfinite(first)]
        start = float(first.mean()) if first.size else math.nan
        noise = robust_step_noise(first)
        threshold = start + max(BLOW_UP_RISE * abs(start), BLOW_UP_NOISE_MARGIN * noise)
        with np.errstate(invalid="ignore"):
            clear = np.flatnonzero(~(losses <= threshold))
        onset = int(clear[0]) if clear.size else step - 1
        return max(self.plan.warmup_lr(onset, self.state.fast_end) / BLOW_UP_BACKOFF, self.config.min_lr)

    def _fallback_lr(self):
        finite = self.losses.finite_indices
        if not finite.size:
            return self.config.min_lr
        return self.plan.warmup_lr(int(finite[np.argmin(self.losses.values[finite])]), self.state.fast_end)

    def _gp_test(self, step):
        """The GP test on the losses of steps 0..step-1."""
        record = self.losses
        if record.finite_count(step) < MIN_FINITE_LOSSES:
            return GPTestRecord(step, np.zeros(0), False, math.nan, None)
        if math.isinf(record.ceiling) and self.departures.clip_blown_up:
            self._clip_to_the_start()
        whole = step == len(record)  # always, in observe: then the running mean holds
        inputs = loss_sampling.sample_gp_inputs(
            record.values[:step],
            self.config.num_predictions,
            self.config.seed,
            test_index=len(self.tests),
            finite_indices=record.finite_indices[: record.finite_count(step)],
            ceiling=record.ceiling,
            finite_mean=record.clipped_finite_mean() if whole else None,
        )
        state = minimum_test.initial_gp_state() if self._gp_state is None else self._gp_state
        gp_state, result = minimum_test.run_gp_minimum_test(state, inputs)
        probability = np.asarray(result.passed_probability)
        if not (np.all(np.isfinite(probability)) and np.all(np.isfinite(np.asarray(gp_state.params)))):
            self._warn_gp_failure(step)
            return GPTestRecord(step, probability, False, math.nan, None)
        self._gp_state = gp_state
        votes = int(np.sum(probability > self.config.confidence))
        loss_turned = self.progress.turned_after_progress()
        positive = votes > self.config.num_predictions / 2 and loss_turned
        posterior_mean = np.asarray(result.posterior_mean)
        return GPTestRecord(
            step,
            probability,
            positive,
            self._warmup_lr_at(np.asarray(result.argmin_x), step),
            posterior_mean,
            self._handed_on(self._warmup_lr_at(handover.handover_x(posterior_mean), step), step),
            loss_turned,
        )

    def _build_gp_test(self):
        """Starts building the GP test for this run's inputs, so that its first test
        does not wait for it (a fresh process's first trace)."""
        flat_start = np.zeros(MIN_FINITE_LOSSES)
        minimum_test.build_in_background(
            loss_sampling.sample_gp_inputs(flat_start, self.config.num_predictions, self.config.seed, test_index=0)
        )

    def _clip_to_the_start(self):
        """The GP sees losses above the first test interval's highest as that one.

        How far a blown-up loss went (1e13, seen on MNIST-1D with LAMB) says nothing about
        where the minimum is, but it would dominate the GP's fit and put its minimum at
        the warmup's start. NaN and inf are left for the subsampling to drop.
        """
        first = self.losses.values[: self.test_interval]
        first = first[np.isfinite(first)]
        if first.size:
            self.losses.clip_at(first.max())

    def _warmup_lr_at(self, x, step):
        """The warmup's learning rate at x in [0, 1] of its steps 0..step-1; mean over x.

        x = 1 is the last recorded loss's learning rate, as in the reference, and x the
        share of the way there, counted in steps of the climb (`warmup_position`).
        """
        fast_end = self.state.fast_end
        lr_now = self.plan.warmup_lr(step - 1, fast_end)
        along = np.asarray(x, np.float64)
        if fast_end and step > 1:  # a steady climb: x is already the share of the way
            now = float(schedule.warmup_position(step - 1, self.plan, fast_end))
            along = schedule.warmup_position(along * (step - 1), self.plan, fast_end) / now
        if self.config.warmup_type == "exp":
            lrs = self.config.min_lr * (lr_now / self.config.min_lr) ** along
        else:
            lrs = self.config.min_lr + (lr_now - self.config.min_lr) * along
        return float(np.mean(lrs))

    def _warn_gp_failure(self, step):
        if not self._warned_gp_failure and not self._quiet:
            warnings.warn(messages.gp_failure(step), RuntimeWarning, stacklevel=user_stacklevel())
            self._warned_gp_failure = True
