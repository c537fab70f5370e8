"""AutoWU among the other callbacks, fits and models a Keras user brings."""

import csv
import json
import warnings

import numpy as np
import pytest

import keras_autowu
from helpers import classification_data, needs_tensorflow, tiny_classifier
from keras_autowu.core.keras_compat import IS_KERAS_3, keras, tf

X, Y = classification_data(256)


def fit(model, callbacks, epochs=4, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, Y, batch_size=32, epochs=epochs, callbacks=callbacks, verbose=0, **kwargs)
    return history, [str(w.message) for w in caught if "AutoWU" in str(w.message)]


@pytest.mark.parametrize("other", [
    lambda: keras.callbacks.ReduceLROnPlateau(monitor="loss"),
    lambda: keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
])
@pytest.mark.parametrize("autowu_first", [True, False])
def test_another_learning_rate_callback_is_an_error(other, autowu_first):
    """It would print that it changed the learning rate while AutoWU overwrote it."""
    other = other()
    callbacks = [keras_autowu.AutoWU(verbose=0), other]
    with pytest.raises(ValueError, match=f"{type(other).__name__} in the same fit would change nothing"):
        fit(tiny_classifier(), callbacks if autowu_first else callbacks[::-1])


@pytest.mark.parametrize("autowu_first", [True, False])
def test_csv_logger_gets_the_learning_rate_in_any_order(tmp_path, autowu_first):
    path = tmp_path / "log.csv"
    callbacks = [keras_autowu.AutoWU(verbose=0), keras.callbacks.CSVLogger(str(path))]
    fit(tiny_classifier(), callbacks if autowu_first else callbacks[::-1])
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 4 and all(float(row["learning_rate"]) > 0 for row in rows[:-1])  # the last: 0


def test_early_stopping_on_a_validation_metric_in_the_warmup_warns():
    """The rising warmup LR raises the validation loss: say which start_from_epoch to use."""
    autowu = keras_autowu.AutoWU(verbose=0)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=100)
    _, said = fit(tiny_classifier(), [stop, autowu], epochs=10, validation_split=0.25)
    assert any("EarlyStopping(monitor='val_loss') watches from epoch 0" in m and "start_from_epoch=5" in m for m in said)
    quiet = keras.callbacks.EarlyStopping(monitor="val_loss", patience=100, start_from_epoch=5)
    _, said = fit(tiny_classifier(), [quiet, keras_autowu.AutoWU(verbose=0)], epochs=10, validation_split=0.25)
    assert not any("EarlyStopping" in m for m in said)


@pytest.mark.parametrize("total_epochs,epochs,expected", [
    (2, 4, "fit(epochs=4) runs past AutoWU's run (total_epochs=2): its last 2 epochs train at learning rate 0"),
    (8, 4, "fit(epochs=4) ends at epoch 4 of AutoWU's 8-epoch run (total_epochs): the learning rate is still mid-schedule"),
])
def test_a_fit_of_another_length_than_the_run_warns(total_epochs, epochs, expected):
    _, said = fit(tiny_classifier(), [keras_autowu.AutoWU(total_epochs=total_epochs, verbose=0)], epochs=epochs)
    assert any(expected in m for m in said), said


class LossTwice(keras.Sequential):
    """A custom train_step that calls compute_loss twice a step."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
            loss += 0.0 * self.compute_loss(x=x, y=y, y_pred=y_pred)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {"loss": loss}


@needs_tensorflow("a TensorFlow train_step; on JAX AutoWU reads the loss tracker, once a step")
def test_a_train_step_that_computes_the_loss_twice_is_an_error():
    model = LossTwice([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(RuntimeError, match="calls self.compute_loss\\(...\\) 2 times a step"):
        fit(model, [keras_autowu.AutoWU(verbose=0)])


def test_a_fit_after_an_early_stop_starts_a_new_run(capsys):
    """The same callback, the same model: fit() again from epoch 0 is a new run, not the
    stopped run's tail at learning rate 0."""
    model, autowu = tiny_classifier(), keras_autowu.AutoWU(verbose=1)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    fit(model, [autowu, stop], epochs=8)
    assert autowu.scheduler.steps_done == 16  # stopped after 2 epochs
    fit(model, [autowu], epochs=8)
    assert autowu.scheduler.steps_done == 64 and len(autowu.scheduler.losses) == 64
    assert "a new run (the last fit ended its run at step 16 of 64" in capsys.readouterr().out


def test_after_fit_the_optimizer_keeps_a_usable_learning_rate(tmp_path):
    """Not the schedule's final 0: a model saved now trains on at the decay's start LR."""
    model, autowu = tiny_classifier(), keras_autowu.AutoWU(verbose=0)
    fit(model, [autowu], epochs=4)
    kept = float(np.asarray(model.optimizer.learning_rate))
    assert kept > 0 and kept == pytest.approx(autowu.scheduler.state.decay_base_lr, rel=1e-6)
    if IS_KERAS_3:
        path = str(tmp_path / "model.keras")
        model.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the extra optimizer variables
            loaded = keras.models.load_model(path)
        assert float(np.asarray(loaded.optimizer.learning_rate)) == pytest.approx(kept, rel=1e-6)


