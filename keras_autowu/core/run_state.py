"""AutoWU's and AutoLRS's run state as variables of the optimizer, so that checkpoints
carry it (see `optimizer_state`).

Every AutoWU decision is a function of the recorded losses, so the losses and the
step they start at are all a restart needs: 4 bytes per step of the run. The
learning rate of every step is kept beside them, as a table that the callback
rewrites when a test changes the schedule and the train step looks its learning rate
up in; it follows from the losses, so on TensorFlow it is no part of the checkpoint.
Off TensorFlow (JAX) the train step sees only the optimizer's variables, so the table
is one of them, and checkpoints carry it too.
"""

import functools
import weakref

import numpy as np

from keras_autowu.core import keras_compat, optimizer_state
from keras_autowu.core.keras_compat import ON_TENSORFLOW, tf, tf_variable, variable_ref

# No run yet: `step_offset` holds this until a run starts.
NO_RUN = -1
# The checkpoints of 0.1.0 and 0.2.0 name them so.
_SAVED = optimizer_state.SavedVariables("autowu_run")


class RunVariables:
    """The losses seen so far, in order, the optimizer step the run started at (both
    saved with the optimizer), and the learning rate of each step (not saved).

    Both per-step buffers have `total_steps + 1` slots: the train step writes the
    losses of steps past the run's end into the last one and reads the learning rate
    of every such step from the last one, which spares it a branch.
    """

    def __init__(self, losses, steps_recorded, step_offset, learning_rates):
        self.losses = losses
        self.steps_recorded = steps_recorded
        self.step_offset = step_offset
        self.learning_rates = learning_rates

    @property
    def total_steps(self):
        return int(self.losses.shape[0]) - 1

    def count(self):
        """How many losses of the run have been recorded."""
        return min(int(self.steps_recorded.numpy()), self.total_steps)

    def read_losses(self, start, stop):
        """Losses start..stop-1 (on TensorFlow only those are copied from the device)."""
        if ON_TENSORFLOW:
            return tf.gather(tf_variable(self.losses), tf.range(start, stop)).numpy()
        return np.asarray(self.losses.numpy())[start:stop]

    def recorded_losses(self):
        """The losses recorded so far, and the step offset (NO_RUN before any run)."""
        return self.read_losses(0, self.count()), int(self.step_offset.numpy())

    def start_run(self, step_offset):
        self.losses.assign(np.full(self.total_steps + 1, np.nan, np.float32))
        self.steps_recorded.assign(0)
        self.step_offset.assign(step_offset)

    def set_learning_rates(self, learning_rates):
        """Writes the table: the learning rate of steps 0..total_steps."""
        self.learning_rates.assign(np.asarray(learning_rates, np.float32))

    def tf_variables(self):
        """The underlying tf.Variables, for graph code (scatter updates) on both Kerases."""
        return RunVariables(*(tf_variable(v) for v in self.all_variables()))

    def all_variables(self):
        return (self.losses, self.steps_recorded, self.step_offset, self.learning_rates)

    def refs(self):
        return {variable_ref(v) for v in self.all_variables()}


def _specs(total_steps):
    """The saved variables, in their checkpoints' order (off TensorFlow with the table)."""
    specs = (
        optimizer_state.VariableSpec("autowu_losses", "float32", (total_steps + 1,), np.nan),
        optimizer_state.VariableSpec("autowu_steps_recorded", "int64", (), 0),
        optimizer_state.VariableSpec("autowu_step_offset", "int64", (), NO_RUN),
    )
    if ON_TENSORFLOW:
        return specs
    return specs + (optimizer_state.VariableSpec("autowu_learning_rates", "float32", (total_steps + 1,), 0.0),)

# Optimizer -> {total_steps: its learning-rate table}; outside the optimizer's tracked
# state, so that no checkpoint holds it.
_tables = weakref.WeakKeyDictionary()


def attach(model, total_steps):
    """The optimizer's run variables for a run of `total_steps` steps, made if need be.

    A run of another length than the optimizer's last run gets new variables (on
    Keras 3 the old stay: its variable lists only grow).
    """
    optimizer = model.optimizer
    existing = find(optimizer, total_steps)
    if existing is not None:
        return existing
    if not ON_TENSORFLOW:
        return RunVariables(*_SAVED.add(model, _specs(total_steps)))
    with keras_compat.distribution_scope(model):
        _tables.setdefault(optimizer, {})[total_steps] = _learning_rate_table(total_steps)
        _SAVED.add(model, _specs(total_steps))
    keras_compat.wrap_checkpoint_loading(optimizer, functools.partial(_loading_version_0_1_checkpoints, optimizer))
    return find(optimizer, total_steps)


