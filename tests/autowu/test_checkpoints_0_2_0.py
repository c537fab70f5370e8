"""A run that keras-autowu 0.2.0 checkpointed mid-warmup resumes with today's package.

The checkpoints (tests/data/autowu_0_2_0_*) were written by 0.2.0 itself, after 5 of
12 epochs, by tests/data/make_checkpoints_0_2_0.py.
"""

import json
import os
import warnings

import numpy as np
import tensorflow as tf

import keras_autowu
from keras_autowu.core.keras_compat import IS_KERAS_3, keras

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
STEPS_PER_EPOCH, EPOCHS, SAVED_AFTER = 8, 12, 5


def model_and_data():
    keras.utils.set_random_seed(1)  # other initial weights: the checkpoint must replace them
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((STEPS_PER_EPOCH * 32, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return model, x, y


def test_a_checkpoint_of_version_0_2_0_resumes_its_run(capsys):
    """Its losses load into today's run variables, and fit(initial_epoch=5) replays them
    and goes on from step 40 to the run's end."""
    name = "keras3" if IS_KERAS_3 else "tf_keras"
    with open(os.path.join(DATA, f"autowu_0_2_0_{name}.json")) as f:
        saved = json.load(f)
    model, x, y = model_and_data()
    autowu = keras_autowu.AutoWU(STEPS_PER_EPOCH, EPOCHS, test_interval=4)
    autowu.build(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras 3 warns when it skips the optimizer's variables
        if IS_KERAS_3:
            model.load_weights(os.path.join(DATA, f"autowu_0_2_0_{name}.weights.h5"))
        else:
            status = tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(os.path.join(DATA, f"autowu_0_2_0_{name}", "ckpt"))
            status.assert_existing_objects_matched()
    assert int(model.optimizer.iterations.numpy()) == saved["steps_done"] == SAVED_AFTER * STEPS_PER_EPOCH
    model.fit(x, y, batch_size=32, epochs=EPOCHS, initial_epoch=SAVED_AFTER, callbacks=[autowu], verbose=0, shuffle=False)
    assert f"AutoWU: resuming at step {saved['steps_done']} of {STEPS_PER_EPOCH * EPOCHS}" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(autowu.scheduler.losses)[: saved["steps_done"]], np.float32(saved["losses"]))
    assert autowu.scheduler.steps_done == STEPS_PER_EPOCH * EPOCHS
