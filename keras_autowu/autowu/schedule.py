"""AutoWU's learning rate as a closed-form function of the step.

The schedule is fixed by the run's length and the arguments (`SchedulePlan`) up to
the few numbers that the run's tests decide (`ScheduleState`). With both known, the
learning rate of any step is `learning_rate_at(step, state, plan)`: pure TensorFlow,
float32 (it runs inside the train step, also on TPUs), XLA-compilable, vectorised
over `step`.

Steps count from 0; the learning rate of step `s` is the one its update uses. The
offsets below reproduce the reference scheduler, which is stepped after each update.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf


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
        """The warmup's learning rate at `step` (a float, which may be fractional, for
        use outside graphs) when its fast climb ended at `fast_end`."""
        return float(warmup_learning_rate(tf.constant(step, tf.float32), self, fast_end))

    def warmup_lrs(self, steps, fast_end=0):
        """`warmup_lr` at each of `steps`, as a NumPy array."""
        return warmup_learning_rate(tf.constant(steps, tf.float32), self, fast_end).numpy().astype(np.float64)

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
    """

    warmup_end: int
    decay_base_lr: float
    plateau_scale: float = 1.0
    rescue_steps: tuple = ()
    fast_end: int = 0


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
    """The first step of the final decay (`warmup_end` an int or an int64 tensor)."""
    if not plan.immediate_cooldown:
        return plan.cooldown_start_by_time
    if isinstance(warmup_end, int):
        return min(warmup_end, plan.cooldown_start_by_time)
    return tf.minimum(warmup_end, plan.cooldown_start_by_time)


def warmup_position(step, plan, fast_end):
    """How far along its way from min_lr to max_lr (in steps of the steady climb) the
    warmup is at `step`: up to `fast_end` it moves `flat_start_speedup` steps a step."""
    s = tf.cast(step, tf.float32)
    if plan.flat_start_speedup <= 1:
        return s
    fast = tf.cast(fast_end, tf.float32)
    return s + (plan.flat_start_speedup - 1) * tf.minimum(s, fast)


def warmup_learning_rate(step, plan, fast_end=0):
    s = warmup_position(step, plan, fast_end)
    width = float(max(plan.max_warmup_steps, 1))
    if plan.warmup_type == "exp":
        # lr = min_lr * gamma**s with gamma = (max_lr / min_lr)**(1 / W), in log space.
        log_gamma = math.log(plan.max_lr / plan.min_lr) / width
        return tf.exp(math.log(plan.min_lr) + s * log_gamma)
    return plan.min_lr + (plan.max_lr - plan.min_lr) * s / width


def _decay_learning_rate(step, warmup_end, decay_base_lr, plateau_scale, plan):
    lr = decay_base_lr * plateau_scale
    if plan.decay_per_epoch and plan.decay_phase_factor != 1.0:
        epochs = step // plan.steps_per_epoch - warmup_end // plan.steps_per_epoch
        lr *= tf.pow(plan.decay_phase_factor, tf.cast(tf.maximum(epochs, 0), tf.float32))
    return lr


def _cooldown_multiplier(step, start, plan):
    remaining = tf.cast(plan.total_steps - start, tf.float32)
    # The reference steps its cosine once in the same call that starts it, except when
    # the cooldown starts before the first step.
    offset = tf.cast(start > 0, tf.float32)
    progress = (tf.cast(step - start, tf.float32) + offset) / tf.maximum(remaining, 1.0)
    progress = tf.clip_by_value(progress, 0.0, 1.0)
    if plan.cooldown_type == "cosine":
        return 0.5 * (1.0 + tf.cos(math.pi * progress))
    # The second half of a cosine, which starts at half the learning rate.
    return 0.5 + 0.5 * tf.cos(0.5 * math.pi * (1.0 + progress))


def learning_rate_at(step, state, plan):
    """The learning rate (float32) of `step` (an integer tensor of any shape)."""
    step = tf.cast(step, tf.int64)
    warmup_end = tf.cast(state.warmup_end, tf.int64)
    decay_base_lr = tf.cast(state.decay_base_lr, tf.float32)
    plateau_scale = tf.cast(state.plateau_scale, tf.float32)
    fast_end = tf.cast(state.fast_end, tf.int64)
    start = tf.cast(cooldown_start(warmup_end, plan), tf.int64)

    def decay(s):
        return _decay_learning_rate(s, warmup_end, decay_base_lr, plateau_scale, plan)

    def before_cooldown(s):
        return tf.where(s < warmup_end, warmup_learning_rate(s, plan, fast_end), decay(s))

    # The cooldown starts from the learning rate of the step before it; when the warmup
    # hands over straight to it, from the learning rate the warmup chose.
    base_step = tf.where(tf.equal(start, warmup_end), start, start - 1)
    cooldown = before_cooldown(base_step) * _cooldown_multiplier(step, start, plan)
    lr = tf.where(step < start, before_cooldown(step), cooldown)
    return lr * _rescue_multiplier(step, state.rescue_steps)


def _rescue_multiplier(step, rescue_steps):
    rescue_steps = tf.reshape(tf.cast(rescue_steps, tf.int64), [-1])
    rescues = tf.reduce_sum(tf.cast(step[..., None] >= rescue_steps, tf.float32), axis=-1)
    return tf.pow(RESCUE_FACTOR, rescues)


def phase_at(step, state, plan):
    """'warmup', 'decay' or 'cooldown': the phase of `step` (a Python int)."""
    if step >= cooldown_start(int(state.warmup_end), plan):
        return "cooldown"
    return "warmup" if step < state.warmup_end else "decay"
