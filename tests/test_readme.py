"""The README's quick start runs as written and trains."""

import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def quick_start():
    text = open(README).read()
    section = text[text.index("## Quick start") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_quick_start_runs_as_written(tmp_path):
    """In a fresh process, as a user pastes it: it trains, prints, and plots."""
    pytest_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    code = quick_start()
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":  # as its first line says for Keras 2
        code = code.replace("import keras ", "import tf_keras as keras ", 1)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=pytest_env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(re.search(r"validation accuracy: ([0-9.]+)", result.stdout).group(1))
    assert accuracy > 0.9, result.stdout
    assert "AutoWU: " in result.stdout  # it says what it decided
    assert (tmp_path / "autowu.png").exists()
