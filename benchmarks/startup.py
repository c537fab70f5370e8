"""What AutoWU adds to a user's first fit, in a fresh process.

A tiny MLP on scikit-learn's digits (Adam, batch 32), as a first fit in a tutorial
or notebook: each run is a new Python process that builds the model and times
`model.fit(...)` alone, with `callbacks=[keras_autowu.AutoWU()]` or without. The two
kinds run in pairs, in alternating order, so that each pair shares the machine's
state; the figure is the median of the pairs' differences, with their spread. The
import of keras_autowu is timed apart.

On the backend that KERAS_BACKEND names (TensorFlow by default):

    [KERAS_BACKEND=jax] python benchmarks/startup.py [--quick] [--pairs N] [--epochs 1 10]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
from sklearn.datasets import load_digits
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras  # on the backend KERAS_BACKEND names
with_autowu, epochs = sys.argv[1] == "autowu", int(sys.argv[2])
start = time.perf_counter()
if with_autowu:
    import keras_autowu
imported = time.perf_counter() - start
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
start = time.perf_counter()
callbacks = [keras_autowu.AutoWU(verbose=0)] if with_autowu else []
model.fit(x, y, batch_size=32, epochs=epochs, callbacks=callbacks, verbose=0)
print(json.dumps({"fit": time.perf_counter() - start, "import": imported}))
"""


def run(kind, epochs):
    result = subprocess.run([sys.executable, "-c", CHILD, kind, str(epochs)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pair of one-epoch fits (CI)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    pairs, epoch_list = (1, [1]) if args.quick else (args.pairs, args.epochs)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(f"{os.cpu_count()} cores; Keras's {backend} backend; {pairs} pairs of fresh processes per row, alternating order")
    print("epochs  without s  with s  extra s (median)  extra s (min..max)  import s")
    for epochs in epoch_list:
        without, with_, imports = [], [], []
        for i in range(pairs):
            order = ("plain", "autowu") if i % 2 == 0 else ("autowu", "plain")
            times = {kind: run(kind, epochs) for kind in order}
            without.append(times["plain"]["fit"])
            with_.append(times["autowu"]["fit"])
            imports.append(times["autowu"]["import"])
        extra = [w - p for w, p in zip(with_, without)]
        print(
            f"{epochs:6d}  {statistics.median(without):9.2f}  {statistics.median(with_):6.2f}  "
            f"{statistics.median(extra):16.2f}  {min(extra):8.2f}..{max(extra):<8.2f}  {statistics.median(imports):8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
