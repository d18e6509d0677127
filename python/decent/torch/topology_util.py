"""Topology generators under the names BlueFog users know (``bf.topology_util``).

Each returns a :class:`decent.torch.Graph` whose mixing matrix ``W`` has row ``i`` equal to what
rank ``i`` computes: ``x_i <- sum_j W[i, j] x_j``. (BlueFog's networkx graphs store the
transpose: ``nx.to_numpy_array(G)[j, i]`` is the weight rank ``i`` gives to rank ``j``.)
"""

from decent import _decent as _C


def ExponentialGraph(size, base=2):
    """Rank i sends to (i + base^t) mod size: the static exponential graph."""
    return _C.exponential(size, base)


def ExponentialTwoGraph(size):
    """The static exponential graph of base 2."""
    return _C.exponential(size, 2)


def SymmetricExponentialGraph(size):
    """Rank i exchanges with (i +- 2^t) mod size."""
    return _C.symmetric_exponential(size)


def RingGraph(size, connect_style=0):
    """Ring: connect_style 0 bidirectional, 1 to the left (i receives from i+1), 2 to the right
    (i receives from i-1)."""
    if connect_style == 0:
        return _C.ring(size)
    if connect_style not in (1, 2):
        raise ValueError(f"RingGraph: connect_style must be 0, 1 or 2, got {connect_style}")
    g = _C.Graph(size, "ring-directed")
    for i in range(size):
        g.set_self_weight(i, 0.5 if size > 1 else 1.0)
        if size > 1:
            src = (i + 1) % size if connect_style == 1 else (i - 1) % size
            g.set_edge(src, i, 0.5)
    return g


def StarGraph(size, center_rank=0):
    """Star around center_rank."""
    return _C.star(size, center_rank)


def MeshGrid2DGraph(size):
    """2D mesh without wrap-around, the most square shape."""
    return _C.grid(size)


def FullyConnectedGraph(size):
    """Complete graph; W = 11^T / size."""
    return _C.fully_connected(size)


def HypercubeGraph(size):
    """Hypercube; size must be a power of 2."""
    return _C.hypercube(size)


def OnePeerExponentialGraph(size):
    """Dynamic one-peer exponential schedule: at step k rank i exchanges with i +- 2^(k mod log2 n)."""
    return _C.one_peer_exponential(size)


def IsRegularGraph(topo):
    """True when every rank has the same in-degree."""
    degrees = {len(topo.in_neighbors(i)) for i in range(topo.size)}
    return len(degrees) <= 1
