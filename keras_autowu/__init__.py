"""Automatic learning-rate schedulers for Keras: AutoWU (warmup and decay), factor search and AutoLRS."""

from keras_autowu.autolrs.callback import AutoLRS
from keras_autowu.autolrs.config import AutoLRSConfig
from keras_autowu.autolrs.controller import AutoLRSScheduler
from keras_autowu.autowu.callback import AutoWU
from keras_autowu.autowu.config import AutoWUConfig
from keras_autowu.autowu.controller import AutoWUScheduler
from keras_autowu.autowu.guard import Rescue
from keras_autowu.autowu.warmup_test import GPTestRecord
from keras_autowu.core.requests import Request
from keras_autowu.core.snapshot import WeightSnapshot
from keras_autowu.core.stage_checkpoint import StageCheckpoint
from keras_autowu.factor_search.callback import FactorSearch
from keras_autowu.factor_search.controller import FactorSearchConfig, FactorSearchScheduler
from keras_autowu.factor_search.probe import FactorProbe
from keras_autowu.plotting import plot_autolrs, plot_autowu, plot_factor_search

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
