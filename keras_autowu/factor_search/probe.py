"""Factor search's probes, in the graph, with no model copy.

A probe puts the trainable weights at theta + f * d for each factor f, takes the loss
of the probe batch there, and puts them back exactly (an assignment from a copy, not a
subtraction, so the weights after a probe are bit-identical to before). The copy of
the weights is the one extra weight-sized buffer; the seed copies the whole model once
per factor.

The step d:

- "gradient" (the seed's): d = -lr * g, with g the gradient of the probe batch's loss,
  computed before the train step;
- "update": the step the optimizer took at the update step, d = theta_after -
  theta_before, so it carries the optimizer's own scaling (Adam's moments, LAMB's
  trust ratio, momentum). theta_before + f * d is the optimizer's step at f times the
  learning rate (exactly for plain SGD, Adam and LAMB, whose steps are linear in the
  learning rate). The probe runs at the next step, before it trains, on rows of that
  step's batch: data the probed step did not train on. (On the step's own batch a
  longer step always looks better, and the learning rate grew until the run died:
  docs/benchmarks.md, section 6.)

The probe batch: `probe_batch_size` rows of the probing step's batch, chosen by a
seeded permutation; under tf.distribute, each replica takes its share of them from its
own part of the batch, and the losses (and the "gradient" direction's gradient) are
averaged over the replicas, so that every replica moves its weights the same way and
records the same, global losses. The loss is the compiled loss function's mean plus the model's
regularisation losses, with the model called in inference mode (no dropout, no batch
statistics updated: nothing but the trainable weights moves, and they move back).
"""

import functools

import tensorflow as tf

from keras_autowu.core import keras_compat, model_loss
from keras_autowu.core.keras_compat import keras, tf_variable

# How many steps after the one it is requested for a probe's result is ready: the
# update direction saves the start in one step and probes in the next.
STEPS_TO_RESULT = {"update": 2, "gradient": 1}


def _assign(variable, value):
    return variable.assign(value)


