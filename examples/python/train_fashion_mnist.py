#!/usr/bin/env python3
"""Decentralized training of a small CNN on Fashion-MNIST with decent.torch.

    build/bin/decentrun -np 4 /usr/bin/python3 examples/python/train_fashion_mnist.py --epochs 1

Each rank trains on its own 1/n of the training set (a random permutation split), averages with
its neighbours through the optimizer, and rank 0 prints the test accuracy of the averaged model
after every epoch.
"""

import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import decent.torch as dt


def read_idx(path):
    """An IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(directory, split):
    prefix = "train" if split == "train" else "t10k"
    images = None
    for suffix in ("", ".gz"):
        path = os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}")
        if os.path.exists(path):
            images = read_idx(path)
            labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"))
            break
    if images is None:
        raise FileNotFoundError(f"no Fashion-MNIST {split} files in {directory}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    x = (x - 0.2860) / 0.3530  # mean and standard deviation of the training images
    return x, torch.from_numpy(labels.astype(np.int64))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--algorithm", default="decentlam",
                        help="any name of dt.list_algorithms()")
    parser.add_argument("--topology", default="symmetric-exponential",
                        help="any name of dt.list_topologies()")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)  # ranks share the cores
    dt.init()
    rank, size = dt.rank(), dt.size()
    dt.set_topology(dt.make_schedule(args.topology, size))

    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "test")
    perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))
    mine = perm[rank::size]  # this rank's part of the data
    x_mine, y_mine = x_train[mine], y_train[mine]

    torch.manual_seed(args.seed + rank)
    model = Net()
    dt.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = dt.make_optimizer(args.algorithm, model.parameters(), lr=args.lr,
                            momentum=args.momentum)
    if rank == 0:
        print(f"{size} ranks, {args.algorithm} over {dt.load_topology().name}, "
              f"{len(x_mine)} samples per rank, batch {args.batch_size} per rank", flush=True)

    steps = len(x_mine) // args.batch_size  # equal on every rank up to one sample: use the min
    steps = int(dt.allreduce(torch.tensor([steps]), op=dt.Min).item())
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(x_mine), generator=torch.Generator().manual_seed(
            args.seed * 1000 + epoch * 100 + rank))
        total = 0.0
        for s in range(steps):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(x_mine[idx]), y_mine[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        opt.synchronize()
        train_loss = dt.allreduce(torch.tensor([total / steps])).item()
        local_acc = evaluate(model, x_test, y_test)
        distance = dt.consensus_distance(model)
        # The averaged model (what the ranks agree on), evaluated on the test set.
        averaged = Net()
        averaged.load_state_dict(model.state_dict())
        dt.allreduce_parameters(averaged.parameters())
        acc = evaluate(averaged, x_test, y_test)
        mean_local_acc = dt.allreduce(torch.tensor([local_acc])).item()
        if rank == 0:
            print(f"epoch {epoch}: train loss {train_loss:.4f}, test accuracy {acc:.4f} "
                  f"(averaged model), {mean_local_acc:.4f} (mean over ranks), consensus "
                  f"distance {distance:.3g}, {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
