"""Factor search's probes on Keras's JAX backend: the probes of `probe` (its docstring
says what they measure), as a function of the train step's state.

Keras's JAX train step is stateless (`train_step(state, data)`, see
`keras_autowu.core.jax_step_hook`), so a probe needs no moving of the weights and back:
it calls the model on weight values it makes (`model.stateless_call`), and the
weights the step trains on are the ones it was given, bit for bit. What a probe keeps
from one step to the next (the start of the probed update, the stage, the losses) is
in variables of the optimizer, the only ones besides the model's that the step sees.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from keras_autowu.core import keras_compat, model_loss, optimizer_state
from keras_autowu.core.keras_compat import keras

# How many steps after the one it is requested for a probe's result is ready: the
# update direction keeps the start in one step and probes in the next.
STEPS_TO_RESULT = {"update": 2, "gradient": 1}
_SAVED = optimizer_state.SavedVariables("factor_search_probe")


class FactorProbe:
    """The probe's variables and step code for one model; see the module docstring.

    The same interface as the TensorFlow backend's `FactorProbe`: `request()`,
    `release()`, `steps_to_result`, `losses` and `base_loss` after a probe, `install`
    for a loop of `train_on_batch`, and `probe(x, y, learning_rate)` outside `fit`.
    """

    def __init__(self, model, factors, direction="update", probe_batch_size=32, seed=0):
        self._model = model
        self._factors = tuple(float(f) for f in factors)
        self._direction = direction
        self._rows = probe_batch_size
        self._seed = seed
        self._loss_function = model_loss.per_row_loss_function(model)
        keras_compat.build_optimizer_slots(model)
        weights = model.trainable_variables
        specs = (
            # 0: nothing to do; 1: probe ("gradient") or keep the start ("update") at the
            # coming step; 2: probe the last step's update ("update") at the coming step.
            optimizer_state.VariableSpec("probe_stage", "int32", (), 0),
            optimizer_state.VariableSpec("probe_losses", "float32", (len(self._factors),), 0.0),
            optimizer_state.VariableSpec("probe_base_loss", "float32", (), 0.0),
        ) + tuple(optimizer_state.VariableSpec(f"probe_start_{i}", w.dtype, tuple(w.shape), 0.0) for i, w in enumerate(weights))
        shapes = [tuple(spec.shape) for spec in specs]
        existing = [v for v in _SAVED.candidates(model.optimizer) if [tuple(x.shape) for x in v] == shapes]
        variables = existing[-1] if existing else _SAVED.add(model, specs)
        self.stage, self.losses, self.base_loss, *self._start = variables
        self._variables = variables

    @property
    def steps_to_result(self):
        """How many steps after the one it is requested for a probe's result is ready."""
        return STEPS_TO_RESULT[self._direction]

    def refs(self):
        return {keras_compat.variable_ref(v) for v in self._variables}

    # -- step code ---------------------------------------------------------------------

    def _loss(self, trainable, non_trainable, x, y):
        """The compiled loss's mean plus the model's own losses, in inference mode."""
        y_pred, _, losses = self._model.stateless_call(trainable, non_trainable, x, training=False, return_losses=True)
        loss = jnp.mean(jnp.asarray(self._loss_function(y, y_pred), jnp.float32))
        return loss + sum(jnp.asarray(r, jnp.float32) for r in losses) if losses else loss

    def _probe_rows(self, data, step):
        """Seeded by the optimizer's step, which checkpoints carry: a resumed run probes
        the rows the uninterrupted one did."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        rows = jax.tree_util.tree_leaves(x)[0].shape[0]
        order = jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(self._seed), step), rows)
        pick = functools.partial(jnp.take, indices=order[: min(self._rows, rows)], axis=0)
        return jax.tree_util.tree_map(pick, x), jax.tree_util.tree_map(pick, y)

    def before_train_step(self, state, data):
        """The state with a requested probe carried out: a conditional in every step,
        whose probe branch runs only at a step its stage names (`request`)."""
        trainable, non_trainable, optimizer_values, metrics_values = state
        index = {id(v): i for i, v in enumerate(self._model.optimizer.variables)}
        at = [index[id(v)] for v in self._variables]
        learning_rate_at = index[id(self._model.optimizer.learning_rate)]
        step_at = index[id(self._model.optimizer.iterations)]

        def probe(values):
            values = list(values)
            stage = values[at[0]]
            x, y = self._probe_rows(data, values[step_at])
            loss = functools.partial(self._loss, non_trainable=non_trainable, x=x, y=y)
            if self._direction == "gradient":
                learning_rate = values[learning_rate_at]
                base, gradients = jax.value_and_grad(lambda weights: loss(weights))(list(trainable))
                losses = jnp.stack([
                    loss([w - jnp.asarray(f * learning_rate, w.dtype) * g for w, g in zip(trainable, gradients)]) for f in self._factors
                ])
                probed, next_stage = stage == 1, jnp.zeros_like(stage)
            else:
                starts = [values[i] for i in at[3:]]
                losses = jnp.stack([loss([s + jnp.asarray(f, s.dtype) * (w - s) for s, w in zip(starts, trainable)]) for f in self._factors])
                base = loss(starts)
                probed, next_stage = stage == 2, jnp.where(stage == 1, 2, 0).astype(stage.dtype)
                for i, s, w in zip(at[3:], starts, trainable):
                    values[i] = jnp.where(stage == 1, w, s)
            values[at[1]] = jnp.where(probed, losses, values[at[1]]).astype(values[at[1]].dtype)
            values[at[2]] = jnp.where(probed, base, values[at[2]]).astype(values[at[2]].dtype)
            values[at[0]] = next_stage
            return values

        values = jax.lax.cond(optimizer_values[at[0]] != 0, probe, list, list(optimizer_values))
        return trainable, non_trainable, values, metrics_values

    # -- the train functions -------------------------------------------------------------

    def request(self):
        """Probes from the coming train step on (see `stage`)."""
        self.stage.assign(1)

    def release(self):
        """Nothing to do: one train function serves, its probe a conditional (two jitted
        functions of one Python function would share one trace)."""

    def install(self, model):
        """For a loop of `train_on_batch` without the schedulers' step hook: the probe
        alone before the model's train step; `uninstall` takes it off."""

        def wrap_train_step(original):
            @functools.wraps(original)
            def train_step(state, data):
                return original(self.before_train_step(state, data), data)

            return train_step

        keras_compat.patch_model_methods(model, train_step=wrap_train_step)
        self.make_train_functions()

    def make_train_functions(self):
        """Makes Keras trace the train function anew, with the probe in its step."""
        keras_compat.retrace_train_function(self._model)

    def probe(self, x, y, learning_rate):
        """A "gradient" probe outside `fit` (custom loops): (losses per factor, the loss
        at the current weights), as NumPy; the weights are not touched."""
        model = self._model
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        loss = functools.partial(self._loss, non_trainable=non_trainable, x=x, y=y)
        base, gradients = jax.value_and_grad(lambda weights: loss(weights))(trainable)
        losses = [loss([w - jnp.asarray(f * learning_rate, w.dtype) * g for w, g in zip(trainable, gradients)]) for f in self._factors]
        self.losses.assign(np.asarray(losses, np.float32))
        self.base_loss.assign(float(base))
        return self.losses.numpy(), float(self.base_loss.numpy())


def uninstall(model):
    """Removes `FactorProbe.install`'s wrapper, if any, and makes Keras retrace without it."""
    keras_compat.unpatch_model_methods(model)
