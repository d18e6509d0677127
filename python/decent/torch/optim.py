"""Optimizers of decent.torch.

Two kinds:

* The C++ algorithms (``DecentLaM``, ``DSGD``, ``DmSGD``, ``PmSGD``, ...; any name of
  :func:`list_algorithms` through :func:`make_optimizer`). They update the model's own parameter
  tensors in place, with the neighbour averaging fused and, for the adapt-with-combine
  algorithms, overlapped with the next backward pass.
* Wrappers of any ``torch.optim`` optimizer under BlueFog's and Horovod's names:
  ``DistributedNeighborAllreduceOptimizer`` (local step, then neighbour averaging of the
  parameters), ``DistributedAllreduceOptimizer`` (local step, then exact average of the
  parameters) and ``DistributedGradientAllreduceOptimizer`` = ``DistributedOptimizer``
  (average the gradients over all ranks, then step).
"""

import torch as _torch

from decent import _decent as _C


def _param_list(params, what):
    if isinstance(params, _torch.Tensor):
        raise TypeError(f"{what}: params must be an iterable of tensors (model.parameters()), "
                        "got a single tensor")
    params = list(params)
    if not params:
        raise ValueError(f"{what}: got an empty parameter list")
    if isinstance(params[0], dict):
        if len(params) != 1:
            raise ValueError(f"{what}: decent's optimizers take one parameter group, "
                             f"got {len(params)}")
        params = list(params[0]["params"])
    for p in params:
        if not isinstance(p, _torch.Tensor):
            raise TypeError(f"{what}: expected tensors, got {type(p).__name__}")
    return params


class DecentOptimizer:
    """A decentralized optimizer of the C++ core over the given parameters (one group).

    ``step()`` runs the local update and the communication of the algorithm on every rank (all
    ranks must call it in the same order); the parameters are updated in place.
    """

    def __init__(self, algorithm, params, **hyper):
        self._params = _param_list(params, algorithm)
        self._opt = _C.make_optimizer(algorithm, self._params, hyper)

    @property
    def param_groups(self):
        return [{"params": self._params, "lr": self.lr}]

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with _torch.enable_grad():
                loss = closure()
        self._opt.step()
        return loss

    def zero_grad(self, set_to_none=False):
        if set_to_none:
            for p in self._params:
                p.grad = None
        else:
            self._opt.zero_grad()

    @property
    def lr(self):
        return self._opt.lr

    @lr.setter
    def lr(self, value):
        self._opt.lr = float(value)

    @property
    def iteration(self):
        """Completed steps."""
        return self._opt.iteration

    @property
    def algorithm(self):
        """The factory name ("decentlam", "dsgd", ...)."""
        return self._opt.algorithm

    def synchronize(self):
        """Waits for a neighbour average started ahead by the last step (overlap)."""
        self._opt.synchronize()

    def discard_prefetched_average(self):
        """After synchronize(): the next step averages the parameters as they are then (call it
        when the parameters were changed outside the optimizer)."""
        self._opt.discard_prefetched_average()

    def save(self, path):
        """Checkpoint of the optimizer (iteration, options, per-parameter state)."""
        self._opt.save(str(path))

    def load(self, path):
        self._opt.load(str(path))

    def __repr__(self):
        return f"decent.torch.{type(self).__name__}(algorithm={self.algorithm!r}, lr={self.lr})"


def make_optimizer(name, params, **hyper):
    """The algorithm `name` (see list_algorithms()) over `params`. Hyperparameters: lr,
    momentum, weight_decay, period, gossip_rounds, slowmo_beta, slowmo_alpha, slowmo_gossip,
    qg_mu, lars_eta, overlap, base_optimizer, combine, compressor, consensus_step, betas, eps."""
    return DecentOptimizer(name, params, **hyper)


def _named(algorithm, doc, defaults):
    def __init__(self, params, lr, **hyper):
        merged = dict(defaults)
        merged.update(hyper)
        DecentOptimizer.__init__(self, algorithm, params, lr=lr, **merged)

    __init__.__doc__ = doc
    return __init__


class PmSGD(DecentOptimizer):
    """Parallel momentum SGD: exact gradient average (allreduce) + momentum."""
    __init__ = _named("pmsgd", __doc__, {"momentum": 0.9})


class DSGD(DecentOptimizer):
    """D-SGD: x <- W(x - lr g); combine="awc" gives x <- Wx - lr g with overlapped averaging."""

    def __init__(self, params, lr, combine="atc", **hyper):
        if combine not in ("atc", "awc"):
            raise ValueError(f"DSGD: combine must be 'atc' or 'awc', got {combine!r}")
        DecentOptimizer.__init__(self, "dsgd" if combine == "atc" else "dsgd-awc", params,
                                 lr=lr, **hyper)


class DmSGD(DecentOptimizer):
    """Decentralized momentum SGD: m <- beta m + g, x <- W(x - lr m)."""
    __init__ = _named("dmsgd", __doc__, {"momentum": 0.9})


class DecentLaM(DecentOptimizer):
    """DecentLaM: X+ = W(X - lr G) + beta (X - X-), momentum without its bias."""
    __init__ = _named("decentlam", __doc__, {"momentum": 0.9})


class QGDmSGD(DecentOptimizer):
    """Quasi-global momentum DmSGD."""
    __init__ = _named("qg-dmsgd", __doc__, {"momentum": 0.9})


