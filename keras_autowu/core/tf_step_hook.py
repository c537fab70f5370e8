"""The in-graph part of the schedulers on TensorFlow: what runs inside every train step.

`model.compute_loss` is the override point that every built-in train_step calls, in
Keras 3 and in Keras 2 alike, once per step and before the optimizer applies the
gradients. The hook wraps it, on the model instance, to

- record the step's own loss (not Keras's running epoch mean) in a buffer, and
- assign the optimizer's learning-rate variable this step's AutoWU learning rate, which
  `apply` then reads. It is looked up in the run's table (one gather), which costs less
  per step than the closed form's few dozen small ops.

Both are plain variable writes inside the compiled train function, so they hold for
every step of a `steps_per_execution` chunk and under XLA, with no Python per step.
Python reads the buffer and writes the schedule's state only when a test is due.
"""

import functools

import tensorflow as tf

from keras_autowu.core import keras_compat


class TrainStepHook:
    """Graph code for one run over its `RunVariables`; see the module docstring.

    `before_train_step(data)`, if given, is graph code of the scheduler's own that
    runs at the start of every train step, before the model's (factor search's probe).
    """

    def __init__(self, run_variables, before_train_step=None):
        self._variables = run_variables.tf_variables()
        self._total_steps = run_variables.total_steps
        self._before_train_step = before_train_step

    def on_step(self, loss, optimizer, batch_size=None):
        """Graph code for one step: record `loss`, set this step's learning rate.

        A few small ops, as each costs microseconds on a CPU, a few % of a tiny
        model's step. The run's step is the number of losses recorded, not the
        optimizer's. At the end of a dataset of unknown length Keras runs one more
        step on no data (Keras 3 every epoch, and it counts it as an optimizer step;
        tf_keras in the first epoch): its `batch_size` is 0 and its loss NaN, so it
        is no step of the run. Its NaN goes to the slot the next step overwrites.
        Steps past the run's end share the run's last slots.
        """
        v = self._variables
        step = tf.minimum(v.steps_recorded, self._total_steps)
        lr = tf.gather(v.learning_rates, step)
        optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))
        loss = tf.cast(tf.reshape(loss, []), tf.float32)
        rows = tf.constant(1.0) if batch_size is None else tf.cast(batch_size, tf.float32)
        loss, rows = _global_sums(loss, rows)
        # scatter_update, unlike scatter_nd_update, is implemented for mirrored variables.
        v.losses.scatter_update(tf.IndexedSlices(tf.reshape(loss, [1]), tf.reshape(step, [1])))
        if batch_size is None:
            v.steps_recorded.assign_add(1)
        else:
            v.steps_recorded.assign_add(tf.cast(rows > 0, tf.int64))

    def install(self, model):
        """Wraps `model.compute_loss` and makes Keras retrace the train function.

        Evaluation calls compute_loss too (Keras 2 without saying so), so the hook acts
        only when the call is traced from inside `train_step`: a flag set at trace time.
        """
        tracing_train_step = [False]

        def wrap_train_step(original):
            @functools.wraps(original)
            def train_step(*args, **kwargs):
                if self._before_train_step is not None:
                    self._before_train_step(*args, **kwargs)
                tracing_train_step[0] = True
                try:
                    return original(*args, **kwargs)
                finally:
                    tracing_train_step[0] = False

            return train_step

        def wrap_compute_loss(original):
            @functools.wraps(original)
            def compute_loss(*args, **kwargs):
                loss = original(*args, **kwargs)
                if tracing_train_step[0]:
                    # Keras 3 passes y_pred by name, tf_keras third by position.
                    y_pred = kwargs["y_pred"] if "y_pred" in kwargs else (args[2] if len(args) > 2 else None)
                    self.on_step(loss, model.optimizer, _batch_size(y_pred))
                return loss

            return compute_loss

        keras_compat.patch_model_methods(model, compute_loss=wrap_compute_loss, train_step=wrap_train_step)
        keras_compat.retrace_train_function(model)


def _batch_size(y_pred):
    """The number of rows of the step's (first) prediction, or None if unknown."""
    flat = tf.nest.flatten(y_pred) if y_pred is not None else []
    if not flat or not tf.is_tensor(flat[0]) or flat[0].shape.rank == 0:
        return None
    return tf.shape(flat[0])[0]


def _global_sums(*values):
    """The sums of scalars over the replicas, in one all-reduce (as they are on one).

    For the loss, the loss of the global batch: Keras 3 and Keras 2 both hand back
    each replica's loss already divided by the number of replicas, so that the
    gradients sum to the global batch's.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return tf.unstack(context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack(values)))
