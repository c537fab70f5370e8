"""AutoWU driven through model.fit on tiny models, on the Keras under test."""

import os

import numpy as np
import pytest

import keras_autowu
from helpers import EXPLODING, needs_tensorflow, classification_data, label_mean, learning_rate_trace, tiny_classifier, trace_learning_rates
from keras_autowu.gp import minimum_test
from keras_autowu.core.keras_compat import keras, tf


def fit_with_trace(optimizer="sgd", steps_per_execution=1, jit_compile=False, epochs=20, **autowu_kwargs):
    x, y = classification_data(256)
    model = tiny_classifier(optimizer, steps_per_execution, jit_compile)
    steps = epochs * 8
    metric, trace = learning_rate_trace(model.optimizer, steps)
    model.compile(
        optimizer=model.optimizer, loss=model.loss, metrics=[metric],
        steps_per_execution=steps_per_execution, jit_compile=jit_compile or tf is None,
    )
    trace_learning_rates(model)
    autowu_kwargs.setdefault("verbose", 0)
    autowu = keras_autowu.AutoWU(**autowu_kwargs)
    history = model.fit(x, y, batch_size=32, epochs=epochs, callbacks=[autowu], verbose=0, shuffle=False)
    return autowu, trace.numpy(), history, model




@pytest.mark.parametrize("steps_per_execution,jit_compile", [(1, False), (4, False), (4, True)])
def test_learning_rate_is_exact_at_every_step(steps_per_execution, jit_compile):
    """The LR each update applied equals the closed form, also inside multi-step chunks."""
    autowu, trace, _, _ = fit_with_trace(steps_per_execution=steps_per_execution, jit_compile=jit_compile, **EXPLODING)
    scheduler = autowu.scheduler
    assert scheduler.switch is not None, "this run is meant to switch"
    np.testing.assert_allclose(trace, scheduler.learning_rates(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "lamb"])
def test_drives_every_optimizer(optimizer):
    """SGD with momentum, Adam, AdamW and LAMB all train with AutoWU's LR at every step."""
    autowu, trace, history, _ = fit_with_trace(optimizer, epochs=10)
    np.testing.assert_allclose(trace, autowu.scheduler.learning_rates(), rtol=1e-6, atol=1e-9)
    assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize(
    "optimizer, momentum",
    [
        ("sgd", 0.9),
        (lambda: keras.optimizers.SGD(), 0.0),
        (lambda: keras.optimizers.RMSprop(momentum=0.5), 0.5),
        (lambda: keras.mixed_precision.LossScaleOptimizer(keras.optimizers.SGD(momentum=0.8)), 0.8),
        ("adam", 0.0),
        ("lamb", 0.0),
    ],
)
def test_the_scheduler_knows_whether_the_velocity_holds_the_learning_rate(optimizer, momentum):
    """lr_choice="momentum_corrected" needs the momentum of a velocity that accumulates
    lr * g (SGD, RMSprop), and 0 where the LR multiplies an averaged update (Adam, LAMB)."""
    model = tiny_classifier(optimizer if isinstance(optimizer, str) else optimizer())
    autowu = keras_autowu.AutoWU(steps_per_epoch=4, total_epochs=10, verbose=0)
    autowu.build(model)
    assert autowu.scheduler.velocity_momentum == pytest.approx(momentum)


def test_records_the_true_loss_of_each_step():
    """The GP sees each step's own loss, not Keras's running mean."""
    x = np.zeros((64, 8), "float32")
    y = np.arange(64, dtype="float32") ** 2  # batch means far apart, as a loss that falls fast
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])

    model.compile(optimizer=keras.optimizers.SGD(), loss=label_mean, steps_per_execution=2)
    autowu = keras_autowu.AutoWU(verbose=0)
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[autowu], verbose=0, shuffle=False)
    expected = np.tile(y.reshape(8, 8).mean(axis=1, dtype=np.float32), 3)
    np.testing.assert_array_equal(np.float32(autowu.scheduler.losses), expected)


def test_validation_is_not_recorded_and_lr_is_logged():
    """Validation losses stay out of the record; History gets the LR of each epoch's last step."""
    x, y = classification_data(320)
    model = tiny_classifier()
    autowu = keras_autowu.AutoWU(verbose=0)
    history = model.fit(x, y, batch_size=32, epochs=4, validation_split=0.2, callbacks=[autowu], verbose=0)
    assert len(autowu.scheduler.losses) == 4 * 8
    lrs = autowu.scheduler.learning_rates()
    np.testing.assert_allclose(history.history["learning_rate"], lrs[7::8], rtol=1e-6)


def test_optimizer_with_its_own_schedule_is_refused():
    """An optimizer built with a LearningRateSchedule gets a clear error at fit()."""
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 100, 0.9)
    model = tiny_classifier(keras.optimizers.SGD(learning_rate=schedule))
    x, y = classification_data(64)
    with pytest.raises(ValueError, match="AutoWU sets the learning rate itself.*float learning rate"):
        model.fit(x, y, epochs=1, callbacks=[keras_autowu.AutoWU()], verbose=0)


def _unknown_length_dataset():
    x, y = classification_data(64)
    return tf.data.Dataset.from_generator(
        lambda: iter(zip(x, y)),
        output_signature=(tf.TensorSpec([8], tf.float32), tf.TensorSpec([], tf.int32)),
    ).batch(16)


