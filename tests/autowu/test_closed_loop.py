"""AutoWU's warmup in closed loop with a training whose stability limit is known
(`closed_loop`): short warmups that climb past the limit before the loss moves, noisy
flat starts, slow starts."""

import closed_loop


def test_hand_overs_lie_between_a_tenth_of_the_limit_and_just_above_it():
    """At least 22 of the 24 warmups hand on a learning rate in [limit/10, 1.25 limit]:
    one that trains, and none the loss cannot bear. Every run ends below its start."""
    outcomes = []
    for case in closed_loop.cases():
        scheduler, final_loss = closed_loop.run(case)
        outcomes.append((case.name, closed_loop.handover(scheduler) / case.limit, final_loss))
    misses = [(name, ratio) for name, ratio, _ in outcomes if not 0.1 <= ratio <= 1.25]
    assert len(misses) <= 2, misses
    start = 1.0 + closed_loop.FLOOR
    assert [name for name, _, final in outcomes if not final < start] == []
