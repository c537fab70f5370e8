"""The zoo: AutoWU on model kinds it was not tuned on, against a default and a tuned LR.

AutoWU's defaults were set on two data sets, the digits and MNIST-1D, with small CNNs
and MLPs. The zoo holds fits of other kinds, with data generated here or shipped with
scikit-learn, each run a few seconds on 2 cores:

- recurrent: a GRU on the adding problem (MSE), an LSTM telling noisy sines apart;
- attention: a one-layer attention classifier that must compare two tokens (AdamW),
  and a small Transformer block (LayerNorm, residuals) that must find a token by its
  position;
- normalisation and residuals: a CNN with BatchNorm, an MLP with LayerNorm, a residual
  CNN, on generated 16x16 shape images;
- regression with MSE (Friedman's function 1) and with MAE (heavy-tailed noise);
- a convolutional autoencoder of the digits;
- tabular data of a few hundred rows: scikit-learn's diabetes (442, regression) and
  breast cancer (569, binary);
- full-batch training (every step sees all the data);
- a model with two outputs (the shape's class and its size);
- large batch with LAMB.

Each fit runs with `AutoWU()` at its defaults, with the optimizer at its default
learning rate (Keras's; 0.01 for SGD with momentum), and with a grid of five linear
warmups (10 % of the steps) + cosine, peak learning rates a factor of about 3 apart
around the default. Three seeds; the test metric's mean ± standard deviation over
them. The grid's best is the point with the best mean test metric: a tuning that
peeks at the test set, the most a grid search can give.

Verdicts, on the means: against the default learning rate, AutoWU "lost" when more
than 1 point of accuracy below it, or its error over 1.25 times the default's; "won"
the other way round. Against the grid's best, AutoWU is "within" when at most 2 points
below it, or its error at most 1.25 times the best's. A run is "dead" at chance
accuracy (within 5 points of the majority class), or an error no better than
predicting the training mean.

    python benchmarks/zoo.py [--quick] [--jobs 2] [--fits NAME ...] [--seeds 0 1 2] [--json PATH]
    python benchmarks/zoo.py --methods autowu --update PATH --json PATH   # AutoWU again
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
from user_fits import autowu_notes, describe, what_autowu_did  # noqa: E402  (benchmarks/ is on the path)

SEEDS = [0, 1, 2]
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 0.01, "lamb": 1e-3}
# The grid's peaks, in multiples of the default learning rate.
GRID_FACTORS = [0.3, 1.0, 3.0, 10.0, 30.0]
WARMUP_FRACTION = 0.1
ACCURACY_MARGIN_DEFAULT = 0.01  # lost to the default: this far below it
ACCURACY_MARGIN_GRID = 0.02  # within the grid's best: at most this far below it
ERROR_RATIO = 1.25
CHANCE_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Fit:
    name: str
    data: str
    model: str
    optimizer: str
    epochs: int
    batch_size: int
    metric: str  # "accuracy", "mse" or "mae"
    note: str = ""


FITS = [
    Fit("gru-adding-adam", "adding", "gru", "adam", 12, 64, "mse", "recurrent; a flat start"),
    Fit("lstm-sines-rmsprop", "sines", "lstm", "rmsprop", 8, 64, "accuracy", "recurrent"),
    Fit("attention-match-adamw", "match", "attention", "adamw", 15, 64, "accuracy", "attention at chance first"),
    Fit("transformer-pointer-adam", "pointer", "transformer", "adam", 15, 64, "accuracy", "LayerNorm, residuals"),
    Fit("batchnorm-cnn-sgd", "shapes", "bn_cnn", "sgd", 8, 64, "accuracy", "BatchNorm"),
    Fit("layernorm-mlp-adam", "blobs", "ln_mlp", "adam", 10, 64, "accuracy", "LayerNorm"),
    Fit("resnet-cnn-sgd", "shapes", "resnet", "sgd", 8, 128, "accuracy", "residual blocks"),
    Fit("friedman-mse-adam", "friedman", "mlp", "adam", 30, 64, "mse", "regression"),
    Fit("friedman-mae-sgd", "friedman_heavy", "mlp", "sgd", 30, 64, "mae", "regression, heavy-tailed noise"),
    Fit("digits-autoencoder-adam", "digits_images", "autoencoder", "adam", 20, 64, "mse", "autoencoder"),
    Fit("diabetes-adamw", "diabetes", "mlp", "adamw", 100, 32, "mse", "442 rows"),
    Fit("breast-cancer-sgd", "breast_cancer", "mlp", "sgd", 40, 32, "accuracy", "569 rows"),
    Fit("moons-full-batch-adam", "moons", "mlp", "adam", 300, 0, "accuracy", "full batch: 300 steps"),
    Fit("shapes-two-outputs-adam", "shapes_two", "two_outputs", "adam", 8, 64, "accuracy", "class and size"),
    Fit("blobs-lamb-batch2048", "blobs_large", "ln_mlp", "lamb", 20, 2048, "accuracy", "large batch"),
]
QUICK_FITS = ["attention-match-adamw", "diabetes-adamw"]


# ----------------------------------------------------------------------------- data
def _split(x, y, test, rng):
    order = rng.permutation(len(x))
    cut = len(x) - test
    train, held = order[:cut], order[cut:]
    take = (lambda a, i: {k: v[i] for k, v in a.items()}) if isinstance(y, dict) else (lambda a, i: a[i])
    return x[train], take(y, train), x[held], take(y, held)


def adding(rng, n=4000, length=20):
    """The adding problem: the sum of the two values marked in a sequence."""
    values = rng.uniform(size=(n, length)).astype("float32")
    marks = np.zeros((n, length), "float32")
    for row in range(n):
        marks[row, rng.choice(length, 2, replace=False)] = 1.0
    return np.stack([values, marks], -1), (values * marks).sum(1).astype("float32"), 1000


def sines(rng, n=4000, length=40):
    """Which of four frequencies a noisy sine of random phase has."""
    label = rng.integers(0, 4, n)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = np.sin(2 * np.pi * (0.05 + 0.03 * label[:, None]) * t + phase) + rng.normal(0, 0.6, (n, length))
    return x[..., None].astype("float32"), label.astype("int32"), 1000


def match(rng, n=5000, length=12, vocab=10):
    """Whether the first token appears again later: it takes comparing tokens."""
    x = rng.integers(1, vocab, (n, length))
    label = rng.integers(0, 2, n)
    for row in range(n):
        rest = x[row, 1:]
        rest[rest == x[row, 0]] = 1 + (x[row, 0] % (vocab - 1))  # remove repeats
        if label[row]:
            rest[rng.integers(0, length - 1)] = x[row, 0]
    return x.astype("int32"), label.astype("int32"), 1000


def pointer(rng, n=5000, length=8, vocab=6):
    """The token at the position the first token names."""
    x = rng.integers(0, vocab, (n, length))
    x[:, 0] = rng.integers(1, length, n)
    label = x[np.arange(n), x[:, 0]]
    return x.astype("int32"), label.astype("int32"), 1000


def _shape_images(rng, n, size=16):
    """Square outlines, filled discs and crosses of random place and size, in noise."""
    label = rng.integers(0, 3, n)
    radius = rng.uniform(2.5, 5.5, n)
    cy, cx = (rng.uniform(5.5, size - 5.5, n) for _ in range(2))
    yy, xx = np.mgrid[:size, :size]
    dy, dx = yy[None] - cy[:, None, None], xx[None] - cx[:, None, None]
    r = radius[:, None, None]
    square = (np.maximum(abs(dy), abs(dx)) <= r) & (np.maximum(abs(dy), abs(dx)) > r - 1.2)
    disc = dy**2 + dx**2 <= r**2
    cross = ((abs(dy) < 0.8) | (abs(dx) < 0.8)) & (np.maximum(abs(dy), abs(dx)) <= r)
    images = np.select([label[:, None, None] == 0, label[:, None, None] == 1], [square, disc], cross).astype("float32")
    images += rng.normal(0, 0.35, images.shape)
    return images[..., None].astype("float32"), label.astype("int32"), radius.astype("float32")


def shapes(rng, n=4000):
    x, label, _ = _shape_images(rng, n)
    return x, label, 1000


def shapes_two(rng, n=4000):
    x, label, radius = _shape_images(rng, n)
    return x, {"shape": label, "size": (radius - 4.0) / 0.9}, 1000


def blobs(rng, n=6000, large=False):
    from sklearn.datasets import make_classification

    n = 40_000 if large else n
    x, y = make_classification(
        n, 30, n_informative=12, n_classes=6, n_clusters_per_class=2, class_sep=1.0, flip_y=0.02,
        random_state=int(rng.integers(1 << 30)),
    )
    return x.astype("float32"), y.astype("int32"), 4000 if large else 1000


def friedman(rng, n=3000, heavy=False):
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n, 10, noise=0.0 if heavy else 1.0, random_state=int(rng.integers(1 << 30)))
    if heavy:
        y = y + rng.standard_t(2, n)  # heavy tails: the case for MAE
    y = (y - y.mean()) / y.std()
    return x.astype("float32"), y.astype("float32"), 1000


def digits_images(rng):
    from sklearn.datasets import load_digits

    x = (load_digits().images / 16.0).astype("float32")[..., None]
    return x, x, 360


def _standardised(loader):
    def load(rng):
        x, y = loader(return_X_y=True)
        x = ((x - x.mean(0)) / x.std(0)).astype("float32")
        y = ((y - y.mean()) / y.std()).astype("float32") if loader.__name__ == "load_diabetes" else y.astype("int32")
        return x, y, len(x) // 4

    return load


def moons(rng, n=1000):
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.25, random_state=int(rng.integers(1 << 30)))
    return x.astype("float32"), y.astype("int32"), 300


def load(name):
    """(x_train, y_train, x_test, y_test), the same for every seed."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    makers = {
        "adding": adding, "sines": sines, "match": match, "pointer": pointer, "shapes": shapes,
        "shapes_two": shapes_two, "blobs": blobs, "blobs_large": lambda r: blobs(r, large=True),
        "friedman": friedman, "friedman_heavy": lambda r: friedman(r, heavy=True),
        "digits_images": digits_images, "diabetes": _standardised(load_diabetes),
        "breast_cancer": _standardised(load_breast_cancer), "moons": moons,
    }
    rng = np.random.default_rng(1234)
    x, y, test = makers[name](rng)
    return _split(x, y, test, rng)


