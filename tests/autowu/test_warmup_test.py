"""A warmup whose loss blows up ends at once, at a safe LR, with the weights rolled back."""

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from helpers import classification_data, tiny_classifier
from keras_autowu.core.keras_compat import keras

# A range so wide that the LR blows the loss up long before three tests can agree.
BLOW_UP = dict(min_lr=1e-3, max_lr=1e8, test_interval=4)
# The synthetic streams below are indexed by step, drawn for a warmup that climbs
# steadily (lr_t = 1e-5 * 1e5 ** (t / 1000)), whatever the loss does.
STEADY = dict(departures=Departures(flat_start_speedup=1))


def parabola_then(step_of_trouble, trouble, steps=2000, seed=0):
    rng = np.random.default_rng(seed)
    lrs = 1e-5 * 1e5 ** (np.arange(steps) / 1000)
    losses = 0.3 * (np.log10(lrs) + 2) ** 2 + 0.05 * rng.standard_normal(steps)
    losses[step_of_trouble:] = trouble(losses[step_of_trouble:])
    return losses


@pytest.mark.parametrize(
    "trouble,reason,step",
    [(lambda tail: np.full_like(tail, np.nan), "is nan", 450), (lambda tail: tail + 50.0, "rose to", 500)],
)
def test_diverging_warmup_ends_at_once_below_the_last_healthy_lr(trouble, reason, step, capsys):
    """NaN ends the warmup at the next test; a jump far above the best, at the second."""
    losses = parabola_then(430, trouble)  # lr 0.0013, before the minimum (lr 0.01) is clear
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=1, **STEADY)
    for loss in losses[:510]:
        scheduler.step(loss)
    divergence = scheduler.divergence
    assert divergence is not None and reason in divergence.reason
    assert divergence.step == step and scheduler.switch.step == step and not divergence.fallback
    last_healthy_lr = scheduler.plan.warmup_lr(429 if reason == "is nan" else step - 1)
    assert 1e-4 < divergence.learning_rate <= last_healthy_lr
    assert scheduler.phase == "cooldown" and np.isfinite(scheduler.learning_rate)
    assert f"the warmup ends at step {step}: the {'loss' if reason == 'is nan' else 'mean loss'}" in capsys.readouterr().out


def falling_then_risen(rise_start, rise_stop, steps=400, seed=0):
    """A loss that falls over the warmup, with a jump to above its start in rise_start..rise_stop-1."""
    rng = np.random.default_rng(seed)
    losses = 2.3 - 2.0 * np.arange(steps) / 200 + 0.02 * rng.standard_normal(steps)
    losses[rise_start:rise_stop] = 2.5 + 0.02 * rng.standard_normal(rise_stop - rise_start)
    return losses


def test_one_risen_interval_at_the_last_test_before_the_cap_ends_the_warmup():
    """No later test could confirm the rise, and the cap's LR is higher still."""
    scheduler = keras_autowu.AutoWUScheduler(10, 40, verbose=0, **STEADY)  # cap at step 200, last test at 190
    for loss in falling_then_risen(180, 400)[:200]:
        scheduler.step(loss)
    divergence = scheduler.divergence
    assert divergence is not None and divergence.step == 190 == scheduler.switch.step
    assert "at the last test before the warmup's end" in divergence.reason
    assert divergence.learning_rate <= scheduler.plan.warmup_lr(189)


# The cap (step 200) on the tests' grid, and off it (the last test at 180).
@pytest.mark.parametrize("test_interval,rise_start", [(10, 192), (30, 186)])
def test_a_loss_that_blows_up_after_the_last_test_ends_the_warmup_at_its_cap(test_interval, rise_start, capsys):
    """The losses after the last test are those of the warmup's highest LRs: a blow-up
    there is judged at the cap, and the decay starts below it, from the lowest loss's
    weights, not at the cap's LR."""
    scheduler = keras_autowu.AutoWUScheduler(10, 40, test_interval=test_interval, verbose=1, **STEADY)
    losses = falling_then_risen(rise_start, 400)
    for loss in losses[:199]:
        scheduler.observe([loss])
    at_cap = scheduler.observe([losses[199]])
    divergence = scheduler.divergence
    assert divergence is not None and divergence.step == 200 == scheduler.switch.step
    assert "at the warmup's end" in divergence.reason
    assert divergence.learning_rate <= scheduler.plan.warmup_lr(rise_start - 1)
    assert scheduler.learning_rate == pytest.approx(divergence.learning_rate, rel=1e-3)  # the cosine from there
    assert scheduler.snapshot_step < rise_start and keras_autowu.Request("restore", scheduler.snapshot_step) in at_cap
    assert "ran its full length" not in capsys.readouterr().out
    # The guard's intervals go on from the cap; the restored weights train on, below the best.
    for loss in np.linspace(0.35, 0.1, 200):
        scheduler.observe([loss])
    assert not scheduler.rescues and scheduler.steps_done == 400


