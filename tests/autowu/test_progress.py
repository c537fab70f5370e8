"""No switch before real progress: a sure rise on a plateau is not a passed minimum."""

import numpy as np
import pytest

import helpers
from helpers import drive
import keras_autowu
from keras_autowu.autowu.config import Departures
from keras_autowu.autowu.progress import LossProgress
from keras_autowu.core.keras_compat import keras

REFERENCE_TEST = dict(departures=Departures(min_progress=0.0, min_rise=0.0))
STEPS_PER_EPOCH = 47


def feed(losses, **kwargs):
    return helpers.feed(losses, STEPS_PER_EPOCH, 40, **kwargs)[0]


def flat(steps, seed=0):
    """A loss that has not moved: chance level with batch noise."""
    return 2.304 + 0.05 * np.random.default_rng(seed).standard_normal(steps)


def periodic(steps, seed=0):
    """Flat, but the batches come in the same order every epoch, and the last ones of
    each epoch have a higher loss: a test at each epoch's end sees a rise."""
    batch = np.arange(steps) % STEPS_PER_EPOCH
    return flat(steps, seed) + 0.15 * (batch / STEPS_PER_EPOCH) ** 4


@pytest.mark.parametrize("stream", [flat, periodic])
@pytest.mark.parametrize("test_interval", ["epoch", "auto", 10])
def test_a_loss_that_has_not_moved_never_ends_the_warmup(stream, test_interval):
    """Over three quarters of the longest warmup, at any test interval and for several
    seeds. Nor does batch noise end the fast climb. The batch order's pattern may: a
    check's few latest losses, at an epoch's end, against the first interval's, at its
    start, can see it as a move, and the warmup then goes on at the steady pace."""
    for seed in range(3):
        scheduler = feed(stream(15 * STEPS_PER_EPOCH, seed), test_interval=test_interval)
        assert scheduler.switch is None and scheduler.divergence is None
        assert not any(test.positive for test in scheduler.tests)
        if stream is flat:
            assert scheduler.state.fast_end == scheduler.plan.longest_fast_climb() > 0


def test_the_reference_test_does_switch_on_the_periodic_stream():
    """The GP alone (the reference's test) reads the batch order as a passed minimum:
    the streams above do catch what the progress rule is for."""
    switched = [feed(periodic(15 * STEPS_PER_EPOCH, seed), test_interval="epoch", **REFERENCE_TEST).switch
                for seed in range(3)]
    assert any(switch is not None for switch in switched)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_slow_start_waits_for_the_fall_and_switches_after_the_minimum(seed):
    """A long flat start does not end the warmup; the minimum after the fall does."""
    scheduler = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    lrs = drive(scheduler, seed=seed)
    switch = scheduler.switch
    assert switch is not None
    assert lrs[switch.step - 1] > 1e-2  # the minimum
    assert not any(test.positive for test in scheduler.tests if lrs[test.step - 1] <= 1e-3)  # the flat part
    assert 1e-2 / 1.5 < switch.lr_at_minimum < 1e-2 * 1.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_warmup_climbs_fast_over_the_flat_start_and_steadily_after(seed):
    """Four times faster while the loss is flat (lr < 1e-3), back to the steady pace
    (lr_t = 1e-5 * 1e5 ** (t / 1000)) soon after it moves: the minimum comes 2.5 decades
    * 200 steps * 3/4 earlier, and the steady climb gives the GP as many losses around it."""
    fast = keras_autowu.AutoWUScheduler(50, 40, verbose=0)
    lrs = drive(fast, seed=seed)
    moved = fast.state.fast_end
    # The fast climb ended within a quarter decade of where the loss started to move.
    assert 1e-3 < lrs[moved - 1] < 1e-3 * 10 ** 0.25, lrs[moved - 1]
    np.testing.assert_allclose(lrs[:moved], 1e-5 * 1e5 ** (4 * np.arange(moved) / 1000), rtol=1e-5)
    steady_steps = np.arange(moved, fast.switch.step)
    np.testing.assert_allclose(lrs[moved:fast.switch.step], 1e-5 * 1e5 ** ((steady_steps + 3 * moved) / 1000), rtol=1e-5)
    steady = keras_autowu.AutoWUScheduler(50, 40, verbose=0, departures=Departures(flat_start_speedup=1))
    drive(steady, seed=seed)
    # Tests fall every 50 steps: the switch comes at a test, 3 * moved steps earlier give or take one.
    assert abs(steady.switch.step - fast.switch.step - 3 * moved) <= 50
    assert fast.switch.lr_at_minimum == pytest.approx(steady.switch.lr_at_minimum, rel=0.2)


def test_a_rise_must_be_a_share_of_the_progress():
    """A fall then a sure but tiny rise (under min_rise of the fall) is not enough."""
    rng = np.random.default_rng(0)
    t = np.arange(600)
    losses = np.where(t < 300, 2.3 - 2.0 * t / 300, 0.3 + 0.05 * (t - 300) / 300) + 0.005 * rng.standard_normal(600)
    gated = feed(losses, test_interval=10)
    assert gated.switch is None
    assert feed(losses, test_interval=10, departures=Departures(min_rise=0.01)).switch is not None


def test_the_noise_of_a_flat_start_does_not_pass_for_a_fall():
    """15 % noise per step and 6-step intervals: the lowest of a flat start's interval
    means lies 10 to 20 % below the first by chance, past the 5 % of `min_progress`."""
    passed = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        record = LossProgress(min_progress=0.05, min_rise=0.05)
        for interval in range(20):
            record.add_interval(6 * interval, np.exp(0.15 * rng.standard_normal(6)))
            passed += record.has_fallen()
    assert passed == 0
    # A real fall, by half, passes.
    record.add_interval(120, 0.5 * np.exp(0.15 * rng.standard_normal(6)))
    assert record.has_fallen()


def test_a_loss_wandering_at_its_start_has_not_risen_until_clear_of_it():
    """A classifier at chance: interval means wander (0.672 to 0.709 around ln 2) by more
    than the step-to-step noise says. No rise counts until the loss is clear of where it
    started; a blow-up is."""
    rng = np.random.default_rng(0)
    record = LossProgress(min_progress=0.05, min_rise=0.05)
    for interval, level in enumerate([0.693, 0.690, 0.672, 0.685, 0.709, 0.700]):
        verdict = record.add_interval(20 * interval, level + 0.001 * rng.standard_normal(20))
        assert not verdict.risen
    assert record.add_interval(120, 1.5 + 0.001 * rng.standard_normal(20)).risen


def digits_mlp_first_epochs(epochs, **autowu_kwargs):
    """The plainest use: an MLP with SGD on 1,500 of the digits, batch 32, seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x, _, y, _ = train_test_split((x / 16.0).astype("float32"), y.astype("int32"), train_size=1500, random_state=42)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.SGD(momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    autowu = keras_autowu.AutoWU(total_epochs=40, verbose=0, **autowu_kwargs)
    model.fit(x, y, batch_size=32, epochs=epochs, callbacks=[autowu], verbose=0, validation_split=0.2)
    return autowu.scheduler


@pytest.mark.parametrize("test_interval", ["epoch", "auto"])
def test_the_digits_mlp_does_not_switch_on_its_flat_start(test_interval):
    """The reference's test switches this run (38 steps an epoch) at step 114, at LR 1e-5,
    while the loss is still at chance; the network then never trains."""
    scheduler = digits_mlp_first_epochs(7, test_interval=test_interval)
    assert scheduler.switch is None and scheduler.phase == "warmup"
