"""Automatic learning-rate schedulers for Keras: AutoWU (warmup and decay), factor search and AutoLRS."""

from keras_autowu.autolrs import AutoLRSConfig, AutoLRSScheduler
from keras_autowu.autolrs_callback import AutoLRS
from keras_autowu.callback import AutoWU
from keras_autowu.config import AutoWUConfig
from keras_autowu.factor_probe import FactorProbe
from keras_autowu.factor_search import FactorSearchConfig, FactorSearchScheduler
from keras_autowu.factor_search_callback import FactorSearch
from keras_autowu.plotting import plot_autolrs, plot_autowu, plot_factor_search
from keras_autowu.scheduler import AutoWUScheduler, GPTestRecord, Request, Rescue
from keras_autowu.stage_checkpoint import StageCheckpoint
from keras_autowu.weight_snapshot import WeightSnapshot

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
