"""The controllers need no TensorFlow: off Keras's TensorFlow backend their GP runs on
TensorFlow Probability's NumPy substrate. Each check runs in a process in which
`import tensorflow` fails."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.join(os.path.dirname(__file__), "..")

NO_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
"""


def run_without_tensorflow(code):
    env = {**os.environ, "KERAS_AUTOWU_GP_SUBSTRATE": "numpy", "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW + textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_autowu_and_autolrs_controllers_decide_without_tensorflow():
    """AutoWU's GP test ends a warmup whose loss turned, and AutoLRS's GP proposes
    learning rates, with TensorFlow unimportable."""
    stdout = run_without_tensorflow(
        """
        import numpy as np
        import keras_autowu
        rng = np.random.default_rng(0)
        autowu = keras_autowu.AutoWUScheduler(50, 10, verbose=0)
        for i in range(300):
            autowu.step(2.0 - min(i, 150) / 100 + (max(i - 150, 0) / 10) ** 2 + 0.02 * rng.standard_normal())
        print("switch", autowu.switch.step)
        autolrs = keras_autowu.AutoLRSScheduler(2000, 0.01, tau=100, verbose=0)
        while not autolrs.stages:
            start, stop = autolrs.steps_done, autolrs.next_boundary()
            lr = autolrs.learning_rates(start, start + 1)[0]
            # A loss that falls fastest at a learning rate of 1e-2.
            autolrs.observe(2.0 - np.arange(1, stop - start + 1) * 1e-3 / (1.0 + abs(np.log10(lr) + 2.0)))
        print("explored", len(set(autolrs.stages[0].learning_rates)))
        print("tensorflow imported", any(sys.modules.get(m) is not None for m in ("tensorflow", "keras")))
        """
    )
    assert "switch " in stdout and int(stdout.split("switch ")[1].split()[0]) > 150
    assert int(stdout.split("explored ")[1].split()[0]) >= 3
    assert "tensorflow imported False" in stdout


def test_the_keras_callbacks_say_what_they_need():
    """Without TensorFlow, the callbacks build on Keras's JAX backend; on its TensorFlow
    backend, asking for one is an ImportError that says why and what to use instead, not
    a bare 'No module named tensorflow'."""
    stdout = run_without_tensorflow(
        """
        import keras_autowu
        try:
            print([type(callback()).__name__ for callback in (keras_autowu.AutoWU, keras_autowu.FactorSearch, keras_autowu.AutoLRS)])
        except ImportError as error:
            print(error)
        """
    )
    if os.environ.get("KERAS_BACKEND") == "jax":
        assert "['AutoWU', 'FactorSearch', 'AutoLRS']" in stdout, stdout
    else:
        assert "TensorFlow is not installed" in stdout and "AutoWUScheduler" in stdout, stdout


def test_the_gp_test_leaves_its_input_state_as_it_was():
    """On the NumPy substrate arrays are mutable: the test builds its new state and
    writes into none it was given (the initial state is cached and shared by runs)."""
    stdout = run_without_tensorflow(
        """
        import numpy as np
        from keras_autowu.autowu import loss_sampling
        from keras_autowu.gp import minimum_test
        state = minimum_test.initial_gp_state()
        before = [np.array(value, copy=True) for value in state]
        inputs = loss_sampling.sample_gp_inputs(np.log(np.linspace(3.0, 1.0, 200)), 5, 0, 0)
        minimum_test.run_gp_minimum_test(state, inputs)
        print("unchanged", all(np.array_equal(a, b) for a, b in zip(before, minimum_test.initial_gp_state())))
        """
    )
    assert "unchanged True" in stdout
