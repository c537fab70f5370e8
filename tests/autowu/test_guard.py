"""After the warmup a guard watches the loss: a divergence is rescued, at most max_rescues times."""

import warnings

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.core import snapshot as weight_snapshot
from keras_autowu.core.keras_compat import keras, tf
import helpers
from helpers import learning_rate_trace, needs_tensorflow, trace_learning_rates

STEPS_PER_EPOCH, EPOCHS, INTERVAL = 20, 60, 10  # 1,200 steps, a test every 10


def switched_then(trouble_start, trouble_stop, trouble=3.0, seed=0):
    """Down from 2.3 to 0.3 by step 300, up past the minimum (the switch comes at 330,
    with a roll-back), then down from 0.25 with `trouble` in trouble_start..trouble_stop-1."""
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS_PER_EPOCH * EPOCHS)
    losses = np.where(t < 300, 2.3 - 2.0 * t / 300, np.minimum(0.3 + 2.0 * (t - 300) / 30, 5.0))
    losses[330:] = np.linspace(0.25, 0.1, t.size - 330)
    losses[trouble_start:trouble_stop] = trouble
    return losses + 0.02 * rng.standard_normal(t.size)


def feed(losses, **kwargs):
    return helpers.feed(losses, STEPS_PER_EPOCH, EPOCHS, **{"test_interval": INTERVAL, **kwargs})


def test_a_blow_up_after_the_switch_is_rescued(capsys):
    """Two risen intervals after the switch: the LR halves from that step on, and the
    last snapshot whose own loss was healthy is asked for back. The trouble starts with
    the loss of step 600, that is, with the weights of the snapshot taken at step 600:
    the rescue goes back to step 590's."""
    scheduler, requests = feed(switched_then(600, 620), verbose=1)
    assert scheduler.switch.step == 330
    [rescue] = scheduler.rescues
    assert rescue.step == 620 and "rose to" in rescue.reason and rescue.restore_step == 590
    assert keras_autowu.Request("restore", 590) in requests
    unrescued, _ = feed(switched_then(600, 620), max_rescues=0)
    assert unrescued.rescues == []
    np.testing.assert_allclose(scheduler.learning_rates()[:620], unrescued.learning_rates()[:620], rtol=1e-6)
    np.testing.assert_allclose(scheduler.learning_rates()[620:], 0.5 * unrescued.learning_rates()[620:], rtol=1e-6)
    assert rescue.learning_rate == pytest.approx(0.5 * rescue.learning_rate_before)
    assert "rescue 1 of at most 5 at step 620: " in capsys.readouterr().out


def test_a_snapshot_whose_own_loss_blew_up_is_discarded_not_restored():
    """The losses before a snapshot cannot see its last update. On MNIST-1D with SGD at
    batch 2048 (and a faster warmup than the default), the update before a snapshot
    took the loss from 2.0 to 5.9; restoring those weights after each of five rescues
    killed the run. The loss of the step after the snapshot is its own: blown up, the
    snapshot is discarded."""
    losses = switched_then(0, 0)
    losses[600] = 6.0  # the snapshot at 600 is bad; the interval 590..599 was fine
    losses[601:620] = 3.0
    scheduler, requests = feed(losses)
    assert keras_autowu.Request("snapshot", 600) in requests
    assert keras_autowu.Request("discard", 600) in requests
    assert scheduler.rescues[0].restore_step == 590
    assert keras_autowu.Request("restore", 600) not in requests


def apply(requests, held):
    """Carries the requests out on a dict of copies, as a training loop does; fails on
    a request for a copy that is not held."""
    restored = []
    for request in requests:
        if request.kind == "snapshot":
            held[request.step] = request.step
        elif request.kind == "discard":
            del held[request.step]
        else:
            restored.append(held[request.step])
        assert len(held) <= 2
    return restored


@pytest.mark.parametrize("trouble", [(600, 620), (600, 1200), (607, 1200)])
def test_the_requests_hold_at_most_two_copies_and_name_only_held_ones(trouble):
    scheduler = keras_autowu.AutoWUScheduler(STEPS_PER_EPOCH, EPOCHS, test_interval=INTERVAL, verbose=0)
    held = {}
    for chunk in np.array_split(switched_then(*trouble), 37):  # any chunking
        apply(scheduler.observe(chunk), held)
    assert scheduler.snapshot_step in held and scheduler.rescues


