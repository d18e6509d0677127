#!/usr/bin/env python3
"""Fault tests: a multi-process job loses one rank and must end quickly, loudly and completely.

    faults.py sigkill   # rank 2 of 4 is killed with SIGKILL mid-run
    faults.py sigstop   # rank 2 of 4 is stopped with SIGSTOP for longer than the timeout

Each case starts `decentrun -np 4 --timeout-ms T fault_loop ...`, waits until every rank is
averaging, injects the fault and then checks that decentrun exits non-zero within a bound, that
the output names the lost rank (and, for a stall, the operation), and that no process of the
job is left. Paths come from the environment: DECENTRUN and FAULT_LOOP.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

RANKS = 4
VICTIM = 2
TIMEOUT_MS = 3000
# How long the job may take to end after the fault: a timeout plus time to tear the job down
# on two oversubscribed cores.
KILL_BOUND_S = 20.0
STALL_BOUND_S = TIMEOUT_MS / 1000.0 + 20.0


def fail(message):
    print("FAILED: " + message, flush=True)
    sys.exit(1)


def rank_pids(tag):
    """Maps world rank -> pid for the ranks whose command line carries `tag`."""
    ranks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            if tag.encode() not in cmdline:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue  # the process ended while we looked
        for variable in environ:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                ranks[int(variable.split(b"=", 1)[1])] = int(entry)
    return ranks


def processes_with_tag(tag):
    """Every live (not zombie) process whose command line carries `tag`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if tag.encode() not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry))
    return found


class Job:
    """decentrun running fault_loop, with its combined output collected by a reader thread."""

    def __init__(self, tag):
        self.tag = tag
        command = [os.environ["DECENTRUN"], "-np", str(RANKS), "--timeout-ms", str(TIMEOUT_MS),
                   os.environ["FAULT_LOOP"], "--steps", "100000000", "--sleep-ms", "5",
                   "--report-every", "20", "--tag", tag]
        print("running: " + " ".join(command), flush=True)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.process.stdout:
            with self.lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_until_every_rank_steps(self, limit_s=90.0):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            text = self.output()
            if all(re.search(rf"fault_loop: rank {r} step \d+", text) for r in range(RANKS)):
                return
            if self.process.poll() is not None:
                fail(f"the job ended before every rank was running:\n{text}")
            time.sleep(0.1)
        fail(f"not every rank reached a step within {limit_s} s:\n{self.output()}")

    def wait_for_exit(self, bound_s):
        """Returns (exit code, seconds) or fails when the job outlives the bound."""
        start = time.monotonic()
        try:
            code = self.process.wait(timeout=bound_s)
        except subprocess.TimeoutExpired:
            self.cleanup()
            fail(f"the job still ran {bound_s} s after the fault:\n{self.output()}")
        self.reader.join(timeout=10)
        return code, time.monotonic() - start

    def cleanup(self):
        for pid in processes_with_tag(self.tag):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass


def check_nothing_left(job, grace_s=10.0):
    deadline = time.monotonic() + grace_s
    left = processes_with_tag(job.tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_with_tag(job.tag)
    if left:
        job.cleanup()
        fail(f"processes left behind after the job ended: {left}\n{job.output()}")


def expect_in_output(job, pattern, what):
    if not re.search(pattern, job.output()):
        fail(f"the output does not {what} (pattern {pattern!r}):\n{job.output()}")


def run_case(case):
    job = Job("fault-" + case + "-" + uuid.uuid4().hex[:12])
    try:
        job.wait_until_every_rank_steps()
        pids = rank_pids(job.tag)
        if sorted(pids) != list(range(RANKS)):
            fail(f"found ranks {sorted(pids)} of the job, expected 0..{RANKS - 1}")
        victim = pids[VICTIM]
        if case == "sigkill":
            os.kill(victim, signal.SIGKILL)
            code, seconds = job.wait_for_exit(KILL_BOUND_S)
        else:
            os.kill(victim, signal.SIGSTOP)
            code, seconds = job.wait_for_exit(STALL_BOUND_S)
        print(job.output())
        print(f"{case}: decentrun exited with {code} {seconds:.1f} s after the fault", flush=True)
        if code == 0:
            fail("decentrun exited with 0 although a rank was lost")
        if case == "sigkill":
            # decentrun's summary names the rank that died, its host and the signal.
            expect_in_output(job, rf"decentrun: rank {VICTIM} \((pid {victim} )?on \S+\) was "
                             r"killed by signal 9 \(Killed\)", "name the killed rank and host")
        else:
            # The neighbours of the stalled rank time out naming it and the operation.
            expect_in_output(job, rf"error on rank [13]: rank [13]: neighbor_allreduce #\d+ timed "
                             rf"out after {TIMEOUT_MS} ms; .*\[{VICTIM}\]",
                             "name the stalled rank and the operation")
            expect_in_output(job, r"decentrun: rank [13] aborted the job \(MPI_Abort with error "
                             r"code 1\)", "name the first rank that failed")
        check_nothing_left(job)
    finally:
        job.cleanup()
    print(f"{case}: passed", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("sigkill", "sigstop"):
        print(__doc__)
        sys.exit(2)
    run_case(sys.argv[1])
