"""Where AutoWU's gap to the sqrt-scaled cosine at the largest batch comes from.

At MNIST-1D's batch 2048 with LAMB (200 steps), AutoWU trails the cosine tuned at the
smallest batch and sqrt-scaled (section 3 of docs/benchmarks.md). Three things could
cost it: the learning rate it hands on, the steps its warmup spends far below that
learning rate, and the state the warmup leaves (it climbs past the minimum until the
loss turns, then rolls back to its best snapshot). Per seed, this runs AutoWU with its
defaults, then, with the learning rate AutoWU handed on:

- cosine: linear warmup (10 %) + cosine at that peak, as the baselines run;
- steps lost: no update for as many steps as AutoWU's warmup took (learning rate 0),
  then a cosine from that learning rate over the rest, as AutoWU's decay runs;
- climb to its LR, pause: the climb's own learning rates until they reach that
  learning rate, no update until the switch, then the cosine: the state a roll-back to
  that point of the climb would give;
- AutoWU, moments reset: AutoWU again, the optimizer's moment slots zeroed at the
  hand-over (weights kept): how much of the gap is the slots' memory of the climb.
- AutoWU, one risen interval: the warmup ends at the first interval that has risen to
  its end (its mean and its last quarter's), not at two in a row: a climb that
  overshoots one test interval less.
- AutoWU, back to the hand-over LR: the switch restores the last snapshot taken at a
  learning rate at or below the one handed on, not the lowest loss's: weights that
  never saw a higher learning rate than the decay's, guard and rescues as usual.
- AutoWU, restarted: the switch restores the initial weights and optimizer state, so
  the decay trains from scratch at the handed-on learning rate; the hand-over's trial
  still holds it to the warmup's best (see `RestartFromInitialWeights`).
- AutoWU, decay warmed up: the decay's first 10 % of steps ramp the learning rate
  linearly up to the one handed on, as the baselines' warmup does, instead of starting
  at it: a gentler start from the restored state.
- AutoWU, rescues to the switch: a rescue restores the weights the switch restored,
  not the lowest loss's snapshot since, which the learning rate being rescued trained
  (see `RescueToTheSwitch`).

The last five are not AutoWU's behaviour: they override its internals here only.
`--rows` picks some of the rows (AutoWU's own run always comes first).

    python benchmarks/large_batch_gap.py [--quick] [--data mnist1d] [--optimizer lamb] [--batch-size 2048] [--rows ...]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_autowu  # noqa: E402
import paper_claim  # noqa: E402
from keras_autowu._keras import keras  # noqa: E402
from keras_autowu.weight_snapshot import WeightSnapshot  # noqa: E402


class TableSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate per step, from a table (the last entry after its end)."""

    def __init__(self, learning_rates):
        self.table = tf.constant(np.asarray(learning_rates, dtype="float32"))

    def __call__(self, step):
        return tf.gather(self.table, tf.minimum(tf.cast(step, tf.int32), len(self.table) - 1))


def cosine_from(peak, steps):
    """Keras's CosineDecay from `peak` to 0 over `steps` steps, as a table."""
    return peak * 0.5 * (1 + np.cos(np.pi * np.arange(steps) / steps))


class ResetMomentsAtHandover(keras.callbacks.Callback):
    """Zeros the optimizer's moment slots at the first step after AutoWU's switch (Keras 3's
    Adam family names them `_momentums` and `_velocities`)."""

    SLOT_NAMES = ("_momentums", "_velocities")

    def __init__(self, autowu):
        super().__init__()
        self.autowu, self.done = autowu, False

    def on_train_batch_begin(self, batch, logs=None):
        if self.done or self.autowu.scheduler.switch is None:
            return
        slots = [slot for name in self.SLOT_NAMES for slot in getattr(self.model.optimizer, name, [])]
        if not slots:
            raise RuntimeError(f"{type(self.model.optimizer).__name__} has none of the slots {self.SLOT_NAMES}")
        for slot in slots:
            slot.assign(tf.zeros_like(slot))
        self.done = True


class WarmupEndsOnOneRisenInterval(keras_autowu.AutoWU):
    """AutoWU whose warmup takes one interval risen to its end for a divergence."""

    def set_params(self, params):
        super().set_params(params)
        test_warmup = self.scheduler._test_warmup

        def one_interval(step, verdict):
            if verdict.risen and verdict.tail_risen:
                verdict = verdict._replace(risen_in_a_row=max(2, verdict.risen_in_a_row))
            return test_warmup(step, verdict)

        self.scheduler._test_warmup = one_interval


