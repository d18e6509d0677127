#!/usr/bin/env python3
"""Plot the error curves written by decent-bench-convex (its <out>.csv).

One log-scale panel of error vs iteration per (topology, n) present in the file (a row per n,
a column per topology), one line per
algorithm (and per step size or momentum when those vary). The error is the relative
(1/n) sum_i ||x_i - x*||^2 / ||x*||^2 unless --absolute is given. Errors of exactly 0 and
non-finite errors are left out of the curves, and the axis stops at 100x the largest starting
error, so diverging runs leave through the top (their label says "diverged"); --floor cuts off
values below a level (1e-30 by default, about where double precision rounding around x* lies).

--best-step TARGET keeps, of the runs that differ only in step size, the one that first reaches
relative error TARGET (else the one with the lowest final error): the tuned-step comparison of a
step-size grid. --table prints the kept runs as a Markdown table (iterations to TARGET, final
error) instead of, or with, the plot.

Usage: plot_convex.py RESULTS.csv [MORE.csv ...] [-o OUT.png] [--title TITLE] [--absolute]
                      [--floor F] [--xmax K] [--single] [--best-step TARGET] [--table]
                      [--no-plot] [--quiet]
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
# Methods that share another's limit are dashed so that both curves stay visible: DecentLaM has
# D-SGD's fixed point, D^2 follows Exact-Diffusion closely on symmetric graphs.
DASHED = {"decentlam", "d2"}


class ResultsError(Exception):
    pass


def load(path, runs=None):
    """Adds the file's runs to `runs` ({run key: ([iterations], [errors], [relative errors])},
    in file order) and returns it."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise ResultsError(f"{path}: cannot read: {error.strerror}") from error
    runs = {} if runs is None else runs
    rows = 0
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
            rows += 1
            series = runs.setdefault(key, ([], [], []))
            for column, value in zip(series, values):
                column.append(value)
    if rows == 0:
        raise ResultsError(f"{path}: no data rows")
    return runs


def first_crossing(iterations, relative, target):
    for k, v in zip(iterations, relative):
        if math.isfinite(v) and v <= target:
            return k
    return None


def best_steps(runs, target):
    """Of the runs equal but for the step size, keeps the one reaching `target` first (ties: the
    smaller step), else the one with the lowest finite final relative error."""
    groups = {}
    for key, series in runs.items():
        groups.setdefault((key[0], key[1], key[2], key[4]), []).append((key, series))

    def rank(item):
        key, (iterations, _, relative) = item
        hit = first_crossing(iterations, relative, target)
        final = relative[-1] if math.isfinite(relative[-1]) else math.inf
        return (0, hit, key[3]) if hit is not None else (1, final, key[3])

    return dict(min(members, key=rank) for members in groups.values())


def table(runs, target):
    lines = [f"| topology | n | algorithm | beta | best step | iterations to {target:g} | "
             "final relative error |", "|---|---|---|---|---|---|---|"]
    for key, (iterations, _, relative) in runs.items():
        hit = first_crossing(iterations, relative, target)
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[4]:g} | {key[3]:g} | "
                     f"{hit if hit is not None else '-'} | {relative[-1]:.2e} |")
    return "\n".join(lines)


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

    # One row per network size, one column per topology, both in the order of the file.
    topologies = list(dict.fromkeys(k[0] for k in runs))
    sizes = list(dict.fromkeys(k[1] for k in runs))
    present = {(k[0], k[1]) for k in runs}
    panels = [None] if single else [(t, n) for n in sizes for t in topologies if (t, n) in present]
    columns = 1 if single else min(len(topologies), 5)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(7.0, 5.2 * columns), 3.8 * rows), squeeze=False,
                                sharey=True)
    starts = [(v[1] if absolute else v[2])[0] for v in runs.values()]
    ceiling = 100 * max([v for v in starts if math.isfinite(v) and v > 0] or [1.0])
    lowest = ceiling
    vary_step = len({k[3] for k in runs}) > 1
    vary_momentum = len({k[4] for k in runs if k[4] > 0}) > 1
    momenta = sorted({k[4] for k in runs})
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
            if points:
                lowest = min(lowest, min(p[1] for p in points))
            ax.plot([p[0] for p in points], [p[1] for p in points], label=name,
                    color=COLOURS.get(key[2]), linewidth=1.4,
                    # Several momentum values of one method: the larger beta, the darker.
                    alpha=0.4 + 0.6 * (momenta.index(key[4]) + 1) / len(momenta)
                    if vary_momentum and key[4] > 0 else 1.0,
                    linestyle="--" if key[2] in DASHED else "-")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        if index % columns == 0:
            ax.set_ylabel("(1/n) Σ‖x_i − x*‖²" + ("" if absolute else " / ‖x*‖²"))
        if panel is not None:
            ax.set_title(f"{panel[0]}, n = {panel[1]}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    # Diverging runs would stretch the axis to 1e300: they leave through the top instead.
    for row in axes:
        for ax in row:
            ax.set_ylim(bottom=min(lowest, ceiling) / 3, top=ceiling)
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
    parser.add_argument("csv", nargs="+", help="CSV files written by decent-bench-convex")
    parser.add_argument("-o", "--output", help="PNG to write (default: the CSV name with .png)")
    parser.add_argument("--title")
    parser.add_argument("--absolute", action="store_true",
                        help="plot (1/n) sum ||x_i - x*||^2 instead of the relative error")
    parser.add_argument("--floor", type=float, default=1e-30,
                        help="leave out errors below this value (default 1e-30)")
    parser.add_argument("--xmax", type=int, help="last iteration to show")
    parser.add_argument("--single", action="store_true",
                        help="one panel for everything instead of one per (topology, n)")
    parser.add_argument("--best-step", type=float, metavar="TARGET",
                        help="keep the step size reaching relative error TARGET first")
    parser.add_argument("--table", action="store_true",
                        help="print the runs as a Markdown table (with --best-step's target)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    output = args.output or os.path.splitext(args.csv[0])[0] + ".png"
    try:
        runs = {}
        for path in args.csv:
            load(path, runs)
    except ResultsError as error:
        print(f"plot_convex.py: {error}", file=sys.stderr)
        return 2
    target = args.best_step if args.best_step is not None else 1e-6
    if args.best_step is not None:
        runs = best_steps(runs, args.best_step)
    if args.table:
        print(table(runs, target))
    if args.no_plot:
        return 0
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
