"""decent.torch: decentralized training for PyTorch on decent's C++ core.

Conventions follow BlueFog and Horovod::

    import decent.torch as dt
    dt.init()                                    # MPI under decentrun, otherwise one rank
    dt.set_topology(dt.exponential(dt.size()))
    y = dt.neighbor_allreduce(x)                 # y_i = sum_j w_ij x_j over the topology
    h = dt.neighbor_allreduce_nonblocking(x)     # overlaps with computation
    y = dt.wait(h)
    dt.broadcast_parameters(model.state_dict(), root_rank=0)
    opt = dt.DecentLaM(model.parameters(), lr=0.1, momentum=0.9)

Tensors must be contiguous CPU tensors; they are passed to C++ without copies. Functions whose
name ends in ``_`` work in place. Errors of the C++ core arrive as :class:`DecentError` and its
subclasses with the C++ message.
"""

import atexit as _atexit
import gc as _gc

import torch as _torch  # loads libtorch and its Python bindings before the extension

from decent import _decent as _C
from decent._decent import (  # noqa: F401  (re-exported)
    CommError,
    DecentError,
    Graph,
    Handle,
    InvalidArgument,
    MismatchError,
    ReduceOp,
    Schedule,
    TimeoutError,
    TopologyError,
    Window,
    apply_weights,
    backend,
    consensus_distance as _consensus_distance,
    directed_ring,
    exponential,
    fully_connected,
    grid,
    hypercube,
    is_initialized,
    list_algorithms,
    list_topologies,
    local_rank,
    local_size,
    machine_rank,
    machine_size,
    make_graph,
    make_schedule,
    one_peer_exponential,
    random_graph,
    rank,
    ring,
    set_step,
    size,
    star,
    stats,
    step,
    symmetric_exponential,
    torus,
)
from decent.torch import topology_util  # noqa: F401
from decent.torch.optim import (  # noqa: F401
    D2,
    DSGD,
    EXTRA,
    AsyncGossip,
    ChocoSGD,
    DecentLaM,
    DecentOptimizer,
    DistributedAllreduceOptimizer,
    DistributedGradientAllreduceOptimizer,
    DistributedNeighborAllreduceOptimizer,
    DistributedOptimizer,
    DmSGD,
    ExactDiffusion,
    GradientTracking,
    LocalSGD,
    PmSGD,
    PushSum,
    QGDmSGD,
    SlowMo,
    broadcast_optimizer_state,
    make_optimizer,
)

Sum = ReduceOp.Sum
Average = ReduceOp.Average
Min = ReduceOp.Min
Max = ReduceOp.Max

# ---------------------------------------------------------------- process
def init(topology=None, *, timeout=None, fusion_threshold_bytes=None, ranks_per_machine=None,
         check_consistency=None, timeline_prefix=None):
    """Joins the job: MPI when launched by decentrun/mpirun, otherwise a single rank.

    ``topology`` is anything :func:`set_topology` takes, or a function of the number of ranks
    returning one (BlueFog's ``bf.init(topology_fn)``). The default topology is the static
    exponential graph. Options left at None come from the DECENT_* environment variables.
    Calling init() again does nothing.
    """
    _C.init(timeout, fusion_threshold_bytes, ranks_per_machine, check_consistency,
            timeline_prefix)
    if topology is not None:
        set_topology(topology(size()) if callable(topology) else topology)


def shutdown():
    """Frees every window and releases the communication context (also run at exit)."""
    if not _C.is_initialized():
        return
    for name in list(_windows):
        win_free(name)
    _gc.collect()  # optimizers holding the context release it
    _C.shutdown()


_atexit.register(shutdown)


def barrier():
    """Blocks until every rank has called barrier()."""
    _C.barrier()


