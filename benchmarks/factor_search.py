"""Factor search on real data: the seed's comparison, its sensitivity to the starting
learning rate, and its cost.

- compare: factor search (probing along the optimizer's update, the default, and
  along the raw gradient, the seed's) against a constant learning rate and linear,
  cosine and step decay from the same starting learning rate, with SGD (momentum
  0.9) and Adam; AutoWU too, which needs no starting learning rate. Validation
  accuracy, mean ± standard deviation over seeds 0, 1, 2; "dead": runs below 50 %.
- sensitivity: the same with starting learning rates 1e-4 to 1 (seed 0).
- cost: the fit's time with factor search against a constant learning rate (one
  update per epoch, the default), and the peak memory of a fit of a model with about
  4.2 and 33.6 million weights with and without it, each in its own process.

    python benchmarks/factor_search.py [--data digits mnist1d] [--parts compare sensitivity cost] [--quick]
"""

import argparse
import math
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.core.keras_compat import keras  # noqa: E402
from keras_autowu.factor_search.probe import STEPS_TO_RESULT  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paper_claim import digits, mnist1d, small_cnn  # noqa: E402

EPOCHS = 20
BATCH_SIZE = {"digits": 32, "mnist1d": 128}  # the seed's batch is 32
START = {"sgd": 0.01, "adam": 0.001}
METHODS = ["factor_search", "factor_search_gradient", "constant", "linear", "cosine", "step", "autowu"]
SENSITIVITY_STARTS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
SENSITIVITY_METHODS = ["factor_search", "constant", "cosine"]


def optimizer(name, learning_rate):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate)