def test_a_restored_scheduler_names_only_copies_it_asked_for_after_the_restart():
    """The copies of the weights do not survive a restart: set_state asks for a new
    one, and no later request names one from before (the loop would have none)."""
    losses = switched_then(600, 620)
    original, _ = feed(losses[:605])
    restored = keras_autowu.AutoWUScheduler(STEPS_PER_EPOCH, EPOCHS, test_interval=INTERVAL, verbose=0)
    held = {}
    assert apply(restored.set_state(original.get_state()), held) == [] and list(held) == [605]
    restored_steps = []
    for chunk in np.array_split(losses[605:], 13):
        restored_steps += apply(restored.observe(chunk), held)
    # The copy of step 605 failed its own loss (the trouble had begun): nothing to put back.
    assert [r.step for r in restored.rescues] == [620] and restored_steps == []


def test_one_risen_interval_is_not_a_divergence():
    scheduler, _ = feed(switched_then(600, 607))
    assert scheduler.rescues == []


def test_a_loss_that_drifts_up_after_the_switch_is_rescued(capsys):
    """A hand-over LR a little too high makes the loss climb, not blow up: in `make demo`
    (LAMB on digits) the interval means after the switch went 0.14, 0.18, 0.32, 0.21,
    0.68, 0.90 from a best of 0.13, far from half the progress (1.2). Three times the
    best, a fifth of the progress back, two intervals in a row: rescued. Step 600's own
    loss has not blown up, so its snapshot stays the one to go back to."""
    scheduler, requests = feed(switched_then(600, 620, trouble=0.6), verbose=1)
    [rescue] = scheduler.rescues
    assert rescue.step == 620 and rescue.restore_step == 600
    assert keras_autowu.Request("restore", 600) in requests
    assert "rose to 0.59" in rescue.reason and rescue.reason.endswith("more than twice its best of 0.1909, for the second interval in a row")
    assert "rescue 1 of at most 5 at step 620" in capsys.readouterr().out


@pytest.mark.parametrize(
    "trouble, why",
    [(0.3, "twice the best, but not a tenth of the progress back"), (0.39, "a tenth of the progress back, not twice the best")],
)
def test_a_small_rise_late_in_the_run_is_not_a_drift(trouble, why):
    """Late in a run the best is 0.13: a loss of 0.3 has doubled it by a hair's width of
    the progress from 2.3; an earlier rise to 0.39 from a best of 0.2 has not doubled."""
    start = 1000 if trouble == 0.3 else 600
    scheduler, _ = feed(switched_then(start, start + 40, trouble=trouble))
    assert scheduler.rescues == [], why


def test_a_loss_below_zero_never_drifts():
    """Doubling means nothing for a loss that is negative at its best (a log-likelihood
    with a constant dropped): only the rise by half the progress counts there."""
    losses = switched_then(600, 640, trouble=0.6) - 1.0
    scheduler, _ = feed(losses)
    assert scheduler.switch is not None and scheduler.rescues == []


def switched_then_held_at(level, seed=0):
    """`switched_then`, but after the switch (at 330, back to the best's weights) the
    loss stays at `level` for the intervals 330..359, then falls from 0.25 as before."""
    losses = switched_then(0, 0, seed=seed)
    losses[330:360] = level + 0.02 * np.random.default_rng(seed + 1).standard_normal(30)
    return losses


def test_a_hand_over_that_never_beats_the_warmups_best_is_rescued(capsys):
    """`make demo` (LAMB on the digits): after the switch the interval means went 0.14,
    0.18, 0.32 from a best of 0.13, then 0.68 and 0.90 with a spike to 3.5, and the
    drift rule rescued at the sixth interval. The weights start from the best's, so a
    learning rate that trains beats that best: none of the first three intervals does,
    and the third already rescues, going back to the best's weights."""
    best_before = 0.33  # the warmup's best interval mean (steps 290..299; its snapshot: 300)
    scheduler, requests = feed(switched_then_held_at(1.3 * best_before), verbose=1)
    assert scheduler.switch.step == 330
    [rescue] = scheduler.rescues
    assert rescue.step == 360 and "did not get back below the warmup's best" in rescue.reason
    assert "in the 3 test intervals after the switch at step 330" in rescue.reason
    assert rescue.restore_step == 300 and requests.count(keras_autowu.Request("restore", 300)) == 2  # the switch's, the rescue's
    assert rescue.learning_rate == pytest.approx(0.5 * rescue.learning_rate_before)
    assert "rescue 1 of at most 5 at step 360" in capsys.readouterr().out
    # Not a drift: 1.3 times the best, two intervals in a row, is no rescue without the trial.
    untried, _ = feed(switched_then_held_at(1.3 * best_before), departures=Departures(handover_trial=0))
    assert untried.rescues == []
    # A longer trial waits longer, and then the hand-over beats the best.
    patient, _ = feed(switched_then_held_at(1.3 * best_before), departures=Departures(handover_trial=4))
    assert patient.rescues == []


