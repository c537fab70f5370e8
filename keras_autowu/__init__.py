"""Automatic learning-rate schedulers for Keras: AutoWU (warmup and decay), factor search and AutoLRS."""

import importlib
from typing import TYPE_CHECKING

from keras_autowu.autolrs.config import AutoLRSConfig
from keras_autowu.autolrs.controller import AutoLRSScheduler
from keras_autowu.autowu.config import AutoWUConfig
from keras_autowu.autowu.controller import AutoWUScheduler
from keras_autowu.autowu.guard import Rescue
from keras_autowu.autowu.warmup_test import GPTestRecord
from keras_autowu.core.requests import Request
from keras_autowu.factor_search.controller import FactorSearchConfig, FactorSearchScheduler
from keras_autowu.plotting import plot_autolrs, plot_autowu, plot_factor_search

# The Keras glue, imported on first use: the controllers above need no Keras and no
# TensorFlow (off Keras's TensorFlow backend their GP runs on TFP's NumPy substrate).
_KERAS_GLUE = {
    "AutoLRS": "keras_autowu.autolrs.callback",
    "AutoWU": "keras_autowu.autowu.callback",
    "FactorProbe": "keras_autowu.factor_search.probe",
    "FactorSearch": "keras_autowu.factor_search.callback",
    "StageCheckpoint": "keras_autowu.core.stage_checkpoint",
    "WeightSnapshot": "keras_autowu.core.snapshot",
}


if TYPE_CHECKING:  # for type checkers and the API docs; at run time, __getattr__
    from keras_autowu.autolrs.callback import AutoLRS
    from keras_autowu.autowu.callback import AutoWU
    from keras_autowu.core.snapshot import WeightSnapshot
    from keras_autowu.core.stage_checkpoint import StageCheckpoint
    from keras_autowu.factor_search.callback import FactorSearch
    from keras_autowu.factor_search.probe import FactorProbe


def __getattr__(name):
    if name not in _KERAS_GLUE:
        raise AttributeError(f"module 'keras_autowu' has no attribute {name!r}")
    try:
        if name == "FactorProbe":  # graph code on TensorFlow, state code on JAX
            return importlib.import_module("keras_autowu.factor_search.callback").probe_class()
        module = importlib.import_module(_KERAS_GLUE[name])
    except ImportError as error:
        if (error.name or "").split(".")[0] != "tensorflow":
            raise
        raise ImportError(
            f"keras_autowu.{name} runs on Keras's TensorFlow backend, and TensorFlow is not "
            "installed. On JAX, keras_autowu.AutoWU runs in model.fit; for the others, and on "
            "PyTorch, use the controllers (AutoWUScheduler, FactorSearchScheduler, "
            "AutoLRSScheduler) in a custom training loop."
        ) from error
    return getattr(module, name)


def __dir__():
    return sorted(list(globals()) + list(_KERAS_GLUE))


__version__ = "0.2.0"

__all__ = [
    "AutoLRS",
    "AutoLRSConfig",
    "AutoLRSScheduler",
    "AutoWU",
    "AutoWUConfig",
    "AutoWUScheduler",
    "FactorProbe",
    "FactorSearch",
    "FactorSearchConfig",
    "FactorSearchScheduler",
    "GPTestRecord",
    "Request",
    "Rescue",
    "StageCheckpoint",
    "WeightSnapshot",
    "plot_autolrs",
    "plot_autowu",
    "plot_factor_search",
    "__version__",
]
