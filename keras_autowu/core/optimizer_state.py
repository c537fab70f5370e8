"""A scheduler's run state as variables of the optimizer, so that checkpoints carry it.

Whatever saves the optimizer saves these with it, at the same moment as the weights:
keras.callbacks.BackupAndRestore, ModelCheckpoint, `model.save_weights` and
`tf.train.Checkpoint`. AutoWU and AutoLRS keep their losses here (`run_state`),
factor search its probes (`keras_autowu.factor_search.probe_record`). How the
variables join the optimizer differs between the Kerases:
`keras_compat.add_optimizer_variables`. The callbacks add them from `set_params`,
before any callback's `on_train_begin`, where BackupAndRestore restores.
"""

import weakref
from typing import NamedTuple, Tuple

from keras_autowu.core import keras_compat


class VariableSpec(NamedTuple):
    """One saved variable: its name, dtype, shape and the value it starts at."""

    name: str
    dtype: str
    shape: Tuple[int, ...]
    initial: float


class SavedVariables:
    """The sets of variables that one kind of run (`attribute`) added to optimizers.

    Keras 3 lists an optimizer's variables, and they only grow: every set added stays,
    and is found again by its shape. tf_keras tracks the one set the attribute holds.
    """

    def __init__(self, attribute):
        self.attribute = attribute
        self._added = weakref.WeakKeyDictionary()  # optimizer -> the sets added, oldest first

    def add(self, model, specs):
        """The variables of `specs`, added to `model.optimizer`, in order."""
        optimizer = model.optimizer
        variables = keras_compat.add_optimizer_variables(model, self.attribute, specs)
        self._added.setdefault(optimizer, []).append(variables)
        return variables

    def candidates(self, optimizer):
        """The sets of variables the optimizer holds now, oldest first."""
        tracked = keras_compat.tracked_optimizer_variables(optimizer, self.attribute)
        return [tracked] if tracked is not None else self._added.get(optimizer, [])
