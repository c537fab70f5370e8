"""AutoWU as a Keras callback: thin glue between `model.fit` and `AutoWUScheduler`."""

import dataclasses
import math
import warnings

from keras_autowu.autowu.config import AutoWUConfig, Departures
from keras_autowu.autowu.controller import AutoWUScheduler
from keras_autowu.core import checks, keras_compat, run_state, step_hook
from keras_autowu.core.callback import SchedulerCallback
from keras_autowu.core.keras_compat import check_settable_learning_rate, keras, steps_per_execution, velocity_momentum
from keras_autowu.core.snapshot import WeightSnapshot
from keras_autowu.core.stacklevel import user_stacklevel


class AutoWU(SchedulerCallback):
    """Automatic learning-rate warmup and decay for `model.fit`: no LR to choose.

    The learning rate grows from `min_lr` until a Gaussian process fitted to the
    training loss says its minimum has passed, then restarts from where the loss was
    lowest and decays to zero. See `AutoWUScheduler` for the algorithm and the
    arguments, which this callback takes too.

    The learning rate of every step is computed inside the train function, so it is
    exact with `steps_per_execution > 1` and under XLA, and Python runs only when a
    test is due. The optimizer must be built with a float learning rate, which AutoWU
    overwrites; its value is written to `logs["learning_rate"]` at each epoch's end.

    The run's state lives in variables of the optimizer, so BackupAndRestore and any
    checkpoint of the optimizer carry it: a restarted `fit` resumes the run where the
    checkpoint left it. See `build` for loading a checkpoint before `fit`.

    Args:
      steps_per_epoch: Int or None. Taken from `fit` when None; needed when `fit`
        cannot know it (a dataset of unknown length).
      total_epochs: Int or None. Taken from `fit`'s `epochs` when None.
      rollback_on_divergence: Bool or None. At the switch, when the warmup diverges,
        and when the guard rescues a diverging run after it, put the weights and the
        optimizer's slots back to those of the test interval with the lowest loss.
        None: True, or False with `reference=True`.
      departures: For ablations: see `AutoWUScheduler`.
      **kwargs: The algorithm's arguments (`min_lr`, `max_lr`, `max_warmup_fraction`,
        `warmup_type`, `immediate_cooldown`, `cooldown_fraction`, `cooldown_type`,
        `decay_phase_factor`, `decay_phase_stat`, `confidence`, `patience`,
        `num_predictions`, `test_interval`, `lr_choice`, `max_rescues`, `seed`,
        `verbose`, `reference`).

    Raises:
      ValueError: for an argument out of range, at construction; at the start of
        training, when the run's length is unknown or the optimizer was built with a
        `LearningRateSchedule`.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    autowu = keras_autowu.AutoWU()
    model.fit(x, y, batch_size=1024, epochs=20, callbacks=[autowu])
    keras_autowu.plot_autowu(autowu.scheduler, "autowu.png")
    ```
    """

    name = "AutoWU"
    backends = ("tensorflow", "jax")

    def __init__(self, steps_per_epoch=None, total_epochs=None, rollback_on_divergence=None, departures=None, **kwargs):
        self.config = AutoWUConfig(**kwargs)
        super().__init__(steps_per_epoch, total_epochs)
        if rollback_on_divergence is None:
            rollback_on_divergence = not self.config.reference
        checks.check_bool("AutoWU", "rollback_on_divergence", rollback_on_divergence)
        if rollback_on_divergence and self.config.reference:
            checks.fail("AutoWU", "rollback_on_divergence", True, "`rollback_on_divergence`=False or None with reference=True, which is the reference's")
        if not rollback_on_divergence and not self.config.reference:
            # No copies asked for, and none said to be put back.
            departures = dataclasses.replace(departures or Departures(), snapshots=False)
        self.departures = departures
        self.rollback_on_divergence = rollback_on_divergence
        self._variables = self._hook = None
        self._snapshots = {}  # step -> WeightSnapshot: at most two (see Request)
        self._run_started = False
        if self.config.test_interval != "epoch":
            # Tests within epochs: a look at each batch's start, main thread.
            self.on_train_batch_begin = self._test_if_due

    def build(self, model):
        """Adds AutoWU's state variables to `model.optimizer` before fit() would.

        Only needed to load a checkpoint that holds them (one saved during an AutoWU
        run) before calling fit(initial_epoch=...): Keras 3 restores an optimizer only
        into the same variables. Needs `steps_per_epoch` and `total_epochs`; builds the
        optimizer, as loading its state needs anyway.
        """
        if not (self._steps_per_epoch and self._total_epochs):
            raise ValueError(
                "AutoWU.build needs the run's length: pass AutoWU(steps_per_epoch=..., "
                f"total_epochs=...). Received steps_per_epoch={self._steps_per_epoch!r}, "
                f"total_epochs={self._total_epochs!r}"
            )
        self.set_model(model)
        self._attach({"steps": self._steps_per_epoch, "epochs": self._total_epochs})

    def _attach(self, params):
        steps_per_epoch = self._steps_per_epoch or params.get("steps")
        if not steps_per_epoch:
            raise ValueError(
                "AutoWU needs the number of steps per epoch, which fit() cannot infer "
                f"from this data (steps={params.get('steps')!r}). "
                "Pass AutoWU(steps_per_epoch=...)."
            )
        total_epochs = self._total_epochs or params.get("epochs")
        _warn_if_fit_and_run_lengths_differ(params.get("epochs"), total_epochs)
        self.scheduler = AutoWUScheduler(
            steps_per_epoch,
            total_epochs,
            steps_per_execution(self.model),
            velocity_momentum(self.model.optimizer),
            departures=self.departures,
            **dataclasses.asdict(self.config),
        )
        check_settable_learning_rate("AutoWU", self.model.optimizer)
        self._variables = run_state.attach(self.model, self.scheduler.total_steps)

    def _check_other_callbacks(self, callback_list):
        """A Keras LR callback would fight AutoWU over the learning rate; an
        EarlyStopping on the validation loss may end the fit in the warmup."""
        for callback in callback_list.callbacks:
            if isinstance(callback, (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)):
                raise ValueError(
                    f"AutoWU sets the learning rate at every step, so {type(callback).__name__} in "
                    "the same fit would change nothing (it would still print that it did). Remove "
                    "it: AutoWU decays the learning rate itself, and "
                    "AutoWU(immediate_cooldown=False, decay_phase_stat='loss') is a "
                    "reduce-on-plateau of its own."
                )
            if isinstance(callback, keras.callbacks.EarlyStopping) and self.scheduler is not None:
                _warn_if_it_watches_the_warmup(callback, self.scheduler)

    def on_train_begin(self, logs=None):
        if self._variables is None:  # set_params was not called by fit (Keras 2 does)
            self._attach(self.params)
        self._start_table(self._variables)
        self._hook = step_hook.train_step_hook(self._variables)
        self._hook.install(self.model)
        self._run_started = False

    def on_epoch_begin(self, epoch, logs=None):
        self._running_state()
        if not self._run_started:
            # Here, not in on_train_begin: BackupAndRestore may restore after AutoWU's.
            self._start_or_resume(epoch)
            self._run_started = True
            self._steps_at_start = self.scheduler.steps_done
        self._steps_at_epoch_start = self.scheduler.steps_done
        self._iterations_at_epoch_start = int(self.model.optimizer.iterations.numpy())

    def _start_or_resume(self, first_epoch):
        losses, offset = self._variables.recorded_losses()
        step = int(self.model.optimizer.iterations.numpy())
        total = self.scheduler.total_steps
        # A fit that ended in this process (EarlyStopping, say) left its run unfinished:
        # a new fit from epoch 0 starts a new run; fit(initial_epoch=...) continues it.
        ended_here = run_state.fit_ended_here(self.model.optimizer, self.name, offset) and first_epoch == 0
        if not self.scheduler.continues(losses.size, None if offset == run_state.NO_RUN else step - offset, ended_here):
            if ended_here and losses.size < total and self.config.verbose:
                print(
                    f"AutoWU: a new run (the last fit ended its run at step {losses.size} of {total}; "
                    "to continue that run instead, pass fit(initial_epoch=...))."
                )
            self._variables.start_run(step_offset=step)
            self.scheduler.reset()
            requests = []
        else:
            requests = self.scheduler.set_state({**self.scheduler.get_state(), "losses": losses})
            if self.config.verbose:
                print(
                    f"AutoWU: resuming at step {self.scheduler.steps_done} of "
                    f"{self.scheduler.total_steps}, in the {self.scheduler.phase} phase, "
                    f"learning rate {self.scheduler.learning_rate:.4g}."
                )
        self._write_learning_rates()
        # The roll-back's snapshots live in memory: a restart asks for a new one.
        self._snapshots = {}
        self._carry_out(requests)

    def _test_if_due(self, batch, logs=None):
        # Python's count of the epoch's batches says when a test may be due, before the
        # batch runs; only then is the step counter read (a read waits for the device),
        # and the losses after it.
        if self._steps_at_epoch_start + batch >= self.scheduler.next_decision_step():
            self._running_state()
            self._sync(self._variables.count())

    def on_epoch_end(self, epoch, logs=None):
        self._running_state()
        self._sync(self._variables.count())
        if self.scheduler.steps_done == self._steps_at_start:
            where = (
                "call self.compute_loss(...). Compute the loss with it"
                if keras_compat.ON_TENSORFLOW
                else "add its loss to Keras's loss tracker (the `loss` metric, where AutoWU reads each "
                "step's loss on JAX), as Keras's own train_step does. Update it"
            )
            raise RuntimeError(
                f"AutoWU saw no loss in a whole epoch: this model's train_step does not {where}, or use "
                "keras_autowu.AutoWUScheduler in a custom training loop."
            )
        recorded = self.scheduler.steps_done - self._steps_at_epoch_start
        updates = int(self.model.optimizer.iterations.numpy()) - self._iterations_at_epoch_start
        if updates > 0 and recorded >= 2 * updates:
            raise RuntimeError(
                f"AutoWU counted {recorded} losses in an epoch of {updates} optimizer steps: this "
                f"model's train_step calls self.compute_loss(...) {recorded // updates} times a step, "
                "and AutoWU takes each call for a step. Call it once per step (sum the losses "
                "first), or use keras_autowu.AutoWUScheduler in a custom training loop."
            )
        super().on_epoch_end(epoch, logs)

    def _epoch_learning_rate(self, epoch):
        # The epoch's last step's: the optimizer's variable may already hold the
        # next one (Keras's extra step at the end of a dataset of unknown length).
        last_step = max(self.scheduler.steps_done - 1, 0)
        if last_step >= self._table_first_step:  # the table holds it, to the bit
            return self._table[last_step - self._table_first_step]
        return self.scheduler.learning_rates(last_step, last_step + 1)[0]

    def on_train_end(self, logs=None):
        # The variables stay in the optimizer: a checkpoint saved now must still load
        # into one that AutoWU set up, and Keras's tracking lists only grow.
        step_hook.uninstall(self.model)
        self._snapshots = {}
        optimizer = self.model.optimizer
        run_state.fit_ended(optimizer, self.name, int(self._variables.step_offset.numpy()))
        optimizer.learning_rate.assign(self.scheduler.learning_rate_after_run())
        if self.config.verbose:
            print(self.scheduler.summary())

    def _sync(self, done):
        """Hands the scheduler the losses of the steps since the last sync (up to `done`)."""
        start = self.scheduler.steps_done
        if done <= start:
            return
        before = self.scheduler.state
        requests = self.scheduler.observe(self._variables.read_losses(start, done))
        if self.scheduler.state != before:
            self._write_learning_rates()
        self._carry_out(requests)

    def _snapshot(self, request):
        # A model built by its first batch (tf_keras: a Sequential without Input) has
        # no weights to copy before it.
        if self.rollback_on_divergence and self.model.built:
            self._snapshots[request.step] = WeightSnapshot(self.model, request.step, self._variables.refs())

    def _discard(self, request):
        self._snapshots.pop(request.step, None)

    def _restore(self, request):
        snapshot = self._snapshots.get(request.step)
        if snapshot is None:
            # A model built by its first batch had no weights to copy at that step.
            if self.config.verbose:
                print(f"AutoWU: no copy of step {request.step}'s weights to go back to; training goes on from these.")
            return
        # The snapshot is kept: a later rescue may need it again.
        done = self.scheduler.steps_done
        snapshot.restore(learning_rate=self.scheduler.learning_rates(done, done + 1)[0])


