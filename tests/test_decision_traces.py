"""Today's controllers make, on the recorded loss streams, every decision they made when
the streams were recorded (tests/decision_traces.py): the same requests, learning rates
and messages, to the bit."""

import json

import pytest

import decision_traces

with open(decision_traces.PATH) as _f:
    RECORDED = json.load(_f)


def _without_library_noise(messages):
    # Deprecation warnings of the libraries under us are not decisions.
    return [m for m in messages if not m.startswith("DeprecationWarning")]


def _requests(chunks):
    """As the recorder writes them now: a snapshot carries no velocity scale (0.2.0's
    AutoLRS requests carried 1.0)."""
    return [[r[:2] if r[0] != "restore" else r for r in chunk] for chunk in chunks]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_same_decisions_as_recorded(name):
    """Every chunk's requests, next learning rate and table, the messages and the summary."""
    recorded = RECORDED[name]
    replayed = decision_traces.record(name, chunks=recorded["chunks"])
    for key in ("steps", "next_lr", "table"):
        assert replayed[key] == recorded[key], key
    assert replayed["requests"] == _requests(recorded["requests"])
    assert replayed.get("final_table") == recorded.get("final_table")
    assert replayed["summary"] == recorded["summary"]
    assert _without_library_noise(replayed["messages"]) == _without_library_noise(recorded["messages"])


def test_every_scheduler_and_event_is_recorded():
    """The recording covers the three schedulers, a switch, a rescue, a cap and a resume."""
    kinds = {decision_traces.CASES[name]["scheduler"] for name in RECORDED}
    assert kinds == {"autowu", "factor_search", "autolrs"}
    text = " ".join(m for trace in RECORDED.values() for m in trace["messages"])
    for event in ("positive tests in a row", "rescue", "reached its cap", "diverged"):
        assert event in text, event
    assert any(r[0] == "restore" for trace in RECORDED.values() for chunk in trace["requests"] for r in chunk)
    assert any(["resume", -1] in chunk for trace in RECORDED.values() for chunk in trace["requests"])
