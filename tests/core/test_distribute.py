"""AutoWU under tf.distribute.MirroredStrategy on two logical CPU devices."""

import numpy as np
import pytest

import keras_autowu
from helpers import label_mean
from keras_autowu.core.keras_compat import IS_KERAS_3, keras

def _steps_per_execution_cases():
    # Keras 3 with MirroredStrategy and steps_per_execution > 1 fails upstream for any
    # model (keras-team/keras#19246); tf_keras handles it.
    return [1] if IS_KERAS_3 else [1, 8, 32]


@pytest.mark.parametrize("steps_per_execution", _steps_per_execution_cases())
def test_global_loss_and_same_lr_on_every_replica(steps_per_execution, mirrored_strategy):
    """The GP sees the global batch's loss; every replica applies the same, exact LR."""
    strategy = mirrored_strategy
    x = np.zeros((256, 4), "float32")
    y = np.random.default_rng(0).uniform(0, 10, 256).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=label_mean, steps_per_execution=steps_per_execution)
    autowu = keras_autowu.AutoWU(verbose=0)
    model.fit(x, y, batch_size=32, epochs=4, callbacks=[autowu], verbose=0, shuffle=False)
    expected = np.tile(y.reshape(8, 32).mean(axis=1), 4)
    np.testing.assert_allclose(autowu.scheduler.losses, expected, rtol=1e-6)
    lr_variable = model.optimizer.learning_rate
    mirrored = lr_variable.value if IS_KERAS_3 else lr_variable  # Keras 3 wraps the tf.Variable
    values = [float(v.numpy()) for v in mirrored.values]
    assert len(values) == 2 and len(set(values)) == 1
    # After fit, the optimizer holds the learning rate the decay started from.
    assert values[0] == pytest.approx(float(autowu.scheduler.state.decay_base_lr), rel=1e-6)
