"""The same losses give the same learning rates through `model.fit` on every backend.

Recorded loss streams (tests/data/decision_traces.json) are replayed through `fit`
with `AutoWU` on the backend under test, and the learning rate each step applied is
compared with the schedule recorded when the stream was made. The replay model makes
both exact: its loss is the stream's value for the step, and its weights keep the
learning rate of each step (one weight per step, which only that step's gradient, 1,
moves: it ends at minus the learning rate that step applied, or back at 0 where a
roll-back undid the step).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import decision_traces
from helpers import Preempted, PreemptAtEpoch
import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.core import keras_compat
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, tf

with open(decision_traces.PATH) as _f:
    RECORDED = json.load(_f)

# A switch and a rescue with NaN losses, a blow-up, steps_per_execution=4, tests at
# epoch ends with departures off, and a decay phase.
CASES = ["autowu_default", "autowu_blow_up", "autowu_chunks", "autowu_epoch_tests", "autowu_decay_phase"]


def _stop_gradient(x):
    return keras.ops.stop_gradient(x) if IS_KERAS_3 else tf.stop_gradient(x)


def replayed_loss(y_true, y_pred):
    """The value is y_true, to the bit; the gradient with respect to y_pred is 1."""
    return y_true + (y_pred - _stop_gradient(y_pred))


def replay_model(total_steps, steps_per_execution=1):
    model = keras.Sequential([keras.Input((total_steps,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(), loss=replayed_loss, steps_per_execution=steps_per_execution)
    return model


def batches(losses, start=0, rows=1):
    """Step k's batch: the one-hot vector of k, and its loss; then zeros. With two rows
    the loss is 2 * loss on one and 0 on the other: only their mean is the step's."""
    total = len(losses)
    for step in range(start, total):
        x = np.zeros((rows, total), np.float32)
        x[:, step] = 1.0
        y = np.array([[losses[step]]], np.float32) if rows == 1 else np.array([[2 * losses[step]], [0.0]], np.float32)
        yield x, y
    while True:  # what a prefetch reads past the run's end, never trained on
        yield np.zeros((rows, total), np.float32), np.zeros((rows, 1), np.float32)


def applied_learning_rates(model):
    return -np.asarray(model.layers[0].kernel.numpy())[:, 0]


def autowu_for(case):
    kwargs = dict(case.get("kwargs", {}))
    departures = {name: kwargs.pop(name) for name in decision_traces._DEPARTURES if name in kwargs}
    return keras_autowu.AutoWU(departures=Departures(**departures) if departures else None, verbose=0, **kwargs)


def stream(recorded):
    """The recorded losses, one per step, as the model computes them (float32)."""
    return np.concatenate([np.asarray(chunk, np.float64) for chunk in recorded["chunks"]]).astype(np.float32)


def replay(name, model=None, start_epoch=0, epochs=None, callbacks=(), rows=1):
    case, recorded = decision_traces.CASES[name], RECORDED[name]
    losses = stream(recorded)
    model = model or replay_model(losses.size, case.get("steps_per_execution", 1))
    autowu = autowu_for(case)
    model.fit(
        batches(losses, start_epoch * case["steps_per_epoch"], rows), steps_per_epoch=case["steps_per_epoch"],
        epochs=epochs or case["epochs"], callbacks=[autowu, *callbacks], verbose=0, shuffle=False,
    )
    return autowu, model, recorded


def expected_weights(recorded):
    """Minus the replay model's weights after the run: each step's recorded learning
    rate, and 0 for the steps a roll-back undid (from the snapshot's step to the
    restore), as the weights went back to the snapshot's."""
    rates = np.asarray(recorded["final_table"][:-1])
    for done, requests in zip(recorded["steps"], recorded["requests"]):
        for request in requests:
            if request[0] == "restore":
                rates[request[1] : done] = 0.0
    return rates


def check_replay(name, rows=1):
    autowu, model, recorded = replay(name, rows=rows)
    np.testing.assert_allclose(applied_learning_rates(model), expected_weights(recorded), rtol=1e-6, atol=1e-12)
    losses = stream(recorded)
    np.testing.assert_array_equal(np.float32(autowu.scheduler.losses), losses)
    epoch_means = losses.reshape(-1, decision_traces.CASES[name]["steps_per_epoch"]).mean(axis=1)
    np.testing.assert_allclose(model.history.history["loss"], epoch_means, rtol=1e-5)
    summary = recorded["summary"]
    assert (autowu.scheduler.switch is None) == (summary["switch"] is None)
    if summary["switch"] is not None:
        assert autowu.scheduler.switch.step == summary["switch"][0]
    assert [r.step for r in autowu.scheduler.rescues] == [r[0] for r in summary["rescues"]]


@pytest.mark.parametrize("name", CASES)
def test_every_step_applies_the_recorded_learning_rate(name):
    """Every step's learning rate, and every roll-back, as recorded; each step's own
    loss recorded, and Keras's logs untouched (each epoch's mean loss)."""
    check_replay(name)


@pytest.mark.skipif(keras_compat.BACKEND != "jax", reason="keras.distribution runs on JAX")
def test_data_parallel_on_two_devices_decides_as_one_device_does():
    """Under keras.distribution.DataParallel over two host devices, each step's
    learning rate is the one recorded on one device, and the loss AutoWU records is the
    global batch's (each device's half of the batch has another loss)."""
    code = f"""
import sys
sys.path[:0] = {[os.path.dirname(__file__), os.path.dirname(os.path.dirname(__file__))]!r}
import jax, keras
assert len(jax.devices()) == 2, jax.devices()
keras.distribution.set_distribution(keras.distribution.DataParallel())
import test_replay_through_fit as t
for name in ("autowu_default", "autowu_chunks"):
    t.check_replay(name, rows=2)
print("same decisions")
"""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and "same decisions" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("preempted_at_epoch", [3, 7])  # in the warmup; after the switch (epoch 5)
def test_a_run_resumed_by_backup_and_restore_applies_the_same_learning_rates(tmp_path, preempted_at_epoch):
    """A fit stopped at an epoch's start and resumed by BackupAndRestore in a new fit,
    with a new callback, goes on with the learning rates of the uninterrupted run."""
    name = "autowu_default"
    _, uninterrupted, _ = replay(name)
    model = replay_model(uninterrupted.layers[0].kernel.shape[0])
    backup = str(tmp_path / "backup")
    with pytest.raises(Preempted):
        replay(name, model, callbacks=[keras.callbacks.BackupAndRestore(backup), PreemptAtEpoch(preempted_at_epoch)])
    model = replay_model(uninterrupted.layers[0].kernel.shape[0])  # a new process would build it anew
    autowu, model, _ = replay(name, model, start_epoch=preempted_at_epoch, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    np.testing.assert_array_equal(applied_learning_rates(model), applied_learning_rates(uninterrupted))
    assert autowu.scheduler.steps_done == autowu.scheduler.total_steps
