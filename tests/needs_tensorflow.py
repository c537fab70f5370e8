"""For the tests that also run on the JAX leg (make test-jax), where TensorFlow is not
installed: the parts that need the Keras callbacks skip there, saying why."""

import pytest


def autowu_callback(**kwargs):
    """keras_autowu.AutoWU(**kwargs), or a skip where TensorFlow is not installed."""
    pytest.importorskip("tensorflow", reason="the Keras callbacks run on Keras's TensorFlow backend")
    import keras_autowu

    return keras_autowu.AutoWU(**kwargs)
