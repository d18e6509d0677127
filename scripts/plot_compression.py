#!/usr/bin/env python3
"""Accuracy against epoch and against bytes sent for decent-train metrics files.

    scripts/plot_compression.py OUT_PREFIX LABEL=metrics.json [LABEL=metrics.json ...]

writes OUT_PREFIX_epoch.png (test accuracy of the averaged model per epoch) and
OUT_PREFIX_bytes.png (the same accuracy against the MiB each rank had sent, log scale), and
prints a Markdown table of the last epoch (accuracy, loss, MiB and bytes per step per rank).
A run that stopped early (diverged) ends where its file ends.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def accuracy(epoch):
    a = epoch.get("test_accuracy_avg")
    return float("nan") if a is None else 100.0 * a


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prefix = sys.argv[1]
    runs = []
    for arg in sys.argv[2:]:
        label, _, path = arg.partition("=")
        if not path:
            sys.exit(f"expected LABEL=FILE, got {arg!r}")
        runs.append((label, load(path)))

    for kind in ("epoch", "bytes"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, doc in runs:
            epochs = doc["epochs"]
            ys = [accuracy(e) for e in epochs]
            if kind == "epoch":
                xs = [e["epoch"] for e in epochs]
            else:
                xs = [e["bytes_sent_per_rank"] / 2**20 for e in epochs]
            style = "--" if label.startswith(("D-SGD", "PmSGD")) else "-"
            ax.plot(xs, ys, style, marker="o", label=label)
        ax.set_ylabel("test accuracy of the averaged model (%)")
        if kind == "epoch":
            ax.set_xlabel("epoch")
        else:
            ax.set_xlabel("MiB sent per rank (log scale)")
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(f"{prefix}_{kind}.png", dpi=110)
        plt.close(fig)

    print("| run | epochs | test acc. (average model) | train loss | consensus distance "
          "| MiB sent per rank | bytes per step per rank |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, doc in runs:
        last = doc["epochs"][-1]
        acc = accuracy(last)
        loss = last["train_loss"]
        per_step = last["bytes_sent_per_rank"] / max(1, last["steps"])
        acc_text = "n/a" if math.isnan(acc) else f"{acc:.2f}%"
        # Non-finite numbers are written as null.
        loss_text = "non-finite" if loss is None or not math.isfinite(loss) else f"{loss:.3f}"
        consensus = last["consensus_distance"]
        consensus_text = "non-finite" if consensus is None else f"{consensus:.2e}"
        print(f"| {label} | {last['epoch']} | {acc_text} | {loss_text} | {consensus_text} "
              f"| {last['bytes_sent_per_rank'] / 2**20:.2f} | {per_step:,.0f} |")


if __name__ == "__main__":
    main()
