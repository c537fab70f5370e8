"""Pictures of a run: learning rate and loss against steps, for each scheduler."""

import numpy as np


def _learning_rate_and_loss_axes():
    """A figure of two panels sharing the step axis: the learning rate (log) above."""
    # A bare Figure draws with Agg and leaves the user's pyplot backend alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    ax_lr, ax_loss = fig.subplots(2, 1, sharex=True)
    ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate")
    return fig, ax_lr, ax_loss


def _clip_losses(ax, values, upper_percentile):
    """Limits the loss axis to the finite values' central range, so a spike stays readable."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        low, high = np.percentile(finite, [0.5, upper_percentile])
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))


def _save(fig, title, path):
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_autowu(scheduler, path, title="AutoWU", baseline=None):
    """Draws the run's learning rate and loss, with the GP's fit at the switch and
    the guard's rescues; and, if given, a run without AutoWU to compare with.

    Args:
      scheduler: The `AutoWUScheduler` of the run (`AutoWU(...).scheduler` after fit).
      path: Where to save the PNG.
      title: The figure's title.
      baseline: Optional `(label, learning_rate, epoch_losses)` of a run at a constant
        learning rate: drawn as a line in the learning-rate panel and its epochs' mean
        training loss in the loss panel, beside AutoWU's epochs' means.

    Returns:
      The matplotlib Figure.
    """
    losses = np.asarray(scheduler.losses)
    steps = np.arange(scheduler.total_steps)
    fig, ax_lr, ax_loss = _learning_rate_and_loss_axes()
    ax_lr.plot(steps, scheduler.learning_rates(0, scheduler.total_steps), color="C0", label="AutoWU")
    ax_loss.plot(np.arange(losses.size), losses, color="C1", lw=0.8, alpha=0.6, label="loss per step")
    if baseline is not None:
        _draw_baseline(ax_lr, ax_loss, baseline, losses, scheduler.steps_per_epoch)
    switch = scheduler.switch
    if switch is not None:
        for ax in (ax_lr, ax_loss):
            ax.axvline(switch.step, color="k", ls="--", lw=0.8)
        grid = np.linspace(0.0, 1.0, switch.posterior_mean.shape[-1]) * switch.step
        ax_loss.plot(grid, switch.posterior_mean.mean(axis=0), color="C2", lw=2, label="GP mean at the switch")
        ax_lr.annotate(
            f"switch at step {switch.step}\nlr = {switch.handover_lr:.3g}",
            (switch.step, switch.handover_lr),
            textcoords="offset points",
            xytext=(8, 8),
        )
    for index, rescue in enumerate(scheduler.rescues):
        for ax in (ax_lr, ax_loss):
            ax.axvline(rescue.step, color="C3", ls=":", lw=1.2, label="rescue: LR halved" if ax is ax_loss and not index else None)
    _clip_losses(ax_loss, losses, 99.5)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend(loc="upper right")
    return _save(fig, title, path)


def _draw_baseline(ax_lr, ax_loss, baseline, losses, steps_per_epoch):
    label, learning_rate, epoch_losses = baseline
    ax_lr.axhline(learning_rate, color="C4", lw=1.5, label=label)
    ax_lr.legend(loc="lower right", fontsize=8)
    epochs = min(losses.size // steps_per_epoch, len(epoch_losses))
    epoch_ends = steps_per_epoch * np.arange(1, epochs + 1)
    autowu_means = losses[: epochs * steps_per_epoch].reshape(epochs, steps_per_epoch).mean(axis=1)
    ax_loss.plot(epoch_ends, autowu_means, color="C1", lw=2, label="AutoWU, epoch mean")
    ax_loss.plot(epoch_ends, np.asarray(epoch_losses[:epochs], np.float64), color="C4", lw=2, label=f"{label}, epoch mean")


def plot_factor_search(scheduler, path, title="Factor search"):
    """Draws a factor-search run: the learning rate against steps, and at each update
    the probe batch's loss at the current weights and after each factor's step.

    Args:
      scheduler: The `FactorSearchScheduler` of the run (`FactorSearch(...).scheduler`).
      path: Where to save the PNG.
      title: The figure's title.

    Returns:
      The matplotlib Figure.
    """
    updates = scheduler.updates
    fig, ax_lr, ax_loss = _learning_rate_and_loss_axes()
    steps = [scheduler.first_step] + [u.step + 1 for u in updates] + [scheduler.total_steps]
    rates = [updates[0].learning_rate_before if updates else scheduler.learning_rate] + [u.learning_rate for u in updates]
    ax_lr.step(steps, rates + rates[-1:], where="post", color="C0")
    if updates:
        at = np.array([u.step for u in updates])
        ax_loss.plot(at, [u.base_loss for u in updates], color="k", lw=1.5, label="probe batch, current weights")
        probes = np.array([u.losses for u in updates])
        for index, factor in enumerate(scheduler.factors):
            ax_loss.scatter(at, probes[:, index], s=12, color=f"C{index + 1}", label=f"after a step of x{factor:g}")
        _clip_losses(ax_loss, np.concatenate([probes.ravel(), [u.base_loss for u in updates]]), 99.5)
        ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("probe loss")
    return _save(fig, title, path)


def plot_autolrs(scheduler, path, title="AutoLRS"):
    """Draws an AutoLRS run: the learning rate of every step, the explored segments
    shaded (each starts from its stage's checkpoint), and the training loss.

    Args:
      scheduler: The `AutoLRSScheduler` of the run (`AutoLRS(...).scheduler` after fit).
      path: Where to save the PNG.
      title: The figure's title.

    Returns:
      The matplotlib Figure.
    """
    fig, ax_lr, ax_loss = _learning_rate_and_loss_axes()
    colors = {"warmup": "C2", "explore": "0.6", "exploit": "C0", "final": "C0"}
    labelled = set()
    for segment in scheduler.segments:
        label = {"explore": "explored", "exploit": "trained (chosen)", "warmup": "warmup"}.get(segment.kind)
        ax_lr.plot(
            [segment.start, segment.stop], [segment.learning_rate] * 2, color=colors[segment.kind], lw=2,
            label=label if label not in labelled else None,
        )
        labelled.add(label)
        if segment.kind == "explore":
            for ax in (ax_lr, ax_loss):
                ax.axvspan(segment.start, segment.stop, color="0.9", lw=0)
    for stage in scheduler.stages:
        if stage.rolled_back:
            ax_lr.axvline(stage.start, color="C3", ls=":", lw=1.2)
    ax_lr.legend(loc="lower right", fontsize=8)
    losses = np.asarray(scheduler.losses, np.float64)
    start = scheduler.first_step
    ax_loss.plot(start + np.arange(losses.size), losses, color="C1", lw=0.8, alpha=0.7)
    _clip_losses(ax_loss, losses, 99)
    ax_loss.set_xlabel("step (grey: explored segments)")
    ax_loss.set_ylabel("training loss")
    return _save(fig, title, path)
