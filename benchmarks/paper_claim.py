"""The paper's claim on real data: AutoWU, untuned, against tuned warmup + cosine.

Kim et al. report that AutoWU, with no learning rate to choose, matches a linear
warmup + cosine schedule whose peak learning rate was tuned by a grid search, across
batch sizes, and that the learning rate it finds grows close to the square root of the
batch size. This benchmark checks that on two data sets that are made locally, with
the same budget of 20 epochs for every run, SGD (momentum 0.9) and LAMB:

- digits: scikit-learn's handwritten digits (8x8; each training image also shifted by
  one pixel right and down: 4,311 images), a small CNN, batch 32 to 512;
- mnist1d: MNIST-1D (`mnist1d.data.make_dataset`, 25,000 samples: 20,000 to train), a
  small 1-D CNN, batch 128 to 2048.

The methods:

- autowu: AutoWU with its defaults. One run per batch size and seed.
- autowu-gp_minimum: the defaults but the reference's hand-over, `lr_choice="gp_minimum"`.
- autowu-paper: AutoWU(reference=True), the reference's decisions: a test per epoch,
  the GP alone deciding, no guard after the warmup, no roll-back; so is the gain of the
  defaults visible.
- tuned@smallest: linear warmup (10% of the steps) + cosine, peak LR picked by a grid
  search at the smallest batch size (seed 0), scaled by sqrt(batch / smallest).
- tuned@each: the same schedule, its peak LR picked by the grid at every batch size.
- schedule_free: Keras's ScheduleFreeAdamW at its default learning rate (0.0025), what
  a user might reach for instead; its own optimizer, so it has one row per data set.

It reports the validation accuracy (mean and spread over seeds), AutoWU's learning
rate and switch step against the batch size with the fitted log-log slope, whether a
rescue fired, and the number of training runs each method needed; and writes the
results to a JSON file (with the per-step learning rates and losses of seed 0 at the
middle batch size) for `benchmarks/write_report.py`.

    python benchmarks/paper_claim.py [--quick] [--data digits mnist1d] [--json PATH]
"""

import argparse
import ast
import copy
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, velocity_momentum  # noqa: E402

SEEDS, EPOCHS = [0, 1, 2], 20
BATCH_SIZES = {"digits": [32, 64, 128, 256, 512], "mnist1d": [128, 256, 512, 1024, 2048]}
QUICK = dict(seeds=[0], epochs=2, train_samples=1024)
QUICK_BATCH_SIZES = {"digits": [64, 256], "mnist1d": [128, 512]}
GRIDS = {  # peak learning rates for the grid searches
    "sgd": [0.01, 0.03, 0.1, 0.3, 1.0],
    "lamb": [0.003, 0.01, 0.03, 0.1, 0.3],
}
QUICK_GRIDS = {"sgd": [0.03, 0.3], "lamb": [0.01, 0.1]}
WARMUP_FRACTION = 0.1
BASELINE_STEPS_PER_EXECUTION = 16
AUTOWU_VARIANTS = ["autowu", "autowu-gp_minimum", "autowu-paper"]
# What the paper's AutoWU does that keras_autowu's defaults do better.
PAPER_SETTINGS = dict(reference=True)


def autowu_arguments(method):
    """"autowu": the defaults; "autowu-paper": the paper's settings; "autowu-CHOICE":
    lr_choice=CHOICE; "autowu:NAME=VALUE,...": the defaults but these arguments."""
    if method == "autowu":
        return {}
    if method == "autowu-paper":
        return dict(PAPER_SETTINGS)
    if method.startswith("autowu:"):
        pairs = (item.split("=", 1) for item in method.split(":", 1)[1].split(","))
        return {name: ast.literal_eval(value) for name, value in pairs}
    return {"lr_choice": method.split("-", 1)[1]}


def digits(seed=0):
    """Digits in [0, 1], 80/20 split; the training images also shifted by one pixel."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    x_train, x_val, y_train, y_val = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    x_train = np.concatenate([x_train, np.roll(x_train, 1, axis=1), np.roll(x_train, 1, axis=2)])
    y_train = np.tile(y_train, 3)
    return x_train, y_train.astype("int32"), x_val, y_val.astype("int32")


def mnist1d(num_samples=25_000):
    """MNIST-1D, generated (its download is not used), standardised; 80/20 split."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    data = make_dataset(args)
    mean, std = data["x"].mean(), data["x"].std()
    x_train, x_val = ((data[k] - mean) / std for k in ("x", "x_test"))
    return (
        x_train[..., None].astype("float32"), data["y"].astype("int32"),
        x_val[..., None].astype("float32"), data["y_test"].astype("int32"),
    )