# ----------------------------------------------------------------------------- models
L = keras.layers


def _head(fit, x):
    if fit.metric == "accuracy":
        return L.Dense(_classes(fit))(x)
    return L.Dense(1)(x)


def _classes(fit):
    return {"sines": 4, "match": 2, "pointer": 6, "shapes": 3, "blobs": 6, "blobs_large": 6, "breast_cancer": 2, "moons": 2}[fit.data]


def _conv_block(x, filters, norm=True):
    x = L.Conv2D(filters, 3, padding="same", use_bias=not norm)(x)
    if norm:
        x = L.BatchNormalization()(x)
    return L.Activation("relu")(x)


def build_model(fit, x):
    inputs = keras.Input(x.shape[1:], dtype="int32" if x.dtype == np.int32 else "float32")
    h = inputs
    if fit.model == "gru":
        h = L.GRU(32)(h)
    elif fit.model == "lstm":
        h = L.LSTM(32)(h)
    elif fit.model in ("attention", "transformer"):
        length = x.shape[1]
        tokens = L.Embedding(int(x.max()) + 1, 32)(h)
        positions = L.Embedding(length, 32)(keras.ops.arange(length))
        h = tokens + positions
        attended = L.MultiHeadAttention(num_heads=2, key_dim=16)(h, h)
        if fit.model == "transformer":
            h = L.LayerNormalization()(h + attended)
            h = L.LayerNormalization()(h + L.Dense(32)(L.Dense(64, activation="relu")(h)))
            h = L.Flatten()(h)
        else:  # read out at the first token, whose query looks for its repeat
            h = L.Concatenate()([h[:, 0], attended[:, 0]])
        h = L.Dense(32, activation="relu")(h)
    elif fit.model == "bn_cnn":
        h = _conv_block(_conv_block(h, 16), 16)
        h = L.MaxPooling2D()(h)
        h = _conv_block(_conv_block(h, 32), 32)
        h = L.GlobalAveragePooling2D()(h)
    elif fit.model == "resnet":
        h = _conv_block(h, 16)
        for filters in (16, 32):
            shortcut = h if h.shape[-1] == filters else L.Conv2D(filters, 1)(h)
            y = _conv_block(h, filters)
            y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(y))
            h = L.Activation("relu")(L.Add()([shortcut, y]))
            h = L.MaxPooling2D()(h)
        h = L.GlobalAveragePooling2D()(h)
    elif fit.model == "ln_mlp":
        for _ in range(2):
            h = L.LayerNormalization()(L.Dense(128, activation="relu")(h))
    elif fit.model == "mlp":
        for _ in range(2):
            h = L.Dense(64, activation="relu")(h)
    elif fit.model == "autoencoder":
        h = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(h)
        h = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(h)  # 2x2x8: 32 numbers
        h = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(h)
        h = L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(h)
        return keras.Model(inputs, h)
    elif fit.model == "two_outputs":
        h = _conv_block(_conv_block(h, 16, norm=False), 16, norm=False)
        h = L.GlobalAveragePooling2D()(L.MaxPooling2D()(h))
        return keras.Model(inputs, {"shape": L.Dense(3, name="shape")(h), "size": L.Dense(1, name="size")(h)})
    return keras.Model(inputs, _head(fit, h))


