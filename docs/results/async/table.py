#!/usr/bin/env python3
"""Prints the straggler table of docs/async.md from the metrics files next to this script."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ALGORITHMS = [("pmsgd", "PmSGD (allreduce)"), ("dsgd", "D-SGD (sync, ring)"),
              ("ad-psgd", "AD-PSGD (async, ring)")]
SLOWDOWNS = [1, 2, 10, 100]


def last_epoch(algorithm, slowdown):
    path = os.path.join(HERE, f"straggler_{algorithm}_x{slowdown}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["epochs"][-1]


def main():
    header = "| algorithm | " + " | ".join(f"{s}x: s/epoch, acc" for s in SLOWDOWNS)
    header += " | throughput kept at 10x |"
    print(header)
    print("|---" * (len(SLOWDOWNS) + 2) + "|")
    for name, label in ALGORITHMS:
        cells = []
        base = last_epoch(name, 1)
        for s in SLOWDOWNS:
            e = last_epoch(name, s)
            if e is None:
                cells.append("not run")
                continue
            # Time per epoch: one pass over the (capped) epoch's samples at the measured rate.
            samples = 60 * 8 * 32
            seconds = samples / e["samples_per_sec"]
            cells.append(f"{seconds:.1f} s, {100 * e['test_accuracy_avg']:.1f}%")
        ten = last_epoch(name, 10)
        kept = (f"{100 * ten['samples_per_sec'] / base['samples_per_sec']:.0f}%"
                if base and ten else "-")
        print(f"| {label} | " + " | ".join(cells) + f" | {kept} |")


if __name__ == "__main__":
    main()
