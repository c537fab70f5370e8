"""The Keras that `tf.keras` names: Keras 3, or Keras 2 (tf_keras) with
TF_USE_LEGACY_KERAS=1 and on TensorFlow 2.15. AutoWU's callback must subclass the
Callback of the Keras that trains the model."""

import tensorflow as tf

keras = tf.keras
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
    """A hashable identity of a variable. The optimizer's lists may hold a Keras 3
    variable or the tf.Variable it wraps: compare what they wrap."""
    return tf_variable(variable).ref()


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
    return float(tf.convert_to_tensor(momentum))


def build_optimizer_slots(model):
    """Makes the optimizer's slots now if the first step has not yet: a copy taken
    before them would put back the weights and leave the slots as they became."""
    optimizer = model.optimizer
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", getattr(optimizer, "_built", False)):
        optimizer.build(model.trainable_variables)
    elif hasattr(optimizer, "_create_all_weights"):  # legacy optimizers (tensorflow-addons)
        with model.distribute_strategy.scope():
            optimizer._create_all_weights(model.trainable_variables)
