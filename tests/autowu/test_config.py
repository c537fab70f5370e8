"""Bad arguments fail at construction with the argument's name and value."""

import pytest

import keras_autowu

BAD_ARGUMENTS = [
    ("min_lr", 0.0, "AutoWU expects `min_lr` in (0.0, inf]. Received min_lr=0.0"),
    ("min_lr", -1e-3, "Received min_lr=-0.001"),
    ("min_lr", float("nan"), "AutoWU expects a finite `min_lr`. Received min_lr=nan"),
    ("max_lr", 1e-6, "AutoWU expects `max_lr` > min_lr=1e-05. Received max_lr=1e-06"),
    ("max_lr", "1", "AutoWU expects `max_lr` to be a number. Received max_lr='1'"),
    ("max_warmup_fraction", 1.5, "Received max_warmup_fraction=1.5"),
    ("max_warmup_fraction", -0.1, "Received max_warmup_fraction=-0.1"),
    ("warmup_type", "cosine", "AutoWU expects `warmup_type` to be one of ('exp', 'linear'). Received warmup_type='cosine'"),
    ("immediate_cooldown", 1, "Received immediate_cooldown=1"),
    ("cooldown_fraction", 1.2, "Received cooldown_fraction=1.2"),
    ("cooldown_type", "linear", "Received cooldown_type='linear'"),
    ("decay_phase_factor", 0.0, "Received decay_phase_factor=0.0"),
    ("decay_phase_factor", 1.5, "Received decay_phase_factor=1.5"),
    ("decay_phase_stat", "accuracy", "Received decay_phase_stat='accuracy'"),
    ("confidence", 1.0, "Received confidence=1.0"),
    ("confidence", 0.0, "Received confidence=0.0"),
    ("patience", 0, "AutoWU expects `patience` >= 1. Received patience=0"),
    ("patience", 2.5, "AutoWU expects `patience` to be an integer. Received patience=2.5"),
    ("num_predictions", 0, "Received num_predictions=0"),
    ("test_interval", 0, "Received test_interval=0"),
    ("seed", -1, "Received seed=-1"),
    ("verbose", -1, "Received verbose=-1"),
    ("min_lr", float("inf"), "AutoWU expects a finite `min_lr`. Received min_lr=inf"),
    ("max_lr", -1.0, "Received max_lr=-1.0"),
    ("max_warmup_fraction", float("nan"), "Received max_warmup_fraction=nan"),
    ("cooldown_fraction", -0.1, "Received cooldown_fraction=-0.1"),
    ("confidence", 1.5, "Received confidence=1.5"),
    ("num_predictions", 2.0, "AutoWU expects `num_predictions` to be an integer. Received num_predictions=2.0"),
    ("test_interval", -3, "Received test_interval=-3"),
    ("seed", 0.5, "Received seed=0.5"),
    ("test_interval", "daily", "AutoWU expects `test_interval` to be an integer >= 1, or one of ('auto', 'epoch'). Received test_interval='daily'"),
    ("lr_choice", "valley", "AutoWU expects `lr_choice` to be one of ('momentum_corrected', 'gp_minimum'). Received lr_choice='valley'"),
    ("max_rescues", -1, "AutoWU expects `max_rescues` >= 0. Received max_rescues=-1"),
    ("max_rescues", 1.5, "AutoWU expects `max_rescues` to be an integer. Received max_rescues=1.5"),
]


@pytest.mark.parametrize("name,value,message", BAD_ARGUMENTS, ids=lambda v: repr(v))
@pytest.mark.parametrize("cls", ["callback", "scheduler"])
def test_bad_argument_raises_value_error_naming_it(cls, name, value, message):
    """Each out-of-range argument raises a ValueError with its name and value."""
    with pytest.raises(ValueError) as error:
        if cls == "callback":
            keras_autowu.AutoWU(**{name: value})
        else:
            keras_autowu.AutoWUScheduler(10, 10, **{name: value})
    assert message in str(error.value)


@pytest.mark.parametrize("name,value", [("steps_per_epoch", 0), ("total_epochs", -2), ("steps_per_epoch", 2.5)])
def test_bad_run_length_raises(name, value):
    """The run's length is checked like every other argument."""
    args = {**dict(steps_per_epoch=10, total_epochs=10), name: value}
    with pytest.raises(ValueError, match=f"Received {name}={value}"):
        keras_autowu.AutoWUScheduler(**args)
    with pytest.raises(ValueError, match=f"Received {name}={value}"):
        keras_autowu.AutoWU(**{name: value})


def test_unknown_argument_is_a_type_error():
    """A misspelt argument is not silently ignored."""
    with pytest.raises(TypeError, match="max_lrr"):
        keras_autowu.AutoWUScheduler(10, 10, max_lrr=1.0)
    with pytest.raises(TypeError, match="max_lrr"):
        keras_autowu.AutoWU(max_lrr=1.0)


def test_version_is_single_sourced():
    """The package version is the one the packaging metadata reads."""
    import importlib.metadata

    try:
        installed = importlib.metadata.version("keras-autowu")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not installed")
    assert installed == keras_autowu.__version__
