"""Argument checks shared by the schedulers: each error names its owner, the argument
and the value ("FactorSearch expects `factors` ... Received factors=[]")."""

import math
import numbers


def fail(owner, name, value, requirement):
    raise ValueError(f"{owner} expects {requirement}. Received {name}={value!r}")


def check_number(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(owner, name, value, f"`{name}` to be a number")
    if not math.isfinite(value):
        fail(owner, name, value, f"a finite `{name}`")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        fail(owner, name, value, f"`{name}` in {left}{lo}, {hi}{right}")


def check_int(owner, name, value, low, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(owner, name, value, f"`{name}` to be an integer")
    if value < low:
        fail(owner, name, value, f"`{name}` >= {low}")


def check_choice(owner, name, value, choices):
    if value not in choices:
        fail(owner, name, value, f"`{name}` to be one of {choices}")


def check_bool(owner, name, value):
    if not isinstance(value, bool):
        fail(owner, name, value, f"`{name}` to be a bool")


def check_run_length(owner, steps_per_epoch, total_epochs, allow_none=False):
    """Checks a run's length; a callback may leave it to fit() (None)."""
    check_int(owner, "steps_per_epoch", steps_per_epoch, 1, allow_none)
    check_int(owner, "total_epochs", total_epochs, 1, allow_none)
