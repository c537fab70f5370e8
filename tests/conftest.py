import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices for the tf.distribute tests; this must precede any TF op.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_autowu.core.keras_compat import IS_KERAS_3, keras  # noqa: E402


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


def make_optimizer(name):
    """The optimizers AutoWU must drive, on the Keras under test."""
    if name == "sgd":
        return keras.optimizers.SGD(momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam()
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=1e-4)
    if name == "lamb":
        if IS_KERAS_3:
            return keras.optimizers.Lamb()
        tfa = pytest.importorskip("tensorflow_addons", reason="Keras 2 takes LAMB from tensorflow-addons")
        return tfa.optimizers.LAMB()
    raise ValueError(name)


def tiny_classifier(optimizer="sgd", steps_per_execution=1, jit_compile=False):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(
        optimizer=make_optimizer(optimizer) if isinstance(optimizer, str) else optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def classification_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return x, y


