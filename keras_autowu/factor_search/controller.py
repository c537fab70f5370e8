"""Factor search (Kim & Yu, seed 002): the learning rate moved by probes, with no Keras.

At each update a probe batch B gives, for every factor f of a list, the loss after one
step of f times the current learning rate: L(theta + f * d, B). The losses are
normalised, scored with exp(-x), and the learning rate is multiplied by the factors'
geometric mean weighted by those scores:

    lr <- lr * prod_f f ** (score_f / sum(score))

Where the seed says nothing, and where it fails, this does more (the README lists it):

- a probe whose loss is not finite, or more than `EXPLODE` times the loss at the
  current weights (the step blew up), gets score 0: it never pulls the learning rate
  up. When every probe does, the learning rate shrinks by the smallest factor;
- a probe batch whose loss at the current weights is not finite means the run has
  diverged: the scheduler asks for its last healthy snapshot back and shrinks the
  learning rate by the smallest factor;
- the learning rate stays within [min_lr, max_lr].

The scheduler keeps the package's controller contract (`keras_autowu.core.requests`):
the loop probes at `next_boundary()` and hands the probe to `observe`, with the
training losses of the steps since the last call. It is a pure function of its
probes: `get_state`/`set_state` replay them.
"""

import dataclasses
import math
from typing import NamedTuple, Tuple

import numpy as np

from keras_autowu.core import checks
from keras_autowu.core.requests import Request

_OWNER = "FactorSearch"
FACTOR_LISTS = {
    3: (2.0, 1.0, 0.5),
    5: (4.0, 2.0, 1.0, 0.5, 0.125),
    7: (8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125),
}
NORMALIZATIONS = ("minmax", "zscore")
DIRECTIONS = ("update", "gradient")
UPDATE_INTERVALS = ("epoch",)
# A probe whose loss is over EXPLODE times the loss at the current weights blew up.
EXPLODE = 2.0


def normalize(losses, normalization):
    """The losses on a common scale: [0, 1] ("minmax") or standard scores ("zscore").

    Equal losses say nothing: all 0, so every factor gets the same score.
    """
    losses = np.asarray(losses, np.float64)
    if normalization == "minmax":
        spread = losses.max() - losses.min()
        return (losses - losses.min()) / spread if spread > 0 else np.zeros_like(losses)
    spread = losses.std()
    return (losses - losses.mean()) / spread if spread > 0 else np.zeros_like(losses)


def scores(losses, normalization, base_loss=None):
    """exp(-x) of each probe's normalised loss; 0 for a probe that is not finite or
    that blew up (its loss over EXPLODE times `base_loss`, the loss before the step)."""
    losses = np.asarray(losses, np.float64)
    kept = np.isfinite(losses)
    if base_loss is not None and math.isfinite(base_loss):
        kept &= ~(losses > EXPLODE * base_loss)
    out = np.zeros_like(losses)
    if kept.any():
        out[kept] = np.exp(-normalize(losses[kept], normalization))
    return out


def factor(factors, score_list):
    """The weighted geometric mean of the factors; None when every score is 0."""
    score_list = np.asarray(score_list, np.float64)
    if score_list.sum() <= 0:
        return None
    log_mean = np.sum(score_list * np.log(np.asarray(factors, np.float64))) / score_list.sum()
    return float(np.exp(log_mean))


@dataclasses.dataclass(frozen=True)
class FactorSearchConfig:
    """The algorithm's arguments; see `FactorSearchScheduler` for their meaning."""

    factors: Tuple[float, ...] = FACTOR_LISTS[3]
    update_interval: object = "epoch"
    probe_batch_size: int = 32
    normalization: str = "minmax"
    direction: str = "update"
    min_lr: float = 1e-6
    max_lr: float = 10.0
    initial_learning_rate: object = None
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        factors = self.factors
        if isinstance(factors, (str, bytes)) or not hasattr(factors, "__len__") or len(factors) < 2:
            checks.fail(_OWNER, "factors", factors, "`factors` to be a list of at least two positive numbers")
        for value in factors:
            checks.check_number(_OWNER, "factors", value, low=0.0, low_open=True)
        if len(set(factors)) != len(factors):
            checks.fail(_OWNER, "factors", factors, "`factors` without repeats")
        object.__setattr__(self, "factors", tuple(float(f) for f in factors))
        if self.update_interval not in UPDATE_INTERVALS:
            if isinstance(self.update_interval, str) or self.update_interval is None:
                checks.fail(_OWNER, "update_interval", self.update_interval, f"`update_interval` to be an integer >= 1, or one of {UPDATE_INTERVALS}")
            checks.check_int(_OWNER, "update_interval", self.update_interval, 1)
        checks.check_int(_OWNER, "probe_batch_size", self.probe_batch_size, 1)
        checks.check_choice(_OWNER, "normalization", self.normalization, NORMALIZATIONS)
        checks.check_choice(_OWNER, "direction", self.direction, DIRECTIONS)
        checks.check_number(_OWNER, "min_lr", self.min_lr, low=0.0, low_open=True)
        checks.check_number(_OWNER, "max_lr", self.max_lr, low=0.0, low_open=True)
        if self.max_lr <= self.min_lr:
            checks.fail(_OWNER, "max_lr", self.max_lr, f"`max_lr` > min_lr={self.min_lr!r}")
        if self.initial_learning_rate is not None:
            checks.check_number(_OWNER, "initial_learning_rate", self.initial_learning_rate, self.min_lr, self.max_lr)
        checks.check_int(_OWNER, "seed", self.seed, 0)
        if not isinstance(self.verbose, bool):
            checks.check_int(_OWNER, "verbose", self.verbose, 0)


