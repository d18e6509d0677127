#!/usr/bin/python3
"""Tables and a plot of the emulated-cluster training benchmark (bench/cluster_train.sh).

    /usr/bin/python3 bench/cluster_train_report.py RESULTS_DIR TARGET [PLOT_DIR]

RESULTS_DIR holds <algorithm>_n<hosts>.json (decent-train --metrics) and
<algorithm>_n<hosts>_timeline.txt (bench/timeline_comm.py). TARGET is a test accuracy of the
averaged model (e.g. 0.82). For every run: step time (total batch / samples per second of the
training, evaluation excluded; median over epochs), samples/s, MiB sent per rank per step, the
first evaluation reaching TARGET with the training time up to it (sum of the epochs' step times,
evaluation excluded) and the wall time up to it (evaluation included), the time spent waiting
on communication as 1 - (step time of local-sgd, which does not communicate during training) /
(step time), and the communication thread's busy fraction from the timeline. Ratios are against
PmSGD on the same number of hosts. Plots accuracy against training time to PLOT_DIR.
"""
import glob
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = sys.argv[1]
TARGET = float(sys.argv[2])
PLOTS = sys.argv[3] if len(sys.argv) > 3 else "docs/results/cluster"
NAMES = {"pmsgd": "PmSGD (allreduce)", "dsgd": "D-SGD, one-peer", "decentlam": "DecentLaM, one-peer",
         "dmsgd": "DmSGD, one-peer", "awc-dmsgd": "AWC-DmSGD with overlap, one-peer",
         "local-sgd": "Local SGD, no communication (reference)"}


def load(path):
    with open(path) as f:
        m = json.load(f)
    cfg = m["config"]
    total_batch = cfg["total_batch_size"]
    epochs = m["epochs"]
    step_times, train_time, curve = [], 0.0, []
    prev_steps, prev_bytes = 0, 0.0
    for e in epochs:
        steps = e["steps"] - prev_steps
        step = total_batch / e["samples_per_sec"]
        step_times.append(step)
        train_time += steps * step
        curve.append((train_time, e["wall_time_s"], e.get("test_accuracy_avg")))
        prev_steps = e["steps"]
    bytes_per_step = epochs[-1]["bytes_sent_per_rank"] / epochs[-1]["steps"]
    return {"step": statistics.median(step_times), "sps": total_batch / statistics.median(step_times),
            "mib_step": bytes_per_step / 2**20, "curve": curve, "steps": epochs[-1]["steps"],
            "final_acc": epochs[-1].get("test_accuracy_avg")}


def busy_fraction(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if line.startswith("mean communicate fraction"):
                return float(line.split()[-1])
    return None


def main():
    runs = {}
    for path in glob.glob(os.path.join(RESULTS, "*_n*.json")):
        m = re.search(r"([\w-]+)_n(\d+)\.json$", os.path.basename(path))
        alg, n = m.group(1), int(m.group(2))
        runs[(alg, n)] = load(path)
        runs[(alg, n)]["busy"] = busy_fraction(path[:-5] + "_timeline.txt")
    order = ["pmsgd", "awc-dmsgd", "decentlam", "dsgd", "dmsgd", "local-sgd"]
    print(f"Target: test accuracy of the averaged model >= {TARGET:.0%}\n")
    print("| hosts | algorithm | step time ms | samples/s | vs PmSGD (samples/s) | MiB sent per rank per step "
          "| waiting on communication | comm. thread busy (timeline) | final acc. | steps to target "
          "| training time to target s | vs PmSGD | wall time to target s (with evaluation) |")
    print("|---" * 13 + "|")
    for n in sorted({n for (_, n) in runs}):
        ref = runs.get(("local-sgd", n))
        base = runs.get(("pmsgd", n))
        base_t = None
        if base:
            hit = next((c for c in base["curve"] if c[2] is not None and c[2] >= TARGET), None)
            base_t = hit[0] if hit else None
        for alg in order:
            r = runs.get((alg, n))
            if r is None:
                continue
            hit_i = next((i for i, c in enumerate(r["curve"]) if c[2] is not None and c[2] >= TARGET), None)
            hit = r["curve"][hit_i] if hit_i is not None else None
            steps_to = (hit_i + 1) * r["steps"] // len(r["curve"]) if hit else None
            wait = 1 - ref["step"] / r["step"] if ref and alg != "local-sgd" else None
            busy = r["busy"]
            vs_sps = r["sps"] / base["sps"] if base else None
            vs_t = hit[0] / base_t if hit and base_t else None
            def fmt(value, spec, empty=""):
                return empty if value is None else format(value, spec)

            cells = [str(n), NAMES.get(alg, alg), fmt(r["step"] * 1e3, ".0f"), fmt(r["sps"], ".0f"),
                     fmt(vs_sps, ".2f"), fmt(r["mib_step"], ".1f"), fmt(wait, ".0%"),
                     fmt(busy, ".0%"), fmt(r["final_acc"], ".2%"),
                     str(steps_to) if steps_to else "not reached",
                     fmt(hit[0] if hit else None, ".1f"), fmt(vs_t, ".2f"),
                     fmt(hit[1] if hit else None, ".1f")]
            print("| " + " | ".join(cells) + " |")

    os.makedirs(PLOTS, exist_ok=True)
    ns = sorted({n for (_, n) in runs})
    fig, axes = plt.subplots(1, len(ns), figsize=(5.5 * len(ns), 3.8), squeeze=False)
    for j, n in enumerate(ns):
        ax = axes[0][j]
        for alg in order:
            r = runs.get((alg, n))
            if r is None or alg == "local-sgd":
                continue
            pts = [(c[0], c[2]) for c in r["curve"] if c[2] is not None]
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=NAMES[alg])
        ax.axhline(100 * TARGET, color="k", linestyle=":", label=f"target {TARGET:.0%}")
        ax.set_title(f"mlp-large, {n} hosts at 1 Gbit/s")
        ax.set_xlabel("training time, s (evaluation excluded)")
        ax.set_ylabel("test accuracy of the average model, %")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, "cluster_train_accuracy.png"), dpi=110)
    print(f"\nwrote {PLOTS}/cluster_train_accuracy.png")


if __name__ == "__main__":
    main()
