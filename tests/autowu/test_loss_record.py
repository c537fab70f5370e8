"""The loss record gives what a list of the losses would, as views."""

import numpy as np

from keras_autowu.autowu import loss_sampling
from keras_autowu.autowu.loss_record import LossRecord


def test_views_and_running_statistics_match_a_plain_array():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 5, 5000)
    losses[rng.choice(5000, 40, replace=False)] = np.nan
    losses[17] = np.inf
    record = LossRecord()
    for chunk in np.array_split(losses, 37):  # growing past the first buffer
        record.extend(chunk)
    np.testing.assert_array_equal(record.values, losses)
    np.testing.assert_array_equal(record.finite_indices, np.flatnonzero(np.isfinite(losses)))
    assert record.finite_count(1000) == np.isfinite(losses[:1000]).sum()
    record.clip_at(3.0)
    record.extend([10.0, 1.0])
    everything = np.concatenate([losses, [10.0, 1.0]])
    finite = everything[np.isfinite(everything)]
    assert np.isclose(record.clipped_finite_mean(), np.minimum(finite, 3.0).mean(), rtol=1e-12)


def test_the_draws_from_the_record_are_the_draws_from_the_array():
    """The same points, so the same decisions, as the sampling of a plain array."""
    rng = np.random.default_rng(1)
    losses = rng.uniform(0, 5, 3000)
    losses[::97] = np.nan
    record = LossRecord()
    record.extend(losses)
    record.clip_at(4.0)
    from_record = loss_sampling.sample_gp_inputs(
        record.values, 5, seed=3, test_index=7, finite_indices=record.finite_indices,
        ceiling=record.ceiling, finite_mean=record.clipped_finite_mean(),
    )
    from_array = loss_sampling.sample_gp_inputs(losses, 5, seed=3, test_index=7, ceiling=4.0)
    for a, b in zip(from_record, from_array):
        np.testing.assert_allclose(a, b, rtol=1e-12)
