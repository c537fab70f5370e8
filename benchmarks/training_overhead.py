"""What AutoWU costs per epoch, against a fixed Keras schedule.

The same model is trained with AutoWU and with SGD on Keras's CosineDecay with warmup,
in one process, alternating, several repeats. An epoch's time runs from one epoch's end
to the next (so AutoWU's tests at epoch ends count); the first epoch of each fit, which
traces and compiles, is left out. Prints median epoch times and their ratio for a tiny
model (the worst case: the least work per step to hide AutoWU's) and a small CNN, with
steps_per_execution 1 and 32.

    python benchmarks/training_overhead.py [--quick]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu._keras import keras  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def tiny_model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])


def small_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])


def data(kind, rng):
    if kind == "tiny":
        x = rng.standard_normal((4096, 8)).astype("float32")
        return x, (x[:, 0] > 0).astype("int32"), 32
    x = rng.uniform(size=(2048, 8, 8, 1)).astype("float32")
    return x, rng.integers(0, 10, 2048).astype("int32"), 64


def epoch_seconds(make_model, x, y, batch_size, steps_per_execution, epochs, use_autowu):
    steps = epochs * (len(x) // batch_size)
    if use_autowu:
        optimizer, callbacks = keras.optimizers.SGD(momentum=0.9), [keras_autowu.AutoWU(verbose=0)]
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=steps, warmup_target=0.1, warmup_steps=steps // 10)
        optimizer, callbacks = keras.optimizers.SGD(schedule, momentum=0.9), []
    model = make_model()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks + [timer], verbose=0, shuffle=False)
    return np.diff(timer.ends)  # the first (compiling) epoch has no start here


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats, for CI")
    args = parser.parse_args()
    epochs, repeats = (3, 1) if args.quick else (8, 5)
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} cores; TensorFlow {tf.__version__}; {epochs} epochs x {repeats} repeats per cell")
    print(f"{'model':<10} {'steps/exec':>10} {'steps/epoch':>11} {'fixed ms':>9} {'AutoWU ms':>10} {'ratio':>6}")
    for kind, make_model in (("tiny", tiny_model), ("small CNN", small_cnn)):
        x, y, batch_size = data(kind.split()[0], rng)
        for steps_per_execution in (1, 32):
            times = {False: [], True: []}
            for _ in range(repeats):
                for use_autowu in (False, True):  # alternating, so drifts hit both alike
                    times[use_autowu].extend(
                        epoch_seconds(make_model, x, y, batch_size, steps_per_execution, epochs, use_autowu))
            fixed, autowu = (1e3 * np.median(times[k]) for k in (False, True))
            print(f"{kind:<10} {steps_per_execution:>10} {len(x) // batch_size:>11} "
                  f"{fixed:>9.1f} {autowu:>10.1f} {autowu / fixed:>6.3f}")


if __name__ == "__main__":
    main()
