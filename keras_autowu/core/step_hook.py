"""What runs inside every train step, for the backend Keras trains on.

Each step, the hook sets the optimizer's learning rate to the step's entry of the
run's table and records the step's own loss, inside the compiled train function: no
Python per step, with `steps_per_execution > 1` too. How it gets into the step
differs with the backend: `tf_step_hook` (TensorFlow, Keras 3 and tf_keras) and
`jax_step_hook` (JAX).
"""

from keras_autowu.core import keras_compat


def check_backend(owner, backends):
    """A NotImplementedError, at construction, when the scheduler named `owner` has no
    hook on this backend yet (`backends`: those it has)."""
    if keras_compat.BACKEND in backends:
        return
    raise NotImplementedError(
        f"{owner} as a Keras callback runs on Keras's {' and '.join(backends)} backend"
        f"{'s' if len(backends) > 1 else ''}, and this Keras runs on {keras_compat.BACKEND!r}. Set "
        f"KERAS_BACKEND, or drive {owner}Scheduler from a custom training loop (docs/backends.md)."
    )


def train_step_hook(run_variables, before_train_step=None):
    """The hook for this backend over `run_variables` (see `check_backend`).

    `before_train_step`: step code of the scheduler's own to run at the start of each
    train step (factor search's probe): on TensorFlow `before_train_step(data)`, graph
    code; on JAX `before_train_step(state, data)`, which returns the new state.
    """
    if keras_compat.ON_TENSORFLOW:
        from keras_autowu.core.tf_step_hook import TrainStepHook

        return TrainStepHook(run_variables, before_train_step)
    from keras_autowu.core.jax_step_hook import JaxTrainStepHook

    return JaxTrainStepHook(run_variables, before_train_step)


def uninstall(model, retrace=True):
    """Removes the hook, if any, and by default makes Keras retrace without it."""
    keras_compat.unpatch_model_methods(model, retrace=retrace)