def make_optimizer(name, learning_rate):
    return {
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "lamb": lambda: keras.optimizers.Lamb(learning_rate),
    }[name]()


def loss_of(fit):
    if fit.model == "two_outputs":
        return {"shape": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "size": "mse"}
    if fit.metric == "accuracy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return fit.metric


# ----------------------------------------------------------------------------- runs
def methods(fit):
    """Every method's name and peak learning rate (None: AutoWU)."""
    default = DEFAULT_LR[fit.optimizer]
    grid = [(f"grid x{f:g}", default * f) for f in GRID_FACTORS]
    return [("autowu", None), ("default", default)] + grid


def train(fit, data, method, peak_lr, seed):
    """One run; returns its test metric and what AutoWU did."""
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(seed)
    model = build_model(fit, x_train)
    batch_size = fit.batch_size or len(x_train)
    steps = -(-len(x_train) // batch_size) * fit.epochs
    callbacks = []
    if method == "autowu":
        callbacks.append(autowu := keras_autowu.AutoWU(verbose=0, seed=seed))
        learning_rate = DEFAULT_LR[fit.optimizer]
    elif method == "default":
        learning_rate = peak_lr
    else:
        warmup = max(1, int(WARMUP_FRACTION * steps))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, steps - warmup, warmup_target=peak_lr, warmup_steps=warmup
        )
    model.compile(optimizer=make_optimizer(fit.optimizer, learning_rate), loss=loss_of(fit))
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=fit.epochs, callbacks=callbacks, verbose=0)
    run = {"seconds": time.perf_counter() - start, **score(fit, model, x_test, y_test)}
    if method == "autowu":
        run.update(what_autowu_did(autowu.scheduler))
    return run


