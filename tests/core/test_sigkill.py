"""The three schedulers through a real preemption: a training process killed with
SIGKILL (or SIGTERM), and a fresh process that resumes it from
keras.callbacks.BackupAndRestore (every 7 steps, or at epoch ends).

Keras (3 and tf_keras) feeds a cut epoch's data from its first batch again while the
optimizer's step goes on, so after a resume the run sees other batches at its steps
than the uninterrupted run did, and its later decisions follow its own losses. What
must hold at any moment of the kill: the resumed process finishes; up to the backup it
resumes from, every step had the uninterrupted run's learning rate; from there on every
step has the learning rate the scheduler's controller gives for the resumed run (for
AutoWU, its own losses), and for AutoWU a kill after the switch changes no learning
rate at all.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

import keras_autowu
from keras_autowu.core.keras_compat import IS_KERAS_3

FIT = os.path.join(os.path.dirname(__file__), "..", "sigkill_fit.py")
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def run_fit(backup, trace, *kill):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.dirname(FIT)])}
    result = subprocess.run([sys.executable, FIT, str(backup), str(trace), *map(str, kill)],
                            capture_output=True, text=True, env=env, timeout=300)
    return result.returncode, result.stderr[-3000:]


def read_trace(path, by_fit_step=False):
    """[(optimizer step, learning rate)] in the order the steps ran; with `by_fit_step`,
    the fit's step (its batches counted) instead of the optimizer's."""
    lines = [line.split() for line in open(path)]
    return [(int(fit_step if by_fit_step else step), float(lr)) for step, lr, fit_step in lines]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    returncode, stderr = run_fit(folder / "backup", folder / "trace")
    assert returncode == 0, stderr
    with open(folder / "trace.json") as f:
        run = json.load(f)
    assert run["switch"] is not None, "the run is meant to switch"
    return dict(read_trace(folder / "trace")), run


@pytest.fixture(scope="module")
def reference_of(tmp_path_factory):
    """The uninterrupted run's {step: learning rate} for a scheduler and sigkill_fit.py's
    options (by the fit's step with `by_fit_step`), each run once per module."""
    runs = {}

    def reference(scheduler, *options, by_fit_step=False):
        key = (scheduler, options, by_fit_step)
        if key not in runs:
            folder = tmp_path_factory.mktemp("uninterrupted")
            returncode, stderr = run_fit(folder / "backup", folder / "trace", "--scheduler", scheduler, *options)
            assert returncode == 0, stderr
            runs[key] = dict(read_trace(folder / "trace", by_fit_step))
        return runs[key]

    return reference


def killed_and_resumed(tmp_path, *kill, scheduler="autowu", by_fit_step=False, dies_of=signal.SIGKILL, backup=()):
    """`backup`: sigkill_fit.py's options of the backup, for both processes."""
    returncode, stderr = run_fit(tmp_path / "backup", tmp_path / "trace", "--scheduler", scheduler, *backup, *kill)
    assert returncode == -dies_of, stderr
    killed_steps = len(read_trace(tmp_path / "trace"))
    returncode, stderr = run_fit(tmp_path / "backup", tmp_path / "trace", "--scheduler", scheduler, *backup)
    assert returncode == 0, stderr
    trace = read_trace(tmp_path / "trace", by_fit_step)
    with open(tmp_path / "trace.json") as f:
        run = json.load(f)
    return trace[:killed_steps], trace[killed_steps:], run


def assert_resumed_consistently(before, after, run, reference, untraced=0):
    """Before the kill: the uninterrupted run's learning rates. After: those of the
    controller replaying the resumed run's own losses, the replayed batches past the
    run's end at 0. `untraced`: the steps that ran after the last traced (a kill in
    BackupAndRestore's batch end comes before the trace's)."""
    assert all(lr == reference[step] for step, lr in before)
    resumed_from = after[0][0]
    assert 0 < resumed_from <= before[-1][0] + 1 + untraced
    assert after[0][1] == reference[resumed_from]
    replay = keras_autowu.AutoWUScheduler(run["steps_per_epoch"], run["epochs"],
                                          velocity_momentum=run["velocity_momentum"], verbose=0)
    replay.observe(run["losses"])
    expected = replay.learning_rates()
    total = len(expected)
    assert [lr for step, lr in after if step < total] == pytest.approx([expected[step] for step, _ in after if step < total], rel=1e-6)
    assert all(lr == 0.0 for step, lr in after if step >= total)
    assert after[-1][0] >= total - 1, "the resumed run stopped short"


def test_killed_in_the_warmup(tmp_path, uninterrupted):
    reference, run = uninterrupted
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-step", run["switch"] // 2)
    assert_resumed_consistently(before, after, resumed, reference)


def test_killed_after_the_switch_changes_no_learning_rate(tmp_path, uninterrupted):
    reference, run = uninterrupted
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-step", run["switch"] + 15)
    assert_resumed_consistently(before, after, resumed, reference)
    assert all(lr == reference[step] for step, lr in after if step in reference)
    assert resumed["switch"] == run["switch"]


def test_a_sigterm_is_a_sigkill_with_the_backup_kept(tmp_path, uninterrupted):
    """A preemptible machine's notice, SIGTERM, ends the process at once (no handler):
    no `on_train_end` runs, so BackupAndRestore does not delete its backup as at a
    fit's end, and the resume is the same as after a SIGKILL."""
    reference, run = uninterrupted
    before, after, resumed = killed_and_resumed(
        tmp_path, "--kill-after-step", run["switch"] // 2, "--signal", "TERM", dies_of=signal.SIGTERM
    )
    assert_resumed_consistently(before, after, resumed, reference)


@pytest.mark.parametrize("after_rescue", [0, 1])
def test_killed_as_a_rescue_rolls_back(tmp_path, uninterrupted, after_rescue):
    """The run's first rescue (its trial fails) puts back a snapshot and halves the rate.
    Killed at the step whose loss decided it, when the weights were just rolled back
    (and backed up), or one step later: the resumed run makes the same rescue, and every
    step has the uninterrupted run's learning rate."""
    reference, run = uninterrupted
    assert run["rescues"], "the run is meant to rescue"
    rescue = run["rescues"][0]
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-step", rescue - 1 + after_rescue)
    assert_resumed_consistently(before, after, resumed, reference)
    assert resumed["rescues"][:1] == [rescue]
    assert all(lr == reference[step] for step, lr in after if step in reference)


@pytest.mark.parametrize("backup", ["recipe", "plain"])
def test_killed_while_the_backup_is_written(tmp_path, uninterrupted, backup):
    """Half a backup on disk. Keras 3 resumes from the backup before it, with
    double_checkpoint=True as the docs say, or without it (plain), as AutoWU turns it on
    (before, the restart failed: OSError, truncated file); so does tf_keras, whose
    checkpoint manager had not recorded the cut one."""
    if backup == "plain" and not IS_KERAS_3:
        pytest.skip("tf_keras's BackupAndRestore has no double_checkpoint")
    reference, run = uninterrupted
    options = ["--plain-backup"] if backup == "plain" else []
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-in-backup", 5, backup=options)
    # BackupAndRestore saves before the trace's callback runs: the cut save is that of
    # the step after the last traced; the resume starts after the save before it.
    cut_save_step = before[-1][0] + 1
    assert after[0][0] == cut_save_step + 1 - 7
    assert_resumed_consistently(before, after, resumed, reference)


def test_killed_while_the_first_backup_is_written(tmp_path, uninterrupted):
    """Half of the first backup on disk, none before it: the restart begins the fit
    again, the same run as the uninterrupted one (failed before on Keras 3: OSError,
    truncated file, as double_checkpoint has no backup before the first to go back to)."""
    reference, run = uninterrupted
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-in-backup", 1)
    assert before[-1][0] == 5 and after[0][0] == 0
    assert after == [(step, reference[step]) for step, _ in after]
    assert resumed["switch"] == run["switch"]


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras keeps the backup's epoch in its checkpoint, written at once")
@pytest.mark.parametrize("kill", ["--kill-after-backup-weights", "--kill-in-backup-epoch"])
def test_killed_between_the_backup_s_weights_and_its_epoch(tmp_path, uninterrupted, kill):
    """Keras 3 writes a backup's weights, then its epoch in a file beside them. Killed in
    between (the 5th backup, 35 batches in, the second epoch's 6th), the restart loads
    the new weights (optimizer step 35) with the old epoch (0), and replays the first
    epoch: AutoWU goes on from step 35. Killed as the epoch's file is opened, it is
    empty: AutoWU puts back the one before (failed before: JSONDecodeError), and the
    same holds."""
    reference, run = uninterrupted
    before, after, resumed = killed_and_resumed(tmp_path, kill, 5)
    assert before[-1][0] == 33 and after[0][0] == 35
    assert_resumed_consistently(before, after, resumed, reference, untraced=1)


def assert_factor_search_goes_on(after, resumed):
    """The resumed run keeps an update at every 29th step (each epoch's first, the
    uninterrupted run's), and every step after the restart has the rate of the resumed
    controller's updates, which the callback applies two steps after an update's step
    (its probe's result); the steps Keras replays past the run's end keep its last."""
    assert resumed["updates"] == list(range(29, 290, 29))
    rates = resumed["learning_rates"]
    assert [lr for _, lr in after] == pytest.approx([rates[min(max(step - 2, 0), len(rates) - 1)] for step, _ in after], rel=1e-6)


@pytest.mark.skipif(not IS_KERAS_3, reason="tf_keras keeps the backup's epoch in its checkpoint, written at once")
def test_factor_search_killed_between_the_backup_s_weights_and_its_epoch(tmp_path, reference_of):
    """As above, for factor search: the run in the optimizer is unfinished, so it goes on
    with its probes replayed, though the restored epoch (0) is not the one its step lies
    in (failed before: a new run at step 35, back at the initial learning rate)."""
    reference = reference_of("factor_search")
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-backup-weights", 5, scheduler="factor_search")
    assert all(lr == reference[step] for step, lr in before)
    assert before[-1][0] == 33 and after[0][0] == 35
    assert all(lr == pytest.approx(reference[step], rel=1e-6) for step, lr in after if step < 58 + 2)
    assert_factor_search_goes_on(after, resumed)


def test_factor_search_killed_during_an_update(tmp_path, reference_of):
    """Killed between an update's probe request (step 58, the third epoch's first) and
    its result (read at step 60), with a backup at each epoch's end. The resumed run
    replays the probes saved with the backup and probes step 58 again: every step
    before the kill has the uninterrupted run's learning rate, and every step after it
    the one the resumed controller's updates give it, the same as uninterrupted."""
    reference = reference_of("factor_search", "--save-freq", "epoch")
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-step", 59, "--save-freq", "epoch", scheduler="factor_search")
    assert all(lr == reference[step] for step, lr in before)
    assert before[-1][0] == 59 and after[0][0] == 58  # resumed from the backup of epoch 1's end
    assert all(lr == pytest.approx(reference[step], rel=1e-6) for step, lr in after)
    assert_factor_search_goes_on(after, resumed)


def test_factor_search_killed_within_an_epoch(tmp_path, reference_of):
    """Backups every 7 batches, killed after step 70, 12 steps into the third epoch: the
    resume starts at step 70 (the backup after 70 batches). Keras 3 replays the epoch
    from its first batch, tf_keras counts on from its 13th; either way the run's steps go on
    from the optimizer's, so the updates stay at each 29th step of the run, and every step
    before the next one has the uninterrupted run's learning rate."""
    reference = reference_of("factor_search")
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-step", 70, scheduler="factor_search")
    assert all(lr == reference[step] for step, lr in before)
    assert after[0][0] == 70
    assert all(lr == pytest.approx(reference[step], rel=1e-6) for step, lr in after if step < 87 + 2)
    assert_factor_search_goes_on(after, resumed)


def test_autolrs_killed_inside_a_stage(tmp_path, reference_of):
    """Killed in stage 1's exploration (fit steps 52-91), at fit step 60, the third
    epoch's third, with a backup at each epoch's end. The in-memory stage checkpoint
    dies with the process: the resumed run starts a new stage at the third epoch's first
    step (58), from the backup's weights, as AutoLRS says it does, and runs to the end
    with every step at its segments' learning rate; before the kill, every step has the
    uninterrupted run's."""
    reference = reference_of("autolrs", "--save-freq", "epoch", by_fit_step=True)
    before, after, resumed = killed_and_resumed(
        tmp_path, "--kill-after-fit-step", 60, "--save-freq", "epoch", scheduler="autolrs", by_fit_step=True
    )
    before = read_trace(tmp_path / "trace", by_fit_step=True)[: len(before)]
    assert all(lr == reference[step] for step, lr in before)
    start = after[0][0]
    assert start == 58
    assert resumed["first_step"] == start == resumed["stages"][0]
    rate_of = {step: lr for _, begin, end, lr in resumed["segments"] for step in range(begin, end)}
    assert [lr for _, lr in after] == pytest.approx([rate_of[step] for step, _ in after], rel=1e-6)
    assert after[-1][0] == 289


def test_autolrs_killed_within_an_epoch(tmp_path, reference_of):
    """Backups every 7 batches, killed at fit step 60: the last backup is after 56
    batches, 27 into the second epoch. Keras 3 replays that epoch from its first batch
    (fit step 29), tf_keras counts on from fit step 56. The resumed run starts a new stage
    where the fit resumes (tf_keras: it took the epoch's first step for it), and every
    step after has its segments' learning rate."""
    reference = reference_of("autolrs", by_fit_step=True)
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-after-fit-step", 60, scheduler="autolrs", by_fit_step=True)
    before = read_trace(tmp_path / "trace", by_fit_step=True)[: len(before)]
    assert all(lr == reference[step] for step, lr in before)
    start = after[0][0]
    assert start == (29 if IS_KERAS_3 else 56)
    assert resumed["first_step"] == resumed["stages"][0]
    rate_of = {step: lr for _, begin, end, lr in resumed["segments"] for step in range(begin, end)}
    assert [lr for _, lr in after] == pytest.approx([rate_of[step] for step, _ in after], rel=1e-6)
    assert after[-1][0] == 289


def test_factor_search_killed_while_the_backup_is_written(tmp_path, reference_of):
    """Half of the 5th backup (35 batches) on disk: the resume starts from the 4th, 28
    batches into the first epoch (Keras 3 replays that epoch from its first batch;
    tf_keras counts on from its 29th, with the epoch's first batch of data). The probes'
    run goes on from the saved probes: the updates stay at each 29th step, the last one
    (261) included, and every step has its run's learning rate (failed before: the first
    epoch's resume started a new run at step 28, each update 28 steps late, at 0.05
    where the run had 0.041, and tf_keras lost the update at 261)."""
    reference = reference_of("factor_search")
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-in-backup", 5, scheduler="factor_search")
    assert all(lr == reference[step] for step, lr in before)
    assert before[-1][0] == 33 and after[0][0] == 28
    # Up to the first update after the resume (applied 2 steps after its step): its probe
    # at step 29 sees other weights or data than the uninterrupted run's, as both Kerases
    # feed the resumed epoch from its first batch, so from there on the run is its own.
    assert all(lr == pytest.approx(reference[step], rel=1e-6) for step, lr in after if step < 29 + 2)
    assert_factor_search_goes_on(after, resumed)


def test_autolrs_killed_while_the_backup_is_written(tmp_path, reference_of):
    """Half of the 9th backup (63 batches) on disk: the resume starts from the 8th, 56
    batches in, 27 into the second epoch (Keras 3 replays it from fit step 29, tf_keras
    counts on from 56). The resumed run starts a new stage there, and every step has its
    segments' learning rate to the fit's end."""
    reference = reference_of("autolrs", by_fit_step=True)
    before, after, resumed = killed_and_resumed(tmp_path, "--kill-in-backup", 9, scheduler="autolrs", by_fit_step=True)
    before = read_trace(tmp_path / "trace", by_fit_step=True)[: len(before)]
    assert all(lr == reference[step] for step, lr in before)
    assert before[-1][0] == 61
    start = after[0][0]
    assert start == (29 if IS_KERAS_3 else 56)
    assert resumed["first_step"] == start == resumed["stages"][0]
    rate_of = {step: lr for _, begin, end, lr in resumed["segments"] for step in range(begin, end)}
    assert [lr for _, lr in after] == pytest.approx([rate_of[step] for step, _ in after], rel=1e-6)
    assert after[-1][0] == 289
