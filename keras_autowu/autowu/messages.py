"""What AutoWU prints and warns, in one place: the controller decides, these say it.

Each function returns the text; the controller prints it (with `verbose`) or warns.
"""

import numpy as np


def run_length_warning(plan, interval, config, auto_interval, no_warmup_step):
    """What to say of a run too short for the warmup and its tests, or None."""
    if no_warmup_step:
        return run_too_short_for_a_warmup(plan.total_steps, config.max_warmup_fraction)
    if 0 < plan.max_warmup_steps <= interval:
        return no_test_in_the_warmup(interval, plan.max_warmup_steps, plan.total_steps)
    tests = (plan.max_warmup_steps - 1) // interval  # a test at the cap itself comes too late
    if 0 < tests < 2 * config.patience:
        return too_few_tests(tests, config.patience, auto_interval, interval)
    return None


def run_too_short_for_a_warmup(total_steps, max_warmup_fraction):
    return (
        f"AutoWU: the run's {total_steps} steps are too short for a warmup "
        f"(max_warmup_fraction={max_warmup_fraction} of them is under one "
        "step); the decay starts from min_lr."
    )


def no_test_in_the_warmup(test_interval, max_warmup_steps, total_steps):
    return (
        f"AutoWU: no GP test falls within the warmup: test_interval={test_interval} "
        f"steps, but the warmup lasts at most {max_warmup_steps} of the run's "
        f"{total_steps} steps. The learning rate follows the warmup to its cap "
        "(max_lr); pass a smaller test_interval, or train for more epochs."
    )


def too_few_tests(tests, patience, auto_interval, test_interval):
    advice = (
        f"Pass test_interval={auto_interval} (test_interval='auto'), or train for more epochs."
        if auto_interval < test_interval else "Train for more epochs, or with smaller batches."
    )
    return (
        f"AutoWU: only {tests} GP test{'s fall' if tests > 1 else ' falls'} within the longest "
        f"warmup, and {patience} positive ones in a row end it: the loss may "
        f"blow up before they do. {advice}"
    )


def test_interval_rounded(test_interval, interval, aligned, chunk, steps_per_epoch):
    if steps_per_epoch % chunk == 0:
        where = f"a multiple of steps_per_execution={chunk}"
    else:
        where = f"a whole number of epochs, as steps_per_epoch={steps_per_epoch} is no multiple of steps_per_execution={chunk}"
    return (
        f"AutoWU: test_interval={test_interval!r} ({interval} steps) rounded up to "
        f"{aligned} steps, {where}, so that every decision takes effect at its own step."
    )


def _steps(first, last):
    return f"step {first}" if first == last else f"steps {first}-{last}"


def loss_has_moved(step, learning_rate, speedup, rose=False):
    return (
        f"AutoWU: the loss started to {'rise' if rose else 'fall'} by step {step} (learning rate {learning_rate:.4g}); "
        f"the warmup climbs {speedup} times slower from here."
    )


def rose(first_step, last_step, mean, best, drift=False):
    how = "more than twice" if drift else "far above"
    return f"the mean loss of {_steps(first_step, last_step)} rose to {mean:.4g}, {how} its best of {best:.4g}"


def failed_trial(intervals, switch_step, best, first_step, last_step, mean):
    return (
        f"the loss did not get back below the warmup's best ({best:.4g}) in the {intervals} test "
        f"interval{'s' if intervals > 1 else ''} after the switch at step {switch_step} "
        f"({_steps(first_step, last_step)}: {mean:.4g})"
    )


def _back(restore_step):
    return "" if restore_step is None else f"back to the weights of step {restore_step}; "


def rescue(number, max_rescues, step, reason, before, after, restore_step):
    return (
        f"AutoWU: rescue {number} of at most {max_rescues} at step {step}: {reason}.\n"
        f"  {_back(restore_step).capitalize()}learning rate halved, {before:.4g} -> {after:.4g}."
    )


def rescues_spent(step, reason, rescues, max_rescues):
    spent = (
        "max_rescues=0 turns the guard off" if not max_rescues
        else f"after {rescues} rescues (max_rescues={max_rescues})"
    )
    return (
        f"AutoWU: the loss diverged at step {step} ({reason}), {spent}. AutoWU "
        "keeps its schedule; add keras.callbacks.TerminateOnNaN() to stop such a run "
        "(this warning is shown once per run)."
    )


def cap_reached(step, positives, tests, base, averaged_from=None):
    what = f"{base:.4g}"
    if averaged_from is not None:
        what += f" (its last, {averaged_from:.4g}, as the optimizer's momentum averaged the climb)"
    return (
        f"AutoWU: the warmup ran its full length to step {step} with no switch ({positives} of {tests} "
        f"tests positive); the decay starts at {what}."
    )


def switch(record, divergence, corrected_by, patience, positives, at_cap, immediate_cooldown, restore_step):
    """Two lines: why the warmup ends, and what follows."""
    if divergence is not None:
        why = f"the warmup ends at step {record.step}: {divergence.reason}"
        if divergence.before_the_loss_fell:
            source = "an eighth of where the loss began to blow up, reached over a tenth of the steps left: it had not fallen before"
        elif divergence.fallback:
            source = "the warmup's at its lowest finite loss"
        else:
            source = "the GP's minimum over the finite losses"
    else:
        if positives >= patience:
            tests = f"{patience} tests in a row agree"
        else:
            tests = "the test at the warmup's end agrees" if at_cap else "the last test before the warmup's end agrees"
        why = f"the loss passed its minimum; the warmup ends at step {record.step} ({tests}, p={np.median(record.passed_probability):.3f})"
        source = "the GP's minimum"
    if corrected_by is not None:
        source += f", {record.lr_at_minimum:.4g}, as the optimizer's momentum {corrected_by:g} averaged the climb"
    then = "a cosine decay to 0" if immediate_cooldown else "the middle phase and the final decay"
    return f"AutoWU: {why}.\n  {_back(restore_step).capitalize()}learning rate {record.handover_lr:.4g} ({source}), then {then}."


def summary(scheduler):
    """One line at the end of a fit, from an `AutoWUScheduler`."""
    done, warmup_end, rescues = scheduler.steps_done, scheduler.state.warmup_end, len(scheduler.rescues)
    if scheduler.switch is not None:
        how = f"the warmup ended at step {scheduler.switch.step}, learning rate {scheduler.switch.handover_lr:.4g}"
    elif done >= warmup_end > 0:
        how = f"the warmup ran its full length to step {warmup_end}, learning rate {scheduler.state.decay_base_lr:.4g}"
    else:
        last = max(done - 1, 0)
        how = f"still in the warmup, learning rate {float(scheduler.learning_rates(last, last + 1)[0]):.4g}"
    return f"AutoWU: step {done} of {scheduler.total_steps}: {how}; {rescues} rescue{'' if rescues == 1 else 's'}."


def gp_failure(step):
    return (
        f"AutoWU: the GP test at step {step} failed numerically and counts as "
        "negative; training goes on (this warning is shown once per run)."
    )