def score(fit, model, x_test, y_test):
    predictions = model.predict(x_test, batch_size=1024, verbose=0)
    if fit.model == "two_outputs":
        predictions, y_test = predictions["shape"], y_test["shape"]
    if fit.metric == "accuracy":
        value = float(np.mean(np.argmax(predictions, -1) == y_test))
    else:
        error = np.asarray(predictions, np.float64).reshape(y_test.shape) - y_test
        value = float(np.mean(error**2 if fit.metric == "mse" else np.abs(error)))
        value = value if np.isfinite(value) else float("inf")
    return {fit.metric: value}




def dead_level(fit, data):
    """The metric of a run that learned nothing: the majority class's accuracy (plus a
    margin), or the error of predicting the training mean."""
    x_train, y_train, _, y_test = data
    if fit.model == "two_outputs":
        y_train, y_test = y_train["shape"], y_test["shape"]
    if fit.metric == "accuracy":
        return float(np.max(np.bincount(y_test)) / len(y_test)) + CHANCE_MARGIN
    error = y_test - np.mean(y_train, axis=0)
    return float(np.mean(error**2 if fit.metric == "mse" else np.abs(error)))


def is_dead(fit, value, level):
    return value <= level if fit.metric == "accuracy" else value >= level


def better(fit, a, b, accuracy_margin):
    """+1 when a beats b beyond the margin, -1 when b beats a, 0 otherwise."""
    if fit.metric == "accuracy":
        return 1 if a > b + accuracy_margin else -1 if b > a + accuracy_margin else 0
    return 1 if b > ERROR_RATIO * a else -1 if a > ERROR_RATIO * b else 0


