"""First-hour fits, as a new user makes them: AutoWU's defaults against a constant LR.

AutoWU's promise is that there is no learning rate to tune. The paper-claim benchmark
checks it on two tuned-for-the-purpose CNNs; this one checks it on the small fits a
user tries first: MLPs and CNNs on scikit-learn's digits and on MNIST-1D, with SGD,
Adam, AdamW and RMSprop, 5 to 40 epochs, class weights, a regression and a binary
task. Each fit runs with `AutoWU()` at its defaults and with the optimizer at the
learning rate a user would type without tuning (Adam, AdamW, RMSprop: Keras's 1e-3;
SGD with momentum 0.9: 0.05; plain SGD: 0.1), seeds 0, 1 and 2, everything else equal.

For each fit it prints the test metric of both (mean ± standard deviation), the
verdict (AutoWU "lost" when its mean accuracy is more than 1 point below the
constant's, or its mean squared error over 1.25 times the constant's; "won" the other
way round), the runs that died (accuracy under 50 %, or an error no better than
predicting the mean), and what AutoWU did in each run: where the warmup ended and why
(a switch, a diverged warmup, the cap), the learning rate it handed on, and its rescues.

    python benchmarks/user_fits.py [--quick] [--fits NAME ...] [--seeds 0 1 2] [--json PATH]
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.core.keras_compat import keras  # noqa: E402

SEEDS = [0, 1, 2]
# The learning rate a user types without tuning: Keras's default for the adaptive
# optimizers; SGD's default (0.01) is slow for these runs, 0.05 is the common choice.
CONSTANT_LR = {"sgd": 0.05, "sgd_plain": 0.1, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
# AutoWU lost (won) when its mean accuracy is this far below (above) the constant's...
ACCURACY_MARGIN = 0.01
# ...or its mean squared error this many times the constant's (or the other way round).
MSE_RATIO = 1.25


@dataclasses.dataclass(frozen=True)
class Fit:
    name: str
    data: str  # "digits" or "mnist1d"
    model: str  # "mlp", "mlp2" (two hidden layers) or "cnn"
    optimizer: str
    epochs: int
    batch_size: int = 32
    task: str = "classify"  # "classify", "regress" (the digit's value, MSE) or "binary" (odd or even)
    class_weights: bool = False


FITS = [
    Fit("digits-mlp-sgd-5", "digits", "mlp", "sgd", 5),
    Fit("digits-mlp-sgd-20", "digits", "mlp", "sgd", 20),
    Fit("digits-mlp-sgd-40", "digits", "mlp", "sgd", 40),
    Fit("digits-mlp-sgd_plain-20", "digits", "mlp", "sgd_plain", 20),
    Fit("digits-mlp-sgd-20-class_weights", "digits", "mlp", "sgd", 20, class_weights=True),
    Fit("digits-mlp2-adam-10", "digits", "mlp2", "adam", 10),
    Fit("digits-mlp2-adam-20", "digits", "mlp2", "adam", 20),
    Fit("digits-mlp2-adam-30-batch256", "digits", "mlp2", "adam", 30, batch_size=256),
    Fit("digits-mlp2-adamw-20", "digits", "mlp2", "adamw", 20),
    Fit("digits-mlp2-rmsprop-20", "digits", "mlp2", "rmsprop", 20),
    Fit("digits-mlp2-adam-20-regress", "digits", "mlp2", "adam", 20, task="regress"),
    Fit("digits-mlp2-adam-10-binary", "digits", "mlp2", "adam", 10, task="binary"),
    Fit("digits-cnn-adam-10", "digits", "cnn", "adam", 10),
    Fit("digits-cnn-sgd-10", "digits", "cnn", "sgd", 10),
    Fit("mnist1d-mlp2-adam-10", "mnist1d", "mlp2", "adam", 10, batch_size=128),
    Fit("mnist1d-cnn-sgd-10", "mnist1d", "cnn", "sgd", 10, batch_size=128),
]


def load(name, quick=False):
    """(x_train, y_train, x_test, y_test): digits in [0, 1] (8x8, or 64 flat); MNIST-1D
    generated locally (10,000 samples), standardised."""
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x_train, x_test, y_train, y_test = train_test_split(
            (x / 16.0).astype("float32"), y.astype("int32"), test_size=0.2, random_state=0, stratify=y
        )
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = 10_000
        data = make_dataset(args)
        mean, std = data["x"].mean(), data["x"].std()
        x_train, x_test = (((data[k] - mean) / std).astype("float32") for k in ("x", "x_test"))
        y_train, y_test = data["y"].astype("int32"), data["y_test"].astype("int32")
    if quick:
        x_train, y_train = x_train[:512], y_train[:512]
    return x_train, y_train, x_test, y_test


def build_model(fit, input_length, outputs):
    if fit.model == "cnn":
        conv = keras.layers.Conv2D if fit.data == "digits" else keras.layers.Conv1D
        pool = keras.layers.MaxPooling2D if fit.data == "digits" else keras.layers.MaxPooling1D
        shape = (8, 8, 1) if fit.data == "digits" else (input_length, 1)
        layers = [
            keras.Input((input_length,)), keras.layers.Reshape(shape),
            conv(32, 3, padding="same", activation="relu"), conv(32, 3, padding="same", activation="relu"),
            pool(), keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
        ]
    else:
        hidden = 2 if fit.model == "mlp2" else 1
        layers = [keras.Input((input_length,))] + [keras.layers.Dense(128, activation="relu") for _ in range(hidden)]
    return keras.Sequential(layers + [keras.layers.Dense(outputs)])


def make_optimizer(name, learning_rate):
    return {
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "sgd_plain": lambda: keras.optimizers.SGD(learning_rate),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }[name]()


def targets(fit, y):
    if fit.task == "regress":
        return y.astype("float32")
    if fit.task == "binary":
        return (y % 2).astype("float32")
    return y


def train(fit, data, method, seed):
    """One fit; returns its test metric ("accuracy" or "mse") and what AutoWU did."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    outputs = 10 if fit.task == "classify" else 1
    model = build_model(fit, x_train.shape[1], outputs)
    loss = {
        "classify": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        "regress": "mse",
        "binary": keras.losses.BinaryCrossentropy(from_logits=True),
    }[fit.task]
    callbacks = []
    if method == "autowu":
        callbacks.append(autowu := keras_autowu.AutoWU(verbose=0, seed=seed))
    model.compile(optimizer=make_optimizer(fit.optimizer, CONSTANT_LR[fit.optimizer]), loss=loss)
    class_weight = None
    if fit.class_weights:  # a user balancing classes by hand: weights 0.5 to 2
        class_weight = {c: float(w) for c, w in enumerate(np.geomspace(0.5, 2.0, 10))}
    start = time.perf_counter()
    model.fit(
        x_train, targets(fit, y_train), batch_size=fit.batch_size, epochs=fit.epochs,
        callbacks=callbacks, class_weight=class_weight, verbose=0,
    )
    seconds = time.perf_counter() - start
    predictions = model.predict(x_test, batch_size=512, verbose=0)
    run = {"seconds": seconds}
    if fit.task == "regress":
        error = float(np.mean((predictions[:, 0] - targets(fit, y_test)) ** 2))
        run["mse"] = error if np.isfinite(error) else float("inf")
    elif fit.task == "binary":
        run["accuracy"] = float(np.mean((predictions[:, 0] > 0) == (y_test % 2 == 1)))
    else:
        run["accuracy"] = float(np.mean(np.argmax(predictions, axis=-1) == y_test))
    if method == "autowu":
        run.update(what_autowu_did(autowu.scheduler))
    return run