@pytest.mark.parametrize("intervals_at_the_level", [1, 2])
def test_one_interval_below_the_warmups_best_passes_the_trial(intervals_at_the_level):
    """The trial ends at the first interval whose mean beats the best: a later rise is
    the drift rule's to judge."""
    losses = switched_then(0, 0)
    end = 330 + 10 * intervals_at_the_level
    losses[330:end] = 0.4
    losses[end : end + 10] = 0.2  # below the best (0.33)
    losses[end + 10 : 400] = 0.4  # above it again, within the first three intervals' reach
    scheduler, _ = feed(losses)
    assert scheduler.rescues == []


def test_the_trial_needs_the_guard():
    """max_rescues=0 is the reference's run: no guard, so no trial either."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler, _ = feed(switched_then_held_at(0.4), max_rescues=0)
    assert scheduler.rescues == []


def test_a_failed_trial_is_replayed_from_the_losses():
    """A resumed run makes the trial's rescue again, from the losses alone."""
    original, _ = feed(switched_then_held_at(0.4))
    restored = keras_autowu.AutoWUScheduler(STEPS_PER_EPOCH, EPOCHS, test_interval=INTERVAL, verbose=0)
    restored.set_state(original.get_state())
    assert [r.step for r in original.rescues] == [360] and restored.rescues == original.rescues
    np.testing.assert_array_equal(restored.learning_rates(), original.learning_rates())


def test_rescues_are_bounded_then_warned_about_once():
    """A loss that stays blown up is rescued max_rescues times, then reported once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler, _ = feed(switched_then(600, 1200), max_rescues=2)
    assert [r.step for r in scheduler.rescues] == [620, 640]
    spent = [w for w in caught if "after 2 rescues (max_rescues=2)" in str(w.message)]
    assert len(spent) == 1 and "diverged at step 660" in str(spent[0].message)


def test_a_network_that_dies_within_an_interval_is_not_snapshotted():
    """The interval 600..609 ends dead, though its mean has not risen: its end's weights
    are no snapshot to go back to, so the rescue restores step 600's."""
    losses = switched_then(607, 1200, trouble=2.3)
    scheduler, requests = feed(losses, max_rescues=1)
    snapshots = [r.step for r in requests if r.kind == "snapshot"]
    assert 600 in snapshots and 610 not in snapshots
    assert scheduler.rescues[0].restore_step == 600


def test_the_rescue_is_replayed_from_the_losses():
    """set_state re-makes the rescues, so a resumed run continues at the halved LR."""
    original, _ = feed(switched_then(600, 620))
    restored = keras_autowu.AutoWUScheduler(STEPS_PER_EPOCH, EPOCHS, test_interval=INTERVAL, verbose=0)
    restored.set_state(original.get_state())
    assert restored.rescues == original.rescues
    np.testing.assert_array_equal(restored.learning_rates(), original.learning_rates())


def test_the_warmup_reaching_its_cap_says_so(capsys):
    """A loss that falls all through the warmup hands the cap's LR on, with a line."""
    losses = np.linspace(2.3, 0.3, STEPS_PER_EPOCH * EPOCHS)
    scheduler, _ = feed(losses, verbose=1)
    assert scheduler.switch is None
    # A loss that falls from the start ends the fast climb at its first check.
    cap = scheduler.plan.warmup_cap(scheduler.state.fast_end)
    assert 0 < scheduler.state.fast_end < 2 * scheduler.test_interval and cap < 600
    assert f"the warmup ran its full length to step {cap} with no switch" in capsys.readouterr().out


def test_with_sgds_velocity_the_cap_hands_on_what_the_velocity_averaged(capsys):
    """A warmup that reaches its cap hands on, for a velocity of momentum 0.9 (SGD), the
    climb's learning rate as the velocity averaged it, as a switch does; it is in the
    schedule before the cap. Without a velocity (Adam, LAMB), the cap's own."""
    losses = np.linspace(2.3, 0.3, STEPS_PER_EPOCH * EPOCHS)
    sgd = keras_autowu.AutoWUScheduler(STEPS_PER_EPOCH, EPOCHS, velocity_momentum=0.9, test_interval=INTERVAL, verbose=1)
    sgd.observe(losses[:300])
    cap = sgd.plan.warmup_cap(sgd.state.fast_end)
    assert sgd.switch is None and 300 < cap < 600
    climb = sgd.plan.warmup_lrs(np.arange(cap), sgd.state.fast_end)
    averaged = float(0.1 * 0.9 ** np.arange(cap) @ climb[::-1])
    assert averaged < 0.9 * climb[-1]
    assert sgd.learning_rates(cap, cap + 1)[0] == pytest.approx(averaged, rel=1e-5)
    sgd.observe(losses[300:])
    assert sgd.switch is None and sgd.state.decay_base_lr == pytest.approx(averaged)
    assert "as the optimizer's momentum averaged the climb" in capsys.readouterr().out
    plain, _ = feed(losses)
    cap = plain.plan.warmup_cap(plain.state.fast_end)
    assert plain.state.decay_base_lr == pytest.approx(plain.plan.warmup_lr(cap - 1, plain.state.fast_end))


