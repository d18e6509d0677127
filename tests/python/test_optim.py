# Optimizers from Python: the C++ algorithms update the model's own tensors; one step of each
# kind equals its formula, and DecentLaM trains a small regression model.
import pytest
import torch

import decent.torch as dt

N = dt.size()
R = dt.rank()
K = 4


def target(r):
    return torch.tensor([float(r), 1.0 - r, 0.5 * r, 2.0], dtype=torch.float64)


def quadratic_setup():
    """A parameter p (same start everywhere) with loss_r = 0.5 ||p - c_r||^2, gradient p - c_r."""
    p = torch.nn.Parameter(torch.ones(K, dtype=torch.float64))
    return p, (lambda: 0.5 * (p - target(R)).pow(2).sum())


def one_step(opt, p, loss_fn):
    opt.zero_grad()
    loss_fn().backward()
    opt.step()


def test_dsgd_step_is_w_times_local_step_in_place():
    g = dt.ring(N)
    dt.set_topology(g)
    w = g.mixing_matrix()
    p, loss_fn = quadratic_setup()
    ptr = p.data_ptr()
    lr = 0.1
    opt = dt.DSGD([p], lr=lr)
    assert opt.algorithm == "dsgd"
    one_step(opt, p, loss_fn)
    # p_i <- sum_j w_ij (p0 - lr (p0 - c_j))
    p0 = torch.ones(K, dtype=torch.float64)
    want = sum((float(w[R, j]) * (p0 - lr * (p0 - target(j))) for j in range(N)),
               torch.zeros(K, dtype=torch.float64))
    torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-12)
    assert p.data_ptr() == ptr  # updated in place: the model's own tensor
    assert opt.iteration == 1


def test_neighbor_allreduce_wrapper_of_torch_sgd():
    g = dt.exponential(N)
    dt.set_topology(g)
    w = g.mixing_matrix()
    p, loss_fn = quadratic_setup()
    lr = 0.2
    opt = dt.DistributedNeighborAllreduceOptimizer(torch.optim.SGD([p], lr=lr))
    assert isinstance(opt, torch.optim.Optimizer)
    one_step(opt, p, loss_fn)
    p0 = torch.ones(K, dtype=torch.float64)
    want = sum((float(w[R, j]) * (p0 - lr * (p0 - target(j))) for j in range(N)),
               torch.zeros(K, dtype=torch.float64))
    torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-12)
    # LR schedulers drive the wrapper through the shared param_groups.
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    one_step(opt, p, loss_fn)
    sched.step()
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 2)


def test_gradient_allreduce_wrapper_is_horovod_distributed_optimizer():
    p, loss_fn = quadratic_setup()
    lr = 0.3
    opt = dt.DistributedOptimizer(torch.optim.SGD([p], lr=lr), named_parameters=[("p", p)])
    one_step(opt, p, loss_fn)
    mean_c = sum((target(r) for r in range(N)), torch.zeros(K, dtype=torch.float64)) / N
    p0 = torch.ones(K, dtype=torch.float64)
    torch.testing.assert_close(p.detach(), p0 - lr * (p0 - mean_c), rtol=0, atol=1e-12)


def test_allreduce_wrapper_gives_identical_parameters():
    p, loss_fn = quadratic_setup()
    opt = dt.DistributedAllreduceOptimizer(torch.optim.SGD([p], lr=0.1, momentum=0.9))
    for _ in range(3):
        one_step(opt, p, loss_fn)
    assert dt.consensus_distance([p.detach()]) < 1e-24


def test_broadcast_optimizer_state_of_torch_sgd():
    p, loss_fn = quadratic_setup()
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    one_step(opt, p, loss_fn)  # momentum buffer = gradient = 1 - c_r, differs by rank
    dt.broadcast_optimizer_state(opt, root_rank=0)
    buf = opt.state[p]["momentum_buffer"]
    torch.testing.assert_close(buf, torch.ones(K, dtype=torch.float64) - target(0), rtol=0,
                               atol=0)


def test_make_optimizer_errors():
    p, _ = quadratic_setup()
    with pytest.raises(dt.InvalidArgument, match="no-such-algorithm"):
        dt.make_optimizer("no-such-algorithm", [p], lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'betaz'"):
        dt.make_optimizer("dsgd", [p], lr=0.1, betaz=0.5)
    with pytest.raises(dt.InvalidArgument):
        dt.DecentLaM([p], lr=-1.0)
    names = [name for name, _ in dt.list_algorithms()]
    assert "decentlam" in names and "dsgd" in names


def test_learning_rate_property_drives_the_step():
    g = dt.ring(N)
    dt.set_topology(g)
    w = g.mixing_matrix()
    p, loss_fn = quadratic_setup()
    opt = dt.DmSGD([p], lr=0.1, momentum=0.5)
    assert opt.lr == pytest.approx(0.1)
    opt.lr = 0.2
    assert opt.lr == pytest.approx(0.2)
    one_step(opt, p, loss_fn)
    # First DmSGD step: m = g = p0 - c_j, p_i <- sum_j w_ij (p0 - 0.2 m_j).
    p0 = torch.ones(K, dtype=torch.float64)
    want = sum((float(w[R, j]) * (p0 - 0.2 * (p0 - target(j))) for j in range(N)),
               torch.zeros(K, dtype=torch.float64))
    torch.testing.assert_close(p.detach(), want, rtol=0, atol=1e-12)
    with pytest.raises(dt.InvalidArgument, match="must be a finite number > 0"):
        opt.lr = 0.0


def test_decentlam_trains_a_regression_model():
    # Each rank holds its own samples of the same linear model; DecentLaM over the ring (static
    # and symmetric, as DecentLaM's momentum needs) must reduce the global loss and bring the
    # ranks to consensus.
    dt.set_topology(dt.ring(N))
    gen = torch.Generator().manual_seed(1000 + R)
    w_true = torch.tensor([[1.5, -2.0, 0.5, 1.0, -0.5]])
    x = torch.randn(64, 5, generator=gen)
    y = x @ w_true.t() + 0.3 + 0.01 * torch.randn(64, 1, generator=gen)

    torch.manual_seed(R)  # different starts, made equal by broadcast_parameters
    model = torch.nn.Linear(5, 1)
    dt.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = dt.DecentLaM(model.parameters(), lr=0.02, momentum=0.9)

    def global_loss():
        with torch.no_grad():
            loss = torch.nn.functional.mse_loss(model(x), y)
        return dt.allreduce(loss.reshape(1)).item()

    initial = global_loss()
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    opt.synchronize()
    final = global_loss()
    assert final < 0.01 * initial, (initial, final)
    assert dt.consensus_distance(model) < 1e-4
    w = dt.allreduce(model.weight.detach())
    torch.testing.assert_close(w, w_true, rtol=0, atol=0.05)
