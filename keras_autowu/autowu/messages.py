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


def loss_has_moved(step, learning_rate, speedup):
    return (
        f"AutoWU: the loss has moved by step {step} (learning rate "
        f"{learning_rate:.4g}); the warmup climbs at its steady "
        f"pace from here, {speedup} times slower than over the flat start."
    )


def rose(first_step, last_step, mean, best):
    return f"the mean loss of steps {first_step}..{last_step} rose to {mean:.4g} (best {best:.4g})"


def failed_trial(intervals, switch_step, best, first_step, last_step, mean):
    return (
        f"the handed-on learning rate failed its trial: the mean loss of none of the "
        f"{intervals} interval{'s' if intervals > 1 else ''} since the switch at step "
        f"{switch_step} fell below the warmup's best ({best:.4g}); "
        f"steps {first_step}..{last_step}: {mean:.4g}"
    )


def rescue(number, max_rescues, step, phase, reason, before, after, restore_step):
    back = "" if restore_step is None else f"; restore the weights of step {restore_step}"
    return (
        f"AutoWU: rescue {number} of at most {max_rescues} at step "
        f"{step}, in the {phase} phase: {reason}. Learning rate halved "
        f"({before:.4g} -> {after:.4g}) from here on{back}."
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


def cap_reached(step, positives, tests, base, last=None):
    what = f"warmup's last learning rate, {base:.4g}"
    if last is not None:
        what = f"learning rate the velocity averaged over the climb, {base:.4g} (the warmup's last: {last:.4g})"
    return (
        f"AutoWU: the warmup reached its cap at step {step} with no switch "
        f"({positives} of {tests} tests positive); the decay starts at the "
        f"{what}. The guard watches the loss from here."
    )


def switch(record, divergence, lr_choice_named, patience, positives, at_cap, immediate_cooldown):
    then = "cosine decay" if immediate_cooldown else "decay phase"
    if divergence is not None:
        source = "the lowest finite loss" if divergence.fallback else f"the GP, {lr_choice_named}"
        why = f"the warmup diverged at step {record.step}: {divergence.reason}"
        how = f"learning rate set to {record.handover_lr:.4g} ({source})"
    else:
        tests = (
            f"{patience} positive tests in a row" if positives >= patience
            else f"{positives} of the last {patience} tests positive, the last "
            + ("at the warmup's cap" if at_cap else "before the warmup's cap")
        )
        why = (
            f"the loss minimum has passed at step {record.step} "
            f"(p={np.median(record.passed_probability):.3f}, {tests})"
        )
        how = (
            f"learning rate set to {record.handover_lr:.4g} ({lr_choice_named}; "
            f"the GP's minimum is at {record.lr_at_minimum:.4g})"
        )
    return f"AutoWU: {why}; {how}, then {then}."


def gp_failure(step):
    return (
        f"AutoWU: the GP test at step {step} failed numerically and counts as "
        "negative; training goes on (this warning is shown once per run)."
    )
