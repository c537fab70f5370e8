"""Keras 3's BackupAndRestore, made safe against a kill in the middle of its write.

It writes each backup over the last. A process killed during that write (a preempted
machine's SIGKILL) leaves half a weights file, which the restarted `fit` cannot open
(`OSError: ... truncated file`), and the run is lost. With `double_checkpoint=True` it
copies the last backup aside first and falls back to it when the new one cannot be
read (keras/src/callbacks/backup_and_restore.py). tf_keras's backup is a TensorFlow
checkpoint that its manager records only once written, so a cut one is ignored there,
and its BackupAndRestore has no such option.
"""

from keras_autowu.core.keras_compat import keras


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
