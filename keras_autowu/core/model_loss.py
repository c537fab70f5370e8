"""The model's compiled loss as a function of (y_true, y_pred) to per-row losses: what
factor search's probes and AutoLRS's validation score evaluate outside `fit`."""

from keras_autowu.core.keras_compat import keras


def per_row_loss_function(model, use="FactorSearch probes the compiled loss"):
    """The compiled loss as a function of (y_true, y_pred) to per-row losses, or a
    ValueError that starts with `use` (who needs it, and for what)."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, (list, tuple, dict)):  # also TF's tracking wrappers, shown plain
        loss = dict(loss) if isinstance(loss, dict) else list(loss)
    if isinstance(loss, dict) and len(loss) == 1:
        loss = next(iter(loss.values()))
    if isinstance(loss, list) and len(loss) == 1:
        loss = loss[0]
    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        # Its per-row losses: calling it reduces them and, under tf.distribute, divides
        # by the number of replicas (for the gradients' sum); the probe takes its own mean.
        return loss.call
    if not callable(loss):
        raise ValueError(
            f"{use}, so it needs one loss function for one "
            "output: model.compile(loss=...) with a string, function or keras.losses.Loss. "
            f"Received loss={loss!r}"
        )
    return loss
