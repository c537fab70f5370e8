"""Everything that knows which Keras trains the model, or touches what Keras keeps private.

On Keras's TensorFlow backend the Keras is the one `tf.keras` names: Keras 3, or
Keras 2 (tf_keras) with TF_USE_LEGACY_KERAS=1 and on TensorFlow 2.15; the callbacks
must subclass its Callback. On the JAX and PyTorch backends it is Keras 3, and
TensorFlow is not imported. No other module of the package branches on the Keras
version or backend or reaches into a private attribute: each access here says why.
"""

import contextlib
import sys

import keras as _keras  # Keras 3, or on TensorFlow 2.15 the Keras 2 that tf.keras names

BACKEND = _keras.backend.backend()
ON_TENSORFLOW = BACKEND == "tensorflow"
if ON_TENSORFLOW:
    import tensorflow as tf

    keras = tf.keras
else:
    tf = None
    keras = _keras
IS_KERAS_3 = hasattr(keras, "version") and keras.version().startswith("3.")


def steps_per_execution(model):
    """How many steps each call of the compiled train function runs."""
    value = getattr(model, "steps_per_execution", None) if IS_KERAS_3 else getattr(model, "_steps_per_execution", None)
    if value is None:
        return 1
    return int(value.numpy()) if hasattr(value, "numpy") else int(value)


def check_settable_learning_rate(owner, optimizer):
    """A ValueError unless the optimizer's learning rate is a variable the scheduler
    `owner` can assign (not a LearningRateSchedule)."""
    learning_rate = getattr(optimizer, "_learning_rate", None)
    schedules = keras.optimizers.schedules.LearningRateSchedule
    if isinstance(learning_rate, schedules) or not hasattr(optimizer.learning_rate, "assign"):
        raise ValueError(
            f"{owner} sets the learning rate itself, but this optimizer was built with "
            f"learning_rate={learning_rate!r}, not a float. Build it with a float learning rate, e.g. "
            f"keras.optimizers.SGD(0.01, momentum=0.9); {owner} overwrites the value."
        )


def optimizer_variables(optimizer):
    """The optimizer's variables: a list on Keras 3, a method on legacy optimizers."""
    variables = optimizer.variables
    return variables() if callable(variables) else variables


def tf_variable(variable):
    """The tf.Variable behind a variable: Keras 3 variables wrap one (`.value`), tf_keras
    and tf.distribute ones are one (their `.value` is a method)."""
    value = getattr(variable, "value", None)
    return variable if value is None or callable(value) else value


def variable_ref(variable):
    """A hashable identity of a variable. On TensorFlow the optimizer's lists may hold a
    Keras 3 variable or the tf.Variable it wraps: compare what they wrap. Elsewhere a
    variable is one object."""
    return tf_variable(variable).ref() if ON_TENSORFLOW else id(variable)


def distribution_scope(model):
    """The model's tf.distribute strategy's scope, where variables are made; on the other
    backends (no strategies) a context that does nothing."""
    strategy = getattr(model, "distribute_strategy", None) if ON_TENSORFLOW else None
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def sgd_velocity_refs(optimizer):
    """The `variable_ref`s of Keras SGD's velocities, empty for any other optimizer.

    Keras's SGD keeps the learning rate inside its velocity (v <- momentum * v - lr * g;
    PyTorch's buffer leaves it out): a restore at another learning rate scales them.
    """
    velocities = getattr(optimizer, "momentums", None) if type(optimizer).__name__ == "SGD" else None
    return {variable_ref(v) for v in velocities or () if v is not None}


def velocity_momentum(optimizer):
    """The momentum of the optimizer's velocity if the learning rate goes into it (Keras's
    SGD and RMSprop: v <- momentum * v - lr * g), else 0 (Adam, LAMB and the like
    multiply an averaged update by the learning rate)."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    if type(optimizer).__name__ not in ("SGD", "RMSprop"):
        return 0.0
    momentum = getattr(optimizer, "momentum", 0.0)  # a float, or a legacy optimizer's hyperparameter
    return float(tf.convert_to_tensor(momentum)) if ON_TENSORFLOW else float(momentum)


def learning_rate_value(optimizer):
    """The optimizer's learning rate now, as a float."""
    learning_rate = optimizer.learning_rate
    if ON_TENSORFLOW:
        return float(tf.convert_to_tensor(learning_rate).numpy())
    return float(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate)


def build_optimizer_slots(model):
    """Makes the optimizer's slots now if the first step has not yet: a copy taken
    before them would put back the weights and leave the slots as they became."""
    optimizer = model.optimizer
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", getattr(optimizer, "_built", False)):
        optimizer.build(model.trainable_variables)
    elif hasattr(optimizer, "_create_all_weights"):  # legacy optimizers (tensorflow-addons)
        with model.distribute_strategy.scope():
            optimizer._create_all_weights(model.trainable_variables)


# ---------------------------------------------------------------------------------
# Private attributes and methods of Keras that the package touches, each for a reason.


def keep_batch_logs_as_tensors(callback):
    """tf_keras's CallbackList converts every batch's logs to NumPy, a device sync per
    step, unless each callback says it takes tensors (`_supports_tf_logs`, private:
    tf_keras/src/callbacks.py, `CallbackList._process_logs`). Keras 3 ignores it."""
    callback._supports_tf_logs = True


def calling_callback_list(depth=2):
    """The `CallbackList` whose method called our caller (`depth` frames up), or None.

    Keras gives a callback no view of the others, but it calls `set_params` from the
    `CallbackList` that holds them all, in Keras 3 and tf_keras alike: the caller's
    frame's `self` (a frame's locals are CPython's, not Keras's API).
    """
    frame = sys._getframe(depth)
    owner = frame.f_locals.get("self") if frame is not None else None
    return owner if isinstance(owner, keras.callbacks.CallbackList) else None


