"""The one contract between a scheduler's controller and whatever trains: the requests it
makes of the weights, and the methods every controller has."""

from typing import List, NamedTuple, Protocol, Sequence


class Request(NamedTuple):
    """What the training loop must do to the weights, from a controller's `observe`.

    kind "snapshot": keep a copy of the weights and the optimizer's slots as they are
      after `step` steps. "restore": put back the copy of `step` (AutoLRS: the last
      copy); the step counter goes on, and SGD's velocity is scaled by
      `velocity_scale`, or, where it is None, by the new learning rate over the one
      of the copy's time. "discard": the copy of `step` is no longer needed.
      "probe": factor search's probe of the losses at multiples of the learning rate,
      due at `step`.
    """

    kind: str
    step: int
    velocity_scale: float = None


class Controller(Protocol):
    """What the callback base (`keras_autowu.core.callback`) and custom loops drive.

    Every decision is a function of what the controller observed, so `set_state`
    replays `get_state`'s observations and makes every decision again.
    """

    total_steps: int

    def next_boundary(self, step: int) -> int:
        """The step at which the loop must next hand over its observations."""

    def observe(self, losses: Sequence[float]) -> List[Request]:
        """Records the next steps' losses; returns the requests for the weights."""

    def learning_rates(self, start: int, stop: int) -> Sequence[float]:
        """The learning rate of steps start..stop-1."""

    def get_state(self) -> dict:
        """The observations, as plain values."""

    def set_state(self, state: dict) -> List[Request]:
        """Replays `state`; returns the requests for the weights as they are now."""
