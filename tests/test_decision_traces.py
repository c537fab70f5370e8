"""Today's controllers make, on the recorded loss streams, every decision they made when
the streams were recorded (tests/decision_traces.py): the same requests, learning rates
and messages, to the bit on the NumPy they were recorded with; on another (the Keras 2
leg's), the floats within 1e-12 of the recorded ones, everything else the same."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import decision_traces

EXACT = np.__version__ == decision_traces.RECORDED_WITH_NUMPY

with open(decision_traces.PATH) as _f:
    RECORDED = json.load(_f)


def _without_library_noise(messages):
    # Deprecation warnings of the libraries under us are not decisions.
    return [m for m in messages if not m.startswith("DeprecationWarning")]


def _same(a, b):
    """Equal, the floats to the bit where EXACT, else within 1e-12."""
    if isinstance(a, float) and isinstance(b, float) and not EXACT:
        return a == b or math.isclose(a, b, rel_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _requests(chunks):
    """As the recorder writes them now: a snapshot carries no velocity scale (0.2.0's
    AutoLRS requests carried 1.0)."""
    return [[r[:2] if r[0] != "restore" else r for r in chunk] for chunk in chunks]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_same_decisions_as_recorded(name):
    """Every chunk's requests, next learning rate and table, the messages and the summary."""
    recorded = RECORDED[name]
    replayed = decision_traces.record(name, chunks=recorded["chunks"])
    keys = ("steps", "next_lr", "table") if EXACT else ("steps", "next_lr")  # the table's digest is of its bits
    for key in keys:
        assert _same(replayed[key], recorded[key]), key
    assert _same(replayed["requests"], _requests(recorded["requests"]))
    assert _same(replayed.get("final_table"), recorded.get("final_table"))
    assert _same(replayed["summary"], recorded["summary"])
    assert _without_library_noise(replayed["messages"]) == _without_library_noise(recorded["messages"])


def test_every_scheduler_and_event_is_recorded():
    """The recording covers the three schedulers, a switch, a rescue, a cap and a resume."""
    kinds = {decision_traces.CASES[name]["scheduler"] for name in RECORDED}
    assert kinds == {"autowu", "factor_search", "autolrs"}
    text = " ".join(m for trace in RECORDED.values() for m in trace["messages"])
    for event in ("tests in a row agree", "rescue", "ran its full length", "the warmup ends at step"):
        assert event in text, event
    assert any(r[0] == "restore" for trace in RECORDED.values() for chunk in trace["requests"] for r in chunk)
    assert any(["resume", -1] in chunk for trace in RECORDED.values() for chunk in trace["requests"])


def test_the_numpy_substrate_makes_the_same_decisions():
    """On Keras's JAX and PyTorch backends the GP runs on TFP's NumPy substrate: on the
    recorded streams it makes every decision that TensorFlow made."""
    env = {**os.environ, "KERAS_AUTOWU_GP_SUBSTRATE": "numpy"}
    on_numpy = "from keras_autowu.gp import minimum_test; import numpy; assert type(minimum_test.initial_gp_state().params) is numpy.ndarray"
    assert subprocess.run([sys.executable, "-c", on_numpy], env=env, capture_output=True).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "test_the_same_decisions_as_recorded"],
        capture_output=True, text=True, env=env, cwd=os.path.join(os.path.dirname(__file__), ".."), timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
