"""A finite feature map of AutoWU's kernel, exact to float64 round-off.

AutoWU's GP kernel is the exponentiated quadratic with its length scale fixed at 0.2,
on inputs in [0, 1]. Its spectrum there falls so fast that 19 Nystroem features, built
on 32 Chebyshev landmarks, reproduce it to about 1e-14:
`k(x, x') = phi(x) . phi(x')`. The GP then lives in a 19-dimensional weight space, and
fitting or conditioning on hundreds of points costs a few small matrix products
instead of a Cholesky factorisation of their full kernel matrix.
"""

import functools

import numpy as np

from keras_autowu.gp.substrate import tf, tfp

LENGTH_SCALE = 0.2
NUM_LANDMARKS = 32
# Eigenvalues below this fraction of the largest carry nothing but round-off.
EIGENVALUE_CUTOFF = 1e-13


def _kernel():
    return tfp.math.psd_kernels.ExponentiatedQuadratic(
        amplitude=tf.constant(1.0, tf.float64),
        length_scale=tf.constant(LENGTH_SCALE, tf.float64),
    )


@functools.lru_cache(maxsize=None)
def _landmarks_and_projection():
    """Landmarks z and the matrix P with phi(x) = k(x, z) @ P (NumPy, float64)."""
    i = np.arange(NUM_LANDMARKS)
    landmarks = 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / NUM_LANDMARKS)
    with tf.init_scope():  # computed once, eagerly, even when first asked for in a trace
        gram = np.asarray(_kernel().matrix(landmarks[:, None], landmarks[:, None]))
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    keep = eigenvalues > EIGENVALUE_CUTOFF * eigenvalues.max()
    projection = eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])
    return landmarks, projection


def num_features():
    return _landmarks_and_projection()[1].shape[1]


def features(x):
    """phi(x): float64 features of shape x.shape + (num_features,)."""
    landmarks, projection = _landmarks_and_projection()
    x = tf.convert_to_tensor(x, tf.float64)
    # _kernel()(x, z) written out: TFP's kernel object costs a tenth of a second to
    # trace, more than the rest of the test's first call.
    to_landmarks = tf.exp(-0.5 * tf.square((x[..., None] - landmarks) / LENGTH_SCALE))
    return tf.linalg.matmul(to_landmarks, tf.constant(projection))
