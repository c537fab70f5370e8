"""AutoLRS on real data: the paper's measure, and its cost.

- speedup: the steps each method needs, exploration included, to reach the final
  validation accuracy of a cosine schedule whose peak learning rate was grid-searched
  (seed 0, on the final accuracy); the paper reports 1.22x to 1.5x against hand-tuned
  schedules. AutoLRS (defaults) and AutoWU (defaults), seeds 0, 1, 2, on three tasks:
  scikit-learn's digits and MNIST-1D with small CNNs and SGD (momentum 0.9; AutoLRS
  searches 1e-4 to 1), and a small Transformer encoder (two blocks, 77,000 weights)
  that learns to sort sequences of 24 tokens out of 64, with Adam (AutoLRS searches
  1e-5 to 0.1; accuracy per token). Accuracy is read at each epoch's end; for AutoLRS
  only at epochs that end on trained weights, not on an explored learning rate's
  (which the next restore throws away).
- cost: the time AutoLRS's decisions take per stage (the forecasts and the search)
  against the stage's training time, and the time of one restore of the stage
  checkpoint, on the benchmark's model and on one of about four million weights.
- faithfulness: on the loss series that the cost run explored, the package's forecast
  (`forecast="reference"` and the default "bounded") against the reference's own
  computation with SciPy's spline and Nelder-Mead (tests/reference_forecast.py), and
  whether each stage would choose the same learning rate.

    python benchmarks/autolrs.py [--data digits mnist1d transformer] [--parts speedup cost faithfulness] [--quick]
"""

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.autolrs import controller as autolrs_module  # noqa: E402
from keras_autowu.autolrs import forecast as autolrs_forecast
from keras_autowu.gp import bayes_opt  # noqa: E402
from keras_autowu.core.keras_compat import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, os.pardir, "tests")]
from paper_claim import digits, mnist1d, small_cnn  # noqa: E402
from reference_forecast import reference_forecast  # noqa: E402

EPOCHS = {"digits": 30, "mnist1d": 20, "transformer": 6}
BATCH_SIZE = {"digits": 32, "mnist1d": 128, "transformer": 64}
COSINE_GRID = {"digits": [0.003, 0.01, 0.03, 0.1, 0.3], "transformer": [3e-4, 1e-3, 3e-3, 1e-2]}
COSINE_GRID["mnist1d"] = COSINE_GRID["digits"]
# The optimizer of each task, and the range AutoLRS searches with it.
OPTIMIZER = {"digits": "sgd", "mnist1d": "sgd", "transformer": "adam"}
SEARCH_RANGE = {"sgd": (1e-4, 1.0), "adam": (1e-5, 0.1)}
# The sorting task: sequences of SEQUENCE_LENGTH tokens out of VOCABULARY, sorted.
SEQUENCE_LENGTH, VOCABULARY = 24, 64


def sorting(train_samples=20_000, validation_samples=2_000):
    """Random token sequences (input) and the same sorted (target, one class per token)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY, (train_samples + validation_samples, SEQUENCE_LENGTH)).astype("int32")
    y = np.sort(x, axis=1).astype("int32")
    return x[:train_samples], y[:train_samples], x[train_samples:], y[train_samples:]


class PositionEmbedding(keras.layers.Layer):
    """A learnt vector per position, added to the token's."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=tuple(input_shape[1:]), initializer="glorot_uniform", name="table")

    def call(self, inputs):
        return inputs + self.table


def small_transformer(width=64, heads=4, blocks=2):
    """A pre-norm Transformer encoder: each token's class from the whole sequence."""
    tokens = keras.Input((SEQUENCE_LENGTH,), dtype="int32")
    x = PositionEmbedding()(keras.layers.Embedding(VOCABULARY, width)(tokens))
    for _ in range(blocks):
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.MultiHeadAttention(heads, width // heads)(h, h)
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.Dense(width)(keras.layers.Dense(2 * width, activation="gelu")(h))
    return keras.Model(tokens, keras.layers.Dense(VOCABULARY)(keras.layers.LayerNormalization()(x)))


def make_model(name):
    return small_transformer() if name == "transformer" else small_cnn(name)


def make_optimizer(name, learning_rate):
    if OPTIMIZER[name] == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9)


