"""A fit for the SIGKILL tests (tests/core/test_sigkill.py): trains, and kills itself
with SIGKILL at a chosen moment, as a preempted machine's process dies.

`sigkill_fit.py BACKUP_DIR TRACE [--scheduler autowu|factor_search|autolrs]
[--kill-after-step N] [--kill-after-fit-step N] [--kill-in-backup N] [--signal TERM]
[--kill-after-backup-weights N] [--kill-in-backup-epoch N] [--plain-backup]`

Each step's learning rate is appended to TRACE ("optimizer step, learning rate, fit
step" per line) with an unbuffered write, so the lines survive the kill.
`--kill-after-step N` dies at the end of optimizer step N, `--kill-after-fit-step N`
at the end of the fit's N-th batch; `--kill-in-backup N` dies in the middle of
BackupAndRestore's N-th save: on Keras 3 after half of the weights file is written; on
tf_keras, whose backup is a TensorFlow checkpoint, after half of the new checkpoint's
data is written and before its manager records it. `--kill-after-backup-weights N`
(Keras 3) dies after the N-th save's weights file is written and before the epoch it
writes beside it; `--kill-in-backup-epoch N` (Keras 3) as the epoch's file is opened,
empty.
"""

import argparse
import json
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_autowu  # noqa: E402
from keras_autowu.core.keras_compat import IS_KERAS_3, keras  # noqa: E402

BATCH, EPOCHS, SAVE_FREQ = 64, 10, 7


# 1,797 images, 29 steps an epoch. Factor search updates at each epoch's first step, and
# AutoLRS's first stage explores steps 0-11 and trains 12-51, its second explores 52-91.
SCHEDULERS = {
    "autowu": lambda: keras_autowu.AutoWU(verbose=0),
    "factor_search": lambda: keras_autowu.FactorSearch(initial_learning_rate=0.05, verbose=0),
    "autolrs": lambda: keras_autowu.AutoLRS(min_lr=1e-3, max_lr=1.0, tau=40, tau_ratio=10, explored=3, verbose=0),
}
SUMMARIES = {
    "autowu": lambda scheduler: dict(
        steps_per_epoch=scheduler.steps_per_epoch,
        epochs=EPOCHS,
        velocity_momentum=scheduler.velocity_momentum,
        losses=np.asarray(scheduler.losses).tolist(),
        switch=scheduler.switch and scheduler.switch.step,
        rescues=[rescue.step for rescue in scheduler.rescues],
    ),
    # The learning rate of each step as the controller has it: factor search's from each
    # update's step on, which the callback applies two steps later (its probe's result).
    "factor_search": lambda scheduler: dict(
        learning_rates=scheduler.learning_rates(0, scheduler.total_steps).tolist(),
        updates=[u.step for u in scheduler.updates],
    ),
    "autolrs": lambda scheduler: dict(
        first_step=scheduler.first_step,
        segments=[(s.kind, s.start, s.stop, s.learning_rate) for s in scheduler.segments],
        stages=[s.start for s in scheduler.stages],
    ),
}


SIGNAL = [signal.SIGKILL]  # --signal TERM: the notice a preemptible machine gives first


def kill():
    os.kill(os.getpid(), SIGNAL[0])


class TraceAndKill(keras.callbacks.Callback):
    """Writes "optimizer step, learning rate, fit step" for each step, and dies after
    optimizer step `kill_after_step` or fit step `kill_after_fit_step`. The fit step
    counts the fit's batches (epoch * steps per epoch + batch): AutoLRS puts the
    optimizer's step counter back with each stage checkpoint, so only it is unique."""

    def __init__(self, trace_path, kill_after_step, kill_after_fit_step):
        super().__init__()
        self._fd = os.open(trace_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._kill_after_step, self._kill_after_fit_step = kill_after_step, kill_after_fit_step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy()) - 1
        fit_step = self._epoch * self.params["steps"] + batch
        learning_rate = float(self.model.optimizer.learning_rate.numpy())
        os.write(self._fd, f"{step} {learning_rate!r} {fit_step}\n".encode())
        if step == self._kill_after_step or fit_step == self._kill_after_fit_step:
            kill()


