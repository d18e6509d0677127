#!/usr/bin/python3
"""Communication time in decent timelines (DECENT_TIMELINE / decentrun --timeline).

    /usr/bin/python3 bench/timeline_comm.py PREFIX*.json

For every rank: the time its communication thread spent in "communicate" spans (sending,
receiving and waiting for peers' messages), the time spent in "reduce" spans, the bytes sent,
the time the calling (training) thread spent blocked in Handle::wait() ("wait" spans on the
"caller wait" row), and the communicate and wait times as fractions of the rank's traced wall
time (first span start to last span end). With overlap, communicating is not the same as
waiting: the wait fraction is the share of the run the training thread stood still for
communication, the communicate fraction how busy the communication thread was. A wait that
found its operation complete records no span, so a fully overlapped run has a wait fraction
near 0. Traces written before wait events existed show a wait time of 0 ("-" in the table).
"""
import json
import sys
from collections import defaultdict


def load_events(path):
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)["traceEvents"]
    except json.JSONDecodeError:
        # A run that was stopped leaves the file unterminated, possibly mid-line.
        return json.loads(text[:text.rfind("},\n") + 1] + "\n]}")["traceEvents"]


def summarize(paths):
    """Per rank: traced span, communicate/reduce/wait seconds, bytes, ops and waits."""
    per_rank = defaultdict(lambda: {"comm": 0.0, "reduce": 0.0, "wait": 0.0, "bytes": 0, "ops": 0,
                                    "waits": 0, "start": None, "end": None})
    for path in paths:
        for e in load_events(path):
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
            elif e["cat"] == "wait":
                r["wait"] += e["dur"] / 1e6
                r["waits"] += 1
    return per_rank


def main(paths):
    per_rank = summarize(paths)
    if not per_rank:
        print("no timeline events")
        return 1
    comm_fractions, wait_fractions = [], []
    print("rank  traced s  communicate s  reduce s  ops  MB sent  communicate fraction"
          "  waits  wait s  wait fraction")
    for rank in sorted(per_rank):
        r = per_rank[rank]
        span = r["end"] - r["start"]
        fraction = r["comm"] / span if span > 0 else 0.0
        waited = r["wait"] / span if span > 0 else 0.0
        comm_fractions.append(fraction)
        wait_fractions.append(waited)
        wait_text = f"{r['waits']:>5}  {r['wait']:>6.2f}  {waited:>13.3f}" if r["waits"] else \
            f"{0:>5}  {'-':>6}  {'-':>13}"
        print(f"{rank:>4}  {span:>8.1f}  {r['comm']:>13.1f}  {r['reduce']:>8.2f}  {r['ops']:>3}  "
              f"{r['bytes'] / 1e6:>7.1f}  {fraction:>20.3f}  {wait_text}")
    print(f"mean communicate fraction {sum(comm_fractions) / len(comm_fractions):.3f}")
    print(f"mean wait fraction {sum(wait_fractions) / len(wait_fractions):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