def what_autowu_did(scheduler):
    switch = scheduler.switch
    if switch is None:
        ended = "cap"
    elif scheduler.divergence is not None:
        ended = "diverged"
    else:
        ended = "switch"
    return {
        "ended": ended,
        "warmup_end": int(scheduler.state.warmup_end),
        "total_steps": scheduler.total_steps,
        "handover_lr": float(scheduler.state.decay_base_lr),
        "rescues": len(scheduler.rescues),
    }


def dead(fit, run, y_test):
    if fit.task == "regress":
        return run["mse"] >= float(np.var(y_test))
    return run["accuracy"] < 0.5


def verdict(fit, autowu_runs, constant_runs):
    key = "mse" if fit.task == "regress" else "accuracy"
    a, c = (float(np.mean([r[key] for r in runs])) for runs in (autowu_runs, constant_runs))
    if key == "mse":
        return "lost" if a > MSE_RATIO * c else "won" if c > MSE_RATIO * a else "tie"
    return "lost" if a < c - ACCURACY_MARGIN else "won" if a > c + ACCURACY_MARGIN else "tie"


def describe(runs, key):
    values = [r[key] for r in runs]
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def autowu_notes(runs):
    return "; ".join(
        f"{r['ended']} at {r['warmup_end']}/{r['total_steps']}, lr {r['handover_lr']:.3g}"
        + (f", {r['rescues']} rescue{'s' if r['rescues'] > 1 else ''}" if r["rescues"] else "")
        for r in runs
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 training samples, 2 fits, 1 seed")
    parser.add_argument("--fits", nargs="+", choices=[f.name for f in FITS], help="instead of all")
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--threads", type=int, help="TensorFlow's threads")
    parser.add_argument("--json", help="write the runs here")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    fits = [f for f in FITS if f.name in args.fits] if args.fits else FITS
    seeds = args.seeds
    if args.quick:
        fits, seeds = [FITS[1], FITS[12]], [0]
    start = time.perf_counter()
    datasets, results, tally = {}, {}, {"lost": 0, "tie": 0, "won": 0}
    dead_runs = {"autowu": 0, "constant": 0}
    print(f"{'fit':34s} {'metric':8s} {'AutoWU':>15s} {'constant LR':>15s}  verdict  dead (AutoWU, constant)")
    for fit in fits:
        if fit.data not in datasets:
            datasets[fit.data] = load(fit.data, args.quick)
        data = datasets[fit.data]
        runs = {m: [train(fit, data, m, s) for s in seeds] for m in ("autowu", "constant")}
        key = "mse" if fit.task == "regress" else "accuracy"
        result = verdict(fit, runs["autowu"], runs["constant"])
        tally[result] += 1
        deaths = {m: sum(dead(fit, r, data[3]) for r in runs[m]) for m in runs}
        for m in deaths:
            dead_runs[m] += deaths[m]
        print(
            f"{fit.name:34s} {key:8s} {describe(runs['autowu'], key):>15s} {describe(runs['constant'], key):>15s}"
            f"  {result:7s}  {deaths['autowu']}, {deaths['constant']}",
            flush=True,
        )
        print(f"{'':34s} AutoWU: {autowu_notes(runs['autowu'])}", flush=True)
        results[fit.name] = {"fit": dataclasses.asdict(fit), "verdict": result, "runs": runs}
    total = sum(tally.values())
    print(
        f"\nAutoWU against the constant learning rate over {total} fits, {len(seeds)} seeds each: "
        f"lost {tally['lost']}, tied {tally['tie']}, won {tally['won']}. Runs that died: AutoWU "
        f"{dead_runs['autowu']}, constant {dead_runs['constant']} (of {total * len(seeds)} each)."
    )
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": seeds, "tally": tally, "dead": dead_runs, "fits": results}, f)


if __name__ == "__main__":
    main()
