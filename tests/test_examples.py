"""The examples run as they are."""

import os
import subprocess
import sys

import pytest

from keras_autowu.core.keras_compat import IS_KERAS_3, tf

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def run_example(script, *args):
    """The example's stdout, once it has exited with 0."""
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.skipif(tf is None, reason="TensorFlow only: the example picks a tf.distribute strategy (TPU, GPUs)")
def test_large_batch_example_runs_a_few_steps(tmp_path):
    """The large-batch ResNet example picks a strategy, trains with XLA and AutoWU, plots."""
    if not IS_KERAS_3:
        pytest.importorskip("tensorflow_addons", reason="LAMB on Keras 2 comes from tensorflow-addons")
    plot = tmp_path / "run.png"
    stdout = run_example("large_batch_resnet.py", "--epochs", 2, "--limit", 256, "--batch-per-replica", 64, "--plot", plot)
    assert "1 replica(s), global batch 64" in stdout
    assert "test accuracy" in stdout and plot.exists()


def test_digits_demo_compares_autowu_with_the_default_learning_rate(tmp_path):
    """The demo (make demo) trains with AutoWU, then at LAMB's default learning rate,
    prints both accuracies and draws both runs."""
    if not IS_KERAS_3:
        pytest.importorskip("tensorflow_addons", reason="LAMB on Keras 2 comes from tensorflow-addons")
    plot = tmp_path / "digits.png"
    stdout = run_example("digits_cnn_lamb.py", plot, 4)
    assert "with AutoWU: test accuracy" in stdout
    assert "at LAMB's default learning rate (0.001): test accuracy" in stdout
    assert plot.exists()


def test_factor_search_example_runs(tmp_path):
    """The factor-search example trains, prints what it found, and plots."""
    plot = tmp_path / "fs.png"
    stdout = run_example("factor_search_digits.py", plot, 3)
    assert stdout.count("FactorSearch: step") == 2
    assert "test accuracy" in stdout and plot.exists()


def test_autolrs_example_runs(tmp_path):
    """The AutoLRS example trains its stages, prints them, and plots."""
    plot = tmp_path / "autolrs.png"
    stdout = run_example("autolrs_digits.py", plot, 10)
    assert stdout.count("AutoLRS: stage ") >= 2
    assert "test accuracy" in stdout and plot.exists()


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_examples_use_public_names_only(script):
    """What a user copies from an example works with what `keras_autowu` exports."""
    import re

    import keras_autowu

    text = open(os.path.join(EXAMPLES, script)).read()
    assert not re.search(r"from keras_autowu\.|import keras_autowu\.", text), "imports a module of the package"
    used = set(re.findall(r"keras_autowu\.(\w+)", text))
    assert used and used <= set(keras_autowu.__all__), used - set(keras_autowu.__all__)
