"""The hand-over rules, on a posterior mean whose points are known."""

import numpy as np
import pytest

import keras_autowu
from keras_autowu.autowu import handover

GRID = np.linspace(0.0, 1.0, 500)


def sigmoid_then_rise():
    """Flat, a fall centred at x = 0.4 (steepest there), its minimum at x = 0.8, then up."""
    fall = 2.0 / (1.0 + np.exp(-(GRID - 0.4) * 20.0))
    rise = 30.0 * np.maximum(GRID - 0.8, 0.0) ** 2
    return (2.3 - fall + rise)[None, :]


def test_both_rules_start_from_the_argmin_of_each_prediction():
    curves = np.stack([sigmoid_then_rise()[0], np.roll(sigmoid_then_rise()[0], -50)])
    x = handover.handover_x(curves)
    assert x.shape == (2,) and np.all(x == GRID[np.argmin(curves, axis=-1)])
    flat_start_minimum = np.linspace(1.0, 2.0, 500)[None, :]  # the minimum at x = 0
    assert handover.handover_x(flat_start_minimum)[0] == 0.0


def test_the_removed_rules_are_refused_with_the_two_that_remain():
    """The five rules that lost their benchmarks are gone; the error names the two."""
    for removed in ("lag_corrected", "gp_minimum/2", "gp_minimum/4", "steepest", "drop_share"):
        with pytest.raises(ValueError, match=r"one of \('momentum_corrected', 'gp_minimum'\)\. Received lr_choice="):
            keras_autowu.AutoWUScheduler(10, 10, lr_choice=removed)


def test_velocity_average_is_what_a_held_learning_rate_must_be_to_keep_the_velocity():
    """Held from here on, the average keeps a velocity v <- momentum * v + lr * g (g = 1)
    at the size the climb gave it: v = average / (1 - momentum)."""
    for climb in (1.1 ** np.arange(400), 1.01 ** np.arange(40), np.full(300, 0.1), np.array([0.1])):
        velocity = 0.0
        for lr in climb:
            velocity = 0.9 * velocity + lr
        assert handover.velocity_average(climb, 0.9) / (1 - 0.9) == pytest.approx(velocity)
    climb = 1.1 ** np.arange(400)  # a long steady climb: the known closed form
    assert handover.velocity_average(climb, 0.9) / climb[-1] == pytest.approx(0.1 / (1 - 0.9 / 1.1))
    assert handover.velocity_average([0.5, 0.1], 0.0) == 0.1


def switch_on_a_parabola(steps_per_epoch, lr_choice, velocity_momentum=0.0):
    """The switch of a run of 40 epochs whose loss has its minimum at lr = 0.01."""
    scheduler = keras_autowu.AutoWUScheduler(
        steps_per_epoch, 40, velocity_momentum=velocity_momentum, lr_choice=lr_choice, verbose=0
    )
    rng = np.random.default_rng(0)
    lr = scheduler.learning_rate
    while scheduler.switch is None and scheduler.steps_done < scheduler.total_steps:
        lr = scheduler.step(0.3 * (np.log10(lr) + 2.0) ** 2 + 0.05 * rng.standard_normal())
    assert scheduler.switch is not None and scheduler.divergence is None
    return scheduler.switch, scheduler.total_steps


def test_momentum_corrected_hands_on_the_minimum_as_the_velocity_averaged_it():
    """A run five times shorter climbs faster per step; its velocity lags further behind."""
    corrections = []
    for steps_per_epoch in (50, 10):
        switch, total_steps = switch_on_a_parabola(steps_per_epoch, "momentum_corrected", velocity_momentum=0.9)
        climb_per_step = 1e5 ** (1 / (total_steps // 2))  # 1e-5 to 1 over half the run
        expected = switch.lr_at_minimum * 0.1 / (1 - 0.9 / climb_per_step)
        assert switch.handover_lr == pytest.approx(expected, rel=1e-3)
        corrections.append(switch.lr_at_minimum / switch.handover_lr)
    assert 1.0 < corrections[0] < corrections[1]
    reference, _ = switch_on_a_parabola(10, "gp_minimum", velocity_momentum=0.9)
    assert reference.handover_lr == pytest.approx(reference.lr_at_minimum)
    # Adam, LAMB: the learning rate multiplies the averaged update; nothing to correct.
    plain, _ = switch_on_a_parabola(10, "momentum_corrected", velocity_momentum=0.0)
    assert plain.handover_lr == pytest.approx(plain.lr_at_minimum)
