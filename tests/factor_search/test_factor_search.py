"""Factor search: its decisions by hand, its probes in the graph, and its fits."""

import json
import math

import numpy as np
import pytest

import keras_autowu
from helpers import Preempted, PreemptAt, classification_data, make_optimizer, tiny_classifier
from keras_autowu.core.keras_compat import keras, learning_rate_value
from keras_autowu.factor_search.controller import FACTOR_LISTS, FactorSearchScheduler

STEPS_PER_EPOCH, EPOCHS = 8, 6


def observe_probe(scheduler, step, losses, base_loss):
    """One update's probe, handed to the scheduler as a loop does at `next_boundary()`."""
    return scheduler.observe([], probe=(step, losses, base_loss))


def hand_learning_rate(learning_rate, factors, losses, normalization):
    """The seed's update, written out: normalise, exp(-x), weighted geometric mean."""
    if normalization == "minmax":
        low, high = min(losses), max(losses)
        x = [(v - low) / (high - low) for v in losses]
    else:
        mean = sum(losses) / len(losses)
        std = math.sqrt(sum((v - mean) ** 2 for v in losses) / len(losses))
        x = [(v - mean) / std for v in losses]
    scores = [math.exp(-v) for v in x]
    return learning_rate * math.prod(f ** (s / sum(scores)) for f, s in zip(factors, scores))


def quadratic_losses(factors, learning_rate, w=1.0):
    """L(w) = w**2 after the step -f * lr * L'(w): (w - 2 f lr w)**2."""
    return [(w - 2 * f * learning_rate * w) ** 2 for f in factors]


@pytest.mark.parametrize("size", sorted(FACTOR_LISTS))
@pytest.mark.parametrize("normalization", ["minmax", "zscore"])
def test_each_factor_list_and_normalisation_by_hand(size, normalization):
    factors = FACTOR_LISTS[size]
    scheduler = FactorSearchScheduler(10, 5, learning_rate=0.1, factors=factors, normalization=normalization, verbose=0)
    losses = quadratic_losses(factors, 0.1)
    observe_probe(scheduler, 10, losses, 1.0)
    expected = hand_learning_rate(0.1, factors, losses, normalization)
    assert scheduler.learning_rate == pytest.approx(expected, rel=1e-12)
    assert scheduler.learning_rate != pytest.approx(0.1)  # the probes moved it


def test_a_probe_that_is_not_finite_or_blew_up_is_ignored():
    scheduler = FactorSearchScheduler(10, 5, learning_rate=0.1, verbose=0)
    observe_probe(scheduler, 10, [float("nan"), 1.0, 1.5], 2.0)
    ignoring_the_first = 0.1 * hand_learning_rate(1.0, [1.0, 0.5], [1.0, 1.5], "minmax")
    assert scheduler.learning_rate == pytest.approx(ignoring_the_first)
    observe_probe(scheduler, 20, [100.0, 1.0, 1.5], 2.0)  # x2 blew up: over 2 * base
    assert scheduler.updates[-1].scores[0] == 0.0
    assert scheduler.learning_rate < scheduler.updates[-1].learning_rate_before
    before = scheduler.learning_rate
    observe_probe(scheduler, 30, [float("inf"), 50.0, 9.0], 2.0)
    assert scheduler.updates[-1].kind == "shrink"
    assert scheduler.learning_rate == pytest.approx(before * 0.5)


def test_a_diverged_run_asks_for_its_snapshot_back():
    scheduler = FactorSearchScheduler(10, 5, learning_rate=0.1, verbose=0)
    assert [r.kind for r in observe_probe(scheduler, 10, [1.0, 2.0, 3.0], 2.0)] == ["snapshot"]
    assert [r.kind for r in observe_probe(scheduler, 20, [np.nan] * 3, float("nan"))] == ["restore"]
    assert scheduler.learning_rate == pytest.approx(scheduler.updates[0].learning_rate * 0.5)


