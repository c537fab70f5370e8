"""Writes docs/benchmarks.md and its plots from the benchmarks' outputs.

Reads the paper-claim benchmark's JSON files (one per data set) and the printed
output of the other benchmarks from the same folder (`make bench` writes them all),
and fills in benchmarks/report_template.md.

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
    "autowu-paper": "AutoWU, the reference's decisions (`reference=True`; before it: per-epoch tests, no progress rule, guard or roll-back)",
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


def optimizer_results(result):
    return [(k, v) for k, v in result.items() if isinstance(v, dict) and "methods" in v]


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
    path = folder / "startup.txt"
    printed["startup"] = path.read_text().strip() if path.exists() else "(run `python benchmarks/startup.py`)"
    for name in ("startup_jax", "training_overhead_jax"):
        path = folder / f"{name}.txt"
        printed[name] = path.read_text().strip() if path.exists() else "(run `make bench-jax`)"
    path = folder / "user_fits.txt"
    printed["user_fits"] = path.read_text().strip() if path.exists() else "(run `make bench-user-fits`)"
    path = folder / "zoo.txt"
    printed["zoo"] = path.read_text().strip() if path.exists() else "(run `make bench-zoo`)"
    template = (pathlib.Path(__file__).parent / "report_template.md").read_text()
    text = template.format(
        machine=args.machine, minutes=max(minutes), seeds=seed_list(datasets), updated=updated_note(updates),
        sections="\n".join(sections), **printed,
    )
    (out / "benchmarks.md").write_text(text)
    print(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks'}/*.png")




if __name__ == "__main__":
    main()
