#!/usr/bin/env python3
"""Checks scripts/plot_convex.py: it plots a small CSV (with a zero, an infinite error and a
diverging run) into a PNG, picks the fastest step size of a grid, and rejects malformed input
with exit code 2.

Usage: test_plot_convex.py PLOT_CONVEX_SCRIPT OUT_DIR. Exit 77 (skipped) without matplotlib.
"""

import os
import subprocess
import sys


def main(script, out_dir):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipped")
        return 77
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "runs.csv")
    with open(csv_path, "w", encoding="utf-8") as handle:
        handle.write("algorithm,topology,nodes,step_size,momentum,iteration,error,relative_error\n")
        for k in range(0, 50, 5):
            handle.write(f"dsgd,ring,4,0.1,0,{k},{0.5 ** k + 0.01},{0.5 ** k + 0.01}\n")
            exact = 0.0 if k == 45 else 0.5 ** (2 * k)
            handle.write(f"exact-diffusion,ring,4,0.1,0,{k},{exact},{exact}\n")
            handle.write(f"d2,exponential,8,0.1,0,{k},{2.0 ** k},{2.0 ** k}\n")
        handle.write("d2,exponential,8,0.1,0,50,inf,inf\n")
    png = os.path.join(out_dir, "runs.png")
    if os.path.exists(png):
        os.remove(png)
    result = subprocess.run([sys.executable, script, csv_path, "-o", png, "--title", "test"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0 or not os.path.exists(png) or os.path.getsize(png) < 1000:
        print("plotting failed:", result.returncode, result.stdout, result.stderr)
        return 1
    with open(png, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            print("output is not a PNG")
            return 1

    # Step 0.2 reaches 1e-6 at iteration 20, step 0.1 at 40: --best-step keeps 0.2.
    grid = os.path.join(out_dir, "grid.csv")
    with open(grid, "w", encoding="utf-8") as handle:
        handle.write("algorithm,topology,nodes,step_size,momentum,iteration,error,relative_error\n")
        for step, rate in ((0.1, 0.5), (0.2, 0.25)):
            for k in range(0, 60, 10):
                value = rate ** (k / 2)
                handle.write(f"gradient-tracking,ring,16,{step},0,{k},{value},{value}\n")
    result = subprocess.run([sys.executable, script, grid, "--best-step", "1e-6", "--table",
                             "--no-plot"], capture_output=True, text=True, check=False)
    expected = "| ring | 16 | gradient-tracking | 0 | 0.2 | 20 |"
    if result.returncode != 0 or expected not in result.stdout or "| 0.1 |" in result.stdout:
        print("best-step table wrong:", result.returncode, result.stdout, result.stderr)
        return 1

    bad = os.path.join(out_dir, "bad.csv")
    with open(bad, "w", encoding="utf-8") as handle:
        handle.write("algorithm,iteration\n")
    result = subprocess.run([sys.executable, script, bad], capture_output=True, text=True,
                            check=False)
    if result.returncode != 2 or "missing columns" not in result.stderr:
        print("malformed CSV not rejected:", result.returncode, result.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
