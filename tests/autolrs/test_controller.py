"""AutoLRS's scheduler without Keras: a simulated quadratic model, whose weights the
test snapshots and restores as a callback would."""

import numpy as np
import pytest

from keras_autowu.autolrs.config import auto_tau
from keras_autowu.autolrs.controller import AutoLRSScheduler
from keras_autowu.autolrs.plan import StagePlan


class Quadratic:
    """loss = 0.5 * sum(h * w**2) * (1 + noise); a step w -= lr * h * w (diverges above 2 / h)."""

    def __init__(self, curvatures=(10.0, 1.0), seed=0, noise=0.05):
        self.h = np.asarray(curvatures)
        self.w = np.full(self.h.size, 3.0)
        self.rng = np.random.default_rng(seed)
        self.noise = noise

    def step(self, lr):
        with np.errstate(over="ignore", invalid="ignore"):
            loss = 0.5 * np.sum(self.h * self.w**2) * (1 + self.noise * self.rng.standard_normal())
            self.w = self.w - lr * self.h * self.w
        return loss


def run(scheduler, model, chunk=1, validation=None):
    """Drives `scheduler` as the callback does: acts only at chunk starts."""
    saved, losses, rates, step = None, [], [], 0
    while step < scheduler.total_steps:
        if step >= scheduler.next_boundary():
            due = scheduler.validation_due(step)
            for request in scheduler.observe(losses, validation_loss=validation(model) if due else None):
                if request.kind == "snapshot":
                    saved = model.w.copy()
                else:
                    model.w = saved.copy()
            losses = []
        for rate in scheduler.learning_rates(step, min(step + chunk, scheduler.total_steps)):
            losses.append(model.step(rate))
            rates.append(rate)
            step += 1
    if scheduler.next_boundary() == step:  # the last stage's training ends with the run
        for request in scheduler.observe(losses):
            model.w = saved.copy()
    return np.asarray(rates)


def test_each_step_s_learning_rate_follows_the_plan_with_chunks_of_8():
    plan_kwargs = dict(tau=80, tau_ratio=10, explored=4, tau_max=8000)
    scheduler = AutoLRSScheduler(2000, 0.01, steps_per_execution=8, verbose=0, min_lr=1e-3, max_lr=0.5, **plan_kwargs)
    rates = run(scheduler, Quadratic(), chunk=8)
    plan = StagePlan(steps_per_execution=8, **plan_kwargs)
    for record in scheduler.stages:
        stage = plan.stage(record.index)
        assert record.start == stage.start
        for segment, rate in enumerate(record.learning_rates):
            start = stage.start + segment * stage.explore_steps
            assert np.all(rates[start : start + stage.explore_steps] == rate)
        assert np.all(rates[stage.exploit_start : stage.end] == record.chosen)
        assert record.chosen in record.learning_rates
        assert record.forecasts[record.learning_rates.index(record.chosen)] == min(record.forecasts)
    assert all(s.start % 8 == 0 and s.stop % 8 == 0 for s in scheduler.segments[:-1])
    assert len(scheduler.stages) == 4  # ends 112, 336, 784, 1680; the fifth would end at 3472


def test_the_run_ends_at_the_last_stage_s_learning_rate_when_no_stage_fits():
    scheduler = AutoLRSScheduler(400, 0.01, verbose=0, tau=100, explored=5, min_lr=1e-3, max_lr=0.5)
    rates = run(scheduler, Quadratic())
    (stage,) = scheduler.stages  # 0..49 explore, 50..149 train; stage 1 needs 300 more
    assert scheduler.segments[-1].kind == "final" and scheduler.segments[-1].start == 150
    assert np.all(rates[150:] == stage.chosen)


