"""Keras 3's BackupAndRestore, made safe against a kill in the middle of its write.

It writes each backup over the last: the weights, then the epoch, in a JSON file
beside them (keras/src/callbacks/backup_and_restore.py). A process killed during that
write (a preempted machine's SIGKILL) leaves
- half a weights file, which the restarted `fit` cannot open (`OSError: ... truncated
  file`). With `double_checkpoint=True` it copies the last backup aside first and falls
  back to it when the new one cannot be read;
- or an empty epoch file (killed between opening it and writing it), on which the
  restart fails (`JSONDecodeError`), though the weights are whole. Keras has no
  fallback for that one.
tf_keras's backup is a TensorFlow checkpoint, which its manager records only once
written, so a cut one is ignored there, and its BackupAndRestore has no such option.
"""

import json
import os

from keras_autowu.core.keras_compat import backup_epoch_files, keras


def keep_the_backup_before(callbacks, warn):
    """Turns on `double_checkpoint` in each of `callbacks`' BackupAndRestore that has it
    off, and says so through `warn`. Its cost: one more
    copy of the weights on disk, and a file copy per backup."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.BackupAndRestore) and getattr(callback, "double_checkpoint", None) is False:
            callback.double_checkpoint = True
            warn(
                "turned on BackupAndRestore's double_checkpoint. Without it, a process killed while "
                "it writes a backup leaves a file that the restarted fit cannot open, and the run "
                "is lost; with it, Keras goes back to the backup before. Pass "
                "BackupAndRestore(..., double_checkpoint=True) to set it yourself."
            )


def repair_a_cut_epoch_file(callbacks, warn):
    """Before each of `callbacks`' BackupAndRestore restores: an epoch file that does not
    read is replaced by double_checkpoint's copy of the one before, or removed when there
    is none (the restart then begins at epoch 0), and `warn` says so. Either way the
    weights and the optimizer, with the schedulers' run state, are the newest backup's,
    and the schedulers go on from the optimizer's step (docs/preemption.md)."""
    for callback in callbacks:
        paths = backup_epoch_files(callback) if isinstance(callback, keras.callbacks.BackupAndRestore) else None
        if paths is None or not os.path.exists(paths[0]) or _reads(paths[0]):
            continue
        if os.path.exists(paths[1]) and _reads(paths[1]):
            with open(paths[1]) as source, open(paths[0], "w") as target:
                target.write(source.read())
            done = "put back the one before it"
        else:
            os.remove(paths[0])
            done = "removed it: the fit begins again at epoch 0"
        warn(
            f"BackupAndRestore's epoch file {paths[0]} does not read (the process was stopped "
            f"while it wrote it); {done}. The weights and the optimizer are the last backup's."
        )


def _reads(path):
    try:
        with open(path) as f:
            return isinstance(json.load(f).get("epoch"), int)
    except (OSError, ValueError, AttributeError):
        return False
