"""AutoWU as a Keras callback: thin glue between `model.fit` and `AutoWUScheduler`."""

import dataclasses

import tensorflow as tf

from keras_autowu import train_step_hook
from keras_autowu._keras import keras
from keras_autowu.config import AutoWUConfig, check_run_length
from keras_autowu.scheduler import AutoWUScheduler


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

    Args:
      steps_per_epoch: Int or None. Taken from `fit` when None; needed when `fit`
        cannot know it (a dataset of unknown length).
      total_epochs: Int or None. Taken from `fit`'s `epochs` when None.
      **kwargs: The algorithm's arguments (`min_lr`, `max_lr`, `max_warmup_fraction`,
        `warmup_type`, `immediate_cooldown`, `cooldown_fraction`, `cooldown_type`,
        `decay_phase_factor`, `decay_phase_stat`, `confidence`, `patience`,
        `num_predictions`, `test_interval`, `seed`, `verbose`).

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

    def __init__(self, steps_per_epoch=None, total_epochs=None, **kwargs):
        super().__init__()
        self.config = AutoWUConfig(**kwargs)
        check_run_length(steps_per_epoch, total_epochs, allow_none=True)
        self._steps_per_epoch = steps_per_epoch
        self._total_epochs = total_epochs
        self.scheduler = None
        self._hook = None
        self._epoch = self._initial_epoch = 0
        if self.config.test_interval is not None:
            # Only then does AutoWU need Python between epochs; without a batch hook,
            # Keras keeps dispatching batches asynchronously.
            self.on_train_batch_end = self._test_if_due

    def on_train_begin(self, logs=None):
        steps_per_epoch = self._steps_per_epoch or self.params.get("steps")
        if not steps_per_epoch:
            raise ValueError(
                "AutoWU needs the number of steps per epoch, which fit() cannot infer "
                f"from this data (steps={self.params.get('steps')!r}). "
                "Pass AutoWU(steps_per_epoch=...)."
            )
        total_epochs = self._total_epochs or self.params.get("epochs")
        self.scheduler = AutoWUScheduler(steps_per_epoch, total_epochs, **dataclasses.asdict(self.config))
        optimizer = self.model.optimizer
        _check_settable_learning_rate(optimizer)
        self._hook = train_step_hook.TrainStepHook(
            self.model, self.scheduler.plan, self.scheduler.state, step_offset=int(optimizer.iterations.numpy())
        )
        self._hook.install(self.model)
        self._initial_epoch = None  # fit's initial_epoch, seen at the first epoch

    def on_epoch_begin(self, epoch, logs=None):
        if self._initial_epoch is None:
            self._initial_epoch = epoch
        self._epoch = epoch

    def _test_if_due(self, batch, logs=None):
        # `batch` is the last step, within this epoch, of the chunk that just ran: a
        # Python count tells whether a test is due, without reading the device.
        epochs_done = self._epoch - self._initial_epoch
        done = epochs_done * self.scheduler.steps_per_epoch + batch + 1
        interval = self.scheduler.test_interval
        if done // interval > self.scheduler.steps_done // interval:
            self._sync()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()
        if self.scheduler.steps_done == 0:
            raise RuntimeError(
                "AutoWU saw no loss in a whole epoch: this model's train_step does not "
                "call self.compute_loss(...). Compute the loss with it, or use "
                "keras_autowu.AutoWUScheduler in a custom training loop."
            )
        if logs is not None:
            logs["learning_rate"] = float(tf.convert_to_tensor(self.model.optimizer.learning_rate))

    def on_train_end(self, logs=None):
        train_step_hook.uninstall(self.model)

    def _sync(self):
        """Hands the scheduler the losses of the steps since the last sync."""
        start, done = self.scheduler.steps_done, int(self._hook.steps_recorded.numpy())
        if done <= start:
            return
        before = self.scheduler.state
        self.scheduler.observe(self._hook.read_losses(start, done))
        if self.scheduler.state != before:
            self._hook.set_state(self.scheduler.state)


def _check_settable_learning_rate(optimizer):
    learning_rate = getattr(optimizer, "_learning_rate", None)
    schedules = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(learning_rate, schedules) or not hasattr(optimizer.learning_rate, "assign"):
        raise ValueError(
            "AutoWU sets the learning rate itself, but this optimizer was built with "
            f"learning_rate={learning_rate!r}. Build it with a float learning rate, e.g. "
            "keras.optimizers.SGD(momentum=0.9); AutoWU overwrites the value."
        )
