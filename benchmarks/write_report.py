"""Writes docs/benchmarks.md and its plots from the benchmarks' outputs.

Reads the paper-claim benchmark's JSON files (one per data set), the hand-over
candidates' JSON files when present, and the printed output of the latency and
overhead benchmarks from the same folder (`make bench` writes them all).

    python benchmarks/write_report.py docs/benchmarks/paper_claim_*.json [--out docs]
"""

import argparse
import json
import pathlib
import platform

import numpy as np
from matplotlib.figure import Figure

METHOD_LABELS = {
    "autowu": "AutoWU (no tuning; default `lr_choice`)",
    "autowu-gp_minimum": "AutoWU, `lr_choice=\"gp_minimum\"` (the reference's hand-over)",
    "autowu-lag_corrected": "AutoWU, `lr_choice=\"lag_corrected\"`",
    "autowu-paper": "AutoWU with the paper's settings (per-epoch tests, no progress rule, guard or roll-back)",
    "autowu-gp_minimum/4": "AutoWU, `lr_choice=\"gp_minimum/4\"`",
    "autowu-steepest": "AutoWU, `lr_choice=\"steepest\"`",
    "autowu-drop_share": "AutoWU, `lr_choice=\"drop_share\"`",
    "tuned@smallest": "warmup+cosine, tuned at the smallest batch, sqrt-scaled",
    "tuned@each": "warmup+cosine, tuned at every batch size",
    "schedule_free": "ScheduleFreeAdamW at its default LR (0.0025)",
}
# How close counts as "matched" (the target), and how low counts as a dead network (10 classes).
MATCH_POINTS = 0.010
DEAD_ACCURACY = 0.5


def mean_accuracy(method, batch_size):
    return float(np.mean([r["accuracy"] for r in method["runs"][str(batch_size)]]))


