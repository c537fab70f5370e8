"""What AutoWU costs per step and per epoch, against a fixed Keras schedule.

Per step: the model's compiled train function alone, with AutoWU's in-graph step and
with Keras's CosineDecay with warmup, called alternately on chunks of steps (an
epoch's worth) many times; the median of the paired ratios. This is the precise
figure: machine noise moves a whole epoch's time by a few %, more than the effect.

Per epoch: the same model is trained with AutoWU and with SGD on Keras's CosineDecay with warmup,
in one process, alternating epoch by epoch: the two fits run in two threads that hand
a baton over at every epoch's end, so each AutoWU epoch is paired with a fixed-schedule
epoch run just before it, under the same machine load. An epoch's time runs from its
`on_epoch_begin` to its `on_epoch_end`, AutoWU's test included; the first epoch of each
fit, which traces and compiles, is left out, and so is the first repeat (the GP test
compiles in it). Python's garbage collector is paused while timing: its pauses, up to
a few hundred ms, would land on either side at random.

AutoWU costs twice: a few ops in every step, and, at every test interval (1/20 of
the longest warmup by default), a GP test in the warmup or the guard's check after it,
with a copy of the weights when the loss is the lowest so far. Both tables cover a
tiny model (the worst case: the least work per step to hide AutoWU's) and a small
CNN, with steps_per_execution 1 and 32. In the second:

- fixed ms, AutoWU ms: median epoch times, and ratio: the median of their paired
  ratios, over all epochs (tests and checks fall within epochs);
- GP tests, checks: how many GP tests, and how many checks in all (GP tests and the
  guard's), a run made;
- total: the ratio of whole runs' times (the median over the repeats).

On the backend that KERAS_BACKEND names (TensorFlow by default). The per-step table
calls TensorFlow's train function directly, so it is TensorFlow's only; on JAX the
per-epoch table gives the overhead.

    [KERAS_BACKEND=jax] python benchmarks/training_overhead.py [--quick]
"""

import argparse
import gc
import os
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.core.keras_compat import BACKEND, keras, tf  # noqa: E402


class Baton:
    """Lets two threads take turns: whoever holds it runs an epoch."""

    def __init__(self):
        self._condition = threading.Condition()
        self._holder = 0

    def take(self, who):
        with self._condition:
            self._condition.wait_for(lambda: self._holder == who)

    def hand_over(self, who):
        with self._condition:
            self._holder = 1 - who
            self._condition.notify_all()


class EpochStart(keras.callbacks.Callback):
    """First in the list: waits for the baton, then starts the clock."""

    def __init__(self, baton, who):
        super().__init__()
        self.baton, self.who, self.started = baton, who, None

    def on_epoch_begin(self, epoch, logs=None):
        self.baton.take(self.who)
        self.started = time.perf_counter()


class EpochEnd(keras.callbacks.Callback):
    """Last in the list: stops the clock (after AutoWU's test), hands the baton on."""

    def __init__(self, start, baton, who):
        super().__init__()
        self.start, self.baton, self.who, self.seconds = start, baton, who, []

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start.started)
        self.baton.hand_over(self.who)


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


def compiled_model(make_model, steps, steps_per_execution, use_autowu):
    if use_autowu:
        optimizer = keras.optimizers.SGD(momentum=0.9)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=steps, warmup_target=0.1, warmup_steps=steps // 10)
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    model = make_model()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


def step_microseconds(make_model, x, y, batch_size, steps_per_execution, pairs):
    """Median time per step (fixed, AutoWU) of the train functions alone, and the
    median of the paired ratios; chunks of one epoch, alternating."""
    steps_per_epoch = len(x) // batch_size
    calls = steps_per_epoch // steps_per_execution
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True).repeat()
    models = []
    for use_autowu in (False, True):
        model = compiled_model(make_model, 10 * steps_per_epoch, steps_per_execution, use_autowu)
        if use_autowu:  # what fit() does before the first step
            autowu = keras_autowu.AutoWU(verbose=0)
            autowu.set_model(model)
            autowu.set_params({"steps": steps_per_epoch, "epochs": 10})
            autowu.on_train_begin()
            autowu.on_epoch_begin(0)
        else:
            model.make_train_function()
        models.append((model.train_function, iter(batches)))
    seconds = np.zeros((pairs + 1, 2))
    gc.collect()
    for pair in range(pairs + 1):  # pair 0 traces and compiles
        for which, (train_function, iterator) in enumerate(models):
            start = time.perf_counter()
            for _ in range(calls):
                logs = train_function(iterator)
            tf.nest.map_structure(lambda t: t.numpy(), logs)  # wait for the last step
            seconds[pair, which] = time.perf_counter() - start
    seconds = seconds[1:] / (calls * steps_per_execution)
    return 1e6 * np.median(seconds, axis=0), np.median(seconds[:, 1] / seconds[:, 0])


