"""The roll-back's snapshot: values back exactly, and SGD's velocity at the new learning rate."""

import numpy as np
import pytest

import keras_autowu
from helpers import classification_data, tiny_classifier


def trained(optimizer):
    x, y = classification_data(64)
    model = tiny_classifier(optimizer)
    model.optimizer.learning_rate.assign(0.1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return model, x, y


def slots(model, name):
    return [v.numpy() for v in model.optimizer.variables if name in v.name]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_restore_puts_weights_and_slots_back_bit_for_bit(optimizer):
    model, x, y = trained(optimizer)
    snapshot = keras_autowu.WeightSnapshot(model, step=4)
    before = [w.numpy() for w in model.weights] + [v.numpy() for v in model.optimizer.variables]
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    snapshot.restore()
    after = [w.numpy() for w in model.weights] + [v.numpy() for v in model.optimizer.variables]
    iterations = [i for i, v in enumerate(model.optimizer.variables) if "iteration" in v.name]
    for index, (a, b) in enumerate(zip(before, after)):
        if index - len(model.weights) not in iterations:
            np.testing.assert_array_equal(a, b)


def test_sgd_velocity_is_scaled_to_the_new_learning_rate():
    """Keras's SGD velocity holds lr * gradient: at a quarter of the LR, a quarter of it."""
    model, _, _ = trained("sgd")
    velocities = [v.numpy() for v in model.optimizer.momentums]
    assert velocities and any(np.abs(v).max() > 0 for v in velocities)
    snapshot = keras_autowu.WeightSnapshot(model, step=4)
    snapshot.restore(learning_rate=0.025)
    for restored, saved in zip([v.numpy() for v in model.optimizer.momentums], velocities):
        np.testing.assert_allclose(restored, 0.25 * saved, rtol=1e-6)


def test_adam_moments_do_not_depend_on_the_learning_rate():
    model, _, _ = trained("adam")
    moments = slots(model, "momentum") + slots(model, "velocity")
    keras_autowu.WeightSnapshot(model, step=4).restore(learning_rate=0.001)
    for restored, saved in zip(slots(model, "momentum") + slots(model, "velocity"), moments):
        np.testing.assert_array_equal(restored, saved)