def torn_saves(model, in_save, cut="weights"):
    """model.save_weights that, at its `in_save`-th call, writes half the file and dies.
    With `cut="before epoch"` it writes all of it and dies (before BackupAndRestore
    writes the backup's epoch beside it); with `cut="epoch"` it then also empties the
    epoch's file, as opening it to write does, and dies."""
    original = model.save_weights
    calls = [0]

    def save_weights(filepath, *args, **kwargs):
        calls[0] += 1
        if calls[0] != in_save:
            return original(filepath, *args, **kwargs)
        if cut != "weights":
            original(filepath, *args, **kwargs)
            if cut == "epoch":
                open(os.path.join(os.path.dirname(filepath), "training_metadata.json"), "w").close()
            kill()
        complete = f"{filepath}.whole.weights.h5"
        original(complete, *args, **kwargs)
        with open(complete, "rb") as f:
            data = f.read()
        with open(filepath, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        kill()

    model.save_weights = save_weights


def torn_checkpoints(in_save):
    """tf_keras: the `in_save`-th CheckpointManager.save writes half its data and dies."""
    import tensorflow as tf

    original = tf.train.CheckpointManager.save
    calls = [0]

    def save(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] != in_save:
            return original(self, *args, **kwargs)
        prefix = self._checkpoint.write(os.path.join(self.directory, "ckpt-torn"))
        data = tf.io.gfile.glob(prefix + ".data-*")[0]
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
            os.fsync(f.fileno())
        kill()

    tf.train.CheckpointManager.save = save


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("backup_dir")
    parser.add_argument("trace")
    parser.add_argument("--kill-after-step", type=int, default=-1)
    parser.add_argument("--kill-after-fit-step", type=int, default=-1)
    parser.add_argument("--kill-in-backup", type=int, default=0)
    parser.add_argument("--kill-after-backup-weights", type=int, default=0, help="Keras 3: dies between the N-th backup's weights and its epoch")
    parser.add_argument("--kill-in-backup-epoch", type=int, default=0, help="Keras 3: dies with the N-th backup's epoch file opened, empty")
    parser.add_argument("--scheduler", default="autowu", choices=sorted(SCHEDULERS))
    parser.add_argument("--save-freq", default=str(SAVE_FREQ), help="BackupAndRestore's: a number of batches, or epoch")
    parser.add_argument("--signal", default="KILL", choices=["KILL", "TERM"], help="what the process dies of")
    parser.add_argument("--plain-backup", action="store_true", help="BackupAndRestore without double_checkpoint=True")
    args = parser.parse_args()
    SIGNAL[0] = getattr(signal, f"SIG{args.signal}")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if args.kill_in_backup:
        if IS_KERAS_3:
            torn_saves(model, args.kill_in_backup)
        else:
            torn_checkpoints(args.kill_in_backup)
    if args.kill_after_backup_weights:
        torn_saves(model, args.kill_after_backup_weights, cut="before epoch")
    if args.kill_in_backup_epoch:
        torn_saves(model, args.kill_in_backup_epoch, cut="epoch")
    save_freq = args.save_freq if args.save_freq == "epoch" else int(args.save_freq)
    backup_options = dict(save_freq=save_freq)
    if IS_KERAS_3 and not args.plain_backup:
        backup_options["double_checkpoint"] = True  # docs/preemption.md's recipe
    callbacks = [
        keras.callbacks.BackupAndRestore(args.backup_dir, **backup_options),
        SCHEDULERS[args.scheduler](),
        TraceAndKill(args.trace, args.kill_after_step, args.kill_after_fit_step),
    ]
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, callbacks=callbacks, verbose=0)
    with open(args.trace + ".json", "w") as f:
        json.dump(SUMMARIES[args.scheduler](callbacks[1].scheduler), f)


if __name__ == "__main__":
    main()
