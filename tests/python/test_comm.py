# Neighbour averaging, collectives and non-blocking operations from Python: every value is the
# mixing-matrix result computed here (and the closed forms the C++ tests assert).
import math
import threading
import time

import numpy as np
import pytest
import torch

import decent.torch as dt

N = dt.size()
R = dt.rank()
K = 6  # elements per tensor


def value(r, k):
    return 10.0 * r + 0.5 * k + 1.0


def values(r, dtype=torch.float64):
    return torch.tensor([value(r, k) for k in range(K)], dtype=dtype)


def mix(w, r, dtype=torch.float64):
    """sum_j W[r, j] values(j): what rank r holds after one neighbour averaging."""
    out = torch.zeros(K, dtype=torch.float64)
    for j in range(N):
        out += float(w[r, j]) * values(j)
    return out.to(dtype)


def ring_in(r):
    return sorted({(r - 1) % N, (r + 1) % N} - {r})


def exponential_in(r):
    levels = math.ceil(math.log2(N)) if N > 1 else 0
    return sorted({(r - 2**t) % N for t in range(levels)} - {r})


def test_rank_and_size():
    assert 0 <= R < N
    ranks = dt.allgather(torch.tensor([R], dtype=torch.int64))
    assert ranks.tolist() == list(range(N))
    assert dt.is_initialized()


@pytest.mark.parametrize("name", ["ring", "exponential", "torus", "star", "fully-connected"])
def test_uniform_average_matches_mixing_matrix(name):
    g = dt.make_graph(name, N)
    dt.set_topology(g)
    w = g.mixing_matrix()
    assert w.shape == (N, N)
    assert np.allclose(w.sum(axis=1), 1.0)
    out = dt.neighbor_allreduce(values(R))
    torch.testing.assert_close(out, mix(w, R), rtol=0, atol=1e-12)
    # float32, in place
    x = values(R, torch.float32)
    assert dt.neighbor_allreduce_(x) is x
    torch.testing.assert_close(x, mix(w, R, torch.float32), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,in_ranks", [("ring", ring_in), ("exponential", exponential_in)])
def test_uniform_average_closed_form(name, in_ranks):
    # Uniform weights: 1/(in-degree + 1) for this rank and each in-neighbour.
    dt.set_topology(name)
    srcs = in_ranks(R)
    want = (values(R) + sum((values(j) for j in srcs), torch.zeros(K, dtype=torch.float64)))
    want /= len(srcs) + 1
    torch.testing.assert_close(dt.neighbor_allreduce(values(R)), want, rtol=0, atol=1e-12)
    assert dt.in_neighbor_ranks() == srcs


def test_exponential_consensus_reaches_the_average():
    # The README's first program: 60 rounds over the exponential graph give (n-1)/2 everywhere.
    dt.set_topology(dt.exponential(N))
    x = torch.tensor([float(R)], dtype=torch.float64)
    for _ in range(60):
        dt.neighbor_allreduce_(x)
    assert abs(x.item() - (N - 1) / 2) < 1e-9


def test_weighted_self_and_sources():
    g = dt.ring(N)
    dt.set_topology(g)
    srcs = g.in_neighbors(R)
    each = 0.75 / len(srcs) if srcs else 0.0
    out = dt.neighbor_allreduce(values(R), self_weight=0.25,
                                src_weights={j: each for j in srcs})
    want = 0.25 * values(R) + sum((each * values(j) for j in srcs),
                                  torch.zeros(K, dtype=torch.float64))
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)


def test_neighbor_sum():
    g = dt.exponential(N)
    dt.set_topology(g)
    srcs = g.in_neighbors(R)
    out = dt.neighbor_allreduce(values(R), self_weight=1.0, src_weights={j: 1.0 for j in srcs})
    want = values(R) + sum((values(j) for j in srcs), torch.zeros(K, dtype=torch.float64))
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)


@pytest.mark.skipif(N < 2, reason="needs two ranks")
def test_dynamic_move():
    # Self weight 0, receive from rank-1, send to rank+1: every value moves one hop.
    x = values(R)
    dt.neighbor_allreduce_(x, self_weight=0.0, src_weights={(R - 1) % N: 1.0},
                           dst_weights=[(R + 1) % N])
    assert torch.equal(x, values((R - 1) % N))