@pytest.mark.parametrize("rule, improves", [("bounded", True), ("reference", False)])
def test_the_bounded_forecast_finds_a_faster_rate_on_a_slow_quadratic(rule, improves):
    """A direction of curvature 1 that falls almost linearly over an explored segment at
    small rates: the reference's fit extrapolates it to a loss below zero and chooses
    a slow rate; the bounded fit does not. Final loss over 5 seeds, median."""
    finals = []
    for seed in range(5):
        scheduler = AutoLRSScheduler(3000, 0.001, verbose=0, min_lr=1e-4, max_lr=1.0, seed=seed, forecast=rule)
        model = Quadratic(seed=seed)
        run(scheduler, model)
        finals.append(0.5 * np.sum(model.h * model.w**2))
    assert (np.median(finals) < 1e-20) == improves


def test_a_diverging_stage_is_rolled_back_and_later_stages_search_below_it():
    """A forecast that picks a rate that blows up over the longer training: the
    checkpoint comes back and max_lr drops below half of it."""

    class Unstable(Quadratic):
        """Stable for 20 steps at any rate below 1, then blows up above 0.1."""

        def step(self, lr):
            self.count = getattr(self, "count", 0) + 1
            if lr > 0.1 and self.streak(lr) > 20:
                self.w = self.w * 10.0
            return super().step(min(lr, 0.15))

        def streak(self, lr):
            self.run_length = self.run_length + 1 if getattr(self, "last", None) == lr else 1
            self.last = lr
            return self.run_length

    scheduler = AutoLRSScheduler(3000, 0.01, verbose=0, tau=200, explored=6, min_lr=1e-3, max_lr=1.0, seed=1)
    model = Unstable(curvatures=(1.0,), noise=0.0)
    rates = run(scheduler, model)
    rolled = [s for s in scheduler.stages if s.rolled_back]
    assert rolled and rolled[0].chosen > 0.1
    assert scheduler.max_lr <= rolled[0].chosen / 2
    later = [s for s in scheduler.stages if s.start > rolled[0].start]
    assert later and all(max(s.learning_rates) <= rolled[0].chosen / 2 for s in later)
    assert np.isfinite(0.5 * np.sum(model.h * model.w**2))
    assert rates.size == 3000


def test_a_rate_that_kills_the_network_is_rolled_back_though_the_loss_stays_finite():
    """Above 0.1 for more than 20 steps in a row the weights freeze where they were at
    the stage's start (a dead network): no divergence, but the stage's training ends
    no lower than an explored segment did."""

    class Dying(Quadratic):
        def step(self, lr):
            self.run_length = getattr(self, "run_length", 0) + 1 if lr > 0.1 else 0
            if self.run_length == 21:
                self.w = np.full(self.h.size, 3.0)
            return super().step(0.0 if self.run_length > 20 else min(lr, 0.15))

    scheduler = AutoLRSScheduler(3000, 0.01, verbose=0, tau=200, explored=6, min_lr=1e-3, max_lr=1.0, seed=1)
    model = Dying(curvatures=(1.0,), noise=0.0)
    run(scheduler, model)
    rolled = [s for s in scheduler.stages if s.rolled_back]
    assert rolled and rolled[0].chosen > 0.1 and scheduler.max_lr <= rolled[0].chosen / 2
    assert 0.5 * np.sum(model.h * model.w**2) < 1e-3


def test_a_last_stage_that_diverges_as_the_run_ends_gives_back_its_checkpoint():
    class BlowsUp(Quadratic):
        """Above 0.1 for more than 20 steps in a row, the weights grow tenfold a step."""

        def step(self, lr):
            self.run_length = getattr(self, "run_length", 0) + 1 if lr > 0.1 else 0
            if self.run_length > 20:
                self.w = self.w * 10.0
            return super().step(min(lr, 0.15))

    plan_end = AutoLRSScheduler(10_000, 0.01, tau=200, explored=6).plan.stage(0).end
    scheduler = AutoLRSScheduler(plan_end, 0.01, verbose=0, tau=200, explored=6, min_lr=1e-3, max_lr=1.0, seed=1)
    model = BlowsUp(curvatures=(1.0,), noise=0.0)
    run(scheduler, model)
    (stage,) = scheduler.stages
    assert stage.rolled_back and stage.chosen > 0.1
    np.testing.assert_array_equal(model.w, [3.0])  # the stage's start


