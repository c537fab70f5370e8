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
