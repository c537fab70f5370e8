"""AutoLRS as a Keras callback: thin glue between `model.fit`, `AutoLRSScheduler` (the
decisions), `StageCheckpoint` (the in-memory checkpoint) and the train-step hook that
records each step's loss and sets each step's learning rate in the graph."""

import functools

import numpy as np

from keras_autowu.core import checks, keras_compat, model_loss, run_state, step_hook
from keras_autowu.core.callback import SchedulerCallback
from keras_autowu.core.keras_compat import build_optimizer_slots, check_settable_learning_rate, keras, learning_rate_value, steps_per_execution, tf
from keras_autowu.autolrs.config import AutoLRSConfig
from keras_autowu.autolrs.controller import AutoLRSScheduler
from keras_autowu.core.stage_checkpoint import StageCheckpoint


class AutoLRS(SchedulerCallback):
    """AutoLRS (Jin et al., ICLR 2021) for `model.fit`: the learning rate found stage by
    stage by Bayesian optimisation on the fly.

    Each stage explores `explored` learning rates in [min_lr, max_lr] for tau / 10 steps
    each, all from the same in-memory checkpoint, forecasts each one's loss tau steps
    ahead, and trains tau steps with the best. The exploration counts in the fit's
    steps: a 10-epoch fit is 10 epochs, of which about half explore. See
    `AutoLRSScheduler` for the arguments, which this callback takes too.

    Args:
      min_lr, max_lr: the search's bounds, on a log scale.
      validation_data: (x, y) arrays or a `tf.data.Dataset` of (x, y) batches: the late
        stages (once tau' reaches tau_max / 10) score the explored learning rates on
        its loss, evaluated 16 times per explored segment, as the reference does.
        None: they score the training loss, like the early stages.
      steps_per_epoch, total_epochs: taken from `fit` when None.
      **kwargs: `tau`, `tau_ratio`, `explored`, `tau_max`, `warmup_steps`,
        `forecast`, `seed`, `verbose`.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    autolrs = keras_autowu.AutoLRS(min_lr=1e-4, max_lr=1.0)
    model.fit(x, y, epochs=40, callbacks=[autolrs])
    keras_autowu.plot_autolrs(autolrs.scheduler, "autolrs.png")
    ```
    """

    name = "AutoLRS"
    backends = ("tensorflow", "jax")

    def __init__(self, min_lr=1e-5, max_lr=1.0, validation_data=None, steps_per_epoch=None, total_epochs=None, **kwargs):
        self._kwargs = dict(kwargs, min_lr=min_lr, max_lr=max_lr)
        self.config = AutoLRSConfig(**self._kwargs)  # checks the arguments now
        super().__init__(steps_per_epoch, total_epochs)
        self._validation_dataset = _validation_dataset(validation_data)
        self.checkpoint = self._hook = None

    def on_train_begin(self, logs=None):
        model = self.model
        check_settable_learning_rate("AutoLRS", model.optimizer)
        steps_per_epoch, total_epochs = self.run_length()
        self.steps_per_epoch = steps_per_epoch
        learning_rate = learning_rate_value(model.optimizer)
        self.scheduler = AutoLRSScheduler(
            steps_per_epoch * total_epochs, learning_rate, steps_per_execution(model),
            validation=self._validation_dataset is not None, **self._kwargs,
        )
        if self.config.verbose and self.config.tau is None:
            print(f"AutoLRS: tau={self.scheduler.tau} (first stage: {self.scheduler.plan.stage(0).end} steps of {self.scheduler.total_steps}).")
        _build_optimizer(model)
        self._variables = run_state.unsaved(model, self.scheduler.total_steps, "autolrs")
        # Off TensorFlow the run's variables are the optimizer's: the checkpoint leaves them.
        self.checkpoint = StageCheckpoint(model, exclude=self._variables.refs())
        self._hook = step_hook.train_step_hook(self._variables)
        self._hook.install(model)
        self._validation_loss = _validation_loss_function(model) if self._validation_dataset is not None else None
        self._fit_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._running_state()
        self._epoch_first_step = epoch * self.steps_per_epoch

    def _start_or_resume(self, step):
        """At the fit's first batch, the run's step `step` (after a backup within an
        epoch, tf_keras goes on at the batch after the backup's, not the epoch's first)."""
        self._fit_start = self._read_from = step
        self._variables.start_run(self._fit_start)
        self._start_table(self._variables, self._fit_start)
        if step == 0:
            self.scheduler.reset()
        else:  # BackupAndRestore or fit(initial_epoch=...): the in-memory checkpoint is gone
            rate = learning_rate_value(self.model.optimizer)
            self.scheduler.resume(self._fit_start, rate)
            if self.config.verbose:
                print(f"AutoLRS: resuming at step {self._fit_start}; a stage cut short starts again from here.")
        self._write_learning_rates(self._fit_start)

    def on_train_batch_begin(self, batch, logs=None):
        step = self._epoch_first_step + batch
        if self._fit_start is None:
            self._start_or_resume(step)
        scheduler = self.scheduler
        if step < scheduler.next_boundary() or step >= scheduler.total_steps:
            return
        self._running_state()
        losses = self._variables.read_losses(self._read_from - self._fit_start, step - self._fit_start)
        self._read_from = step
        validation = self._validation_loss(self._validation_dataset) if scheduler.validation_due(step) else None
        self._carry_out(scheduler.observe(losses, validation_loss=None if validation is None else float(validation)))
        self._write_learning_rates(step)

    def _snapshot(self, request):
        self.checkpoint.save()

    def _restore(self, request):
        self.checkpoint.restore(request.velocity_scale)

    def _epoch_learning_rate(self, epoch):
        step = min(self._epoch_first_step + self.steps_per_epoch, self.scheduler.total_steps) - 1
        return self._table[step - self._fit_start]

    def on_train_end(self, logs=None):
        scheduler = self.scheduler
        end = min(int(self._variables.count()) + self._fit_start, scheduler.total_steps)
        losses = self._variables.read_losses(self._read_from - self._fit_start, end - self._fit_start)
        if end == scheduler.total_steps and scheduler.next_boundary() == end:
            # The last stage's training ends with the run: a diverged one gives back its checkpoint.
            self._carry_out(scheduler.observe(losses))
        else:
            scheduler.losses.extend(losses.tolist())
            scheduler.steps_done = end
        step_hook.uninstall(self.model)
        self._fit_start = None