def load(name):
    arrays = {"digits": digits, "mnist1d": mnist1d, "transformer": sorting}[name]()
    return dict(name=name, arrays=arrays)
SEEDS = [0, 1, 2]


def train(data, method, seed, epochs, peak_lr=None):
    """One run: validation accuracy after each epoch, and which epochs end on trained
    weights (all but AutoLRS's explored segments)."""
    x_train, y_train, x_val, y_val = data["arrays"]
    batch = BATCH_SIZE[data["name"]]
    steps_per_epoch = int(np.ceil(len(x_train) / batch))
    keras.utils.set_random_seed(seed)
    callbacks, learning_rate = [], 0.01
    if method == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(peak_lr, epochs * steps_per_epoch)
    elif method == "autowu":
        callbacks.append(keras_autowu.AutoWU(seed=seed, verbose=0))
    elif method == "autolrs":
        min_lr, max_lr = SEARCH_RANGE[OPTIMIZER[data["name"]]]
        callbacks.append(autolrs := keras_autowu.AutoLRS(min_lr=min_lr, max_lr=max_lr, seed=seed, verbose=0))
    model = make_model(data["name"])
    model.compile(
        optimizer=make_optimizer(data["name"], learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, batch_size=batch, epochs=epochs, callbacks=callbacks,
        validation_data=(x_val, y_val), validation_batch_size=512, verbose=0,
    )
    accuracy = np.nan_to_num(np.asarray(history.history["val_accuracy"], np.float64))
    trained = np.ones(epochs, bool)
    if method == "autolrs":
        for epoch in range(epochs):
            last_step = (epoch + 1) * steps_per_epoch - 1
            segment = next(s for s in autolrs.scheduler.segments if s.start <= last_step < max(s.stop, s.start + 1))
            trained[epoch] = segment.kind != "explore"
    return dict(accuracy=accuracy, trained=trained, steps_per_epoch=steps_per_epoch, seconds=time.perf_counter() - start)


def steps_to_reach(run, target):
    """Steps until the first epoch end on trained weights at or above `target`; None if never."""
    reached = np.flatnonzero((run["accuracy"] >= target) & run["trained"])
    return None if reached.size == 0 else int((reached[0] + 1) * run["steps_per_epoch"])


def speedup(data, seeds, epochs, grid):
    optimizer = {"sgd": "SGD momentum 0.9", "adam": "Adam"}[OPTIMIZER[data["name"]]]
    print(f"## {data['name']}: steps to the tuned cosine's final validation accuracy ({epochs} epochs, {optimizer}, batch {BATCH_SIZE[data['name']]})")
    finals = {lr: train(data, "cosine", 0, epochs, lr)["accuracy"][-1] for lr in grid}
    best = max(grid, key=lambda lr: finals[lr])
    print("cosine grid (seed 0, final accuracy): " + ", ".join(f"{lr:g}: {finals[lr]:.4f}" for lr in grid) + f"; tuned peak {best:g}")
    rows = {m: [] for m in ("cosine", "autowu", "autolrs")}
    for seed in seeds:
        runs = {m: train(data, m, seed, epochs, best if m == "cosine" else None) for m in rows}
        target = runs["cosine"]["accuracy"][-1]
        base = steps_to_reach(runs["cosine"], target)
        for method, run in runs.items():
            steps = steps_to_reach(run, target)
            rows[method].append((run["accuracy"][-1], steps, None if steps is None else base / steps, run["seconds"]))
        print(f"seed {seed}: target {target:.4f} at step {base}; " + "; ".join(
            f"{m} {r[-1][0]:.4f}, reached at {r[-1][1]}" for m, r in rows.items()))
    print("| Method | Final val. accuracy (mean ± sd) | Reached the target | Speed-up (median) | Fit time (s, mean) |")
    print("| --- | --- | --- | --- | --- |")
    for method, results in rows.items():
        accuracy = np.array([r[0] for r in results])
        factors = [r[2] for r in results if r[2] is not None]
        median = f"{np.median(factors):.2f}x" if factors else "never"
        print(f"| {method} | {accuracy.mean():.4f} ± {accuracy.std():.4f} | {len(factors)} of {len(results)} | "
              f"{median} | {np.mean([r[3] for r in results]):.1f} |")
    print()


class _Timed:
    """Wall time of the scheduler's decisions per stage and of each restore."""

    def __init__(self):
        self.decision, self.restores = [], []
        observe, restore = autolrs_module.AutoLRSScheduler.observe, keras_autowu.StageCheckpoint.restore

        def timed_observe(scheduler, *args, **kwargs):
            start = time.perf_counter()
            try:
                return observe(scheduler, *args, **kwargs)
            finally:
                self.decision.append(time.perf_counter() - start)

        def timed_restore(checkpoint, *args, **kwargs):
            start = time.perf_counter()
            restore(checkpoint, *args, **kwargs)
            self.restores.append(time.perf_counter() - start)

        autolrs_module.AutoLRSScheduler.observe = timed_observe
        keras_autowu.StageCheckpoint.restore = timed_restore


def big_model():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(2048, activation="relu"), keras.layers.Dense(1536, activation="relu"), keras.layers.Dense(10),
    ])