def summarise(fit, runs, level):
    key = fit.metric
    means = {m: float(np.mean([r[key] for r in rs])) for m, rs in runs.items()}
    grid = [m for m in runs if m.startswith("grid")]
    best = (max if key == "accuracy" else min)(grid, key=means.get)
    against_default = better(fit, means["autowu"], means["default"], ACCURACY_MARGIN_DEFAULT)
    within_grid = better(fit, means["autowu"], means[best], ACCURACY_MARGIN_GRID) >= 0
    dead = {m: sum(is_dead(fit, r[key], level) for r in rs) for m, rs in runs.items()}
    return {
        "means": means, "best_grid": best,
        "versus_default": {1: "won", 0: "tie", -1: "lost"}[against_default],
        "within_grid": bool(within_grid), "dead": dead,
    }






def set_threads(threads):
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_fit(name, seeds, quick, only_methods, earlier_runs, threads=None):
    """Every method's runs of one fit, and their summary; `earlier_runs` stand in for
    the methods not in `only_methods`. Runs in a worker process of its own with --jobs."""
    set_threads(threads)
    fit = next(f for f in FITS if f.name == name)
    data = load(fit.data)
    chosen = methods(fit)
    if quick:
        chosen = chosen[:2] + chosen[3:6]
    runs = {
        m: earlier_runs[m] if only_methods and m not in only_methods else [train(fit, data, m, lr, s) for s in seeds]
        for m, lr in chosen
    }
    return {"fit": dataclasses.asdict(fit), "runs": runs, **summarise(fit, runs, dead_level(fit, data))}


def report(name, result):
    fit, runs, best = next(f for f in FITS if f.name == name), result["runs"], result["best_grid"]
    print(
        f"{fit.name:26s} {fit.metric:8s} {describe(runs['autowu'], fit.metric):>15s} "
        f"{describe(runs['default'], fit.metric):>15s} {describe(runs[best], fit.metric):>15s}  "
        f"{result['versus_default']:10s}  {'within' if result['within_grid'] else 'behind':7s}  "
        f"{result['dead']['autowu']}, {result['dead']['default']}, {result['dead'][best]}"
    )
    grid_line = ", ".join(f"{m[5:]}: {result['means'][m]:.3f}" for m in runs if m.startswith("grid"))
    seconds = np.mean([r["seconds"] for rs in runs.values() for r in rs])
    print(f"{'':26s} AutoWU: {autowu_notes(runs['autowu'])}")
    print(f"{'':26s} grid (peak = default x): {grid_line}; {seconds:.1f} s a run", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two fits, one seed, the grid's middle three points")
    parser.add_argument("--fits", nargs="+", choices=[f.name for f in FITS], help="instead of all")
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS)
    parser.add_argument("--jobs", type=int, default=1, help="fits run side by side, one thread each")
    parser.add_argument("--methods", nargs="+", help="run only these (autowu, default, 'grid x3', ...)")
    parser.add_argument("--update", help="a --json file of an earlier run: its other methods' runs are reused")
    parser.add_argument("--json", help="write the runs here")
    args = parser.parse_args()
    earlier = {}
    if args.update:
        with open(args.update) as f:
            earlier = json.load(f)["fits"]
    names = QUICK_FITS if args.quick else args.fits or [f.name for f in FITS]
    seeds = [0] if args.quick else args.seeds
    jobs = [(n, seeds, args.quick, args.methods, earlier.get(n, {}).get("runs", {})) for n in names]
    start = time.perf_counter()
    print(f"{'fit':26s} {'metric':8s} {'AutoWU':>15s} {'default LR':>15s} {'grid best':>15s}  vs default  vs grid  dead (AutoWU, default, grid best)")
    results = {}
    if args.jobs > 1:
        import concurrent.futures
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_fit, *job, threads=1) for job in jobs]
            for job, future in zip(jobs, futures):
                results[job[0]] = future.result()
                report(job[0], results[job[0]])
    else:
        for job in jobs:
            results[job[0]] = run_fit(*job)
            report(job[0], results[job[0]])
    lost = sum(r["versus_default"] == "lost" for r in results.values())
    won = sum(r["versus_default"] == "won" for r in results.values())
    within = sum(r["within_grid"] for r in results.values())
    dead = sum(r["dead"]["autowu"] for r in results.values())
    print(
        f"\nOver {len(results)} fits, {len(seeds)} seeds each: against the default learning rate AutoWU "
        f"lost {lost}, tied {len(results) - lost - won}, won {won}; within the grid's best in {within} of "
        f"{len(results)}; AutoWU runs dead: {dead} of {len(results) * len(seeds)}."
    )
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seeds": seeds, "fits": results}, f)


if __name__ == "__main__":
    main()
