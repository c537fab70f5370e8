"""One worker of a two-worker MultiWorkerMirroredStrategy run (tf_keras), with AutoWU,
FactorSearch or AutoLRS.

Started by test_multi_worker.py with TF_CONFIG set:
`multi_worker_fit.py OUTPUT.json [autowu|factor_search|autolrs]`; writes what the
scheduler decided to the JSON file.
"""

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Keras 3's fit fails under this strategy upstream
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Collective ops must be configured before anything (Keras, TFP) initialises TensorFlow.
strategy = tf.distribute.MultiWorkerMirroredStrategy()

import keras_autowu  # noqa: E402
from helpers import label_mean  # noqa: E402
from keras_autowu.core.keras_compat import keras  # noqa: E402

STEPS_PER_EPOCH, EPOCHS, GLOBAL_BATCH = 16, 12, 8


def main(output_path, scheduler_name="autowu"):
    if scheduler_name == "factor_search":
        return factor_search(output_path)
    if scheduler_name == "autolrs":
        return autolrs(output_path)
    steps = np.arange(STEPS_PER_EPOCH * EPOCHS)
    batch_means = ((steps - 70) / 70.0) ** 2 + 0.05 * np.random.default_rng(0).standard_normal(steps.size)
    labels = np.repeat(batch_means, GLOBAL_BATCH).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((labels.size, 2), "float32"), labels))
    dataset = dataset.batch(GLOBAL_BATCH).repeat()
    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=label_mean, steps_per_execution=4)
    autowu = keras_autowu.AutoWU(max_warmup_fraction=0.9, verbose=0)
    model.fit(dataset, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS, callbacks=[autowu], verbose=0)
    scheduler = autowu.scheduler
    with open(output_path, "w") as f:
        json.dump(
            dict(
                switch_step=scheduler.switch and scheduler.switch.step,
                switch_lr=scheduler.switch and scheduler.switch.lr_at_minimum,
                losses=scheduler.losses.tolist(),
                learning_rates=scheduler.learning_rates().tolist(),
                final_optimizer_lr=float(model.optimizer.learning_rate.numpy()),
            ),
            f,
        )


def regression(rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32") + 0.1 * rng.standard_normal(len(x))).astype("float32")
    return x, y


def small_regressor():
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    return model


def autolrs(output_path):
    """Two stages with SGD and momentum, the second scored on validation data: each
    worker restores its own copies and evaluates the whole validation set."""
    x, y = regression(STEPS_PER_EPOCH * GLOBAL_BATCH * 4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).repeat()
    model = small_regressor()
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse", steps_per_execution=4)
    search = keras_autowu.AutoLRS(min_lr=1e-3, max_lr=0.5, tau=32, tau_ratio=4, explored=3, tau_max=80,
                                  validation_data=regression(64), verbose=0)
    model.fit(dataset, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS, callbacks=[search], verbose=0)
    scheduler = search.scheduler
    with open(output_path, "w") as f:
        json.dump(
            dict(
                on_validation=[s.on_validation for s in scheduler.stages],
                learning_rates=[list(s.learning_rates) for s in scheduler.stages],
                forecasts=[list(s.forecasts) for s in scheduler.stages],
                chosen=[s.chosen for s in scheduler.stages],
                rolled_back=[s.rolled_back for s in scheduler.stages],
                losses=[float(v) for v in scheduler.losses],
                final_optimizer_lr=float(model.optimizer.learning_rate.numpy()),
                weights=[w.numpy().tolist() for w in model.weights],
            ),
            f,
        )


def factor_search(output_path):
    """A small regression learnt with factor search's probes; every worker probes its
    shard of each global batch."""
    x, y = regression(STEPS_PER_EPOCH * GLOBAL_BATCH * 4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).repeat()
    model = small_regressor()
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", steps_per_execution=4)
    search = keras_autowu.FactorSearch(update_interval=8, probe_batch_size=GLOBAL_BATCH, verbose=0)
    model.fit(dataset, steps_per_epoch=STEPS_PER_EPOCH, epochs=4, callbacks=[search], verbose=0)
    updates = search.scheduler.updates
    with open(output_path, "w") as f:
        json.dump(
            dict(
                steps=[u.step for u in updates],
                probe_losses=[list(u.losses) + [u.base_loss] for u in updates],
                learning_rates=[u.learning_rate for u in updates],
                final_optimizer_lr=float(model.optimizer.learning_rate.numpy()),
                weights=[w.numpy().tolist() for w in model.weights],
            ),
            f,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