def test_one_risen_interval_earlier_in_the_warmup_is_not_a_divergence():
    """Before the last test, a single risen interval may be noise: a second is asked for."""
    scheduler = keras_autowu.AutoWUScheduler(10, 40, verbose=0)
    for loss in falling_then_risen(170, 180)[:200]:
        scheduler.step(loss)
    assert scheduler.divergence is None and scheduler.healthy


def test_a_positive_last_test_before_the_cap_switches_short_of_patience(capsys):
    """Two positive tests, not three, but the next step would take the cap's higher LR."""
    rng = np.random.default_rng(0)
    t = np.arange(400)
    losses = np.where(t < 170, 2.3 - 2.0 * t / 170, 0.3 + 0.7 * ((t - 170) / 20.0) ** 2)
    losses += 0.02 * rng.standard_normal(400)
    scheduler = keras_autowu.AutoWUScheduler(10, 40, verbose=1, **STEADY)  # cap at step 200, last test at 190
    for loss in losses[:200]:
        scheduler.step(loss)
    positives = [test.positive for test in scheduler.tests[-3:]]
    assert positives[-1] and sum(positives) < 3
    assert scheduler.switch is not None and scheduler.switch.step == 190 and scheduler.divergence is None
    # The LR of the loss minimum (step 170), well below the cap's.
    assert 0.5 * scheduler.plan.warmup_lr(170) < scheduler.switch.lr_at_minimum < scheduler.plan.warmup_lr(180)
    assert "the last test before the warmup's end agrees" in capsys.readouterr().out


def test_noisy_healthy_warmups_are_not_called_diverged():
    """Batch noise, even heavy, never cuts a warmup short as a divergence."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        scheduler = keras_autowu.AutoWUScheduler(10, 40, test_interval=2, verbose=0)
        for _ in range(200):
            scheduler.step(2.3 + 0.5 * rng.standard_t(3))
        assert scheduler.divergence is None


def fit_until_blow_up(rollback, epochs=20):
    keras.utils.set_random_seed(0)
    x, y = classification_data(256)
    model = tiny_classifier("sgd")
    autowu = keras_autowu.AutoWU(rollback_on_divergence=rollback, verbose=1, **BLOW_UP)
    history = model.fit(x, y, batch_size=32, epochs=epochs, callbacks=[autowu], verbose=0, shuffle=False)
    return autowu, model, history


def test_blow_up_rolls_back_and_training_recovers(capsys):
    """Weights and optimizer state go back to the lowest loss's test; training goes on from there."""
    autowu, model, history = fit_until_blow_up(rollback=True)
    divergence, losses = autowu.scheduler.divergence, np.asarray(autowu.scheduler.losses)
    assert divergence is not None, "the run is meant to blow up"
    out = capsys.readouterr().out
    assert "the warmup ends at step" in out and "Back to the weights of step" in out
    # The first step after the roll-back starts from healthy weights, not blown-up ones.
    assert losses[divergence.step] < 1e-3 * losses[divergence.step - 1]
    assert all(np.all(np.isfinite(w.numpy())) for w in model.weights)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_rollback_can_be_turned_off():
    """Without the roll-back the LR still drops, but training goes on from the blown-up weights."""
    autowu, _, _ = fit_until_blow_up(rollback=False)
    divergence, losses = autowu.scheduler.divergence, np.asarray(autowu.scheduler.losses)
    assert divergence is not None
    assert losses[divergence.step] > 1e-3 * losses[divergence.step - 1]


