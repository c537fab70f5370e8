"""A scheduler's run state as variables of the optimizer, so that checkpoints carry it.

Whatever saves the optimizer saves these with it, at the same moment as the weights:
keras.callbacks.BackupAndRestore, ModelCheckpoint, `model.save_weights` and
`tf.train.Checkpoint`. AutoWU keeps its losses here (`run_variables`), factor search
its probes (`probe_record`).

Keras 3 saves an optimizer's variables by position and skips the whole optimizer, with
only a warning, when the count differs from the saved one. So the variables must
exist, in the same order, before anything restores into them: `add` builds the
optimizer's slots first, and the callbacks call it from `set_params`, before any
callback's `on_train_begin`. tf_keras checkpoints go by name and restore variables
created later (deferred restoration), so there they hang off the optimizer as one
attribute.
"""

from typing import NamedTuple, Tuple

import tensorflow as tf

from keras_autowu._keras import IS_KERAS_3, build_optimizer_slots, keras


class VariableSpec(NamedTuple):
    """One saved variable: its name, dtype, shape and the value it starts at."""

    name: str
    dtype: str
    shape: Tuple[int, ...]
    initial: float


def add(model, attribute, specs):
    """Adds one variable per spec to `model.optimizer`; returns them in order.

    On tf_keras they replace those that `attribute` held before (a run of another
    shape); on Keras 3 they join the optimizer's list, which only grows.
    """
    optimizer = model.optimizer
    with model.distribute_strategy.scope():
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
        setattr(optimizer, attribute, _Tracked(attribute, specs))
        return tracked(optimizer, attribute)


def tracked(optimizer, attribute):
    """tf_keras: the variables that `add` hung off the optimizer as `attribute`, or None."""
    module = getattr(optimizer, attribute, None)
    return None if module is None else list(module.variables_in_order)


class _Tracked(tf.Module):
    """One checkpoint dependency of a tf_keras optimizer holding the variables."""

    def __init__(self, attribute, specs):
        super().__init__(name=attribute)
        # The checkpoint's keys name this list: keep its name.
        self.variables_in_order = [
            tf.Variable(
                tf.fill(spec.shape, tf.constant(spec.initial, spec.dtype)),
                trainable=False,
                name=spec.name,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            for spec in specs
        ]
