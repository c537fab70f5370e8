"""AutoLRS in `model.fit`: the plan's learning rate at every step, bit-exact restores,
tf.distribute, resume, and the checkpoint itself; on TensorFlow and on JAX."""

import numpy as np
import pytest

import keras_autowu
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, optimizer_variables, tf
from keras_autowu.autolrs.plan import StagePlan

from helpers import Preempted, PreemptAtEpoch, needs_tensorflow, replica_values, tiny_classifier

STEPS_PER_EPOCH = 16
PLAN = dict(tau=40, tau_ratio=10, explored=3)  # explore 4 steps each, train 40


def linear_model(steps_per_execution=1, optimizer=None):
    """loss = w (x = 1, one weight): plain SGD moves w by exactly -lr each step, so the
    recorded losses give every step's learning rate."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(100.0))])
    model.compile(
        optimizer=optimizer or keras.optimizers.SGD(0.01),
        loss=lambda y_true, y_pred: keras.ops.mean(y_pred, axis=-1) if IS_KERAS_3 else tf.reduce_mean(y_pred, axis=-1),
        steps_per_execution=steps_per_execution,
    )
    return model


def ones(steps=STEPS_PER_EPOCH, batch=4):
    return np.ones((steps * batch, 1), "float32"), np.zeros((steps * batch, 1), "float32")


@pytest.mark.parametrize("steps_per_execution", [1, 8])
def test_every_step_runs_at_the_plan_s_learning_rate_from_the_checkpoint(steps_per_execution):
    """loss_t - loss_t+1 is step t's learning rate, except across a restore, where
    the next loss is the stage start's again (bit-exact): the reference's first step
    after a restore, at the restored optimizer's learning rate, would show."""
    model = linear_model(steps_per_execution)
    x, y = ones()
    autolrs = keras_autowu.AutoLRS(min_lr=1e-3, max_lr=1.0, verbose=0, **PLAN)
    model.fit(x, y, batch_size=4, epochs=12, shuffle=False, callbacks=[autolrs], verbose=0)
    scheduler = autolrs.scheduler
    losses = np.asarray(scheduler.losses)
    assert losses.size == 12 * STEPS_PER_EPOCH
    rates = np.concatenate([np.full(s.stop - s.start, s.learning_rate) for s in scheduler.segments])
    plan = StagePlan(steps_per_execution=steps_per_execution, **PLAN)
    restarts = set()
    for record in scheduler.stages:
        stage = plan.stage(record.index)
        assert record.start == stage.start
        restarts |= {stage.start + i * stage.explore_steps for i in range(stage.explored + 1)}
        for segment in range(stage.explored + 1):
            start = stage.start + segment * stage.explore_steps
            assert losses[start] == losses[stage.start]  # every segment from the checkpoint
    for step in range(losses.size - 1):
        if step + 1 not in restarts:
            np.testing.assert_allclose(losses[step] - losses[step + 1], rates[step], rtol=1e-3, atol=1e-4)


def test_a_restore_is_bit_exact_for_weights_slots_and_the_step_counter():
    model = tiny_classifier("adam")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = np.arange(64) % 3
    model.fit(x, y, epochs=1, verbose=0)
    checkpoint = keras_autowu.StageCheckpoint(model)
    checkpoint.save()
    variables = list(model.weights) + [v for v in optimizer_variables(model.optimizer) if v is not model.optimizer.learning_rate]
    before = [np.array(v.numpy()) for v in variables]
    model.fit(x, y, epochs=2, verbose=0)
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))
    checkpoint.restore()
    for saved, variable in zip(before, variables):
        np.testing.assert_array_equal(saved, variable.numpy())
    assert int(model.optimizer.iterations.numpy()) == 2  # 64 rows, batch 32, one epoch


