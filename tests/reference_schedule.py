"""The reference scheduler's learning rates, by stepping it as the reference does.

A transcription of the reference AutoWU's `step()` control flow (kakaobrain/autowu,
Apache-2.0) with the GP decision given from outside: which call switches, and to what
learning rate. PyTorch's ExponentialLR, LambdaLR and CosineAnnealingLR are written out.
"""

import math


def reference_learning_rates(total_steps, min_lr=1e-5, max_lr=1.0, max_warmup_fraction=0.5,
                             warmup_type="exp", immediate_cooldown=True, cooldown_fraction=0.2,
                             cooldown_type="cosine", switch_step=None, switch_lr=None):
    """The LR of steps 0..total_steps-1 (decay_phase_factor 1: a constant decay phase)."""
    max_warmup = int(max_warmup_fraction * total_steps)
    state = {"phase": "warmup", "lr": min_lr}
    cooldown = {}

    def start_cooldown(last_step):
        if state["phase"] != "final":
            state["phase"] = "final"
            cooldown.update(base=state["lr"], t_max=total_steps - last_step, j=0)

    def start_decay(last_step):
        if immediate_cooldown:
            start_cooldown(last_step)
        elif state["phase"] not in ("decay", "final"):
            state["phase"] = "decay"

    def cooldown_lr():
        u = cooldown["j"] / cooldown["t_max"]
        if cooldown_type == "cosine":
            return cooldown["base"] * 0.5 * (1 + math.cos(math.pi * u))
        return cooldown["base"] * (0.5 + 0.5 * math.cos(0.5 * math.pi * (1 + u)))

    if max_warmup <= 0:
        state["lr"] = max_lr
        start_decay(0)
    lrs = [cooldown_lr() if state["phase"] == "final" else state["lr"]]
    for last_step in range(1, total_steps):
        if last_step >= (1 - cooldown_fraction) * total_steps:
            start_cooldown(last_step)
        switched = False
        if state["phase"] == "warmup":
            if last_step >= max_warmup:
                start_decay(last_step)
            elif last_step == switch_step:
                state["lr"] = switch_lr
                start_decay(last_step)
                switched = True
        if state["phase"] == "warmup" and not switched:
            x = last_step / max_warmup
            if warmup_type == "exp":
                state["lr"] = min_lr * (max_lr / min_lr) ** x
            else:
                state["lr"] = min_lr + (max_lr - min_lr) * x
        elif state["phase"] == "final":
            cooldown["j"] += 1
        lrs.append(cooldown_lr() if state["phase"] == "final" else state["lr"])
    return lrs


def reference_decisions(losses, steps_per_epoch, total_epochs, minimum_test, min_lr=1e-5, max_lr=1.0,
                        max_warmup_fraction=0.5, warmup_type="exp", confidence=0.95, patience=3):
    """The reference's switch on a stream of losses: (switch step, switch LR) or (None, None).

    Its `step()` flow (autowu-algorithm.md, "Phases"): at the end of every epoch of the
    warmup, and only before the warmup's cap, the test runs on all losses so far; after
    `patience` positive tests in a row the LR becomes the mean over the predictions of
    min_lr * (lr_now / min_lr) ** x* (linear: min_lr + (lr_now - min_lr) * x*), x* the
    argmin of each prediction's posterior mean and lr_now the last loss's LR.

    `minimum_test(losses, test_index)` is the GP, given from outside: it returns each
    prediction's P(passed) and argmin x*.
    """
    total_steps = steps_per_epoch * total_epochs
    max_warmup = int(max_warmup_fraction * total_steps)
    in_a_row, test_index = 0, 0
    for epoch_end in range(steps_per_epoch, total_steps, steps_per_epoch):
        if epoch_end >= max_warmup:
            break  # the cap: the decay starts with the current LR, no test
        passed, argmin_x = minimum_test(losses[:epoch_end], test_index)
        test_index += 1
        votes = sum(p > confidence for p in passed)
        in_a_row = in_a_row + 1 if votes > len(passed) / 2 else 0
        if in_a_row >= patience:
            x = (epoch_end - 1) / max_warmup
            if warmup_type == "exp":
                lr_now = min_lr * (max_lr / min_lr) ** x
                lrs = [min_lr * (lr_now / min_lr) ** a for a in argmin_x]
            else:
                lr_now = min_lr + (max_lr - min_lr) * x
                lrs = [min_lr + (lr_now - min_lr) * a for a in argmin_x]
            return epoch_end, sum(lrs) / len(lrs)
    return None, None
