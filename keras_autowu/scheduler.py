"""AutoWU's phases as a small state machine that knows nothing of Keras."""

import collections
import math
import warnings
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from keras_autowu import gp_minimum, loss_sampling, schedule
from keras_autowu.config import AutoWUConfig, check_run_length

# The reference's reduce-on-plateau (PyTorch's defaults): relative threshold, patience.
_PLATEAU_THRESHOLD = 1e-4
_PLATEAU_PATIENCE = 5
# Fewer finite losses than this give the GP nothing to fit.
_MIN_FINITE_LOSSES = 3
# The warmup has diverged when, at two tests in a row, the interval's mean loss has lost
# this share of the progress made from the first interval to the best (a network that
# died goes back to where it started), by more than _DIVERGENCE_NOISE_MARGIN standard
# errors of an interval's mean: batch noise alone should never cut a warmup short.
_DIVERGENCE_RISE = 0.5
_DIVERGENCE_NOISE_MARGIN = 10.0
_STATE_FORMAT = 1


# One call instead of a score of eager ops per step of a custom loop; traced once per
# plan (the state goes in as tensors).
_compiled_learning_rate_at = tf.function(schedule.learning_rate_at)


class GPTestRecord(NamedTuple):
    """One "minimum passed?" test: at `step`, over the losses of steps 0..step-1."""

    step: int
    passed_probability: np.ndarray  # one per prediction
    positive: bool
    lr_at_minimum: float  # the learning rate at the GP's minimum, mean over predictions
    posterior_mean: Optional[np.ndarray]  # [num_predictions, 500] on x in [0, 1]


class Divergence(NamedTuple):
    """Why and where the warmup was cut short by a diverging loss."""

    step: int  # the first step after the warmup
    reason: str
    learning_rate: float  # what the warmup handed on
    fallback: bool  # True: the GP had no estimate; the LR at the lowest finite loss


