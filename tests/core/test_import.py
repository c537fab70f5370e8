"""Importing the package leaves TensorFlow's runtime unstarted, as TensorFlow, Keras and TFP do."""

import subprocess
import sys

import pytest

CONFIGURE_AFTER_IMPORT = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras_autowu
import tensorflow as tf
{configure}
print("configured")
"""


@pytest.mark.parametrize(
    "configure",
    [
        "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], "
        "[tf.config.LogicalDeviceConfiguration()] * 2)",
        "tf.config.threading.set_intra_op_parallelism_threads(1)",
    ],
)
def test_devices_and_threads_can_be_configured_after_import(configure):
    """A script that imports keras_autowu first can still configure its devices."""
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURE_AFTER_IMPORT.format(configure=configure)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "configured" in result.stdout
