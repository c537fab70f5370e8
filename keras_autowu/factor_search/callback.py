"""Factor search as a Keras callback: thin glue between `model.fit`,
`FactorSearchScheduler` (the decisions) and `FactorProbe` (the probes in the graph)."""

import warnings

import numpy as np

from keras_autowu.core import checks, keras_compat, run_state, step_hook
from keras_autowu.core.callback import SchedulerCallback
from keras_autowu.factor_search import probe_record
from keras_autowu.core.keras_compat import build_optimizer_slots, check_settable_learning_rate, learning_rate_value, steps_per_execution
from keras_autowu.core.stacklevel import user_stacklevel
from keras_autowu.factor_search.controller import FactorSearchConfig, FactorSearchScheduler
from keras_autowu.core import snapshot as weight_snapshot
from keras_autowu.core.snapshot import WeightSnapshot


class FactorSearch(SchedulerCallback):
    """Factor search (Kim & Yu) for `model.fit`: the learning rate moved by probes.

    Every `update_interval` steps (by default at each epoch's start), a probe batch
    of `probe_batch_size` rows of that step's batch gives the loss after a step of
    each factor times the learning rate; the learning rate is multiplied by the
    factors' geometric mean, weighted by exp(-normalised loss). See
    `FactorSearchScheduler` for the arguments, which this callback takes too, and
    `keras_autowu/factor_search/probe.py` for how the probes move the weights and back.

    The run starts from the optimizer's learning rate, or from
    `initial_learning_rate`. The learning rate and every update's probes live in the
    optimizer's variables, so BackupAndRestore and any checkpoint carry them: a resumed
    fit replays the probes, and goes on with the same learning rate and the whole
    history (`scheduler.updates`) of an uninterrupted one.

    Args:
      steps_per_epoch, total_epochs: taken from `fit` when None.
      rollback_on_divergence: when the loss at the current weights is not finite at an
        update, put back the weights and optimizer slots of the last healthy update.
      **kwargs: `factors`, `update_interval`, `probe_batch_size`, `normalization`,
        `direction`, `min_lr`, `max_lr`, `initial_learning_rate`, `seed`, `verbose`.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    search = keras_autowu.FactorSearch()
    model.fit(x, y, epochs=20, callbacks=[search])
    keras_autowu.plot_factor_search(search.scheduler, "factor_search.png")
    ```
    """

    name = "FactorSearch"
    backends = ("tensorflow", "jax")

    def __init__(self, steps_per_epoch=None, total_epochs=None, rollback_on_divergence=True, **kwargs):
        self.config = FactorSearchConfig(**kwargs)  # checks the arguments now
        super().__init__(steps_per_epoch, total_epochs)
        checks.check_bool("FactorSearch", "rollback_on_divergence", rollback_on_divergence)
        self._kwargs = kwargs
        self.rollback_on_divergence = rollback_on_divergence
        self._probe = self._weights = self._record = None

    def _attach(self, params):
        steps_per_epoch, total_epochs = self.run_length(params)
        interval = self.config.update_interval
        shortest = steps_per_epoch if interval == "epoch" else interval  # rounding only lengthens it
        self._record = probe_record.attach(self.model, steps_per_epoch * total_epochs // shortest + 1, len(self.config.factors))

    def on_train_begin(self, logs=None):
        model = self.model
        check_settable_learning_rate("FactorSearch", model.optimizer)
        steps_per_epoch, total_epochs = self.run_length()
        kwargs = dict(self._kwargs)
        kwargs["update_interval"] = self._aligned_interval(steps_per_epoch)
        if kwargs.get("initial_learning_rate") is not None:
            # As the record saves it (float32): a resumed run replays the same updates.
            kwargs["initial_learning_rate"] = float(np.float32(kwargs["initial_learning_rate"]))
        self.scheduler = FactorSearchScheduler(
            steps_per_epoch, total_epochs, learning_rate=learning_rate_value(model.optimizer), **kwargs
        )
        self._probe = probe_class()(
            model, self.config.factors, self.config.direction, self.config.probe_batch_size, self.config.seed
        )
        # Each step's learning rate from a table in the graph, as AutoWU's and AutoLRS's.
        self._variables = run_state.unsaved(model, self.scheduler.total_steps, "factor_search")
        step_hook.train_step_hook(self._variables, before_train_step=self._probe.before_train_step).install(model)
        self._probe.make_train_functions()
        if self._record is None:  # set_params was not called by fit
            self._attach(self.params)
        self._run_start = None
        self._pending = None

    def _aligned_interval(self, steps_per_epoch):
        """The update interval, rounded up to a multiple of steps_per_execution, so that
        each probe falls on the first step of a chunk."""
        interval = self.config.update_interval
        chunk = steps_per_execution(self.model)
        if interval == "epoch" or chunk <= 1 or interval % chunk == 0:
            return interval
        aligned = -(-interval // chunk) * chunk
        warnings.warn(
            f"FactorSearch: update_interval={interval} rounded up to {aligned} steps, a multiple of "
            f"steps_per_execution={chunk}, so that each probe runs at its own step.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
        return aligned

    def on_epoch_begin(self, epoch, logs=None):
        self._running_state()
        iterations = int(self.model.optimizer.iterations.numpy())
        if self._run_start is None:
            self._start_or_resume(epoch, iterations)
        # The run's step at the epoch's first batch, known at that batch: after a backup
        # within an epoch Keras 3 replays the epoch from batch 0, tf_keras goes on after
        # the backup's batch, and the optimizer's step goes on from the backup's either way.
        self._epoch_start_step, self._epoch_first_step = iterations - self._run_start, None

    def _start_or_resume(self, epoch, iterations):
        scheduler = self.scheduler
        epoch_start = iterations - epoch * scheduler.steps_per_epoch
        saved = self._record.run_start()
        # An unfinished run in the optimizer goes on, its probes replayed: after
        # BackupAndRestore (whatever epoch Keras resumes at: a kill between a backup's
        # weights and its epoch leaves an older epoch beside newer weights) or
        # fit(initial_epoch=...), as AutoWU's does. A fit from epoch 0 starts a new run
        # at the run's start, or after a fit of the run ended in this process.
        steps_done = iterations - saved
        replay = (
            saved != probe_record.NO_RUN
            and 0 <= steps_done < scheduler.total_steps
            and (epoch > 0 or (steps_done > 0 and not run_state.fit_ended_here(self.model.optimizer, self.name, saved)))
        )
        if epoch == 0 and not replay:
            self._run_start = iterations
            scheduler.reset()
            self._record.start_run(iterations, scheduler.learning_rate)
        else:
            self._run_start = saved if replay else epoch_start
            step = iterations - self._run_start
            if replay:
                scheduler.set_state(self._record.scheduler_state(scheduler.steps_per_epoch, scheduler.total_epochs))
                how = f"{len(scheduler.updates)} updates replayed"
            else:  # a checkpoint without them: go on from the optimizer's learning rate
                scheduler.resume(step, learning_rate_value(self.model.optimizer))
                self._record.start_run(probe_record.NO_RUN, scheduler.learning_rate)  # nothing to replay later
                how = "no probes saved before it"
            if self.config.verbose:
                print(f"FactorSearch: resuming at step {step} ({how}), learning rate {scheduler.learning_rate:.4g}.")
        self._fit_start = iterations - self._run_start  # the run's step at the table's first slot
        self._variables.start_run(self._fit_start)
        self._start_table(self._variables, self._fit_start)
        self._write_learning_rates(iterations - self._run_start)
        self._weights = None
        if self.rollback_on_divergence and self.model.built:
            build_optimizer_slots(self.model)
            self._weights = WeightSnapshot(self.model, scheduler.first_step, self._own_variables())

    def on_train_batch_begin(self, batch, logs=None):
        if self._epoch_first_step is None:
            self._epoch_first_step = self._epoch_start_step - batch
        step = self._epoch_first_step + batch
        self._finish_pending_update(step)
        if self._pending is None and step >= self.scheduler.next_boundary() and self.scheduler.is_update_step(step):
            self._running_state()
            self._probe.request()
            self._pending = step

    def _finish_pending_update(self, step):
        """Reads the probe requested at step `pending`, once the steps before `step` ran it."""
        if self._pending is None or step < self._pending + self._probe.steps_to_result:
            return
        now, (step, self._pending) = step, (self._pending, None)
        self._running_state()
        self._probe.release()
        losses, base = self._probe.losses.numpy(), float(self._probe.base_loss.numpy())
        self._record.append(step, base, losses)
        self._carry_out(self.scheduler.observe([], probe=(step, losses, base)))
        self._write_learning_rates(now)

    def _write_learning_rates(self, start=0):
        super()._write_learning_rates(start)
        # A "gradient" probe reads it before the next step's hook sets it.
        self.model.optimizer.learning_rate.assign(self.scheduler.learning_rate)

    def _snapshot(self, request):
        if self.rollback_on_divergence:
            self._replace_snapshot_if_finite(request.step)

    def _restore(self, request):
        if self.rollback_on_divergence and self._weights is not None:
            self._weights.restore(learning_rate=self.scheduler.learning_rate)
            if self.config.verbose:
                print(f"FactorSearch: weights and optimizer state rolled back to step {self._weights.step}.")

    def on_epoch_end(self, epoch, logs=None):
        first = self._epoch_start_step if self._epoch_first_step is None else self._epoch_first_step
        self._finish_pending_update(first + self.scheduler.steps_per_epoch)
        super().on_epoch_end(epoch, logs)

    def _epoch_learning_rate(self, epoch):
        return self.scheduler.learning_rate

    def on_train_end(self, logs=None):
        # A probe requested too late to run (at the run's last step) is dropped.
        self._pending = None
        step_hook.uninstall(self.model)
        if self._run_start is not None:
            run_state.fit_ended(self.model.optimizer, self.name, self._run_start)
        self._weights = None

    def _own_variables(self):
        """What a snapshot of the weights leaves out: the probes recorded (a roll-back
        keeps those since), and off TensorFlow the run's and the probe's variables,
        which are the optimizer's there."""
        refs = self._record.refs() | self._variables.refs()
        return refs | self._probe.refs() if hasattr(self._probe, "refs") else refs

    def _replace_snapshot_if_finite(self, step):
        """The probe measured the weights of a step or more before these (the steps
        since ran on), so weights that are no longer finite must not replace the last
        healthy copy. They are checked before any copy is made, and the old copy goes
        first: one copy of the weights and slots at a time, not two."""
        exclude = self._own_variables()
        if weight_snapshot.all_finite(weight_snapshot.saved_variables(self.model, exclude)):
            self._weights = None
            self._weights = WeightSnapshot(self.model, step, exclude)
        elif self.config.verbose:
            kept = f"the snapshot of step {self._weights.step} stays" if self._weights else "no snapshot is kept"
            print(f"FactorSearch: the weights at step {step} are not finite; {kept}.")


def probe_class():
    """`FactorProbe` for this backend: graph code on TensorFlow, state code on JAX."""
    if keras_compat.ON_TENSORFLOW:
        from keras_autowu.factor_search.probe import FactorProbe
    else:
        from keras_autowu.factor_search.jax_probe import FactorProbe
    return FactorProbe
