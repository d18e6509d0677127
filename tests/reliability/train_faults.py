#!/usr/bin/env python3
"""decent-train under faults and bad data files.

    train_faults.py kill_resume   # kill a rank of an MPI run after an epoch checkpoint, resume,
                                  # and compare with an uninterrupted run of the same seed
    train_faults.py bad_dataset   # corrupt IDX files: exit code 1, the file and the problem
                                  # named, no metrics or checkpoint written

Paths come from the environment: DECENTRUN, DECENT_TRAIN and WORKDIR (a scratch directory).
"""
import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid

RANKS = 3
EPOCHS = 4
COMMON = ["--algorithm", "dmsgd", "--topology", "ring", "--dataset", "synthetic",
          "--synthetic-samples", "3000", "--model", "mlp", "--batch-size", "16",
          "--epochs", str(EPOCHS), "--seed", "11", "--eval-samples", "300", "--quiet"]
# The metrics that must match bit for bit (wall time and throughput may differ).
EXACT_FIELDS = ["epoch", "train_loss", "test_accuracy_avg", "test_accuracy_local",
                "test_accuracy_rank0", "consensus_distance", "bytes_sent_per_rank", "lr", "steps"]


def fail(message):
    print("FAILED: " + message, flush=True)
    sys.exit(1)


