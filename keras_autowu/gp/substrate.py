"""What the GP code runs on: TensorFlow Probability over TensorFlow, or over NumPy.

On Keras's TensorFlow backend (Keras 3 or tf_keras) the GP runs on TensorFlow and is
traced into graphs (`compile`). On the other backends it runs on TFP's NumPy
substrate, which needs no TensorFlow: `tfp` is `tensorflow_probability.substrates.numpy`
and `tf` the TensorFlow API over NumPy that the substrate itself is generated against
(`tensorflow_probability.python.internal.backend.numpy`; TFP has no public name for it).
The same GP code runs on either; the tests check that both make the same decisions.

`KERAS_AUTOWU_GP_SUBSTRATE=numpy` (or `tensorflow`) overrides the choice.
"""

import functools
import importlib
import os


def _on_tensorflow():
    choice = os.environ.get("KERAS_AUTOWU_GP_SUBSTRATE")
    if choice:
        if choice not in ("tensorflow", "numpy"):
            raise ValueError(f"KERAS_AUTOWU_GP_SUBSTRATE must be 'tensorflow' or 'numpy', not {choice!r}")
        return choice == "tensorflow"
    if os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true"):
        return True
    try:
        import keras
    except ImportError:
        return True
    return keras.backend.backend() == "tensorflow"


ON_TENSORFLOW = _on_tensorflow()
NAME = "tensorflow" if ON_TENSORFLOW else "numpy"

if ON_TENSORFLOW:
    import tensorflow as tf
    import tensorflow_probability as tfp

    # No AutoGraph: the GP code has no Python control flow to convert, and converting
    # it doubled the trace.
    compile = functools.partial(tf.function, autograph=False)  # noqa: A001
else:
    tfp = importlib.import_module("tensorflow_probability.substrates.numpy")
    tf = importlib.import_module("tensorflow_probability.python.internal.backend.numpy")

    def compile(function):  # noqa: A001
        return function

