"""AutoLRS (Jin et al., ICLR 2021; seed 004): the learning rate found stage by stage by
Bayesian optimisation on the fly, with no Keras.

A stage explores `explored` learning rates for tau' steps each, every one from the
stage's checkpoint, forecasts where each one's loss would be after tau steps
(`autolrs_forecast`), chooses the next to explore by a GP's lower confidence bound
(`autolrs_search`), then restores the checkpoint once more and trains tau steps with
the learning rate of the lowest forecast. `autolrs_plan` lays out the stages.

The decisions follow the reference (`autolrs_server.py`), except where it fails or
where an in-process Keras scheduler must decide something it leaves to its client
(the README lists every departure):

- **The run's budget counts the exploration.** The reference trains as many steps
  again as the user asked for. Here the fit's steps are the budget: a stage starts only
  if it fits whole before the run's end, and the steps after the last one train at
  its learning rate.
- **tau fits the run.** By default (`tau=None`) tau is the reference's 1000, or less,
  so that the run holds at least two stages.
- **Every step runs at the learning rate the plan gives it**: the reference's client
  runs one step after each restore at the learning rate stored in the restored
  optimizer state.
- **SGD's velocity is rescaled** to the learning rate it resumes with (Keras keeps the
  learning rate inside it, PyTorch does not; `stage_checkpoint`).
- **A bounded forecast** (`forecast="bounded"`): a segment whose loss falls almost
  linearly is extrapolated by the reference far below zero, and a slow learning rate
  wins (`autolrs_forecast`).
- **A guard on the exploitation.** When a stage's training ends with a non-finite loss,
  a loss above `DIVERGED` times the loss at the stage's start, or a loss no lower than
  an explored segment reached in a tenth of the steps (the chosen rate killed the
  network), the stage's checkpoint comes back and later stages search below half
  the learning rate that failed. The reference trains on.

The scheduler keeps the package's controller contract (`keras_autowu.core.requests`):
at host boundaries (`next_boundary()`) `observe(losses)` hands it the per-step losses
since the last call (a caller that can act only later, at the end of a chunk of steps,
calls it then: the segment ends there) and returns what the caller must do with the
weights (`Request`s); `learning_rates(start, stop)` gives each step's rate.
"""

import math
from typing import List, NamedTuple, Tuple

import numpy as np

from keras_autowu.autolrs import forecast as autolrs_forecast
from keras_autowu.autolrs.config import AutoLRSConfig, auto_tau
from keras_autowu.autolrs.plan import StagePlan
from keras_autowu.core import checks
from keras_autowu.core.requests import Request
from keras_autowu.gp.bayes_opt import LearningRateSearch

_OWNER = "AutoLRS"
DIVERGED = 1.5  # a stage's last losses over this times its starting loss: a rescue
VALIDATIONS_PER_SEGMENT = 16  # the reference's val_freq = tau' / 16


class StageRecord(NamedTuple):
    """One stage: where it starts, the learning rates explored and their forecasts,
    the one chosen, and whether its training diverged (and was rolled back)."""

    index: int
    start: int
    explore_steps: int
    exploit_steps: int
    on_validation: bool
    learning_rates: Tuple[float, ...]
    forecasts: Tuple[float, ...]
    chosen: float
    rolled_back: bool


class Segment(NamedTuple):
    """Steps start..stop-1 at `learning_rate`; kind "warmup", "explore", "exploit" or "final"."""

    start: int
    stop: int
    learning_rate: float
    kind: str


