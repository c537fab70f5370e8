"""What AutoWU prints: one or two lines per decision, in plain words."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import decision_traces
import keras_autowu
from helpers import EXPLODING, classification_data, tiny_classifier
from keras_autowu.autowu import messages


def switch_message(velocity_momentum, capsys):
    scheduler = keras_autowu.AutoWUScheduler(50, 40, velocity_momentum=velocity_momentum)
    rng = np.random.default_rng(0)
    while scheduler.switch is None:
        lr = scheduler.learning_rate
        scheduler.observe([0.3 * (np.log10(lr) + 2.0) ** 2 + 0.05 * rng.standard_normal()])
    return [line for line in capsys.readouterr().out.splitlines() if "passed its minimum" in line or line.startswith("  ")]


def test_the_momentum_correction_is_named_only_for_an_optimizer_with_momentum(capsys):
    """Adam's hand-over is the GP's minimum itself; SGD's says what corrected it."""
    plain = switch_message(0.0, capsys)
    assert len(plain) == 2 and "(the GP's minimum), then a cosine decay to 0." in plain[1]
    assert "momentum" not in " ".join(plain)
    corrected = switch_message(0.9, capsys)
    assert "as the optimizer's momentum 0.9 averaged the climb" in corrected[1]


def test_a_range_of_one_step_is_one_step():
    assert messages.rose(115, 115, 0.7, 0.6).startswith("the mean loss of step 115 rose")
    assert messages.rose(100, 114, 0.7, 0.6).startswith("the mean loss of steps 100-114 rose")


def test_every_decision_takes_one_or_two_lines():
    """In the recorded runs (switches, divergences, rescues, the cap), a line that
    starts with "AutoWU:" is followed by at most one indented line."""
    with open(decision_traces.PATH) as f:
        recorded = json.load(f)
    for trace in recorded.values():
        lines = [m for m in trace["messages"] if m.startswith(("AutoWU:", "  "))]
        run = 0
        for line in lines:
            run = run + 1 if line.startswith("  ") else 0
            assert run <= 1, line
            assert "cooldown phase" not in line


def test_a_fit_ends_with_one_summary_line_and_says_each_roll_back_once(capsys):
    """The decision line says where the weights go back to; no second line repeats it."""
    x, y = classification_data(256)
    model = tiny_classifier("sgd")
    autowu = keras_autowu.AutoWU(**EXPLODING)
    model.fit(x, y, batch_size=32, epochs=12, callbacks=[autowu], verbose=0)
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == autowu.scheduler.summary()
    assert out[-1].startswith("AutoWU: step 96 of 96: the warmup ended at step ")
    assert "rolled back" not in "\n".join(out)
    restores = [line for line in out if "Back to the weights of step" in line]
    assert len(restores) == 1 + len(autowu.scheduler.rescues)


@pytest.mark.parametrize(
    "switch_step,warmup_end,steps_done,expected",
    [
        (None, 500, 200, "still in the warmup"),
        (None, 500, 800, "the warmup ran its full length to step 500"),
        (300, 300, 1000, "the warmup ended at step 300"),
    ],
)
def test_the_summary_says_where_the_warmup_ended(switch_step, warmup_end, steps_done, expected):
    scheduler = keras_autowu.AutoWUScheduler(100, 10, verbose=0)
    scheduler.steps_done = steps_done
    scheduler.state = scheduler.state._replace(warmup_end=warmup_end, decay_base_lr=0.2)
    scheduler.rescues = [None]
    if switch_step is not None:
        scheduler.switch = SimpleNamespace(step=switch_step, handover_lr=0.1)
    text = scheduler.summary()
    assert expected in text and text.endswith("; 1 rescue.")
