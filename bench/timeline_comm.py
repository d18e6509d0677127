#!/usr/bin/python3
"""Communication time in decent timelines (DECENT_TIMELINE / decentrun --timeline).

    /usr/bin/python3 bench/timeline_comm.py PREFIX*.json

For every rank: the time its communication thread spent in "communicate" spans (sending,
receiving and waiting for peers' messages), the time spent in "reduce" spans, the bytes sent,
and these as a fraction of the rank's traced wall time (first span start to last span end). The
timeline records the communication thread, not the training thread: with overlap, communicating
is not the same as waiting; bench/cluster_train.sh takes the waiting time from a compute-only
reference run instead, and reports this as the communication thread's busy fraction.
"""
import json
import sys
from collections import defaultdict


def main(paths):
    per_rank = defaultdict(lambda: {"comm": 0.0, "reduce": 0.0, "bytes": 0, "ops": 0,
                                    "start": None, "end": None})
    for path in paths:
        with open(path) as f:
            text = f.read()
        try:
            events = json.loads(text)["traceEvents"]
        except json.JSONDecodeError:
            # A run that was stopped leaves the file unterminated, possibly mid-line.
            events = json.loads(text[:text.rfind("},\n") + 1] + "\n]}")["traceEvents"]
        for e in events:
            if e.get("ph") != "X":
                continue
            r = per_rank[e["pid"]]
            start, end = e["ts"] / 1e6, (e["ts"] + e["dur"]) / 1e6
            r["start"] = start if r["start"] is None else min(r["start"], start)
            r["end"] = end if r["end"] is None else max(r["end"], end)
            if e["cat"] == "communicate":
                r["comm"] += e["dur"] / 1e6
                r["bytes"] += e["args"].get("bytes", 0)
                r["ops"] += 1
            elif e["cat"] == "reduce":
                r["reduce"] += e["dur"] / 1e6
    if not per_rank:
        print("no timeline events")
        return 1
    fractions = []
    print("rank  traced s  communicate s  reduce s  ops  MB sent  communicate fraction")
    for rank in sorted(per_rank):
        r = per_rank[rank]
        span = r["end"] - r["start"]
        fraction = r["comm"] / span if span > 0 else 0.0
        fractions.append(fraction)
        print(f"{rank:>4}  {span:>8.1f}  {r['comm']:>13.1f}  {r['reduce']:>8.2f}  {r['ops']:>3}  "
              f"{r['bytes'] / 1e6:>7.1f}  {fraction:>8.3f}")
    print(f"mean communicate fraction {sum(fractions) / len(fractions):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