class AutoLRSScheduler:
    """AutoLRS's decisions, with no Keras: for custom training loops, and what the
    `AutoLRS` callback drives.

    Args:
      total_steps: the run's length in steps, exploration included.
      learning_rate: the learning rate before the first stage (the optimizer's): the
        warmup's target, and the training's until a stage has chosen.
      steps_per_execution: the host acts between chunks of this many steps; every
        segment is a multiple of it.
      validation: True when the caller can give a validation loss at
        `validation_due(step)` steps: the late stages (after tau' reaches tau_max / 10)
        then score on it, as the reference does. False: they score the training loss.
      min_lr, max_lr: the search's bounds (a log scale).
      tau: steps of training with each stage's learning rate; None: the reference's
        1000, or less so that the run holds at least two stages.
      tau_ratio: tau over tau', the steps each explored learning rate trains.
      explored: learning rates explored per stage (k).
      tau_max: tau' doubles after each stage while below tau_max / 10.
      warmup_steps: a linear warmup to `learning_rate` first, with no search.
      forecast: "bounded" (the exponential's time constant at most the explored
        segment's length, no forecast below 0 when no loss was) or "reference".
      seed: the search's first draw in each stage.
      verbose: 1 prints a line per stage.

    Example, in a custom loop:

    ```python
    scheduler = AutoLRSScheduler(total_steps, learning_rate=0.01)
    checkpoint = keras_autowu.StageCheckpoint(model)
    losses = []
    for step, (x, y) in enumerate(batches):
        if step == scheduler.next_boundary():
            for request in scheduler.observe(losses):
                if request.kind == "snapshot":
                    checkpoint.save()
                else:
                    checkpoint.restore(request.velocity_scale)
            losses = []
        optimizer.learning_rate = scheduler.learning_rates(step, step + 1)[0]
        losses.append(float(train_step(x, y)))
    ```
    """

    def __init__(self, total_steps, learning_rate, steps_per_execution=1, validation=False, **kwargs):
        checks.check_int(_OWNER, "total_steps", total_steps, 1)
        checks.check_number(_OWNER, "learning_rate", learning_rate, low=0.0, low_open=True)
        checks.check_int(_OWNER, "steps_per_execution", steps_per_execution, 1)
        checks.check_bool(_OWNER, "validation", validation)
        self.config = config = AutoLRSConfig(**kwargs)
        self.total_steps = int(total_steps)
        self.initial_learning_rate = float(learning_rate)
        self.validation = validation
        self.tau = config.tau if config.tau is not None else auto_tau(
            total_steps, config.warmup_steps, config.tau_ratio, config.explored, config.tau_max
        )
        self.plan = StagePlan(self.tau, config.tau_ratio, config.explored, config.tau_max, config.warmup_steps, steps_per_execution)
        if self.plan.stage(0).end > total_steps:
            needs = f"a run long enough for one stage: {self.plan.stage(0).end} steps with tau={self.tau}, and the run has {total_steps}"
            # tau is at least tau_ratio (a step per explored learning rate).
            shortest = StagePlan(config.tau_ratio, config.tau_ratio, config.explored, config.tau_max, config.warmup_steps, steps_per_execution)
            if shortest.stage(0).end > total_steps:
                checks.fail(
                    _OWNER, "tau_ratio", config.tau_ratio,
                    f"{needs}. The shortest stage (tau = tau_ratio) takes {shortest.stage(0).end} steps: pass a "
                    "smaller tau_ratio, or fit for more steps",
                )
            largest = auto_tau(total_steps, config.warmup_steps, config.tau_ratio, config.explored, config.tau_max)
            checks.fail(_OWNER, "tau", config.tau, f"{needs}. Pass tau={largest} or less, or tau=None")
        self.reset()

    # The run's course.

    def reset(self):
        """Back to the run's start."""
        self.stages: List[StageRecord] = []
        self.segments: List[Segment] = []
        self.losses: List[float] = []
        self.first_step = 0
        self.steps_done = 0
        self.max_lr = self.config.max_lr
        self._initial_loss = None
        self._stage_index = 0
        self._last_learning_rate = self.initial_learning_rate
        self._segment = None
        warmup_end = self.plan.stage(0).start
        # Before a stage starts, the caller's next observe() starts it.
        self._pending_stage_start = warmup_end == 0
        if warmup_end > 0:
            self._begin_segment(0, min(warmup_end, self.total_steps), self.initial_learning_rate, "warmup")

    def resume(self, step, learning_rate):
        """Continues a run at `step` with the optimizer's `learning_rate`, after a restart
        whose in-memory checkpoint is lost: a warmup goes on; a stage interrupted
        starts again from `step`, from the weights restored, with the lengths of the
        stage the plan had at `step`; past the last stage, training goes on at
        `learning_rate`."""
        self.reset()
        step = int(step)
        self.first_step = self.steps_done = step
        position = self.plan.locate(step)
        if position.kind == "warmup":
            self.segments = []
            self._begin_segment(step, self.plan.stage(0).start, self.initial_learning_rate, "warmup")
            return
        self._stage_index = position.stage
        self._last_learning_rate = float(learning_rate)
        self._pending_stage_start = True

    def next_boundary(self):
        """The step before which the caller must next call `observe` (total_steps: none left)."""
        if self._pending_stage_start:
            return self.first_step
        validation = self._next_validation()
        return min(self._segment.stop, validation) if validation is not None else self._segment.stop

    def validation_due(self, step):
        """Whether `observe` at `step` needs the validation loss of the weights now."""
        due = self._next_validation()
        return due is not None and due <= step

    def get_state(self):
        """Where the run is, as plain values: its step and learning rate. The stage's
        in-memory checkpoint does not survive a restart, so neither do its decisions:
        `set_state` starts the stage under way again from its step (`resume`)."""
        return {"total_steps": self.total_steps, "step": self.steps_done, "learning_rate": float(self.learning_rates(self.steps_done, self.steps_done + 1)[0]) if self.steps_done < self.total_steps else self._last_learning_rate}

    def set_state(self, state):
        """Continues the run of `get_state()` (see `resume`); no request: the weights
        as they are now start the stage again."""
        if state["total_steps"] != self.total_steps:
            raise ValueError(f"AutoLRS: the state is of a run of {state['total_steps']} steps, not {self.total_steps}")
        self.resume(state["step"], state["learning_rate"])
        return []

    def _next_validation(self):
        segment = self._segment
        if segment is None or segment.kind != "explore" or not self._scores_validation():
            return None
        interval = self._validation_interval()
        done = len(self._validation_losses)
        next_step = segment.start + (done + 1) * interval
        return next_step if next_step <= segment.stop else None

    def _scores_validation(self):
        return self.validation and self._stage.on_validation

    def _validation_interval(self):
        chunk = self.plan.steps_per_execution
        interval = max(1, self._stage.explore_steps // VALIDATIONS_PER_SEGMENT)
        return -(-interval // chunk) * chunk

    def learning_rates(self, start, stop):
        """The learning rate of steps start..stop-1 (known up to `next_boundary`; past it,
        the current segment's)."""
        steps = np.arange(start, stop)
        rates = np.full(steps.size, self._last_learning_rate if self._segment is None else self._segment.learning_rate)
        segment = self._segment
        if segment is not None and segment.kind == "warmup":
            rates = np.where(steps < segment.stop, segment.learning_rate * (steps + 1) / segment.stop, rates)
        return rates

    def observe(self, losses, validation_loss=None):
        """Takes the training losses of the steps since the last call (one per step, in
        order), and at a `validation_due` step the validation loss; returns the
        `Request`s for the weights before the next step trains. At the run's end, a
        last call (the step the run's last) judges the last stage's training, and asks
        for its checkpoint back if that training diverged."""
        losses = [float(v) for v in np.asarray(losses, np.float64).reshape(-1)]
        step = self.steps_done + len(losses)
        if step < self.next_boundary():
            raise ValueError(
                f"AutoLRS expects the losses up to step {self.next_boundary()} at least. Received {len(losses)} "
                f"losses after step {self.steps_done}"
            )
        self.steps_done = step
        self.losses.extend(losses)
        if self._initial_loss is None and losses:
            self._initial_loss = losses[0]
        if self._pending_stage_start:
            return self._start_stage_or_final(step, [])
        self._segment_losses.extend(losses)
        if self.validation_due(step):
            if validation_loss is None:
                raise ValueError(f"AutoLRS expects the validation loss at step {step} (validation_due). Received validation_loss=None")
            self._validation_losses.append(float(validation_loss))
        if step < self._segment.stop:
            return []
        kind = self._segment.kind
        if kind == "warmup":
            self._last_learning_rate = self._segment.learning_rate
            return self._start_stage_or_final(step, [])
        if kind == "explore":
            return self._end_exploration(step)
        if kind == "exploit":
            return self._end_exploitation(step)
        return []

    # Stages.

    def _begin_segment(self, start, stop, learning_rate, kind):
        self._segment = Segment(int(start), int(stop), float(learning_rate), kind)
        self.segments.append(self._segment)
        self._segment_losses, self._validation_losses = [], []

    def _start_stage_or_final(self, step, requests):
        self._pending_stage_start = False
        lengths = self.plan.stage(self._stage_index)
        stage = lengths._replace(start=step)
        if stage.end > self.total_steps:
            if step < self.total_steps:
                self._begin_segment(step, self.total_steps, self._last_learning_rate, "final")
                if self.config.verbose:
                    print(
                        f"AutoLRS: step {step}: stage {stage.index} ({stage.end - step} steps) does not fit in the "
                        f"{self.total_steps - step} left; they train at {self._last_learning_rate:.4g}."
                    )
            else:
                self._segment = Segment(step, step, self._last_learning_rate, "final")
            return requests
        self._stage = stage
        self._search = LearningRateSearch(self.config.min_lr, self.max_lr, stage.explored, [self.config.seed, stage.index])
        self._segment_ends = []
        self._stage_start_losses = []
        learning_rate = self._search.propose()
        self._begin_segment(step, step + stage.explore_steps, learning_rate, "explore")
        # The checkpoint's SGD velocity was built at the last learning rate.
        return requests + [Request("snapshot", step), Request("restore", step, learning_rate / self._last_learning_rate)]

    def _end_exploration(self, step):
        segment_losses = self._segment_losses
        if segment_losses:
            self._stage_start_losses.append(segment_losses[0])
        self._segment_ends.append(_tail_mean(segment_losses))
        self._search.tell(self._forecast())
        stage = self._stage
        if len(self._search.forecasts) < stage.explored:
            learning_rate = self._search.propose()
            self._begin_segment(step, step + stage.explore_steps, learning_rate, "explore")
        else:
            learning_rate = self._choose()
            self._begin_segment(step, step + stage.exploit_steps, learning_rate, "exploit")
        return [Request("restore", step, learning_rate / self._last_learning_rate)]

    def _choose(self):
        """The explored learning rate of the lowest forecast; between equal forecasts
        (two segments that both reach 0 under the bounded rule), the lower loss at the
        segment's end, then the lower learning rate."""
        forecasts = np.asarray(self._search.forecasts)
        ends = np.nan_to_num(np.asarray(self._segment_ends), nan=np.inf)
        rates = np.asarray(self._search.points)  # then the lower learning rate: the safer
        index = int(np.lexsort((rates, ends, forecasts))[0])
        return self._search.learning_rate(self._search.points[index])

    def _forecast(self):
        stage = self._stage
        if self._scores_validation():
            series = self._validation_losses
            interval = self._validation_interval()
            # The reference: a segment whose validation loss reached the run's first
            # loss is scored by its last one, not extrapolated.
            if series and self._initial_loss is not None and np.all(np.isfinite(series)) and max(series) >= self._initial_loss:
                return float(series[-1])
            return autolrs_forecast.forecast(series, stage.exploit_steps // interval, training=False, rule=self.config.forecast)
        return autolrs_forecast.forecast(self._segment_losses, stage.exploit_steps, training=True, rule=self.config.forecast)

    def _end_exploitation(self, step):
        stage, chosen = self._stage, self._segment.learning_rate
        start_loss = float(np.median(self._stage_start_losses)) if self._stage_start_losses else math.inf
        end_loss = _tail_mean(self._segment_losses)
        best_explored = float(np.nanmin(self._segment_ends)) if np.isfinite(self._segment_ends).any() else math.inf
        # Not finite, far above the start, or no lower than an explored learning rate
        # got in a tenth of the steps (a network the chosen rate killed).
        diverged = not np.isfinite(end_loss) or end_loss > DIVERGED * start_loss or end_loss >= best_explored
        record = StageRecord(
            stage.index, stage.start, stage.explore_steps, stage.exploit_steps, stage.on_validation,
            tuple(self._search.learning_rate(p) for p in self._search.points), tuple(self._search.forecasts), chosen, diverged,
        )
        self.stages.append(record)
        self._stage_index += 1
        requests = []
        if diverged:
            # Back to the stage's start, which the checkpoint still holds; below it from now on.
            self.max_lr = max(min(self.max_lr, chosen / 2), self.config.min_lr * (1 + 1e-6))
            requests.append(Request("restore", step, 1.0))
        else:
            self._last_learning_rate = chosen
        self._report(record)
        return self._start_stage_or_final(step, requests)

    def _report(self, record):
        if not self.config.verbose:
            return
        explored = ", ".join(f"{lr:.3g}: {f:.4g}" for lr, f in zip(record.learning_rates, record.forecasts))
        score = "validation" if self._scores_validation() else "training"
        line = (
            f"AutoLRS: stage {record.index} at step {record.start}: explored ({score} loss forecast) {explored}; "
            f"trained {record.exploit_steps} steps at {record.chosen:.4g}"
        )
        if record.rolled_back:
            line += f"; its training failed: rolled back to step {record.start}, later stages search below {self.max_lr:.4g}"
        print(line + ".")


def _tail_mean(losses):
    """The mean of the last tenth of a segment's losses (not finite if any is not)."""
    tail = np.asarray(losses[-max(1, len(losses) // 10):], np.float64)
    return float(np.mean(tail)) if tail.size else math.nan
