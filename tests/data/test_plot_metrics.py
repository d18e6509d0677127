#!/usr/bin/env python3
"""Runs scripts/plot_metrics.py on two small fake metrics files and checks its output.

Usage: test_plot_metrics.py PLOT_SCRIPT OUT_DIR. Exits 77 (skipped) without matplotlib.
"""

import json
import math
import os
import subprocess
import sys

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_run(algorithm, topology, consensus_scale, accuracy_offset):
    epochs = []
    for epoch in range(1, 6):
        epochs.append({
            "epoch": epoch,
            "train_loss": 2.3 * math.exp(-0.4 * epoch),
            "test_accuracy_avg": 0.5 + accuracy_offset + 0.07 * epoch,
            "test_accuracy_local": 0.48 + accuracy_offset + 0.06 * epoch,
            "consensus_distance": consensus_scale / epoch,
            "samples_per_sec": 4000.0,
            "bytes_sent_per_rank": 940000 * epoch,
            "wall_time_s": (3.1 + 10 * accuracy_offset) * epoch,
        })
    return {"algorithm": algorithm, "topology": topology, "world_size": 8,
            "config": {"model": "mlp", "batch_size": 32, "lr": 0.05}, "epochs": epochs}


def main():
    script, out_dir = sys.argv[1], sys.argv[2]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipping")
        return 77
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for name, run in (("dsgd_ring", fake_run("dsgd", "ring", 0.2, 0.0)),
                      ("allreduce", fake_run("allreduce", "fully-connected", 0.0, 0.02))):
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(run, handle)
        files.append(path)

    failures = 0
    result = subprocess.run([sys.executable, script, "-o", out_dir, "--prefix", "fake_"] + files,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"FAIL: plot_metrics.py exited {result.returncode}: {result.stderr}")
        failures += 1
    for name in ("accuracy", "loss", "consensus", "accuracy_vs_bytes"):
        path = os.path.join(out_dir, f"fake_{name}.png")
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            print(f"FAIL: {path} was not written")
            failures += 1
            continue
        if not data.startswith(PNG_SIGNATURE) or len(data) < 5000:
            print(f"FAIL: {path} is not a plausible PNG ({len(data)} bytes)")
            failures += 1

    # A file without an 'epochs' list is refused with a message naming it.
    broken = os.path.join(out_dir, "broken.json")
    with open(broken, "w", encoding="utf-8") as handle:
        json.dump({"algorithm": "dsgd"}, handle)
    result = subprocess.run([sys.executable, script, "-o", out_dir, broken],
                            capture_output=True, text=True, check=False)
    if result.returncode == 0 or "broken.json" not in result.stderr:
        print(f"FAIL: a malformed file was accepted: {result.returncode} {result.stderr!r}")
        failures += 1

    checks = 6
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