def small_cnn(name):
    if name == "digits":
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ])
    return keras.Sequential([
        keras.Input((40, 1)),
        keras.layers.Conv1D(32, 5, padding="same", activation="relu"),
        keras.layers.Conv1D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv1D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def make_optimizer(name, learning_rate):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "schedule_free":
        return keras.optimizers.ScheduleFreeAdamW()
    if IS_KERAS_3:
        return keras.optimizers.Lamb(learning_rate)
    import tensorflow_addons as tfa

    return tfa.optimizers.LAMB(learning_rate)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Ends a fit whose epoch loss is NaN or inf. Keras's TerminateOnNaN checks every
    batch, and a batch-end hook makes Keras 3 wait for each step before the next."""

    def on_epoch_end(self, epoch, logs=None):
        if not np.isfinite(float(logs["loss"])):
            self.model.stop_training = True


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


def train(data, optimizer_name, method, batch_size, seed, epochs, peak_lr=None, record=True):
    """One run; returns its validation accuracy, AutoWU's choices and, if `record`, the
    per-step LRs and losses (a callback at every batch: a fifth of a small run's time)."""
    x_train, y_train, x_val, y_val = data["arrays"]
    keras.utils.set_random_seed(seed)
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    recorder = StepRecorder() if record else None
    callbacks = [recorder] if record else []
    if method.startswith("autowu"):
        learning_rate = 1e-3  # overwritten by AutoWU
        autowu = keras_autowu.AutoWU(verbose=0, seed=seed, **autowu_arguments(method))
        callbacks.append(autowu)
    elif method == "warmup_cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, steps - int(WARMUP_FRACTION * steps), warmup_target=peak_lr,
            warmup_steps=int(WARMUP_FRACTION * steps),
        )
    else:
        learning_rate = peak_lr
    baseline = not method.startswith("autowu")
    if baseline:
        # NaN weights stay NaN: the rest of a baseline's run would change nothing but the
        # time it takes (AutoWU's own runs go on: its guard rescues a NaN).
        callbacks.append(StopOnNonFiniteLoss())
    model = small_cnn(data["name"])
    model.compile(
        optimizer=make_optimizer("schedule_free" if method == "schedule_free" else optimizer_name, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # A baseline's schedule is a function of the step count, so running several
        # steps per call changes nothing but Python's share of a small batch's time
        # (a third at batch 32); AutoWU's runs keep fit's default, as a user's would.
        steps_per_execution=BASELINE_STEPS_PER_EXECUTION if baseline and not record else 1,
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=callbacks, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, batch_size=512, verbose=0)
    run = dict(accuracy=float(accuracy) if np.isfinite(accuracy) else 0.0)
    if record:
        run.update(learning_rates=recorder.learning_rates, losses=recorder.losses)
    if method.startswith("autowu"):
        scheduler = autowu.scheduler
        run["switch_step"] = None if scheduler.switch is None else scheduler.switch.step
        run["found_lr"] = float(scheduler.state.decay_base_lr)
        run["gp_minimum_lr"] = None if scheduler.switch is None else float(scheduler.switch.lr_at_minimum)
        run["diverged_in_warmup"] = scheduler.divergence is not None
        run["rescues"] = len(scheduler.rescues)
        run["total_steps"] = scheduler.total_steps
    return run


def reuses_the_defaults(name, optimizer_name, done):
    """Whether `name`'s runs are those of the defaults, already in `done`: for an
    optimizer that keeps no velocity (LAMB) "momentum_corrected" hands on the GP's
    minimum, as "gp_minimum" does, so the runs are the same (a quarter of AutoWU's runs
    with LAMB; `--quick` runs them anyway and checks)."""
    if name != "autowu-gp_minimum" or "autowu" not in done:
        return False
    return not velocity_momentum(make_optimizer(optimizer_name, 1e-3))


def grid_search(data, optimizer_name, batch_size, grid, epochs, record):
    """The best peak LR of the grid (seed 0) at one batch size, and each point's run."""
    runs = {lr: train(data, optimizer_name, "warmup_cosine", batch_size, 0, epochs, lr, record) for lr in grid}
    return max(runs, key=lambda lr: runs[lr]["accuracy"]), runs


def benchmark(data, optimizer_name, setup, grid, methods):
    batch_sizes, seeds, epochs = setup["batch_sizes"], setup["seeds"], setup["epochs"]
    smallest = batch_sizes[0]
    out = {"grid": grid, "batch_sizes": batch_sizes, "seeds": seeds, "epochs": epochs, "methods": {}}
    tuned_each, grids = {}, {}
    if {"tuned@each", "tuned@smallest"} & set(methods):
        for batch_size in batch_sizes:
            tuned_each[batch_size], grids[batch_size] = grid_search(
                data, optimizer_name, batch_size, grid, epochs, record=batch_size == plotted_batch(batch_sizes)
            )
        best_small = tuned_each[smallest]
        scaled = {b: best_small * np.sqrt(b / smallest) for b in batch_sizes}
        out["grid_accuracy"] = {str(b): {str(lr): r["accuracy"] for lr, r in grids[b].items()} for b in batch_sizes}
    specs = {
        **{name: (name, lambda b: None, 0) for name in methods if name.startswith("autowu")},
        "tuned@smallest": ("warmup_cosine", lambda b: scaled[b], len(grid)),
        "tuned@each": ("warmup_cosine", lambda b: tuned_each[b], len(grid) * len(batch_sizes)),
    }
    for name in methods:
        same_as_defaults = reuses_the_defaults(name, optimizer_name, out["methods"])
        if same_as_defaults and not setup["check_reuse"]:
            out["methods"][name] = copy.deepcopy(out["methods"]["autowu"])
            print(summary_line(f"{data['name']} {optimizer_name}", name, out["methods"][name], batch_sizes) + "  (the defaults' runs)", flush=True)
            continue
        method, peak, tuning_runs = specs[name]
        runs = {}
        for b in batch_sizes:
            runs[str(b)] = []
            for s in seeds:
                if method == "warmup_cosine" and s == 0 and peak(b) in grids[b]:
                    run = dict(grids[b][peak(b)])  # the grid already ran it
                else:
                    run = train(data, optimizer_name, method, b, s, epochs, peak(b), record=is_plotted(b, s, setup))
                runs[str(b)].append(run)
        out["methods"][name] = {
            "runs": runs,
            "peak_lr": {str(b): peak(b) for b in batch_sizes},
            # Tuning runs, then one run per batch size (the per-seed repeats measure spread).
            "training_runs": tuning_runs + len(batch_sizes),
        }
        keep_traces_of_one_run(runs, batch_sizes)
        print(summary_line(f"{data['name']} {optimizer_name}", name, out["methods"][name], batch_sizes), flush=True)
        if same_as_defaults:  # --quick: check that the reuse holds
            ran, reused = (
                [[(r["accuracy"], r["found_lr"]) for r in out["methods"][m]["runs"][str(b)]] for b in batch_sizes]
                for m in (name, "autowu")
            )
            if ran != reused:
                raise AssertionError(f"{name} with {optimizer_name} differs from the defaults: {ran} against {reused}")
    if "autowu" in out["methods"]:
        found = [np.mean([r["found_lr"] for r in out["methods"]["autowu"]["runs"][str(b)]]) for b in batch_sizes]
        out["autowu_lr_slope"] = float(np.polyfit(np.log(batch_sizes), np.log(found), 1)[0]) if len(batch_sizes) > 1 else None
        if out["autowu_lr_slope"] is not None:
            print(f"{data['name']} {optimizer_name}: AutoWU's LR against batch size, log-log slope {out['autowu_lr_slope']:.2f} (sqrt: 0.5)")
    return out


def schedule_free(data, setup):
    """ScheduleFreeAdamW at its default learning rate: one row per data set."""
    runs = {
        str(b): [train(data, None, "schedule_free", b, s, setup["epochs"], record=is_plotted(b, s, setup)) for s in setup["seeds"]]
        for b in setup["batch_sizes"]
    }
    keep_traces_of_one_run(runs, setup["batch_sizes"])
    method = {"runs": runs, "training_runs": len(setup["batch_sizes"])}
    print(summary_line(data["name"], "schedule_free", method, setup["batch_sizes"]), flush=True)
    return method


def plotted_batch(batch_sizes):
    return batch_sizes[len(batch_sizes) // 2]


def is_plotted(batch_size, seed, setup):
    """Whether this is the run whose per-step traces the report plots: the first seed
    at the middle batch size."""
    return batch_size == plotted_batch(setup["batch_sizes"]) and seed == setup["seeds"][0]


def keep_traces_of_one_run(runs, batch_sizes):
    """Per-step traces only for seed 0 at the middle batch size (the plotted run)."""
    plotted = str(plotted_batch(batch_sizes))
    for batch_size, seed_runs in runs.items():
        for index, run in enumerate(seed_runs):
            if (batch_size, index) != (plotted, 0):
                run.pop("learning_rates", None), run.pop("losses", None)
            else:
                run["learning_rates"] = [float(f"{v:.4g}") for v in run["learning_rates"]]
                run["losses"] = [float(f"{v:.4g}") for v in run["losses"]]


def summary_line(label, name, method, batch_sizes):
    cells = []
    for b in batch_sizes:
        runs = method["runs"][str(b)]
        accuracies = [r["accuracy"] for r in runs]
        rescued = sum(r.get("rescues", 0) > 0 for r in runs)
        cells.append(f"{b}: {np.mean(accuracies):.3f}±{np.std(accuracies):.3f}" + (f" (rescued {rescued})" if rescued else ""))
    return f"{label:12s} {name:18s} runs {method['training_runs']:2d}  " + "  ".join(cells)


def load(name, quick):
    arrays = digits() if name == "digits" else mnist1d()
    if quick:
        n = QUICK["train_samples"]
        arrays = (arrays[0][:n], arrays[1][:n], *arrays[2:])
    return {"name": name, "arrays": arrays}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024 samples, 2 batch sizes, 1 seed, 2 epochs, 2-point grids")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--data", nargs="+", default=["digits", "mnist1d"], choices=list(BATCH_SIZES))
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "lamb"], choices=["sgd", "lamb"])
    parser.add_argument("--methods", nargs="+", default=[*AUTOWU_VARIANTS, "tuned@smallest", "tuned@each"])
    parser.add_argument("--seeds", nargs="+", type=int, help="instead of 0 1 2")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="instead of each data set's five")
    parser.add_argument("--threads", type=int, help="TensorFlow's threads (two benchmarks side by side: 1 each)")
    parser.add_argument("--no-schedule-free", action="store_true", help="leave out ScheduleFreeAdamW")
    parser.add_argument(
        "--update", action="store_true",
        help="rerun only --methods and replace their results in the --json file, keeping the rest "
        "(after a change that touches only those methods)",
    )
    args = parser.parse_args()
    if args.update and not (args.json and os.path.exists(args.json)):
        parser.error(f"--update needs an existing --json file; got --json={args.json!r}")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    grids = QUICK_GRIDS if args.quick else GRIDS
    start = time.perf_counter()
    results = {"datasets": {}}
    for name in args.data:
        data = load(name, args.quick)
        print(f"{name}: {len(data['arrays'][0])} training samples, {len(data['arrays'][2])} validation samples")
        setup = dict(
            batch_sizes=args.batch_sizes or (QUICK_BATCH_SIZES if args.quick else BATCH_SIZES)[name],
            seeds=args.seeds or (QUICK["seeds"] if args.quick else SEEDS),
            epochs=QUICK["epochs"] if args.quick else EPOCHS,
            check_reuse=args.quick,
        )
        result = {opt: benchmark(data, opt, setup, grids[opt], args.methods) for opt in args.optimizers}
        if not args.no_schedule_free and hasattr(keras.optimizers, "ScheduleFreeAdamW"):  # Keras >= 3.14
            result["schedule_free"] = schedule_free(data, setup)
        result["train_samples"], result["validation_samples"] = len(data["arrays"][0]), len(data["arrays"][2])
        results["datasets"][name] = result
    results["seconds"] = time.perf_counter() - start
    print(f"{results['seconds']:.0f} s")
    if args.update:
        results = updated(args.json, results, args.methods)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)


def updated(path, new, methods):
    """The results in `path` with `methods` replaced by the `new` run's; the run's time
    is noted under "updates", its "seconds" stay those of the full run."""
    with open(path) as f:
        results = json.load(f)
    for name, result in new["datasets"].items():
        for optimizer, res in result.items():
            if isinstance(res, dict) and "methods" in res:
                old = results["datasets"][name][optimizer]
                old["methods"].update(res["methods"])
                if "autowu_lr_slope" in res:
                    old["autowu_lr_slope"] = res["autowu_lr_slope"]
    results.setdefault("updates", []).append({"methods": methods, "seconds": new["seconds"]})
    return results


if __name__ == "__main__":
    main()
