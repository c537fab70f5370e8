"""What several test files need: tiny models and data, losses known in advance, a trace
of the learning rate each step applied, and a preemption."""

import warnings

import numpy as np
import pytest

import keras_autowu
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, tf  # tf: None off TensorFlow



def needs_tensorflow(why):
    """Skips a test off Keras's TensorFlow backend (the JAX leg), saying `why`."""
    return pytest.mark.skipif(tf is None, reason=f"TensorFlow only: {why}")


def repeated_batches(x, y, batch_size):
    """(x, y) in batches of `batch_size`, in order, again and again: a dataset fit reads
    `steps_per_epoch` batches of, on every backend."""
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

# An AutoWU range wide enough that the loss surely turns up within a tiny run.
EXPLODING = dict(min_lr=1e-3, max_lr=1e3, test_interval=4)


def make_optimizer(name):
    """The optimizers the schedulers must drive, on the Keras under test."""
    if name == "sgd":
        return keras.optimizers.SGD(momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam()
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=1e-4)
    if name == "lamb":
        if IS_KERAS_3:
            return keras.optimizers.Lamb()
        tfa = pytest.importorskip("tensorflow_addons", reason="Keras 2 takes LAMB from tensorflow-addons")
        return tfa.optimizers.LAMB()
    raise ValueError(name)


def tiny_classifier(optimizer="sgd", steps_per_execution=1, jit_compile=False):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(
        optimizer=make_optimizer(optimizer) if isinstance(optimizer, str) else optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
        # On JAX jit_compile=False runs op by op: a test's fit would take a minute.
        jit_compile=jit_compile or tf is None,
    )
    return model


def classification_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return x, y


def label_mean(y_true, y_pred):
    """A loss whose value for a batch is the mean of its labels, whatever the weights
    and the learning rate: the test writes the losses."""
    if tf is None:
        return keras.ops.reshape(y_true, [-1]) + 0.0 * keras.ops.reshape(y_pred, [-1])
    return tf.reshape(y_true, [-1]) + 0.0 * tf.reshape(y_pred, [-1])


def learning_rate_trace(optimizer, total_steps):
    """A metric that writes the LR each step applied (metrics run after the update)."""
    if tf is None:
        return _jax_learning_rate_trace(optimizer, total_steps)
    trace = tf.Variable(tf.fill([total_steps], np.float32(np.nan)), trainable=False)

    class LearningRateTrace(keras.metrics.Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            step = tf.cast(optimizer.iterations, tf.int32) - 1
            lr = tf.cast(optimizer.learning_rate, tf.float32)
            trace.scatter_nd_update(tf.reshape(step, [1, 1]), tf.reshape(lr, [1]))

        def result(self):
            return tf.constant(0.0)

        def reset_state(self):
            pass

    return LearningRateTrace(name="lr_trace"), trace


def _jax_learning_rate_trace(optimizer, total_steps):
    """On JAX a metric sees only the metrics' variables, so the trace is a metric's
    variable that a wrapper of the model's train step writes: the learning rate in the
    step's optimizer state, at the optimizer's step. It takes effect once the model is
    given to `trace_learning_rates` (after compile)."""

    class LearningRateTrace(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="lr_trace")
            self.trace = self.add_variable((total_steps,), initializer=keras.initializers.Constant(np.nan), name="trace")

        def update_state(self, y_true, y_pred, sample_weight=None):
            pass

        def result(self):
            return 0.0

        def reset_state(self):
            pass

    metric = LearningRateTrace()
    _TRACED[id(optimizer)] = (optimizer, metric)
    return metric, metric.trace


_TRACED = {}


def trace_learning_rates(model):
    """On JAX, makes the model's train step write its trace (see `learning_rate_trace`)."""
    entry = _TRACED.get(id(model.optimizer))
    if tf is not None or entry is None:
        return
    optimizer, metric = entry
    original = model.train_step

    def train_step(state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        index = {id(v): i for i, v in enumerate(optimizer.variables)}
        step = optimizer_values[index[id(optimizer.iterations)]]
        learning_rate = optimizer_values[index[id(optimizer.learning_rate)]]
        at = next(i for i, v in enumerate(model.metrics_variables) if v is metric.trace)
        metrics_values = list(metrics_values)
        metrics_values[at] = metrics_values[at].at[step].set(learning_rate.astype(metrics_values[at].dtype))
        return original((trainable, non_trainable, optimizer_values, metrics_values), data)

    model.train_step = train_step


def fit_on_losses(step_losses, epochs, batch=8, **autowu_kwargs):
    """fit() whose step i has loss step_losses[i]; returns (autowu, LR trace, warnings)."""
    step_losses = np.asarray(step_losses, np.float32)
    steps_per_epoch = step_losses.size // epochs
    features = np.zeros((step_losses.size * batch, 4), "float32")
    batches = repeated_batches(features, np.repeat(step_losses, batch), batch)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss=label_mean)
    metric, trace = learning_rate_trace(model.optimizer, step_losses.size)
    model.compile(optimizer=model.optimizer, loss=label_mean, metrics=[metric])
    trace_learning_rates(model)
    autowu_kwargs.setdefault("verbose", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        autowu = keras_autowu.AutoWU(steps_per_epoch=steps_per_epoch, **autowu_kwargs)
        model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=[autowu], verbose=0, shuffle=False)
    return autowu, trace.numpy(), [str(w.message) for w in caught]


def feed(losses, steps_per_epoch, epochs, **kwargs):
    """An `AutoWUScheduler` (quiet by default) given `losses` at once; returns it and
    the requests."""
    kwargs.setdefault("verbose", 0)
    scheduler = keras_autowu.AutoWUScheduler(steps_per_epoch, epochs, **kwargs)
    return scheduler, scheduler.observe(losses)


def replica_values(variable):
    """A mirrored variable's value on each replica (Keras 3 wraps the tf.Variable)."""
    variable = variable if isinstance(variable, tf.Variable) or not hasattr(variable, "value") or callable(variable.value) else variable.value
    return [v.numpy() for v in getattr(variable, "values", (variable,))]


class Preempted(Exception):
    """What a preemption callback raises: the process would have died here."""


class PreemptAt(keras.callbacks.Callback):
    """Raises before the optimizer's step `step`, as a preemption would stop the run."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise Preempted(self.step)


class PreemptAtEpoch(keras.callbacks.Callback):
    """Raises at the start of epoch `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Preempted(epoch)


def slow_start(lr, rng):
    """Flat until lr 1e-3, down to 0.3 at lr 1e-2, then up again."""
    log_lr = np.log10(max(lr, 1e-9))
    fall = np.clip((log_lr + 3.0) / 1.0, 0.0, 1.0)
    rise = 3.0 * max(0.0, log_lr + 2.0) ** 2
    return 2.3 - 2.0 * fall + rise + 0.05 * rng.standard_normal()


def drive(scheduler, steps=1000, seed=0):
    """Runs `scheduler` on slow_start for `steps` steps; returns each step's learning rate."""
    rng = np.random.default_rng(seed)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.learning_rate)
        scheduler.step(slow_start(lrs[-1], rng))
    return lrs