def test_a_fit_stopped_in_the_warmup_keeps_its_last_learning_rate():
    """Not the decay's base, which in the warmup is the cap's (about max_lr)."""
    model, autowu = tiny_classifier(), keras_autowu.AutoWU(verbose=0)
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    fit(model, [autowu, stop], epochs=8)
    scheduler = autowu.scheduler
    assert scheduler.steps_done == 16 and scheduler.phase == "warmup"
    kept = float(np.asarray(model.optimizer.learning_rate))
    assert kept == pytest.approx(scheduler.learning_rates(15, 16)[0], rel=1e-6) and kept < 0.5 * scheduler.config.max_lr


def test_a_sequential_built_by_its_first_batch_trains():
    """No Input layer: the weights exist only after the first batch (tf_keras crashed)."""
    model = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    autowu = keras_autowu.AutoWU(verbose=0)
    fit(model, [autowu], epochs=4)
    assert autowu.scheduler.steps_done == 32


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras's BackupAndRestore has no double_checkpoint, and needs none")
@pytest.mark.parametrize("scheduler", [
    lambda: keras_autowu.AutoWU(verbose=0),
    lambda: keras_autowu.FactorSearch(verbose=0),
    lambda: keras_autowu.AutoLRS(min_lr=1e-3, max_lr=0.1, tau=10, explored=3, verbose=0),
])
def test_backup_and_restore_keeps_the_backup_before_and_says_so(tmp_path, scheduler):
    """A kill while BackupAndRestore writes leaves a backup the restart cannot open; with
    double_checkpoint=True, Keras 3 goes back to the one before (tests/core/test_sigkill.py
    kills a process there). The schedulers turn it on when it is off, and say so."""
    scheduler = scheduler()
    plain = keras.callbacks.BackupAndRestore(str(tmp_path / "plain"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_classifier().fit(X, Y, batch_size=32, epochs=2, callbacks=[plain, scheduler], verbose=0)
    said = [str(w.message) for w in caught if "double_checkpoint" in str(w.message)]
    assert plain.double_checkpoint is True
    assert len(said) == 1 and said[0].startswith(f"{scheduler.name}: turned on BackupAndRestore's double_checkpoint")
    own = keras.callbacks.BackupAndRestore(str(tmp_path / "own"), double_checkpoint=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_classifier().fit(X, Y, batch_size=32, epochs=2, callbacks=[own, scheduler], verbose=0)
    assert not [w for w in caught if "double_checkpoint" in str(w.message)]


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras keeps the backup's epoch in its checkpoint")
@pytest.mark.parametrize("before", [None, {"epoch": 1, "batch": 3}])
def test_a_backup_s_cut_epoch_file_is_repaired_and_said(tmp_path, before):
    """A kill between opening BackupAndRestore's epoch file and writing it leaves it
    empty, and Keras's restart fails on it (JSONDecodeError). The scheduler puts back
    the copy of the one before (the fit then resumes at its epoch, 1), or removes it
    (the fit begins at epoch 0), and says which."""
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "training_metadata.json").write_text("")
    if before is not None:
        (folder / "training_metadata.json.bkp").write_text(json.dumps(before))
    backup = keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)
    history, said = fit(tiny_classifier(), [backup, keras_autowu.AutoWU(verbose=0)], epochs=2)
    assert len(history.epoch) == (2 if before is None else 1)
    done = "removed it: the fit begins again at epoch 0" if before is None else "put back the one before it"
    assert [text for text in said if "epoch file" in text and done in text]
    with warnings.catch_warnings(record=True) as caught:  # the next fit finds it whole
        warnings.simplefilter("always")
        backup_again = keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)
        tiny_classifier().fit(X, Y, batch_size=32, epochs=2, callbacks=[backup_again, keras_autowu.AutoWU(verbose=0)], verbose=0)
    assert not [w for w in caught if "epoch file" in str(w.message)]


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras's backup is a checkpoint its manager records once written")
def test_a_cut_first_backup_is_removed_and_said(tmp_path):
    """Half of BackupAndRestore's first weights file, and no backup before it: Keras's
    restart fails on it (OSError). The scheduler removes it, the fit begins at epoch 0,
    and it says so."""
    folder = tmp_path / "backup"
    folder.mkdir()
    model = tiny_classifier()
    model.save_weights(str(folder / "whole.weights.h5"))
    data = (folder / "whole.weights.h5").read_bytes()
    (folder / "latest.weights.h5").write_bytes(data[: len(data) // 2])
    backup = keras.callbacks.BackupAndRestore(str(folder), delete_checkpoint=False)
    history, said = fit(model, [backup, keras_autowu.AutoWU(verbose=0)], epochs=2)
    assert len(history.epoch) == 2
    assert [text for text in said if "first backup" in text and "removed it" in text]