def _build_optimizer(model):
    """The optimizer's slots made now, so that the stage checkpoint holds them."""
    if not model.built:
        raise ValueError(
            "AutoLRS checkpoints the weights before the first step, so the model must be built "
            "before fit: give it an Input (keras.Input(shape)) or call model.build(input_shape)."
        )
    build_optimizer_slots(model)


def _validation_dataset(validation_data):
    if validation_data is None:
        return None
    if tf is not None and isinstance(validation_data, tf.data.Dataset):
        return validation_data
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        x, y = validation_data
        if not keras_compat.ON_TENSORFLOW:
            return np.asarray(x), np.asarray(y)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(256)
    checks.fail("AutoLRS", "validation_data", type(validation_data).__name__, "`validation_data` to be (x, y) or a tf.data.Dataset of (x, y) batches")


def _validation_loss_function(model):
    """The compiled loss's mean over a dataset, in inference mode."""
    loss_function = model_loss.per_row_loss_function(model, "AutoLRS scores validation_data with the compiled loss")
    if not keras_compat.ON_TENSORFLOW:
        return functools.partial(_mean_loss_over_arrays, model, loss_function)

    @tf.function
    def validation_loss(dataset):
        total, rows = tf.constant(0.0, tf.float64), tf.constant(0.0, tf.float64)
        for x, y in dataset:
            per_row = tf.cast(tf.reshape(loss_function(y, model(x, training=False)), [-1]), tf.float64)
            total += tf.reduce_sum(per_row)
            rows += tf.cast(tf.size(per_row), tf.float64)
        return total / rows

    return validation_loss


def _mean_loss_over_arrays(model, loss_function, data, batch_size=256):
    """The compiled loss's mean over (x, y) arrays, in inference mode, batch by batch
    (off TensorFlow: the model's variables must be up to date, `_running_state`)."""
    x, y = data
    total, rows = 0.0, 0
    for start in range(0, len(x), batch_size):
        stop = start + batch_size
        per_row = loss_function(y[start:stop], model(x[start:stop], training=False))
        per_row = np.asarray(keras.ops.convert_to_numpy(per_row), np.float64).reshape(-1)
        total, rows = total + per_row.sum(), rows + per_row.size
    return total / rows
