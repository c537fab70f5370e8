"""AutoWU on a GPU with Keras's JAX backend: a ResNet-20 trained with AutoWU and with a
fixed schedule, its per-step overhead and its accuracy.

The data are generated: 32x32 RGB images of 10 classes, each class a smooth random
pattern shown at a random shift with noise, so that a CNN must learn translation-
invariant features (CIFAR-sized, and it needs no download). The same network, from
the same initial weights, trains twice for the same epochs with SGD(momentum=0.9):

- AutoWU(), which chooses the warmup and the peak;
- Keras's CosineDecay with a linear warmup to 0.1 over a tenth of the run (the
  usual CIFAR ResNet schedule at batch 512).

The two fits alternate epoch by epoch (two threads hand a baton over at each epoch's
end), so that each AutoWU epoch is paired with a fixed-schedule epoch under the same
load; the overhead is the median of the paired epoch-time ratios, the first epoch
(which compiles) left out.

It runs on a machine with JAX but no TensorFlow and no package index. What it needs
beyond JAX travels as one folder (`make gpu-bundle`: Keras, TensorFlow Probability,
this package and their pure-Python dependencies, with `pip install --target`):

    KERAS_BACKEND=jax PYTHONPATH=build/gpu_bundle python benchmarks/gpu_check.py [--quick]
"""

import argparse
import os
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import keras  # noqa: E402
import keras_autowu  # noqa: E402
from training_overhead import Baton  # noqa: E402  (benchmarks/, the script's folder)


def make_data(n, seed, classes=10, size=32):
    """Images of `classes` smooth random patterns at random shifts, with noise."""
    rng = np.random.default_rng(0)  # the patterns: the same for every split
    coarse = rng.standard_normal((classes, 8, 8, 3))
    patterns = np.kron(coarse, np.ones((1, 2 * size // 8, 2 * size // 8, 1)))  # 64 x 64, blocky
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    shifts = rng.integers(0, size, (n, 2))
    x = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        r, c = shifts[i]
        x[i] = patterns[y[i], r : r + size, c : c + size]
    x += 1.5 * rng.standard_normal(x.shape).astype(np.float32)
    return x, y.astype(np.int32)


def resnet20(classes=10):
    """He et al.'s CIFAR ResNet-20: three stages of three basic blocks, 16/32/64 filters."""

    def block(h, filters, stride):
        shortcut = h
        h = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut)
            shortcut = keras.layers.BatchNormalization()(shortcut)
        return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))

    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    for stage, filters in enumerate((16, 32, 64)):
        for i in range(3):
            h = block(h, filters, 2 if stage > 0 and i == 0 else 1)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(classes)(h))


class EpochClock(keras.callbacks.Callback):
    """Takes the baton at each epoch's start, times the epoch, hands the baton on."""

    def __init__(self, baton, who):
        super().__init__()
        self.baton, self.who, self.seconds = baton, who, []

    def on_epoch_begin(self, epoch, logs=None):
        self.baton.take(self.who)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.baton.hand_over(self.who)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, to check the script on a CPU")
    args = parser.parse_args()
    n, epochs, batch_size = (2048, 3, 256) if args.quick else (50000, 15, 512)
    x, y = make_data(n, seed=1)
    x_test, y_test = make_data(n // 5, seed=2)
    steps = epochs * (n // batch_size)
    print(f"Keras {keras.__version__} on {keras.backend.backend()}; devices: {__import__('jax').devices()}")
    print(f"ResNet-20, {n} generated images, batch {batch_size}, {epochs} epochs ({steps} steps)")

    keras.utils.set_random_seed(0)
    initial = resnet20().get_weights()
    baton, results, errors = Baton(), {}, []

    def fit(who):
        try:
            model = resnet20()
            model.set_weights(initial)
            if who == 1:
                optimizer, callbacks = keras.optimizers.SGD(momentum=0.9), [keras_autowu.AutoWU(verbose=0)]
            else:
                schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=0.1, warmup_steps=steps // 10)
                optimizer, callbacks = keras.optimizers.SGD(schedule, momentum=0.9), []
            model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            clock = EpochClock(baton, who)
            model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[clock, *callbacks], verbose=0)
            accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)[1]
            results[who] = (np.array(clock.seconds), accuracy, callbacks[0].scheduler if callbacks else None)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            baton.hand_over(who)

    threads = [threading.Thread(target=fit, args=(who,)) for who in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    (fixed, fixed_accuracy, _), (autowu, autowu_accuracy, scheduler) = results[0], results[1]
    per_step = 1e3 / (n // batch_size)
    print(f"{'schedule':<28} {'ms/step':>8} {'test accuracy':>14}")
    print(f"{'cosine, warmup to 0.1':<28} {per_step * np.median(fixed[1:]):>8.2f} {fixed_accuracy:>14.4f}")
    print(f"{'AutoWU':<28} {per_step * np.median(autowu[1:]):>8.2f} {autowu_accuracy:>14.4f}")
    print(f"AutoWU's overhead per step: {np.median(autowu[1:] / fixed[1:]):.3f} x (median of {len(fixed) - 1} paired epochs)")
    print(scheduler.summary())


if __name__ == "__main__":
    main()
