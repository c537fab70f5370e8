"""`reference=True`: the reference's decisions, step by step, and nothing of ours on top."""

import json

import numpy as np
import pytest

import decision_traces
import keras_autowu
from keras_autowu.autowu import loss_sampling
from keras_autowu.gp import minimum_test
from reference_schedule import reference_decisions, reference_learning_rates

with open(decision_traces.PATH) as _f:
    _RECORDED = json.load(_f)


def gp_oracle(num_predictions=5, seed=0):
    """The GP test as the reference runs it: on the losses so far, warm-started from the
    last test's fit, with no clipping."""
    state = [minimum_test.initial_gp_state()]

    def test(losses, test_index):
        losses = np.asarray(losses, np.float64)
        finite = np.flatnonzero(np.isfinite(losses))
        inputs = loss_sampling.sample_gp_inputs(losses, num_predictions, seed, test_index, finite_indices=finite)
        new_state, result = minimum_test.run_gp_minimum_test(state[0], inputs)
        state[0] = new_state
        return np.asarray(result.passed_probability), np.asarray(result.argmin_x)

    return test


def parabola(steps, minimum_lr, seed, noise=0.05, nan_after=None):
    """The loss of a warmup from 1e-5 to 1 over `steps`, lowest at `minimum_lr`."""
    rng = np.random.default_rng(seed)
    lrs = 1e-5 * 1e5 ** (np.arange(steps) / (steps // 2))
    losses = 0.3 * (np.log10(lrs) - np.log10(minimum_lr)) ** 2 + 0.5 + noise * rng.standard_normal(steps)
    if nan_after is not None:
        losses[nan_after:] = np.nan
    return losses


def _streams():
    """Loss streams: parabolas, with noise and NaNs, and the recorded streams of the
    decision traces (a blow-up, a cap, a flat start...)."""
    streams = [
        ("parabola", 50, 20, {}, parabola(1000, 0.01, seed=0)),
        ("parabola-linear", 50, 20, {"warmup_type": "linear"}, parabola(1000, 0.3, seed=1)),
        ("parabola-noisy", 25, 40, {}, parabola(1000, 0.003, seed=2, noise=0.3)),
        ("parabola-nan", 50, 20, {}, parabola(1000, 0.1, seed=3, nan_after=400)),
        ("parabola-short-warmup", 40, 20, {"max_warmup_fraction": 0.25}, parabola(800, 0.05, seed=4)),
        ("never-turns", 30, 10, {"max_lr": 0.1}, np.linspace(2.3, 0.1, 300)),
    ]
    for name, trace in sorted(_RECORDED.items()):
        case = decision_traces.CASES[name]
        if case["scheduler"] == "autowu" and not case.get("kwargs"):
            losses = np.concatenate([np.asarray(chunk, np.float64) for chunk in trace["chunks"]])
            streams.append((name, case["steps_per_epoch"], case["epochs"], {}, losses))
    return streams


STREAMS = _streams()


@pytest.mark.parametrize("name,steps_per_epoch,epochs,kwargs,losses", STREAMS, ids=[s[0] for s in STREAMS])
def test_every_step_has_the_references_learning_rate(name, steps_per_epoch, epochs, kwargs, losses):
    """The stream through the transcription of the reference and through
    `AutoWUScheduler(reference=True)`: the same switch and every step's learning rate."""
    switch_step, switch_lr = reference_decisions(losses, steps_per_epoch, epochs, gp_oracle(), **kwargs)
    expected = reference_learning_rates(steps_per_epoch * epochs, switch_step=switch_step, switch_lr=switch_lr, **kwargs)
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch, epochs, reference=True, verbose=0, **kwargs)
    requests = scheduler.observe(losses)
    assert requests == []  # no snapshots: the reference keeps none
    assert (scheduler.switch.step if scheduler.switch else None) == switch_step
    assert scheduler.rescues == [] and scheduler.divergence is None
    # float32 in the closed form: relative to the peak near the cosine's end at 0.
    np.testing.assert_allclose(scheduler.learning_rates(), expected, rtol=2e-5, atol=1e-6 * max(expected))


def test_the_streams_include_switches_and_runs_to_the_cap():
    """The comparison above is not vacuous: some streams switch, some reach the cap."""
    switches = [reference_decisions(s[4], s[1], s[2], gp_oracle(), **s[3])[0] for s in STREAMS]
    assert sum(step is not None for step in switches) >= 3 and None in switches


def test_the_defaults_depart_where_the_reference_fails():
    """On a stream whose loss turns NaN, the defaults end the warmup; the reference
    tests on, over the finite losses."""
    losses = parabola(1000, 1.0, seed=3, nan_after=300)  # NaN while the loss still falls
    ours = keras_autowu.AutoWUScheduler(50, 20, verbose=0)
    ours.observe(losses)
    reference = keras_autowu.AutoWUScheduler(50, 20, reference=True, verbose=0)
    reference.observe(losses)
    assert ours.divergence is not None and reference.divergence is None


@pytest.mark.parametrize(
    "argument,value",
    [("test_interval", 10), ("test_interval", "auto"), ("lr_choice", "momentum_corrected"), ("max_rescues", 2)],
)
def test_an_argument_that_contradicts_reference_mode_is_refused(argument, value):
    with pytest.raises(ValueError, match=rf"AutoWU expects `{argument}`=.* or None with reference=True, which is the reference's\. Received {argument}={value!r}"):
        keras_autowu.AutoWUScheduler(10, 10, reference=True, **{argument: value})


def test_reference_mode_takes_the_references_values_and_refuses_a_rollback():
    scheduler = keras_autowu.AutoWUScheduler(10, 10, reference=True, test_interval="epoch", lr_choice="gp_minimum", max_rescues=0)
    assert (scheduler.test_interval, scheduler.config.lr_choice, scheduler.config.max_rescues) == (10, "gp_minimum", 0)
    assert keras_autowu.AutoWU(reference=True).rollback_on_divergence is False
    with pytest.raises(ValueError, match="Received rollback_on_divergence=True"):
        keras_autowu.AutoWU(reference=True, rollback_on_divergence=True)
    from keras_autowu.autowu.config import Departures

    with pytest.raises(ValueError, match="no `departures` with reference=True"):
        keras_autowu.AutoWUScheduler(10, 10, reference=True, departures=Departures())