def test_the_learning_rate_stays_within_its_bounds():
    scheduler = FactorSearchScheduler(10, 50, learning_rate=0.5, max_lr=1.0, min_lr=0.4, verbose=0)
    for step in range(10, 100, 10):
        observe_probe(scheduler, step, [0.1, 1.0, 2.0], 1.0)  # x2 always best
    assert scheduler.learning_rate == 1.0
    for step in range(100, 200, 10):
        observe_probe(scheduler, step, [2.0, 1.0, 0.1], 1.0)
    assert scheduler.learning_rate == 0.4


def test_state_round_trip_replays_the_same_learning_rates():
    rng = np.random.default_rng(0)
    original = FactorSearchScheduler(10, 20, learning_rate=0.05, verbose=0)
    for step in range(10, 200, 10):
        observe_probe(original, step, rng.uniform(0.5, 2.0, 3), 1.0)
    restored = FactorSearchScheduler(10, 20, learning_rate=1.0, verbose=0)
    restored.set_state(json.loads(json.dumps(original.get_state())))
    assert restored.updates == original.updates
    assert restored.learning_rate == original.learning_rate


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(factors=[]), "factors"),
        (dict(factors=[2.0, -1.0]), "factors"),
        (dict(factors=[2.0, 2.0]), "factors"),
        (dict(factors="2,1"), "factors"),
        (dict(normalization="l2"), "normalization"),
        (dict(direction="adam"), "direction"),
        (dict(update_interval=0), "update_interval"),
        (dict(update_interval="step"), "update_interval"),
        (dict(probe_batch_size=0), "probe_batch_size"),
        (dict(min_lr=1.0, max_lr=0.1), "max_lr"),
        (dict(initial_learning_rate=-1.0), "initial_learning_rate"),
        (dict(verbose="yes"), "verbose"),
    ],
)
def test_bad_arguments_are_named_at_construction(kwargs, name):
    with pytest.raises(ValueError, match=rf"FactorSearch expects .*Received {name}="):
        keras_autowu.FactorSearch(**kwargs)


def quadratic_model(optimizer):
    """One weight w = 1, no bias; with x = 1 and y = 0 the MSE loss is w**2."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("direction", ["gradient", "update"])
def test_probe_losses_on_a_known_quadratic(direction):
    """Plain SGD: both directions step -f * lr * 2w from w = 1, so the probes are (1 - 2 f lr)**2.

    "gradient" probes before the requested step; "update" keeps that step's start and
    probes at the next step, before it trains.
    """
    model = quadratic_model(keras.optimizers.SGD(0.1))
    factors = FACTOR_LISTS[5]
    probe = keras_autowu.FactorProbe(model, factors, direction=direction, probe_batch_size=4)
    x, y = np.ones((4, 1), "float32"), np.zeros((4, 1), "float32")
    probe.install(model)
    probe.request()
    for _ in range(probe.steps_to_result):
        model.train_on_batch(x, y)
    np.testing.assert_allclose(probe.losses.numpy(), quadratic_losses(factors, 0.1), rtol=1e-6)
    assert float(probe.base_loss.numpy()) == pytest.approx(1.0)
    assert int(probe.stage.numpy()) == 0


@pytest.mark.parametrize("direction", ["gradient", "update"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lamb"])
def test_weights_after_a_probe_are_bit_identical(direction, optimizer):
    """A step with a probe leaves the weights and slots exactly as the same step without."""
    x, y = classification_data(128)
    models = []
    for probed in (True, False):
        keras.utils.set_random_seed(0)
        model = tiny_classifier(make_optimizer(optimizer))
        model.train_on_batch(x[:32], y[:32])  # slots with history
        if probed:
            probe = keras_autowu.FactorProbe(model, FACTOR_LISTS[7], direction=direction)
            probe.install(model)
            probe.request()
        model.train_on_batch(x[32:64], y[32:64])
        model.train_on_batch(x[64:96], y[64:96])
        models.append(model)
    assert int(probe.stage.numpy()) == 0
    assert np.all(np.isfinite(probe.losses.numpy())) and probe.losses.numpy().std() > 0
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    slots = [m.optimizer.variables() if callable(m.optimizer.variables) else m.optimizer.variables for m in models]
    slots[0] = slots[0][: len(slots[1])]  # on JAX the probe's own variables follow the slots
    assert len(slots[1]) > 1
    for a, b in zip(*slots):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def fit_with_factor_search(optimizer="sgd", callbacks=(), model=None, initial_epoch=0, steps_per_execution=1, jit_compile=False, **kwargs):
    if model is None:
        keras.utils.set_random_seed(0)
        model = tiny_classifier(optimizer, steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    search = kwargs.pop("search", None) or keras_autowu.FactorSearch(verbose=0, **kwargs)
    x, y = classification_data(STEPS_PER_EPOCH * 32)
    history = model.fit(
        x, y, batch_size=32, epochs=EPOCHS, initial_epoch=initial_epoch,
        callbacks=[search, *callbacks], verbose=0, shuffle=False,
    )
    return search, model, history


class SpoilWeightsAt(keras.callbacks.Callback):
    """Makes a weight NaN at the start of step `step` (counted by epoch and batch)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch * STEPS_PER_EPOCH + batch == self.step:
            weight = self.model.trainable_weights[-1]  # the output layer: a ReLU turns NaN into 0
            weight.assign(np.full(weight.shape, np.nan, "float32"))


