"""Factor search's probes as variables of the optimizer, so that checkpoints carry them
(see `keras_autowu.core.optimizer_state`).

`FactorSearchScheduler` is a function of its probes: the run's starting learning rate
and each update's step, base loss and probe losses re-make every learning rate and
every update that `plot_factor_search` draws. So a run resumed by BackupAndRestore
replays them, where with the learning rate alone it would go on from the right
learning rate with no history before the restart. 4 bytes per factor and update, plus
8 for its step.
"""

import numpy as np

from keras_autowu.core import optimizer_state
from keras_autowu.core.keras_compat import variable_ref

NO_RUN = -1  # `step_offset` until a run starts
_SAVED = optimizer_state.SavedVariables("factor_search_run")


def _specs(max_updates, num_factors):
    return (
        optimizer_state.VariableSpec("factor_search_steps", "int64", (max_updates,), -1),
        # Per update: the loss at the current weights, then one per factor.
        optimizer_state.VariableSpec("factor_search_losses", "float32", (max_updates, 1 + num_factors), np.nan),
        optimizer_state.VariableSpec("factor_search_updates", "int64", (), 0),
        optimizer_state.VariableSpec("factor_search_step_offset", "int64", (), NO_RUN),
        optimizer_state.VariableSpec("factor_search_initial_learning_rate", "float32", (), np.nan),
    )


class ProbeRecord:
    """The updates of one factor-search run, in the optimizer's variables."""

    def __init__(self, steps, losses, updates, step_offset, initial_learning_rate):
        self.steps, self.losses, self.updates = steps, losses, updates
        self.step_offset, self.initial_learning_rate = step_offset, initial_learning_rate

    def refs(self):
        """The variables' identities: a snapshot of the weights leaves them out, so that a
        roll-back keeps the probes recorded since."""
        return {variable_ref(v) for v in (self.steps, self.losses, self.updates, self.step_offset, self.initial_learning_rate)}

    @property
    def shape(self):
        """(the updates it holds at most, the factors)."""
        rows, columns = (int(n) for n in self.losses.shape)
        return rows, columns - 1

    def start_run(self, step_offset, learning_rate):
        self.steps.assign(np.full(self.shape[0], -1, np.int64))
        self.losses.assign(np.full(self.losses.shape, np.nan, np.float32))
        self.updates.assign(0)
        self.step_offset.assign(step_offset)
        self.initial_learning_rate.assign(learning_rate)

    def append(self, step, base_loss, losses):
        """Keeps one update's probes: its step, the loss at the current weights, and one
        loss per factor. An update past the record's size (it cannot happen in the run
        it was sized for) is not kept."""
        index = int(self.updates.numpy())
        if index >= self.shape[0]:
            return
        steps = self.steps.numpy()
        steps[index] = step
        rows = self.losses.numpy()
        rows[index] = np.concatenate([[base_loss], np.asarray(losses, np.float32).ravel()])
        self.steps.assign(steps)
        self.losses.assign(rows)
        self.updates.assign(index + 1)

    def run_start(self):
        """The optimizer step the recorded run began at, or NO_RUN."""
        return int(self.step_offset.numpy())

    def scheduler_state(self, steps_per_epoch, total_epochs):
        """The recorded run as `FactorSearchScheduler.get_state()` would give it."""
        count = int(self.updates.numpy())
        steps, rows = self.steps.numpy()[:count], self.losses.numpy()[:count].astype(np.float64)
        return {
            "steps_per_epoch": steps_per_epoch,
            "total_epochs": total_epochs,
            "first_step": 0,
            "learning_rate_at_first_step": float(self.initial_learning_rate.numpy()),
            "probes": [[int(step), row[1:].tolist(), float(row[0])] for step, row in zip(steps, rows)],
        }


def attach(model, max_updates, num_factors):
    """The optimizer's record for runs of at most `max_updates` updates of
    `num_factors` probes, made if need be."""
    existing = _find(model.optimizer, (max_updates, num_factors))
    if existing is not None:
        return existing
    return ProbeRecord(*_SAVED.add(model, _specs(max_updates, num_factors)))


def _find(optimizer, shape):
    records = [ProbeRecord(*saved) for saved in _SAVED.candidates(optimizer)]
    matching = [record for record in records if record.shape == shape]
    return matching[-1] if matching else None
