"""The phase state machine, driven with synthetic losses, no network."""

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.gp import minimum_test


def run(loss_of_lr, steps_per_epoch=50, total_epochs=40, seed=0, **kwargs):
    """Drives a scheduler through a whole run with loss = loss_of_lr(lr, rng)."""
    kwargs.setdefault("verbose", 0)
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch, total_epochs, **kwargs)
    rng = np.random.default_rng(seed)
    lrs = [scheduler.learning_rate]
    for _ in range(scheduler.total_steps):
        lrs.append(scheduler.step(loss_of_lr(lrs[-1], rng)))
    return scheduler, np.array(lrs[:-1])


def parabola_in_log_lr(best_lr=0.01, noise=0.05):
    # The run ends at lr = 0: clamp before the log.
    return lambda lr, rng: 0.3 * (np.log10(max(lr, 1e-9)) - np.log10(best_lr)) ** 2 + noise * rng.standard_normal()


@pytest.mark.parametrize("best_lr", [3e-3, 0.03])
def test_parabola_switches_after_its_minimum_near_the_best_lr(best_lr):
    """A loss with its minimum at best_lr ends the warmup soon after, near best_lr."""
    scheduler, lrs = run(parabola_in_log_lr(best_lr))
    switch = scheduler.switch
    assert switch is not None
    minimum_step = 1000 * np.log(best_lr / 1e-5) / np.log(1e5)  # lr_t = 1e-5 * 1e5**(t / 1000)
    assert minimum_step < switch.step < minimum_step + 300
    assert best_lr / 1.5 < switch.lr_at_minimum < best_lr * 1.5
    assert switch.handover_lr <= switch.lr_at_minimum
    assert lrs[switch.step] == pytest.approx(switch.handover_lr * 0.5 * (1 + np.cos(np.pi / (2000 - switch.step))), rel=1e-5)
    assert scheduler.phase == "cooldown" and scheduler.learning_rate < 1e-6


def test_each_switch_needs_patience_positive_tests_in_a_row():
    """The switch comes at the patience-th positive test of an unbroken run of them."""
    scheduler, _ = run(parabola_in_log_lr(), patience=2)
    positives = [t.positive for t in scheduler.tests]
    assert positives[-2:] == [True, True] and scheduler.switch.step == scheduler.tests[-1].step
    assert not any(a and b for a, b in zip(positives[:-2], positives[1:-1]))


def test_falling_loss_never_switches_and_warms_up_to_the_cap():
    """A loss that keeps falling runs the warmup to its cap; the decay starts at its last LR."""
    scheduler, lrs = run(
        lambda lr, rng: 2.0 - 0.3 * np.log10(max(lr, 1e-9) / 1e-5) + 0.02 * rng.standard_normal(), departures=Departures(flat_start_speedup=1)
    )
    assert scheduler.switch is None
    assert all(not t.positive for t in scheduler.tests[-5:])
    assert lrs[999] == pytest.approx(1e-5 * 1e5 ** (999 / 1000), rel=1e-5)
    assert lrs[1000] == pytest.approx(lrs[999] * 0.5 * (1 + np.cos(np.pi / 1000)), rel=1e-5)


def test_tests_run_every_test_interval_during_the_warmup_only():
    """Tests fall at multiples of test_interval, and stop with the warmup."""
    scheduler, _ = run(parabola_in_log_lr(), test_interval=30)
    steps = [t.step for t in scheduler.tests]
    assert steps == list(range(30, scheduler.switch.step + 1, 30))


def test_non_finite_losses_end_the_warmup_and_never_crash():
    """NaN and inf losses in the warmup end it as a divergence, with a finite LR from the GP."""
    base = parabola_in_log_lr()

    def loss(lr, rng):
        value = base(lr, rng)
        return np.nan if rng.uniform() < 0.1 else (np.inf if rng.uniform() < 0.05 else value)

    scheduler, lrs = run(loss)
    assert scheduler.divergence is not None and not scheduler.divergence.fallback
    assert scheduler.switch is not None and np.all(np.isfinite(lrs))


def test_same_losses_same_decisions():
    """Two schedulers fed the same losses with the same seed decide identically."""
    a, lrs_a = run(parabola_in_log_lr(), seed=3)
    b, lrs_b = run(parabola_in_log_lr(), seed=3)
    assert a.switch.step == b.switch.step
    np.testing.assert_array_equal(lrs_a, lrs_b)