# ---------------------------------------------------------------- topology
def set_topology(topology, is_weighted=True):
    """Sets the communication topology of neighbour operations.

    Accepts a :class:`Graph` (e.g. ``dt.ring(dt.size())``), a :class:`Schedule` (dynamic, e.g.
    ``dt.one_peer_exponential(n)``), a topology name (``"exponential"``, ``"torus"``,
    ``"one-peer-exponential"``, ...; see :func:`list_topologies`), or a square matrix W
    (tensor, numpy array or nested lists) with ``W[i, j]`` the weight rank ``i`` gives to rank
    ``j``. ``is_weighted=False`` replaces the graph's weights by uniform ones.
    """
    if not isinstance(topology, (Graph, Schedule, str)):
        import numpy as _np

        if not isinstance(topology, (_torch.Tensor, _np.ndarray, list, tuple)):
            raise TypeError("set_topology: expected a Graph, a Schedule, a topology name or a "
                            f"mixing matrix, got {type(topology).__name__}")

        w = _np.asarray(topology.detach().cpu().numpy() if isinstance(topology, _torch.Tensor)
                        else topology, dtype=_np.float64)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"set_topology: a mixing matrix must be square, got shape {w.shape}")
        topology = Graph.from_matrix(w)
    if isinstance(topology, Graph) and not is_weighted:
        topology = apply_weights(topology, "uniform")
    _C.set_topology(topology)


def load_topology():
    """The topology in use, as a :class:`Schedule` (``.graph_at(step)`` gives its Graph)."""
    return _C.topology()


def in_neighbor_ranks(step=None):
    """Ranks this rank receives from at `step` (default: the current step)."""
    return sorted(_C.step_plan(step)["src_weights"])


def out_neighbor_ranks(step=None):
    """Ranks this rank sends to at `step` (default: the current step)."""
    return sorted(_C.step_plan(step)["dst_weights"])


def step_plan(step=None):
    """This rank's plan at `step`: {'self_weight', 'src_weights', 'dst_weights'}."""
    return _C.step_plan(step)


# ---------------------------------------------------------------- helpers
def _weights(weights, what):
    """None, a {rank: weight} dict, or (for dst_weights) a list of ranks meaning weight 1."""
    if weights is None or isinstance(weights, dict):
        return weights
    try:
        return {int(r): 1.0 for r in weights}
    except TypeError:
        raise TypeError(f"{what} must be a dict {{rank: weight}} or a list of ranks, "
                        f"got {type(weights).__name__}") from None


def _op(average, op, default=ReduceOp.Average):
    if op is not None and average is not None:
        raise ValueError("pass either average= or op=, not both")
    if op is not None:
        return op
    if average is not None:
        return ReduceOp.Average if average else ReduceOp.Sum
    return default


