"""A dynamic layer (a matmul of activations) on the system's digital unit, in closed form.

Where a system has a ``digital_unit``, its dynamic layers run there instead of writing their
stored operand into the macros at every run: each multiply-accumulate costs the unit's
``energy_per_mac_j``, and the unit does ``macs_per_s`` of them. Its operands and result move
as a backend's single-layer mapping moves a layer's: both operands from DRAM into the global
buffer and read from it by the unit, the result written to the buffer and drained to DRAM, so
that the execution step (:mod:`cimco.execution`) keeps on chip what fits there, as for any
layer. Latency: the slowest of the unit, DRAM and the buffer (each bandwidth-bound).
"""

from __future__ import annotations

from cimco.backends import LayerResult, by_action
from cimco.parts import DIGITAL_UNIT, DRAM, GLOBAL_BUFFER
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits, Layer


def result(system: SystemSpec, layer: Layer, bits: Bits) -> LayerResult:
    """One run of a dynamic linear ``layer`` (``tokens`` x ``in_channels`` times ``in_channels``
    x ``out_channels``) on the digital unit; counts in bits at the memories, MACs at the unit."""
    unit = system.digital_unit
    macs = layer.tokens * layer.in_channels * layer.out_channels
    moved = {"I": layer.tokens * layer.in_channels * bits.input,
             "W": layer.in_channels * layer.out_channels * bits.weight}
    out = layer.tokens * layer.out_channels * bits.output
    tensor_actions = {(DIGITAL_UNIT, "O", "read"): float(macs), (DRAM, "O", "write"): float(out),
                      (GLOBAL_BUFFER, "O", "write"): float(out), (GLOBAL_BUFFER, "O", "read"): float(out)}
    for t, b in moved.items():
        tensor_actions |= {(DRAM, t, "read"): float(b), (GLOBAL_BUFFER, t, "write"): float(b),
                           (GLOBAL_BUFFER, t, "read"): float(b)}
    actions = by_action(tensor_actions)
    per_bit = {DRAM: system.dram.energy_per_bit_j.value, GLOBAL_BUFFER: system.global_buffer.energy_per_bit_j.value,
               DIGITAL_UNIT: unit.energy_per_mac_j.value}
    energy = {k: n * per_bit[k[0]] for k, n in actions.items()}
    latency = {DIGITAL_UNIT: macs / unit.macs_per_s,
               DRAM: (actions[DRAM, "read"] + actions[DRAM, "write"]) / system.dram.bandwidth_bits_per_s,
               GLOBAL_BUFFER: (actions[GLOBAL_BUFFER, "read"] + actions[GLOBAL_BUFFER, "write"])
               / system.global_buffer.bandwidth_bits_per_s}
    return LayerResult(energy_j=sum(energy.values()), latency_s=max(latency.values()), computes=float(macs),
                       energy=energy, actions=actions, tensor_actions=tensor_actions,
                       latency_by_component=latency, mapping=f"{layer.name}: {macs} MACs on the digital unit")
