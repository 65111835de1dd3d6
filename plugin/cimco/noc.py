"""The network-on-chip between the global buffer and the cores: hops by topology.

The architecture (:mod:`cimco.arch`) puts the NoC between the global buffer and the core
fanout as a pass-through (AccelForge's ``Toll``): every bit between the buffer and the macros
crosses it once (inputs down; weights down to the cells; partial sums up, and down again to
be added), costing ``hop_energy_per_bit_j`` for each of the topology's mean hops from the
buffer to a core, at one link's bandwidth (the buffer's port into the network).

AccelForge 1.0.467 has a ``Network`` node of its own (mesh and all-to-all), but its model
raises ``NotImplementedError`` on a spatial loop over a rank that is only partly relevant to
a tensor (a sliding window's kernel rank), which nearly every convolution's mapping onto the
macros has; ``tests/test_upstream.py`` checks that it still does, so that an upgrade which
lifts it fails there and says to move to it.
"""

from __future__ import annotations

import math


def hops(topology: str, cores: int) -> float:
    """Mean hops from the global buffer to a core (a bit crossing the NoC pays them; its time
    is its bits over one link, the hop latency counting only in :func:`transfer`).

    - ``bus``: one.
    - ``mesh``: the cores on a k x k grid (k = ceil(sqrt(cores)), filled row by row), the
      buffer on the router of the corner core: one hop into the mesh plus the mean Manhattan
      distance from that corner (assumed placement).
    - ``htree``: the root at the buffer, a level a hop: ceil(log2(cores)) hops to every leaf
      (at least one), as NeuroSim's H-tree reaches its tiles (all hops assumed alike).
    """
    if topology == "bus":
        return 1.0
    if topology == "htree":
        return float(max(1, math.ceil(math.log2(cores))))
    k = math.ceil(math.sqrt(cores))
    return 1.0 + sum(i // k + i % k for i in range(cores)) / cores


def stage_hops(topology: str, cores: int) -> float:
    """Mean hops between consecutive stages of a layer pipeline, laid out on cores in order
    (assumed): a bus 1; a mesh 1 (a snake order makes consecutive cores neighbours); an H-tree
    up to the lowest common branch of leaves i and i + 1 and down again, averaged over i."""
    if topology != "htree" or cores < 2:
        return 1.0
    return sum(2 * (i ^ (i + 1)).bit_length() for i in range(cores - 1)) / (cores - 1)


def transfer(noc, cores: int, bits: float) -> tuple[float, float]:
    """(energy, time) of ``bits`` from one stage to the next over ``noc`` (a NocSpec): each bit
    over :func:`stage_hops` hops, through one link (the receiving stage's; assumed), after the
    route's hop latencies."""
    n = stage_hops(noc.topology, cores)
    return bits * n * noc.hop_energy_per_bit_j.value, bits / noc.link_bandwidth_bits_per_s + n * noc.hop_latency_s
