#!/usr/bin/env python3
"""Plot training curves from one or more metrics JSON files written by decent-train.

Writes four PNG files into the output directory:
  accuracy.png           test accuracy vs epoch (averaged model solid, local models dashed)
  loss.png               training loss vs wall time
  consensus.png          consensus distance vs epoch
  accuracy_vs_bytes.png  test accuracy vs bytes sent per rank

Each curve is labelled "<algorithm> / <topology> (n=<world_size>)" from the file's fields,
or by the file name when those are absent. The schema is described in docs/data.md.

Usage: plot_metrics.py [-o OUT_DIR] [--prefix PREFIX] [--title TITLE] FILE.json [FILE.json ...]
Needs only python3 and matplotlib (Debian: python3-matplotlib).
"""

import argparse
import json
import os
import sys

EPOCH_FIELDS = ("epoch", "train_loss", "test_accuracy_avg", "test_accuracy_local",
                "consensus_distance", "samples_per_sec", "bytes_sent_per_rank", "wall_time_s")


class MetricsError(Exception):
    pass


def load_run(path):
    try:
        with open(path, encoding="utf-8") as handle:
            run = json.load(handle)
    except OSError as error:
        raise MetricsError(f"{path}: cannot read: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise MetricsError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(run, dict) or not isinstance(run.get("epochs"), list):
        raise MetricsError(f"{path}: expected an object with an 'epochs' list")
    for position, epoch in enumerate(run["epochs"]):
        if not isinstance(epoch, dict) or "epoch" not in epoch:
            raise MetricsError(f"{path}: epochs[{position}] has no 'epoch' field")
        for field, value in epoch.items():
            if field in EPOCH_FIELDS and value is not None and not isinstance(value, (int, float)):
                raise MetricsError(f"{path}: epochs[{position}].{field} is not a number")
    run["_path"] = path
    return run


def label_of(run):
    algorithm, topology = run.get("algorithm"), run.get("topology")
    if not algorithm and not topology:
        return os.path.splitext(os.path.basename(run["_path"]))[0]
    label = " / ".join(str(part) for part in (algorithm, topology) if part)
    if run.get("world_size"):
        label += f" (n={run['world_size']})"
    return label


def unique_labels(runs):
    labels = [label_of(run) for run in runs]
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            stem = os.path.splitext(os.path.basename(runs[i]["_path"]))[0]
            labels[i] = f"{label} [{stem}]"
    return labels


def series(run, x_field, y_field):
    """(x, y) pairs of the epochs that carry both fields."""
    points = [(e[x_field], e[y_field]) for e in run["epochs"]
              if e.get(x_field) is not None and e.get(y_field) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot(runs, labels, out_dir, prefix, title, plt):
    written = []

    def finish(figure, axes, name, xlabel, ylabel, drew):
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        if title:
            axes.set_title(title)
        if drew:
            axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
        path = os.path.join(out_dir, prefix + name)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)

    # Test accuracy vs epoch: the averaged model solid, the mean of local models dashed.
    figure, axes = plt.subplots(figsize=(7, 4.5))
    drew = False
    for run, label in zip(runs, labels):
        x, y = series(run, "epoch", "test_accuracy_avg")
        line = None
        if x:
            (line,) = axes.plot(x, y, marker="o", markersize=3, label=f"{label} (average model)")
            drew = True
        x, y = series(run, "epoch", "test_accuracy_local")
        if x:
            color = line.get_color() if line is not None else None
            axes.plot(x, y, linestyle="--", color=color, label=f"{label} (local models)")
            drew = True
    finish(figure, axes, "accuracy.png", "epoch", "test accuracy", drew)

    # Training loss vs wall time.
    figure, axes = plt.subplots(figsize=(7, 4.5))
    drew = False
    for run, label in zip(runs, labels):
        x, y = series(run, "wall_time_s", "train_loss")
        if x:
            axes.plot(x, y, marker="o", markersize=3, label=label)
            drew = True
    if drew and all(v > 0 for run in runs for v in series(run, "wall_time_s", "train_loss")[1]):
        axes.set_yscale("log")
    finish(figure, axes, "loss.png", "wall time (s)", "training loss", drew)

    # Consensus distance vs epoch; log scale unless some run is exactly 0 (e.g. allreduce).
    figure, axes = plt.subplots(figsize=(7, 4.5))
    drew = False
    values = []
    for run, label in zip(runs, labels):
        x, y = series(run, "epoch", "consensus_distance")
        if x:
            axes.plot(x, y, marker="o", markersize=3, label=label)
            values.extend(y)
            drew = True
    if values and all(v > 0 for v in values):
        axes.set_yscale("log")
    finish(figure, axes, "consensus.png", "epoch",
           r"consensus distance $\frac{1}{n}\sum_i \|x_i - \bar{x}\|^2$", drew)

    # Test accuracy vs communication volume.
    figure, axes = plt.subplots(figsize=(7, 4.5))
    drew = False
    for run, label in zip(runs, labels):
        x, y = series(run, "bytes_sent_per_rank", "test_accuracy_avg")
        if x:
            axes.plot([b / 2**20 for b in x], y, marker="o", markersize=3, label=label)
            drew = True
    finish(figure, axes, "accuracy_vs_bytes.png", "MiB sent per rank (cumulative)",
           "test accuracy (average model)", drew)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE.json", help="metrics files")
    parser.add_argument("-o", "--out-dir", default=".", help="directory for the PNG files")
    parser.add_argument("--prefix", default="", help="prefix of the PNG file names")
    parser.add_argument("--title", default="", help="title written above every plot")
    args = parser.parse_args(argv)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # Debian's python3-matplotlib belongs to the system interpreter; another python3
        # (a virtualenv, pyenv) earlier on PATH may lack it.
        system_python = "/usr/bin/python3"
        if (os.path.exists(system_python)
                and os.path.realpath(sys.executable) != os.path.realpath(system_python)
                and not os.environ.get("DECENT_PLOT_NO_REEXEC")):
            os.environ["DECENT_PLOT_NO_REEXEC"] = "1"
            os.execv(system_python, [system_python, os.path.abspath(__file__)] + sys.argv[1:])
        print("plot_metrics.py: matplotlib is not installed (Debian: python3-matplotlib)",
              file=sys.stderr)
        return 3

    try:
        runs = [load_run(path) for path in args.files]
    except MetricsError as error:
        print(f"plot_metrics.py: {error}", file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    for path in plot(runs, unique_labels(runs), args.out_dir, args.prefix, args.title, plt):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