def test_weights_spoilt_after_a_healthy_probe_are_not_kept_as_the_snapshot(capsys):
    # The update of step 8 is read, and its snapshot taken, at step 9's start, by when the
    # weights have gone NaN. The next update finds the loss not finite and rolls back: to
    # step 0's weights and optimizer slots (made before the first step for the purpose),
    # not to the NaN ones.
    keras.utils.set_random_seed(0)
    model = tiny_classifier("sgd")
    search = keras_autowu.FactorSearch(initial_learning_rate=0.01, verbose=1)
    x, y = classification_data(STEPS_PER_EPOCH * 32)
    model.fit(x, y, batch_size=32, epochs=EPOCHS, callbacks=[SpoilWeightsAt(STEPS_PER_EPOCH + 1), search], verbose=0, shuffle=False)
    printed = capsys.readouterr().out
    assert "the weights at step 8 are not finite; the snapshot of step 0 stays" in printed
    assert "rolled back to step 0" in printed
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)
    # The roll-back puts back weights and slots, not the probes recorded since step 0.
    saved = search._record.scheduler_state(STEPS_PER_EPOCH, EPOCHS)["probes"]
    assert [p[0] for p in saved] == [u.step for u in search.scheduler.updates]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "lamb"])
def test_fit_with_any_optimizer(optimizer):
    search, model, history = fit_with_factor_search(optimizer, initial_learning_rate=0.01)
    updates = search.scheduler.updates
    assert [u.step for u in updates] == list(range(STEPS_PER_EPOCH, EPOCHS * STEPS_PER_EPOCH, STEPS_PER_EPOCH))
    # Epoch 0 runs at the start's; each later one from its first step's update.
    logged = history.history["learning_rate"]
    np.testing.assert_allclose(logged, [0.01] + [u.learning_rate for u in updates], rtol=1e-6)
    applied = learning_rate_value(model.optimizer)
    assert applied == pytest.approx(search.scheduler.learning_rate, rel=1e-6)
    assert len({u.learning_rate for u in updates}) > 1


def test_steps_per_execution_and_xla_give_the_same_run():
    with pytest.warns(UserWarning, match="update_interval=6 rounded up to 8"):
        chunked, _, _ = fit_with_factor_search(steps_per_execution=4, jit_compile=True, update_interval=6)
    plain, _, _ = fit_with_factor_search(update_interval=8)
    assert [u.step for u in chunked.scheduler.updates] == [u.step for u in plain.scheduler.updates]
    np.testing.assert_allclose(
        [u.learning_rate for u in chunked.scheduler.updates], [u.learning_rate for u in plain.scheduler.updates], rtol=3e-3  # rounding differs (on JAX 1.1e-3 by the fifth update)
    )


