"""Factor search under tf.distribute.MirroredStrategy on two logical CPU devices."""

import numpy as np
import pytest

import keras_autowu
from helpers import classification_data, label_mean, replica_values, tiny_classifier
from keras_autowu.core.keras_compat import IS_KERAS_3, keras

BATCH, STEPS_PER_EPOCH, EPOCHS = 32, 8, 4


# Keras 3 with MirroredStrategy and steps_per_execution > 1 fails upstream for any model
# (keras-team/keras#19246); with tf_keras, a chunk of 8 holds one update's two probe steps.
STEPS_PER_EXECUTION = [1] if IS_KERAS_3 else [1, 8]


def fit(model, **kwargs):
    search = keras_autowu.FactorSearch(verbose=0, update_interval=8, probe_batch_size=BATCH, **kwargs)
    x, y = classification_data(BATCH * STEPS_PER_EPOCH)
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, callbacks=[search], verbose=0, shuffle=False)
    return search


@pytest.mark.parametrize("steps_per_execution", STEPS_PER_EXECUTION)
@pytest.mark.parametrize("direction", ["update", "gradient"])
def test_replicas_agree_and_the_run_is_the_one_device_run(direction, steps_per_execution, mirrored_strategy):
    """Every replica ends with the same weights and learning rate, and the probes see the
    global probe batch: the learning rates are those of the same run on one device."""
    keras.utils.set_random_seed(0)
    single = fit(tiny_classifier("sgd", steps_per_execution), direction=direction)
    keras.utils.set_random_seed(0)
    with mirrored_strategy.scope():
        model = tiny_classifier("sgd", steps_per_execution)
    mirrored = fit(model, direction=direction)

    for weight in [*model.weights, model.optimizer.learning_rate]:
        first, second = replica_values(weight)
        np.testing.assert_array_equal(first, second)
    updates = mirrored.scheduler.updates
    assert [u.step for u in updates] == [u.step for u in single.scheduler.updates] == [8, 16, 24]
    np.testing.assert_allclose([u.losses for u in updates], [u.losses for u in single.scheduler.updates], rtol=1e-4)
    np.testing.assert_allclose(
        [u.learning_rate for u in updates], [u.learning_rate for u in single.scheduler.updates], rtol=1e-4
    )
    assert len({u.learning_rate for u in updates}) == 3


def test_probe_losses_are_the_global_batch_s(mirrored_strategy):
    """Each replica probes its own half of the batch; the recorded loss is their mean.

    The loss of a row is its label (`label_mean`): 0..15 on the first replica's half,
    16..31 on the second's, so one replica alone would record 7.5 or 23.5.
    """
    with mirrored_strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=label_mean)
    search = keras_autowu.FactorSearch(verbose=0, update_interval=4, probe_batch_size=BATCH)
    x = np.zeros((BATCH * 8, 4), "float32")
    y = np.tile(np.arange(BATCH, dtype="float32"), 8)
    model.fit(x, y, batch_size=BATCH, epochs=2, callbacks=[search], verbose=0, shuffle=False)
    updates = search.scheduler.updates
    assert len(updates) == 3
    for update in updates:
        assert update.base_loss == pytest.approx(15.5)
        np.testing.assert_allclose(update.losses, 15.5)
