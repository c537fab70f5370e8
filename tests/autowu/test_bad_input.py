"""Bad losses and odd run lengths: a clear error at construction, or a warning and a sane LR."""

import warnings

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.core import run_state
from keras_autowu.core.keras_compat import keras
from helpers import fit_on_losses, label_mean

BATCH = 8


def parabola(steps, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps) / steps
    return 1.0 + 4.0 * (t - 0.3) ** 2 + 0.02 * rng.standard_normal(steps)


def assert_sane(autowu, trace):
    """Every step applied a finite, positive LR within [0, max_lr], as the schedule says."""
    assert np.all(np.isfinite(trace)) and np.all(trace >= 0) and np.all(trace <= autowu.config.max_lr)
    np.testing.assert_allclose(trace, autowu.scheduler.learning_rates(), rtol=2e-6, atol=1e-12)


STEPS, EPOCHS = 160, 20


@pytest.mark.parametrize(
    "name,losses,expect",
    [
        ("all NaN", np.full(STEPS, np.nan), "diverged"),
        ("NaN from the first step", np.where(np.arange(STEPS) < 8, np.nan, parabola(STEPS)), "diverged"),
        ("inf in the warmup", np.where(np.arange(STEPS) == 20, np.inf, parabola(STEPS)), "diverged"),
        ("constant", np.full(STEPS, 2.5), "no switch"),
        ("huge", 1e30 * parabola(STEPS), "runs"),
        ("negative", -10.0 + parabola(STEPS), "runs"),
    ],
)
def test_bad_losses_never_crash_nor_give_a_nan_lr(name, losses, expect):
    autowu, trace, _ = fit_on_losses(losses, EPOCHS, test_interval=4)
    assert_sane(autowu, trace)
    scheduler = autowu.scheduler
    if expect == "diverged":
        assert scheduler.divergence is not None and scheduler.switch is not None
        assert scheduler.divergence.step <= 24  # at the first test after the bad loss
    if expect == "no switch":
        assert scheduler.switch is None and scheduler.divergence is None


def test_all_nan_falls_back_to_min_lr():
    """With no finite loss at all, the warmup hands on min_lr (the documented fallback)."""
    autowu, trace, _ = fit_on_losses(np.full(STEPS, np.nan), EPOCHS, test_interval=4)
    divergence = autowu.scheduler.divergence
    assert divergence.fallback and divergence.learning_rate == autowu.config.min_lr
    assert trace[divergence.step] == pytest.approx(autowu.config.min_lr * 0.5 * (1 + np.cos(np.pi / (STEPS - 4))), rel=1e-5)


def test_nan_after_the_warmup_is_rescued_and_terminate_on_nan_still_works():
    """After the warmup a NaN loss makes the guard halve the learning rate from the next
    test on; the user's TerminateOnNaN still stops the run at once."""
    losses = parabola(STEPS)
    losses[48:] = 1.0 + 0.02 * np.random.default_rng(1).standard_normal(STEPS - 48)  # healthy after the minimum
    losses[120] = np.nan
    autowu, trace, _ = fit_on_losses(losses, EPOCHS, test_interval=4, max_warmup_fraction=0.2)
    scheduler = autowu.scheduler
    assert scheduler.phase == "cooldown"
    [rescue] = scheduler.rescues
    assert rescue.step == 124 and rescue.reason == "the loss of step 120 is nan"
    assert_sane(autowu, trace)
    unrescued = keras_autowu.AutoWUScheduler(
        STEPS // EPOCHS, EPOCHS, velocity_momentum=0.9, test_interval=4, max_warmup_fraction=0.2, verbose=0
    )
    unrescued.set_state({**unrescued.get_state(), "losses": np.where(np.isnan(losses), 1.0, losses)})
    np.testing.assert_allclose(trace[:124], unrescued.learning_rates()[:124], rtol=2e-6)
    np.testing.assert_allclose(trace[124:], 0.5 * unrescued.learning_rates()[124:], rtol=2e-6)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(), loss=label_mean)
    x, y = np.zeros((STEPS * BATCH, 4), "float32"), np.repeat(losses, BATCH).astype("float32")
    callbacks = [keras_autowu.AutoWU(test_interval=4, max_warmup_fraction=0.2, verbose=0), keras.callbacks.TerminateOnNaN()]
    model.fit(x, y, batch_size=BATCH, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations.numpy()) == 121  # stopped right after the NaN