def _check_tensor(tensor, what):
    if not isinstance(tensor, _torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor, got {type(tensor).__name__}")


def _copy(tensor, what):
    _check_tensor(tensor, what)
    with _torch.no_grad():
        return tensor.detach().clone(memory_format=_torch.preserve_format)


# ---------------------------------------------------------------- neighbour averaging
def neighbor_allreduce(tensor, self_weight=None, src_weights=None, dst_weights=None, *,
                       step=None, name=None):
    """Returns ``self_weight * x_i + sum_j src_weights[j] * x_j`` over the in-neighbours.

    Defaults come from the topology. ``src_weights`` ({rank: weight}) selects the ranks to
    receive from; ``dst_weights`` ({rank: factor} or a list of ranks) the ranks to send to, each
    message multiplied by its factor (dynamic mode: every rank must name senders and receivers
    consistently). ``name`` is accepted for compatibility and ignored.
    """
    _check_tensor(tensor, "neighbor_allreduce")
    return _C.neighbor_allreduce(tensor, self_weight=self_weight,
                                 src_weights=_weights(src_weights, "src_weights"),
                                 dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def neighbor_allreduce_(tensor, self_weight=None, src_weights=None, dst_weights=None, *,
                        step=None, name=None):
    """In-place neighbor_allreduce of a tensor, or of a list of tensors fused into one
    exchange (same weights for all)."""
    return _C.neighbor_allreduce_(tensor, self_weight=self_weight,
                                  src_weights=_weights(src_weights, "src_weights"),
                                  dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def neighbor_allreduce_nonblocking(tensor, self_weight=None, src_weights=None, dst_weights=None,
                                   *, step=None, name=None):
    """Starts neighbor_allreduce and returns a :class:`Handle`; ``wait(handle)`` returns the
    result. The tensor must not be modified until then."""
    _check_tensor(tensor, "neighbor_allreduce_nonblocking")
    return _C.neighbor_allreduce_nonblocking(
        tensor, self_weight=self_weight, src_weights=_weights(src_weights, "src_weights"),
        dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def neighbor_allreduce_nonblocking_(tensor, self_weight=None, src_weights=None,
                                    dst_weights=None, *, step=None, name=None):
    """In-place non-blocking neighbor_allreduce of a tensor or a list of tensors."""
    return _C.neighbor_allreduce_nonblocking_(
        tensor, self_weight=self_weight, src_weights=_weights(src_weights, "src_weights"),
        dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def neighbor_allgather(tensor, src_weights=None, dst_weights=None, *, step=None, name=None):
    """The in-neighbours' tensors (not this rank's) concatenated along dim 0, by source rank.
    Only the keys of src_weights/dst_weights matter (which ranks to receive from/send to)."""
    _check_tensor(tensor, "neighbor_allgather")
    return _C.neighbor_allgather(tensor, src_weights=_weights(src_weights, "src_weights"),
                                 dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def hierarchical_neighbor_allreduce(tensor, self_weight=None, src_weights=None,
                                    dst_weights=None, *, step=None, name=None):
    """Exact average inside each machine, then neighbour averaging between machines over the
    machine topology (weights here are machine weights)."""
    out = _copy(tensor, "hierarchical_neighbor_allreduce")
    return hierarchical_neighbor_allreduce_(out, self_weight, src_weights, dst_weights,
                                            step=step)


def hierarchical_neighbor_allreduce_(tensor, self_weight=None, src_weights=None,
                                     dst_weights=None, *, step=None, name=None):
    """In-place hierarchical_neighbor_allreduce."""
    return _C.hierarchical_neighbor_allreduce_(
        tensor, self_weight=self_weight, src_weights=_weights(src_weights, "src_weights"),
        dst_weights=_weights(dst_weights, "dst_weights"), step=step)


def pair_gossip(tensor, peer, self_weight=0.5):
    """``self_weight * x + (1 - self_weight) * x_peer``; both ranks must name each other."""
    return _C.pair_gossip_(_copy(tensor, "pair_gossip"), peer, self_weight)


def pair_gossip_(tensor, peer, self_weight=0.5):
    """In-place pair_gossip."""
    return _C.pair_gossip_(tensor, peer, self_weight)


# ---------------------------------------------------------------- collectives
def allreduce(tensor, average=None, op=None, *, name=None):
    """Average (default) or ``op`` (dt.Sum, dt.Average, dt.Min, dt.Max) over all ranks.
    ``average=False`` means Sum, as in BlueFog/Horovod."""
    return _C.allreduce_(_copy(tensor, "allreduce"), _op(average, op))


def allreduce_(tensor, average=None, op=None, *, name=None):
    """In-place allreduce of a tensor or of a list of tensors (fused)."""
    return _C.allreduce_(tensor, _op(average, op))


def allreduce_nonblocking(tensor, average=None, op=None, *, name=None):
    """Starts an allreduce into a new tensor; ``wait(handle)`` returns it."""
    return _C.allreduce_nonblocking_(_copy(tensor, "allreduce"), _op(average, op))


def allreduce_nonblocking_(tensor, average=None, op=None, *, name=None):
    """Starts an in-place allreduce of a tensor or a list of tensors."""
    return _C.allreduce_nonblocking_(tensor, _op(average, op))


def broadcast(tensor, root_rank, *, name=None):
    """root_rank's tensor, on every rank."""
    return _C.broadcast_(_copy(tensor, "broadcast"), root_rank)


def broadcast_(tensor, root_rank, *, name=None):
    """In-place broadcast from root_rank."""
    return _C.broadcast_(tensor, root_rank)


def broadcast_nonblocking(tensor, root_rank, *, name=None):
    """Starts a broadcast into a new tensor; ``wait(handle)`` returns it."""
    return _C.broadcast_nonblocking_(_copy(tensor, "broadcast"), root_rank)


def broadcast_nonblocking_(tensor, root_rank, *, name=None):
    """Starts an in-place broadcast."""
    return _C.broadcast_nonblocking_(tensor, root_rank)


def allgather(tensor, *, name=None):
    """Every rank's tensor concatenated along dim 0 in rank order (first dims may differ)."""
    _check_tensor(tensor, "allgather")
    return _C.allgather(tensor)


def allgather_nonblocking(tensor, *, name=None):
    """Starts an allgather; ``wait(handle)`` returns the concatenation."""
    _check_tensor(tensor, "allgather")
    return _C.allgather_nonblocking(tensor)


def wait(handle):
    """Blocks until a non-blocking operation is done and returns its result (the output tensor,
    or the list of tensors of a list operation). Raises the operation's error."""
    return handle.wait()


synchronize = wait  # Horovod's name


def poll(handle):
    """True when the operation is done (never blocks)."""
    return handle.poll()


# ---------------------------------------------------------------- models
def _tensors_of(params, what):
    if isinstance(params, dict):
        items = list(params.values())
    else:
        items = [p[1] if isinstance(p, tuple) else p for p in params]
    for t in items:
        _check_tensor(t, what)
    return items


def broadcast_parameters(params, root_rank=0):
    """Copies root_rank's tensors into every rank's, in place: ``model.state_dict()``,
    ``model.named_parameters()`` or a list of tensors (same order on every rank)."""
    with _torch.no_grad():
        _C.broadcast_parameters(_tensors_of(params, "broadcast_parameters"), root_rank)


def allreduce_parameters(params):
    """Replaces every tensor by its average over all ranks (fused)."""
    with _torch.no_grad():
        _C.allreduce_(_tensors_of(params, "allreduce_parameters"), ReduceOp.Average)


def consensus_distance(params):
    """(1/n) sum_i ||x_i - mean||^2 over the given tensors (or a module's parameters)."""
    if isinstance(params, _torch.nn.Module):
        params = list(params.parameters())
    return _consensus_distance(_tensors_of(params, "consensus_distance"))


# ---------------------------------------------------------------- windows
_windows = {}


def win_create(tensor, name, zero_init=False):
    """Collective: creates the window `name` over `tensor` itself (no copy; the window's buffer
    is the tensor). Slots start as the neighbours' tensors, or zeros with zero_init=True."""
    _check_tensor(tensor, "win_create")
    win = _C.win_create(tensor, name, zero_init)
    _windows[name] = tensor
    return win


def window(name):
    """The :class:`Window` `name` (put/get/update/lock/read_value/fetch_add_counter...)."""
    return _C.window(name)


def _win_args(tensor, name, what):
    if isinstance(tensor, str) and name is None:
        return None, tensor
    if name is None:
        raise TypeError(f"{what}: the window name is required")
    return tensor, name


def _set_window_tensor(tensor, name, what):
    if tensor is not None:
        buf = _windows.get(name)
        if buf is None:
            _C.window(name)  # raises InvalidArgument naming the window
        if tensor is not buf:
            with _torch.no_grad():
                buf.copy_(tensor)


def win_put(tensor, name=None, dst_weights=None):
    """Writes the window's tensor (first replaced by `tensor` if given) into this rank's slot
    at each out-neighbour, multiplied by dst_weights[rank] (default: every out-neighbour, 1).
    ``win_put(name)`` puts the window's tensor as it is."""
    tensor, name = _win_args(tensor, name, "win_put")
    _set_window_tensor(tensor, name, "win_put")
    _C.window(name).put(_weights(dst_weights, "dst_weights"))


def win_accumulate(tensor, name=None, dst_weights=None):
    """Adds the window's tensor (times dst_weights[rank]) to this rank's slot at each
    destination."""
    tensor, name = _win_args(tensor, name, "win_accumulate")
    _set_window_tensor(tensor, name, "win_accumulate")
    _C.window(name).accumulate(_weights(dst_weights, "dst_weights"))


def win_get(name, src_ranks=None):
    """Fetches the in-neighbours' published values into their slots here."""
    _C.window(name).get(None if src_ranks is None else list(src_ranks))


def win_update(name, self_weight=None, neighbor_weights=None, reset=False):
    """``x <- self_weight * x + sum_j neighbor_weights[j] * slot_j`` (defaults from the
    topology); returns the window's tensor, updated in place."""
    _C.window(name).update(self_weight, neighbor_weights, reset)
    return _windows[name]


def win_versions(name):
    """{in-neighbour: puts/accumulates that arrived from it since the last win_update}."""
    return _C.window(name).versions()


def win_read_value(name, rank):
    """`rank`'s published value of the window (a new tensor)."""
    out = _torch.empty_like(_windows[name])
    _C.window(name).read_value(rank, out)
    return out


def win_lock(name, rank=-1):
    """Takes the mutex of `rank`'s window (default: this rank's)."""
    _C.window(name).lock(rank)


def win_unlock(name, rank=-1):
    """Releases the mutex of `rank`'s window."""
    _C.window(name).unlock(rank)


def win_free(name=None):
    """Collective: frees the window `name` (every window when None)."""
    names = list(_windows) if name is None else [name]
    for n in names:
        _C.win_free(n)
        _windows.pop(n, None)
