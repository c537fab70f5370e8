"""AutoLRS's Bayesian optimisation: within bounds, never twice the same learning rate,
seeded, and exploring where the GP knows least."""

import numpy as np
import pytest

import tensorflow as tf

from keras_autowu.gp import bayes_opt as autolrs_search
from keras_autowu.gp.bayes_opt import LearningRateSearch


def run_search(seed, forecasts, min_lr=1e-4, max_lr=1.0, explored=10):
    search = LearningRateSearch(min_lr, max_lr, explored, seed)
    rates = []
    for index in range(explored):
        rates.append(search.propose())
        search.tell(forecasts(rates[-1], index))
    return search, rates


@pytest.mark.parametrize("seed", range(4))
def test_every_learning_rate_is_new_and_within_bounds(seed):
    rng = np.random.default_rng(seed)
    # Forecasts of every kind: noisy, flat, diverging (1e6), not finite.
    choices = [lambda lr, i: float(rng.normal()), lambda lr, i: 1.0, lambda lr, i: 1e6 if lr > 0.1 else np.log(lr) ** 2,
               lambda lr, i: np.nan if i % 3 == 0 else lr]
    search, rates = run_search(seed, choices[seed])
    assert len(set(rates)) == len(rates) == 10
    points = np.sort(np.log10(rates) / 4 + 1)
    assert np.min(np.diff(points)) >= search.separation - 1e-12
    assert all(1e-4 <= rate <= 1.0 for rate in rates)
    assert all(np.isfinite(search.forecasts))


def test_the_same_seed_and_forecasts_give_the_same_learning_rates():
    forecasts = lambda lr, i: (np.log10(lr) + 2) ** 2  # noqa: E731
    assert run_search(3, forecasts)[1] == run_search(3, forecasts)[1]
    assert run_search(3, forecasts)[1][0] != run_search(4, forecasts)[1][0]


def test_it_explores_where_the_gp_knows_least():
    """With kappa = 1e6 the acquisition is the GP's uncertainty: never next to a point
    explored (noisy forecasts
    flatten the uncertainty, and without the separation the fifth is 0.999 next to 1)."""
    for seed in range(3):
        search = LearningRateSearch(1e-4, 1.0, 10, seed=seed)
        search.propose()
        search.tell(1.0)
        for index in range(9):
            point = np.log10(search.propose()) / 4 + 1  # in [0, 1]
            earlier = np.log10([search.learning_rate(p) for p in search.points[:-1]]) / 4 + 1
            assert np.min(np.abs(earlier - point)) >= search.separation
            search.tell(float(index % 3))


def test_propose_and_tell_alternate():
    search = LearningRateSearch(1e-3, 1.0, 2, seed=0)
    search.propose()
    with pytest.raises(RuntimeError, match="tell"):
        search.propose()
    search.tell(1.0)
    with pytest.raises(RuntimeError, match="follows a propose"):
        search.tell(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_the_fitted_hyperparameters_maximise_the_likelihood_within_the_bounds(seed):
    """The coarse-then-fine grid finds the likelihood's maximum of a grid five times
    finer over the whole range, to 0.05 nats."""
    rng = np.random.default_rng(seed)
    count = 4 + seed
    x, y, mask = np.zeros(10), np.zeros(10), np.zeros(10)
    x[:count], mask[:count] = rng.uniform(size=count), 1.0
    y[:count] = np.sin(6 * x[:count]) + 0.3 * rng.standard_normal(count)
    tensors = [tf.constant(v) for v in (x, y, mask)]
    _, (constant, length_scale, noise) = autolrs_search.lower_confidence_bound(*tensors)
    z = autolrs_search._standardised(*tensors[1:])

    def log_likelihood(length_scales, ratios):
        return autolrs_search._log_likelihoods(tensors[0], z, tensors[2], tf.constant(length_scales, tf.float64),
                                               tf.constant(ratios, tf.float64))[0].numpy()

    fitted = log_likelihood([float(length_scale)], [float(noise / constant)])[0, 0]
    ratios = autolrs_search._NOISE_RATIOS
    dense = log_likelihood(np.geomspace(*autolrs_search.LENGTH_SCALE_BOUNDS, 201), np.geomspace(ratios[0], ratios[-1], 301))
    assert np.isfinite(fitted)
    assert fitted >= dense.max() - 0.05


def test_round_off_ties_go_to_the_first_entry():
    """Entries within float round-off of the largest tie with it, and the first wins:
    which is largest by 1e-16 differs between TensorFlow and NumPy."""
    log_likelihood = tf.constant([[-np.inf, -1.5000000000000004], [-1.5, -1.7]], tf.float64)
    best, row, column = (int(v) for v in autolrs_search._best(log_likelihood))
    assert (best, row, column) == (1, 0, 1)
    clear_winner = tf.constant([[-np.inf, -1.6], [-1.5, -1.7]], tf.float64)
    assert int(autolrs_search._best(clear_winner)[0]) == 2
