"""Keras 3's BackupAndRestore, made safe against a kill in the middle of its write.

It writes each backup over the last: the weights, then the epoch, in a JSON file
beside them (keras/src/callbacks/backup_and_restore.py). A process killed during that
write (a preempted machine's SIGKILL) leaves
- half a weights file, which the restarted `fit` cannot open (`OSError: ... truncated
  file`). With `double_checkpoint=True` it copies the last backup aside first and falls
  back to it when the new one cannot be read, but the first backup has none before it;
- or an empty epoch file (killed between opening it and writing it), on which the
  restart fails (`JSONDecodeError`), though the weights are whole. Keras has no
  fallback for that one.
tf_keras's backup is a TensorFlow checkpoint, which its manager records only once
written, so a cut one is ignored there, and its BackupAndRestore has no such option.
"""

import json
import os

from keras_autowu.core.keras_compat import backup_files, keras


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


def repair_a_cut_backup(callbacks, warn):
    """Before each of `callbacks`' BackupAndRestore restores, and says so through `warn`:
    - a weights file that does not open, with no copy of the one before (the first
      backup was cut), is removed: the fit begins at epoch 0, as with no backup;
    - an epoch file that does not read is replaced by the copy of the one before, or
      removed when there is none (the restart then begins at epoch 0).
    Either way the weights and the optimizer, with the schedulers' run state, are the
    newest whole backup's, and the schedulers go on from the optimizer's step
    (docs/preemption.md). Only local files: a remote backup is left to Keras."""
    for callback in callbacks:
        files = backup_files(callback) if isinstance(callback, keras.callbacks.BackupAndRestore) else None
        if files is None:
            continue
        if os.path.exists(files["weights"]) and not os.path.exists(files["weights before"]) and not _opens(files["weights"]):
            os.remove(files["weights"])
            if os.path.exists(files["epoch"]):
                os.remove(files["epoch"])
            warn(
                f"BackupAndRestore's first backup {files['weights']} does not open (the process was "
                "stopped while it wrote it), and there is none before it: removed it, and the fit "
                "begins at epoch 0."
            )
        if not os.path.exists(files["epoch"]) or _reads(files["epoch"]):
            continue
        if os.path.exists(files["epoch before"]) and _reads(files["epoch before"]):
            with open(files["epoch before"]) as source, open(files["epoch"], "w") as target:
                target.write(source.read())
            done = "put back the one before it"
        else:
            os.remove(files["epoch"])
            done = "removed it: the fit begins again at epoch 0"
        warn(
            f"BackupAndRestore's epoch file {files['epoch']} does not read (the process was stopped "
            f"while it wrote it); {done}. The weights and the optimizer are the last backup's."
        )


def _opens(path):
    import h5py  # Keras 3's weights files are HDF5, and Keras 3 needs h5py

    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False


def _reads(path):
    try:
        with open(path) as f:
            return isinstance(json.load(f).get("epoch"), int)
    except (OSError, ValueError, AttributeError):
        return False
