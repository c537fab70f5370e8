"""Where a warning should point: at the user's line, not at this package's."""

import sys

_LIBRARIES = ("keras_autowu", "keras", "tf_keras", "tensorflow")


def user_stacklevel():
    """The `stacklevel` for `warnings.warn` called by our caller that names the first
    frame outside keras_autowu, Keras and TensorFlow: the user's `fit` call, or the
    line of a custom loop that called the scheduler."""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        if not frame.f_globals.get("__name__", "").startswith(_LIBRARIES):
            return level
        frame, level = frame.f_back, level + 1
    return 1
