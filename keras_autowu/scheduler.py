"""AutoWU's phases as a small state machine that knows nothing of Keras."""

import collections
import math
import warnings
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from keras_autowu import checks, flat_start, gp_minimum, handover, loss_sampling, schedule
from keras_autowu._stacklevel import user_stacklevel
from keras_autowu.config import AutoWUConfig, check_run_length
from keras_autowu.loss_progress import LossProgress
from keras_autowu.loss_record import LossRecord

# The reference's reduce-on-plateau (PyTorch's defaults): relative threshold, patience.
_PLATEAU_THRESHOLD = 1e-4
_PLATEAU_PATIENCE = 5
# Fewer finite losses than this give the GP nothing to fit.
_MIN_FINITE_LOSSES = 3
# test_interval="auto": this many tests fit in the longest warmup (at most one an epoch).
AUTO_TESTS_PER_WARMUP = 20
_STATE_FORMAT = 1


# One call instead of a score of eager ops per step of a custom loop; traced once per
# plan (the state goes in as tensors), and once more when rescues begin: with
# reduce_retracing, `rescue_steps` gets a shape of any length.
_compiled_learning_rate_at = tf.function(schedule.learning_rate_at, reduce_retracing=True)


class GPTestRecord(NamedTuple):
    """One "minimum passed?" test: at `step`, over the losses of steps 0..step-1.

    `positive` needs both the GP's vote and `loss_turned`: the loss has made real
    progress and then risen (see `loss_progress`).
    """

    step: int
    passed_probability: np.ndarray  # one per prediction
    positive: bool
    lr_at_minimum: float  # the learning rate at the GP's minimum, mean over predictions
    posterior_mean: Optional[np.ndarray]  # [num_predictions, 500] on x in [0, 1]
    handover_lr: float = math.nan  # the learning rate `lr_choice` picks, mean over predictions
    loss_turned: bool = True


class Request(NamedTuple):
    """What the training loop must do to the weights, from `AutoWUScheduler.observe`.

    kind "snapshot": keep a copy of the weights and the optimizer's slots as they are
    now, after `step` steps. kind "restore": put back the copy taken after `step` steps;
    the step counter goes on. kind "discard": the copy of `step` is no longer needed.
    At most two copies are kept at once: the one a restore puts back, and a newer one
    whose own loss (that of step `step`) is not yet known.
    """

    kind: str
    step: int