def _learning_rate_table(total_steps):
    return tf.Variable(
        tf.zeros([total_steps + 1], tf.float32),
        trainable=False,
        name="autowu_learning_rates",
        # Every replica writes the same values (the callback, in cross-replica context).
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )


def find(optimizer, total_steps):
    """The optimizer's run variables for a run of `total_steps` steps, or None."""
    if not ON_TENSORFLOW:
        matching = [RunVariables(*saved) for saved in _SAVED.candidates(optimizer) if int(saved[0].shape[0]) == total_steps + 1]
        return matching[-1] if matching else None
    table = _tables.get(optimizer, {}).get(total_steps)
    if table is None:
        return None
    matching = [RunVariables(*saved, table) for saved in _SAVED.candidates(optimizer) if int(saved[0].shape[0]) == total_steps + 1]
    return matching[-1] if matching else None


def _loading_version_0_1_checkpoints(optimizer, keras_load):
    """A Keras 3 optimizer's checkpoint loading (`keras_load`) that also loads a
    checkpoint of keras-autowu 0.1.0.

    0.1.0 saved a fourth variable after each run's three, its learning-rate table, and
    Keras 3 skips an optimizer whose saved variables differ in number
    (keras_compat.wrap_checkpoint_loading says where). When the saved
    ones are exactly ours plus one table after each run's `autowu_step_offset`, the
    tables are dropped; anything else goes to Keras as it is.
    """

    def load(store):
        saved, index = [], 0
        for variable in optimizer.variables:
            saved.append(str(index))
            index += 2 if variable.name == "autowu_step_offset" else 1
        old_layout = len(store.keys()) == index != len(optimizer.variables) and all(
            tuple(store[key].shape) == tuple(variable.shape) for key, variable in zip(saved, optimizer.variables)
        )
        if not old_layout:
            return keras_load(store)
        for key, variable in zip(saved, optimizer.variables):
            variable.assign(store[key])

    return load


# Per optimizer, the runs whose fit ended in this process: {scheduler name: run start}.
_FITS_ENDED = weakref.WeakKeyDictionary()


def fit_ended(optimizer, name, run_start):
    """Notes that a fit of scheduler `name` ended its run (started at optimizer step
    `run_start`) in this process: EarlyStopping, say, or the run's end."""
    _FITS_ENDED.setdefault(optimizer, {})[name] = run_start


def fit_ended_here(optimizer, name, run_start):
    """Whether the run that started at `run_start` is one whose fit ended in this
    process. A new fit from epoch 0 then starts a new run (a restart after a kill, a
    new process, continues it); fit(initial_epoch=...) continues it anyway."""
    return _FITS_ENDED.get(optimizer, {}).get(name) == run_start


# Off TensorFlow, the unsaved run variables of each prefix, added to optimizers.
_UNSAVED = {}


def unsaved(model, total_steps, prefix):
    """Run variables for the step hook outside the optimizer, for a scheduler whose
    run cannot survive a restart anyway (AutoLRS: its in-memory checkpoint does not):
    nothing here needs saving. Off TensorFlow the train step sees only the optimizer's
    variables, so there they are the optimizer's (made once per run length)."""
    if not ON_TENSORFLOW:
        kept = _UNSAVED.setdefault(prefix, optimizer_state.SavedVariables(prefix))
        for variables in reversed(kept.candidates(model.optimizer)):
            if int(variables[0].shape[0]) == total_steps + 1:
                return RunVariables(*variables)
        specs = (
            optimizer_state.VariableSpec(f"{prefix}_losses", "float32", (total_steps + 1,), np.nan),
            optimizer_state.VariableSpec(f"{prefix}_steps_recorded", "int64", (), 0),
            optimizer_state.VariableSpec(f"{prefix}_step_offset", "int64", (), NO_RUN),
            optimizer_state.VariableSpec(f"{prefix}_learning_rates", "float32", (total_steps + 1,), 0.0),
        )
        return RunVariables(*kept.add(model, specs))

    def variable(value, dtype, name):
        return tf.Variable(
            value, dtype=dtype, trainable=False, name=f"{prefix}_{name}",
            # Every replica writes the same (global) values.
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    with model.distribute_strategy.scope():
        return RunVariables(
            variable(tf.fill([total_steps + 1], np.float32(np.nan)), tf.float32, "losses"),
            variable(0, tf.int64, "steps_recorded"),
            variable(NO_RUN, tf.int64, "step_offset"),
            variable(tf.zeros([total_steps + 1], tf.float32), tf.float32, "learning_rates"),
        )