def test_the_switch_rolls_back_to_the_weights_of_the_lowest_loss(monkeypatch, capsys):
    """The weights at a switch were trained past the minimum (the loss has risen by then):
    the decay starts from the snapshot of the test interval with the lowest loss."""
    from keras_autowu.core import snapshot as weight_snapshot
    from helpers import fit_on_losses

    restored = []
    monkeypatch.setattr(weight_snapshot.WeightSnapshot, "restore", lambda self, **kwargs: restored.append(self.step))
    rng = np.random.default_rng(0)
    t = np.arange(1200)
    # Down from 2.3 to 0.3 by step 300, then back up 2.0 every 30 steps; after the
    # switch's roll-back, down again from 0.3.
    losses = np.where(t < 300, 2.3 - 2.0 * t / 300, 0.3 + 2.0 * (t - 300) / 30) + 0.05 * rng.standard_normal(1200)
    losses[330:] = np.linspace(0.3, 0.1, 870)
    autowu, _, _ = fit_on_losses(np.minimum(losses, 5.0), 60, test_interval=10, verbose=1)
    scheduler = autowu.scheduler
    assert scheduler.switch.step == 330 and scheduler.divergence is None and scheduler.rescues == []
    means = [np.mean(losses[s - 10 : s]) for s in range(10, 331, 10)]
    assert restored == [10 * (1 + int(np.argmin(means)))] == [300]
    assert "Back to the weights of step 300" in capsys.readouterr().out


def test_a_blow_up_to_huge_losses_does_not_drag_the_hand_over_to_the_start():
    """Losses of 1e13 would dominate the GP's fit and put its minimum at the warmup's
    start (min_lr); clipped to the first interval's highest, the minimum stays put."""
    losses = parabola_then(500, lambda tail: np.full_like(tail, 1e13))  # minimum at step 600 (lr 0.01)
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=0, **STEADY)
    scheduler.observe(losses[:610])
    divergence = scheduler.divergence
    assert divergence is not None and "rose to" in divergence.reason
    assert divergence.learning_rate > 100 * scheduler.config.min_lr
    assert divergence.learning_rate <= scheduler.plan.warmup_lr(499)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_blow_up_before_the_loss_fell_hands_on_an_eighth_of_its_onset(seed, capsys):
    """A loss that sits at its start until it blows up (at step 600, lr 0.01) gives the
    GP a minimum anywhere in its noise, down to min_lr, where the run would then train
    at nothing. The hand-over is an eighth of the onset's learning rate, and the
    switch says where it came from."""
    rng = np.random.default_rng(seed)
    losses = 1.0 + 0.03 * rng.standard_normal(700)
    losses[600:] = np.exp(np.arange(100) * 0.5)  # 1, 1.6, 2.7, ...: clear of the start from step 601
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=1, **STEADY)
    scheduler.observe(losses)
    assert "an eighth of where the loss began to blow up" in capsys.readouterr().out
    divergence, onset_lr = scheduler.divergence, scheduler.plan.warmup_lr(601)
    assert divergence is not None and "rose to" in divergence.reason
    assert divergence.learning_rate == pytest.approx(onset_lr / 8) and divergence.before_the_loss_fell



def test_after_a_blow_up_before_the_loss_fell_the_decay_ramps_in():
    """The roll-back goes to near-initial weights, so the hand-over comes in linearly over
    a tenth of the steps left, as a warmup's; a blow-up after a real fall has no ramp."""
    rng = np.random.default_rng(0)
    losses = 1.0 + 0.03 * rng.standard_normal(700)
    losses[600:] = np.exp(np.arange(100) * 0.5)
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=0, **STEADY)
    scheduler.observe(losses)
    end, ramp = scheduler.state.warmup_end, scheduler.state.ramp_steps
    assert ramp == (scheduler.total_steps - end) // 10
    rates = scheduler.learning_rates(end, end + ramp + 1)
    unramped = scheduler.divergence.learning_rate * 0.5 * (1 + np.cos(np.pi * (np.arange(ramp + 1) + 1) / (scheduler.total_steps - end)))
    np.testing.assert_allclose(rates, unramped * np.minimum(np.arange(1, ramp + 2) / (ramp + 1), 1.0), rtol=1e-5)
    fell = keras_autowu.AutoWUScheduler(50, 40, verbose=0, **STEADY)
    fell.observe(parabola_then(500, lambda tail: tail + 50.0)[:610])
    assert fell.divergence is not None and fell.state.ramp_steps == 0
