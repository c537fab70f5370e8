"""An in-memory copy of a model's weights and optimizer state, for AutoWU's roll-back."""

import numpy as np


def _optimizer_variables(optimizer):
    variables = optimizer.variables
    return variables() if callable(variables) else variables  # a method on legacy optimizers


class WeightSnapshot:
    """The model's weights and the optimizer's slots (momenta, moments) at one moment.

    The step counter, the learning rate and `exclude` (AutoWU's own variables) are left
    out: a roll-back takes the run back to healthy weights, not back in time.
    """

    def __init__(self, model, step, exclude=()):
        self.step = step
        optimizer = model.optimizer
        skip = set(exclude) | {_ref(optimizer.iterations), _ref(optimizer.learning_rate)}
        optimizer_variables = [v for v in _optimizer_variables(optimizer) if _ref(v) not in skip]
        self._variables = list(model.weights) + optimizer_variables
        self._values = [np.array(v.numpy()) for v in self._variables]

    def restore(self):
        for variable, value in zip(self._variables, self._values):
            variable.assign(value)


def _ref(variable):
    # Keras 3 variables wrap a tf.Variable; compare what they wrap.
    value = getattr(variable, "value", None)
    return (variable if value is None or callable(value) else value).ref()
