#!/usr/bin/env python3
"""Plot the error curves written by decent-bench-convex (its <out>.csv).

One log-scale panel of error vs iteration per (topology, n) present in the file, one line per
algorithm (and per step size or momentum when those vary). The error is the relative
(1/n) sum_i ||x_i - x*||^2 / ||x*||^2 unless --absolute is given. Errors of exactly 0 and
non-finite errors are left out of the curves, and the axis stops at 100x the largest starting
error, so diverging runs leave through the top (their label says "diverged"); --floor cuts off
values below a level (1e-30 by default, about where double precision rounding around x* lies).

Usage: plot_convex.py RESULTS.csv [-o OUT.png] [--title TITLE] [--absolute] [--floor F]
                      [--xmax K] [--single] [--quiet]
Needs only python3 and matplotlib (Debian: python3-matplotlib).
"""

import argparse
import csv
import math
import os
import sys

COLUMNS = ("algorithm", "topology", "nodes", "step_size", "momentum", "iteration", "error",
           "relative_error")

# Fixed colours per algorithm, so every figure of a study reads the same.
COLOURS = {
    "centralized": "black",
    "dgd": "tab:olive",
    "dsgd": "tab:blue",
    "dmsgd": "tab:red",
    "decentlam": "tab:orange",
    "extra": "tab:green",
    "exact-diffusion": "tab:purple",
    "d2": "tab:brown",
    "gradient-tracking": "tab:cyan",
}


class ResultsError(Exception):
    pass


def load(path):
    """Returns {run key: ([iterations], [errors], [relative errors])} in file order."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror}") from error
    runs = {}
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ResultsError(f"{path}: missing columns {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                key = (row["topology"], int(row["nodes"]), row["algorithm"],
                       float(row["step_size"]), float(row["momentum"]))
                values = (int(row["iteration"]), float(row["error"]), float(row["relative_error"]))
            except (TypeError, ValueError) as error:
                raise ResultsError(f"{path}:{line}: bad value: {error}") from error
            series = runs.setdefault(key, ([], [], []))
            for column, value in zip(series, values):
                column.append(value)
    if not runs:
        raise ResultsError(f"{path}: no data rows")
    return runs


def label(key, vary_step, vary_momentum):
    _, _, algorithm, step, momentum = key
    text = algorithm
    if vary_step:
        text += f", step {step:g}"
    if vary_momentum and momentum > 0:
        text += f", beta {momentum:g}"
    return text


def plot(runs, output, title=None, absolute=False, floor=1e-30, xmax=None, single=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [] if single else sorted({(k[0], k[1]) for k in runs}, key=lambda p: (p[1], p[0]))
    if single or len(panels) == 0:
        panels = [None]
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False,
                                sharey=True)
    starts = [(v[1] if absolute else v[2])[0] for v in runs.values()]
    ceiling = 100 * max([v for v in starts if math.isfinite(v) and v > 0] or [1.0])
    vary_step = len({k[3] for k in runs}) > 1
    vary_momentum = len({k[4] for k in runs if k[4] > 0}) > 1
    for index, panel in enumerate(panels):
        ax = axes[index // columns][index % columns]
        for key, (iterations, errors, relative) in runs.items():
            if panel is not None and (key[0], key[1]) != panel:
                continue
            values = errors if absolute else relative
            points = [(k, v) for k, v in zip(iterations, values)
                      if math.isfinite(v) and v > 0 and v >= floor and (xmax is None or k <= xmax)]
            name = label(key, vary_step, vary_momentum)
            if panel is None and len({(k[0], k[1]) for k in runs}) > 1:
                name += f" ({key[0]}, n={key[1]})"
            if not math.isfinite(values[-1]) or values[-1] > values[0]:
                name += " (diverged)"
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name,
                    color=COLOURS.get(key[2]), linewidth=1.4)
        ax.set_yscale("log")
        # Diverging runs would stretch the axis to 1e300: they leave through the top instead.
        ax.set_ylim(top=ceiling)
        ax.set_xlabel("iteration")
        if index % columns == 0:
            ax.set_ylabel("(1/n) Σ‖x_i − x*‖²" + ("" if absolute else " / ‖x*‖²"))
        if panel is not None:
            ax.set_title(f"{panel[0]}, n = {panel[1]}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="CSV written by decent-bench-convex")
    parser.add_argument("-o", "--output", help="PNG to write (default: the CSV name with .png)")
    parser.add_argument("--title")
    parser.add_argument("--absolute", action="store_true",
                        help="plot (1/n) sum ||x_i - x*||^2 instead of the relative error")
    parser.add_argument("--floor", type=float, default=1e-30,
                        help="leave out errors below this value (default 1e-30)")
    parser.add_argument("--xmax", type=int, help="last iteration to show")
    parser.add_argument("--single", action="store_true",
                        help="one panel for everything instead of one per (topology, n)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    output = args.output or os.path.splitext(args.csv)[0] + ".png"
    try:
        runs = load(args.csv)
    except ResultsError as error:
        print(f"plot_convex.py: {error}", file=sys.stderr)
        return 2
    try:
        plot(runs, output, args.title, args.absolute, args.floor, args.xmax, args.single)
    except ImportError:
        print("plot_convex.py: matplotlib is not installed (Debian: python3-matplotlib)",
              file=sys.stderr)
        return 3
    if not args.quiet:
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
