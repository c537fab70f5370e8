"""AutoWU for Keras: automatic learning-rate warmup and decay for large-batch training."""

from keras_autowu.callback import AutoWU
from keras_autowu.config import AutoWUConfig
from keras_autowu.plotting import plot_autowu
from keras_autowu.scheduler import AutoWUScheduler, GPTestRecord, Request, Rescue
from keras_autowu.weight_snapshot import WeightSnapshot

__version__ = "0.2.0"

__all__ = [
    "AutoWU",
    "AutoWUConfig",
    "AutoWUScheduler",
    "GPTestRecord",
    "Request",
    "Rescue",
    "WeightSnapshot",
    "plot_autowu",
    "__version__",
]
