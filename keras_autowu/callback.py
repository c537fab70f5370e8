"""AutoWU as a Keras callback: thin glue between `model.fit` and `AutoWUScheduler`."""

import dataclasses
import warnings
import weakref

import numpy as np

from keras_autowu import checks, fit_callbacks, run_variables, schedule, train_step_hook
from keras_autowu._keras import check_settable_learning_rate, keras, steps_per_execution, velocity_momentum
from keras_autowu._stacklevel import user_stacklevel
from keras_autowu.config import AutoWUConfig, check_run_length
from keras_autowu.scheduler import AutoWUScheduler, resolve_test_interval
from keras_autowu.weight_snapshot import WeightSnapshot


class AutoWU(keras.callbacks.Callback):
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
      rollback_on_divergence: Bool. At the switch, when the warmup diverges, and when
        the guard rescues a diverging run after it, put the weights and the optimizer's
        slots back to those of the test interval with the lowest loss.
      **kwargs: The algorithm's arguments (`min_lr`, `max_lr`, `max_warmup_fraction`,
        `warmup_type`, `immediate_cooldown`, `cooldown_fraction`, `cooldown_type`,
        `decay_phase_factor`, `decay_phase_stat`, `confidence`, `patience`,
        `num_predictions`, `test_interval`, `lr_choice`, `min_progress`, `min_rise`,
        `max_rescues`, `handover_trial`, `seed`, `verbose`).

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

    sets_learning_rate = True  # no other scheduler in the same fit (fit_callbacks)

    def __init__(self, steps_per_epoch=None, total_epochs=None, rollback_on_divergence=True, **kwargs):
        super().__init__()
        self.config = AutoWUConfig(**kwargs)
        check_run_length(steps_per_epoch, total_epochs, allow_none=True)
        checks.check_bool("AutoWU", "rollback_on_divergence", rollback_on_divergence)
        self._steps_per_epoch = steps_per_epoch
        self._total_epochs = total_epochs
        self.rollback_on_divergence = rollback_on_divergence
        self.scheduler = None
        self._variables = self._hook = None
        self._snapshots = {}  # step -> WeightSnapshot: at most two (see Request)
        self._run_started = False
        if self.config.test_interval != "epoch":
            # Tests within epochs: a look at each batch's start, main thread. Keras 3
            # keeps dispatching batches asynchronously unless a callback has a batch-*end*
            # hook; tf_keras converts batch logs to NumPy (a sync) unless told not to.
            self.on_train_batch_begin = self._test_if_due
            self._supports_tf_logs = True

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
        self._attach_variables({"steps": self._steps_per_epoch, "epochs": self._total_epochs})

    def set_params(self, params):
        super().set_params(params)
        # Before any callback's on_train_begin, where BackupAndRestore restores.
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._attach_variables(params)
            callback_list = fit_callbacks.calling_callback_list()
            if callback_list is not None:
                fit_callbacks.arrange(self, callback_list, self.scheduler)

    def _attach_variables(self, params):
        steps_per_epoch = self._steps_per_epoch or params.get("steps")
        if not steps_per_epoch:
            raise ValueError(
                "AutoWU needs the number of steps per epoch, which fit() cannot infer "
                f"from this data (steps={params.get('steps')!r}). "
                "Pass AutoWU(steps_per_epoch=...)."
            )
        total_epochs = self._total_epochs or params.get("epochs")
        _warn_if_fit_and_run_lengths_differ(params.get("epochs"), total_epochs)
        config = self._config_for(steps_per_epoch, total_epochs)
        self.scheduler = AutoWUScheduler(
            steps_per_epoch,
            total_epochs,
            steps_per_execution(self.model),
            velocity_momentum(self.model.optimizer),
            **dataclasses.asdict(config),
        )
        check_settable_learning_rate("AutoWU", self.model.optimizer)
        self._variables = run_variables.attach(self.model, self.scheduler.total_steps)

    def _config_for(self, steps_per_epoch, total_epochs):
        """The config, its test interval aligned to steps_per_execution's chunks.

        A decision is carried out at the end of the chunk that holds its step, so a test
        inside a chunk would take effect late. Chunks restart at every epoch.
        """
        chunk = steps_per_execution(self.model)
        plan = schedule.SchedulePlan.from_config(self.config, steps_per_epoch, total_epochs)
        interval = resolve_test_interval(self.config.test_interval, plan)
        if chunk <= 1 or (interval % chunk == 0 and steps_per_epoch % chunk == 0) or interval % steps_per_epoch == 0:
            return self.config
        if steps_per_epoch % chunk == 0:
            aligned = -(-interval // chunk) * chunk
            where = f"a multiple of steps_per_execution={chunk}"
        else:
            aligned = -(-interval // steps_per_epoch) * steps_per_epoch
            where = f"a whole number of epochs, as steps_per_epoch={steps_per_epoch} is no multiple of steps_per_execution={chunk}"
        if self.config.test_interval != "auto":
            warnings.warn(
                f"AutoWU: test_interval={self.config.test_interval!r} ({interval} steps) rounded up to "
                f"{aligned} steps, {where}, so that every decision takes effect at its own step.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        return dataclasses.replace(self.config, test_interval=aligned)

    def on_train_begin(self, logs=None):
        if self._variables is None:  # set_params was not called by fit (Keras 2 does)
            self._attach_variables(self.params)
        self._hook = train_step_hook.TrainStepHook(self._variables)
        self._hook.install(self.model)
        self._run_started = False

    def on_epoch_begin(self, epoch, logs=None):
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
        ended_here = _FITS_ENDED.get(self.model.optimizer) == offset and first_epoch == 0
        if offset == run_variables.NO_RUN or losses.size >= total or not 0 <= step - offset < total or ended_here:
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
            self._sync(self._variables.count())

    def on_epoch_end(self, epoch, logs=None):
        self._sync(self._variables.count())
        if self.scheduler.steps_done == self._steps_at_start:
            raise RuntimeError(
                "AutoWU saw no loss in a whole epoch: this model's train_step does not "
                "call self.compute_loss(...). Compute the loss with it, or use "
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
        if logs is not None:
            # The epoch's last step's: the optimizer's variable may already hold the
            # next one (Keras's extra step at the end of a dataset of unknown length).
            last_step = max(self.scheduler.steps_done - 1, 0)
            logs["learning_rate"] = float(self.scheduler.learning_rates([last_step])[0])

    def on_train_end(self, logs=None):
        # The variables stay in the optimizer: a checkpoint saved now must still load
        # into one that AutoWU set up, and Keras's tracking lists only grow.
        train_step_hook.uninstall(self.model)
        self._snapshots = {}
        optimizer = self.model.optimizer
        _FITS_ENDED[optimizer] = int(self._variables.step_offset.numpy())
        # The table ends at 0; a model saved now, and trained on without AutoWU, should
        # not: leave the learning rate the decay started from (rescues included), or, in
        # a fit that ended in the warmup, the last one applied.
        scheduler = self.scheduler
        if scheduler.phase == "warmup":
            usable = scheduler.learning_rates([max(scheduler.steps_done - 1, 0)])[0]
        else:
            usable = scheduler.state.decay_base_lr * schedule.RESCUE_FACTOR ** len(scheduler.state.rescue_steps)
        optimizer.learning_rate.assign(float(usable))

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

    def _carry_out(self, requests):
        for request in requests:
            if request.kind == "snapshot":
                self._take_snapshot(request.step)
            elif request.kind == "discard":
                self._snapshots.pop(request.step, None)
            else:
                self._roll_back(request.step)

    def _write_learning_rates(self):
        self._variables.set_learning_rates(self.scheduler.learning_rates(np.arange(self.scheduler.total_steps + 1)))

    def _take_snapshot(self, step):
        # A model built by its first batch (tf_keras: a Sequential without Input) has
        # no weights to copy before it.
        if self.rollback_on_divergence and self.model.built:
            self._snapshots[step] = WeightSnapshot(self.model, step, self._variables.refs())

    def _roll_back(self, step):
        snapshot = self._snapshots.get(step)
        if not self.rollback_on_divergence or snapshot is None:
            return
        # The snapshot is kept: a later rescue may need it again.
        snapshot.restore(learning_rate=self.scheduler.learning_rates([self.scheduler.steps_done])[0])
        if self.config.verbose:
            print(
                f"AutoWU: weights and optimizer state rolled back to step "
                f"{snapshot.step}, the test with the lowest loss so far."
            )


# Optimizers whose last fit with AutoWU ended in this process -> that run's step offset.
_FITS_ENDED = weakref.WeakKeyDictionary()


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