@pytest.mark.skipif(N < 2, reason="needs two ranks")
def test_dynamic_destination_weights():
    # Sender-side scaling: each rank sends 0.5 x to rank+1 and keeps 0.5 x.
    out = dt.neighbor_allreduce(values(R), self_weight=0.5, src_weights={(R - 1) % N: 1.0},
                                dst_weights={(R + 1) % N: 0.5})
    torch.testing.assert_close(out, 0.5 * values(R) + 0.5 * values((R - 1) % N), rtol=0,
                               atol=1e-12)


def test_one_peer_exponential_exact_average():
    schedule = dt.one_peer_exponential(N)
    dt.set_topology(schedule)
    dt.set_step(0)
    x = torch.tensor([float(R)], dtype=torch.float64)
    for _ in range(schedule.period):
        dt.neighbor_allreduce_(x)
    assert abs(x.item() - (N - 1) / 2) < 1e-12
    assert dt.step() == schedule.period


def test_fused_list_equals_one_by_one():
    dt.set_topology(dt.ring(N))
    a, b = values(R), values(R).reshape(2, 3).to(torch.float32) * 2
    out = dt.neighbor_allreduce_([a, b])
    assert out[0] is a and out[1] is b
    w = dt.ring(N).mixing_matrix()
    torch.testing.assert_close(a, mix(w, R), rtol=0, atol=1e-12)
    torch.testing.assert_close(b, (2 * mix(w, R)).reshape(2, 3).float(), rtol=1e-6, atol=1e-5)


def test_matrix_topology():
    # W as a matrix: every rank keeps 1/2 and takes 1/2 from rank+1 (mod n).
    w = np.zeros((N, N))
    for i in range(N):
        w[i, i] += 0.5
        w[i, (i + 1) % N] += 0.5
    dt.set_topology(torch.tensor(w))
    want = 0.5 * values(R) + 0.5 * values((R + 1) % N)
    torch.testing.assert_close(dt.neighbor_allreduce(values(R)), want, rtol=0, atol=1e-12)


