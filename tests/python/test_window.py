# One-sided windows from Python: the window's buffer is the tensor itself.
import torch

import decent.torch as dt

N = dt.size()
R = dt.rank()


def values(r):
    return torch.tensor([r + 1.0, 2.0 * r, -float(r)], dtype=torch.float64)


def mix(w, r):
    return sum((float(w[r, j]) * values(j) for j in range(N)), torch.zeros(3, dtype=torch.float64))


def test_update_with_initial_slots_is_neighbour_averaging():
    g = dt.ring(N)
    dt.set_topology(g)
    x = values(R)
    dt.win_create(x, "x")
    try:
        # Slots start as the neighbours' tensors, so update() alone is one averaging round.
        y = dt.win_update("x")
        assert y is x
        torch.testing.assert_close(x, mix(g.mixing_matrix(), R), rtol=0, atol=1e-12)
    finally:
        dt.win_free("x")


def test_put_then_update():
    g = dt.exponential(N)
    dt.set_topology(g)
    x = values(R)
    win = dt.win_create(x, "p", zero_init=True)
    try:
        assert win.in_neighbors == g.in_neighbors(R)
        dt.win_put("p")
        dt.barrier()  # every put has completed at return
        assert dt.win_versions("p") == {j: 1 for j in g.in_neighbors(R)}
        dt.win_update("p")
        torch.testing.assert_close(x, mix(g.mixing_matrix(), R), rtol=0, atol=1e-12)
        assert dt.win_versions("p") == {j: 0 for j in g.in_neighbors(R)}
        dt.barrier()
    finally:
        dt.win_free("p")


def test_put_with_a_new_tensor_and_weights_then_read_value():
    dt.set_topology(dt.ring(N))
    x = torch.zeros(3, dtype=torch.float64)
    dt.win_create(x, "q", zero_init=True)
    try:
        dt.win_put(values(R), "q")  # BlueFog order: tensor, then name
        assert torch.equal(x, values(R))
        dt.barrier()
        nxt = (R + 1) % N
        assert torch.equal(dt.win_read_value("q", nxt), values(nxt))
        dt.barrier()  # win_update republishes: no rank updates before every rank has read
        srcs = dt.ring(N).in_neighbors(R)
        # Only the slots count, with the given weights: x <- 0 x + sum_j 1/deg slot_j.
        if srcs:
            dt.win_update("q", self_weight=0.0,
                          neighbor_weights={j: 1.0 / len(srcs) for j in srcs})
            want = sum((values(j) for j in srcs), torch.zeros(3, dtype=torch.float64)) / len(srcs)
            torch.testing.assert_close(x, want, rtol=0, atol=1e-12)
        dt.barrier()
    finally:
        dt.win_free("q")


def test_counter_and_lock():
    dt.set_topology(dt.ring(N))
    x = torch.zeros(1, dtype=torch.float64)
    win = dt.win_create(x, "c")
    try:
        win.fetch_add_counter(0, R + 1)
        dt.barrier()
        assert win.fetch_add_counter(0, 0) == N * (N + 1) // 2
        dt.win_lock("c")
        assert win.holds_lock()
        dt.win_unlock("c")
        assert not win.holds_lock()
        dt.barrier()
    finally:
        dt.win_free("c")


def test_unknown_window_raises():
    import pytest

    with pytest.raises(dt.InvalidArgument):
        dt.win_update("never-created")
