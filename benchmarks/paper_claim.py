"""The paper's claim on real data: AutoWU, untuned, against tuned warmup + cosine.

Kim et al. report that AutoWU, with no learning rate to choose, matches a linear
warmup + cosine schedule whose peak learning rate was tuned by a grid search, across
batch sizes, and that the learning rate it finds grows close to the square root of the
batch size. This benchmark checks that on scikit-learn's handwritten digits (8x8,
each training image also shifted by one pixel right and down: 3x the images), with a
small CNN, the same budget of 20 epochs for every run, SGD (momentum 0.9) and LAMB,
and:

- autowu: AutoWU with its defaults, except that it tests every 1/20 of its longest
  warmup instead of once per epoch: a 20-epoch run has only 10 epochs of warmup, too
  few tests for three positives in a row at these run lengths. One run per batch
  size and seed.
- tuned@smallest: linear warmup (10% of the steps) + cosine, peak LR picked by a grid
  search at the smallest batch size (seed 0), scaled by sqrt(batch / smallest).
- tuned@each: the same schedule, its peak LR picked by the grid at every batch size.
- plateau: ReduceLROnPlateau (factor 0.5, patience 2) from the sqrt-scaled tuned LR.
- constant: the sqrt-scaled tuned LR throughout.

It reports the validation accuracy (mean and spread over seeds), AutoWU's LR and
switch step against the batch size with the fitted log-log slope, and the number of
training runs each method needed; and writes the results to a JSON file (with the
per-step learning rates and losses of seed 0 at the middle batch size) for
`benchmarks/write_report.py`.

    python benchmarks/paper_claim.py [--quick] [--json PATH]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu._keras import IS_KERAS_3, keras  # noqa: E402

FULL = dict(batch_sizes=[32, 64, 128, 256, 512], seeds=[0, 1, 2], epochs=20, train_images=None)
QUICK = dict(batch_sizes=[64, 256], seeds=[0], epochs=2, train_images=1024)
GRIDS = {  # peak learning rates for the grid searches
    "sgd": [0.01, 0.03, 0.1, 0.3, 1.0],
    "lamb": [0.003, 0.01, 0.03, 0.1, 0.3],
}
QUICK_GRIDS = {"sgd": [0.03, 0.3], "lamb": [0.01, 0.1]}
WARMUP_FRACTION = 0.1


def digits(seed=0):
    """Digits in [0, 1], 80/20 split; the training images also shifted by one pixel."""
    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    x_train = np.concatenate([x_train, np.roll(x_train, 1, axis=1), np.roll(x_train, 1, axis=2)])
    y_train = np.tile(y_train, 3)
    return x_train, y_train.astype("int32"), x_val, y_val.astype("int32")


def small_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def make_optimizer(name, learning_rate):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if IS_KERAS_3:
        return keras.optimizers.Lamb(learning_rate)
    import tensorflow_addons as tfa

    return tfa.optimizers.LAMB(learning_rate)


class StepRecorder(keras.callbacks.Callback):
    """Each step's loss (Keras logs a running mean per epoch: undo it) and LR."""

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean, self._batches = 0.0, 0

    def on_train_begin(self, logs=None):
        self.losses, self.learning_rates = [], []

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self._batches += 1
        self.losses.append(mean * self._batches - self._previous_mean * (self._batches - 1))
        self._previous_mean = mean
        self.learning_rates.append(float(tf.convert_to_tensor(self.model.optimizer.learning_rate)))


