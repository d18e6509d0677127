#!/usr/bin/python3
"""Tables and plots of the emulated-cluster communication benchmark (bench/cluster_comm.sh).

    /usr/bin/python3 bench/cluster_report.py [RESULTS_DIR] [PLOT_DIR]

Reads cluster_comm_<rate>_n<hosts>.csv, cluster_ring_<rate>_n<hosts>_<size>.csv and
cluster_hier_<rate>_n<hosts>x2.csv from RESULTS_DIR (bench/results), prints Markdown tables
(median ms and multiples of the wire limit) and the ratios the goals name, and writes
cluster_comm.png and cluster_one_peer_scaling.png to PLOT_DIR (docs/results/cluster).

Wire limit of one call, per rank, at R bits/s for a buffer of B bytes (a host sends and receives
at R at the same time): one-peer B/R; ring neighbour averaging 2B/R; static exponential
ceil(log2 n)·B/R; allreduce (the bandwidth-optimal ring) 2(n-1)/n·B/R.
"""
import csv
import glob
import math
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
PLOTS = sys.argv[2] if len(sys.argv) > 2 else "docs/results/cluster"
RATE_BITS = {"1gbit": 1e9, "10gbit": 1e10}
LABELS = {
    "mpi-allreduce": "MPI_Allreduce",
    "allreduce": "allreduce (ours)",
    "mpi-one-peer": "MPI_Sendrecv one-peer",
    "one-peer": "one-peer (ours)",
    "exponential": "static exponential (ours)",
    "ring": "ring (ours)",
    "hierarchical": "hierarchical (ours)",
}


def wire_ms(op, n, size, rate):
    per = size * 8 / RATE_BITS[rate] * 1e3
    if op in ("one-peer", "mpi-one-peer", "flat"):
        return per
    if op == "ring":
        return 2 * per if n > 2 else per
    if op in ("exponential", "mpi-exponential"):
        return math.ceil(math.log2(n)) * per
    if op in ("allreduce", "mpi-allreduce"):
        return 2 * (n - 1) / n * per
    return None


def read_comm():
    data = {}  # (rate, n) -> {(op, size): median_ms}
    for path in glob.glob(os.path.join(RESULTS, "cluster_comm_*_n*.csv")):
        m = re.search(r"cluster_comm_(\w+)_n(\d+)\.csv$", path)
        rate, n = m.group(1), int(m.group(2))
        with open(path) as f:
            for row in csv.DictReader(f):
                data.setdefault((rate, n), {})[(row["operation"], int(row["size_bytes"]))] = float(
                    row["median_ms"])
    for path in glob.glob(os.path.join(RESULTS, "cluster_ring_*_n*_*.csv")):
        m = re.search(r"cluster_ring_(\w+)_n(\d+)_\w+\.csv$", path)
        rate, n = m.group(1), int(m.group(2))
        with open(path) as f:
            rows = list(csv.DictReader(f))
        flat = {r["op"]: float(r["median_ms"]) for r in rows}
        size = int(rows[0]["total_bytes"])
        data.setdefault((rate, n), {})[("ring", size)] = flat["ring"]
        data[(rate, n)][("one-peer (ring run)", size)] = flat["flat"]
    return data


def read_hier():
    data = {}
    for path in glob.glob(os.path.join(RESULTS, "cluster_hier_*_n*x2.csv")):
        m = re.search(r"cluster_hier_(\w+)_n(\d+)x2\.csv$", path)
        rate, n = m.group(1), int(m.group(2))
        with open(path) as f:
            for row in csv.DictReader(f):
                data.setdefault((rate, n), {})[(row["operation"], int(row["size_bytes"]))] = float(
                    row["median_ms"])
    return data


def mib(size):
    return f"{size / 2**20:g} MiB"


