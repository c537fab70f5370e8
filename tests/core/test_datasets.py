"""Input pipelines a Keras user reaches for: datasets of unknown length."""

import numpy as np
import tensorflow as tf

import keras_autowu
from helpers import classification_data, tiny_classifier

STEPS_PER_EPOCH, EPOCHS, BATCH = 26, 8, 32


def unknown_length_dataset():
    """26 batches an epoch, behind a filter: tf.data cannot tell how many."""
    x, y = classification_data(STEPS_PER_EPOCH * BATCH)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda *_: True).batch(BATCH)
    assert int(dataset.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    return dataset


def test_a_dataset_of_unknown_length_records_only_the_steps_that_ran_a_batch():
    """Keras runs one more step past the end of such a dataset (Keras 3 every epoch,
    tf_keras in the first): a step on no data, with a NaN loss. It is no step of the
    run: no loss in the record, no decision on its NaN, no drift of the LR table."""
    model = tiny_classifier("sgd")
    autowu = keras_autowu.AutoWU(steps_per_epoch=STEPS_PER_EPOCH, verbose=0, test_interval=13)
    history = model.fit(unknown_length_dataset(), epochs=EPOCHS, callbacks=[autowu], verbose=0)
    scheduler = autowu.scheduler
    assert scheduler.steps_done == STEPS_PER_EPOCH * EPOCHS
    assert np.all(np.isfinite(scheduler.losses))
    reasons = [r.reason for r in scheduler.rescues] + ([scheduler.divergence.reason] if scheduler.divergence else [])
    assert not any("nan" in reason for reason in reasons)
    # Each epoch ends on its own last step's learning rate.
    ends = scheduler.learning_rates()[np.arange(1, EPOCHS + 1) * STEPS_PER_EPOCH - 1]
    np.testing.assert_allclose(history.history["learning_rate"], ends, rtol=1e-6, atol=1e-12)