def train(data, optimizer_name, method, batch_size, seed, epochs, peak_lr=None):
    """One run; returns its validation accuracy, per-step LRs and losses, and AutoWU's switch."""
    x_train, y_train, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    callbacks = [recorder := StepRecorder()]
    if method == "autowu":
        learning_rate = 1e-3  # overwritten by AutoWU
        test_interval = max(1, int(0.5 * steps) // 20)  # 1/20 of the default longest warmup
        callbacks.append(autowu := keras_autowu.AutoWU(verbose=0, seed=seed, test_interval=test_interval))
    elif method == "warmup_cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, steps - int(WARMUP_FRACTION * steps), warmup_target=peak_lr,
            warmup_steps=int(WARMUP_FRACTION * steps),
        )
    else:
        learning_rate = peak_lr
        if method == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, verbose=0))
    model = small_cnn()
    model.compile(
        optimizer=make_optimizer(optimizer_name, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=callbacks, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, batch_size=512, verbose=0)
    run = dict(
        accuracy=float(accuracy) if np.isfinite(accuracy) else 0.0,
        learning_rates=recorder.learning_rates,
        losses=recorder.losses,
    )
    if method == "autowu":
        switch = autowu.scheduler.switch
        run["switch_step"] = None if switch is None else switch.step
        run["found_lr"] = float(autowu.scheduler.state.decay_base_lr)
        run["total_steps"] = autowu.scheduler.total_steps
    return run


def grid_search(data, optimizer_name, batch_size, grid, epochs):
    """The best peak LR of the grid (seed 0) at one batch size, and each point's accuracy."""
    results = {lr: train(data, optimizer_name, "warmup_cosine", batch_size, 0, epochs, lr)["accuracy"] for lr in grid}
    return max(results, key=results.get), results


def benchmark(optimizer_name, setup, grid, data):
    batch_sizes, seeds, epochs = setup["batch_sizes"], setup["seeds"], setup["epochs"]
    smallest = batch_sizes[0]
    out = {"grid": grid, "batch_sizes": batch_sizes, "seeds": seeds, "epochs": epochs, "methods": {}}
    tuned_each, grids = {}, {}
    for batch_size in batch_sizes:
        tuned_each[batch_size], grids[batch_size] = grid_search(data, optimizer_name, batch_size, grid, epochs)
    best_small = tuned_each[smallest]
    scaled = {b: best_small * np.sqrt(b / smallest) for b in batch_sizes}
    out["grid_accuracy"] = {str(b): {str(lr): a for lr, a in grids[b].items()} for b in batch_sizes}
    methods = {
        "autowu": ("autowu", lambda b: None, 0),
        "tuned@smallest": ("warmup_cosine", lambda b: scaled[b], len(grid)),
        "tuned@each": ("warmup_cosine", lambda b: tuned_each[b], len(grid) * len(batch_sizes)),
        "plateau": ("plateau", lambda b: scaled[b], len(grid)),
        "constant": ("constant", lambda b: scaled[b], len(grid)),
    }
    for name, (method, peak, tuning_runs) in methods.items():
        runs = {str(b): [train(data, optimizer_name, method, b, s, epochs, peak(b)) for s in seeds] for b in batch_sizes}
        keep_traces_of_one_run(runs, batch_sizes)
        out["methods"][name] = {
            "runs": runs,
            "peak_lr": {str(b): peak(b) for b in batch_sizes},
            # Tuning runs, then one run per batch size (the per-seed repeats measure spread).
            "training_runs": tuning_runs + len(batch_sizes),
        }
        print(summary_line(optimizer_name, name, out["methods"][name], batch_sizes), flush=True)
    found = [np.mean([r["found_lr"] for r in out["methods"]["autowu"]["runs"][str(b)]]) for b in batch_sizes]
    out["autowu_lr_slope"] = float(np.polyfit(np.log(batch_sizes), np.log(found), 1)[0]) if len(batch_sizes) > 1 else None
    print(f"{optimizer_name}: AutoWU's LR against batch size, log-log slope {out['autowu_lr_slope']:.2f} (sqrt: 0.5)")
    return out


def keep_traces_of_one_run(runs, batch_sizes):
    """Per-step traces only for seed 0 at the middle batch size (the plotted run)."""
    plotted = str(batch_sizes[len(batch_sizes) // 2])
    for batch_size, seed_runs in runs.items():
        for index, run in enumerate(seed_runs):
            if (batch_size, index) != (plotted, 0):
                del run["learning_rates"], run["losses"]
            else:
                run["learning_rates"] = [float(f"{v:.4g}") for v in run["learning_rates"]]
                run["losses"] = [float(f"{v:.4g}") for v in run["losses"]]


def summary_line(optimizer_name, name, method, batch_sizes):
    cells = []
    for b in batch_sizes:
        accuracies = [r["accuracy"] for r in method["runs"][str(b)]]
        cells.append(f"{b}: {np.mean(accuracies):.3f}±{np.std(accuracies):.3f}")
    return f"{optimizer_name:4s} {name:15s} runs {method['training_runs']:2d}  " + "  ".join(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024 images, 2 batch sizes, 1 seed, 2 epochs, 2-point grids")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "lamb"], choices=["sgd", "lamb"])
    args = parser.parse_args()
    setup, grids = (QUICK, QUICK_GRIDS) if args.quick else (FULL, GRIDS)
    data = digits()
    if setup["train_images"]:
        data = (data[0][: setup["train_images"]], data[1][: setup["train_images"]], *data[2:])
    print(f"digits: {len(data[0])} training images (with shifts), {len(data[2])} validation images")
    start = time.perf_counter()
    results = {name: benchmark(name, setup, grids[name], data) for name in args.optimizers}
    results["seconds"] = time.perf_counter() - start
    print(f"{results['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