class FactorProbe:
    """The probe's variables and graph code for one model; see the module docstring."""

    def __init__(self, model, factors, direction="update", probe_batch_size=32, seed=0):
        self._model = model
        self._probing = False  # which train function is being traced (see make_train_functions)
        self._factors = tuple(float(f) for f in factors)
        self._direction = direction
        self._rows = probe_batch_size
        self._seed = seed
        self._loss_function = model_loss.per_row_loss_function(model)
        self._weights = [tf_variable(w) for w in model.trainable_variables]
        strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
        with strategy.scope(), tf.init_scope():  # mirrored, like the weights they copy
            self._start = [tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False, name="probe_start") for w in self._weights]
            # 0: nothing to do; 1: probe ("gradient") or keep the start ("update") at the
            # coming step; 2: probe the last step's update ("update") at the coming step.
            self.stage = tf.Variable(0, dtype=tf.int32, trainable=False, name="probe_stage")
            self.losses = tf.Variable(tf.zeros([len(self._factors)]), trainable=False, name="probe_losses")
            self.base_loss = tf.Variable(0.0, trainable=False, name="probe_base_loss")

    # -- graph code ------------------------------------------------------------------

    @property
    def _replicas(self):
        """The replicas this graph code runs on: 1 on one device or outside `strategy.run`."""
        context = tf.distribute.get_replica_context()
        return 1 if context is None else context.num_replicas_in_sync

    @property
    def _distributed(self):
        return self._replicas > 1

    def _assign(self, variables, values, where=None):
        """variables[i] <- values[i] (where `where`, a boolean tensor, holds).

        On one device, plain assignments. Under tf.distribute, in a replica's step: the
        variables are mirrored with no aggregation (Keras's weights, and ours alike),
        which a replica may not write on its own, so the writes go through one
        `merge_call`, as the optimizers' own updates do; every replica hands the same
        values, so the copies stay equal. A merge_call may not sit inside a tf.cond, so
        under tf.distribute the probe runs unconditionally and `where` masks what it
        keeps.
        """
        if where is not None:
            values = [tf.where(where, value, variable) for variable, value in zip(variables, values)]
        if not self._distributed:
            for variable, value in zip(variables, values):
                variable.assign(value)
            return

        def merge(strategy, *values):
            for variable, value in zip(variables, values):
                strategy.extended.update(variable, _assign, args=(value,), group=False)

        tf.distribute.get_replica_context().merge_call(merge, args=tuple(values))

    def _mean_over_replicas(self, value):
        if not self._distributed:
            return value
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, value)

    def _probe_rows(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        # Seeded by the optimizer's step, which checkpoints carry: a resumed run probes
        # the rows the uninterrupted one did.
        step = tf.cast(self._model.optimizer.iterations, tf.int64)
        order = tf.argsort(tf.random.stateless_uniform(tf.reshape(rows, [1]), seed=tf.stack([tf.constant(self._seed, tf.int64), step])))
        take = order[: -(-self._rows // self._replicas)]  # the replica's share
        pick = functools.partial(tf.gather, indices=take)
        return tf.nest.map_structure(pick, x), tf.nest.map_structure(pick, y)

    def _loss(self, x, y):
        y_pred = self._model(x, training=False)
        loss = tf.reduce_mean(tf.cast(self._loss_function(y, y_pred), tf.float32))
        regularization = [tf.cast(r, tf.float32) for r in self._model.losses]
        return loss + tf.add_n(regularization) if regularization else loss

    def _save_start(self, where=None):
        self._assign(self._start, self._weights, where)

    def _losses_along(self, x, y, origin, position):
        """The loss at `position(i, f)` (variable i's value at factor f) for each factor,
        then at `origin` (f = 0), averaged over the replicas. On one device each value
        is made as it is assigned, so no step-sized list is kept."""
        losses = []
        # Each position waits for the loss before it (and, on one device, for the last
        # assignment): the positions depend only on the start, so TF's executor would
        # otherwise make every factor's at once, a weight-sized buffer per factor
        # (3.1x the weights in all, against 1.6x: benchmarks/factor_search.py).
        done = []
        for f in self._factors:
            if self._distributed:
                with tf.control_dependencies(done):
                    self._assign(self._weights, [position(i, tf.cast(f, w.dtype)) for i, w in enumerate(self._weights)])
            else:
                for i, weight in enumerate(self._weights):
                    with tf.control_dependencies(done):
                        done = [weight.assign(position(i, tf.cast(f, weight.dtype)), read_value=False)]
            losses.append(self._loss(x, y))
            done = [losses[-1]]
        self._assign(self._weights, origin)
        losses = self._mean_over_replicas(tf.stack([*losses, self._loss(x, y)]))
        return losses[:-1], losses[-1]

    def _gradient_probe(self, data, learning_rate, where=None):
        x, y = self._probe_rows(data)
        starts = [tf.identity(w) for w in self._weights]
        with tf.GradientTape() as tape:
            loss = self._loss(x, y)
        gradients = [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, self._weights)]
        if self._distributed:  # the same step on every replica: the global probe's gradient
            reduced = iter(self._mean_over_replicas([g for g in gradients if g is not None]))
            gradients = [None if g is None else next(reduced) for g in gradients]

        def position(i, f):
            g = gradients[i]
            return starts[i] if g is None else starts[i] - f * tf.cast(learning_rate, g.dtype) * g

        self._record(*self._losses_along(x, y, starts, position), where=where)

    def _update_probe(self, data, where=None):
        x, y = self._probe_rows(data)
        after = [tf.identity(w) for w in self._weights]
        starts = [s.read_value() for s in self._start]
        losses, base = self._losses_along(x, y, starts, lambda i, f: starts[i] + f * (after[i] - starts[i]))
        self._assign(self._weights, after)  # the step's own result, bit for bit
        self._record(losses, base, where=where)

    def _record(self, losses, base, where=None):
        self._assign([self.losses, self.base_loss], [losses, base], where)

    def _when(self, condition, function, *args):
        """`function(*args)` if `condition`: a tf.cond on one device; under tf.distribute
        (no merge_call in a cond) run always, keeping its writes only if `condition`."""
        if self._distributed:
            function(*args, where=condition)
        else:
            tf.cond(condition, lambda: _then(function, *args), _nothing)

    # -- the train step ----------------------------------------------------------------

    @property
    def steps_to_result(self):
        """How many steps after the one it is requested for a probe's result is ready."""
        return STEPS_TO_RESULT[self._direction]

    def request(self):
        """Probes from the coming train step on (see `stage`), with the probing train
        function until `release`."""
        self.stage.assign(1)
        self._use(self._probing_function)

    def release(self):
        """Back to the plain train function, once the probe's result is read."""
        self._use(self._plain_function)

    def _use(self, function):
        # Keras looks `train_function` up at every call (fit, train_on_batch), and each
        # function traces on its first call: the flag says then which train step to
        # trace, also for a retrace (a last batch of another size).
        self._probing = function is self._probing_function
        keras_compat.set_train_function(self._model, function)

    def before_train_step(self, data):
        """Graph code at the start of the train step (`TrainStepHook`'s
        `before_train_step`): a requested probe, traced only into the probing train
        function."""
        if not self._probing:
            return
        stage = self.stage.read_value()
        if self._direction == "gradient":
            learning_rate = tf.convert_to_tensor(self._model.optimizer.learning_rate)
            self._when(stage == 1, self._gradient_probe, data, learning_rate)
            self._assign([self.stage], [tf.zeros_like(stage)])
        else:
            self._when(stage == 2, self._update_probe, data)
            self._when(stage == 1, self._save_start)
            self._assign([self.stage], [tf.where(stage == 1, 2, 0)])

    def install(self, model):
        """For a loop of `train_on_batch` without the schedulers' step hook: the probe
        alone at the start of the model's train step; `uninstall` takes it off."""

        def wrap_train_step(original):
            @functools.wraps(original)
            def train_step(data):
                self.before_train_step(data)
                return original(data)

            return train_step

        keras_compat.patch_model_methods(model, train_step=wrap_train_step)
        self.make_train_functions()

    def make_train_functions(self):
        """Gives the model, whose train step calls `before_train_step`, two train
        functions: the plain one, with no probe op in any step, and one that carries
        out a requested probe; `request` and `release` switch between them, so that the
        steps between updates cost nothing extra."""
        self._probing_function = keras_compat.retrace_train_function(self._model)
        self._plain_function = keras_compat.retrace_train_function(self._model)
        self._use(self._plain_function)

    def probe(self, x, y, learning_rate):
        """A "gradient" probe outside `fit` (custom loops): (losses per factor, the loss
        at the current weights), as NumPy; the weights come back unchanged."""
        self._compiled_gradient_probe(x, y, tf.constant(learning_rate, tf.float32))
        return self.losses.numpy(), float(self.base_loss.numpy())

    @tf.function
    def _compiled_gradient_probe(self, x, y, learning_rate):
        self._gradient_probe((x, y), learning_rate)


def _then(function, *args):
    function(*args)
    return tf.constant(0)


def _nothing():
    return tf.constant(0)


def uninstall(model):
    """Removes `FactorProbe.install`'s wrapper, if any, and makes Keras retrace without it."""
    keras_compat.unpatch_model_methods(model)
