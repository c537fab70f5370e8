"""The closed-form schedule against the reference's stepped schedulers and formulas."""


import numpy as np
import pytest

from keras_autowu.autowu import schedule
from keras_autowu.autowu.config import AutoWUConfig
from reference_schedule import reference_learning_rates


def closed_form(total_steps, steps_per_epoch=10, switch_step=None, switch_lr=None, **kwargs):
    # The reference climbs steadily: flat_start_speedup 1.
    plan = schedule.SchedulePlan.from_config(AutoWUConfig(**kwargs), steps_per_epoch, total_steps // steps_per_epoch)
    state = schedule.initial_state(plan)
    if switch_step is not None:
        state = state._replace(warmup_end=switch_step, decay_base_lr=switch_lr)
    return schedule.learning_rate_at(np.arange(total_steps), state, plan)


CASES = [
    dict(),
    dict(warmup_type="linear"),
    dict(switch_step=120, switch_lr=0.03),
    dict(switch_step=120, switch_lr=0.03, cooldown_type="half_cosine"),
    dict(switch_step=120, switch_lr=0.03, immediate_cooldown=False),
    dict(switch_step=120, switch_lr=0.03, immediate_cooldown=False, cooldown_type="half_cosine"),
    dict(immediate_cooldown=False),
    dict(immediate_cooldown=False, max_warmup_fraction=0.9),
    dict(max_warmup_fraction=0.0),
    dict(max_warmup_fraction=0.0, immediate_cooldown=False),
    dict(switch_step=70, switch_lr=0.5, warmup_type="linear", immediate_cooldown=False, cooldown_fraction=0.5),
    dict(max_warmup_fraction=0.125, min_lr=1e-4, max_lr=3.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
def test_closed_form_matches_the_stepped_reference(case):
    """Every step's LR equals what the reference's scheduler calls produce."""
    ours = closed_form(400, **case)
    reference = reference_learning_rates(400, **case)
    # float32 against float64: relative where the LR is large, absolute near zero.
    np.testing.assert_allclose(ours, reference, rtol=2e-5, atol=1e-6 * max(reference))


def test_exp_and_linear_warmup_formulas():
    """lr_t = min_lr * gamma**t with gamma = (max_lr/min_lr)**(1/W); linear likewise."""
    t = np.arange(200)
    np.testing.assert_allclose(closed_form(1000)[:200], 1e-5 * (1.0 / 1e-5) ** (t / 500), rtol=2e-5)
    np.testing.assert_allclose(closed_form(1000, warmup_type="linear")[:200], 1e-5 + (1 - 1e-5) * t / 500, rtol=2e-5)


def test_cosine_after_switch_reaches_zero_at_the_end():
    """An immediate cooldown is a cosine from the switch LR to 0 at the run's last step."""
    lrs = closed_form(300, switch_step=100, switch_lr=0.2)
    j = np.arange(1, 201)
    np.testing.assert_allclose(lrs[100:], 0.2 * 0.5 * (1 + np.cos(np.pi * j / 200)), rtol=2e-5, atol=1e-7)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9)


def test_constant_then_cosine_starts_at_the_cooldown_fraction():
    """With immediate_cooldown=False the LR stays at the switch LR until (1 - f) * T."""
    lrs = closed_form(500, switch_step=100, switch_lr=0.2, immediate_cooldown=False, cooldown_fraction=0.2)
    np.testing.assert_allclose(lrs[100:400], 0.2, rtol=1e-6)
    assert lrs[400] < 0.2 and lrs[-1] == pytest.approx(0.0, abs=1e-9)


def test_decay_phase_factor_applies_once_per_epoch():
    """In the decay phase the LR is multiplied by decay_phase_factor at each epoch boundary."""
    lrs = closed_form(
        500, steps_per_epoch=50, switch_step=100, switch_lr=0.2, immediate_cooldown=False, decay_phase_factor=0.5
    )
    for epoch in range(2, 8):
        np.testing.assert_allclose(lrs[epoch * 50 : (epoch + 1) * 50], 0.2 * 0.5 ** (epoch - 2), rtol=1e-6)


def test_phase_names():
    """phase_at names the phase of a step."""
    plan = schedule.SchedulePlan.from_config(AutoWUConfig(immediate_cooldown=False), 10, 50)
    state = schedule.initial_state(plan)._replace(warmup_end=100, decay_base_lr=0.1)
    assert [schedule.phase_at(s, state, plan) for s in (0, 99, 100, 399, 400)] == [
        "warmup", "warmup", "decay", "decay", "cooldown"
    ]