def test_backup_and_restore_resumes_with_the_same_learning_rates(tmp_path):
    reference, _, history = fit_with_factor_search(initial_learning_rate=0.02)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(Preempted):
        fit_with_factor_search(callbacks=[backup, PreemptAt(3 * STEPS_PER_EPOCH)], initial_learning_rate=0.02)
    resumed, _, resumed_history = fit_with_factor_search(callbacks=[backup], initial_learning_rate=0.02)
    np.testing.assert_allclose(resumed_history.history["learning_rate"], history.history["learning_rate"][3:], rtol=1e-5)
    # The probes were saved with the optimizer: the resumed run has the whole history.
    assert resumed.scheduler.first_step == 0
    assert [u.step for u in resumed.scheduler.updates] == [u.step for u in reference.scheduler.updates]
    np.testing.assert_allclose(
        [u.losses for u in resumed.scheduler.updates], [u.losses for u in reference.scheduler.updates], rtol=1e-5
    )
    np.testing.assert_allclose(
        [u.learning_rate for u in resumed.scheduler.updates], [u.learning_rate for u in reference.scheduler.updates], rtol=1e-5
    )


class LearningRateTrace(keras.callbacks.Callback):
    """{optimizer step: its learning rate}, and stops the fit after step `stop_after`."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.rates, self.stop_after = {}, stop_after

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy()) - 1
        self.rates[step] = learning_rate_value(self.model.optimizer)
        if step == self.stop_after:
            self.model.stop_training = True


def first_change(rates):
    """The first optimizer step whose learning rate is not the run's first."""
    return next(step for step in sorted(rates) if rates[step] != pytest.approx(rates[min(rates)], rel=1e-6))


def test_a_backup_within_the_first_epoch_goes_on_with_its_run(tmp_path):
    """BackupAndRestore every 2 batches, preempted at step 5: the resume starts at step 4
    of the first epoch, and the probes' run goes on from step 0 (before, it began a new
    run at step 4, so each update came 4 steps late)."""
    reference, _, _ = fit_with_factor_search(initial_learning_rate=0.02)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), save_freq=2)
    with pytest.raises(Preempted):
        fit_with_factor_search(callbacks=[backup, PreemptAt(5)], initial_learning_rate=0.02)
    trace = LearningRateTrace()
    resumed, _, _ = fit_with_factor_search(callbacks=[backup, trace], initial_learning_rate=0.02)
    assert min(trace.rates) == 4
    # The first update's probe at step 8, its result applied from step 10.
    assert first_change(trace.rates) == STEPS_PER_EPOCH + 2
    assert [u.step for u in resumed.scheduler.updates] == [u.step for u in reference.scheduler.updates]


def test_a_new_fit_after_one_stopped_in_its_first_epoch_starts_a_new_run():
    """A fit stopped after step 3 (a callback's stop_training), then a new fit of the same
    model: the optimizer holds the first run's probes, 4 steps in, as after a backup
    within the first epoch, but that run's fit ended here, so a new run starts at step 4."""
    search, model, _ = fit_with_factor_search(callbacks=[LearningRateTrace(stop_after=3)], initial_learning_rate=0.02)
    assert int(model.optimizer.iterations.numpy()) == 4 and not search.scheduler.updates
    trace = LearningRateTrace()
    fit_with_factor_search(model=model, callbacks=[trace], initial_learning_rate=0.02)
    assert first_change(trace.rates) == 4 + STEPS_PER_EPOCH + 2


def test_a_checkpoint_without_the_probes_goes_on_from_the_optimizer_s_learning_rate():
    """fit(initial_epoch=...) on an optimizer that never held a record (weights loaded
    from elsewhere): no history to replay, the optimizer's learning rate goes on."""
    search, _, _ = fit_with_factor_search(optimizer=keras.optimizers.SGD(0.03), initial_epoch=3)
    assert search.scheduler.first_step == 3 * STEPS_PER_EPOCH
    assert search.scheduler.updates[0].learning_rate_before == pytest.approx(0.03)


