"""Latency of one "minimum passed?" test, after its tracing first call.

Each test subsamples the recorded losses (100 fit points, 500 conditioning points for
each of the 5 predictions), refits the GP with 100 Adam steps and predicts: exactly
what AutoWU does at a test, on the losses as a `LossRecord` holds them. Prints median
and p95 per record length (up to 3 million losses: 300 epochs of 10,000 steps), the
number of times the compiled function was traced, and how long a restart takes to
replay a run's losses (`AutoWUScheduler.set_state`).

    python benchmarks/gp_test_latency.py [--quick]
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.gp import minimum_test
from keras_autowu.autowu import loss_sampling  # noqa: E402
from keras_autowu.autowu.loss_record import LossRecord  # noqa: E402


def loss_stream(n, rng):
    """A warmup-like loss: falls, bottoms out at 70% of the record, rises; noisy."""
    x = np.arange(n) / n
    return 2.0 - 1.5 * np.exp(-(((x - 0.7) / 0.25) ** 2)) + 0.1 * rng.standard_normal(n)


def time_tests(n, repeats, rng):
    state = minimum_test.initial_gp_state()
    record = LossRecord()
    record.extend(loss_stream(n, rng))
    seconds = []
    for test_index in range(repeats + 1):
        start = time.perf_counter()
        inputs = loss_sampling.sample_gp_inputs(
            record.values, 5, seed=0, test_index=test_index, finite_indices=record.finite_indices,
            finite_mean=record.clipped_finite_mean(),
        )
        state, result = minimum_test.run_gp_minimum_test(state, inputs)
        result.passed_probability.numpy()
        seconds.append(time.perf_counter() - start)
    return np.array(seconds[1:]) * 1e3  # the first call of a process traces


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI")
    args = parser.parse_args()
    repeats = 5 if args.quick else 50
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"TensorFlow {tf.__version__}")
    start = time.perf_counter()
    time_tests(500, 0, rng)
    print(f"first call (trace and graph optimisation): {time.perf_counter() - start:.2f} s")
    print(f"{'losses':>8} {'median ms':>10} {'p95 ms':>8}")
    sizes = (50, 500, 10_000, 100_000) if args.quick else (50, 100, 500, 1000, 2000, 5000, 10_000, 100_000, 500_000, 1_500_000, 3_000_000)
    for n in sizes:
        ms = time_tests(n, repeats, rng)
        print(f"{n:>8} {np.median(ms):>10.2f} {np.percentile(ms, 95):>8.2f}")
    print(f"traces: {minimum_test.compiled_gp_minimum_test.experimental_get_tracing_count()}")
    steps = 100_000 if args.quick else 670_000
    scheduler = keras_autowu.AutoWUScheduler(10_000, 300, verbose=0)
    state = {**scheduler.get_state(), "losses": loss_stream(steps, rng).tolist()}
    start = time.perf_counter()
    scheduler.set_state(state)
    print(f"replay of {steps:,} losses ({len(scheduler.tests)} tests, every {scheduler.test_interval} steps): "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
