"""AutoWU's warmup in closed loop with a training whose stability limit is known.

The training is gradient descent on a quadratic: 30 directions whose curvatures h
spread log-uniformly over three decades below h_max. A step at learning rate lr
multiplies a direction's error by (1 - lr h): the loss falls in the directions with
lr h near 1 and grows in those with lr h > 2, so the stability limit is 2 / h_max, and
past it the loss takes steps to blow up, the more the closer lr is to the limit. The
scheduler sees each step's loss times a multiplicative batch noise and chooses every
step's learning rate; its roll-backs put the simulated weights back.

The cases, the kinds of warmup that went wrong before (docs/benchmarks.md, section 11):

- "short": a short warmup (an eighth of the run) up to max_lr=10, whose fast climb
  goes 3x per step; the loss sits in the stiff directions, so it moves only near the
  limit, and the climb passes the limit before the loss has moved;
- "noisy_flat": a flat start with 15 % noise per step and 6-step test intervals;
- "slow": the loss spread evenly over the directions, so it falls decade by decade
  (a slow start), 5 % noise.

Each kind runs at limits 1e-3 to 1 and two seeds: 24 warmups. A hand-over is good
within [limit / 10, 1.25 limit]: a rate that trains, and none the loss cannot bear.

    python tests/closed_loop.py    # prints each case's hand-over
"""

import dataclasses

import numpy as np

import keras_autowu

DIRECTIONS = 30
CURVATURE_DECADES = 3.0
FLOOR = 0.05  # the loss no learning rate removes, as a share of the start's
GRADIENT_NOISE = 0.1


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str
    limit: float
    seed: int
    steps_per_epoch: int
    epochs: int
    noise: float
    loss_tilt: float  # each direction's share of the starting loss goes as curvature**-tilt
    scheduler_args: tuple = ()

    @property
    def name(self):
        return f"{self.kind}-limit{self.limit:g}-seed{self.seed}"


def cases():
    kinds = {
        "short": dict(steps_per_epoch=50, epochs=8, noise=0.05, loss_tilt=1.0,
                      scheduler_args=(("max_lr", 10.0), ("max_warmup_fraction", 0.125))),
        "noisy_flat": dict(steps_per_epoch=60, epochs=10, noise=0.15, loss_tilt=1.0,
                           scheduler_args=(("max_warmup_fraction", 0.2),)),
        "slow": dict(steps_per_epoch=50, epochs=10, noise=0.05, loss_tilt=0.5),
    }
    return [
        Case(kind, limit, seed, **args)
        for kind, args in kinds.items()
        for limit in (1e-3, 1e-2, 1e-1, 1.0)
        for seed in (0, 1)
    ]


class Quadratic:
    """The simulated training: errors per direction, curvatures, the batch noise."""

    def __init__(self, case):
        rng = np.random.default_rng(case.seed)
        h_max = 2.0 / case.limit
        self.curvature = h_max * 10.0 ** -rng.uniform(0, CURVATURE_DECADES, DIRECTIONS)
        self.curvature[0] = h_max
        # Each direction's share of the starting loss. Tilted to the flat directions (1),
        # the loss moves only after many steps near the limit, and a stiff direction
        # that holds little of it blows up first.
        share = (self.curvature / h_max) ** -case.loss_tilt
        share /= share.sum()
        self.error = np.sqrt(2 * share / self.curvature) * rng.choice([-1, 1], DIRECTIONS)
        # Gradient noise: at a constant learning rate the loss settles at a floor that
        # grows with it (GRADIENT_NOISE of the start at half the limit), so the lowest
        # loss along a climb lies below the limit, as in a network.
        half = case.limit / 2
        floor_per_variance = np.sum(self.curvature * half / (2 * (2 - half * self.curvature)))
        self.gradient_noise = np.sqrt(GRADIENT_NOISE / floor_per_variance)
        self.noise, self.rng = case.noise, rng

    def loss(self):
        return FLOOR + 0.5 * float(np.sum(self.curvature * self.error**2))

    def step(self, learning_rate):
        """One step at `learning_rate`; returns its loss as a batch would show it (the
        loss of the weights before the update, as Keras reports it)."""
        true = self.loss()
        gradient = self.curvature * self.error + self.gradient_noise * np.sqrt(self.curvature) * self.rng.standard_normal(DIRECTIONS)
        self.error = self.error - learning_rate * gradient
        if not np.isfinite(true) or true > 1e30:
            return float("inf")
        return true * float(np.exp(self.noise * self.rng.standard_normal() - self.noise**2 / 2))


def run(case, **overrides):
    """Runs the case's warmup to its end; returns (the scheduler, the true loss at the
    end of the run)."""
    args = dict(case.scheduler_args, verbose=0, seed=case.seed)
    args.update(overrides)
    scheduler = keras_autowu.AutoWUScheduler(case.steps_per_epoch, case.epochs, **args)
    training, snapshots = Quadratic(case), {}
    while scheduler.steps_done < scheduler.total_steps:
        loss = training.step(scheduler.learning_rate)
        for request in scheduler.observe([loss]):
            if request.kind == "snapshot":
                snapshots[request.step] = training.error.copy()
            elif request.kind == "discard":
                snapshots.pop(request.step, None)
            else:
                training.error = snapshots[request.step].copy()
    return scheduler, training.loss()


def handover(scheduler):
    """The learning rate the warmup handed on (before any rescue)."""
    return float(scheduler.switch.handover_lr) if scheduler.switch is not None else float(scheduler.state.decay_base_lr)


def good(case, learning_rate):
    return case.limit / 10 <= learning_rate <= 1.25 * case.limit


def main():
    hits = 0
    for case in cases():
        scheduler, final = run(case)
        lr = handover(scheduler)
        hits += good(case, lr)
        ended = "cap" if scheduler.switch is None else "diverged" if scheduler.divergence else "switch"
        print(
            f"{case.name:28s} {ended:8s} at {scheduler.state.warmup_end:4d}  hands on {lr / case.limit:9.3g} x limit"
            f"  {'ok' if good(case, lr) else 'MISS'}  rescues {len(scheduler.rescues)}  final loss {final:.3g}"
        )
    print(f"{hits} of {len(cases())} hand-overs within [limit/10, 1.25 limit]")


if __name__ == "__main__":
    main()
