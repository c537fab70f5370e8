"""Writes the checkpoints of an AutoWU run interrupted mid-warmup, with keras-autowu 0.2.0.

Run with 0.2.0 on the path (`git worktree add /tmp/v020 v0.2.0-commit`), once per Keras:

    PYTHONPATH=/tmp/v020 python tests/data/make_checkpoints_0_2_0.py
    PYTHONPATH=/tmp/v020 TF_USE_LEGACY_KERAS=1 python tests/data/make_checkpoints_0_2_0.py

tests/autowu/test_checkpoints_0_2_0.py loads them with today's package and resumes the run.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402

keras = tf.keras
IS_KERAS_3 = keras.version().startswith("3.") if hasattr(keras, "version") else False
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS_PER_EPOCH, EPOCHS, SAVED_AFTER = 8, 12, 5


def model_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((STEPS_PER_EPOCH * 32, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return model, x, y


def main():
    assert os.path.exists(os.path.join(os.path.dirname(keras_autowu.__file__), "scheduler.py")), "not 0.2.0's layout"
    model, x, y = model_and_data()
    autowu = keras_autowu.AutoWU(STEPS_PER_EPOCH, EPOCHS, test_interval=4, verbose=0)
    model.fit(x, y, batch_size=32, epochs=SAVED_AFTER, callbacks=[autowu], verbose=0, shuffle=False)
    name = "keras3" if IS_KERAS_3 else "tf_keras"
    if IS_KERAS_3:
        model.save_weights(os.path.join(HERE, f"autowu_0_2_0_{name}.weights.h5"))
    else:
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(os.path.join(HERE, f"autowu_0_2_0_{name}", "ckpt"))
    with open(os.path.join(HERE, f"autowu_0_2_0_{name}.json"), "w") as f:
        json.dump({"losses": autowu.scheduler.losses.tolist(), "steps_done": autowu.scheduler.steps_done}, f)


if __name__ == "__main__":
    main()
