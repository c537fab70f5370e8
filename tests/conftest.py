import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

try:
    import tensorflow as tf
except ImportError:  # the JAX leg (make test-jax): the controllers' tests only
    tf = None

if tf is not None:
    # Two logical CPU devices for the tf.distribute tests; this must precede any TF op.
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from keras_autowu.core.keras_compat import keras  # noqa: E402
else:
    import keras


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    A second MirroredStrategy in a process numbers its collective ops from the same
    keys as the first, and TensorFlow's runtime still holds the first's shapes under
    them: "Shape mismatch in the collective instance" (tensorflow/tensorflow#62790).
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(autouse=True)
def seeded():
    """Each test starts from the same initial weights, whatever ran before it."""
    keras.utils.set_random_seed(0)
