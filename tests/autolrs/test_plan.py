"""AutoLRS's stage plan, step by step."""

import pytest

from keras_autowu.autolrs.plan import Position, StagePlan


def test_the_reference_s_stages():
    """tau' and tau double while tau' < tau_max / 10, then the stages use validation."""
    plan = StagePlan()
    stages = [plan.stage(i) for i in range(6)]
    assert [(s.explore_steps, s.exploit_steps) for s in stages] == [(100, 1000), (200, 2000), (400, 4000), (800, 8000), (800, 8000), (800, 8000)]
    assert [s.start for s in stages] == [0, 2000, 6000, 14000, 30000, 46000]
    assert [s.on_validation for s in stages] == [False] * 4 + [True] * 2


def test_every_step_of_the_first_stages_falls_in_its_segment():
    """A walk over every step, against the plan built by hand."""
    plan = StagePlan(tau=40, tau_ratio=10, explored=3, tau_max=160, warmup_steps=5)
    expected = [Position("warmup", -1, 0, s) for s in range(5)]
    for stage, (explore, exploit) in enumerate([(4, 40), (8, 80), (16, 160), (16, 160)]):
        for segment in range(3):
            expected += [Position("explore", stage, segment, o) for o in range(explore)]
        expected += [Position("exploit", stage, 3, o) for o in range(exploit)]
    assert [plan.locate(step) for step in range(len(expected))] == expected
    assert [plan.stage(i).on_validation for i in range(4)] == [False, False, False, True]


@pytest.mark.parametrize("steps_per_execution", [1, 8])
def test_segments_end_on_a_chunk_boundary(steps_per_execution):
    """With chunks of 8 steps, every segment starts and ends between chunks."""
    plan = StagePlan(warmup_steps=30, steps_per_execution=steps_per_execution)
    boundaries = []
    for i in range(5):
        stage = plan.stage(i)
        boundaries += [stage.start + j * stage.explore_steps for j in range(stage.explored + 1)] + [stage.end]
    assert all(b % steps_per_execution == 0 for b in boundaries)
    first = plan.stage(0)
    if steps_per_execution == 8:
        assert (first.start, first.explore_steps, first.exploit_steps) == (32, 104, 1000)
    else:
        assert (first.start, first.explore_steps, first.exploit_steps) == (30, 100, 1000)
    for step in range(first.start, plan.stage(2).start):
        position = plan.locate(step)
        if position.offset == 0:
            assert step % steps_per_execution == 0


@pytest.mark.parametrize("kwargs, name", [
    (dict(tau=0), "tau"), (dict(tau=5, tau_ratio=10), "tau"), (dict(explored=0), "explored"),
    (dict(warmup_steps=-1), "warmup_steps"), (dict(steps_per_execution=2.5), "steps_per_execution"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        StagePlan(**kwargs)
