"""AutoWU's arguments, checked once, at construction."""

import dataclasses
import functools
from typing import Optional, Union

from keras_autowu import checks
from keras_autowu.handover import LR_CHOICES

WARMUP_TYPES = ("exp", "linear")
COOLDOWN_TYPES = ("cosine", "half_cosine")
DECAY_PHASE_STATS = (None, "loss")
TEST_INTERVALS = ("auto", "epoch")


_fail = functools.partial(checks.fail, "AutoWU")
_check_number = functools.partial(checks.check_number, "AutoWU")
_check_int = functools.partial(checks.check_int, "AutoWU")
_check_choice = functools.partial(checks.check_choice, "AutoWU")


@dataclasses.dataclass(frozen=True)
class AutoWUConfig:
    """The algorithm's arguments; see `AutoWUScheduler` for their meaning."""

    min_lr: float = 1e-5
    max_lr: float = 1.0
    max_warmup_fraction: float = 0.5
    warmup_type: str = "exp"
    flat_start_speedup: int = 4
    immediate_cooldown: bool = True
    cooldown_fraction: float = 0.2
    cooldown_type: str = "cosine"
    decay_phase_factor: float = 1.0
    decay_phase_stat: Optional[str] = None
    confidence: float = 0.95
    patience: int = 3
    num_predictions: int = 5
    test_interval: Union[int, str] = "auto"
    lr_choice: str = "momentum_corrected"
    min_progress: float = 0.05
    min_rise: float = 0.05
    max_rescues: int = 5
    handover_trial: int = 3
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        _check_number("min_lr", self.min_lr, low=0.0, low_open=True)
        _check_number("max_lr", self.max_lr, low=0.0, low_open=True)
        if self.max_lr <= self.min_lr:
            _fail("max_lr", self.max_lr, f"`max_lr` > min_lr={self.min_lr!r}")
        _check_number("max_warmup_fraction", self.max_warmup_fraction, 0.0, 1.0)
        _check_choice("warmup_type", self.warmup_type, WARMUP_TYPES)
        _check_int("flat_start_speedup", self.flat_start_speedup, 1)
        if not isinstance(self.immediate_cooldown, bool):
            _fail("immediate_cooldown", self.immediate_cooldown, "`immediate_cooldown` to be a bool")
        _check_number("cooldown_fraction", self.cooldown_fraction, 0.0, 1.0)
        _check_choice("cooldown_type", self.cooldown_type, COOLDOWN_TYPES)
        _check_number("decay_phase_factor", self.decay_phase_factor, 0.0, 1.0, low_open=True)
        _check_choice("decay_phase_stat", self.decay_phase_stat, DECAY_PHASE_STATS)
        _check_number("confidence", self.confidence, 0.0, 1.0, low_open=True, high_open=True)
        _check_int("patience", self.patience, 1)
        _check_int("num_predictions", self.num_predictions, 1)
        if self.test_interval not in TEST_INTERVALS:
            if isinstance(self.test_interval, str) or self.test_interval is None:
                _fail("test_interval", self.test_interval, f"`test_interval` to be an integer >= 1, or one of {TEST_INTERVALS}")
            _check_int("test_interval", self.test_interval, 1)
        _check_choice("lr_choice", self.lr_choice, LR_CHOICES)
        _check_number("min_progress", self.min_progress, 0.0, 1.0)
        _check_number("min_rise", self.min_rise, 0.0, None)
        _check_int("max_rescues", self.max_rescues, 0)
        _check_int("handover_trial", self.handover_trial, 0)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.verbose, bool):
            _check_int("verbose", self.verbose, 0)


def check_run_length(steps_per_epoch, total_epochs, allow_none=False):
    """Checks the run's length; the callback may leave it to fit() (None)."""
    _check_int("steps_per_epoch", steps_per_epoch, 1, allow_none)
    _check_int("total_epochs", total_epochs, 1, allow_none)