def accuracy_table(result, schedule_free=None):
    batch_sizes = result["batch_sizes"]
    lines = [
        "| method | training runs | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in batch_sizes) + " |",
    ]
    order = list(METHOD_LABELS)
    rows = sorted(result["methods"].items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    rows += [("schedule_free", schedule_free)] if schedule_free else []
    for name, method in rows:
        cells = []
        for b in batch_sizes:
            runs = method["runs"][str(b)]
            accuracies = [run["accuracy"] for run in runs]
            dead = sum(a < DEAD_ACCURACY for a in accuracies)
            cells.append(f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}" + (f" ({dead} dead)" if dead else ""))
        lines.append(f"| {METHOD_LABELS.get(name, name)} | {method['training_runs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def autowu_table(result, name="autowu"):
    lines = [
        "| batch | hand-over LR per seed | the GP's minimum per seed | switch step / run's steps | rescues | accuracy per seed | tuned peak LR |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    tuned = result["methods"]["tuned@each"]["peak_lr"]
    for b in result["batch_sizes"]:
        runs = result["methods"][name]["runs"][str(b)]
        lrs = ", ".join(f"{r['found_lr']:.3g}" for r in runs)
        minima = ", ".join("-" if r["gp_minimum_lr"] is None else f"{r['gp_minimum_lr']:.3g}" for r in runs)
        switches = ", ".join(
            ("cap" if r["switch_step"] is None else str(r["switch_step"])) + (" (diverged)" if r["diverged_in_warmup"] else "")
            for r in runs
        )
        rescues = ", ".join(str(r["rescues"]) for r in runs)
        accuracies = ", ".join(f"{r['accuracy']:.3f}" for r in runs)
        lines.append(
            f"| {b} | {lrs} | {minima} | {switches} / {runs[0]['total_steps']} | {rescues} | {accuracies} | {tuned[str(b)]:.4g} |"
        )
    return "\n".join(lines)


def verdict(result):
    """Where AutoWU matched the per-batch-tuned schedule, dead runs, rescues, the largest batch."""
    methods, batch_sizes = result["methods"], result["batch_sizes"]
    matched = [b for b in batch_sizes if mean_accuracy(methods["autowu"], b) >= mean_accuracy(methods["tuned@each"], b) - MATCH_POINTS]
    runs = [r for b in batch_sizes for r in methods["autowu"]["runs"][str(b)]]
    dead = sum(r["accuracy"] < DEAD_ACCURACY for r in runs)
    rescued = sum(r["rescues"] > 0 for r in runs)
    reference_runs = [r for b in batch_sizes for r in methods["autowu-paper"]["runs"][str(b)]] if "autowu-paper" in methods else []
    largest = batch_sizes[-1]
    ahead = mean_accuracy(methods["autowu"], largest) - mean_accuracy(methods["tuned@smallest"], largest)
    where = ", ".join(str(b) for b in matched) if matched else "none"
    sentence = (
        f"AutoWU's mean accuracy is within {MATCH_POINTS * 100:.1f} point of the schedule tuned at every batch size "
        f"at batch sizes: {where} (of {', '.join(map(str, batch_sizes))}). {dead} of its {len(runs)} runs ended below "
        f"{DEAD_ACCURACY:.0%} accuracy; a rescue fired in {rescued}. At the largest batch it is "
        f"{abs(ahead) * 100:.1f} points {'ahead of' if ahead >= 0 else 'behind'} the sqrt-scaled baseline."
    )
    if reference_runs:
        reference_dead = sum(r["accuracy"] < DEAD_ACCURACY for r in reference_runs)
        sentence += f" With the paper's settings, {reference_dead} of {len(reference_runs)} runs ended below {DEAD_ACCURACY:.0%}."
    return sentence


def same_seed_runs(method, seeds, from_seeds):
    """A method's runs restricted to the given seeds (each batch's runs are in from_seeds' order)."""
    positions = [from_seeds.index(seed) for seed in seeds]
    return {"runs": {b: [runs[i] for i in positions] for b, runs in method["runs"].items()}}


def handover_table(candidates, datasets):
    """Each lr_choice's mean accuracy, and its mean gap to tuned@each, per data set and optimizer.

    The "default" column is section 3's runs of today's defaults on the same seeds, so that
    every candidate is read against what AutoWU does now, not only against the reference.
    """
    ran = {n for result in candidates.values() for res in result.values() if isinstance(res, dict) for n in res.get("methods", {})}
    names = ["default"] + [n for n in METHOD_LABELS if n.startswith("autowu-") and n != "autowu-paper" and n in ran]
    lines = ["| data, optimizer | batch | " + " | ".join(f"`{n.split('-', 1)[1]}`" if "-" in n else n for n in names) + " | tuned@each |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]
    gaps = {n: [] for n in names}
    dead = {n: 0 for n in names}
    for data, result in candidates.items():
        for optimizer, res in result.items():
            if optimizer in ("schedule_free", "train_samples", "validation_samples"):
                continue
            methods = dict(res["methods"])
            section3 = datasets.get(data, {}).get(optimizer)
            if section3 and set(res["seeds"]) <= set(section3["seeds"]):
                methods["default"] = same_seed_runs(section3["methods"]["autowu"], res["seeds"], section3["seeds"])
            for b in res["batch_sizes"]:
                tuned = mean_accuracy(methods["tuned@each"], b)
                cells = []
                for n in names:
                    if n not in methods:
                        cells.append("-")
                        continue
                    accuracy = mean_accuracy(methods[n], b)
                    gaps[n].append(tuned - accuracy)
                    dead[n] += sum(r["accuracy"] < DEAD_ACCURACY for r in methods[n]["runs"][str(b)])
                    cells.append(f"{accuracy:.3f}")
                lines.append(f"| {data}, {optimizer.upper()} | {b} | " + " | ".join(cells) + f" | {tuned:.3f} |")
    lines.append("| **mean gap to tuned@each (points)** | | " + " | ".join(
        f"**{100 * np.mean(gaps[n]):.1f}**" if gaps[n] else "-" for n in names) + " | |")
    lines.append("| **runs below 50 %** | | " + " | ".join(str(dead[n]) for n in names) + " | |")
    return "\n".join(lines)


def plot_accuracy(datasets, path):
    panels = [(d, o, r) for d, res in datasets.items() for o, r in optimizer_results(res)]
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, optimizer, result) in zip(axes, panels):
        for name, method in result["methods"].items():
            means = [mean_accuracy(method, b) for b in result["batch_sizes"]]
            spreads = [np.std([r["accuracy"] for r in method["runs"][str(b)]]) for b in result["batch_sizes"]]
            ax.errorbar(result["batch_sizes"], means, spreads, label=name, marker="o", capsize=3, lw=2 if name == "autowu" else 1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{data}, {optimizer.upper()}")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_found_lr(datasets, path):
    panels = [(d, o, r) for d, res in datasets.items() for o, r in optimizer_results(res)]
    fig = Figure(figsize=(4.2 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, optimizer, result) in zip(axes, panels):
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
        ax.set_title(f"{data}, {optimizer.upper()}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def plot_runs(datasets, path):
    """Seed 0's learning rate and loss per step, every method, at each panel's middle batch."""
    panels = [(d, o, r) for d, res in datasets.items() for o, r in optimizer_results(res)]
    fig = Figure(figsize=(4.2 * len(panels), 6))
    axes = fig.subplots(2, len(panels), squeeze=False)
    for column, (data, optimizer, result) in enumerate(panels):
        batch_size = result["batch_sizes"][len(result["batch_sizes"]) // 2]
        for name, method in result["methods"].items():
            run = method["runs"][str(batch_size)][0]
            if "learning_rates" not in run:
                continue
            axes[0, column].plot(run["learning_rates"], label=name, lw=1)
            smooth = np.convolve(np.asarray(run["losses"]), np.ones(10) / 10, mode="valid")
            axes[1, column].plot(smooth, label=name, lw=1)
        axes[0, column].set_yscale("log")
        axes[0, column].set_title(f"{data}, {optimizer.upper()}, batch {batch_size}")
        axes[0, column].set_ylabel("learning rate")
        axes[1, column].set_ylabel("training loss (10-step mean)")
        axes[1, column].set_xlabel("step")
        axes[1, column].set_ylim(0, 2.5)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def flat_start_table(flat_start, datasets):
    """The fast climb (the default) against the steady climb at every cell, with the
    tuned schedule of section 3, the switch's share of the run and the rescues."""
    lines = [
        "| data, optimizer | batch | fast climb (default) | steady climb | tuned@each | switch at (share of the run), fast / steady | runs rescued, fast / steady |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    within = {"autowu": 0, "autowu:flat_start_speedup=1": 0}
    dead = dict.fromkeys(within, 0)
    cells = 0
    for data, result in flat_start.items():
        for optimizer, res in optimizer_results(result):
            methods = res["methods"]
            tuned_methods = datasets.get(data, {}).get(optimizer, {}).get("methods", {})
            for b in res["batch_sizes"]:
                tuned = mean_accuracy(tuned_methods["tuned@each"], b) if "tuned@each" in tuned_methods else float("nan")
                row, shares, rescued = [], [], []
                for name in within:
                    runs = methods[name]["runs"][str(b)]
                    accuracies = [r["accuracy"] for r in runs]
                    within[name] += np.mean(accuracies) >= tuned - MATCH_POINTS
                    dead[name] += sum(a < DEAD_ACCURACY for a in accuracies)
                    row.append(f"{np.mean(accuracies):.3f} ± {np.std(accuracies):.3f}")
                    steps = [r["switch_step"] or r["total_steps"] // 2 for r in runs]
                    shares.append(f"{np.mean(steps) / runs[0]['total_steps']:.0%}")
                    rescued.append(str(sum(r["rescues"] > 0 for r in runs)))
                cells += 1
                lines.append(
                    f"| {data}, {optimizer.upper()} | {b} | {row[0]} | {row[1]} | {tuned:.3f} | "
                    f"{' / '.join(shares)} | {' / '.join(rescued)} |"
                )
    summary = (
        f"Within {MATCH_POINTS * 100:.0f} point of tuned@each: the fast climb in {within['autowu']} of {cells} cells, "
        f"the steady climb in {within['autowu:flat_start_speedup=1']}. Runs below {DEAD_ACCURACY:.0%}: "
        f"{dead['autowu']} and {dead['autowu:flat_start_speedup=1']}."
    )
    return "\n".join(lines) + "\n\n" + summary


def optimizer_results(result):
    return [(k, v) for k, v in result.items() if isinstance(v, dict) and "methods" in v]


def result_lines(folder, name):
    """The accuracy lines of paper_claim.py's printed output, both data sets."""
    paths = [folder / f"{name}_{data}.txt" for data in ("digits", "mnist1d")]
    return "\n".join(
        line for path in paths if path.exists() for line in path.read_text().splitlines()
        if line.startswith(("digits ", "mnist1d ")) and "log-log" not in line
    )


def seed_list(datasets):
    """The seeds of section 3's runs, as "0, 1 and 2"."""
    seeds = sorted({s for result in datasets.values() for _, res in optimizer_results(result) for s in res["seeds"]})
    return ", ".join(map(str, seeds[:-1])) + f" and {seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def updated_note(updates):
    """Says which rows were rerun alone since the full run (`make bench-autowu`)."""
    if not updates:
        return ""
    methods = list(dict.fromkeys(m for update in updates for m in update["methods"]))
    minutes = max(update["seconds"] for update in updates) / 60
    return (
        f"; the rows of {', '.join(f'`{m}`' for m in methods)} were rerun alone after changes to "
        f"AutoWU (`paper_claim.py --update`, as `make bench-autowu` does; at most {minutes:.0f} "
        "minutes), the other rows kept"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper_claim_json", nargs="+")
    parser.add_argument("--handover-json", nargs="*", default=[])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--machine", default=f"{platform.machine()}, {platform.processor() or 'CPU'}")
    args = parser.parse_args()
    datasets, minutes, updates = {}, [], []
    for path in args.paper_claim_json:
        results = json.loads(pathlib.Path(path).read_text())
        minutes.append(results["seconds"] / 60)
        updates += results.get("updates", [])
        datasets.update(results["datasets"])
    out = pathlib.Path(args.out)
    (out / "benchmarks").mkdir(parents=True, exist_ok=True)
    plot_accuracy(datasets, out / "benchmarks" / "accuracy_vs_batch.png")
    plot_found_lr(datasets, out / "benchmarks" / "autowu_lr_vs_batch.png")
    plot_runs(datasets, out / "benchmarks" / "schedules_and_losses.png")
    sections = []
    for data, result in datasets.items():
        sections.append(f"### {data} ({result['train_samples']:,} training samples, {result['validation_samples']:,} validation samples)\n")
        for optimizer, res in optimizer_results(result):
            sections.append(
                f"#### {data}, {optimizer.upper()}\n\nValidation accuracy, mean ± standard deviation over seeds "
                f"{res['seeds']}, {res['epochs']} epochs at every batch size:\n\n"
                f"{accuracy_table(res, result.get('schedule_free'))}\n\n"
                f"AutoWU's learning rate against the batch size: log-log slope **{res['autowu_lr_slope']:.2f}** "
                f"(square-root scaling: 0.5).\n\n{autowu_table(res)}\n\n{verdict(res)}\n"
            )
    handover = {}
    for path in args.handover_json:
        handover.update(json.loads(pathlib.Path(path).read_text())["datasets"])
    folder = pathlib.Path(args.paper_claim_json[0]).parent
    printed = {
        name: (folder / f"{name}.txt").read_text().strip() if (folder / f"{name}.txt").exists() else "(not run)"
        for name in ("gp_test_latency", "training_overhead")
    }
    for name in ("factor_search_digits", "factor_search_mnist1d", "factor_search_cost"):
        path = folder / f"{name}.txt"
        printed[name] = path.read_text().strip() if path.exists() else "(run `make bench-factor-search`)"
    for name in ("autolrs_digits", "autolrs_mnist1d", "autolrs_transformer"):
        path = folder / f"{name}.txt"
        printed[name] = path.read_text().strip() if path.exists() else "(run `make bench-autolrs`)"
    printed["warmup_start"] = result_lines(folder, "warmup_start") or "(run `make bench-warmup`)"
    flat_start = {}
    for path in sorted(folder.glob("flat_start_*.json")):
        flat_start.update(json.loads(path.read_text())["datasets"])
    printed["flat_start"] = flat_start_table(flat_start, datasets) if flat_start else "(run `make bench-flat-start`)"
    printed["handover_half"] = result_lines(folder, "handover_half") or "(run `make bench-handover-half`)"
    gap_files = [folder / f"large_batch_gap_{run}.txt" for run in ("mnist1d", "digits", "mnist1d_sgd", "digits_sgd", "mnist1d_512", "digits_128")]
    printed["large_batch_gap"] = "\n\n".join(
        f.read_text().strip() for f in gap_files if f.exists()
    ) or "(run `make bench-large-batch-gap`)"
    nine_seeds = [result_lines(folder, f"{optimizer}_nine_seeds") for optimizer in ("lamb", "sgd")]
    printed["nine_seeds"] = "\n".join(filter(None, nine_seeds)) or "(run `make bench-nine-seeds`)"
    path = folder / "user_fits.txt"
    printed["user_fits"] = path.read_text().strip() if path.exists() else "(run `make bench-user-fits`)"
    text = TEMPLATE.format(
        machine=args.machine, minutes=max(minutes), seeds=seed_list(datasets), updated=updated_note(updates), sections="\n".join(sections),
        handover=handover_table(handover, datasets) if handover else "(run `make bench-handover`)", **printed,
    )
    (out / "benchmarks.md").write_text(text)
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks'}/*.png")


TEMPLATE = """# Benchmarks

Regenerate everything here with `make bench` (54 minutes on 2 CPU cores, seeds 0 to 2), and the
hand-over candidates of section 4 with `make bench-handover` (about 20 minutes).
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
- **Per test**, at each test interval: the GP test in the warmup, the guard's check
  after it, reading the new losses and copying the weights for the roll-back. The
  second table alternates two whole `fit` calls epoch by epoch (two threads handing a
  baton over): the ratio over epochs without a test, the extra milliseconds of an
  epoch with one, how many tests a run made, and the ratio of whole runs. On this
  shared 2-core machine an epoch's time moves by a few % from one epoch to the next,
  so the second table's ratios carry that noise; the first is the precise figure for
  the per-step cost.

```
{training_overhead}
```

## 3. The paper's claim: AutoWU without tuning against tuned schedules

`python benchmarks/paper_claim.py --data digits` and `--data mnist1d`, side by side with
one thread each (the longer took {minutes:.0f} minutes){updated}. Two data sets made locally:
scikit-learn's digits (each training image also shifted by one pixel right and down)
with a small CNN, and MNIST-1D (`mnist1d.data.make_dataset`, 25,000 samples) with a
small 1-D CNN; the same 20-epoch budget at every batch size, seeds {seeds} (`make bench
SEEDS="0 1 2 3 4"` runs five, in about twice the time: which cell is the one more than a
point behind the tuned schedule moves with the seeds, from MNIST-1D with SGD at batch
1024 with three to batch 512 with five; at 1024, over nine seeds (`make
bench-nine-seeds`, section 5), AutoWU had 0.913 ± 0.022 against 0.904 ± 0.120 for the
grid's pick, 0.3; an earlier nine-seed run had 0.927 ± 0.011 at 0.1). The baselines' peak
learning rates come from a grid search (seed 0); "training runs" counts the tuning
runs plus one run per batch size. AutoWU runs with its defaults
(`lr_choice="momentum_corrected"`), with the reference's hand-over
(`lr_choice="gp_minimum"`; the defaults otherwise), and with the paper's settings: a test per epoch, the GP alone deciding, no guard after the
warmup and no roll-back. LAMB keeps no velocity, so there the defaults hand on the GP's
minimum too: its `gp_minimum` row is the defaults' runs, which the benchmark reuses
(`--quick` runs them again and checks that they agree). A baseline whose epoch loss
turns NaN stops there: its weights would stay NaN, so its accuracy is the full run's. The
baselines run 16 steps per `fit` call (`steps_per_execution`), which changes no result
(their schedules depend on the step count alone); AutoWU's runs keep fit's default, 1. Keras's ScheduleFreeAdamW is
evaluated at its training weights, as `fit` leaves them. "cap": the warmup ran to its
longest without a switch; "diverged": the warmup ended on a diverging loss; "rescues":
how often the guard halved the learning rate after the warmup (a divergence, a drift, or
a hand-over that failed its trial).

{sections}
![accuracy against batch size](benchmarks/accuracy_vs_batch.png)

![AutoWU's learning rate against batch size](benchmarks/autowu_lr_vs_batch.png)

Seed 0 at each panel's middle batch size: each method's learning rate and training
loss per step.

![schedules and losses](benchmarks/schedules_and_losses.png)

## 4. Choosing the hand-over learning rate

Sections 4 and 5 ran while the default hand-over was the GP's minimum (`"gp_minimum"`):
their "defaults" and `autowu` rows hand on the minimum. With LAMB these are the same
runs as today's defaults; with SGD today's defaults are section 3's.

`make bench-handover`: the `lr_choice` candidates (see `keras_autowu/handover.py`) on
both data sets, SGD and LAMB, three batch sizes, seeds 0 and 1, against warmup+cosine
tuned at every batch size. The `lag_corrected` column ran later, with section 3's
defaults otherwise (`paper_claim.py --update`; it had been a row of section 3). The
"default" column is section 3's runs of today's defaults on the same seeds. The other
columns, `lag_corrected` aside, ran on older code (before the test at the warmup's cap
and the hand-over's trial): that is why, with LAMB, where the default hands on the GP's
minimum too, the default and `gp_minimum` columns differ. Mean validation accuracy:

{handover}

Halving the learning rate at the minimum is the mildest of these departures. `make
bench-handover-half` runs it next to the defaults at all five batch sizes, seeds 0, 1
and 2 (validation accuracy, mean ± standard deviation; in brackets, how many of the
three runs needed a rescue):

```
{handover_half}
```

It is no default either. With LAMB on digits it puts every batch size within 0.5
points of the tuned schedule (the defaults trail it by 1.1 and 1.7 points at batches
128 and 256), but it loses with SGD on both data sets (MNIST-1D at batch 1024: 0.849
against 0.915) and with LAMB on MNIST-1D at the large batches (0.875 against 0.934 at
batch 2048). Which side of the GP minimum the best learning rate lies on depends on the
data, not on the optimizer: on MNIST-1D the hand-over is already close to the tuned
peak (with LAMB at batches 1024 and 2048, 0.031 to 0.043 against 0.03; with SGD at
batch 1024, 0.14 to 0.17 against 0.3), and what the large batches lack is steps
(section 5), while on digits with LAMB it is about twice too high. A fixed factor cannot
serve both. What the optimizer's update rule does fix is SGD's lag: its velocity sums
learning rate x gradient, so the steps at the GP's minimum were those of the
momentum-weighted average of the climb, not of the minimum's learning rate.
`lr_choice="momentum_corrected"`, the default since these runs, hands on that average
(section 3: its rows against `"gp_minimum"`); with LAMB it is the minimum itself.

## 5. Where the warmup starts, and what follows the switch

At the largest batches the run is short (180 to 400 steps) and AutoWU trailed the tuned
schedule most. Its exponential warmup climbs five decades, from `min_lr=1e-5`, over at
most half the run, and the steps far below the hand-over learning rate barely train:
at a steady pace the switch came after 45 to 50 % of the run in every cell of section
3, and the cosine from the switch had the rest, where the tuned schedule has 90 %. This
section compares ways to spend less of the run at a low learning rate; the last, the
fast climb over a flat start, became the default (the switch now comes after 23 to 30
%). The first two:

- a higher start with a shorter cap, which keeps the same 20 steps per decade near the
  hand-over and spends fewer below it;
- `immediate_cooldown=False`: the hand-over learning rate held until the last 20 % of
  the run, then the cosine (the reference's option), instead of a cosine from the switch.

`make bench-warmup` runs the defaults and these settings at the large batches (seeds 0,
1, 2; validation accuracy, mean ± standard deviation; in brackets, how many of the three
runs needed a rescue):

```
{warmup_start}
```

Against the schedule tuned at every batch size (section 3), the start at `1e-3` closes
the gap with LAMB on MNIST-1D and nearly with SGD at batch 1024, but it brings back
what the defaults exist to prevent: with SGD at the largest batches one run in three
ended far below the others (digits, batch 512; MNIST-1D, batch 2048, after five
rescues). The start at `1e-4` helps digits with SGD at batch 512 and loses on MNIST-1D
at batch 2048. No start wins everywhere, so the defaults stay (`min_lr=1e-5`,
`max_warmup_fraction=0.5`); a run known to be short and on LAMB or Adam may pass the
higher start.

Holding the hand-over learning rate helps where the run is starved of steps (MNIST-1D
with SGD: 0.938 against 0.912 at batch 1024, 0.779 against 0.701 at 2048; the tuned
schedule has 0.940 and 0.807) and loses where the hand-over learning rate is too high
to hold: the guard rescued 8 of the 9 digits LAMB runs, and at batch 512 it ends at
0.958 against 0.984. Within 1 point of the tuned schedule it puts 5 of these 10 cells,
against 4 for the defaults, at the price of many more rescues, so the default stays
the cosine from the switch.

### The fast climb over a flat start (the default)

What the start needs is not a fixed higher `min_lr` but a climb that does not linger
where the loss does not move. While the loss has not moved from its first test
interval's level (by 0.5 % of it and by five standard errors of batch noise;
`keras_autowu/flat_start.py`), the warmup climbs four times faster
(`flat_start_speedup=4`), over at most its first three decades; at the first check
where the loss has moved (four checks per test interval) it goes on at the steady pace
from where it is. A run that learns from the first steps loses nothing, and a flat
start costs a quarter of the steps. `make bench-flat-start` runs the defaults and the
steady climb (`flat_start_speedup=1`, the reference's) at every cell of section 3,
seeds 0, 1 and 2; the tuned schedule's figures are section 3's:

{flat_start}

The switch comes after a quarter to a third of the run instead of a half, and the
cosine from it has the rest. The fast climb gains most where the steady one starved
the run of steps: 7.4 points with SGD on MNIST-1D at batch 2048, 2.8 at 1024, 3.7 with
SGD on the digits at 512, 1.3 with LAMB on MNIST-1D at 2048. It loses 0.2 to 0.6
points in 6 of the 20 cells: the digits with SGD at batches 32 and 128 and with LAMB at
64, MNIST-1D with SGD at 128 and with LAMB at 128 and 256. The hand-over learning rate
is higher than after the steady climb (the network is less trained at each learning
rate when the loss turns), too high with LAMB on the digits, where every run now takes
one or two rescues; they end ahead of the steady climb at every batch but 64. It
misses the tuned schedule by more than a point in one cell: SGD on MNIST-1D at 2048
(3.1 points, against 10.5 for the steady climb). Both columns are of the code with the
guard's drift rule (the README's "A guard and rescues after the warmup") and before the
test at the warmup's cap, which changed the 5 runs that reached it (section 3's AutoWU
rows; the README's "The warmup's cap").

### What the gap at the largest batch is made of

With LAMB at the largest batch AutoWU trails the sqrt-scaled cosine (section 3).
`make bench-large-batch-gap` (`benchmarks/large_batch_gap.py`) takes each seed's run
apart, with the learning rate AutoWU handed on: a cosine at it (10 % linear warmup, as
the baselines run); the same cosine from AutoWU's switch step, after as many steps of
no update (the warmup's steps lost, not the state it leaves); the climb's own learning
rates until they reach it, no update until the switch, then the cosine (the state a
roll-back to that point of the climb would give); AutoWU with the optimizer's moment
slots zeroed at the hand-over; and four changes to AutoWU that the script makes by
overriding its internals (none is an option): a warmup that ends at the first
interval risen to its end (its mean and its last quarter's) instead of two in a row,
which overshoots one test interval less; a switch that restores the last snapshot
taken at or below the hand-over learning rate instead of the lowest loss's, so that
the decay starts from weights that never saw a higher learning rate than its own; and
a switch that restores the run's initial weights and optimizer state (a restart at
the hand-over learning rate, guard on: the hand-over's trial still asks the restarted
loss to beat the warmup's best within three intervals, else the rescue puts back that
best's snapshot at half the learning rate); and a decay warmed up, its learning rate
ramped linearly up to the hand-over's over its first 10 % of steps, as the baselines'
warmup does, instead of starting at it; and rescues that restore the weights the switch
restored, instead of the lowest loss's snapshot since, which the learning rate being
rescued trained. The last three are also run with SGD, at both data sets' largest batch
(the third and fourth blocks below), and the last with LAMB at MNIST-1D's batch 512
and the digits' 128, where rescues come later in the run (the last two blocks).

```
{large_batch_gap}
```

On MNIST-1D the learning rate is not what costs: a cosine at AutoWU's own learning rate
reaches 0.966 ± 0.004 (the sqrt-scaled baseline: 0.968). Nor are the steps the warmup
spends: the same cosine started only at AutoWU's switch reaches 0.968 ± 0.005. What
costs about 2 points is the state the climb leaves: it runs seven to eight times past
the learning rate it hands on before the loss turns, and the roll-back restores weights
and moments that have seen part of that. The climb's own state at the hand-over
learning rate, without the guard, is no better (one run of three fell to 0.670);
zeroing LAMB's moments at the hand-over wins back 1.4 of the 2 points there and costs
1.4 on the digits, where a plain cosine at AutoWU's learning rate ends at chance in
every run (it is about twice too high there, section 4) and the guard's rescues are
what bring the runs to 0.982. Ending the warmup one interval sooner barely moves either
cell (0.952 against 0.946 on MNIST-1D; on the digits the same switch, the same runs).
Going back to the snapshot at the hand-over learning rate, with the guard on, behaves
as zeroing the moments does: 0.958 on MNIST-1D, 0.971 on the digits, where it restores
less trained weights for a learning rate that is too high. The restart closes the
MNIST-1D cell and passes the sqrt-scaled cosine there (0.974 ± 0.005 against 0.968):
the climb's state, not its steps, is what costs. It does not carry over. On the
digits with LAMB every restart fails its trial (the learning rate is too high from
scratch) and the rescue's half learning rate from the warmup's best ends at 0.978 ±
0.012, against 0.982. With SGD, where the warmup's training is worth its steps, it
loses 2.4 points on the digits (0.944 against 0.968) and 22 on MNIST-1D (0.601
against 0.824: there too every restart fails its trial, and the run goes on at half
the learning rate). A restart would also need the initial weights kept through a
preemption, which AutoWU's in-memory snapshots are not. The warmed-up decay, the
gentlest start from the restored state, wins back 0.9 points on MNIST-1D (0.955 ±
0.001, the smallest spread of any AutoWU row) and loses them elsewhere: 0.8 with LAMB
on the digits (0.974), 2.2 with SGD on the digits (0.946) and 3.8 on MNIST-1D (0.786
against 0.824). Rescues back to the switch help where the hand-over's learning rate is
too high to hold, with LAMB on the digits: 0.984 ± 0.001 at batch 512 and 0.994 ±
0.001 at 128, against 0.982 and 0.990. They cost where a rescue comes later, for they
drop every step since the switch: with LAMB on MNIST-1D at batch 512, 0.973 against
0.978 (two of three runs rescued, 160 steps after the switch), and with SGD on the
digits at 512, 0.957 against 0.968 (seed 0: 0.908 against 0.939). At MNIST-1D's batch
2048 no run is rescued, so that cell does not move. None of these is a default. The cell is also one where the sqrt-scaled cosine beats
the grid tuned at that batch size (0.968 against 0.953): scaled from 0.01 at batch
128, it runs at 0.04, between the grid's 0.03 and 0.1; AutoWU is 0.7 points behind
that grid's pick.

### The misses over nine seeds

Whether the cells that miss a target on three seeds miss through seed noise:
`make bench-nine-seeds` runs them over seeds 0 to 8, with the smallest batch next to
each (the grids at those two batch sizes, seed 0 picking, so the sqrt-scaled cosine
starts from the same smallest batch and the grid picks the same peaks as in section 3;
about 25 minutes, the three runs side by side): LAMB at each data set's largest batch,
and SGD on MNIST-1D at batch 1024.

```
{nine_seeds}
```

With LAMB they are not. Over nine seeds AutoWU trails the sqrt-scaled cosine on both
data sets at the largest batch, by 0.4 points on the digits (0.977 ± 0.012 against
0.981 ± 0.005) and 1.5 on MNIST-1D (0.952 ± 0.013 against 0.967 ± 0.002), and on the
digits at batch 512 it is 1.1 points behind the grid tuned there (0.988 ± 0.003), past
the 1-point target that its three seeds meet (0.982 against 0.989). Its spread is two
to six times the tuned cosines': its worst runs are 0.950 (digits) and 0.925
(MNIST-1D), where the sqrt-scaled cosine's are 0.975 and 0.962. Every one of its
digits runs, at both batch sizes, needed a rescue. At the smallest batch it is within
0.5 points of both cosines. With SGD on MNIST-1D at batch 1024 the three seeds' miss
(1.2 points) is noise: over nine AutoWU (0.913 ± 0.022) is ahead of the grid's pick,
0.3 (0.904 ± 0.120), and of the sqrt-scaled cosine (0.766 ± 0.350), whose spreads
are five to sixteen times AutoWU's. These figures are of one thread per run, as the
target runs them: the same command with two threads moves single runs by float
rounding, and at batch 1024 with SGD the tuned cosines' means by up to 15 points.

## 6. Factor search

`make bench-factor-search` (`benchmarks/factor_search.py`). The seed's comparison on
our data: factor search (updates once per epoch, factors 2, 1, 0.5, "minmax"), probing
along the optimizer's own update (`direction="update"`, the default) and along the raw
gradient (`"gradient"`, the seed's), against a constant learning rate and linear,
cosine and step decay (x0.1 at half and three quarters of the run) from the same
starting learning rate; AutoWU with its defaults, which needs none. Then the same
against the starting learning rate (seed 0).

```
{factor_search_digits}
```

```
{factor_search_mnist1d}
```

The cost: epoch times with one update per epoch against the same fit at a constant
learning rate (the methods in turn; epoch times move by 10 to 40 % on this shared
machine, more than the cost, so the median and the fastest epoch are both shown), an
update's own cost (the extra time of the steps it spans, against the other steps of
the same epoch, which a slow spell hits alike), and the peak memory of fits of a 4.2-
and a 33.6-million-weight model with and without factor search.

```
{factor_search_cost}
```

## 7. AutoLRS

`make bench-autolrs` (`benchmarks/autolrs.py`). The paper's measure on our data: the
steps each method needs, exploration included, to reach the final validation accuracy
of a cosine schedule whose peak learning rate was grid-searched (seed 0, final
accuracy), seeds 0, 1, 2, on three tasks: the digits and MNIST-1D with SGD (momentum
0.9; AutoLRS searches 1e-4 to 1), and a small Transformer encoder (two pre-norm
blocks, 77,000 weights) that sorts sequences of 24 tokens of 64, with Adam (AutoLRS
searches 1e-5 to 0.1). AutoLRS runs with its defaults (`tau=None`: the run holds two
stages), AutoWU with its defaults. Accuracy is read at each epoch's end, for AutoLRS
only at epochs that end on trained weights (an explored segment's weights are thrown
away at the next restore). Then the cost: the time of AutoLRS's decisions (forecasts
and search) and of its restores against the fit's.

```
{autolrs_digits}
```

```
{autolrs_mnist1d}
```

```
{autolrs_transformer}
```

These runs (4,050, 3,140 and 1,878 steps) hold two stages each, with tau' of 67, 52 and
31 steps where the paper's grows from 100 to 800, and spend about half their steps
exploring. AutoLRS did not reach the tuned cosine's accuracy on any task. On the
Transformer its first stage forecast the lowest loss at 0.05, five times the grid's
best peak, and the runs ended at 0.60 to 0.75 accuracy against 0.99; AutoWU reached
the cosine's accuracy in 2 of 3 runs, 1.2 times as fast. The paper's 1.22x to 1.5x
speed-ups come from runs of tens of thousands of steps, which a 2-core machine does not
train in a benchmark's time.

**Cost.** Its decisions (ten forecasts and nine GP fits a stage) took 0.12 to 0.18 s a
stage here: 1.0 % of the digits fit and 0.9 % of MNIST-1D's, run side by side as `make
bench-autolrs` does, whose steps take 3 to 8 ms on this machine, and 0.36 % of the
Transformer's, whose steps take 35 ms: at or under the 1 % goal. The forecast's
spline runs NumPy's SVD, which OpenBLAS split over threads that waited for the cores
TensorFlow held (OpenMathLib/OpenBLAS#731): 31 ms an SVD inside a fit against 2.5 ms
on one thread. With NumPy's BLAS on one thread for the forecast
(`keras_autowu/_blas.py`), the digits run's decisions went from 0.30 s to 0.20 s
(1.04 % to 0.83 %) with another run beside it, and from 0.25 to 0.22 s alone. The
search's graph traces once a process (0.6 to 0.9 s). A restore took 2 to 2.5 ms for
the CNNs and 8 ms for the Transformer with Adam, and 1.1 ms for a 3.3-million-weight
model with Adam (38 MiB of copies): one compiled function assigns every variable from
its copy on the same device, with no trip through the host.

**Faithfulness.** On the 60 training-loss series these runs explored, the package's
forecast (`forecast="reference"`) gives SciPy's to 0.1 % in 52 (of the forecast, or of
the series' first loss), all 20 of the Transformer's among them; seven of the others
differ by 0.1 to 0.25 %. One differs: a diverged series (learning rate 1 on digits),
where SciPy's spline stopped at FITPACK's 20 iterations short of its smoothing
condition. SciPy forecasts -5.5e16 there, so the reference would train that stage at
1; the package forecasts 2.28 and chooses 0.013. The same learning rate is chosen in 5
of 6 stages. The default `forecast="bounded"` chose another than the reference's
computation in 4 of 6: that stage, and three where the reference's fit extrapolates a
falling series to a loss below zero (-0.28 to -19).

## 8. First-hour fits: AutoWU's defaults against a constant learning rate

`make bench-user-fits` (`benchmarks/user_fits.py`). The fits a new user makes first,
none of them chosen for AutoWU: MLPs and small CNNs on scikit-learn's digits (1,437
training images, no augmentation) and MNIST-1D (10,000 samples), with SGD (momentum
0.9, and plain), Adam, AdamW and RMSprop, 5 to 40 epochs, batch 32 (128 on MNIST-1D,
256 in one), class weights, a regression of the digit's value (mean squared error)
and a binary task (odd or even). Each fit runs with `AutoWU()` at its defaults and
with the learning rate a user types without tuning (Keras's 1e-3 for Adam, AdamW and
RMSprop; 0.05 for SGD with momentum, 0.1 without), seeds 0, 1 and 2; test metric,
mean ± standard deviation. AutoWU "lost" a fit when its mean accuracy is more than 1
point below the constant's (or its error over 1.25 times the constant's), "won" it the
other way round. "dead": accuracy under 50 %, or an error no better than predicting
the mean. Under each fit, what AutoWU did in each seed's run: how its warmup ended
(`switch`: the GP test; `diverged`: the loss blew up first; `cap`: no switch before
the warmup's longest) at which step of the run, the learning rate it handed on, and
the guard's rescues.

```
{user_fits}
```
"""


if __name__ == "__main__":
    main()