class Rescue(NamedTuple):
    """A divergence after the warmup, and what the guard did about it."""

    step: int  # the first step at the lower learning rate
    reason: str
    learning_rate_before: float
    learning_rate: float
    restore_step: Optional[int]  # the snapshot put back, if any


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
    run. While the loss has not moved from its start, it grows `flat_start_speedup`
    times faster (checked that many times per test interval; see
    `keras_autowu.flat_start`), and it reaches `max_lr` as many steps earlier as that
    saved. Every `test_interval` steps a Gaussian process fitted to the warmup's losses
    tests whether their minimum has passed; a test is positive when the GP is sure of
    it and the loss has fallen by `min_progress` of its start and risen again by
    `min_rise` of that fall. After `patience` positive tests in a row (or a positive
    last test before the warmup's cap, or at the cap, whose learning rate would be
    handed on otherwise), the learning rate is set to the point of the GP's loss curve
    that `lr_choice` picks and the decay begins:
    a cosine to zero at the end of the run (`immediate_cooldown=True`), or a constant
    (or per-epoch `decay_phase_factor`, or reduce-on-plateau on the epoch's mean loss
    with `decay_phase_stat="loss"`) and then a cosine over the last `cooldown_fraction`.

    A warmup whose loss diverges (a non-finite loss, or, at two tests in a row, at the
    last test before the warmup's cap or at the cap, a test interval's mean loss that
    has lost half the progress from the first interval to the best) ends at that test,
    with the learning rate at the GP's minimum of the finite losses, or, when the GP
    has no estimate, the warmup's learning rate at the lowest finite loss (`min_lr`
    when there is none).

    After the warmup a guard keeps watching at every test interval: a non-finite
    loss, or two intervals in a row that lost half the progress or drifted (doubled
    from the best and lost a tenth of the progress), is a divergence, and a rescue
    halves the learning rate from that step on (at most `max_rescues` times) and asks
    for the snapshot of the lowest loss back. So is a switch whose handed-on learning
    rate fails its trial: none of the first `handover_trial` intervals after it brings
    the mean loss below the warmup's best.

    `observe` returns the `Request`s that the training loop carries out: keep a
    snapshot of the weights (at each test whose interval has the lowest loss so far),
    put it back (the switch, a divergence, a rescue), or discard it. A snapshot becomes
    the one put back only once its own loss, the first after it, is known and healthy:
    the losses before a snapshot say nothing of the last update, which may already have
    blown the weights up. The Keras callback does all three; a custom loop does them on
    its own variables (`keras_autowu.WeightSnapshot`).

    Every decision is a function of the losses alone: `get_state()` is the losses,
    and `set_state()` replays them, so a restored scheduler continues exactly as the
    original would have.

    Args:
      steps_per_epoch: Int. Steps (optimizer updates) per epoch.
      total_epochs: Int. Epochs in the run; the run has steps_per_epoch * total_epochs
        steps.
      steps_per_execution: Int. The loop hands over its losses in chunks of this
        many steps: the fast climb's checks fall on its multiples.
      velocity_momentum: Float in [0, 1). The momentum of the optimizer's velocity
        when the learning rate goes into it, as in Keras's SGD and RMSprop
        (v <- momentum * v - lr * g); 0 for optimizers that multiply an averaged
        update by the learning rate (Adam, LAMB). `lr_choice="momentum_corrected"`
        uses it. The callback reads it from the optimizer.
      min_lr: Float. The learning rate of the first step.
      max_lr: Float. Where the warmup would end after its longest.
      max_warmup_fraction: Float in [0, 1]. The longest warmup, as a fraction of the run.
      warmup_type: "exp" or "linear".
      flat_start_speedup: Int >= 1. While the loss has not moved from its start, the
        warmup climbs this many times faster (over at most the first 60 % of its way
        to max_lr; see `keras_autowu.flat_start`). 1: a steady climb, as in the
        reference.
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
      test_interval: Int, "auto" or "epoch". Steps between tests. "auto": 1/20 of
        the longest warmup, at most one epoch; "epoch": once per epoch, as in the
        paper.
      lr_choice: "momentum_corrected" (the GP's minimum as the optimizer's velocity
        averaged the climb: lower for SGD, the minimum itself for Adam and LAMB;
        the best on our benchmarks), "gp_minimum" (the reference's),
        "lag_corrected", "gp_minimum/2", "gp_minimum/4", "steepest" or "drop_share":
        the point of the GP's loss curve whose learning rate the decay starts from;
        see `keras_autowu.handover`.
      min_progress: Float in [0, 1]. A positive test needs the loss to have fallen
        by this share of its first interval's mean. 0 and `min_rise=0`: the GP alone
        decides, as in the reference.
      min_rise: Float >= 0. A positive test needs the last interval's mean to be
        above the best by this share of the fall.
      max_rescues: Int. Rescues after the warmup, at most; 0: no guard, as in the
        reference.
      handover_trial: Int. After a switch, the guard also rescues when none of this
        many test intervals has a mean loss below the warmup's best: the weights
        start from the snapshot of that best, so a learning rate that trains cannot
        fail it for long. 0: no trial.
      seed: Int. Seeds the subsampling, so that every worker decides alike.
      verbose: Int. 1: print a line at the switch.

    Example:

    ```python
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch=100, total_epochs=10)
    optimizer.learning_rate = scheduler.learning_rate
    snapshots = {}
    for step in range(1000):
        loss = train_step(next(batches))
        for request in scheduler.observe([float(loss)]):
            if request.kind == "snapshot":
                snapshots[request.step] = keras_autowu.WeightSnapshot(model, request.step)
            elif request.kind == "discard":
                del snapshots[request.step]
            else:  # "restore"
                snapshots[request.step].restore(learning_rate=scheduler.learning_rate)
        optimizer.learning_rate = scheduler.learning_rate
    ```

    References:
      Kim et al., Automated Learning Rate Scheduler for Large-Batch Training,
      ICML 2021 AutoML workshop. https://arxiv.org/abs/2107.05855
    """

    def __init__(self, steps_per_epoch, total_epochs, steps_per_execution=1, velocity_momentum=0.0, **kwargs):
        check_run_length(steps_per_epoch, total_epochs)
        checks.check_int("AutoWU", "steps_per_execution", steps_per_execution, 1)
        checks.check_number("AutoWU", "velocity_momentum", velocity_momentum, 0.0, 1.0, high_open=True)
        self.velocity_momentum = float(velocity_momentum)
        self.config = AutoWUConfig(**kwargs)
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.plan = schedule.SchedulePlan.from_config(self.config, steps_per_epoch, total_epochs)
        self.flat_check_interval = flat_start.check_interval(
            self.test_interval, self.config.flat_start_speedup, steps_per_execution, steps_per_epoch
        )
        self.reset()
        self._warn_about_the_run_length()

    def _warn_about_the_run_length(self):
        if self._warmup_rounds_to_nothing():
            warnings.warn(
                f"AutoWU: the run's {self.total_steps} steps are too short for a warmup "
                f"(max_warmup_fraction={self.config.max_warmup_fraction} of them is under one "
                "step); the decay starts from min_lr.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        elif 0 < self.plan.max_warmup_steps <= self.test_interval:
            warnings.warn(
                f"AutoWU: no GP test falls within the warmup: test_interval={self.test_interval} "
                f"steps, but the warmup lasts at most {self.plan.max_warmup_steps} of the run's "
                f"{self.total_steps} steps. The learning rate follows the warmup to its cap "
                "(max_lr); pass a smaller test_interval, or train for more epochs.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        elif 0 < (self.plan.max_warmup_steps - 1) // self.test_interval < 2 * self.config.patience:
            # A test at the cap itself would come too late: the warmup is over.
            tests = (self.plan.max_warmup_steps - 1) // self.test_interval
            auto = _auto_test_interval(self.plan)
            advice = (
                f"Pass test_interval={auto} (test_interval='auto'), or train for more epochs."
                if auto < self.test_interval else "Train for more epochs, or with smaller batches."
            )
            warnings.warn(
                f"AutoWU: only {tests} GP test{'s fall' if tests > 1 else ' falls'} within the longest "
                f"warmup, and {self.config.patience} positive ones in a row end it: the loss may "
                f"blow up before they do. {advice}",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def reset(self):
        """Forgets the run: back to step 0 of the warmup."""
        self.steps_done = 0
        self.state = self._handing_on_the_cap(schedule.initial_state(self.plan))
        if self._warmup_rounds_to_nothing():
            # Without a single warmup step, min_lr is the only learning rate known to be safe.
            self.state = self.state._replace(decay_base_lr=self.config.min_lr)
        self.losses = LossRecord()
        self.tests = []
        self.switch: Optional[GPTestRecord] = None
        self.divergence: Optional[Divergence] = None
        self.rescues = []
        # (the warmup's best interval mean, intervals left) while the hand-over is on trial.
        self._trial: Optional[tuple] = None
        self.snapshot_step: Optional[int] = None  # the snapshot a restore puts back
        self.unverified_snapshot_step: Optional[int] = None  # a newer one, its own loss unknown
        self.progress = LossProgress(self.config.min_progress, self.config.min_rise)
        self._interval_start = 0  # the first step of the test interval under way
        self.healthy = True  # the last test interval's losses: finite, and not rising
        self._gp_state = gp_minimum.initial_gp_state()
        self._recent_positives = collections.deque(maxlen=self.config.patience)
        self._plateau_best = math.inf
        self._plateau_bad_epochs = 0
        self._warned_gp_failure = False
        self._warned_rescues_spent = False
        self._quiet = False
        self._requests = []

    def _warmup_rounds_to_nothing(self):
        return self.config.max_warmup_fraction > 0 and self.plan.max_warmup_steps == 0

    @property
    def test_interval(self):
        """Steps between tests (and, after the warmup, the guard's checks)."""
        return resolve_test_interval(self.config.test_interval, self.plan)

    @property
    def total_steps(self):
        return self.plan.total_steps

    @property
    def in_fast_climb(self):
        """Whether the warmup still climbs fast over a loss that has not moved."""
        return self.switch is None and self.steps_done < self.state.fast_end

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
        state = self.state._replace(rescue_steps=tf.constant(self.state.rescue_steps, tf.int64, shape=[len(self.state.rescue_steps)]))
        state = schedule.ScheduleState(*(tf.constant(v) if not tf.is_tensor(v) else v for v in state))
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
        test_at_cap = at_cap and bool(self.tests)
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

    def _check_flat_start(self, step):
        """Ends the fast climb at `step` once the loss has moved (see `flat_start`)."""
        window = flat_start.window(self.test_interval, self.flat_check_interval)
        if not flat_start.loss_has_moved(self.losses.values[:step], self.test_interval, window):
            return
        self.state = self._handing_on_the_cap(schedule.state_with_fast_end(self.plan, step, self.state))
        if self.config.verbose and not self._quiet:
            print(
                f"AutoWU: the loss has moved by step {step} (learning rate "
                f"{self.plan.warmup_lr(step - 1, step):.4g}); the warmup climbs at its steady "
                f"pace from here, {self.config.flat_start_speedup} times slower than over the flat start."
            )

    @property
    def _corrects_for_velocity(self):
        return self.config.lr_choice == "momentum_corrected" and bool(self.velocity_momentum)

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
        return state._replace(decay_base_lr=handover.velocity_average(climb, self.velocity_momentum))

    def _snapshot_if_best(self, step, verdict):
        """Keeps the weights of the lowest loss so far: a switch, a divergence and a
        rescue all go back to them."""
        if verdict.healthy and verdict.mean <= min(self.progress.interval_means):
            self._request("snapshot", step)

    def _request(self, kind, step):
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

    def _test_warmup(self, step, verdict):
        reason = verdict.non_finite
        risen = (
            f"the mean loss of steps {self._interval_start}..{step - 1} rose to "
            f"{verdict.mean:.4g} (best {min(self.progress.interval_means):.4g})"
        ) if verdict.risen else None
        # Two intervals in a row: a single bad batch is noise, a blow-up persists.
        if verdict.risen_in_a_row >= 2:
            reason = risen
        # No later test can confirm it, and the reference would hand the cap's learning
        # rate on, which is higher still: at the last tests, one risen interval will do.
        elif risen and self._is_last_chance(step):
            where = "at the warmup's cap" if step == self._warmup_cap() else "at the last test before the warmup's cap"
            reason = f"{risen}, {where}"
        record = self._gp_test(step)
        if reason is None:
            self._record_test(record, verdict)
            return
        self.tests.append(record)
        fallback = not math.isfinite(record.handover_lr)
        # The GP extrapolates past the last finite loss; never go beyond its LR.
        lr = self._fallback_lr() if fallback else min(record.handover_lr, self._last_finite_lr())
        self.divergence = Divergence(step, reason, lr, fallback)
        self._switch(record._replace(handover_lr=lr), restore=True)

    def _is_last_chance(self, step):
        """Whether the test at `step` is the last on the grid before the warmup's cap,
        or the one at the cap: the warmup's last chance to end on its own terms."""
        cap = self._warmup_cap()
        return step in ((cap - 1) // self.test_interval * self.test_interval, cap)

    def _last_finite_lr(self):
        finite = self.losses.finite_indices
        return self.plan.warmup_lr(int(finite[-1]), self.state.fast_end) if finite.size else self.config.min_lr

    def _fallback_lr(self):
        finite = self.losses.finite_indices
        if not finite.size:
            return self.config.min_lr
        return self.plan.warmup_lr(int(finite[np.argmin(self.losses.values[finite])]), self.state.fast_end)

    def _guard(self, step, verdict):
        """After the warmup: a divergence is rescued, a healthy interval snapshotted."""
        reason = verdict.non_finite
        # Two intervals in a row, as in the warmup; a drift is slower than a blow-up
        # and caught sooner (see `loss_progress`).
        if verdict.risen_in_a_row >= 2 or verdict.drifted_in_a_row >= 2:
            how = "" if verdict.risen_in_a_row >= 2 else ", more than twice the best"
            reason = (
                f"the mean loss of steps {self._interval_start}..{step - 1} rose to "
                f"{verdict.mean:.4g} (best {min(self.progress.interval_means):.4g}){how}, the "
                "second interval in a row"
            )
        unbeaten = self._unbeaten_trial_best(verdict)
        if reason is None and unbeaten is not None:
            intervals = self.config.handover_trial
            reason = (
                f"the handed-on learning rate failed its trial: the mean loss of none of the "
                f"{intervals} interval{'s' if intervals > 1 else ''} since the switch at step "
                f"{self.switch.step} fell below the warmup's best ({unbeaten:.4g}); "
                f"steps {self._interval_start}..{step - 1}: {verdict.mean:.4g}"
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
        before = float(self.learning_rates([step])[0])
        self.state = self.state._replace(rescue_steps=self.state.rescue_steps + (step,))
        self.progress.forgive()
        rescue = Rescue(step, reason, before, before * schedule.RESCUE_FACTOR, self.snapshot_step)
        self.rescues.append(rescue)
        if self.snapshot_step is not None:
            self._request("restore", self.snapshot_step)
        if self.config.verbose and not self._quiet:
            back = "" if rescue.restore_step is None else f"; restore the weights of step {rescue.restore_step}"
            print(
                f"AutoWU: rescue {len(self.rescues)} of at most {self.config.max_rescues} at step "
                f"{step}, in the {self.phase} phase: {reason}. Learning rate halved "
                f"({before:.4g} -> {rescue.learning_rate:.4g}) from here on{back}."
            )

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
            spent = (
                "max_rescues=0 turns the guard off" if not self.config.max_rescues
                else f"after {len(self.rescues)} rescues (max_rescues={self.config.max_rescues})"
            )
            warnings.warn(
                f"AutoWU: the loss diverged at step {step} ({reason}), {spent}. AutoWU "
                "keeps its schedule; add keras.callbacks.TerminateOnNaN() to stop such a run "
                "(this warning is shown once per run).",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
            self._warned_rescues_spent = True

    def _say_the_cap_was_reached(self, step):
        if self.config.verbose and not self._quiet:
            positives = sum(t.positive for t in self.tests)
            base = self.state.decay_base_lr
            what = f"warmup's last learning rate, {base:.4g}"
            if self._corrects_for_velocity:
                last = self.plan.warmup_lr(step - 1, self.state.fast_end)
                what = f"learning rate the velocity averaged over the climb, {base:.4g} (the warmup's last: {last:.4g})"
            print(
                f"AutoWU: the warmup reached its cap at step {step} with no switch "
                f"({positives} of {len(self.tests)} tests positive); the decay starts at the "
                f"{what}. The guard watches the loss from here."
            )

    def _gp_test(self, step):
        """The GP test on the losses of steps 0..step-1."""
        record = self.losses
        if record.finite_count(step) < _MIN_FINITE_LOSSES:
            return GPTestRecord(step, np.zeros(0), False, math.nan, None)
        if math.isinf(record.ceiling):
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
        loss_turned = self.progress.turned_after_progress()
        positive = votes > self.config.num_predictions / 2 and loss_turned
        posterior_mean = result.posterior_mean.numpy()
        return GPTestRecord(
            step,
            probability,
            positive,
            self._warmup_lr_at(result.argmin_x.numpy(), step),
            posterior_mean,
            self._handed_on(self._warmup_lr_at(handover.handover_x(posterior_mean, self.config.lr_choice), step), step),
            loss_turned,
        )

    def _handed_on(self, lr, step):
        """The learning rate `lr_choice` hands on, from `lr` at its point of the GP's curve."""
        if self.config.lr_choice == "momentum_corrected":
            return self._velocity_average_at(lr, step)
        return lr * self._handover_multiplier(step)

    def _velocity_average_at(self, lr, step):
        """`lr`, as the optimizer's velocity averaged the climb up to the step that had it."""
        if not self.velocity_momentum:
            return lr
        climb = self.plan.warmup_lrs(np.arange(step), self.state.fast_end)
        at = max(int(np.searchsorted(climb, lr, side="right")) - 1, 0)
        return lr * handover.velocity_average(climb[: at + 1], self.velocity_momentum) / climb[at]

    def _handover_multiplier(self, step):
        """`lr_choice`'s factor on the learning rate at its point of the GP's curve."""
        if self.config.lr_choice != "lag_corrected":
            return handover.lr_multiplier(self.config.lr_choice)
        # The climb's pace over the last steps before the test, where the minimum lies.
        last = step - 1
        earlier = max(last - handover.LOSS_LAG_STEPS, 0)
        climb = self.plan.warmup_lr(last, self.state.fast_end) / self.plan.warmup_lr(earlier, self.state.fast_end)
        return handover.lr_multiplier(self.config.lr_choice, climb)

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
            along = schedule.warmup_position(along * (step - 1), self.plan, fast_end).numpy().astype(np.float64) / now
        if self.config.warmup_type == "exp":
            lrs = self.config.min_lr * (lr_now / self.config.min_lr) ** along
        else:
            lrs = self.config.min_lr + (lr_now - self.config.min_lr) * along
        return float(np.mean(lrs))

    def _record_test(self, record, verdict):
        self.tests.append(record)
        self._recent_positives.append(record.positive)
        # At the last test the alternative is the cap's learning rate, past the
        # minimum by the GP's own account: one positive test will do.
        last_chance = record.positive and self._is_last_chance(record.step)
        self._snapshot_if_best(record.step, verdict)
        if sum(self._recent_positives) >= self.config.patience or last_chance:
            # The weights at a switch were trained past the minimum: the decay starts
            # from the snapshot of the lowest loss instead.
            self._switch(record, restore=True)

    def _switch(self, record, restore=True):
        self.switch = record
        # With no finite interval yet (all NaN), there is no best to beat.
        if self.config.handover_trial and self.config.max_rescues and self.progress.interval_means:
            self._trial = (min(self.progress.interval_means), self.config.handover_trial)
        self.state = self.state._replace(warmup_end=record.step, decay_base_lr=record.handover_lr)
        if restore:
            # Whether a copy exists to put back depends on restarts; what the guard
            # decides next must not.
            self.progress.forgive()
            if self.snapshot_step is not None:
                self._request("restore", self.snapshot_step)
        if self.config.verbose and not self._quiet:
            then = "cosine decay" if self.config.immediate_cooldown else "decay phase"
            if self.divergence is not None:
                source = "the lowest finite loss" if self.divergence.fallback else f"the GP, {self._lr_choice_named()}"
                why = f"the warmup diverged at step {record.step}: {self.divergence.reason}"
                how = f"learning rate set to {record.handover_lr:.4g} ({source})"
            else:
                patience, positives = self.config.patience, sum(self._recent_positives)
                tests = (
                    f"{patience} positive tests in a row" if positives >= patience
                    else f"{positives} of the last {patience} tests positive, the last "
                    + ("at the warmup's cap" if record.step == self._warmup_cap() else "before the warmup's cap")
                )
                why = (
                    f"the loss minimum has passed at step {record.step} "
                    f"(p={np.median(record.passed_probability):.3f}, {tests})"
                )
                how = (
                    f"learning rate set to {record.handover_lr:.4g} ({self._lr_choice_named()}; "
                    f"the GP's minimum is at {record.lr_at_minimum:.4g})"
                )
            print(f"AutoWU: {why}; {how}, then {then}.")

    def _lr_choice_named(self):
        if self._corrects_for_velocity:
            return f"momentum_corrected, for a velocity of momentum {self.velocity_momentum:g}"
        return self.config.lr_choice

    def _warn_gp_failure(self, step):
        if not self._warned_gp_failure and not self._quiet:
            warnings.warn(
                f"AutoWU: the GP test at step {step} failed numerically and counts as "
                "negative; training goes on (this warning is shown once per run).",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
            self._warned_gp_failure = True

    def _update_plateau(self):
        epoch_start = (self.steps_done - 1) // self.steps_per_epoch * self.steps_per_epoch
        start = max(epoch_start, min(self.state.warmup_end, self.steps_done - 1))
        recent = self.losses.values[start:]
        mean_loss = float(np.nanmean(recent)) if recent.size else math.nan
        if mean_loss < self._plateau_best * (1.0 - _PLATEAU_THRESHOLD):
            self._plateau_best = mean_loss
            self._plateau_bad_epochs = 0
        else:
            self._plateau_bad_epochs += 1
        if self._plateau_bad_epochs > _PLATEAU_PATIENCE:
            scale = self.state.plateau_scale * self.config.decay_phase_factor
            self.state = self.state._replace(plateau_scale=scale)
            self._plateau_bad_epochs = 0


def resolve_test_interval(test_interval, plan):
    """The steps between tests that `test_interval` ("auto", "epoch" or an int) means."""
    if test_interval == "epoch":
        return plan.steps_per_epoch
    if test_interval == "auto":
        return min(plan.steps_per_epoch, _auto_test_interval(plan))
    return test_interval


def _auto_test_interval(plan):
    """1/AUTO_TESTS_PER_WARMUP of the longest warmup (every step for a tiny one)."""
    if plan.max_warmup_steps <= 0:
        return plan.steps_per_epoch
    return max(1, plan.max_warmup_steps // AUTO_TESTS_PER_WARMUP)


def _next_multiple(value, interval):
    """The first multiple of `interval` after `value`."""
    return (value // interval + 1) * interval
