#!/usr/bin/env python3
"""Soak test: long decentralized training under random rank slowdowns, watching memory and
progress. Not part of CI; scripts/soak.sh runs it (see docs/reliability.md).

Starts `decentrun -np RANKS decent-train ...` (DmSGD on the one-peer exponential graph, synthetic
data, a checkpoint every epoch) for MINUTES minutes. Every few seconds a random rank is stopped
with SIGSTOP for 0.2-2 s and continued, so its peers wait on it (well below the timeout). The RSS
of every rank is sampled every SAMPLE seconds. Fails when
  - the job ends by itself before the time is up (a crash or a timeout),
  - no epoch finishes for --hang-seconds (a hang),
  - a rank's RSS grows by more than --max-growth-mb between the first and the last fifth of the
    run (medians of the samples, after a warm-up).
Writes rss.csv, metrics.json and the job's output into --out.
"""
import argparse
import csv
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid


def rank_pids(tag):
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if tag.encode() not in f.read():
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        for variable in environ:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(variable.split(b"=", 1)[1])] = int(entry)
    return ranks


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def epochs_done(metrics):
    try:
        with open(metrics) as f:
            return len(json.load(f)["epochs"])
    except (OSError, ValueError, KeyError):
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build", help="build directory with bin/")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--hang-seconds", type=float, default=180.0)
    parser.add_argument("--timeout-ms", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="soak-out")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    bin_dir = os.path.join(args.build, "bin")
    tag = "soak-" + uuid.uuid4().hex[:12]
    metrics = os.path.join(args.out, tag + "-metrics.json")
    command = [os.path.join(bin_dir, "decentrun"), "-np", str(args.ranks), "--timeout-ms",
               str(args.timeout_ms), os.path.join(bin_dir, "decent-train"),
               "--algorithm", "dmsgd", "--topology", "one-peer-exponential",
               "--dataset", "synthetic", "--synthetic-samples", "6000", "--model", "mlp",
               "--batch-size", "32", "--epochs", "1000000", "--max-steps-per-epoch", "100",
               "--eval-samples", "500", "--seed", str(args.seed), "--metrics", metrics,
               "--checkpoint", os.path.join(args.out, "checkpoint"), "--quiet"]
    print("soak: " + " ".join(command), flush=True)
    log = open(os.path.join(args.out, "job.log"), "wb")
    job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rng = random.Random(args.seed)
    samples = []  # (seconds, rank, rss_kb)
    stops = 0
    failure = None
    start = time.monotonic()
    end = start + args.minutes * 60
    last_progress = (start, 0)
    next_sample = start
    next_stop = start + 10
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if job.poll() is not None:
                failure = f"the job ended by itself with status {job.returncode} after {now - start:.0f} s"
                break
            pids = rank_pids(tag)
            if now >= next_sample and len(pids) == args.ranks:
                for rank, pid in sorted(pids.items()):
                    value = rss_kb(pid)
                    if value is not None:
                        samples.append((now - start, rank, value))
                next_sample = now + args.sample
            done = epochs_done(metrics)
            if done > last_progress[1]:
                last_progress = (now, done)
            elif now - last_progress[0] > args.hang_seconds:
                failure = f"no epoch finished for {args.hang_seconds:.0f} s (hang) after epoch {done}"
                break
            if now >= next_stop and pids:
                rank = rng.choice(sorted(pids))
                pause = rng.uniform(0.2, 2.0)
                os.kill(pids[rank], signal.SIGSTOP)
                time.sleep(pause)
                os.kill(pids[rank], signal.SIGCONT)
                stops += 1
                next_stop = time.monotonic() + rng.uniform(2.0, 8.0)
            time.sleep(0.5)
    finally:
        # Stop the job: SIGTERM to decentrun is forwarded to mpirun, which stops every rank.
        if job.poll() is None:
            job.send_signal(signal.SIGTERM)
            try:
                job.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
        for pid in rank_pids(tag).values():
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        log.close()

    with open(os.path.join(args.out, "rss.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "rank", "rss_kb"])
        writer.writerows(samples)
    epochs = epochs_done(metrics)
    elapsed = time.monotonic() - start
    print(f"soak: {elapsed / 60:.1f} min, {epochs} epochs, {stops} random stops, "
          f"{len(samples)} RSS samples", flush=True)

    # Memory: median of the first and the last fifth of the samples after one minute of warm-up
    # (or the first fifth of the run when it is shorter).
    warmup = min(60.0, elapsed / 5)
    span = elapsed - warmup
    print("rank  rss_first_mb  rss_last_mb  growth_mb  peak_mb")
    for rank in range(args.ranks):
        mine = [(t, kb) for t, r, kb in samples if r == rank and t >= warmup]
        first = [kb for t, kb in mine if t < warmup + span / 5]
        last = [kb for t, kb in mine if t >= elapsed - span / 5]
        if not first or not last:
            failure = failure or f"too few RSS samples of rank {rank}"
            continue
        a, b = statistics.median(first) / 1024, statistics.median(last) / 1024
        peak = max(kb for _, kb in mine) / 1024
        print(f"{rank:4d}  {a:12.1f}  {b:11.1f}  {b - a:9.1f}  {peak:7.1f}")
        if b - a > args.max_growth_mb:
            failure = failure or (f"rank {rank} grew by {b - a:.1f} MB "
                                  f"(limit {args.max_growth_mb} MB)")
    if failure:
        print("soak FAILED: " + failure, flush=True)
        print("job output: " + os.path.join(args.out, "job.log"))
        return 1
    print("soak passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
