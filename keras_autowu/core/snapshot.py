"""An in-memory copy of a model's weights and optimizer state, for AutoWU's roll-back."""

import numpy as np

from keras_autowu.core.keras_compat import ON_TENSORFLOW, optimizer_variables, sgd_velocity_refs, tf, tf_variable, variable_ref


class WeightSnapshot:
    """The model's weights and the optimizer's slots (momenta, moments) at one moment.

    The step counter, the learning rate and `exclude` (AutoWU's own variables) are left
    out: a roll-back takes the run back to healthy weights, not back in time.

    Keras's SGD keeps the learning rate inside its velocity (v <- momentum * v - lr * g;
    PyTorch's buffer leaves it out), so a velocity restored as it was keeps applying the
    learning rate of the snapshot's time, which a roll-back usually lowers: `restore`
    scales it by the new learning rate over that one.

    Example, in a custom training loop driven by `AutoWUScheduler.observe`:

    ```python
    for request in scheduler.observe([loss]):
        if request.kind == "snapshot":
            snapshots[request.step] = keras_autowu.WeightSnapshot(model, request.step)
        elif request.kind == "discard":
            del snapshots[request.step]
        else:
            snapshots[request.step].restore(learning_rate=scheduler.learning_rate)
    ```
    """

    def __init__(self, model, step, exclude=()):
        self.step = step
        optimizer = model.optimizer
        self._variables = saved_variables(model, exclude)
        self._values = [np.array(v.numpy()) for v in self._variables]
        self._saved_learning_rate = float(np.asarray(_value(optimizer.learning_rate)))
        self._velocity_refs = sgd_velocity_refs(optimizer)

    def restore(self, learning_rate=None):
        """Puts the values back; `learning_rate`: the one the next steps will use."""
        scale = 1.0
        if learning_rate is not None and self._saved_learning_rate > 0:
            scale = min(1.0, float(learning_rate) / self._saved_learning_rate)
        for variable, value in zip(self._variables, self._values):
            variable.assign(value * scale if variable_ref(variable) in self._velocity_refs else value)


def saved_variables(model, exclude=(), step_counter=False):
    """What a copy of the training state holds, `WeightSnapshot` and `StageCheckpoint`
    alike: the model's weights and the optimizer's slots, without its learning rate
    (the scheduler's to set), `exclude` (a scheduler's own variables) and, unless
    `step_counter`, its step counter."""
    optimizer = model.optimizer
    skip = set(exclude) | {variable_ref(optimizer.learning_rate)}
    if not step_counter:
        skip.add(variable_ref(optimizer.iterations))
    return list(model.weights) + [v for v in optimizer_variables(optimizer) if variable_ref(v) not in skip]


def all_finite(variables):
    """Whether every floating-point value of `variables` is finite, checked where they
    live (on TensorFlow no copy to the host), so that a snapshot need not be taken to find out."""
    if not ON_TENSORFLOW:
        return all(np.isfinite(v.numpy()).all() for v in variables if np.issubdtype(np.dtype(v.dtype), np.floating))
    floats = [tf_variable(v) for v in variables if tf.as_dtype(v.dtype).is_floating]
    return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])) if floats else True


def _value(variable):
    return variable.numpy() if hasattr(variable, "numpy") else variable