def test_a_model_with_two_losses_is_refused():
    inputs = keras.Input((8,))
    outputs = [keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)]
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", "mse"])
    x, _ = classification_data(64)
    with pytest.raises(ValueError, match=r"FactorSearch probes the compiled loss.*Received loss=\["):
        model.fit(x, [x[:, :3], x[:, :3]], epochs=2, callbacks=[keras_autowu.FactorSearch(verbose=0)], verbose=0)


def test_a_learning_rate_schedule_is_refused():
    keras.utils.set_random_seed(0)
    model = tiny_classifier(keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)))
    with pytest.raises(ValueError, match="FactorSearch sets the learning rate itself.*float learning rate"):
        fit_with_factor_search(model=model)


def test_plot(tmp_path):
    search, _, _ = fit_with_factor_search()
    keras_autowu.plot_factor_search(search.scheduler, tmp_path / "fs.png")
    assert (tmp_path / "fs.png").stat().st_size > 10_000


@pytest.mark.parametrize("rival", ["autowu", "plateau"])
def test_another_learning_rate_callback_in_the_same_fit_is_refused(rival):
    other = keras_autowu.AutoWU(verbose=0) if rival == "autowu" else keras.callbacks.ReduceLROnPlateau()
    with pytest.raises(ValueError, match="sets the learning rate, and so does"):
        fit_with_factor_search(callbacks=[other])


def test_a_logger_before_it_still_gets_the_learning_rate(tmp_path):
    keras.utils.set_random_seed(0)
    model = tiny_classifier()
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    search = keras_autowu.FactorSearch(verbose=0, initial_learning_rate=0.01)
    x, y = classification_data(STEPS_PER_EPOCH * 32)
    model.fit(x, y, batch_size=32, epochs=3, callbacks=[logger, search], verbose=0)
    header, *rows = (tmp_path / "log.csv").read_text().splitlines()
    column = header.split(",").index("learning_rate")
    assert [float(r.split(",")[column]) for r in rows][1:] == pytest.approx([u.learning_rate for u in search.scheduler.updates])


def test_the_update_probe_is_on_data_the_step_did_not_train_on():
    """The probed step trains on y = 0 (w -> 0.8); the next batch, y = 0.5, is probed:
    the loss at w = 1 + f * (0.8 - 1) against 0.5 is (0.5 - 0.2 f)**2."""
    model = quadratic_model(keras.optimizers.SGD(0.1))
    factors = FACTOR_LISTS[3]
    probe = keras_autowu.FactorProbe(model, factors, direction="update", probe_batch_size=4)
    probe.install(model)
    probe.request()
    ones = np.ones((4, 1), "float32")
    model.train_on_batch(ones, 0.0 * ones)
    model.train_on_batch(ones, 0.5 * ones)
    np.testing.assert_allclose(probe.losses.numpy(), [(0.5 - 0.2 * f) ** 2 for f in factors], rtol=1e-6)
    assert float(probe.base_loss.numpy()) == pytest.approx(0.25)


def test_a_custom_loop_probe_measures_and_puts_the_weights_back():
    model = quadratic_model(keras.optimizers.SGD(0.1))
    probe = keras_autowu.FactorProbe(model, FACTOR_LISTS[3], direction="gradient", probe_batch_size=4)
    before = [w.numpy().copy() for w in model.weights]
    losses, base = probe.probe(np.ones((4, 1), "float32"), np.zeros((4, 1), "float32"), learning_rate=0.1)
    np.testing.assert_allclose(losses, quadratic_losses(FACTOR_LISTS[3], 0.1), rtol=1e-6)
    assert base == pytest.approx(1.0)
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)
    scheduler = FactorSearchScheduler(10, 5, learning_rate=0.1, verbose=0)
    observe_probe(scheduler, 10, losses, base)
    assert scheduler.learning_rate == pytest.approx(hand_learning_rate(0.1, FACTOR_LISTS[3], list(losses), "minmax"), rel=1e-6)