def _warn_if_fit_and_run_lengths_differ(fit_epochs, total_epochs):
    if not fit_epochs or fit_epochs == total_epochs:
        return
    if fit_epochs > total_epochs:
        what = (
            f"fit(epochs={fit_epochs}) runs past AutoWU's run (total_epochs={total_epochs}): "
            f"its last {fit_epochs - total_epochs} epochs train at learning rate 0. Pass "
            f"AutoWU(total_epochs={fit_epochs}), or leave total_epochs to fit."
        )
    else:
        what = (
            f"fit(epochs={fit_epochs}) ends at epoch {fit_epochs} of AutoWU's {total_epochs}-epoch "
            "run (total_epochs): the learning rate is still mid-schedule there. Continue with "
            f"fit(initial_epoch={fit_epochs}, epochs={total_epochs}), or pass "
            f"AutoWU(total_epochs={fit_epochs})."
        )
    warnings.warn(f"AutoWU: {what}", UserWarning, stacklevel=user_stacklevel())


def _warn_if_it_watches_the_warmup(early_stopping, scheduler):
    monitor = str(getattr(early_stopping, "monitor", ""))
    warmup_epochs = math.ceil(scheduler.plan.max_warmup_steps / scheduler.steps_per_epoch)
    start = getattr(early_stopping, "start_from_epoch", 0)
    if monitor.startswith("val_") and start < warmup_epochs:
        warnings.warn(
            f"AutoWU: EarlyStopping(monitor={monitor!r}) watches from epoch {start}, but AutoWU's "
            f"warmup may last until epoch {warmup_epochs}: its rising learning rate raises the "
            "validation loss, and the fit may stop in the warmup. Pass "
            f"EarlyStopping(start_from_epoch={warmup_epochs}).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
