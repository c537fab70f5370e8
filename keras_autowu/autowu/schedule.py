"""AutoWU's learning rate as a closed-form function of the step.

The schedule is fixed by the run's length and the arguments (`SchedulePlan`) up to
the few numbers that the run's tests decide (`ScheduleState`). With both known, the
learning rate of any step is `learning_rate_at(step, state, plan)`: NumPy, vectorised
over `step`, computed in float64 and handed out in float32, the optimizer's. It runs
on the host only: the train step reads the run's learning rates from a table
(`core.run_state`), so no backend has to compile it.

Steps count from 0; the learning rate of step `s` is the one its update uses. The
offsets below reproduce the reference scheduler, which is stepped after each update.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class SchedulePlan:
    """The static part of a run's schedule."""

    min_lr: float
    max_lr: float
    warmup_type: str
    max_warmup_steps: int
    total_steps: int
    steps_per_epoch: int
    cooldown_start_by_time: int
    immediate_cooldown: bool
    cooldown_type: str
    decay_phase_factor: float
    decay_per_epoch: bool
    flat_start_speedup: int = 1

    @classmethod
    def from_config(cls, config, steps_per_epoch, total_epochs, flat_start_speedup=1):
        total_steps = steps_per_epoch * total_epochs
        return cls(
            min_lr=config.min_lr,
            max_lr=config.max_lr,
            warmup_type=config.warmup_type,
            max_warmup_steps=int(config.max_warmup_fraction * total_steps),
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            # The reference starts the cooldown at the first step >= (1 - f) * T, and
            # never before step 1.
            cooldown_start_by_time=max(1, math.ceil((1 - config.cooldown_fraction) * total_steps)),
            immediate_cooldown=config.immediate_cooldown,
            cooldown_type=config.cooldown_type,
            decay_phase_factor=config.decay_phase_factor,
            decay_per_epoch=config.decay_phase_stat is None,
            flat_start_speedup=flat_start_speedup,
        )

    def warmup_lr(self, step, fast_end=0):
        """The warmup's learning rate at `step` (which may be fractional) when its fast
        climb ended at `fast_end`."""
        return float(warmup_learning_rate(step, self, fast_end))

    def warmup_lrs(self, steps, fast_end=0):
        """`warmup_lr` at each of `steps`, as a NumPy array."""
        return warmup_learning_rate(np.asarray(steps, np.float64), self, fast_end)

    def longest_fast_climb(self):
        """The step at which a fast climb that saw no loss move ends: its span covered."""
        if self.flat_start_speedup <= 1:
            return 0
        # Rounded down, so that the fast climb ends before the cap.
        return int(FLAT_START_SPAN * self.max_warmup_steps) // self.flat_start_speedup

    def warmup_cap(self, fast_end):
        """The step at which the warmup reaches max_lr, its fast climb ended at `fast_end`."""
        return self.max_warmup_steps - (self.flat_start_speedup - 1) * fast_end


class ScheduleState(NamedTuple):
    """What the run's tests decide.

    warmup_end: the first step after the warmup (the switch step, or the cap).
    decay_base_lr: the learning rate the warmup hands on.
    plateau_scale: product of the reduce-on-plateau reductions so far.
    rescue_steps: the steps from which a rescue (after the warmup) multiplied the
      learning rate by RESCUE_FACTOR, in order.
    fast_end: the step at which the warmup's fast climb over a flat start ends (see
      `warmup_position`); 0: no fast climb.
    ramp_steps: the decay's first steps come in linearly over this many (0: none), as
      a warmup would: after a blow-up before the loss fell, the weights go back to
      near their initial ones.
    """

    warmup_end: int
    decay_base_lr: float
    plateau_scale: float = 1.0
    rescue_steps: tuple = ()
    fast_end: int = 0
    ramp_steps: int = 0


# A rescue halves the learning rate of the decay from its step on.
RESCUE_FACTOR = 0.5
# While the loss has not moved, the warmup climbs `flat_start_speedup` times faster,
# over at most this share of its way from min_lr to max_lr (with the defaults, the
# first three of its five decades).
FLAT_START_SPAN = 0.6


def initial_state(plan):
    """The state of a run whose warmup no test has stopped: its fast climb covers its
    whole span, and the warmup ends at its cap."""
    if plan.max_warmup_steps <= 0:
        return ScheduleState(warmup_end=0, decay_base_lr=plan.max_lr)
    return state_with_fast_end(plan, plan.longest_fast_climb())


