"""AutoLRS's stage plan: which step explores which learning rate, and which exploits.

After an optional warmup (`warmup_steps`, no search), training runs in stages. A stage
explores `k` learning rates for `tau'` steps each, every one from the weights and
optimizer state of the stage's start, then trains `tau` steps with the best one.
After a stage, `tau'` and `tau` double while `tau'` < `tau_max` / 10; once they stop,
the stages score the explored learning rates on the validation loss (the reference's
`val_stage`). With the reference's constants (tau' = 100, tau = 1000, tau_max = 8000)
the stages are 100/1000, 200/2000, 400/4000, 800/8000, then 800/8000 on validation.

With `steps_per_execution` > 1, the host acts only between chunks of steps, and every
segment ends with a restore or a change of learning rate, so each length is rounded up
to a multiple of the chunk (the doubling rule runs on the lengths before rounding).

Exact integer arithmetic, no Keras, no TensorFlow.
"""

import dataclasses
from typing import NamedTuple

from keras_autowu.core import checks


class Stage(NamedTuple):
    index: int
    start: int  # the stage's first step
    explore_steps: int  # tau': steps per explored learning rate
    exploit_steps: int  # tau
    explored: int  # k
    on_validation: bool

    @property
    def exploit_start(self):
        return self.start + self.explored * self.explore_steps

    @property
    def end(self):
        return self.exploit_start + self.exploit_steps


class Position(NamedTuple):
    """Where a step falls: `kind` "warmup", "explore" (`segment` the explored learning
    rate's index) or "exploit" (`segment` = k); `offset`: steps since its segment began."""

    kind: str
    stage: int
    segment: int
    offset: int


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class StagePlan:
    tau: int = 1000
    tau_ratio: int = 10  # tau / tau'
    explored: int = 10  # k
    tau_max: int = 8000
    warmup_steps: int = 0
    steps_per_execution: int = 1

    def __post_init__(self):
        for name, low in [("tau", 1), ("tau_ratio", 1), ("explored", 1), ("tau_max", 1), ("warmup_steps", 0), ("steps_per_execution", 1)]:
            checks.check_int("AutoLRS", name, getattr(self, name), low)
        if self.tau < self.tau_ratio:
            checks.fail("AutoLRS", "tau", self.tau, f"`tau` >= tau_ratio={self.tau_ratio} (at least one step per explored learning rate)")

    def stage(self, index):
        """Stage `index` (0 for the first after the warmup)."""
        start = _round_up(self.warmup_steps, self.steps_per_execution)
        explore, exploit = self.tau // self.tau_ratio, self.tau
        on_validation = False
        for i in range(index + 1):
            rounded = (_round_up(explore, self.steps_per_execution), _round_up(exploit, self.steps_per_execution))
            if i == index:
                return Stage(index, start, *rounded, self.explored, on_validation)
            start += self.explored * rounded[0] + rounded[1]
            if explore < self.tau_max / 10:
                explore, exploit = 2 * explore, 2 * exploit
            else:
                on_validation = True

    def locate(self, step):
        """The `Position` of `step` (counted from 0)."""
        if step < self.stage(0).start:
            return Position("warmup", -1, 0, step)
        index = 0
        while True:
            stage = self.stage(index)
            if step < stage.end:
                break
            index += 1
        if step >= stage.exploit_start:
            return Position("exploit", index, stage.explored, step - stage.exploit_start)
        segment, offset = divmod(step - stage.start, stage.explore_steps)
        return Position("explore", index, segment, offset)