class KeepsEverySnapshot(keras_autowu.AutoWU):
    """AutoWU that keeps every snapshot of the run (AutoWU keeps two): it ignores discards,
    so that an override may restore an older one."""

    def _carry_out(self, requests):
        super()._carry_out([request for request in requests if request.kind != "discard"])


class RollBackToHandoverLR(KeepsEverySnapshot):
    """AutoWU whose switch restores the last snapshot at or below the hand-over LR."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.switch_restored = False

    def _roll_back(self, step):
        if not self.switch_restored:
            self.switch_restored = True
            lr = self.scheduler.state.decay_base_lr
            below = [kept for kept in self._snapshots if kept <= step and self.scheduler.learning_rates([kept])[0] <= lr]
            step = max(below, default=step)
        super()._roll_back(step)


class RestartFromInitialWeights(keras_autowu.AutoWU):
    """AutoWU whose switch restores the weights and optimizer state of the run's start
    instead of the lowest loss's snapshot. The restarted loss starts where the run did,
    so the guard's rise rules wait while the hand-over's trial lasts (a non-finite loss
    still counts): a learning rate that trains beats the warmup's best within the
    trial; one that does not is rescued to that best's snapshot at half of it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.initial_state = None
        self.restarted = False

    def set_params(self, params):
        super().set_params(params)
        scheduler = self.scheduler
        guard = scheduler._guard

        def guard_waiting_for_the_trial(step, verdict):
            if self.restarted and scheduler._trial is not None and verdict.non_finite is None:
                verdict = verdict._replace(risen_in_a_row=0, drifted_in_a_row=0)
            return guard(step, verdict)

        scheduler._guard = guard_waiting_for_the_trial

    def on_epoch_begin(self, epoch, logs=None):
        starting = not self._run_started
        super().on_epoch_begin(epoch, logs)
        if starting and self.scheduler.steps_done == 0:
            self.initial_state = WeightSnapshot(self.model, 0, self._variables.refs())

    def _roll_back(self, step):
        if self.restarted or self.scheduler.switch is None or self.initial_state is None:
            return super()._roll_back(step)
        self.restarted = True
        self.initial_state.restore(learning_rate=self.scheduler.learning_rates([self.scheduler.steps_done])[0])


class WarmedUpDecay(keras_autowu.AutoWU):
    """AutoWU whose decay ramps the learning rate linearly from 0 to the hand-over's
    over its first WARMUP_FRACTION of steps (rescues scale the ramped rates as usual)."""

    def set_params(self, params):
        super().set_params(params)
        scheduler = self.scheduler
        learning_rates = scheduler.learning_rates

        def ramped(steps):
            rates = np.asarray(learning_rates(steps), np.float64)
            if scheduler.switch is None:
                return rates
            start = scheduler.switch.step
            length = max(int(paper_claim.WARMUP_FRACTION * (scheduler.total_steps - start)), 1)
            into = np.asarray(steps) - start
            return np.where((into >= 0) & (into < length), rates * (into + 1) / length, rates)

        scheduler.learning_rates = ramped


