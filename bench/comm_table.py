#!/usr/bin/env python3
"""Prints the Markdown table of one decent-bench-comm CSV (median ms, ours/raw in parentheses).

    bench/comm_table.py bench/results/comm_n8.csv
"""
import csv
import sys

COLUMNS = [  # (operation, header)
    ("mpi-allreduce", "MPI_Allreduce"),
    ("allreduce", "allreduce"),
    ("allreduce-rd", "recursive doubling"),
    ("allreduce-halving", "halving-doubling"),
    ("allreduce-rabenseifner", "Rabenseifner"),
    ("allreduce-ring", "ring allreduce"),
    ("allreduce-transport", "MPI_Iallreduce path"),
    ("mpi-one-peer", "Sendrecv one-peer"),
    ("one-peer", "one-peer"),
    ("mpi-exponential", "raw exponential"),
    ("exponential", "exponential"),
    ("mpi-ring", "raw ring"),
    ("ring", "ring neighbours"),
    ("hierarchical", "hierarchical"),
    ("allreduce-nocheck", "allreduce, no check"),
    ("one-peer-nocheck", "one-peer, no check"),
]


def size_label(n):
    n = int(n)
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    return f"{n >> 10} KiB"


def ms(v):
    v = float(v)
    return f"{v:.3f}" if v < 1 else (f"{v:.2f}" if v < 10 else (f"{v:.1f}" if v < 100 else f"{v:.0f}"))


def main(path):
    rows = list(csv.DictReader(open(path)))
    present = [c for c in COLUMNS if any(r["operation"] == c[0] for r in rows)]
    sizes = sorted({int(r["size_bytes"]) for r in rows})
    print("| size | " + " | ".join(h for _, h in present) + " |")
    print("|---:|" + "---:|" * len(present))
    for s in sizes:
        cells = []
        for op, _ in present:
            r = next((r for r in rows if r["operation"] == op and int(r["size_bytes"]) == s), None)
            if r is None:
                cells.append("")
                continue
            cell = ms(r["median_ms"])
            if r["ratio_vs_baseline"]:
                cell += f" ({float(r['ratio_vs_baseline']):.2f}x)"
            cells.append(cell)
        print(f"| {size_label(s)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
