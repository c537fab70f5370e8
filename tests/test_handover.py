"""The hand-over rules, on a posterior mean whose points are known."""

import numpy as np
import pytest

from keras_autowu import handover

GRID = np.linspace(0.0, 1.0, 500)


def sigmoid_then_rise():
    """Flat, a fall centred at x = 0.4 (steepest there), its minimum at x = 0.8, then up."""
    fall = 2.0 / (1.0 + np.exp(-(GRID - 0.4) * 20.0))
    rise = 30.0 * np.maximum(GRID - 0.8, 0.0) ** 2
    return (2.3 - fall + rise)[None, :]


def test_gp_minimum_is_the_argmin():
    curve = sigmoid_then_rise()
    assert handover.handover_x(curve, "gp_minimum")[0] == pytest.approx(GRID[np.argmin(curve[0])])
    for divided in ("gp_minimum/2", "gp_minimum/4"):
        assert handover.handover_x(curve, divided)[0] == handover.handover_x(curve, "gp_minimum")[0]
    assert handover.lr_multiplier("gp_minimum/4") == 0.25 and handover.lr_multiplier("gp_minimum") == 1.0
    assert handover.lr_multiplier("gp_minimum/2") == 0.5


def test_steepest_is_where_the_curve_falls_fastest():
    assert handover.handover_x(sigmoid_then_rise(), "steepest")[0] == pytest.approx(0.4, abs=0.005)


def test_drop_share_is_where_most_of_the_fall_is_made():
    curve = sigmoid_then_rise()[0]
    x = handover.handover_x(curve[None, :], "drop_share")[0]
    fallen = (curve[0] - curve[GRID == x][0]) / (curve[0] - curve.min())
    assert fallen >= handover.DROP_SHARE and x < GRID[np.argmin(curve)]
    just_before = curve[np.searchsorted(GRID, x) - 1]
    assert (curve[0] - just_before) / (curve[0] - curve.min()) < handover.DROP_SHARE


@pytest.mark.parametrize("choice", handover.LR_CHOICES)
def test_every_rule_picks_a_point_at_or_before_the_minimum_per_prediction(choice):
    curves = np.stack([sigmoid_then_rise()[0], np.roll(sigmoid_then_rise()[0], -50)])
    x = handover.handover_x(curves, choice)
    assert x.shape == (2,) and np.all(x <= GRID[np.argmin(curves, axis=-1)] + 1e-12)
    flat_start_minimum = np.linspace(1.0, 2.0, 500)[None, :]  # the minimum at x = 0
    assert handover.handover_x(flat_start_minimum, choice)[0] == 0.0