class RescueToTheSwitch(KeepsEverySnapshot):
    """AutoWU whose rescues restore the snapshot the switch restored, dropping every step
    trained since; the decay's clock runs on, as in any rescue."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.switch_restore = None

    def _roll_back(self, step):
        if self.scheduler.switch is not None and not self.scheduler.rescues:
            self.switch_restore = step
        elif self.scheduler.rescues and self.switch_restore is not None:
            step = self.switch_restore
        super()._roll_back(step)


def fit(data, optimizer_name, batch_size, seed, epochs, learning_rate, callbacks=()):
    x_train, y_train, x_val, y_val = data["arrays"]
    keras.utils.set_random_seed(seed)
    model = paper_claim.small_cnn(data["name"])
    model.compile(
        optimizer=paper_claim.make_optimizer(optimizer_name, learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, callbacks=list(callbacks), verbose=0)
    return float(model.evaluate(x_val, y_val, batch_size=512, verbose=0)[1])


def autowu_run(data, optimizer_name, batch_size, seed, epochs, reset_moments=False, autowu_class=keras_autowu.AutoWU):
    """AutoWU's accuracy, the learning rate it handed on, the decay's first step, the run's
    steps, and the learning rate of each step."""
    autowu = autowu_class(verbose=0, seed=seed)
    recorder = paper_claim.StepRecorder()
    callbacks = [autowu, recorder] + ([ResetMomentsAtHandover(autowu)] if reset_moments else [])
    accuracy = fit(data, optimizer_name, batch_size, seed, epochs, 1e-3, callbacks)
    scheduler = autowu.scheduler
    return (
        accuracy, float(scheduler.state.decay_base_lr), int(scheduler.state.warmup_end), scheduler.total_steps,
        # The recorder reads the learning rate after each step, which is the next step's.
        np.array([recorder.learning_rates[0], *recorder.learning_rates[:-1]]),
    )


# The rows after AutoWU's own run: `--rows` names -> printed names (`row_accuracy` runs one).
ROWS = {
    "cosine": "cosine at AutoWU's LR",
    "steps-lost": "steps lost, then its cosine",
    "climb-pause": "climb to its LR, pause, cosine",
    "moments-reset": "AutoWU, moments reset",
    "one-risen": "AutoWU, one risen interval",
    "back-to-handover-lr": "AutoWU, back to the hand-over LR",
    "restart": "AutoWU, restarted",
    "warmed-up-decay": "AutoWU, decay warmed up",
    "rescue-to-switch": "AutoWU, rescues to the switch",
}


def row_accuracy(row, data, args, seed, epochs, lr, switch, steps, climb):
    if row == "cosine":
        warmup = int(paper_claim.WARMUP_FRACTION * steps)
        cosine = keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, warmup_target=lr, warmup_steps=warmup)
        return fit(data, args.optimizer, args.batch_size, seed, epochs, cosine)
    if row == "steps-lost":
        lost = np.concatenate([np.zeros(switch), cosine_from(lr, steps - switch)])
        return fit(data, args.optimizer, args.batch_size, seed, epochs, TableSchedule(lost))
    if row == "climb-pause":
        # The state a roll-back to the climb's step at the hand-over LR would give: the
        # climb's learning rates until it reaches that LR, no update until the switch.
        reached = reached_at(climb, lr, switch)
        held = np.concatenate([climb[:reached], np.zeros(switch - reached), cosine_from(lr, steps - switch)])
        return fit(data, args.optimizer, args.batch_size, seed, epochs, TableSchedule(held))
    if row == "moments-reset":
        return autowu_run(data, args.optimizer, args.batch_size, seed, epochs, reset_moments=True)[0]
    autowu_class = {
        "one-risen": WarmupEndsOnOneRisenInterval,
        "back-to-handover-lr": RollBackToHandoverLR,
        "restart": RestartFromInitialWeights,
        "warmed-up-decay": WarmedUpDecay,
        "rescue-to-switch": RescueToTheSwitch,
    }[row]
    return autowu_run(data, args.optimizer, args.batch_size, seed, epochs, autowu_class=autowu_class)[0]


def reached_at(climb, lr, switch):
    """The first step of the climb at or above `lr` (the switch if none)."""
    above = climb[:switch] >= lr
    return min(int(np.argmax(above)) if above.any() else switch, switch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024 samples, 2 epochs, seed 0, batch 256")
    parser.add_argument("--data", default="mnist1d", choices=list(paper_claim.BATCH_SIZES))
    parser.add_argument("--optimizer", default="lamb", choices=["sgd", "lamb"])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="all that apply to the optimizer by default")
    parser.add_argument("--threads", type=int, help="TensorFlow's threads")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.rows is None:
        args.rows = [row for row in ROWS if args.optimizer == "lamb" or row != "moments-reset"]
    elif args.optimizer != "lamb" and "moments-reset" in args.rows:
        parser.error(f"--rows moments-reset zeros LAMB's moments; it has no meaning for --optimizer {args.optimizer}")
    seeds, epochs = args.seeds, paper_claim.EPOCHS
    if args.quick:
        seeds, epochs, args.batch_size = [0], paper_claim.QUICK["epochs"], 256
    data = paper_claim.load(args.data, args.quick)
    start = time.perf_counter()
    rows = {"AutoWU (defaults)": [], **{ROWS[row]: [] for row in args.rows}}
    print(f"{args.data}, {args.optimizer.upper()}, batch {args.batch_size}, {epochs} epochs")
    print("per seed: AutoWU's LR, the climb's highest LR, the step the climb reached AutoWU's LR, the switch")
    print("step / the run's steps; then the accuracy of each row below")
    for seed in seeds:
        accuracy, lr, switch, steps, climb = autowu_run(data, args.optimizer, args.batch_size, seed, epochs)
        results = [accuracy] + [
            row_accuracy(row, data, args, seed, epochs, lr, switch, steps, climb) for row in args.rows
        ]
        for row, result in zip(rows.values(), results):
            row.append(result)
        print(
            f"seed {seed}: LR {lr:.3g}, climb's highest {climb[:switch].max():.3g}, reached at "
            f"{reached_at(climb, lr, switch)}, switch {switch}/{steps}: " + "  ".join(f"{r:.3f}" for r in results),
            flush=True,
        )
    for name, accuracies in rows.items():
        print(f"{name:33s} {np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}")
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