def test_gp_failure_counts_as_negative_and_warns_once(monkeypatch):
    """A non-finite GP result makes that test negative, warns once, and training goes on."""
    real = minimum_test.compiled_gp_minimum_test

    def broken(state, *args):
        new_state, result = real(state, *args)
        return new_state, result._replace(passed_probability=result.passed_probability * np.nan)

    monkeypatch.setattr(minimum_test, "compiled_gp_minimum_test", broken)
    with pytest.warns(RuntimeWarning, match="failed numerically") as record:
        scheduler, lrs = run(parabola_in_log_lr(), total_epochs=20)
    assert len([w for w in record if "failed numerically" in str(w.message)]) == 1
    assert not any(t.positive for t in scheduler.tests)
    # No test ends the warmup; the loss, risen by half its progress at the cap, does.
    assert scheduler.switch is None or scheduler.divergence.step == scheduler.switch.step == scheduler.tests[-1].step
    assert np.all(np.isfinite(lrs))


def test_reduce_on_plateau_in_the_decay_phase():
    """decay_phase_stat='loss' multiplies the LR by the factor after 6 epochs without progress.

    The loss drops after the warmup's last test (step 60), so the warmup runs to its cap.
    """
    scheduler, lrs = run(
        lambda lr, rng: 1.0 if lr > 0.1 else 1.5, steps_per_epoch=20, total_epochs=40, departures=Departures(flat_start_speedup=1),
        max_warmup_fraction=0.1, immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5,
    )
    decay_lr = lrs[80]
    # Best at the first decay epoch (4); epochs 5..10 without progress; reduced from epoch 11 on.
    np.testing.assert_allclose(lrs[80:220], decay_lr, rtol=1e-6)
    np.testing.assert_allclose(lrs[220:340], decay_lr * 0.5, rtol=1e-6)


def test_reset_starts_a_new_run():
    """reset() returns the scheduler to step 0 of the warmup."""
    scheduler, _ = run(parabola_in_log_lr())
    scheduler.reset()
    assert scheduler.steps_done == 0 and scheduler.switch is None and scheduler.phase == "warmup"
    assert scheduler.learning_rate == pytest.approx(1e-5)


def test_flat_noisy_loss_does_not_switch():
    """A loss that does not depend on the LR (the early warmup) is no reason to stop."""
    scheduler, _ = run(lambda lr, rng: 2.3 + 0.05 * rng.standard_normal(), total_epochs=20)
    assert scheduler.switch is None


def test_loss_rising_from_the_start_switches_early_near_min_lr():
    """A loss that only rises has its minimum at the start: switch soon, at a small LR."""
    scheduler, _ = run(lambda lr, rng: 1.0 + 0.3 * np.log10(max(lr, 1e-9) / 1e-5) + 0.05 * rng.standard_normal())
    assert scheduler.switch is not None and scheduler.switch.step <= 4 * scheduler.test_interval
    assert scheduler.switch.lr_at_minimum < 1e-4


def test_a_checkpointed_run_continues_only_while_its_steps_fit():
    """The callback's start-or-resume decision, made by the controller."""
    scheduler = keras_autowu.AutoWUScheduler(10, 10, verbose=0)
    assert scheduler.continues(40, 40)
    assert scheduler.continues(0, 0)
    assert not scheduler.continues(40, None)  # no run in the checkpoint
    assert not scheduler.continues(100, 100)  # the run is complete
    assert not scheduler.continues(40, 100) and not scheduler.continues(40, -1)  # its steps do not fit
    assert not scheduler.continues(40, 40, ended_here=True)  # a new fit after one that ended here


def test_the_learning_rate_left_after_a_run_is_the_decays_start_not_zero():
    """After the switch, the rate the decay started from, halved once per rescue; in
    the warmup, the last one applied."""
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    scheduler.observe(np.full(20, 2.3))
    assert scheduler.phase == "warmup"
    assert scheduler.learning_rate_after_run() == pytest.approx(scheduler.learning_rates(19, 20)[0])
    scheduler.state = scheduler.state._replace(warmup_end=20, decay_base_lr=0.2, rescue_steps=(30,))
    scheduler.steps_done = 40
    assert scheduler.learning_rate_after_run() == pytest.approx(0.1)