def schedule(method, start, steps):
    if method == "linear":
        return keras.optimizers.schedules.PolynomialDecay(start, steps, end_learning_rate=0.0)
    if method == "cosine":
        return keras.optimizers.schedules.CosineDecay(start, steps)
    if method == "step":  # x0.1 at half and at three quarters of the run
        return keras.optimizers.schedules.PiecewiseConstantDecay([steps // 2, 3 * steps // 4], [start, start / 10, start / 100])
    return start


def train(data, optimizer_name, method, start, seed, epochs):
    x_train, y_train, x_val, y_val = data["arrays"]
    batch = BATCH_SIZE[data["name"]]
    steps = epochs * int(np.ceil(len(x_train) / batch))
    keras.utils.set_random_seed(seed)
    callbacks = []
    if method.startswith("factor_search"):
        direction = "gradient" if method.endswith("gradient") else "update"
        callbacks.append(keras_autowu.FactorSearch(direction=direction, seed=seed, verbose=0))
    elif method == "autowu":
        callbacks.append(keras_autowu.AutoWU(seed=seed, verbose=0))
    model = small_cnn(data["name"])
    model.compile(
        optimizer=optimizer(optimizer_name, schedule(method, start, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs, callbacks=callbacks, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, batch_size=512, verbose=0)
    return float(accuracy) if np.isfinite(accuracy) else 0.0


def cell(accuracies):
    dead = sum(a < 0.5 for a in accuracies)
    text = f"{np.mean(accuracies):.3f}±{np.std(accuracies):.3f}"
    return text + (f" ({dead} dead)" if dead else "")


def compare(data, seeds, epochs):
    print(f"\n{data['name']}: validation accuracy, batch {BATCH_SIZE[data['name']]}, {epochs} epochs, seeds {seeds}")
    print(f"{'method':24s} " + "  ".join(f"{o} from {START[o]:g}".ljust(22) for o in START))
    for method in METHODS:
        cells = [cell([train(data, o, method, START[o], s, epochs) for s in seeds]) for o in START]
        print(f"{method:24s} " + "  ".join(c.ljust(22) for c in cells), flush=True)


def sensitivity(data, epochs):
    print(f"\n{data['name']}: validation accuracy against the starting learning rate (seed 0)")
    for optimizer_name in START:
        print(f"{optimizer_name:5s} {'method':16s} " + " ".join(f"{s:>7g}" for s in SENSITIVITY_STARTS))
        for method in SENSITIVITY_METHODS:
            row = [train(data, optimizer_name, method, s, 0, epochs) for s in SENSITIVITY_STARTS]
            print(f"{optimizer_name:5s} {method:16s} " + " ".join(f"{a:7.3f}" for a in row), flush=True)


class StepTimer(keras.callbacks.Callback):
    """The time each step of each epoch begins at, then the epoch's end."""

    def on_train_begin(self, logs=None):
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self.epochs[-1].append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[-1].append(time.perf_counter())


def cost(data, repeats=5):
    """Epoch times of the same fit with factor search and at a constant LR, the methods
    taking turns within each repeat, and the time of an update's own steps against the
    other steps of its epoch, which a slow spell of a shared machine hits alike."""
    x_train, y_train, _, _ = data["arrays"]
    batch = BATCH_SIZE[data["name"]]
    epochs = 6
    steps_per_epoch = math.ceil(len(x_train) / batch)
    print(f"\n{data['name']}: cost, batch {batch}, {epochs} epochs x {repeats} repeats, methods in turn (first epoch left out: it traces)")
    methods = ["constant", "factor_search", "factor_search_gradient"]
    epoch_times = {method: [] for method in methods}
    update_costs = {method: [] for method in methods[1:]}
    for repeat in range(repeats):
        for method in methods:
            keras.utils.set_random_seed(repeat)
            model = small_cnn(data["name"])
            model.compile(optimizer("sgd", 0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            timer = StepTimer()
            callbacks = [timer]
            if method != "constant":
                direction = "gradient" if method.endswith("gradient") else "update"
                callbacks.insert(0, keras_autowu.FactorSearch(direction=direction, verbose=0))
            model.fit(x_train, y_train, batch_size=batch, epochs=epochs, callbacks=callbacks, verbose=0)
            epoch_times[method] += [ends[-1] - ends[0] for ends in timer.epochs[1:]]
            if method != "constant":
                # Every epoch after the first begins with an update (one per epoch).
                update_costs[method] += [update_cost(ends, STEPS_TO_RESULT[direction]) for ends in timer.epochs[1:]]
    # Noise on a shared machine only adds time: the fastest epoch is the cost without it.
    base, fastest_base = np.median(epoch_times["constant"]), np.min(epoch_times["constant"])
    for method, times in epoch_times.items():
        seconds, fastest = np.median(times), np.min(times)
        print(
            f"{method:24s} epoch {seconds * 1000:8.1f} ms  ratio {seconds / base:.3f};  fastest epoch "
            f"{fastest * 1000:8.1f} ms  ratio {fastest / fastest_base:.3f}"
        )
    print("an update's own cost: its steps' time less as many of the epoch's other steps (median, median step)")
    for method, costs in update_costs.items():
        extra, step = np.median([c[0] for c in costs]), np.median([c[1] for c in costs])
        print(
            f"{method:24s} {extra * 1000:6.1f} ms an update, {extra / step:4.1f} steps' time: "
            f"{100 * extra / (steps_per_epoch * step):.1f} % of a {steps_per_epoch}-step epoch at one update per epoch"
        )


def update_cost(ends, span):
    """The extra time of an epoch's first `span` steps, and the epoch's median step.

    `ends`: the times at which each step of the epoch began, then the epoch's end."""
    durations = np.diff(ends)
    step = np.median(durations[span:])
    return float(np.sum(durations[:span]) - span * step), float(step)


MEMORY_SCRIPT = """
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras_autowu
from keras_autowu.core.keras_compat import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(int(sys.argv[3]), activation="relu"),
                          keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(10)])
model.compile(keras.optimizers.SGD(0.01, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).standard_normal((2048, 1024)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
rollback = sys.argv[2] == "rollback"
callbacks = [keras_autowu.FactorSearch(direction=sys.argv[1], update_interval=4, rollback_on_divergence=rollback, verbose=0)] if sys.argv[1] != "none" else []
model.fit(x, y, batch_size=256, epochs=4, callbacks=callbacks, verbose=0)
print(model.count_params(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


MEMORY_WIDTHS = (2048, 16384)  # hidden widths: about 4.2 and 33.6 million weights
MEMORY_REPEATS = 2  # the least peak of these, each in its own process
# A fixed mmap threshold: every large buffer is mapped on allocation and unmapped when
# freed, so that the peak RSS follows the buffers alive (glibc's moving threshold
# otherwise keeps freed buffers in the heap, and the peak varied by 2x run to run).
MEMORY_ENV = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def memory():
    print(f"\nPeak memory (max RSS) of a 4-epoch fit (32 probes), the least of {MEMORY_REPEATS} processes; SGD with momentum.")
    print("The extra memory as a multiple of the weights holds the probe's buffers plus a fixed part (the")
    print("second train function's code and trace), which the larger model makes small.")
    runs = [("none", ""), ("update", "no"), ("gradient", "no"), ("update", "rollback")]
    peak, params = {}, {}
    for width in MEMORY_WIDTHS:
        for direction, rollback in runs:
            for _ in range(MEMORY_REPEATS):
                out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, direction, rollback, str(width)], capture_output=True, text=True, check=True, env=MEMORY_ENV)
                params[width], kib = map(int, out.stdout.split()[-2:])
                key = (width, direction, rollback)
                peak[key] = min(peak.get(key, math.inf), kib / 1024)
    for width in MEMORY_WIDTHS:
        weights_mib = params[width] * 4 / 2**20
        print(f"\nmodel of width {width}: {params[width]:,} weights ({weights_mib:.1f} MiB as float32)")
        base = peak[(width, "none", "")]
        print(f"{'plain fit':52s} {base:8.1f} MiB")
        for direction, rollback in runs[1:]:
            mib = peak[(width, direction, rollback)]
            label = f"factor search, {direction}, " + ("roll-back snapshots (default)" if rollback == "rollback" else "no roll-back")
            print(f"{label:52s} {mib:8.1f} MiB  extra {mib - base:+7.1f} MiB = {(mib - base) / weights_mib:.1f} x the weights")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "mnist1d"], choices=["digits", "mnist1d"])
    parser.add_argument("--parts", nargs="+", default=["compare", "sensitivity", "cost"], choices=["compare", "sensitivity", "cost"])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    seeds, epochs = ([0], 2) if args.quick else ([0, 1, 2], EPOCHS)
    start = time.perf_counter()
    for name in args.data:
        data = {"name": name, "arrays": digits() if name == "digits" else mnist1d()}
        if "compare" in args.parts:
            compare(data, seeds, epochs)
        if "sensitivity" in args.parts:
            sensitivity(data, epochs)
        if "cost" in args.parts:
            cost(data, repeats=1 if args.quick else 5)
    if "cost" in args.parts:
        memory()
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
