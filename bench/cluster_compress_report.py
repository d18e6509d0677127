#!/usr/bin/python3
"""Table of bench/cluster_compress.sh: time and bytes per step, compressed vs uncompressed.

    /usr/bin/python3 bench/cluster_compress_report.py RESULTS_DIR

Reads <tag>_n<hosts>_r<round>.json (decent-train --metrics). Step time = total batch / samples
per second of the training (evaluation excluded); with several rounds, the median over rounds.
Ratios are against D-SGD (tag dsgd) on the same number of hosts.
"""
import glob
import json
import os
import re
import statistics
import sys

RESULTS = sys.argv[1]
LABELS = {
    "dsgd": ("D-SGD", "none (float32)"),
    "choco_q8": ("CHOCO-SGD", "QSGD 8 bit (s=127)"),
    "choco_q4": ("CHOCO-SGD", "QSGD 4 bit (s=7)"),
    "choco_q2": ("CHOCO-SGD", "QSGD 2 bit (s=1)"),
    "choco_top1": ("CHOCO-SGD", "top-k 1%"),
    "deepsqueeze_q4": ("DeepSqueeze", "QSGD 4 bit (s=7)"),
}


def main():
    runs = {}
    for path in glob.glob(os.path.join(RESULTS, "*_n*_r*.json")):
        m = re.search(r"(\w+?)_n(\d+)_r(\d+)\.json$", os.path.basename(path))
        tag, n = m.group(1), int(m.group(2))
        with open(path) as f:
            metrics = json.load(f)
        e = metrics["epochs"][-1]
        step = metrics["config"]["total_batch_size"] / e["samples_per_sec"]
        runs.setdefault((tag, n), []).append(
            (step, e["bytes_sent_per_rank"] / e["steps"], e.get("test_accuracy_avg"), e["steps"]))
    print("| hosts | algorithm | compressor | step time ms | vs D-SGD | MiB sent per rank per step "
          "| vs D-SGD | test acc. after the run | runs |")
    print("|---" * 9 + "|")
    for n in sorted({n for (_, n) in runs}):
        base = runs.get(("dsgd", n))
        base_step = statistics.median(r[0] for r in base) if base else None
        base_bytes = statistics.median(r[1] for r in base) if base else None
        for tag in LABELS:
            rs = runs.get((tag, n))
            if not rs:
                continue
            step = statistics.median(r[0] for r in rs)
            mib = statistics.median(r[1] for r in rs)
            acc = statistics.median(r[2] for r in rs if r[2] is not None)
            alg, comp = LABELS[tag]
            print(f"| {n} | {alg} | {comp} | {step * 1e3:.0f} | {step / base_step:.2f} | "
                  f"{mib / 2**20:.2f} | {mib / base_bytes:.3f} | {acc:.2%} | {len(rs)} × {rs[0][3]} steps |")


if __name__ == "__main__":
    main()