def test_a_warmup_too_short_for_a_test_still_says_it_reached_its_cap(capsys):
    """No test falls within a warmup of 8 steps: there is no test at its cap either,
    but the line that the cap's LR is handed on is still printed."""
    with pytest.warns(UserWarning, match="no GP test falls within the warmup"):
        scheduler = keras_autowu.AutoWUScheduler(8, 2, test_interval=100, departures=Departures(flat_start_speedup=1), verbose=1)
    for loss in np.linspace(2.3, 2.0, 16):
        scheduler.observe([loss])
    assert scheduler.tests == [] and scheduler.switch is None
    assert "the warmup ran its full length to step 8 with no switch" in capsys.readouterr().out


def step_indexed_fit(losses, epochs, callbacks=(), **autowu_kwargs):
    """fit() on a one-weight model whose loss at optimizer step i is losses[i], so that a
    resumed run sees the same losses as an uninterrupted one; returns (autowu, LR trace)."""
    table = tf.constant(np.asarray(losses, np.float32))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(momentum=0.9)

    def step_loss(y_true, y_pred):
        step = tf.minimum(tf.cast(optimizer.iterations, tf.int32), len(losses) - 1)
        return tf.gather(table, step) + 0.0 * tf.reduce_mean(y_pred)

    metric, trace = learning_rate_trace(optimizer, len(losses))
    model.compile(optimizer=optimizer, loss=step_loss, metrics=[metric])
    trace_learning_rates(model)
    autowu_kwargs = {"verbose": 0, "test_interval": INTERVAL, **autowu_kwargs}
    autowu = keras_autowu.AutoWU(**autowu_kwargs)
    x = np.zeros((STEPS_PER_EPOCH, 1), "float32")
    model.fit(x, x, batch_size=1, epochs=epochs, callbacks=[autowu, *callbacks], verbose=0, shuffle=False)
    return autowu, trace.numpy()


@needs_tensorflow("the loss reads the optimizer's step, which JAX's stateless step does not show a loss")
def test_fit_rescues_and_rolls_back(monkeypatch, capsys):
    """Through model.fit: the callback restores the snapshot the scheduler names, and
    every step applies the rescued schedule."""
    restored = []
    monkeypatch.setattr(weight_snapshot.WeightSnapshot, "restore", lambda self, **kwargs: restored.append(self.step))
    autowu, trace = step_indexed_fit(switched_then(600, 620), EPOCHS, verbose=1)
    assert [r.step for r in autowu.scheduler.rescues] == [620]
    assert restored == [300, 590]  # the switch's roll-back, then the rescue's
    np.testing.assert_allclose(trace, autowu.scheduler.learning_rates(), rtol=2e-6, atol=1e-12)
    assert "Back to the weights of step 590" in capsys.readouterr().out


@pytest.mark.parametrize("preempt_at", [610, 640])
@needs_tensorflow("the loss reads the optimizer's step, which JAX's stateless step does not show a loss")
def test_a_run_resumed_around_a_rescue_continues_as_the_uninterrupted_one(tmp_path, preempt_at):
    """BackupAndRestore, preempted just before or after the rescue at step 620."""
    from helpers import Preempted, PreemptAt

    losses = switched_then(600, 620)
    reference, reference_trace = step_indexed_fit(losses, EPOCHS)
    backup = lambda: keras.callbacks.BackupAndRestore(str(tmp_path))  # noqa: E731
    with pytest.raises(Preempted):
        step_indexed_fit(losses, EPOCHS, [backup(), PreemptAt(preempt_at)])
    resumed, trace = step_indexed_fit(losses, EPOCHS, [backup()])
    # The copies of the weights do not survive the restart, so what a rescue can put
    # back may differ; the decisions and the learning rates do not.
    decisions = lambda autowu: [r._replace(restore_step=None) for r in autowu.scheduler.rescues]  # noqa: E731
    assert decisions(resumed) == decisions(reference) and len(reference.scheduler.rescues) == 1
    restart = preempt_at // STEPS_PER_EPOCH * STEPS_PER_EPOCH
    np.testing.assert_allclose(trace[restart:], reference_trace[restart:], rtol=1e-6)