@pytest.mark.parametrize(
    "steps,epochs,kwargs",
    [
        (8, 2, dict(test_interval=100)),  # fewer steps than one test interval
        (40, 1, dict(test_interval="epoch")),  # one epoch: the per-epoch test never falls in the warmup
        (1, 1, {}),  # a single step: no warmup, min_lr
    ],
)
def test_runs_too_short_to_test_warn_and_warm_up_to_the_cap(steps, epochs, kwargs):
    autowu, trace, caught = fit_on_losses(parabola(steps), epochs, **kwargs)
    assert any("no GP test falls within the warmup" in m or "too short for a warmup" in m for m in caught)
    assert autowu.scheduler.tests == []
    assert_sane(autowu, trace)
    if steps == 1:
        assert trace[0] == pytest.approx(autowu.config.min_lr)


def test_few_tests_in_the_warmup_warn_with_a_test_interval_to_use():
    """10 epochs with a test per epoch leave 4 tests for 3 positives in a row: say so.
    The default, test_interval="auto", fits 20 in."""
    with pytest.warns(UserWarning, match=r"only 4 GP tests fall .* Pass test_interval=8 \(test_interval='auto'\)") as caught:
        keras_autowu.AutoWUScheduler(34, 10, test_interval="epoch")
    assert caught[0].filename == __file__  # at the caller's line, not keras_autowu's
    with pytest.warns(UserWarning, match=r"only 1 GP test falls within"):
        keras_autowu.AutoWUScheduler(10, 4, test_interval="epoch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert keras_autowu.AutoWUScheduler(34, 10).test_interval == 8
        keras_autowu.AutoWUScheduler(34, 10, test_interval=8)
        keras_autowu.AutoWUScheduler(34, 60, test_interval="epoch")


def test_run_length_arguments_are_checked_at_construction():
    with pytest.raises(ValueError, match=r"steps_per_epoch.*Received steps_per_epoch=0"):
        keras_autowu.AutoWU(steps_per_epoch=0)
    with pytest.raises(ValueError, match=r"total_epochs.*Received total_epochs=1.5"):
        keras_autowu.AutoWU(total_epochs=1.5)
    with pytest.raises(ValueError, match=r"rollback_on_divergence.*Received rollback_on_divergence='no'"):
        keras_autowu.AutoWU(rollback_on_divergence="no")
    with pytest.raises(ValueError, match=r"AutoWU.build needs the run's length.*steps_per_epoch=None"):
        keras_autowu.AutoWU().build(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]))


def test_fit_past_the_end_of_the_run_keeps_it_finished():
    """fit(epochs=...) beyond AutoWU's total_epochs: the extra steps train at the final
    learning rate (0), their losses go nowhere, and the run's record is untouched."""
    extra = 2 * (STEPS // EPOCHS)
    losses = parabola(STEPS + extra)
    # A stream indexed by step, drawn for the steady climb.
    autowu, trace, _ = fit_on_losses(losses, EPOCHS + 2, total_epochs=EPOCHS, test_interval=4, departures=Departures(flat_start_speedup=1))
    scheduler = autowu.scheduler
    assert scheduler.steps_done == STEPS and scheduler.switch is not None
    np.testing.assert_allclose(scheduler.losses, losses[:STEPS].astype(np.float32), rtol=1e-6)
    # What a checkpoint would save: the extra steps' losses did not overwrite the run's.
    saved = run_state.find(autowu.model.optimizer, STEPS).read_losses(0, STEPS)
    np.testing.assert_array_equal(saved, np.asarray(scheduler.losses, np.float32))
    np.testing.assert_allclose(trace[:STEPS], scheduler.learning_rates(), rtol=2e-6, atol=1e-12)
    np.testing.assert_array_equal(trace[STEPS:], np.zeros(extra, np.float32))
    assert scheduler.learning_rates(STEPS, STEPS + 1)[0] == 0.0