def state_with_fast_end(plan, fast_end, state=None):
    """`state` (the initial one by default) with the fast climb ending at `fast_end`:
    the warmup's cap, and the learning rate it would hand on there, move with it."""
    cap = plan.warmup_cap(fast_end)
    state = ScheduleState(warmup_end=0, decay_base_lr=0.0) if state is None else state
    return state._replace(warmup_end=cap, decay_base_lr=plan.warmup_lr(cap - 1, fast_end), fast_end=fast_end)


def cooldown_start(warmup_end, plan):
    """The first step of the final decay."""
    if not plan.immediate_cooldown:
        return plan.cooldown_start_by_time
    return min(int(warmup_end), plan.cooldown_start_by_time)


def warmup_position(step, plan, fast_end):
    """How far along its way from min_lr to max_lr (in steps of the steady climb) the
    warmup is at `step`: up to `fast_end` it moves `flat_start_speedup` steps a step."""
    s = np.asarray(step, np.float64)
    if plan.flat_start_speedup <= 1:
        return s
    return s + (plan.flat_start_speedup - 1) * np.minimum(s, float(fast_end))


def warmup_learning_rate(step, plan, fast_end=0):
    s = warmup_position(step, plan, fast_end)
    width = float(max(plan.max_warmup_steps, 1))
    if plan.warmup_type == "exp":
        # lr = min_lr * gamma**s with gamma = (max_lr / min_lr)**(1 / W), in log space.
        log_gamma = math.log(plan.max_lr / plan.min_lr) / width
        return np.exp(math.log(plan.min_lr) + s * log_gamma)
    return plan.min_lr + (plan.max_lr - plan.min_lr) * s / width


def _decay_learning_rate(step, warmup_end, decay_base_lr, plateau_scale, plan):
    lr = np.full(step.shape, decay_base_lr * plateau_scale)
    if plan.decay_per_epoch and plan.decay_phase_factor != 1.0:
        epochs = step // plan.steps_per_epoch - warmup_end // plan.steps_per_epoch
        lr = lr * plan.decay_phase_factor ** np.maximum(epochs, 0)
    return lr


def _cooldown_multiplier(step, start, plan):
    remaining = float(plan.total_steps - start)
    # The reference steps its cosine once in the same call that starts it, except when
    # the cooldown starts before the first step.
    offset = 1.0 if start > 0 else 0.0
    progress = np.clip(((step - start) + offset) / max(remaining, 1.0), 0.0, 1.0)
    if plan.cooldown_type == "cosine":
        return 0.5 * (1.0 + np.cos(math.pi * progress))
    # The second half of a cosine, which starts at half the learning rate.
    return 0.5 + 0.5 * np.cos(0.5 * math.pi * (1.0 + progress))


def learning_rate_at(step, state, plan):
    """The learning rate (float32) of `step` (an integer or an integer array)."""
    step = np.asarray(step, np.int64)
    warmup_end = int(state.warmup_end)
    start = cooldown_start(warmup_end, plan)

    def before_cooldown(s):
        decay = _decay_learning_rate(s, warmup_end, float(state.decay_base_lr), float(state.plateau_scale), plan)
        return np.where(s < warmup_end, warmup_learning_rate(s, plan, state.fast_end), decay)

    # The cooldown starts from the learning rate of the step before it; when the warmup
    # hands over straight to it, from the learning rate the warmup chose.
    base_step = np.asarray(start if start == warmup_end else start - 1, np.int64)
    cooldown = before_cooldown(base_step) * _cooldown_multiplier(step, start, plan)
    lr = np.where(step < start, before_cooldown(step), cooldown)
    if state.ramp_steps:
        ramp = np.clip((step - warmup_end + 1) / (state.ramp_steps + 1), 0.0, 1.0)
        lr = np.where(step < warmup_end, lr, lr * ramp)
    return (lr * _rescue_multiplier(step, state.rescue_steps)).astype(np.float32)


def _rescue_multiplier(step, rescue_steps):
    rescues = np.sum(step[..., None] >= np.asarray(rescue_steps, np.int64).reshape(-1), axis=-1)
    return RESCUE_FACTOR**rescues


def phase_at(step, state, plan):
    """'warmup', 'decay' or 'cooldown': the phase of `step` (a Python int)."""
    if step >= cooldown_start(int(state.warmup_end), plan):
        return "cooldown"
    return "warmup" if step < state.warmup_end else "decay"
