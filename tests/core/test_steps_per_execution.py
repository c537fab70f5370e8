"""steps_per_execution 1, 8, 32 (the TPU norm): same losses, same switch, exact LR per step."""

import functools

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.core.keras_compat import keras
from helpers import label_mean, learning_rate_trace, repeated_batches, trace_learning_rates

STEPS_PER_EPOCH, EPOCHS, BATCH = 32, 12, 4


def parabola_labels():
    """Labels whose batch means, step after step, fall, bottom out at step 120, and rise."""
    steps = np.arange(STEPS_PER_EPOCH * EPOCHS)
    batch_means = ((steps - 120) / 120.0) ** 2 + 0.05 * np.random.default_rng(0).standard_normal(steps.size)
    return np.repeat(batch_means, BATCH).astype("float32")


@functools.lru_cache(maxsize=None)  # the single-step run is the reference for every case
def fit(steps_per_execution, jit_compile=False, test_interval=STEPS_PER_EPOCH, flat_start_speedup=4):
    y_all = parabola_labels()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD()
    metric, trace = learning_rate_trace(optimizer, STEPS_PER_EPOCH * EPOCHS)
    model.compile(optimizer=optimizer, loss=label_mean, metrics=[metric],
                  steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    trace_learning_rates(model)
    autowu = keras_autowu.AutoWU(
        max_warmup_fraction=0.9, test_interval=test_interval, departures=Departures(flat_start_speedup=flat_start_speedup), verbose=0
    )
    batches = repeated_batches(np.zeros((y_all.size, 2), "float32"), y_all, BATCH)
    model.fit(batches, steps_per_epoch=STEPS_PER_EPOCH, epochs=EPOCHS, callbacks=[autowu], verbose=0, shuffle=False)
    return autowu.scheduler, trace.numpy()


@pytest.mark.parametrize(
    "steps_per_execution,jit_compile,flat_start_speedup", [(8, False, 4), (32, False, 1), (32, True, 1)]
)
def test_switch_and_learning_rates_do_not_depend_on_steps_per_execution(steps_per_execution, jit_compile, flat_start_speedup):
    """With the same losses, chunks of 8 or 32 steps switch at the same test as single
    steps. The fast climb's checks (every 8 steps) fit in chunks of 8; in chunks of 32,
    a whole test interval, they can only fall at the tests, so there the climb is steady."""
    single, single_trace = fit(1, flat_start_speedup=flat_start_speedup)
    chunked, chunked_trace = fit(steps_per_execution, jit_compile, flat_start_speedup=flat_start_speedup)
    assert single.switch is not None
    assert chunked.flat_check_interval == single.flat_check_interval == (8 if flat_start_speedup > 1 else 32)
    assert chunked.state.fast_end == single.state.fast_end
    if flat_start_speedup > 1:  # a check, not the climb's span, ended the fast climb
        assert 0 < single.state.fast_end < single.plan.longest_fast_climb()
    assert chunked.switch.step == single.switch.step
    assert chunked.switch.lr_at_minimum == pytest.approx(single.switch.lr_at_minimum, rel=1e-9)
    np.testing.assert_array_equal(np.float32(chunked.losses), np.float32(single.losses))
    np.testing.assert_allclose(chunked_trace, chunked.learning_rates(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(chunked_trace, single_trace, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("test_interval,expected", [(10, 16), ("auto", 24)])
def test_a_test_interval_inside_a_chunk_is_rounded_up_to_the_chunk(test_interval, expected):
    """A test inside a chunk of 8 would take effect only at the chunk's end: the interval
    becomes a multiple of 8 (a warning says so when the user chose it), and the LR that
    every step applied is the record's."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler, trace = fit(8, False, test_interval)
    rounded = [str(w.message) for w in caught if "rounded up" in str(w.message)]
    assert scheduler.test_interval == expected
    assert len(rounded) == (test_interval != "auto")
    if rounded:
        assert "test_interval=10 (10 steps) rounded up to 16 steps, a multiple of steps_per_execution=8" in rounded[0]
        assert [w.filename for w in caught if "rounded up" in str(w.message)] == [__file__]  # at the fit() call
    assert scheduler.switch is not None
    np.testing.assert_allclose(trace, scheduler.learning_rates(), rtol=1e-6, atol=1e-9)