def paired_epoch_seconds(make_model, x, y, batch_size, steps_per_execution, epochs):
    """Epoch times (fixed, AutoWU), and AutoWU's GP tests and checks (GP tests and the
    guard's checks) in the run; the fits alternate epoch by epoch."""
    steps = epochs * (len(x) // batch_size)
    baton, clocks, errors, counts = Baton(), {}, [], []

    def fit(who):
        use_autowu = who == 1
        try:
            model = compiled_model(make_model, steps, steps_per_execution, use_autowu)
            start = EpochStart(baton, who)
            clocks[who] = end = EpochEnd(start, baton, who)
            autowu = [keras_autowu.AutoWU(verbose=0)] if use_autowu else []
            model.fit(x, y, batch_size=batch_size, epochs=epochs, callbacks=[start, *autowu, end],
                      verbose=0, shuffle=False)
            if use_autowu:
                scheduler = autowu[0].scheduler
                counts.append((len(scheduler.tests), scheduler.steps_done // scheduler.test_interval))
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
    return np.array(clocks[0].seconds), np.array(clocks[1].seconds), counts[0]


def main():
    gc.disable()  # collected between the timed runs instead
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats, for CI")
    args = parser.parse_args()
    epochs, repeats, pairs = (3, 1, 3) if args.quick else (12, 8, 100)
    models = (("tiny", tiny_model), ("small CNN", small_cnn))
    rng = np.random.default_rng(0)
    version = tf.__version__ if tf is not None else __import__(BACKEND).__version__
    print(f"{os.cpu_count()} cores; Keras {keras.__version__} on {BACKEND} {version}")
    if tf is not None:
        print(f"\nPer step: the train function alone, {pairs} pairs of one epoch's steps, alternating")
        print(f"{'model':<10} {'steps/exec':>10} {'fixed us':>9} {'AutoWU us':>10} {'ratio':>6}")
        for kind, make_model in models:
            x, y, batch_size = data(kind.split()[0], rng)
            for steps_per_execution in (1, 32):
                (fixed, autowu), ratio = step_microseconds(make_model, x, y, batch_size, steps_per_execution, pairs)
                print(f"{kind:<10} {steps_per_execution:>10} {fixed:>9.1f} {autowu:>10.1f} {ratio:>6.3f}")
    print(f"\nPer epoch: whole fits, {epochs} epochs x {repeats} repeats, epochs alternating")
    print(f"{'model':<10} {'steps/exec':>10} {'steps/epoch':>11} {'fixed ms':>9} {'AutoWU ms':>10} "
          f"{'ratio':>6} {'GP tests':>8} {'checks':>6} {'total':>6}")
    for kind, make_model in models:
        x, y, batch_size = data(kind.split()[0], rng)
        for steps_per_execution in (1, 32):
            fixed, autowu, totals, counts = [], [], [], []
            for repeat in range(repeats + 1):
                gc.collect()
                f, a, c = paired_epoch_seconds(make_model, x, y, batch_size, steps_per_execution, epochs)
                if repeat == 0:
                    continue
                counts.append(c)
                # The first epoch traces and compiles: left out.
                fixed.append(f[1:])
                autowu.append(a[1:])
                totals.append(a[1:].sum() / f[1:].sum())
            fixed, autowu = np.concatenate(fixed), np.concatenate(autowu)
            tests, checks = np.mean(counts, axis=0)
            print(f"{kind:<10} {steps_per_execution:>10} {len(x) // batch_size:>11} "
                  f"{1e3 * np.median(fixed):>9.1f} {1e3 * np.median(autowu):>10.1f} "
                  f"{np.median(autowu / fixed):>6.3f} {tests:>8.1f} {checks:>6.1f} {np.median(totals):>6.3f}")


if __name__ == "__main__":
    main()
