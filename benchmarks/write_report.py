"""Writes docs/benchmarks.md and its plots from the benchmarks' outputs.

Reads the paper-claim benchmark's JSON, and the printed output of the latency and
overhead benchmarks from the same folder (`make bench` writes all three).

    python benchmarks/write_report.py docs/benchmarks/paper_claim.json [--out docs]
"""

import argparse
import json
import pathlib
import platform

import numpy as np
from matplotlib.figure import Figure

METHOD_LABELS = {
    "autowu": "AutoWU (no tuning)",
    "tuned@smallest": "warmup+cosine, tuned at the smallest batch, sqrt-scaled",
    "tuned@each": "warmup+cosine, tuned at every batch size",
    "plateau": "ReduceLROnPlateau from the sqrt-scaled LR",
    "constant": "constant sqrt-scaled LR",
}


def accuracy_table(result):
    batch_sizes = result["batch_sizes"]
    lines = [
        "| method | training runs | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in batch_sizes) + " |",
    ]
    for name, method in result["methods"].items():
        cells = []
        for b in batch_sizes:
            accuracies = [run["accuracy"] for run in method["runs"][str(b)]]
            cells.append(f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}")
        lines.append(f"| {METHOD_LABELS[name]} | {method['training_runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def autowu_table(result):
    lines = [
        "| batch | AutoWU's LR (mean over seeds) | switch step / run's steps | accuracy per seed | tuned peak LR at this batch |",
        "| --- | --- | --- | --- | --- |",
    ]
    tuned = result["methods"]["tuned@each"]["peak_lr"]
    for b in result["batch_sizes"]:
        runs = result["methods"]["autowu"]["runs"][str(b)]
        switches = ", ".join("cap" if r["switch_step"] is None else str(r["switch_step"]) for r in runs)
        accuracies = ", ".join(f"{r['accuracy']:.3f}" for r in runs)
        lines.append(
            f"| {b} | {np.mean([r['found_lr'] for r in runs]):.4g} | {switches} / {runs[0]['total_steps']} "
            f"| {accuracies} | {tuned[str(b)]:.4g} |"
        )
    return "\n".join(lines)


# How close counts as "matched", and how low counts as a dead network (10 classes).
MATCH_POINTS = 0.015
DEAD_ACCURACY = 0.5


def verdict(result):
    """Where AutoWU matched the per-batch-tuned schedule, how many runs died, and its LR against the tuned one."""
    methods = result["methods"]
    matched, lr_ratios = [], {True: [], False: []}  # AutoWU's LR / the tuned peak, by "died"
    for b in result["batch_sizes"]:
        runs = methods["autowu"]["runs"][str(b)]
        tuned = np.mean([r["accuracy"] for r in methods["tuned@each"]["runs"][str(b)]])
        if np.mean([r["accuracy"] for r in runs]) >= tuned - MATCH_POINTS:
            matched.append(str(b))
        for r in runs:
            lr_ratios[r["accuracy"] < DEAD_ACCURACY].append(r["found_lr"] / methods["tuned@each"]["peak_lr"][str(b)])
    dead, runs_in_all = len(lr_ratios[True]), len(lr_ratios[True]) + len(lr_ratios[False])
    if not matched:
        where = "at no batch size"
    elif len(matched) == 1:
        where = f"at batch {matched[0]}"
    else:
        where = "at batches " + ", ".join(matched[:-1]) + " and " + matched[-1]
    return (
        f"AutoWU's mean accuracy is within {MATCH_POINTS * 100:.1f} points of the schedule tuned at every "
        f"batch size {where}; {dead} of its {runs_in_all} runs ended below {DEAD_ACCURACY:.0%} accuracy "
        f"(the network died).{lr_ratio_sentence(lr_ratios)}"
    )


def lr_ratio_sentence(lr_ratios):
    parts = [
        f"{np.median(lr_ratios[died]):.1f}x in the runs that {'died' if died else 'trained'}"
        for died in (False, True) if lr_ratios[died]
    ]
    return " AutoWU's LR against the tuned peak LR at the same batch: a median of " + " and ".join(parts) + "."


def plot_accuracy(results, path):
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (optimizer, result) in zip(axes, results.items()):
        for name, method in result["methods"].items():
            means = [np.mean([r["accuracy"] for r in method["runs"][str(b)]]) for b in result["batch_sizes"]]
            spreads = [np.std([r["accuracy"] for r in method["runs"][str(b)]]) for b in result["batch_sizes"]]
            ax.errorbar(result["batch_sizes"], means, spreads, label=name, marker="o", capsize=3, lw=2 if name == "autowu" else 1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("validation accuracy")
        ax.set_title(optimizer.upper())
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_found_lr(results, path):
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (optimizer, result) in zip(axes, results.items()):
        batch_sizes = np.array(result["batch_sizes"])
        found = [[r["found_lr"] for r in result["methods"]["autowu"]["runs"][str(b)]] for b in batch_sizes]
        for b, lrs in zip(batch_sizes, found):
            ax.scatter([b] * len(lrs), lrs, color="C0", s=15)
        means = np.array([np.mean(lrs) for lrs in found])
        slope, intercept = np.polyfit(np.log(batch_sizes), np.log(means), 1)
        ax.plot(batch_sizes, np.exp(intercept) * batch_sizes**slope, color="C0", label=f"AutoWU, slope {slope:.2f}")
        tuned = [result["methods"]["tuned@each"]["peak_lr"][str(b)] for b in batch_sizes]
        ax.plot(batch_sizes, tuned, "s--", color="C1", label="grid-tuned peak LR")
        ax.plot(batch_sizes, means[0] * np.sqrt(batch_sizes / batch_sizes[0]), ":", color="gray", label="sqrt scaling")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("learning rate")
        ax.set_title(optimizer.upper())
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_runs(results, batch_size, path):
    """Seed 0's learning rate and loss per step, every method, at one batch size."""
    fig = Figure(figsize=(9, 6))
    axes = fig.subplots(2, len(results), squeeze=False, sharex="col")
    for column, (optimizer, result) in enumerate(results.items()):
        for name, method in result["methods"].items():
            run = method["runs"][str(batch_size)][0]
            axes[0, column].plot(run["learning_rates"], label=name, lw=1)
            losses = np.asarray(run["losses"])
            smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
            axes[1, column].plot(smooth, label=name, lw=1)
        axes[0, column].set_yscale("log")
        axes[0, column].set_title(f"{optimizer.upper()}, batch {batch_size}")
        axes[0, column].set_ylabel("learning rate")
        axes[1, column].set_ylabel("training loss (10-step mean)")
        axes[1, column].set_xlabel("step")
        axes[1, column].set_ylim(0, 2.5)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper_claim_json")
    parser.add_argument("--out", default="docs")
    parser.add_argument("--machine", default=f"{platform.machine()}, {platform.processor() or 'CPU'}")
    args = parser.parse_args()
    results = json.loads(pathlib.Path(args.paper_claim_json).read_text())
    seconds = results.pop("seconds")
    out = pathlib.Path(args.out)
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    plot_accuracy(results, out / "benchmarks" / "accuracy_vs_batch.png")
    plot_found_lr(results, out / "benchmarks" / "autowu_lr_vs_batch.png")
    middle = next(iter(results.values()))["batch_sizes"][len(next(iter(results.values()))["batch_sizes"]) // 2]
    plot_runs(results, middle, out / "benchmarks" / "schedules_and_losses.png")
    sections = []
    for optimizer, result in results.items():
        sections.append(
            f"### {optimizer.upper()}\n\nValidation accuracy, mean ± standard deviation over seeds "
            f"{result['seeds']}, {result['epochs']} epochs at every batch size:\n\n{accuracy_table(result)}\n\n"
            f"AutoWU's learning rate against the batch size: log-log slope "
            f"**{result['autowu_lr_slope']:.2f}** (square-root scaling: 0.5).\n\n{autowu_table(result)}\n\n"
            f"{verdict(result)}\n"
        )
    folder = pathlib.Path(args.paper_claim_json).parent
    printed = {
        name: (folder / f"{name}.txt").read_text().strip() if (folder / f"{name}.txt").exists() else "(not run)"
        for name in ("gp_test_latency", "training_overhead")
    }
    text = TEMPLATE.format(
        machine=args.machine, minutes=seconds / 60, sections="\n".join(sections), middle=middle, **printed,
    )
    (out / "benchmarks.md").write_text(text)
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks'}/*.png")


TEMPLATE = """# Benchmarks

Regenerate everything here with `make bench` (under an hour on 2 CPU cores).
Machine: {machine}.

## 1. The GP test's latency

`python benchmarks/gp_test_latency.py`: milliseconds per test (subsampling, conversion
and the compiled test) against the number of recorded losses; goal: median 5 ms or less.

```
{gp_test_latency}
```

## 2. Training overhead

`python benchmarks/training_overhead.py`: the same model with AutoWU and on Keras's
CosineDecay with warmup, in one process; goal: ratio 1.01 or less. AutoWU costs in two
places, and the script measures them apart:

- **Per step**, a few ops in the compiled train step (look up the learning rate,
  record the loss). The first table times the train functions alone, alternating on
  one epoch's worth of steps, 100 pairs: the median of the paired ratios.
- **Per test**, at the end of each warmup epoch until the warmup ends: the GP test,
  reading the new losses and copying the weights for the roll-back. The second table
  alternates two whole `fit` calls epoch by epoch (two threads handing a baton over):
  the ratio over epochs without a test, the extra milliseconds of an epoch with one,
  how many tests a run made, and the ratio of whole runs. On this shared 2-core
  machine an epoch's time moves by a few % from one epoch to the next, so the second
  table's ratios carry that noise; the first is the precise figure for the per-step
  cost.

```
{training_overhead}
```

## 3. The paper's claim: AutoWU without tuning against tuned schedules

`python benchmarks/paper_claim.py` ({minutes:.0f} minutes). scikit-learn's digits (1,437
training images, each also shifted by one pixel right and down; 360 validation
images), a small CNN, the same epoch budget at every batch size. The baselines'
peak learning rates come from a grid search (seed 0); "training runs" counts the
tuning runs plus one run per batch size. AutoWU keeps its defaults but tests every
1/20 of its longest warmup: per-epoch tests, at most one per epoch of the warmup's
longest (half the run), are too few for three positives in a row in runs this short.
"cap": the warmup ran to its longest without a switch.

{sections}
![accuracy against batch size](benchmarks/accuracy_vs_batch.png)

![AutoWU's learning rate against batch size](benchmarks/autowu_lr_vs_batch.png)

Seed 0 at batch {middle}: each method's learning rate and training loss per step.

![schedules and losses](benchmarks/schedules_and_losses.png)
"""


if __name__ == "__main__":
    main()