def first_search_call():
    """Seconds of the search's first call in a process (tracing its graph), on a graph of
    its own; the package's is traced too, so that the fit's decisions are timed
    without it."""
    x, y, mask = (tf.constant(v) for v in (np.linspace(0, 1, 10), np.linspace(0, 1, 10) ** 2, np.ones(10)))
    start = time.perf_counter()
    tf.function(bayes_opt.lower_confidence_bound)(x, y, mask)
    seconds = time.perf_counter() - start
    bayes_opt._compiled()(x, y, mask)
    return seconds


def cost(data, epochs):
    print(f"## {data['name']}: AutoLRS's cost per stage")
    print(f"once a process: the search's graph traces in {first_search_call():.2f} s")
    timed = _Timed()
    x_train, y_train, _, _ = data["arrays"]
    batch = BATCH_SIZE[data["name"]]
    keras.utils.set_random_seed(0)
    model = make_model(data["name"])
    model.compile(optimizer=make_optimizer(data["name"], 0.01 if OPTIMIZER[data["name"]] == "sgd" else 1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    min_lr, max_lr = SEARCH_RANGE[OPTIMIZER[data["name"]]]
    autolrs = keras_autowu.AutoLRS(min_lr=min_lr, max_lr=max_lr, verbose=0)
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch, epochs=epochs, callbacks=[autolrs], verbose=0)
    total = time.perf_counter() - start
    stages = len(autolrs.scheduler.stages)
    decision = float(np.sum(timed.decision))
    restore = float(np.sum(timed.restores))
    weights = model.count_params()
    print(f"{stages} stages in {total:.1f} s of fit; decisions (forecasts, search) {decision:.2f} s in all, "
          f"{100 * decision / total:.2f} % of the fit; {len(timed.restores)} restores, "
          f"{1000 * np.median(timed.restores):.2f} ms each (median), {100 * restore / total:.2f} % of the fit; "
          f"model of {weights} weights")
    if data["name"] == "digits":
        big = big_model()
        big.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        big.fit(x_train[:64], y_train[:64], batch_size=32, epochs=1, verbose=0)
        checkpoint = keras_autowu.StageCheckpoint(big)
        checkpoint.save()
        timed.restores.clear()
        for _ in range(20):
            checkpoint.restore()
        print(f"restore of a model of {big.count_params()} weights with Adam ({checkpoint.num_bytes / 2**20:.0f} MiB of copies): "
              f"{1000 * np.median(timed.restores):.1f} ms (median of 20)")
    print()
    return autolrs.scheduler


def faithfulness(name, scheduler):
    """Every explored training-loss series of the run, forecast three ways, and the
    learning rate each would choose."""
    print(f"## {name}: the forecast against the reference's SciPy computation, on the run's explored series")
    matches, mismatches, agree_reference, agree_bounded, stages = 0, [], 0, 0, 0
    seconds = {"package": [], "scipy": []}
    for stage in scheduler.stages:
        if stage.on_validation:
            continue
        explore_stop = stage.start + len(stage.learning_rates) * stage.explore_steps
        segments = [s for s in scheduler.segments if s.kind == "explore" and stage.start <= s.start < explore_stop]
        ours, bounded, scipy_ = [], [], []
        for segment in segments:
            losses = scheduler.losses[segment.start:segment.stop]
            start = time.perf_counter()
            ours.append(autolrs_forecast.forecast(losses, stage.exploit_steps, rule="reference"))
            seconds["package"].append(time.perf_counter() - start)
            bounded.append(autolrs_forecast.forecast(losses, stage.exploit_steps, rule="bounded"))
            with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
                warnings.simplefilter("always")
                start = time.perf_counter()
                value = reference_forecast(losses, stage.exploit_steps)
                seconds["scipy"].append(time.perf_counter() - start)
            scipy_.append(value if np.isfinite(value) else autolrs_forecast.NAN_SCORE)  # the reference's score of a NaN
            if abs(ours[-1] - scipy_[-1]) <= 1e-3 * max(abs(scipy_[-1]), abs(losses[0])):
                matches += 1
            else:
                # FITPACK stops at 20 iterations short of the smoothing condition ("s too small").
                note = " (SciPy's spline stopped short)" if caught else ""
                mismatches.append(f"{scipy_[-1]:.4g} against {ours[-1]:.4g}{note}")
        choices = [int(np.argmin(v)) for v in (scipy_, ours, bounded)]
        if scheduler.config.forecast == "bounded":  # the run's own choice, with its tie rule
            choices[2] = stage.learning_rates.index(stage.chosen)
        agree_reference += int(choices[1] == choices[0])
        agree_bounded += int(choices[2] == choices[0])
        stages += 1
        print(f"stage {stage.index}: {len(segments)} series of {stage.explore_steps} losses, forecast at step {stage.exploit_steps}")
        print("  lr      " + " ".join(f"{lr:10.4g}" for lr in stage.learning_rates))
        for label, values, choice in zip(("SciPy", "package", "bounded"), (scipy_, ours, bounded), choices):
            print(f"  {label:8s}" + " ".join(f"{v:10.4g}" for v in values) + f"   chooses {stage.learning_rates[choice]:.4g}")
    total = matches + len(mismatches)
    print(f"{matches} of {total} forecasts within 0.1 % of SciPy's (or of the series' first loss); the others, SciPy's "
          "against the package's: " + ("; ".join(mismatches) or "none"))
    print(f"the same learning rate chosen in {agree_reference} of {stages} stages "
          f"(with the default bounded rule: {agree_bounded} of {stages}); "
          f"{1000 * np.median(seconds['package']):.1f} ms a series (SciPy: {1000 * np.median(seconds['scipy']):.1f} ms)")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["digits", "mnist1d", "transformer"], choices=list(EPOCHS))
    parser.add_argument("--parts", nargs="+", default=["speedup", "cost", "faithfulness"])
    parser.add_argument("--quick", action="store_true", help="one seed, fewer epochs, a smaller grid")
    args = parser.parse_args()
    for name in args.data:
        data = load(name)
        epochs = max(EPOCHS[name] // 3, min(EPOCHS[name], 8)) if args.quick else EPOCHS[name]
        grid = COSINE_GRID[name][1:4:2] if args.quick else COSINE_GRID[name]
        if "speedup" in args.parts:
            speedup(data, SEEDS[:1] if args.quick else SEEDS, epochs, grid)
        if "cost" in args.parts or "faithfulness" in args.parts:
            scheduler = cost(data, epochs)
            if "faithfulness" in args.parts:
                faithfulness(name, scheduler)


if __name__ == "__main__":
    main()