def main():
    comm = read_comm()
    hier = read_hier()
    ops = ["mpi-allreduce", "allreduce", "mpi-one-peer", "one-peer", "exponential", "ring"]
    for (rate, n) in sorted(comm, key=lambda k: (RATE_BITS[k[0]], k[1])):
        table = comm[(rate, n)]
        sizes = sorted({s for (_, s) in table})
        present = [op for op in ops if any((op, s) in table for s in sizes)]
        print(f"\n{rate}, n = {n} hosts: median ms (multiple of the wire limit)\n")
        print("| size | " + " | ".join(LABELS[o] for o in present) + " |")
        print("|---" * (len(present) + 1) + "|")
        for s in sizes:
            cells = []
            for op in present:
                if (op, s) not in table:
                    cells.append("")
                    continue
                w = wire_ms(op, n, s, rate)
                cells.append(f"{table[(op, s)]:.1f} ({table[(op, s)] / w:.2f}x)")
            print(f"| {mib(s)} | " + " | ".join(cells) + " |")

    print("\nGoals at 16 MiB: one-peer / wire limit (<= 1.3), MPI_Allreduce / one-peer (>= 2, n >= 4)\n")
    print("| rate | n | wire ms | one-peer ms | one-peer / wire | MPI_Allreduce ms | MPI_Allreduce / one-peer | allreduce / one-peer |")
    print("|---|---|---|---|---|---|---|---|")
    size = 16 * 2**20
    for (rate, n) in sorted(comm, key=lambda k: (RATE_BITS[k[0]], k[1])):
        t = comm[(rate, n)]
        if ("one-peer", size) not in t:
            continue
        w = wire_ms("one-peer", n, size, rate)
        op = t[("one-peer", size)]
        ma = t.get(("mpi-allreduce", size), float("nan"))
        ar = t.get(("allreduce", size), float("nan"))
        print(f"| {rate} | {n} | {w:.1f} | {op:.1f} | {op / w:.2f} | {ma:.1f} | {ma / op:.2f} | {ar / op:.2f} |")

    print("\nOne-peer cost per rank, n = 8 over n = 2 (goal <= 1.2)\n")
    print("| rate | size | n = 2 ms | n = 4 ms | n = 8 ms | n=8 / n=2 |")
    print("|---|---|---|---|---|---|")
    for rate in sorted({r for (r, _) in comm}, key=lambda r: RATE_BITS[r]):
        sizes = sorted({s for (o, s) in comm.get((rate, 2), {}) if o == "one-peer"})
        for s in sizes:
            vals = [comm.get((rate, n), {}).get(("one-peer", s)) for n in (2, 4, 8)]
            if None in vals:
                continue
            print(f"| {rate} | {mib(s)} | {vals[0]:.1f} | {vals[1]:.1f} | {vals[2]:.1f} | {vals[2] / vals[0]:.2f} |")

    if hier:
        print("\nHosts of 2 ranks (hierarchical): median ms\n")
        hops = ["mpi-allreduce", "allreduce", "one-peer", "hierarchical"]
        print("| rate | hosts x ranks | size | " + " | ".join(LABELS[o] for o in hops) + " | hierarchical / MPI_Allreduce |")
        print("|---" * (len(hops) + 4) + "|")
        for (rate, n) in sorted(hier, key=lambda k: (RATE_BITS[k[0]], k[1])):
            t = hier[(rate, n)]
            for s in sorted({s for (_, s) in t}):
                cells = [f"{t[(o, s)]:.1f}" if (o, s) in t else "" for o in hops]
                ratio = t[("hierarchical", s)] / t[("mpi-allreduce", s)]
                print(f"| {rate} | {n} x 2 | {mib(s)} | " + " | ".join(cells) + f" | {ratio:.2f} |")

    os.makedirs(PLOTS, exist_ok=True)
    keys = sorted(comm, key=lambda k: (RATE_BITS[k[0]], k[1]))
    rates = sorted({r for (r, _) in keys}, key=lambda r: RATE_BITS[r])
    ns = sorted({n for (_, n) in keys})
    fig, axes = plt.subplots(len(rates), len(ns), figsize=(4.2 * len(ns), 3.6 * len(rates)),
                             squeeze=False)
    for i, rate in enumerate(rates):
        for j, n in enumerate(ns):
            ax = axes[i][j]
            t = comm.get((rate, n), {})
            for op in ops:
                sizes = sorted(s for (o, s) in t if o == op)
                if sizes:
                    ax.plot([s / 2**20 for s in sizes], [t[(op, s)] for s in sizes], marker="o",
                            label=LABELS[op])
            sizes = sorted({s for (_, s) in t})
            if sizes:
                ax.plot([s / 2**20 for s in sizes], [wire_ms("one-peer", n, s, rate) for s in sizes],
                        "k--", label="wire limit B/rate")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{rate}, {n} hosts")
            ax.set_xlabel("MiB per rank")
            ax.set_ylabel("ms per call (median)")
            ax.grid(True, which="both", alpha=0.3)
    handles = {}
    for row in axes:
        for ax in row:
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(os.path.join(PLOTS, "cluster_comm.png"), dpi=110)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    size = 16 * 2**20
    for rate in rates:
        for op, style in (("one-peer", "-o"), ("mpi-allreduce", "--s")):
            pts = [(n, comm[(rate, n)][(op, size)]) for n in ns if (op, size) in comm.get((rate, n), {})]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{LABELS[op]}, {rate}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlabel("hosts")
    ax.set_ylabel("ms per call, 16 MiB (median)")
    ax.set_title("Cost per rank as the cluster grows")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, "cluster_one_peer_scaling.png"), dpi=110)
    print(f"\nwrote {PLOTS}/cluster_comm.png and {PLOTS}/cluster_one_peer_scaling.png")


if __name__ == "__main__":
    main()
