"""What the schedulers' Keras callbacks share: the thin glue around a controller.

A controller (`keras_autowu.core.requests.Controller`) decides; its callback hands it
what training observed at the controller's `next_boundary()` and carries out the
requests it returns. This base class holds what is the same for the three:

- it claims the learning rate: another callback that sets it in the same fit (Keras's
  LearningRateScheduler or ReduceLROnPlateau, or another of this package's) is a
  ValueError, and the scheduler moves first in the fit's callbacks, so that loggers
  (CSVLogger, TensorBoard) find the learning rate it writes into the epoch's logs;
- the run's length, from `fit` unless given;
- a Keras 3 BackupAndRestore keeps the backup before its last, and what a kill left
  cut of its backup is repaired (`backup`), so that a kill during a backup's write
  does not lose the run;
- the requests: each kind goes to the subclass's method of its name;
- the learning rates: the table that the step hook (`step_hook`) reads each step's
  learning rate from, written from the controller's `learning_rates`;
- `logs["learning_rate"]` at each epoch's end.
"""

import warnings

import numpy as np

from keras_autowu.core import backup, checks, keras_compat, step_hook
from keras_autowu.core.keras_compat import keras
from keras_autowu.core.stacklevel import user_stacklevel

_LEARNING_RATE_CALLBACKS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


class SchedulerCallback(keras.callbacks.Callback):
    """The base of `AutoWU`, `FactorSearch` and `AutoLRS`; see the module docstring.

    Subclasses name themselves (`name`), build their controller in `on_train_begin`
    as `self.scheduler`, and implement `_attach(params)` (variables the optimizer must
    hold before any callback's `on_train_begin`, where BackupAndRestore restores),
    `_epoch_learning_rate(epoch)` and a method per request kind they receive.
    """

    name = "scheduler"
    sets_learning_rate = True  # what other schedulers of the package look for
    backends = ("tensorflow",)  # the Keras backends it has a step hook for (step_hook)

    def __init__(self, steps_per_epoch=None, total_epochs=None):
        step_hook.check_backend(self.name, self.backends)
        super().__init__()
        checks.check_run_length(self.name, steps_per_epoch, total_epochs, allow_none=True)
        self._steps_per_epoch, self._total_epochs = steps_per_epoch, total_epochs
        self.scheduler = None
        # Each callback looks at some batches' starts; no batch-end hook, so that Keras 3
        # keeps dispatching batches asynchronously.
        keras_compat.keep_batch_logs_as_tensors(self)

    def set_params(self, params):
        super().set_params(params)
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            self._attach(params)
        callback_list = keras_compat.calling_callback_list()
        if callback_list is not None:
            self._check_other_callbacks(callback_list)
            self._claim_learning_rate(callback_list)
            backup.keep_the_backup_before(callback_list.callbacks, self._warn)
            backup.repair_a_cut_backup(callback_list.callbacks, self._warn)

    def _attach(self, params):
        """Adds what the optimizer must hold before BackupAndRestore restores."""

    def _check_other_callbacks(self, callback_list):
        """A subclass's own checks of the fit's other callbacks."""

    def _claim_learning_rate(self, callback_list):
        for other in callback_list.callbacks:
            if other is not self and (getattr(other, "sets_learning_rate", False) or isinstance(other, _LEARNING_RATE_CALLBACKS)):
                raise ValueError(
                    f"{self.name} sets the learning rate, and so does {type(other).__name__} in the same "
                    "fit: the two would overwrite each other (and it would still print what it "
                    "did). Pass one of them."
                )
        callback_list.callbacks.remove(self)
        callback_list.callbacks.insert(0, self)

    def run_length(self, params=None):
        """(steps per epoch, epochs): the ones given, else `fit`'s; a ValueError when fit
        does not know them (a dataset of unknown length)."""
        params = self.params if params is None else params
        steps_per_epoch = self._steps_per_epoch or params.get("steps")
        total_epochs = self._total_epochs or params.get("epochs")
        if not steps_per_epoch or not total_epochs:
            raise ValueError(
                f"{self.name} needs the run's length, which fit does not know here (a dataset of "
                f"unknown length): pass {self.name}(steps_per_epoch=..., total_epochs=...). "
                f"Received steps_per_epoch={steps_per_epoch!r}, total_epochs={total_epochs!r}"
            )
        return steps_per_epoch, total_epochs

    def _carry_out(self, requests):
        """Each request to the method of its kind: `_snapshot`, `_restore`, `_discard`."""
        for request in requests:
            getattr(self, f"_{request.kind}")(request)

    def _start_table(self, variables, first_step=0):
        """The run variables whose table the step hook reads, with the run's step of
        its slot 0 (the fit's first, where the variables do not survive a restart)."""
        self._variables = variables
        self._table_first_step = first_step
        self._table = np.zeros(variables.total_steps + 1, np.float32)

    def _write_learning_rates(self, start=0):
        """The controller's learning rate of every step from run step `start` to the
        run's end into the table; the last also for the steps past the end."""
        rates = self.scheduler.learning_rates(start, self.scheduler.total_steps + 1)
        at = start - self._table_first_step
        self._table[at : at + rates.size] = rates
        self._table[at + rates.size :] = rates[-1]
        self._variables.set_learning_rates(self._table)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self._epoch_learning_rate(epoch))

    def _epoch_learning_rate(self, epoch):
        """The learning rate of the epoch's last step."""
        raise NotImplementedError

    def _running_state(self):
        """The model, its variables up to date: on JAX the train function holds the
        running state, which reading `self.model` puts back into the variables
        (keras/src/callbacks/callback.py); a write through them reaches the next step."""
        return self.model

    def _warn(self, text):
        warnings.warn(f"{self.name}: {text}", UserWarning, stacklevel=user_stacklevel())