class LocalSGD(DecentOptimizer):
    """Local (momentum) SGD / FedAvg: exact average every `period` iterations."""
    __init__ = _named("local-sgd", __doc__, {"momentum": 0.9})


class SlowMo(DecentOptimizer):
    """SlowMo: local momentum SGD, exact average every period, slow momentum."""
    __init__ = _named("slowmo", __doc__, {"momentum": 0.9})


class PushSum(DecentOptimizer):
    """Stochastic gradient push for directed or one-peer graphs."""
    __init__ = _named("push-sum", __doc__, {"momentum": 0.9})


class EXTRA(DecentOptimizer):
    """EXTRA: exact convergence on heterogeneous data."""
    __init__ = _named("extra", __doc__, {})


class ExactDiffusion(DecentOptimizer):
    """Exact-Diffusion: adapt, correct, combine with (I+W)/2."""
    __init__ = _named("exact-diffusion", __doc__, {})


class D2(DecentOptimizer):
    """D^2: variance-reduced decentralized SGD."""
    __init__ = _named("d2", __doc__, {})


class GradientTracking(DecentOptimizer):
    """Gradient tracking (DIGing): x+ = Wx - lr y, y+ = Wy + g+ - g."""
    __init__ = _named("gradient-tracking", __doc__, {})


class ChocoSGD(DecentOptimizer):
    """CHOCO-SGD: compressed gossip with replicas; compressor and consensus_step."""
    __init__ = _named("choco-sgd", __doc__, {})


class AsyncGossip(DecentOptimizer):
    """Asynchronous window gossip (put + update)."""
    __init__ = _named("async-gossip", __doc__, {"momentum": 0.9})


# ---------------------------------------------------------------- wrappers of torch.optim
class _Wrapped(_torch.optim.Optimizer):
    """A torch.optim optimizer with communication around its step. It shares the base's
    param_groups and state (LR schedulers work on it) and forwards the rest to the base."""

    def __init__(self, optimizer, model=None, num_steps_per_communication=1,
                 named_parameters=None):
        # model / named_parameters: accepted as BlueFog and Horovod take them; the parameters
        # are those of the optimizer's param_groups.
        if not isinstance(optimizer, _torch.optim.Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a torch.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        if num_steps_per_communication < 1:
            raise ValueError("num_steps_per_communication must be >= 1")
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.defaults = optimizer.defaults
        self.num_steps_per_communication = num_steps_per_communication
        self._steps = 0

    def _parameters(self):
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none=False):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group):
        self.optimizer.add_param_group(param_group)

    def __getstate__(self):
        return self.__dict__

    def __repr__(self):
        return f"{type(self).__name__}({self.optimizer!r})"


class DistributedNeighborAllreduceOptimizer(_Wrapped):
    """BlueFog's wrapper: the base step, then every `num_steps_per_communication` steps the
    parameters are replaced by their neighbour average over the topology (adapt-then-combine),
    all parameters fused into one exchange."""

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        self._steps += 1
        if self._steps % self.num_steps_per_communication == 0:
            with _torch.no_grad():
                _C.neighbor_allreduce_(self._parameters())
        return loss


class DistributedAllreduceOptimizer(_Wrapped):
    """The base step, then the exact average of the parameters over all ranks."""

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        self._steps += 1
        if self._steps % self.num_steps_per_communication == 0:
            with _torch.no_grad():
                _C.allreduce_(self._parameters(), _C.ReduceOp.Average)
        return loss


class DistributedGradientAllreduceOptimizer(_Wrapped):
    """Horovod's DistributedOptimizer: gradients averaged over all ranks (fused), then the base
    step. A parameter without a gradient contributes zeros so every rank sends the same
    tensors."""

    def __init__(self, optimizer, named_parameters=None, num_steps_per_communication=1,
                 model=None):
        super().__init__(optimizer, model, num_steps_per_communication, named_parameters)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with _torch.enable_grad():
                loss = closure()
        grads = []
        for p in self._parameters():
            if p.grad is None:
                p.grad = _torch.zeros_like(p)
            grads.append(p.grad)
        with _torch.no_grad():
            _C.allreduce_(grads, _C.ReduceOp.Average)
        self.optimizer.step()
        return loss


DistributedOptimizer = DistributedGradientAllreduceOptimizer


def broadcast_optimizer_state(optimizer, root_rank=0):
    """Copies root_rank's optimizer state to every rank: a decent optimizer, a wrapper above, or
    any torch.optim optimizer (every rank must hold state for the same parameters, e.g. after
    one step, or none at all)."""
    if isinstance(optimizer, DecentOptimizer):
        optimizer._opt.broadcast_state(root_rank)
        return
    if isinstance(optimizer, _Wrapped):
        optimizer = optimizer.optimizer
    # state_dict()["state"] holds the optimizer's own per-parameter dicts (keyed by position),
    # so writing into them updates the optimizer.
    state = optimizer.state_dict()["state"]
    with _torch.no_grad():
        for key in sorted(state):
            entry = state[key]
            for field in sorted(entry):
                value = entry[field]
                if isinstance(value, _torch.Tensor):
                    if value.is_contiguous():
                        _C.broadcast_(value, root_rank)
                    else:
                        value.copy_(_C.broadcast_(value.contiguous(), root_rank))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    t = _torch.tensor([value], dtype=_torch.float64)
                    _C.broadcast_(t, root_rank)
                    entry[field] = type(value)(t.item())
