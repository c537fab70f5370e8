"""AutoWU's arguments, checked once, at construction, and the departures from the
reference that `reference=True` turns off."""

import dataclasses
import functools
from typing import Optional, Union

from keras_autowu.autowu.handover import LR_CHOICES
from keras_autowu.core import checks

WARMUP_TYPES = ("exp", "linear")
COOLDOWN_TYPES = ("cosine", "half_cosine")
DECAY_PHASE_STATS = (None, "loss")
TEST_INTERVALS = ("auto", "epoch")
# What the arguments left as None mean: (by default, with reference=True).
_DEFAULTS = {
    "test_interval": ("auto", "epoch"),
    "lr_choice": ("momentum_corrected", "gp_minimum"),
    "max_rescues": (5, 0),
}

_fail = functools.partial(checks.fail, "AutoWU")
_check_number = functools.partial(checks.check_number, "AutoWU")
_check_int = functools.partial(checks.check_int, "AutoWU")
_check_choice = functools.partial(checks.check_choice, "AutoWU")


@dataclasses.dataclass(frozen=True)
class Departures:
    """Where AutoWU departs from the reference; docs/reference.md gives each one's benchmark.

    flat_start_speedup: while the loss has not moved, the warmup climbs this many times
      faster (`flat_start`); 1: a steady climb.
    min_progress, min_rise: the progress gate: a positive test needs the loss to have
      fallen by `min_progress` of its start and risen by `min_rise` of that fall
      (`progress`); 0 and 0: the GP alone decides.
    cap_test: a test at the warmup's cap, and one positive test at the last before it,
      ends the warmup (the reference hands the cap's learning rate on untested).
    divergence_rule: a non-finite loss, or a risen interval mean, ends the warmup.
    clip_blown_up: the GP sees losses above the first interval's highest as that one.
    snapshots: ask for copies of the weights, and put them back at a switch, a
      divergence and a rescue.
    handover_trial: intervals after a switch in which the loss must beat the warmup's
      best, or the guard rescues; 0: no trial.
    short_run_min_lr: a run too short for one warmup step decays from min_lr, not
      max_lr.
    """

    flat_start_speedup: int = 4
    min_progress: float = 0.05
    min_rise: float = 0.05
    cap_test: bool = True
    divergence_rule: bool = True
    clip_blown_up: bool = True
    snapshots: bool = True
    handover_trial: int = 3
    short_run_min_lr: bool = True

    def __post_init__(self):
        _check_int("flat_start_speedup", self.flat_start_speedup, 1)
        _check_number("min_progress", self.min_progress, 0.0, 1.0)
        _check_number("min_rise", self.min_rise, 0.0, None)
        _check_int("handover_trial", self.handover_trial, 0)


# The reference's behaviour: every departure off.
REFERENCE = Departures(
    flat_start_speedup=1, min_progress=0.0, min_rise=0.0, cap_test=False, divergence_rule=False,
    clip_blown_up=False, snapshots=False, handover_trial=0, short_run_min_lr=False,
)


@dataclasses.dataclass(frozen=True)
class AutoWUConfig:
    """The algorithm's arguments; see `AutoWUScheduler` for their meaning.

    `test_interval`, `lr_choice` and `max_rescues` left as None take the package's
    default, or with `reference=True` the reference's ("epoch", "gp_minimum", 0).
    """

    min_lr: float = 1e-5
    max_lr: float = 1.0
    max_warmup_fraction: float = 0.5
    warmup_type: str = "exp"
    immediate_cooldown: bool = True
    cooldown_fraction: float = 0.2
    cooldown_type: str = "cosine"
    decay_phase_factor: float = 1.0
    decay_phase_stat: Optional[str] = None
    confidence: float = 0.95
    patience: int = 3
    num_predictions: int = 5
    test_interval: Union[int, str, None] = None
    lr_choice: Optional[str] = None
    max_rescues: Optional[int] = None
    seed: int = 0
    verbose: int = 1
    reference: bool = False

    def __post_init__(self):
        checks.check_bool("AutoWU", "reference", self.reference)
        for name, (default, reference) in _DEFAULTS.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, reference if self.reference else default)
            elif self.reference and value != reference:
                _fail(name, value, f"`{name}`={reference!r} or None with reference=True, which is the reference's")
        _check_number("min_lr", self.min_lr, low=0.0, low_open=True)
        _check_number("max_lr", self.max_lr, low=0.0, low_open=True)
        if self.max_lr <= self.min_lr:
            _fail("max_lr", self.max_lr, f"`max_lr` > min_lr={self.min_lr!r}")
        _check_number("max_warmup_fraction", self.max_warmup_fraction, 0.0, 1.0)
        _check_choice("warmup_type", self.warmup_type, WARMUP_TYPES)
        checks.check_bool("AutoWU", "immediate_cooldown", self.immediate_cooldown)
        _check_number("cooldown_fraction", self.cooldown_fraction, 0.0, 1.0)
        _check_choice("cooldown_type", self.cooldown_type, COOLDOWN_TYPES)
        _check_number("decay_phase_factor", self.decay_phase_factor, 0.0, 1.0, low_open=True)
        _check_choice("decay_phase_stat", self.decay_phase_stat, DECAY_PHASE_STATS)
        _check_number("confidence", self.confidence, 0.0, 1.0, low_open=True, high_open=True)
        _check_int("patience", self.patience, 1)
        _check_int("num_predictions", self.num_predictions, 1)
        if self.test_interval not in TEST_INTERVALS:
            if isinstance(self.test_interval, str):
                _fail("test_interval", self.test_interval, f"`test_interval` to be an integer >= 1, or one of {TEST_INTERVALS}")
            _check_int("test_interval", self.test_interval, 1)
        _check_choice("lr_choice", self.lr_choice, LR_CHOICES)
        _check_int("max_rescues", self.max_rescues, 0)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.verbose, bool):
            _check_int("verbose", self.verbose, 0)

    @property
    def departures(self):
        return REFERENCE if self.reference else Departures()
