"""NumPy's linear algebra on one thread, where the package calls it beside training.

OpenBLAS, which NumPy's wheels ship, splits even a small SVD over its threads, and
those threads wait for cores that TensorFlow's thread pools hold between steps: on 2
cores, the 134 x 103 SVD of AutoLRS's forecast took 31 ms inside a fit against 2.5 ms
on one thread (OpenMathLib/OpenBLAS#731: small SVDs in a loop 4x slower with threads).
The matrices here are too small to gain from threads anyway.
"""

import functools

from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=None)
def _controller():
    # Made once: finding the loaded BLAS libraries costs a millisecond, a limit 10 us.
    return ThreadpoolController()


def one_thread():
    """A context in which NumPy's BLAS and LAPACK calls run on one thread (a BLAS that
    threadpoolctl does not know is left as it is)."""
    return _controller().limit(limits=1, user_api="blas")
