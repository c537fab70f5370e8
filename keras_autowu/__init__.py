"""AutoWU for Keras: automatic learning-rate warmup and decay for large-batch training."""

from keras_autowu.callback import AutoWU
from keras_autowu.config import AutoWUConfig
from keras_autowu.plotting import plot_autowu
from keras_autowu.scheduler import AutoWUScheduler, GPTestRecord

__version__ = "0.1.0"

__all__ = ["AutoWU", "AutoWUConfig", "AutoWUScheduler", "GPTestRecord", "plot_autowu", "__version__"]
