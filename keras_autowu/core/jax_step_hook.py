"""The in-graph part of the schedulers on JAX: what runs inside every train step.

Keras's JAX trainer is stateless: its `train_step(state, data)` takes the model's,
the optimizer's and the metrics' variables as arrays and returns their new values
(`state` is public: keras.io's "Customizing fit() with JAX"). A value the step reads
must come in through `state`, or it is frozen at trace time, so the run's variables
are optimizer variables, table included (`run_state`). The hook wraps `train_step`
on the model instance and, in the compiled step,

- sets the optimizer's learning rate to the table's entry for the run's step, before
  the step's update reads it;
- records the step's own loss. Keras adds each step's loss times its batch size to
  the loss tracker (a Mean, reset each epoch, reported as `loss`): the hook hands the
  step a tracker at zero, reads the step's loss off it, and adds back what it held, so
  that Keras's mean and logs come out as they would have.

Python writes the variables only when a test is due, through `callback.model`, which
puts the running state back into them (keras/src/callbacks/callback.py).
"""

import functools

import jax.numpy as jnp

from keras_autowu.core import keras_compat


class JaxTrainStepHook:
    """Step code for one run over its `RunVariables`; see the module docstring.

    `before_train_step(state, data)`, if given, is step code of the scheduler's own that
    runs first and returns the new state (factor search's probe).
    """

    def __init__(self, run_variables, before_train_step=None):
        self._variables = run_variables
        self._total_steps = run_variables.total_steps
        self._before_train_step = before_train_step

    def install(self, model):
        """Wraps `model.train_step` and makes Keras retrace the train function."""
        hook = self

        def wrap_train_step(original):
            @functools.wraps(original)
            def train_step(state, data):
                # Runs when the step is traced: the positions in the state are those of now.
                return hook.on_step(model, original, state, data)

            return train_step

        keras_compat.patch_model_methods(model, train_step=wrap_train_step)
        keras_compat.retrace_train_function(model)

    def on_step(self, model, original, state, data):
        if self._before_train_step is not None:
            state = self._before_train_step(state, data)
        trainable, non_trainable, optimizer_values, metrics_values = state
        optimizer_values, metrics_values = list(optimizer_values), list(metrics_values)
        at = _positions(model.optimizer.variables, model.optimizer.learning_rate, *self._variables.all_variables())
        lr, losses, steps_recorded, table = at[0], at[1], at[2], at[4]
        tracker = keras_compat.loss_tracker(model)
        total, count = _positions(model.metrics_variables, tracker.total, tracker.count)

        step = jnp.minimum(optimizer_values[steps_recorded], self._total_steps)
        optimizer_values[lr] = optimizer_values[table][step].astype(optimizer_values[lr].dtype)
        total_before, count_before = metrics_values[total], metrics_values[count]
        metrics_values[total], metrics_values[count] = jnp.zeros_like(total_before), jnp.zeros_like(count_before)

        logs, state = original((trainable, non_trainable, optimizer_values, metrics_values), data)

        trainable, non_trainable, optimizer_values, metrics_values = state
        optimizer_values, metrics_values = list(optimizer_values), list(metrics_values)
        step_total, step_count = metrics_values[total], metrics_values[count]
        # A train_step that does not update the tracker records nothing.
        recorded = step_count > 0
        loss = jnp.where(recorded, step_total / jnp.where(recorded, step_count, 1), jnp.nan).astype(jnp.float32)
        metrics_values[total], metrics_values[count] = total_before + step_total, count_before + step_count
        if isinstance(logs, dict) and "loss" in logs:
            running = metrics_values[count]
            logs = {**logs, "loss": jnp.where(running > 0, metrics_values[total] / jnp.where(running > 0, running, 1), 0).astype(logs["loss"].dtype)}
        optimizer_values[losses] = optimizer_values[losses].at[step].set(loss)
        optimizer_values[steps_recorded] = optimizer_values[steps_recorded] + recorded.astype(optimizer_values[steps_recorded].dtype)
        return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _positions(variables, *wanted):
    """The index in `variables` (the state's order) of each of `wanted`."""
    index = {id(v): i for i, v in enumerate(variables)}
    return [index[id(v)] for v in wanted]
