"""What the schedulers' callbacks check of the other callbacks of their `fit`, and
where they put themselves.

Keras gives a callback no view of the others, but it calls `set_params` from the
`CallbackList` that holds them all (Keras 3 and tf_keras alike): the caller's frame.
"""

import math
import sys
import warnings

from keras_autowu._keras import keras
from keras_autowu._stacklevel import user_stacklevel

_LEARNING_RATE_CALLBACKS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


def calling_callback_list(depth=2):
    """The `CallbackList` whose method called our caller, or None."""
    frame = sys._getframe(depth)
    owner = frame.f_locals.get("self") if frame is not None else None
    return owner if isinstance(owner, keras.callbacks.CallbackList) else None


def arrange(autowu, callback_list, scheduler):
    """Raises for a callback that would fight AutoWU over the learning rate, warns for
    one that would end the fit in the warmup, and moves AutoWU first, so that loggers
    (CSVLogger, TensorBoard) find the learning rate in the epoch's logs in any order."""
    others = [c for c in callback_list.callbacks if c is not autowu]
    for callback in others:
        if isinstance(callback, _LEARNING_RATE_CALLBACKS):
            raise ValueError(
                f"AutoWU sets the learning rate at every step, so {type(callback).__name__} in "
                "the same fit would change nothing (it would still print that it did). Remove "
                "it: AutoWU decays the learning rate itself, and "
                "AutoWU(immediate_cooldown=False, decay_phase_stat='loss') is a "
                "reduce-on-plateau of its own."
            )
        if isinstance(callback, keras.callbacks.EarlyStopping):
            _warn_if_it_watches_the_warmup(callback, scheduler)
    refuse_other_schedulers("AutoWU", autowu, callback_list)
    move_first(autowu, callback_list)


def run_length(owner, params, steps_per_epoch=None, total_epochs=None):
    """(steps per epoch, epochs): the ones given, else `fit`'s; a ValueError when fit
    does not know them (a dataset of unknown length)."""
    steps_per_epoch = steps_per_epoch or params.get("steps")
    total_epochs = total_epochs or params.get("epochs")
    if not steps_per_epoch or not total_epochs:
        raise ValueError(
            f"{owner} needs the run's length, which fit does not know here (a dataset of "
            f"unknown length): pass {owner}(steps_per_epoch=..., total_epochs=...). "
            f"Received steps_per_epoch={steps_per_epoch!r}, total_epochs={total_epochs!r}"
        )
    return steps_per_epoch, total_epochs


def move_first(callback, callback_list):
    """First in the list, so that loggers (CSVLogger, TensorBoard) find the learning
    rate it writes into the epoch's logs, in any order the user gave."""
    callback_list.callbacks.remove(callback)
    callback_list.callbacks.insert(0, callback)


def claim_learning_rate(name, callback):
    """Called from a scheduler's `set_params`: refuses another callback that sets the
    learning rate, and moves `callback` first."""
    callback_list = calling_callback_list(depth=3)
    if callback_list is not None:
        refuse_other_schedulers(name, callback, callback_list)
        move_first(callback, callback_list)


def refuse_other_schedulers(name, callback, callback_list):
    """A ValueError for another callback that sets the learning rate in the same fit:
    Keras's, or one of this package's schedulers (they say so with `sets_learning_rate`)."""
    for other in callback_list.callbacks:
        if other is not callback and (getattr(other, "sets_learning_rate", False) or isinstance(other, _LEARNING_RATE_CALLBACKS)):
            raise ValueError(
                f"{name} sets the learning rate, and so does {type(other).__name__} in the same "
                "fit: the two would overwrite each other (and it would still print what it "
                "did). Pass one of them."
            )


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
