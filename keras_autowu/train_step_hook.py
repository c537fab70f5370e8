"""The in-graph part of AutoWU: what runs inside every train step.

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

_ORIGINALS_ATTRIBUTE = "_autowu_original_methods"


class TrainStepHook:
    """Graph code for one run over its `RunVariables`; see the module docstring."""

    def __init__(self, run_variables):
        self._variables = run_variables.tf_variables()
        self._total_steps = run_variables.total_steps

    def on_step(self, loss, optimizer):
        """Graph code for one step: record `loss`, set this step's learning rate.

        A few small ops, as each costs microseconds on a CPU, a few % of a tiny
        model's step. The run's step is the number of losses recorded, not the
        optimizer's: Keras 3 may count a step that computed no loss at the end of a
        dataset of unknown length. Steps past the run's end share its last slots.
        """
        v = self._variables
        step = tf.minimum(v.steps_recorded, self._total_steps)
        lr = tf.gather(v.learning_rates, step)
        optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))
        loss = _global_mean(tf.reshape(tf.cast(loss, tf.float32), [1]))
        # scatter_update, unlike scatter_nd_update, is implemented for mirrored variables.
        v.losses.scatter_update(tf.IndexedSlices(loss, tf.reshape(step, [1])))
        v.steps_recorded.assign_add(1)

    def install(self, model):
        """Wraps `model.compute_loss` and makes Keras retrace the train function.

        Evaluation calls compute_loss too (Keras 2 without saying so), so the hook acts
        only when the call is traced from inside `train_step`: a flag set at trace time.
        """
        uninstall(model, retrace=False)
        original_compute_loss, original_train_step = model.compute_loss, model.train_step
        tracing_train_step = [False]

        @functools.wraps(original_train_step)
        def train_step(*args, **kwargs):
            tracing_train_step[0] = True
            try:
                return original_train_step(*args, **kwargs)
            finally:
                tracing_train_step[0] = False

        @functools.wraps(original_compute_loss)
        def compute_loss(*args, **kwargs):
            loss = original_compute_loss(*args, **kwargs)
            if tracing_train_step[0]:
                self.on_step(loss, model.optimizer)
            return loss

        setattr(model, _ORIGINALS_ATTRIBUTE, (original_compute_loss, original_train_step))
        model.compute_loss, model.train_step = compute_loss, train_step
        model.make_train_function(force=True)


def uninstall(model, retrace=True):
    """Removes the hook, if any, and by default makes Keras retrace without it."""
    originals = getattr(model, _ORIGINALS_ATTRIBUTE, None)
    if originals is None:
        return
    # The model's own methods come back through the class once the wrappers go.
    del model.compute_loss, model.train_step
    delattr(model, _ORIGINALS_ATTRIBUTE)
    if retrace:
        model.make_train_function(force=True)


def _global_mean(loss):
    """The mean of the replicas' losses: the loss of the global batch."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    # Keras 3 and Keras 2 both hand back each replica's loss already divided by the
    # number of replicas, so that the gradients sum to the global batch's.
    return context.all_reduce(tf.distribute.ReduceOp.SUM, loss)