class AutoWUScheduler:
    """AutoWU for any training loop: give it each step's loss, get the next step's LR.

    The learning rate starts at `min_lr` and grows every step (exponentially, or
    linearly) towards `max_lr`, which it would reach after `max_warmup_fraction` of the
    run. Every `test_interval` steps a Gaussian process fitted to the warmup's losses
    tests whether their minimum has passed; after `patience` positive tests in a row
    (or a positive last test before the warmup's cap, whose learning rate would be
    higher still), the learning rate is set to where the GP's loss was lowest and the
    decay begins:
    a cosine to zero at the end of the run (`immediate_cooldown=True`), or a constant
    (or per-epoch `decay_phase_factor`, or reduce-on-plateau on the epoch's mean loss
    with `decay_phase_stat="loss"`) and then a cosine over the last `cooldown_fraction`.

    A warmup whose loss diverges (a non-finite loss, or, at two tests in a row or at
    the last test before the warmup's cap, a test interval's mean loss that has lost
    half the progress from the first interval to the best) ends at that test, with the
    learning rate
    at the GP's minimum of the finite losses, or, when the GP has no estimate, the
    warmup's learning rate at the lowest finite loss (`min_lr` when there is none).

    Every decision is a function of the losses alone: `get_state()` is the losses,
    and `set_state()` replays them, so a restored scheduler continues exactly as the
    original would have.

    Args:
      steps_per_epoch: Int. Steps (optimizer updates) per epoch.
      total_epochs: Int. Epochs in the run; the run has steps_per_epoch * total_epochs
        steps.
      min_lr: Float. The learning rate of the first step.
      max_lr: Float. Where the warmup would end after its longest.
      max_warmup_fraction: Float in [0, 1]. The longest warmup, as a fraction of the run.
      warmup_type: "exp" or "linear".
      immediate_cooldown: Bool. Decay with a cosine straight after the warmup.
      cooldown_fraction: Float in [0, 1]. The final decay's share of the run, when
        not immediate.
      cooldown_type: "cosine" or "half_cosine" (the second half of a cosine).
      decay_phase_factor: Float in (0, 1]. Between warmup and cooldown, the learning
        rate is multiplied by it once per epoch (1.0: constant).
      decay_phase_stat: None, or "loss" for reduce-on-plateau (factor
        `decay_phase_factor`, patience 5) on each epoch's mean loss instead.
      confidence: Float in (0, 1). A prediction votes "passed" when
        P(an earlier loss is lower than now) exceeds it.
      patience: Int. Positive tests in a row that end the warmup.
      num_predictions: Int. GP predictions per test, each on its own subsample;
        the test is positive when more than half vote "passed".
      test_interval: Int or None. Steps between tests; None: once per epoch, as in
        the paper.
      seed: Int. Seeds the subsampling, so that every worker decides alike.
      verbose: Int. 1: print a line at the switch.

    Example:

    ```python
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch=100, total_epochs=10)
    optimizer.learning_rate = scheduler.learning_rate
    for step in range(1000):
        loss = train_step(next(batches))
        optimizer.learning_rate = scheduler.step(float(loss))
    ```

    References:
      Kim et al., Automated Learning Rate Scheduler for Large-Batch Training,
      ICML 2021 AutoML workshop. https://arxiv.org/abs/2107.05855
    """

    def __init__(self, steps_per_epoch, total_epochs, **kwargs):
        check_run_length(steps_per_epoch, total_epochs)
        self.config = AutoWUConfig(**kwargs)
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.plan = schedule.SchedulePlan.from_config(self.config, steps_per_epoch, total_epochs)
        self.reset()
        if self._warmup_rounds_to_nothing():
            warnings.warn(
                f"AutoWU: the run's {self.total_steps} steps are too short for a warmup "
                f"(max_warmup_fraction={self.config.max_warmup_fraction} of them is under one "
                "step); the decay starts from min_lr.",
                UserWarning,
                stacklevel=2,
            )
        elif 0 < self.plan.max_warmup_steps <= self.test_interval:
            warnings.warn(
                f"AutoWU: no GP test falls within the warmup: test_interval={self.test_interval} "
                f"steps, but the warmup lasts at most {self.plan.max_warmup_steps} of the run's "
                f"{self.total_steps} steps. The learning rate follows the warmup to its cap "
                "(max_lr); pass a smaller test_interval, or train for more epochs.",
                UserWarning,
                stacklevel=2,
            )
        elif 0 < (self.plan.max_warmup_steps - 1) // self.test_interval < 2 * self.config.patience:
            # A test at the cap itself would come too late: the warmup is over.
            tests = (self.plan.max_warmup_steps - 1) // self.test_interval
            warnings.warn(
                f"AutoWU: only {tests} GP tests fall within the longest warmup, and "
                f"{self.config.patience} positive ones in a row end it: the loss may blow up "
                f"before they do. Pass test_interval={max(1, self.plan.max_warmup_steps // 20)} "
                "(1/20 of the longest warmup), or train for more epochs.",
                UserWarning,
                stacklevel=2,
            )

    def reset(self):
        """Forgets the run: back to step 0 of the warmup."""
        self.steps_done = 0
        self.state = schedule.initial_state(self.plan)
        if self._warmup_rounds_to_nothing():
            # Without a single warmup step, min_lr is the only learning rate known to be safe.
            self.state = self.state._replace(decay_base_lr=self.config.min_lr)
        self.losses = []
        self.tests = []
        self.switch: Optional[GPTestRecord] = None
        self.divergence: Optional[Divergence] = None
        self._interval_means = []
        self._risen_intervals = 0
        self.healthy = True  # the last test interval's losses: finite, and not rising
        self._gp_state = gp_minimum.initial_gp_state()
        self._recent_positives = collections.deque(maxlen=self.config.patience)
        self._plateau_best = math.inf
        self._plateau_bad_epochs = 0
        self._warned_gp_failure = False
        self._warned_non_finite = False
        self._quiet = False

    def _warmup_rounds_to_nothing(self):
        return self.config.max_warmup_fraction > 0 and self.plan.max_warmup_steps == 0

    @property
    def test_interval(self):
        return self.config.test_interval or self.steps_per_epoch

    @property
    def total_steps(self):
        return self.plan.total_steps

    @property
    def learning_rate(self):
        """The learning rate of the next step."""
        state = schedule.ScheduleState(*(tf.constant(v) for v in self.state))
        return float(_compiled_learning_rate_at(tf.constant(self.steps_done, tf.int64), state, self.plan))

    @property
    def phase(self):
        """"warmup", "decay" or "cooldown": the phase of the next step."""
        return schedule.phase_at(self.steps_done, self.state, self.plan)

    def learning_rates(self, steps=None):
        """The learning rate of each step (all steps of the run by default)."""
        steps = np.arange(self.total_steps) if steps is None else np.asarray(steps)
        return schedule.learning_rate_at(steps, self.state, self.plan).numpy()

    def step(self, loss):
        """Records the loss of the step just taken; returns the next step's LR."""
        self.observe([loss])
        return self.learning_rate

    def observe(self, losses):
        """Records the losses of the next len(losses) steps.

        Each test (and reduce-on-plateau update) that falls due within them runs on the
        losses up to its own step, whatever the chunking: the Keras callback calls this
        once per test or epoch boundary, a restore once for the whole run so far.
        """
        losses = np.asarray(losses, np.float64).ravel()
        while losses.size:
            done = self.steps_done
            boundary = min(_next_multiple(done, self.test_interval), _next_multiple(done, self.steps_per_epoch))
            chunk, losses = losses[: boundary - done], losses[boundary - done :]
            self.losses.extend(chunk.tolist())
            self.steps_done = done + chunk.size
            if self.steps_done == boundary:
                self._at_boundary(boundary)

    def _at_boundary(self, step):
        if step % self.test_interval == 0:
            if self.phase == "warmup":
                self._test_warmup(step)
            else:
                self._check_after_warmup(step)
        if (
            self.config.decay_phase_stat == "loss"
            and step % self.steps_per_epoch == 0
            and schedule.phase_at(step - 1, self.state, self.plan) == "decay"
        ):
            self._update_plateau()

    def get_state(self):
        """The scheduler's state, as plain values: its run's length and the losses."""
        return {
            "format": _STATE_FORMAT,
            "steps_per_epoch": self.steps_per_epoch,
            "total_epochs": self.total_epochs,
            "losses": np.asarray(self.losses, np.float64),
        }

    def set_state(self, state):
        """Restores a `get_state()`: replays its losses, which re-makes every decision."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"AutoWU cannot read this state: format={state.get('format')!r}")
        saved = (state["steps_per_epoch"], state["total_epochs"])
        if saved != (self.steps_per_epoch, self.total_epochs):
            raise ValueError(
                "AutoWU's state is of a run of steps_per_epoch, total_epochs = "
                f"{saved}; this scheduler's run is {(self.steps_per_epoch, self.total_epochs)}."
            )
        self.reset()
        self._quiet = True
        try:
            self.observe(state["losses"])
        finally:
            self._quiet = False

    def _test_warmup(self, step):
        interval = np.asarray(self.losses[step - self.test_interval : step])
        reason = self._divergence_reason(step, interval)
        record = self._gp_test(step)
        if reason is None:
            self._record_test(record)
            return
        self.tests.append(record)
        fallback = not math.isfinite(record.lr_at_minimum)
        # The GP extrapolates past the last finite loss; never go beyond its LR.
        lr = self._fallback_lr() if fallback else min(record.lr_at_minimum, self._last_finite_lr())
        self.divergence = Divergence(step, reason, lr, fallback)
        self._switch(record._replace(lr_at_minimum=lr))

    def _divergence_reason(self, step, interval):
        bad = np.flatnonzero(~np.isfinite(interval))
        self.healthy = False
        if bad.size:
            return f"the loss of step {step - interval.size + bad[0]} is {interval[bad[0]]}"
        mean = float(interval.mean())
        self._interval_means.append(mean)
        first, best = self._interval_means[0], min(self._interval_means)
        margin = max(_DIVERGENCE_RISE * (first - best), _DIVERGENCE_NOISE_MARGIN * self._step_noise() / math.sqrt(interval.size))
        self._risen_intervals = self._risen_intervals + 1 if mean > best + margin else 0
        self.healthy = self._risen_intervals == 0
        risen = f"the mean loss of steps {step - interval.size}..{step - 1} rose to {mean:.4g} (best {best:.4g})"
        # Two intervals in a row: a single bad batch is noise, a blow-up persists.
        if self._risen_intervals >= 2:
            return risen
        # No later test can confirm it, and the reference would hand the cap's learning
        # rate on, which is higher still: at the last test, one risen interval will do.
        if self._risen_intervals and step == self._last_warmup_test_step():
            return f"{risen}, at the last test before the warmup's cap"
        return None

    def _last_warmup_test_step(self):
        """The step of the last test that falls within the longest warmup."""
        return (self.plan.max_warmup_steps - 1) // self.test_interval * self.test_interval

    def _step_noise(self):
        """A robust estimate of the per-step loss noise: from successive differences."""
        losses = np.asarray(self.losses)
        differences = np.abs(np.diff(losses[np.isfinite(losses)]))
        # For Gaussian noise, median |x_i - x_j| = 0.954 sigma; the median ignores a trend.
        return float(np.median(differences)) / 0.954 if differences.size else 0.0

    def _last_finite_lr(self):
        finite = np.flatnonzero(np.isfinite(np.asarray(self.losses)))
        return self.plan.warmup_lr(int(finite[-1])) if finite.size else self.config.min_lr

    def _fallback_lr(self):
        losses = np.asarray(self.losses)
        finite = np.flatnonzero(np.isfinite(losses))
        if not finite.size:
            return self.config.min_lr
        return self.plan.warmup_lr(int(finite[np.argmin(losses[finite])]))

    def _check_after_warmup(self, step):
        interval = np.asarray(self.losses[step - self.test_interval : step])
        bad = np.flatnonzero(~np.isfinite(interval))
        if bad.size and not self._warned_non_finite and not self._quiet:
            warnings.warn(
                f"AutoWU: the loss of step {step - interval.size + bad[0]} is {interval[bad[0]]}, "
                f"in the {self.phase} phase. AutoWU keeps its schedule; to stop such a run, "
                "add keras.callbacks.TerminateOnNaN() (this warning is shown once per run).",
                RuntimeWarning,
                stacklevel=4,
            )
            self._warned_non_finite = True

    def _gp_test(self, step):
        """The GP test on the losses of steps 0..step-1."""
        losses = np.asarray(self.losses[:step])
        if np.isfinite(losses).sum() < _MIN_FINITE_LOSSES:
            return GPTestRecord(step, np.zeros(0), False, math.nan, None)
        inputs = loss_sampling.sample_gp_inputs(
            losses, self.config.num_predictions, self.config.seed, test_index=len(self.tests)
        )
        # Tensors, not Python floats, so that the compiled test never retraces.
        inputs = [tf.constant(value, tf.float64) for value in inputs]
        with tf.device("/CPU:0"):
            gp_state, result = gp_minimum.compiled_gp_minimum_test(self._gp_state, *inputs)
        probability = result.passed_probability.numpy()
        if not (np.all(np.isfinite(probability)) and np.all(np.isfinite(gp_state.params.numpy()))):
            self._warn_gp_failure(step)
            return GPTestRecord(step, probability, False, math.nan, None)
        self._gp_state = gp_state
        votes = int(np.sum(probability > self.config.confidence))
        positive = votes > self.config.num_predictions / 2
        lr_now = self.plan.warmup_lr(step - 1)  # the learning rate of the last recorded loss
        x = result.argmin_x.numpy()
        if self.config.warmup_type == "exp":
            lrs = self.config.min_lr * (lr_now / self.config.min_lr) ** x
        else:
            lrs = self.config.min_lr + (lr_now - self.config.min_lr) * x
        return GPTestRecord(step, probability, positive, float(np.mean(lrs)), result.posterior_mean.numpy())

    def _record_test(self, record):
        self.tests.append(record)
        self._recent_positives.append(record.positive)
        # At the last test the alternative is the cap's learning rate, past the
        # minimum by the GP's own account: one positive test will do.
        last_chance = record.positive and record.step == self._last_warmup_test_step()
        if sum(self._recent_positives) >= self.config.patience or last_chance:
            self._switch(record)

    def _switch(self, record):
        self.switch = record
        self.state = self.state._replace(warmup_end=record.step, decay_base_lr=record.lr_at_minimum)
        if self.config.verbose and not self._quiet:
            then = "cosine decay" if self.config.immediate_cooldown else "decay phase"
            if self.divergence is not None:
                source = "the lowest finite loss" if self.divergence.fallback else "the GP's minimum"
                why = f"the warmup diverged at step {record.step}: {self.divergence.reason}"
                how = f"learning rate set to {record.lr_at_minimum:.4g} ({source})"
            else:
                patience, positives = self.config.patience, sum(self._recent_positives)
                tests = (
                    f"{patience} positive tests in a row" if positives >= patience
                    else f"{positives} of the last {patience} tests positive, the last before the warmup's cap"
                )
                why = (
                    f"the loss minimum has passed at step {record.step} "
                    f"(p={np.median(record.passed_probability):.3f}, {tests})"
                )
                how = f"learning rate set to {record.lr_at_minimum:.4g}"
            print(f"AutoWU: {why}; {how}, then {then}.")

    def _warn_gp_failure(self, step):
        if not self._warned_gp_failure and not self._quiet:
            warnings.warn(
                f"AutoWU: the GP test at step {step} failed numerically and counts as "
                "negative; training goes on (this warning is shown once per run).",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_gp_failure = True

    def _update_plateau(self):
        epoch_start = (self.steps_done - 1) // self.steps_per_epoch * self.steps_per_epoch
        start = max(epoch_start, min(self.state.warmup_end, self.steps_done - 1))
        mean_loss = float(np.nanmean(np.asarray(self.losses[start:]))) if self.losses[start:] else math.nan
        if mean_loss < self._plateau_best * (1.0 - _PLATEAU_THRESHOLD):
            self._plateau_best = mean_loss
            self._plateau_bad_epochs = 0
        else:
            self._plateau_bad_epochs += 1
        if self._plateau_bad_epochs > _PLATEAU_PATIENCE:
            scale = self.state.plateau_scale * self.config.decay_phase_factor
            self.state = self.state._replace(plateau_scale=scale)
            self._plateau_bad_epochs = 0


def _next_multiple(value, interval):
    """The first multiple of `interval` after `value`."""
    return (value // interval + 1) * interval