class Update(NamedTuple):
    """One update: the probes at `step` and what they decided.

    kind: "search" (the weighted mean of the factors), "shrink" (every probe blew up)
      or "restore" (the loss at the current weights was not finite: back to the last
      snapshot).
    """

    step: int
    learning_rate_before: float
    losses: Tuple[float, ...]
    base_loss: float
    scores: Tuple[float, ...]
    learning_rate: float
    kind: str


class Probe(NamedTuple):
    """One update's measurement at step `step`: the loss after a step of each factor
    times the learning rate (`losses`, in the factors' order) and the loss at the
    current weights (`base_loss`), on the same probe batch."""

    step: int
    losses: Tuple[float, ...]
    base_loss: float


class FactorSearchScheduler:
    """Factor search's decisions, with no Keras: for custom training loops, and what the
    `FactorSearch` callback drives.

    Args:
      steps_per_epoch, total_epochs: the run's length.
      learning_rate: the starting learning rate (`initial_learning_rate` wins if given).
      factors: the multiples of the learning rate each update probes; the seed's lists
        are (2, 1, 0.5) (the default), (4, 2, 1, 0.5, 0.125) and (8, 4, 2, 1, 0.5,
        0.25, 0.125).
      update_interval: steps between updates, or "epoch" (the seed's).
      probe_batch_size: rows of the probe batch (the seed found 32 the most stable).
      normalization: "minmax" or "zscore", how the probe losses are put on a scale
        before the exp(-x) score.
      direction: "update", the step the optimizer takes (for Adam, LAMB: its own
        update), or "gradient", the seed's raw-gradient step -f * lr * g.
      min_lr, max_lr: bounds on the learning rate.
      seed, verbose: the probe batch's seed (where the caller samples one); 1 prints a
        line per update.

    Example, in a custom loop (the probe itself: `keras_autowu.FactorProbe`):

    ```python
    scheduler = FactorSearchScheduler(steps_per_epoch, epochs, learning_rate=0.01)
    losses = []
    for step, (x, y) in enumerate(batches):
        if step == scheduler.next_boundary():
            probed, base = probe.probe(x, y, scheduler.learning_rate)
            for request in scheduler.observe(losses, probe=(step, probed, base)):
                ...  # snapshot or restore the weights (keras_autowu.WeightSnapshot)
            losses = []
        optimizer.learning_rate = scheduler.learning_rate
        losses.append(float(train_step(x, y)))
    ```
    """

    def __init__(self, steps_per_epoch, total_epochs, learning_rate=None, **kwargs):
        checks.check_run_length(_OWNER, steps_per_epoch, total_epochs)
        self.config = FactorSearchConfig(**kwargs)
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.total_steps = steps_per_epoch * total_epochs
        interval = self.config.update_interval
        self.update_interval = steps_per_epoch if interval == "epoch" else interval
        start = self.config.initial_learning_rate if self.config.initial_learning_rate is not None else learning_rate
        if start is None:
            checks.fail(_OWNER, "learning_rate", start, "a starting learning rate (`learning_rate` or `initial_learning_rate`)")
        checks.check_number(_OWNER, "learning_rate", start, low=0.0, low_open=True)
        self.initial_learning_rate = float(np.clip(start, self.config.min_lr, self.config.max_lr))
        self.reset()

    def reset(self):
        self.learning_rate = self.initial_learning_rate
        self.updates = []
        self.first_step = self.steps_done = 0

    @property
    def factors(self):
        return self.config.factors

    def is_update_step(self, step):
        """Whether step `step` (from 0) probes: every `update_interval` steps, not the first."""
        return 0 < step < self.total_steps and step % self.update_interval == 0

    def next_boundary(self):
        """The next step that probes, not yet observed (total_steps: none left)."""
        last = self.updates[-1].step if self.updates else -1
        step = max(self.steps_done, last + 1, 1)
        step = -(-step // self.update_interval) * self.update_interval
        return min(step, self.total_steps)

    def observe(self, losses, probe=None):
        """Takes the training losses of the steps since the last call (they count the
        steps), and at an update the `Probe` (step, the probe losses one per factor,
        the loss at the current weights); sets `learning_rate` and returns the
        requests for the weights."""
        self.steps_done += int(np.asarray(losses).size)
        if probe is None:
            return []
        probe = Probe(*probe)
        if not self.is_update_step(probe.step):
            checks.fail(_OWNER, "probe", probe, f"a probe at an update step (every {self.update_interval} steps)")
        self.steps_done = max(self.steps_done, probe.step)
        return self._observe(probe.step, probe.losses, probe.base_loss, report=self.config.verbose)

    def learning_rates(self, start, stop):
        """The learning rate of steps start..stop-1: each update's from its step on (the
        Keras callback applies it once the probe's result is read, a step or two later)."""
        steps = np.arange(start, stop)
        rates = np.full(steps.size, self.learning_rate)
        for update in reversed(self.updates):
            rates = np.where(steps < update.step, update.learning_rate_before, rates)
        return rates

    def _observe(self, step, losses, base_loss, report):
        losses = tuple(float(v) for v in np.asarray(losses, np.float64).reshape(-1))
        if len(losses) != len(self.factors):
            raise ValueError(f"FactorSearch expects one probe loss per factor ({len(self.factors)}). Received {len(losses)} losses: {losses}")
        base_loss = float(base_loss)
        before = self.learning_rate
        score_list = scores(losses, self.config.normalization, base_loss)
        multiplier = factor(self.factors, score_list)
        if not math.isfinite(base_loss):
            kind, multiplier = "restore", min(self.factors)
        elif multiplier is None:
            kind, multiplier = "shrink", min(self.factors)
        else:
            kind = "search"
        self.learning_rate = float(np.clip(before * multiplier, self.config.min_lr, self.config.max_lr))
        update = Update(step, before, losses, base_loss, tuple(float(s) for s in score_list), self.learning_rate, kind)
        self.updates.append(update)
        if report:
            self._report(update)
        return [Request("restore" if kind == "restore" else "snapshot", step)]

    def _report(self, update):
        probes = ", ".join(f"x{f:g}: {loss:.4g}" for f, loss in zip(self.factors, update.losses))
        what = {
            "search": "",
            "shrink": " (every probe blew up: shrunk by the smallest factor)",
            "restore": " (the loss at the current weights is not finite: back to the last snapshot, shrunk)",
        }[update.kind]
        print(
            f"FactorSearch: step {update.step}: loss {update.base_loss:.4g}; probes {probes}; "
            f"learning rate {update.learning_rate_before:.4g} -> {update.learning_rate:.4g}{what}"
        )

    def resume(self, step, learning_rate):
        """Continues a run at `step` with `learning_rate` (a restored optimizer's), with no
        history before it."""
        self.updates = []
        self.first_step = self.steps_done = int(step)
        self.learning_rate = float(learning_rate)

    def get_state(self):
        """Plain values: the starting learning rate and every update's probes."""
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "total_epochs": self.total_epochs,
            "first_step": self.first_step,
            "learning_rate_at_first_step": self.updates[0].learning_rate_before if self.updates else self.learning_rate,
            "probes": [[u.step, list(u.losses), u.base_loss] for u in self.updates],
        }

    def set_state(self, state):
        """Replays `get_state()`'s probes: the same learning rates, updates and requests."""
        if (state["steps_per_epoch"], state["total_epochs"]) != (self.steps_per_epoch, self.total_epochs):
            raise ValueError(
                "FactorSearch: the state is of another run (steps_per_epoch, total_epochs) = "
                f"{(state['steps_per_epoch'], state['total_epochs'])}, not {(self.steps_per_epoch, self.total_epochs)}"
            )
        self.resume(state["first_step"], state["learning_rate_at_first_step"])
        for step, losses, base_loss in state["probes"]:
            self._observe(step, losses, base_loss, report=False)
        self.steps_done = max([self.first_step] + [step for step, _, _ in state["probes"]])
        return []
