"""Decent: decentralized deep-learning training.

The PyTorch interface is ``decent.torch``::

    import decent.torch as dt
    dt.init()
    dt.set_topology(dt.exponential(dt.size()))
    x = dt.neighbor_allreduce(x)

The compiled core (``decent._decent``) is loaded by ``decent.torch`` after ``torch``.
"""

__version__ = "0.1.0"
