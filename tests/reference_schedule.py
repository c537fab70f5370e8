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