def test_late_stages_score_the_validation_loss_sixteen_times_per_segment():
    kwargs = dict(tau=160, tau_ratio=10, explored=3, tau_max=320, min_lr=1e-3, max_lr=0.5, verbose=0)
    scheduler = AutoLRSScheduler(6000, 0.01, validation=True, **kwargs)
    calls = []

    def validation(model):
        calls.append(scheduler.next_boundary())
        return 0.5 * np.sum(model.h * model.w**2)

    run(scheduler, Quadratic(), validation=validation)
    late = [s for s in scheduler.stages if s.on_validation]
    assert late and not scheduler.stages[0].on_validation
    # tau' = 32 in the late stages: a validation every 2 steps, 16 per explored segment.
    stage = late[0]
    in_stage = [c for c in calls if stage.start < c <= stage.start + len(stage.learning_rates) * stage.explore_steps]
    assert len(in_stage) == 16 * len(stage.learning_rates)
    assert all(c % 2 == 0 for c in in_stage)


def test_a_resumed_run_starts_the_cut_stage_again_from_the_step():
    scheduler = AutoLRSScheduler(3000, 0.01, verbose=0, tau=100, explored=5, min_lr=1e-3, max_lr=0.5)
    stage = scheduler.plan.stage(1)  # 250..750: explores 250..450
    scheduler.resume(stage.start + 30, learning_rate=0.02)
    assert scheduler.next_boundary() == stage.start + 30
    assert np.all(scheduler.learning_rates(stage.start + 30, stage.start + 31) == 0.02)
    requests = scheduler.observe([])
    assert [r.kind for r in requests] == ["snapshot", "restore"]
    first = scheduler.segments[-1]
    assert (first.kind, first.start, first.stop) == ("explore", stage.start + 30, stage.start + 30 + stage.explore_steps)


def test_tau_none_fits_two_stages_and_a_tau_too_long_is_refused():
    assert auto_tau(100_000, 0) == 1000
    tau = auto_tau(3000, 0)
    assert StagePlan(tau).stage(1).end <= 3000 < StagePlan(tau + 1).stage(1).end
    with pytest.raises(ValueError, match=r"AutoLRS expects a run long enough for one stage.*Pass tau=\d+ or less.*Received tau=1000"):
        AutoLRSScheduler(1500, 0.01, tau=1000)


@pytest.mark.parametrize("tau", [10, None])
def test_a_run_too_short_for_any_tau_asks_for_a_smaller_tau_ratio(tau):
    """The shortest stage (tau = tau_ratio = 10) takes 20 steps; before, a 16-step run
    was told to pass tau=10 or less, or tau=None, which fail the same way."""
    with pytest.raises(ValueError, match=r"one stage: 20 steps with tau=10, and the run has 16\. The shortest stage \(tau = tau_ratio\) takes 20 steps: pass a smaller tau_ratio.*Received tau_ratio=10"):
        AutoLRSScheduler(16, 0.01, tau=tau)
    assert AutoLRSScheduler(16, 0.01, tau_ratio=5).plan.stage(0).end <= 16


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_lr=0.0), "min_lr=0.0"),
        (dict(max_lr=1e-6), "max_lr=1e-06"),
        (dict(tau=5), "tau=5"),
        (dict(explored=0), "explored=0"),
        (dict(forecast="spline"), "forecast='spline'"),
        (dict(warmup_steps=-1), "warmup_steps=-1"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoLRSScheduler(10_000, 0.01, **kwargs)


def test_the_warmup_rises_linearly_to_the_learning_rate_before_any_search():
    scheduler = AutoLRSScheduler(3000, 0.1, verbose=0, tau=100, explored=5, warmup_steps=50)
    rates = run(scheduler, Quadratic())
    np.testing.assert_allclose(rates[:50], 0.1 * np.arange(1, 51) / 50)
    assert scheduler.stages[0].start == 50
