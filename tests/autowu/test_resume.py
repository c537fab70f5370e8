"""A run interrupted at any step resumes with the AutoWU state of its last backup."""

import json
import warnings

import numpy as np
import pytest

import keras_autowu
from helpers import EXPLODING, needs_tensorflow, Preempted, PreemptAt, classification_data, learning_rate_trace, tiny_classifier, trace_learning_rates
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, tf

# This run's warmup ends as a divergence at step 36. The roll-back's snapshot lives in
# memory and does not survive a restart, so it is off here: with it on, a run resumed
# between the snapshot and the divergence rolls back to another step.
RUN = dict(EXPLODING, rollback_on_divergence=False)
STEPS_PER_EPOCH, EPOCHS = 8, 12
TOTAL_STEPS = STEPS_PER_EPOCH * EPOCHS


def train(callbacks=(), autowu_first=True, initial_epoch=0, model=None, autowu=None):
    """The same model and data every time; returns (autowu, model, the LR trace)."""
    if model is None:
        keras.utils.set_random_seed(0)
        model = tiny_classifier("sgd")
    metric, trace = learning_rate_trace(model.optimizer, TOTAL_STEPS + STEPS_PER_EPOCH)
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=[metric])
    trace_learning_rates(model)
    autowu = autowu or keras_autowu.AutoWU(**RUN, verbose=0)
    callbacks = [autowu, *callbacks] if autowu_first else [*callbacks, autowu]
    x, y = classification_data(STEPS_PER_EPOCH * 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            x, y, batch_size=32, epochs=EPOCHS, initial_epoch=initial_epoch,
            callbacks=callbacks, verbose=0, shuffle=False,
        )
    skipped = [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert not skipped, "Keras skipped the optimizer's restore"
    return autowu, model, trace.numpy()


@pytest.fixture(scope="module")
def uninterrupted():
    autowu, model, trace = train()
    assert autowu.scheduler.switch is not None, "the run is meant to switch"
    return autowu.scheduler, [w.numpy() for w in model.weights], trace


def interrupt_points(switch_step):
    """Mid-warmup, the steps right before and after the switch, and in the cooldown."""
    return {
        "mid-warmup": switch_step // 2,
        "before-switch": switch_step - 1,
        "after-switch": switch_step + 1,
        "cooldown": TOTAL_STEPS - 3,
    }


def assert_same_run(resumed, reference, from_step):
    scheduler, ref = resumed[0].scheduler, reference[0]
    np.testing.assert_allclose(scheduler.losses, ref.losses, rtol=1e-5)
    assert [(t.step, t.positive) for t in scheduler.tests] == [(t.step, t.positive) for t in ref.tests]
    assert scheduler.switch.step == ref.switch.step
    assert scheduler.switch.lr_at_minimum == pytest.approx(ref.switch.lr_at_minimum, rel=1e-6)
    np.testing.assert_allclose(scheduler.learning_rates(), ref.learning_rates(), rtol=1e-6)
    # The LR each step applied after the restart is the uninterrupted run's.
    np.testing.assert_allclose(resumed[2][from_step:TOTAL_STEPS], reference[2][from_step:TOTAL_STEPS], rtol=1e-6)
    for weight, expected in zip(resumed[1].weights, reference[1]):
        np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("point", ["mid-warmup", "before-switch", "after-switch", "cooldown"])
@pytest.mark.parametrize("autowu_first", [True, False])
def test_backup_and_restore_at_epoch_ends(tmp_path, uninterrupted, point, autowu_first):
    """Killed at any step, a BackupAndRestore run resumes into the uninterrupted run."""
    step = interrupt_points(uninterrupted[0].switch.step)[point]
    backup = lambda: keras.callbacks.BackupAndRestore(str(tmp_path))  # noqa: E731
    with pytest.raises(Preempted):
        train([backup(), PreemptAt(step)], autowu_first)
    resumed = train([backup()], autowu_first)
    assert_same_run(resumed, uninterrupted, from_step=step // STEPS_PER_EPOCH * STEPS_PER_EPOCH)


@pytest.mark.parametrize("point", ["before-switch", "cooldown"])
def test_backup_and_restore_mid_epoch(tmp_path, uninterrupted, point):
    """With step-wise backups the resumed LR follows the resumed run's own losses exactly.

    Keras (3 and tf_keras) replays a partly done epoch from its first batch while the
    optimizer's step goes on, so the losses differ from the uninterrupted run's.
    """
    step = interrupt_points(uninterrupted[0].switch.step)[point]
    backup = lambda: keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=3)  # noqa: E731
    with pytest.raises(Preempted):
        train([backup(), PreemptAt(step)])
    autowu, model, trace = train([backup()])
    scheduler = autowu.scheduler
    # The scheduler fed the resumed run's losses from scratch gives every step's LR.
    replayed = keras_autowu.AutoWUScheduler(
        STEPS_PER_EPOCH, EPOCHS, velocity_momentum=scheduler.velocity_momentum, **EXPLODING, verbose=0
    )
    replayed.observe(scheduler.losses)
    assert scheduler.switch.step == replayed.switch.step
    restart = step // 3 * 3
    applied = trace[restart:TOTAL_STEPS]
    np.testing.assert_allclose(applied, replayed.learning_rates()[restart:TOTAL_STEPS], rtol=1e-6)
    # Up to the backup, the losses are the uninterrupted run's.
    np.testing.assert_allclose(scheduler.losses[:restart], uninterrupted[0].losses[:restart], rtol=1e-5)


def test_checkpoint_and_initial_epoch(tmp_path, uninterrupted):
    """A weights checkpoint of each epoch, then fit(initial_epoch=...), resumes the run."""
    step = interrupt_points(uninterrupted[0].switch.step)["after-switch"]
    path = str(tmp_path / ("ckpt.weights.h5" if IS_KERAS_3 else "ckpt"))
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_weights_only=True)
    with pytest.raises(Preempted):
        train([checkpoint, PreemptAt(step)])
    keras.utils.set_random_seed(0)
    model = tiny_classifier("sgd")
    autowu = keras_autowu.AutoWU(STEPS_PER_EPOCH, EPOCHS, **RUN, verbose=0)
    autowu.build(model)  # AutoWU's variables exist before the load
    model.load_weights(path)
    resumed = train(initial_epoch=step // STEPS_PER_EPOCH, model=model, autowu=autowu)
    assert_same_run(resumed, uninterrupted, from_step=step // STEPS_PER_EPOCH * STEPS_PER_EPOCH)


def test_scheduler_state_round_trip():
    """get_state/set_state: a restored scheduler continues exactly as the original."""
    rng = np.random.default_rng(0)

    def loss(lr):
        return 0.3 * (np.log10(max(lr, 1e-9)) + 2) ** 2 + 0.05 * rng.standard_normal()

    original = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    losses = []
    for _ in range(1000):
        losses.append(loss(original.learning_rate))
        original.step(losses[-1])
    restored = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    restored.set_state(json.loads(json.dumps(original.get_state())))  # plain values, as documented
    assert restored.steps_done == original.steps_done == 1000
    assert [t.step for t in restored.tests] == [t.step for t in original.tests]
    assert restored.switch.step == original.switch.step
    assert restored.learning_rate == original.learning_rate
    for _ in range(50):
        value = loss(original.learning_rate)
        assert restored.step(value) == original.step(value)
    with pytest.raises(ValueError, match="steps_per_epoch, total_epochs"):
        keras_autowu.AutoWUScheduler(50, 30).set_state(original.get_state())


@needs_tensorflow("tf.train.Checkpoint")
def test_tf_train_checkpoint_carries_the_losses(tmp_path):
    """tf.train.Checkpoint of the optimizer holds AutoWU's losses: the one per-step buffer."""
    autowu, model, _ = train()
    path = tf.train.Checkpoint(optimizer=model.optimizer).save(str(tmp_path / "ckpt"))
    # Keras 3 names them by their place in the optimizer's variables, tf_keras by
    # attribute; the buffer has a slot for the steps past the end.
    saved = [tf.train.load_variable(path, name) for name, shape in tf.train.list_variables(path)
             if shape == [TOTAL_STEPS + 1]]
    assert len(saved) == 1, "the learning-rate table follows from the losses: it is not saved"
    np.testing.assert_allclose(saved[0][:TOTAL_STEPS], autowu.scheduler.losses, rtol=1e-6)


@needs_tensorflow("tf.train.Checkpoint")
def test_a_checkpoint_costs_4_bytes_per_step(tmp_path):
    """A million-step run's checkpoint: its losses (4 MB), not its learning-rate table too."""
    keras.utils.set_random_seed(0)
    model = tiny_classifier("sgd")
    steps_per_epoch, epochs = 10_000, 100
    keras_autowu.AutoWU(steps_per_epoch, epochs, verbose=0).build(model)
    bare = tiny_classifier("sgd")
    bare.optimizer.build(bare.trainable_variables)
    sizes = []
    for name, m in (("autowu", model), ("bare", bare)):
        path = tmp_path / name
        tf.train.Checkpoint(optimizer=m.optimizer).write(str(path))
        sizes.append(sum(f.stat().st_size for f in tmp_path.glob(name + "*")))
    per_step = (sizes[0] - sizes[1]) / (steps_per_epoch * epochs)
    assert 3.9 < per_step < 4.1  # the losses alone, as float32


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras loads checkpoints by name and ignores the extra table")
@needs_tensorflow("a checkpoint saved on TensorFlow, whose optimizer has no learning-rate table among its variables")
def test_a_version_0_1_checkpoint_still_resumes(tmp_path):
    """0.1.0 saved a learning-rate table after the run's variables; its losses still load."""
    keras.utils.set_random_seed(0)
    old = tiny_classifier("sgd")
    autowu = keras_autowu.AutoWU(STEPS_PER_EPOCH, EPOCHS, verbose=0)
    autowu.build(old)
    losses = np.arange(TOTAL_STEPS + 1, dtype="float32")
    autowu._variables.losses.assign(losses)
    autowu._variables.step_offset.assign(7)
    old.optimizer.add_variable((TOTAL_STEPS + 1,), name="autowu_learning_rates")  # 0.1.0's layout
    path = str(tmp_path / "old.weights.h5")
    old.save_weights(path)

    new = tiny_classifier("sgd")
    resumed = keras_autowu.AutoWU(STEPS_PER_EPOCH, EPOCHS, verbose=0)
    resumed.build(new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it skips the optimizer
        new.load_weights(path)
    np.testing.assert_array_equal(resumed._variables.losses.numpy(), losses)
    assert int(resumed._variables.step_offset.numpy()) == 7
    for saved, loaded in zip(old.optimizer.variables, new.optimizer.variables):
        if "autowu" not in saved.name:
            np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