def scratch(name):
    path = os.path.join(os.environ["WORKDIR"], name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def processes_with_tag(tag):
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if tag.encode() not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        rank = None
        for variable in environ:
            if variable.startswith(b"OMPI_COMM_WORLD_RANK="):
                rank = int(variable.split(b"=", 1)[1])
        found[int(entry)] = rank
    return found


def train_command(extra):
    return [os.environ["DECENTRUN"], "-np", str(RANKS), "--timeout-ms", "20000",
            os.environ["DECENT_TRAIN"]] + COMMON + extra


def run(command, limit_s=240):
    print("running: " + " ".join(command), flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=limit_s)
    return result.returncode, result.stdout.decode(errors="replace")


def manifest_epoch(checkpoint):
    try:
        with open(os.path.join(checkpoint, "manifest.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def kill_resume():
    work = scratch("kill_resume")
    straight = os.path.join(work, "straight.json")
    code, output = run(train_command(["--metrics", straight]))
    if code != 0:
        fail(f"the uninterrupted run failed with {code}:\n{output}")

    # The tag in the metrics path identifies this job's processes.
    tag = "killed-" + uuid.uuid4().hex[:12]
    resumed = os.path.join(work, tag + ".json")
    checkpoint = os.path.join(work, "checkpoint")
    command = train_command(["--metrics", resumed, "--checkpoint", checkpoint])
    print("running: " + " ".join(command), flush=True)
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while manifest_epoch(checkpoint) < 1:
            if job.poll() is not None:
                fail("the run ended before its first checkpoint:\n" + job.stdout.read().decode())
            if time.monotonic() > deadline:
                fail("no checkpoint within 180 s")
            time.sleep(0.05)
        ranks = {rank: pid for pid, rank in processes_with_tag(tag).items() if rank is not None}
        if 1 not in ranks:
            fail(f"rank 1 of the run not found (found ranks {sorted(ranks)})")
        os.kill(ranks[1], signal.SIGKILL)
        try:
            code = job.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("the run still ran 30 s after one of its ranks was killed")
        output = job.stdout.read().decode(errors="replace")
        print(output)
        if code == 0:
            fail("decentrun exited with 0 although rank 1 was killed")
        if not re.search(r"decentrun: rank 1 \((pid \d+ )?on \S+\) was killed by signal 9", output):
            fail("decentrun did not name the killed rank")
        epoch = manifest_epoch(checkpoint)
        if epoch >= EPOCHS:
            fail(f"the run finished (checkpoint of epoch {epoch}) before the kill took effect")
        print(f"killed rank 1 after the checkpoint of epoch {epoch}", flush=True)
        time.sleep(1)
        left = processes_with_tag(tag)
        if left:
            fail(f"processes left behind: {sorted(left)}")
    finally:
        for pid in processes_with_tag(tag):
            os.kill(pid, signal.SIGKILL)
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except OSError:
            pass

    # What a rank killed while writing leaves behind: a temporary file of the next epoch. The
    # resume must ignore it.
    stale = os.path.join(checkpoint, "rank-00002", f"epoch-{epoch + 1:06d}.pt.tmp.424242")
    with open(stale, "wb") as f:
        f.write(b"\x80\x02half-written")

    code, output = run(train_command(["--metrics", resumed, "--checkpoint", checkpoint,
                                      "--resume"]))
    if code != 0:
        fail(f"the resumed run failed with {code}:\n{output}")
    a = json.load(open(straight))["epochs"]
    b = json.load(open(resumed))["epochs"]
    if len(a) != EPOCHS or len(b) != EPOCHS:
        fail(f"expected {EPOCHS} epochs, got {len(a)} (straight) and {len(b)} (resumed)")
    for e in range(EPOCHS):
        for field in EXACT_FIELDS:
            if a[e][field] != b[e][field]:
                fail(f"epoch {e + 1} {field}: uninterrupted {a[e][field]!r}, "
                     f"resumed {b[e][field]!r}")
    print(f"kill_resume: resumed from epoch {epoch}; all {EPOCHS} epochs identical", flush=True)


def idx_images(count, magic=0x803, rows=28, cols=28, pixels=None):
    body = bytes((i * 7) % 256 for i in range(count * rows * cols)) if pixels is None else pixels
    return struct.pack(">IIII", magic, count, rows, cols) + body


def idx_labels(count, magic=0x801):
    return struct.pack(">II", magic, count) + bytes(i % 10 for i in range(count))


def bad_dataset():
    cases = [
        ("wrong_magic", {"train-images-idx3-ubyte": idx_images(20, magic=0x801)},
         r"train-images-idx3-ubyte: wrong magic number 0x00000801, expected 0x00000803"),
        ("truncated", {"train-images-idx3-ubyte": idx_images(20)[:5000]},
         r"train-images-idx3-ubyte: truncated: the header promises 15680 bytes of pixel data "
         r"from byte 16 on, only 4984 are present"),
        ("count_mismatch", {"train-labels-idx1-ubyte": idx_labels(19)},
         r"train-labels-idx1-ubyte: 19 labels, but \S+train-images-idx3-ubyte holds 20 images"),
        ("gzip_cut", {"train-images-idx3-ubyte.gz": gzip.compress(idx_images(20), mtime=0)[:300]},
         r"train-images-idx3-ubyte.gz: truncated"),
    ]
    for name, override, pattern in cases:
        data = scratch("bad_dataset_" + name)
        files = {"train-images-idx3-ubyte": idx_images(20), "train-labels-idx1-ubyte":
                 idx_labels(20), "t10k-images-idx3-ubyte": idx_images(10),
                 "t10k-labels-idx1-ubyte": idx_labels(10)}
        for file_name in override:
            files.pop(file_name.replace(".gz", ""), None)
        files.update(override)
        for file_name, content in files.items():
            with open(os.path.join(data, file_name), "wb") as f:
                f.write(content)
        out = scratch("bad_dataset_out_" + name)
        metrics = os.path.join(out, "metrics.json")
        checkpoint = os.path.join(out, "checkpoint")
        code, output = run([os.environ["DECENT_TRAIN"], "--local", "2", "--algorithm", "dmsgd",
                            "--topology", "ring", "--dataset", "fashion-mnist", "--data-dir",
                            data, "--epochs", "1", "--metrics", metrics, "--checkpoint",
                            checkpoint], limit_s=120)
        print(output)
        if code != 1:
            fail(f"{name}: exit code {code}, expected 1")
        if not re.search(r"decent-train: error(?: on rank \d+)?: .*" + pattern, output):
            fail(f"{name}: the message does not match {pattern!r}")
        written = [p for p in (metrics, checkpoint) if os.path.exists(p)]
        if written:
            fail(f"{name}: output written for a run that could not start: {written}")
        print(f"bad_dataset {name}: passed", flush=True)


if __name__ == "__main__":
    cases = {"kill_resume": kill_resume, "bad_dataset": bad_dataset}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        print(__doc__)
        sys.exit(2)
    cases[sys.argv[1]]()
