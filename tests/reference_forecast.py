"""The reference AutoLRS's loss forecast (YuchenJin/autolrs, autolrs_server.py), with
SciPy as it uses it: the oracle of the forecast tests and of the faithfulness benchmark."""

import numpy as np
from scipy import optimize
from scipy.interpolate import UnivariateSpline


def reference_forecast(losses, horizon, training=True):
    """The reference's `exp_forecast` and `spline_iter` (autolrs_server.py), with SciPy,
    for series of 17 points or more (see the module's departures)."""
    xs = np.arange(len(losses), dtype=np.float64)
    ys = np.asarray(losses, np.float64)
    bound = xs[int((len(xs) - 1) * 0.5)]
    kept_x, kept_y = xs, ys
    for _ in range(10 if training else 1):
        distance = np.abs(kept_y - UnivariateSpline(kept_x, kept_y, k=2)(kept_x))
        order = sorted(range(len(distance)), key=lambda i: distance[i])
        outliers = [i for i in (order[int(round(-len(distance) * 0.03)):] if training else order[-1:]) if i < bound]
        keep = np.ones(len(kept_x), bool)
        keep[outliers] = False
        kept_x, kept_y = kept_x[keep], kept_y[keep]
    smoothed = UnivariateSpline(kept_x, kept_y, k=2)(xs)

    def residual(beta):
        design = np.vstack([np.exp(-np.exp(beta[0]) * xs), np.ones(len(xs))]).T
        coefficients, residuals = np.linalg.lstsq(design, smoothed, rcond=None)[:2]
        # The reference fails here when the design is rank-deficient (no residual).
        return residuals[0] if residuals.size else np.sum((design @ coefficients - smoothed) ** 2)

    b = -np.exp(optimize.fmin(residual, 0, xtol=1e-5, ftol=1e-5, disp=False)[0])
    a, c = np.linalg.lstsq(np.vstack([np.exp(b * xs), np.ones(len(xs))]).T, smoothed, rcond=None)[0]
    return a * np.exp(b * horizon) + c