def backup_files(callback):
    """Keras 3's BackupAndRestore: its files as {"weights", "epoch"} (the epoch in JSON),
    each with double_checkpoint's copy of the one before ("weights before", "epoch
    before"); private attributes (`_weights_path`, `_training_metadata_path` and their
    `_prev_`: keras/src/callbacks/backup_and_restore.py). None where it keeps none
    (tf_keras keeps the epoch in its checkpoint)."""
    names = {"weights": "_weights_path", "weights before": "_prev_weights_path",
             "epoch": "_training_metadata_path", "epoch before": "_prev_training_metadata_path"}
    paths = {key: getattr(callback, name, None) for key, name in names.items()}
    return paths if all(isinstance(path, str) for path in paths.values()) else None


_PATCHED_ATTRIBUTE = "_keras_autowu_patched_methods"


def patch_model_methods(model, **wrappers):
    """Replaces `model`'s methods named by `wrappers` (`train_step`, `compute_loss`),
    on the instance, by `wrapper(original)`; `unpatch_model_methods` undoes it.

    `compute_loss` is the override point that every built-in train_step calls, once
    per step, in Keras 3 and tf_keras alike; `train_step` is public API to override,
    but on a subclass, not an instance. An instance attribute shadows the class's
    method, so the model's own comes back when it is deleted.
    """
    unpatch_model_methods(model, retrace=False)
    for name, wrap in wrappers.items():
        setattr(model, name, wrap(getattr(model, name)))
    setattr(model, _PATCHED_ATTRIBUTE, tuple(wrappers))


def unpatch_model_methods(model, retrace=True):
    """Removes `patch_model_methods`'s wrappers, if any; by default Keras retraces."""
    names = getattr(model, _PATCHED_ATTRIBUTE, None)
    if names is None:
        return
    for name in names:
        delattr(model, name)
    delattr(model, _PATCHED_ATTRIBUTE)
    if retrace:
        retrace_train_function(model)


def retrace_train_function(model):
    """Makes Keras trace the train function anew (with the methods as they are now) and
    returns it: `make_train_function(force=True)` is public in both Kerases, but returns
    the function only in tf_keras."""
    return model.make_train_function(force=True) or model.train_function


def set_train_function(model, function):
    """The train function `fit` calls next: Keras looks `model.train_function` up at
    every call (fit, train_on_batch) in both Kerases."""
    model.train_function = function


def add_optimizer_variables(model, attribute, specs):
    """One variable per spec (name, dtype, shape, initial), added to `model.optimizer`
    so that its checkpoints carry them; returns them in order.

    Keras 3 saves an optimizer's variables by position and skips the whole optimizer,
    with only a warning, when their count differs from the saved one
    (`load_own_variables` in keras/src/optimizers/base_optimizer.py): they must exist,
    in the same order, before anything restores into them, so the optimizer's slots
    are built first. tf_keras checkpoints go by name and restore variables created
    later (deferred restoration), so there they hang off the optimizer as one
    attribute, which replaces those of a run of another shape.
    """
    optimizer = model.optimizer
    with distribution_scope(model):
        if IS_KERAS_3:
            if model.built:
                # The same order of variables whether or not fit() built the optimizer first.
                build_optimizer_slots(model)
            return [
                optimizer.add_variable(
                    spec.shape,
                    initializer=keras.initializers.Constant(spec.initial),
                    dtype=spec.dtype,
                    # Every replica writes the same (global) values.
                    aggregation="only_first_replica",
                    name=spec.name,
                )
                for spec in specs
            ]
        # Attribute tracking makes it a checkpoint dependency, restored on creation.
        setattr(optimizer, attribute, _tracked_variables(attribute, specs))
        return tracked_optimizer_variables(optimizer, attribute)


def tracked_optimizer_variables(optimizer, attribute):
    """tf_keras: the variables that `add_optimizer_variables` hung off the optimizer as
    `attribute`, or None (and always None on Keras 3, whose optimizer lists them)."""
    module = None if IS_KERAS_3 else getattr(optimizer, attribute, None)
    return None if module is None else list(module.variables_in_order)


def _tracked_variables(attribute, specs):
    """One checkpoint dependency of a tf_keras optimizer holding the variables."""
    module = tf.Module(name=attribute)
    # The checkpoint's keys name this list: keep its name.
    module.variables_in_order = [
        tf.Variable(
            tf.fill(spec.shape, tf.constant(spec.initial, spec.dtype)),
            trainable=False,
            name=spec.name,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        for spec in specs
    ]
    return module


def wrap_checkpoint_loading(optimizer, wrap):
    """Keras 3: replaces the optimizer's `load_own_variables(store)` (public, called
    when a checkpoint loads) on the instance by `wrap(original)`, once."""
    if not IS_KERAS_3 or "load_own_variables" in vars(optimizer):
        return
    optimizer.load_own_variables = wrap(optimizer.load_own_variables)


def loss_tracker(model):
    """The Mean that Keras 3 adds each step's loss to, weighted by its batch size, and
    reports as `loss`: the metric of that name in `model.metrics`, which lists it first
    once the model is compiled (keras/src/trainers/trainer.py)."""
    tracker = next((m for m in model.metrics if m.name == "loss"), None)
    if tracker is None or not hasattr(tracker, "total"):
        raise RuntimeError("keras-autowu found no loss tracker in this model's metrics: compile the model with a loss.")
    return tracker
