"""AutoLRS's stage checkpoint: the weights, the optimizer's slots and its step counter,
copied to variables on the same devices, and back.

Every explored learning rate of a stage starts from the stage's start, and so does
the training with the chosen one: a stage restores k + 1 times. The reference saves
`model.state_dict()` and `optimizer.state_dict()` to a file; here one compiled
function assigns every variable from its copy on the same device, so a restore moves
no data through the host, and under tf.distribute each replica restores its own copy.

The restore is bit-exact, with one exception the caller asks for: Keras's SGD keeps the
learning rate inside its velocity (v <- momentum * v - lr * g), where PyTorch's buffer,
which the reference restores, leaves it out. Restored as it was, the velocity would go
on moving the weights at the stage's previous learning rate for a few dozen steps of an
explored one; `restore(velocity_scale=new / old)` gives the PyTorch behaviour.
"""

import numpy as np

from keras_autowu.core import keras_compat
from keras_autowu.core.keras_compat import keras, sgd_velocity_refs, tf, tf_variable, variable_ref
from keras_autowu.core.snapshot import saved_variables


class StageCheckpoint:
    """Device-side copies of `model`'s weights and optimizer state (not the learning rate
    and not `exclude`); `save()` and `restore()` them."""

    def __init__(self, model, exclude=()):
        # AutoLRS's stages restore the step counter too, as the reference's state_dict does.
        variables = saved_variables(model, exclude, step_counter=True)
        velocity_refs = sgd_velocity_refs(model.optimizer)
        self._is_velocity = [variable_ref(v) in velocity_refs for v in variables]
        self.saved = False
        if not keras_compat.ON_TENSORFLOW:
            # JAX: arrays on the device, copied; the train step consumes (donates) the
            # arrays it is given, so a restore hands the variables copies of the copies.
            self._variables, self._copies = variables, None
            return
        self._variables = [tf_variable(v) for v in variables]
        with model.distribute_strategy.scope():
            self._copies = [
                tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="autolrs_checkpoint")
                for v in self._variables
            ]
        self._save = tf.function(self._assign_all)
        self._restore = tf.function(self._assign_all)

    @staticmethod
    def _assign_all(targets, sources, scales, scale):
        for target, source, scaled in zip(targets, sources, scales):
            value = source.read_value()
            if scaled:
                value = value * tf.cast(scale, value.dtype)
            target.assign(value)

    def save(self):
        if keras_compat.ON_TENSORFLOW:
            self._save(self._copies, self._variables, [False] * len(self._copies), tf.constant(1.0))
        else:
            self._copies = [keras.ops.copy(v.value) for v in self._variables]
        self.saved = True

    def restore(self, velocity_scale=1.0):
        """Puts the saved values back; SGD's velocity times `velocity_scale`."""
        if not self.saved:
            raise RuntimeError("AutoLRS: restore() before any save()")
        if keras_compat.ON_TENSORFLOW:
            self._restore(self._variables, self._copies, self._is_velocity, tf.constant(float(velocity_scale)))
            return
        for variable, copy, is_velocity in zip(self._variables, self._copies, self._is_velocity):
            variable.assign(keras.ops.copy(copy) * np.asarray(velocity_scale, copy.dtype) if is_velocity else keras.ops.copy(copy))

    @property
    def num_bytes(self):
        if keras_compat.ON_TENSORFLOW:
            return sum(v.shape.num_elements() * v.dtype.size for v in self._copies)
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in self._variables)