def test_allreduce_average_sum_min_max():
    x = values(R)
    mean = sum((values(r) for r in range(N)), torch.zeros(K, dtype=torch.float64)) / N
    torch.testing.assert_close(dt.allreduce(x), mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(dt.allreduce(x, average=False), mean * N, rtol=0, atol=1e-9)
    assert torch.equal(dt.allreduce(x, op=dt.Min), values(0))
    assert torch.equal(dt.allreduce(x, op=dt.Max), values(N - 1))
    assert torch.equal(x, values(R))  # out-of-place leaves the input alone
    i = torch.tensor([R + 1], dtype=torch.int64)
    dt.allreduce_(i, op=dt.Sum)
    assert i.item() == N * (N + 1) // 2


def test_broadcast():
    root = N - 1
    x = values(R)
    y = dt.broadcast(x, root_rank=root)
    assert torch.equal(y, values(root))
    assert torch.equal(x, values(R))
    dt.broadcast_(x, root)
    assert torch.equal(x, values(root))


def test_allgather_with_differing_first_dims():
    x = torch.full((R + 1, 2), float(R))
    g = dt.allgather(x)
    assert g.shape == (N * (N + 1) // 2, 2)
    want = torch.cat([torch.full((r + 1, 2), float(r)) for r in range(N)])
    assert torch.equal(g, want)


def test_neighbor_allgather():
    dt.set_topology(dt.ring(N))
    g = dt.neighbor_allgather(values(R).reshape(1, K))
    srcs = ring_in(R)
    assert g.shape == (len(srcs), K)
    for row, j in enumerate(srcs):
        assert torch.equal(g[row], values(j))


def test_nonblocking_operations():
    dt.set_topology(dt.exponential(N))
    w = dt.exponential(N).mixing_matrix()
    x = values(R)
    h = dt.neighbor_allreduce_nonblocking(x)
    y = dt.wait(h)
    assert dt.poll(h)
    torch.testing.assert_close(y, mix(w, R), rtol=0, atol=1e-12)
    assert torch.equal(x, values(R))

    a, b = values(R), values(R) * 3
    out = dt.wait(dt.neighbor_allreduce_nonblocking_([a, b]))
    assert out[0] is a and out[1] is b
    torch.testing.assert_close(b, 3 * mix(w, R), rtol=0, atol=1e-11)

    mean = sum((values(r) for r in range(N)), torch.zeros(K, dtype=torch.float64)) / N
    handles = [dt.allreduce_nonblocking(values(R)) for _ in range(3)]
    for h in handles:
        torch.testing.assert_close(dt.synchronize(h), mean, rtol=0, atol=1e-12)
    g = dt.wait(dt.allgather_nonblocking(torch.tensor([float(R)] * (R + 1))))
    assert g.tolist() == [float(r) for r in range(N) for _ in range(r + 1)]
    assert torch.equal(dt.wait(dt.broadcast_nonblocking(values(R), 0)), values(0))


def test_unwaited_handle_keeps_tensor_alive():
    # The handle holds the tensors; dropping both before completion must not corrupt anything.
    for _ in range(20):
        dt.neighbor_allreduce_nonblocking(torch.ones(1000, dtype=torch.float64) * R)
    out = dt.allreduce(torch.tensor([1.0]), average=False)
    assert out.item() == N


@pytest.mark.skipif(N < 2, reason="needs a peer to wait for")
def test_blocking_calls_release_the_gil():
    # Rank 0 blocks in barrier() for about 0.3 s while the other ranks sleep; a Python thread
    # of rank 0 counts meanwhile. Holding the GIL in C++ would freeze the count.
    if R != 0:
        time.sleep(0.3)
        dt.barrier()
        return
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.01)
    before = counter[0]
    dt.barrier()
    during = counter[0] - before
    stop.set()
    t.join(10)
    assert during > 1000


def test_parameters_broadcast_and_consensus_distance():
    torch.manual_seed(R)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    assert dt.consensus_distance(model) >= 0.0
    dt.broadcast_parameters(model.state_dict(), root_rank=0)
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    assert dt.consensus_distance(model) == 0.0


# ---------------------------------------------------------------- errors
def test_non_contiguous_tensor_is_rejected_with_the_cpp_message():
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3).t()
    with pytest.raises(dt.InvalidArgument) as e:
        dt.neighbor_allreduce(x)
    assert isinstance(e.value, ValueError) and isinstance(e.value, dt.DecentError)
    assert isinstance(e.value, RuntimeError)
    assert str(e.value) == (f"rank {R}: neighbor_allreduce: tensor is not contiguous "
                            "(call .contiguous() first)")


def test_unsupported_dtype():
    with pytest.raises(dt.InvalidArgument, match=f"rank {R}: allreduce: unsupported tensor dtype"):
        dt.allreduce(torch.zeros(3, dtype=torch.int16))
    with pytest.raises(dt.InvalidArgument, match="needs a floating dtype"):
        dt.neighbor_allreduce(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError):
        dt.neighbor_allreduce([1.0, 2.0])


def test_weight_for_a_non_neighbour():
    dt.set_topology(dt.ring(N))
    if N >= 4:
        bad = (R + 2) % N  # not adjacent on the ring
        with pytest.raises(dt.InvalidArgument,
                           match=f"rank {R}: .*src_weights names rank {bad}, which is not an "
                                 "in-neighbour in topology 'ring'"):
            dt.neighbor_allreduce(values(R), self_weight=0.5, src_weights={bad: 0.5})
    with pytest.raises(dt.InvalidArgument, match=f"src_weights rank {N + 3} is out of range"):
        dt.neighbor_allreduce(values(R), self_weight=0.5, src_weights={N + 3: 0.5})
    with pytest.raises(dt.InvalidArgument, match="self_weight must be given together"):
        dt.neighbor_allreduce(values(R), src_weights={})
    # The context is still usable afterwards.
    assert dt.allreduce(torch.tensor([1.0]), average=False).item() == N


def test_bad_root_and_topology_errors():
    with pytest.raises(dt.InvalidArgument,
                       match=f"rank {R}: broadcast: root {N} is out of range"):
        dt.broadcast(values(R), N)
    with pytest.raises(dt.TopologyError) as e:
        dt.make_graph("no-such-topology", 4)
    assert isinstance(e.value, ValueError)
    with pytest.raises(dt.TopologyError):
        dt.hypercube(6)
    with pytest.raises(TypeError):
        dt.set_topology(3.5)