@needs_tensorflow("a tf.data dataset of unknown length")
def test_unknown_length_needs_steps_per_epoch():
    """Without a known length the error names steps_per_epoch; given it, training works."""
    model = tiny_classifier()
    with pytest.raises(ValueError, match=r"Pass AutoWU\(steps_per_epoch=...\)"):
        model.fit(_unknown_length_dataset(), epochs=2, callbacks=[keras_autowu.AutoWU()], verbose=0)
    autowu = keras_autowu.AutoWU(steps_per_epoch=4, verbose=0)
    model.fit(_unknown_length_dataset(), epochs=2, callbacks=[autowu], verbose=0)
    assert autowu.scheduler.total_steps == 8 and len(autowu.scheduler.losses) == 8


def test_one_callback_serves_several_fits_and_leaves_the_model_clean():
    """Each fit() starts a new AutoWU run; afterwards the model trains with its own LR again."""
    x, y = classification_data(128)
    model = tiny_classifier()
    autowu = keras_autowu.AutoWU(verbose=0)
    model.fit(x, y, batch_size=32, epochs=3, callbacks=[autowu], verbose=0)
    first = autowu.scheduler
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[autowu], verbose=0)
    assert autowu.scheduler is not first and len(autowu.scheduler.losses) == 2 * 4
    assert autowu.scheduler.learning_rates()[0] == pytest.approx(1e-5)
    assert "compute_loss" not in vars(model) and "train_step" not in vars(model)
    model.optimizer.learning_rate = 0.125
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert float(model.optimizer.learning_rate) == 0.125


@needs_tensorflow("the GP test's tf.function")
def test_gp_test_compiles_at_most_once_per_run():
    """The compiled GP test is traced at most once in a run with many tests."""
    before = minimum_test.compiled_gp_minimum_test.experimental_get_tracing_count()
    # A patience longer than the warmup keeps the run testing to the cap: the first
    # few steps' losses, which cycle with the unshuffled batches, can look like a
    # passed minimum to three early tests for some initial weights.
    autowu, _, _, _ = fit_with_trace(epochs=10, test_interval=2, max_lr=1e-2, patience=20)
    assert len(autowu.scheduler.tests) >= 10
    assert minimum_test.compiled_gp_minimum_test.experimental_get_tracing_count() - before <= 1


def test_plot_is_written(tmp_path):
    """plot_autowu draws the run and saves a PNG."""
    autowu, _, _, _ = fit_with_trace(**EXPLODING)
    path = tmp_path / "autowu.png"
    keras_autowu.plot_autowu(autowu.scheduler, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_draws_a_baseline_run_beside_autowus():
    """With baseline=, the plot adds its constant learning rate, and its epochs' mean
    losses beside AutoWU's, one point per epoch both run."""
    autowu, _, _, _ = fit_with_trace(epochs=5)
    scheduler = autowu.scheduler
    fig = keras_autowu.plot_autowu(scheduler, os.devnull, baseline=("constant 0.01", 0.01, [2.0, 1.5, 1.2]))
    ax_lr, ax_loss = fig.axes
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    epoch_ends = scheduler.steps_per_epoch * np.arange(1, 4)
    np.testing.assert_array_equal(lines["constant 0.01, epoch mean"].get_xdata(), epoch_ends)
    np.testing.assert_array_equal(lines["constant 0.01, epoch mean"].get_ydata(), [2.0, 1.5, 1.2])
    first_epoch = np.asarray(scheduler.losses)[: scheduler.steps_per_epoch].mean()
    assert lines["AutoWU, epoch mean"].get_ydata()[0] == pytest.approx(first_epoch)
    assert any(list(line.get_ydata()) == [0.01, 0.01] for line in ax_lr.get_lines())


@needs_tensorflow("a TensorFlow train_step (test_jax_train_step_without_the_loss_tracker_is_an_error is JAX's)")
def test_train_step_without_compute_loss_is_an_error():
    """A custom train_step that bypasses compute_loss fails loudly instead of training without AutoWU."""

    class OwnLoss(keras.Model):
        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self(x, training=True)[:, 0] - tf.cast(y, tf.float32)))
            grads = tape.gradient(loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return {"loss": loss}

    inputs = keras.Input((8,))
    model = OwnLoss(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    x, y = classification_data(64)
    with pytest.raises(RuntimeError, match="AutoWU saw no loss"):
        model.fit(x, y, batch_size=16, epochs=2, callbacks=[keras_autowu.AutoWU(verbose=0)], verbose=0)


@pytest.mark.skipif(tf is not None, reason="JAX's train_step (the TensorFlow one: test_train_step_without_compute_loss_is_an_error)")
def test_jax_train_step_without_the_loss_tracker_is_an_error():
    """On JAX AutoWU reads each step's loss off Keras's loss tracker: a custom train_step
    that leaves it alone fails loudly, saying so, instead of training without AutoWU."""
    import jax
    import jax.numpy as jnp

    class OwnLoss(keras.Model):
        def train_step(self, state, data):
            trainable, non_trainable, optimizer_values, metrics_values = state
            x, y = data

            def loss(weights):
                y_pred, updated = self.stateless_call(weights, non_trainable, x, training=True)
                return jnp.mean((y_pred[:, 0] - y) ** 2), updated

            (value, non_trainable), grads = jax.value_and_grad(loss, has_aux=True)(trainable)
            trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, grads, trainable)
            return {"loss": value}, (trainable, non_trainable, optimizer_values, metrics_values)

    inputs = keras.Input((8,))
    model = OwnLoss(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    x, y = classification_data(64)
    with pytest.raises(RuntimeError, match="AutoWU saw no loss.*Keras's loss tracker"):
        model.fit(x, y.astype("float32"), batch_size=16, epochs=2, callbacks=[keras_autowu.AutoWU(verbose=0)], verbose=0)
