"""The warmup's fast climb over a flat start: when the loss has moved, and the schedule."""

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.autowu import flat_start
from keras_autowu.autowu import schedule
from keras_autowu.autowu.config import AutoWUConfig
from helpers import drive


def noisy(level, steps, noise=0.02, seed=0):
    return level + noise * np.random.default_rng(seed).standard_normal(steps)


@pytest.mark.parametrize("seed", range(5))
def test_batch_noise_alone_has_not_moved(seed):
    """A flat loss with noise 0.05 (2 % of its level), at any window."""
    losses = noisy(2.3, 200, noise=0.05, seed=seed)
    for end in range(30, 201, 5):
        assert flat_start.loss_has_moved(losses[:end], 20, 8) is False


def test_a_fall_of_a_few_noise_widths_has_moved():
    losses = noisy(2.3, 60, noise=0.01)
    losses[52:] -= 0.05  # 1 % of the level, 5 noise widths
    assert flat_start.loss_has_moved(losses[:52], 20, 8) is False
    assert flat_start.loss_has_moved(losses, 20, 8) is True


def test_a_move_within_the_noise_or_under_the_floor_has_not():
    wide = noisy(2.3, 60, noise=0.2)
    wide[52:] -= 0.1
    assert flat_start.loss_has_moved(wide, 20, 8) is False
    exact = np.full(60, 2.3)
    exact[52:] -= 0.5 * flat_start.MIN_MOVE * 2.3  # noiseless, but under the floor
    assert flat_start.loss_has_moved(exact, 20, 8) is False


def test_a_rise_and_a_non_finite_loss_have_moved():
    rising = noisy(2.3, 60, noise=0.01)
    rising[52:] += 0.1
    assert flat_start.loss_has_moved(rising, 20, 8) is True
    broken = noisy(2.3, 60, noise=0.01)
    broken[-1] = np.nan
    assert flat_start.loss_has_moved(broken, 20, 8) is True


def test_too_few_losses_decide_nothing():
    assert flat_start.loss_has_moved(noisy(2.3, 27), 20, 8) is None


@pytest.mark.parametrize(
    "test_interval,speedup,chunk,steps_per_epoch,expected",
    [
        (20, 4, 1, 100, 5),
        (20, 1, 1, 100, 20),  # no fast climb: the tests alone
        (22, 4, 1, 100, 5),  # rounded down: never further apart than a quarter test
        (3, 4, 1, 100, 1),
        (32, 4, 8, 96, 8),
        (32, 4, 32, 96, 32),  # a chunk is a whole test interval
        (48, 4, 8, 100, 48),  # chunks restart every epoch, off the grid: at the tests
    ],
)
def test_checks_come_speedup_times_a_test_on_the_loops_chunks(test_interval, speedup, chunk, steps_per_epoch, expected):
    assert flat_start.check_interval(test_interval, speedup, chunk, steps_per_epoch) == expected


def plan_and_state(fast_end, total_steps=2000, **kwargs):
    speedup = kwargs.pop("flat_start_speedup", Departures().flat_start_speedup)
    plan = schedule.SchedulePlan.from_config(AutoWUConfig(**kwargs), 10, total_steps // 10, speedup)
    return plan, schedule.state_with_fast_end(plan, fast_end)


@pytest.mark.parametrize("warmup_type", ["exp", "linear"])
def test_the_climb_is_speedup_times_faster_until_fast_end_then_steady(warmup_type):
    """Step s of the warmup has the steady climb's learning rate of step 4 * s until
    fast_end, and of step s + 3 * fast_end after it: continuous, and at max_lr 3 *
    fast_end steps before the steady climb's cap."""
    plan, state = plan_and_state(100, warmup_type=warmup_type)
    steady_plan, steady_state = plan_and_state(0, warmup_type=warmup_type, flat_start_speedup=1)
    steps = np.arange(state.warmup_end)
    lrs = schedule.learning_rate_at(steps, state, plan)
    equivalent = np.where(steps < 100, 4 * steps, steps + 300)
    np.testing.assert_allclose(lrs, schedule.learning_rate_at(equivalent, steady_state, steady_plan), rtol=1e-5)
    assert state.warmup_end == 1000 - 300 and steady_state.warmup_end == 1000
    assert state.decay_base_lr == pytest.approx(steady_state.decay_base_lr, rel=1e-5)


def test_the_longest_fast_climb_covers_the_span_and_ends_before_the_cap():
    plan, state = plan_and_state(None or 0)
    initial = schedule.initial_state(plan)
    assert initial.fast_end == plan.longest_fast_climb() == 600 // 4
    assert initial.warmup_end == 1000 - 3 * 150
    assert plan.warmup_lr(150, 150) == pytest.approx(1e-5 * 1e5 ** 0.6, rel=1e-5)  # three decades
    for total_steps in (4, 10, 20, 41):  # tiny runs: the cap stays after the fast climb
        tiny = schedule.SchedulePlan.from_config(AutoWUConfig(), 1, total_steps, Departures().flat_start_speedup)
        assert schedule.initial_state(tiny).warmup_end > tiny.longest_fast_climb()


def test_a_steady_climb_has_no_fast_end():
    plan, state = plan_and_state(0, flat_start_speedup=1)
    assert plan.longest_fast_climb() == 0 and schedule.initial_state(plan) == state


def test_a_resumed_run_replays_the_end_of_the_fast_climb():
    """The end of the fast climb is a function of the losses: set_state replays it."""
    original = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    drive(original, 700)
    assert 0 < original.state.fast_end < original.plan.longest_fast_climb() and original.switch is not None
    resumed = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    resumed.set_state(original.get_state())
    assert resumed.state == original.state
    np.testing.assert_array_equal(resumed.learning_rates(), original.learning_rates())


def test_the_end_of_the_fast_climb_is_printed(capsys):
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=1)
    drive(scheduler, 200)
    step = scheduler.state.fast_end
    assert f"AutoWU: the loss started to fall by step {step} (learning rate " in capsys.readouterr().out


def test_the_gp_minimum_maps_through_the_kinked_climb():
    """The GP's x (a share of the steps so far) maps to the learning rate the warmup had
    at that step, fast climb included: the minimum of slow_start is at lr 1e-2."""
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    drive(scheduler, 1000)
    assert scheduler.state.fast_end > 0
    assert 1e-2 / 1.5 < scheduler.switch.lr_at_minimum < 1e-2 * 1.5


@pytest.mark.parametrize("value", [0, 2.5, "4", True])
def test_a_bad_speedup_is_refused_by_name(value):
    with pytest.raises(ValueError, match="flat_start_speedup"):
        Departures(flat_start_speedup=value)


def test_a_loss_that_moved_up_is_said_to_rise(capsys):
    """A blow-up over a flat start ends the fast climb too; the message says which way
    the loss went."""
    losses = 1.0 + 0.01 * np.random.default_rng(0).standard_normal(300)
    losses[100:] = 1.0 + np.exp(np.arange(200) * 0.2)
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=1)
    scheduler.observe(losses[:150])
    said = capsys.readouterr().out
    assert "AutoWU: the loss started to rise by step" in said and "started to fall" not in said
