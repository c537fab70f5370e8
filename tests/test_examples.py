"""The examples run as they are."""

import os
import subprocess
import sys

import pytest

from keras_autowu._keras import IS_KERAS_3

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_large_batch_example_runs_a_few_steps(tmp_path):
    """The large-batch ResNet example picks a strategy, trains with XLA and AutoWU, plots."""
    if not IS_KERAS_3:
        pytest.importorskip("tensorflow_addons", reason="LAMB on Keras 2 comes from tensorflow-addons")
    plot = tmp_path / "run.png"
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "large_batch_resnet.py"),
         "--epochs", "2", "--limit", "256", "--batch-per-replica", "64", "--plot", str(plot)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "1 replica(s), global batch 64" in result.stdout
    assert "test accuracy" in result.stdout and plot.exists()


def test_factor_search_example_runs(tmp_path):
    """The factor-search example trains, prints what it found, and plots."""
    plot = tmp_path / "fs.png"
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "factor_search_digits.py"), str(plot), "3"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("FactorSearch: step") == 2
    assert "test accuracy" in result.stdout and plot.exists()


def test_autolrs_example_runs(tmp_path):
    """The AutoLRS example trains its stages, prints them, and plots."""
    plot = tmp_path / "autolrs.png"
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "autolrs_digits.py"), str(plot), "10"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("AutoLRS: stage ") >= 2
    assert "test accuracy" in result.stdout and plot.exists()