def test_sgd_s_velocity_is_rescaled_to_the_learning_rate_it_resumes_with():
    model = tiny_classifier("sgd")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    model.fit(x, np.arange(64) % 3, epochs=1, verbose=0)
    checkpoint = keras_autowu.StageCheckpoint(model)
    checkpoint.save()
    velocities = [v for v in model.optimizer.momentums if v is not None] if hasattr(model.optimizer, "momentums") else []
    if not velocities:
        pytest.skip("this Keras's SGD keeps its velocity elsewhere")
    saved = [np.array(v.numpy()) for v in velocities]
    checkpoint.restore(velocity_scale=0.25)
    for value, velocity in zip(saved, velocities):
        np.testing.assert_allclose(velocity.numpy(), 0.25 * value, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lamb"])
def test_a_classifier_trains_with_any_optimizer_and_logs_the_learning_rate(optimizer):
    model = tiny_classifier(optimizer)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    autolrs = keras_autowu.AutoLRS(min_lr=1e-4, max_lr=1.0, verbose=0, **PLAN)
    history = model.fit(x, y, batch_size=32, epochs=12, callbacks=[autolrs], verbose=0)
    assert len(autolrs.scheduler.stages) >= 2
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    logged = history.history["learning_rate"]
    assert logged[-1] == pytest.approx(autolrs.scheduler.segments[-1].learning_rate, rel=1e-6)


def test_validation_data_scores_the_late_stages(tmp_path):
    model = tiny_classifier("sgd")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    autolrs = keras_autowu.AutoLRS(min_lr=1e-3, max_lr=1.0, verbose=0, tau=40, explored=3, tau_max=80,
                                   validation_data=(x[:64], y[:64]))
    model.fit(x, y, batch_size=16, epochs=30, callbacks=[autolrs], verbose=0)
    late = [s for s in autolrs.scheduler.stages if s.on_validation]
    assert late and all(np.isfinite(s.forecasts).all() for s in late)
    keras_autowu.plot_autolrs(autolrs.scheduler, tmp_path / "autolrs.png")
    assert (tmp_path / "autolrs.png").stat().st_size > 10_000


@needs_tensorflow("tf.distribute")
@pytest.mark.parametrize("validation", [False, True], ids=["training_loss", "validation_data"])
def test_two_replicas_agree_and_the_run_is_the_one_device_run(validation, mirrored_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(576, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    # With validation data the second stage (after tau' = 4 = tau_max / 10) scores on it.
    extra = dict(validation_data=(x[512:], y[512:]), tau_max=40) if validation else {}
    runs = []
    for strategy in (None, mirrored_strategy):
        keras.utils.set_random_seed(0)
        if strategy is None:
            model = tiny_classifier("sgd")
        else:
            with strategy.scope():
                model = tiny_classifier("sgd")
        autolrs = keras_autowu.AutoLRS(min_lr=1e-3, max_lr=1.0, verbose=0, **PLAN, **extra)
        model.fit(x[:512], y[:512], batch_size=32, epochs=8, shuffle=False, callbacks=[autolrs], verbose=0)
        runs.append((autolrs.scheduler, model))
    (one, _), (two, model) = runs
    assert [s.on_validation for s in two.stages] == ([False, True] if validation else [False])
    np.testing.assert_allclose(two.losses, one.losses, rtol=1e-4)
    assert [s.learning_rates for s in two.stages] == [s.learning_rates for s in one.stages]
    for a, b in zip(two.stages, one.stages):
        np.testing.assert_allclose(a.forecasts, b.forecasts, rtol=1e-3)
    for weight in model.weights:
        values = replica_values(weight)
        for value in values[1:]:
            np.testing.assert_array_equal(values[0], value)


def test_a_run_resumed_mid_stage_starts_that_stage_again_from_its_restored_weights(tmp_path):
    """Stage 1 explores steps 52..75 (PLAN, 16 steps an epoch): a restart at epoch 4
    (step 64) starts stage 1 again there, from the weights BackupAndRestore saved."""
    x, y = ones()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model = linear_model()
        autolrs = keras_autowu.AutoLRS(min_lr=1e-3, max_lr=1.0, verbose=0, **PLAN)
        model.fit(x, y, batch_size=4, epochs=12, shuffle=False, callbacks=[backup, autolrs] + callbacks, verbose=0)
        return autolrs, model

    with pytest.raises(Preempted):
        fit([PreemptAtEpoch(4)])
    resumed, model = fit([])
    scheduler = resumed.scheduler
    assert scheduler.first_step == 64
    assert scheduler.stages[0].start == 64 and scheduler.stages[0].index == 1
    first = scheduler.segments[0]
    assert (first.kind, first.start) == ("explore", 64)
    assert len(scheduler.losses) == 12 * STEPS_PER_EPOCH - 64
    assert np.isfinite(model.weights[0].numpy()).all()


def test_a_run_too_short_for_one_stage_is_refused_with_the_largest_tau_that_fits():
    model = linear_model()
    x, y = ones()
    with pytest.raises(ValueError, match=r"AutoLRS expects a run long enough for one stage.*Received tau=1000"):
        model.fit(x, y, batch_size=4, epochs=2, callbacks=[keras_autowu.AutoLRS(tau=1000, verbose=0)], verbose=0)


def test_another_scheduler_in_the_same_fit_is_refused():
    model = linear_model()
    x, y = ones()
    with pytest.raises(ValueError, match="AutoLRS sets the learning rate, and so does ReduceLROnPlateau"):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                  callbacks=[keras_autowu.AutoLRS(verbose=0), keras.callbacks.ReduceLROnPlateau()])


@needs_tensorflow("a tf.data dataset of unknown length")
def test_a_dataset_of_unknown_length_needs_the_run_s_length():
    x, y = ones()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).filter(lambda a, b: True)
    model = linear_model()
    with pytest.raises(ValueError, match=r"AutoLRS needs the run's length.*Received steps_per_epoch=None"):
        model.fit(dataset, epochs=2, callbacks=[keras_autowu.AutoLRS(verbose=0)], verbose=0)
