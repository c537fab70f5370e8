"""AutoWU's decisions as a small state machine that knows nothing of Keras.

The controller drives the loop: it records the losses, runs the warmup's test
(`warmup_test`) and the guard (`guard`) at their boundaries, switches to the decay
with the learning rate of `handover`, and replays its losses on resume. The learning
rate of every step is the closed form of `schedule`, given what the tests decided.
"""

import collections
import math
import warnings

import numpy as np

from keras_autowu.autowu import flat_start, messages, schedule
from keras_autowu.autowu.config import AutoWUConfig
from keras_autowu.autowu.guard import Guard
from keras_autowu.autowu.handover import Handover
from keras_autowu.autowu.loss_record import LossRecord
from keras_autowu.autowu.plateau import ReduceOnPlateau
from keras_autowu.autowu.progress import LossProgress
from keras_autowu.autowu.warmup_test import WarmupTest, aligned_test_interval, auto_test_interval
from keras_autowu.core import checks
from keras_autowu.core.stacklevel import user_stacklevel

_STATE_FORMAT = 1
# After a blow-up before the loss fell, the decay ramps in over 1/RAMP_SHARE of the steps left.
RAMP_SHARE = 10


class AutoWUScheduler(WarmupTest, Guard, Handover):
    """AutoWU for any training loop: give it each step's loss, get each step's LR.

    The learning rate starts at `min_lr` and grows every step (exponentially, or
    linearly) towards `max_lr`, which it would reach after `max_warmup_fraction` of the
    run; while the loss has not moved from its start, it grows four times faster
    (`flat_start`). Every `test_interval` steps a Gaussian process fitted to the
    warmup's losses tests whether their minimum has passed; a test is positive when the
    GP is sure of it and the loss has made real progress and turned (`progress`). After
    `patience` positive tests in a row (or a positive last test before the warmup's
    cap), the learning rate is set to the GP's minimum's (`lr_choice`) and the decay
    begins: a cosine to zero at the end of the run (`immediate_cooldown=True`), or a
    constant (or per-epoch `decay_phase_factor`, or reduce-on-plateau on the epoch's
    mean loss with `decay_phase_stat="loss"`) and then a cosine over the last
    `cooldown_fraction`.

    A warmup whose loss diverges (a non-finite loss, or interval means that lost half
    the progress) ends there, from the GP's minimum of the finite losses. After the
    warmup a guard watches the loss and rescues a divergence: the learning rate halves
    and the weights of the lowest loss come back (`guard`).

    `observe` returns the `Request`s that the training loop carries out: keep a
    snapshot of the weights, put it back, or discard it. The Keras callback does all
    three; a custom loop does them on its own variables (`keras_autowu.WeightSnapshot`).
    Every decision is a function of the losses alone: `get_state()` is the losses, and
    `set_state()` replays them, so a restored scheduler continues exactly as the
    original would have.

    `reference=True` makes the reference's decisions: every departure above is off
    (docs/reference.md lists them, with the benchmarks behind them).

    Args:
      steps_per_epoch: Int. Steps (optimizer updates) per epoch.
      total_epochs: Int. Epochs in the run; the run has steps_per_epoch * total_epochs
        steps.
      steps_per_execution: Int. The loop hands over its losses in chunks of this
        many steps, restarting every epoch: the tests and the fast climb's checks fall
        at their ends (a test interval is rounded up to a whole number of chunks).
      velocity_momentum: Float in [0, 1). The momentum of the optimizer's velocity
        when the learning rate goes into it, as in Keras's SGD and RMSprop
        (v <- momentum * v - lr * g); 0 for optimizers that multiply an averaged
        update by the learning rate (Adam, LAMB). `lr_choice="momentum_corrected"`
        uses it. The callback reads it from the optimizer.
      departures: A `keras_autowu.autowu.config.Departures`, for ablations: which of
        the departures from the reference are on. None: all of them, or none with
        `reference=True`.
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
      test_interval: Int, "auto" or "epoch". Steps between tests. "auto" (the
        default): 1/20 of the longest warmup, at most one epoch; "epoch": once per
        epoch, as in the reference.
      lr_choice: "momentum_corrected" (the default: the GP's minimum as the
        optimizer's velocity averaged the climb, lower for SGD, the minimum itself for
        Adam and LAMB) or "gp_minimum" (the reference's); see
        `keras_autowu.autowu.handover`.
      max_rescues: Int. Rescues after the warmup, at most (default 5); 0: no guard,
        as in the reference.
      seed: Int. Seeds the subsampling, so that every worker decides alike.
      verbose: Int. 1: print a line at each decision.
      reference: Bool. The reference's decisions (see above). An argument that
        contradicts it (`test_interval`, `lr_choice`, `max_rescues` other than the
        reference's) is a ValueError.

    Example:

    ```python
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch=100, total_epochs=10)
    snapshots = {}
    for step in range(scheduler.total_steps):
        optimizer.learning_rate = scheduler.learning_rate
        loss = train_step(next(batches))
        for request in scheduler.observe([float(loss)]):
            if request.kind == "snapshot":
                snapshots[request.step] = keras_autowu.WeightSnapshot(model, request.step)
            elif request.kind == "discard":
                del snapshots[request.step]
            else:  # "restore"
                snapshots[request.step].restore(learning_rate=scheduler.learning_rate)
    ```

    References:
      Kim et al., Automated Learning Rate Scheduler for Large-Batch Training,
      ICML 2021 AutoML workshop. https://arxiv.org/abs/2107.05855
    """

    def __init__(self, steps_per_epoch, total_epochs, steps_per_execution=1, velocity_momentum=0.0, departures=None, **kwargs):
        checks.check_run_length("AutoWU", steps_per_epoch, total_epochs)
        checks.check_int("AutoWU", "steps_per_execution", steps_per_execution, 1)
        checks.check_number("AutoWU", "velocity_momentum", velocity_momentum, 0.0, 1.0, high_open=True)
        self.velocity_momentum = float(velocity_momentum)
        self.config = AutoWUConfig(**kwargs)
        if departures is not None and self.config.reference:
            checks.fail("AutoWU", "departures", departures, "no `departures` with reference=True, which turns them all off")
        self.departures = self.config.departures if departures is None else departures
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.steps_per_execution = steps_per_execution
        speedup = self.departures.flat_start_speedup
        self.plan = schedule.SchedulePlan.from_config(self.config, steps_per_epoch, total_epochs, speedup)
        self.test_interval, rounded = aligned_test_interval(self.config.test_interval, self.plan, steps_per_execution)
        if rounded:
            warnings.warn(rounded, UserWarning, stacklevel=user_stacklevel())
        self.flat_check_interval = flat_start.check_interval(self.test_interval, speedup, steps_per_execution, steps_per_epoch)
        self.reset()
        self._warn_about_the_run_length()

    def _warn_about_the_run_length(self):
        text = messages.run_length_warning(
            self.plan, self.test_interval, self.config, auto_test_interval(self.plan), self._warmup_rounds_to_nothing()
        )
        if text:
            warnings.warn(text, UserWarning, stacklevel=user_stacklevel())

    def reset(self):
        """Forgets the run: back to step 0 of the warmup."""
        self.steps_done = 0
        self.state = self._handing_on_the_cap(schedule.initial_state(self.plan))
        if self._warmup_rounds_to_nothing():
            # Without a single warmup step, min_lr is the only learning rate known to be safe.
            self.state = self.state._replace(decay_base_lr=self.config.min_lr)
        self.losses = LossRecord()
        self.tests = []
        self.switch = None  # the GPTestRecord of the switch
        self.divergence = None  # the warmup's Divergence, if any
        self.rescues = []
        # (the warmup's best interval mean, intervals left) while the hand-over is on trial.
        self._trial = None
        self.snapshot_step = None  # the snapshot a restore puts back
        self.unverified_snapshot_step = None  # a newer one, its own loss unknown
        self.progress = LossProgress(self.departures.min_progress, self.departures.min_rise)
        self._interval_start = 0  # the first step of the test interval under way
        self.healthy = True  # the last test interval's losses: finite, and not rising
        self._gp_state = None  # the GP's fitted state; None: its initial state
        self._build_gp_test()
        self._recent_positives = collections.deque(maxlen=self.config.patience)
        self._plateau = ReduceOnPlateau()
        self._warned_gp_failure = False
        self._warned_rescues_spent = False
        self._quiet = False
        self._requests = []

    def _warmup_rounds_to_nothing(self):
        return self.departures.short_run_min_lr and self.config.max_warmup_fraction > 0 and self.plan.max_warmup_steps == 0

    @property
    def total_steps(self):
        return self.plan.total_steps

    @property
    def in_fast_climb(self):
        """Whether the warmup still climbs fast over a loss that has not moved."""
        return self.switch is None and self.steps_done < self.state.fast_end

    def next_boundary(self):
        """The step at which the loop must next call `observe`: a test, a check of the
        fast climb, or an epoch's end (where reduce-on-plateau may act)."""
        step = min(self.next_decision_step(), _next_multiple(self.steps_done, self.steps_per_epoch))
        return min(step, self.total_steps)

    def next_decision_step(self):
        """The next step at which `observe` may change the schedule or ask for a copy
        of the weights: a test, or a check of the fast climb (epoch ends aside)."""
        step = _next_multiple(self.steps_done, self.test_interval)
        if self.switch is None and self.steps_done < self._warmup_cap():
            step = min(step, self._warmup_cap())
        if self.in_fast_climb:
            step = min(step, _next_multiple(self.steps_done, self.flat_check_interval))
        return step

    def _warmup_cap(self):
        return self.plan.warmup_cap(self.state.fast_end)

    @property
    def learning_rate(self):
        """The learning rate of the next step."""
        return float(schedule.learning_rate_at(self.steps_done, self.state, self.plan))

    @property
    def phase(self):
        """"warmup", "decay" or "cooldown": the phase of the next step."""
        return schedule.phase_at(self.steps_done, self.state, self.plan)

    def learning_rates(self, start=0, stop=None):
        """The learning rate of steps start..stop-1 (by default, every step of the run);
        steps past the run's end have 0."""
        stop = self.total_steps if stop is None else stop
        return schedule.learning_rate_at(np.arange(start, stop), self.state, self.plan)

    def continues(self, recorded, steps_since_start, ended_here=False):
        """Whether a run checkpointed with `recorded` losses, its start
        `steps_since_start` optimizer steps ago (None: no run), goes on, or a new run
        starts: not when it is complete, when the steps do not fit in it, or when its
        last fit ended in this process (`ended_here`: EarlyStopping, say) and a new fit
        starts from epoch 0."""
        if steps_since_start is None or ended_here:
            return False
        return recorded < self.total_steps and 0 <= steps_since_start < self.total_steps

    def learning_rate_after_run(self):
        """The learning rate to leave in the optimizer after a fit: the one the decay
        started from (rescues included), or, in the warmup, the last one applied. The
        schedule ends at 0, and a model trained on without AutoWU should not."""
        if self.phase == "warmup":
            last = max(self.steps_done - 1, 0)
            return float(self.learning_rates(last, last + 1)[0])
        return self.state.decay_base_lr * schedule.RESCUE_FACTOR ** len(self.state.rescue_steps)

    def step(self, loss):
        """Records the loss of the step just taken; returns the next step's LR.

        For a loop that keeps no snapshots; `observe` also says when to take and
        restore them.
        """
        self.observe([loss])
        return self.learning_rate

    def observe(self, losses):
        """Records the losses of the next len(losses) steps; returns a list of `Request`s.

        Each test (and reduce-on-plateau update) that falls due within them runs on the
        losses up to its own step, whatever the chunking: the Keras callback calls this
        once per test or epoch boundary, a restore once for the whole run so far.
        """
        self._requests = []
        losses = np.asarray(losses, np.float64).ravel()
        while losses.size:
            done = self.steps_done
            boundary = min(self.next_decision_step(), _next_multiple(done, self.steps_per_epoch))
            chunk, losses = losses[: boundary - done], losses[boundary - done :]
            self.losses.extend(chunk)
            self.steps_done = done + chunk.size
            if self.steps_done == boundary:
                self._at_boundary(boundary)
        return self._requests

    def _at_boundary(self, step):
        if self.unverified_snapshot_step is not None:
            self._verify_snapshot()
        if self.in_fast_climb and step % self.flat_check_interval == 0:
            self._check_flat_start(step)
        at_cap = step == self._warmup_cap() and self.switch is None
        # After a test in the warmup, its cap is a test too: the losses since the last
        # one are of the warmup's highest learning rates, and may have turned or blown up.
        test_at_cap = at_cap and bool(self.tests) and self.departures.cap_test
        if test_at_cap or step % self.test_interval == 0:
            interval = self.losses[self._interval_start : step]
            verdict = self.progress.add_interval(self._interval_start, interval)
            self.healthy = verdict.healthy
            if self.phase == "warmup" or test_at_cap:
                self._test_warmup(step, verdict)
            else:
                self._guard(step, verdict)
            self._interval_start = step
        if at_cap and self.switch is None:
            self._say_the_cap_was_reached(step)
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
            "losses": self.losses.tolist(),
        }

    def set_state(self, state):
        """Restores a `get_state()`: replays its losses, which re-makes every decision.

        Returns the `Request`s for the loop to carry out, as `observe` does: the copies of
        the weights from before the restart are forgotten, and a new one asked for.
        """
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
            self._requests = []
        # The copies of the weights did not survive the restart; one of the weights as
        # they are now (if the last interval was healthy) stands in, once verified.
        self.snapshot_step = self.unverified_snapshot_step = None
        if self.healthy and self.steps_done:
            self._request("snapshot", self.steps_done)
        return self._requests

    def _say(self, text):
        if self.config.verbose and not self._quiet:
            print(text)

    def _check_flat_start(self, step):
        """Ends the fast climb at `step` once the loss has moved (see `flat_start`)."""
        window = flat_start.window(self.test_interval, self.flat_check_interval)
        if not flat_start.loss_has_moved(self.losses.values[:step], self.test_interval, window):
            return
        self.state = self._handing_on_the_cap(schedule.state_with_fast_end(self.plan, step, self.state))
        rose = flat_start.loss_rose(self.losses.values[:step], self.test_interval, window)
        self._say(messages.loss_has_moved(step, self.plan.warmup_lr(step - 1, step), self.departures.flat_start_speedup, rose))

    def _switch(self, record, restore=True):
        self.switch = record
        self._start_trial()
        self.state = self.state._replace(warmup_end=record.step, decay_base_lr=record.handover_lr)
        if self.divergence is not None and self.divergence.before_the_loss_fell:
            # Rolled back to near-initial weights: the hand-over comes in over a tenth of
            # the steps left, as a warmup's (the zoo's attention classifier, docs/reference.md).
            self.state = self.state._replace(ramp_steps=max(1, (self.total_steps - record.step) // RAMP_SHARE))
        if restore:
            # Whether a copy exists to put back depends on restarts; what the guard
            # decides next must not.
            self.progress.forgive()
            if self.snapshot_step is not None:
                self._request("restore", self.snapshot_step)
        self._say(messages.switch(
            record, self.divergence, self.velocity_momentum if self._corrects_for_velocity else None,
            self.config.patience, sum(self._recent_positives), record.step == self._warmup_cap(),
            self.config.immediate_cooldown, self.snapshot_step if restore else None,
        ))

    def summary(self):
        """One line: where the run is, where its warmup ended, at what learning rate, and its rescues."""
        return messages.summary(self)

    def _say_the_cap_was_reached(self, step):
        last = self.plan.warmup_lr(step - 1, self.state.fast_end) if self._corrects_for_velocity else None
        self._say(messages.cap_reached(step, sum(t.positive for t in self.tests), len(self.tests), self.state.decay_base_lr, last))

    def _update_plateau(self):
        epoch_start = (self.steps_done - 1) // self.steps_per_epoch * self.steps_per_epoch
        start = max(epoch_start, min(self.state.warmup_end, self.steps_done - 1))
        recent = self.losses.values[start:]
        if self._plateau.reduces(float(np.nanmean(recent)) if recent.size else math.nan):
            scale = self.state.plateau_scale * self.config.decay_phase_factor
            self.state = self.state._replace(plateau_scale=scale)


def _next_multiple(value, interval):
    """The first multiple of `interval` after `value`."""
    return (value // interval + 1) * interval
