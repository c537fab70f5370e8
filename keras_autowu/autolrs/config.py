"""AutoLRS's arguments, checked once, at construction, and the stage length tau that fits the run."""

import dataclasses
from typing import Optional

from keras_autowu.autolrs import forecast
from keras_autowu.autolrs.plan import StagePlan
from keras_autowu.core import checks

_OWNER = "AutoLRS"
REFERENCE_TAU = 1000
MIN_STAGES = 2  # what tau=None leaves room for


@dataclasses.dataclass(frozen=True)
class AutoLRSConfig:
    """The algorithm's arguments; see `AutoLRSScheduler` for their meaning."""

    min_lr: float = 1e-5
    max_lr: float = 1.0
    tau: Optional[int] = None
    tau_ratio: int = 10
    explored: int = 10
    tau_max: int = 8000
    warmup_steps: int = 0
    forecast: str = "bounded"
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        checks.check_number(_OWNER, "min_lr", self.min_lr, low=0.0, low_open=True)
        checks.check_number(_OWNER, "max_lr", self.max_lr, low=0.0, low_open=True)
        if self.max_lr <= self.min_lr:
            checks.fail(_OWNER, "max_lr", self.max_lr, f"`max_lr` > min_lr={self.min_lr!r}")
        checks.check_int(_OWNER, "tau", self.tau, 1, allow_none=True)
        checks.check_int(_OWNER, "tau_ratio", self.tau_ratio, 1)
        checks.check_int(_OWNER, "explored", self.explored, 1)
        checks.check_int(_OWNER, "tau_max", self.tau_max, 1)
        checks.check_int(_OWNER, "warmup_steps", self.warmup_steps, 0)
        if self.tau is not None and self.tau < self.tau_ratio:
            checks.fail(_OWNER, "tau", self.tau, f"`tau` >= tau_ratio={self.tau_ratio} (at least one step per explored learning rate)")
        checks.check_choice(_OWNER, "forecast", self.forecast, forecast.RULES)
        checks.check_int(_OWNER, "seed", self.seed, 0)
        if not isinstance(self.verbose, bool):
            checks.check_int(_OWNER, "verbose", self.verbose, 0)


def auto_tau(total_steps, warmup_steps, tau_ratio=10, explored=10, tau_max=8000):
    """The reference's tau, or the largest below it whose first `MIN_STAGES` stages fit."""
    plan = StagePlan(REFERENCE_TAU, tau_ratio, explored, tau_max, warmup_steps)
    if plan.stage(MIN_STAGES - 1).end <= total_steps:
        return REFERENCE_TAU
    low, high = tau_ratio, REFERENCE_TAU
    while low < high:  # the stages' ends grow with tau
        middle = (low + high + 1) // 2
        if StagePlan(middle, tau_ratio, explored, tau_max, warmup_steps).stage(MIN_STAGES - 1).end <= total_steps:
            low = middle
        else:
            high = middle - 1
    return low
