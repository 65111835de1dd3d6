"""SystemSpec -> architecture node list (plain dicts in AccelForge's arch schema).

The tree, top to bottom::

    DRAM -> GlobalBuffer (inputs, outputs) -> core[cores] -> macro[macros_per_core]
        -> WordlineDriver, ADC, ShiftAdd (per macro)
        -> column[cols] -> row[wordlines_on] -> CellArray (weights) -> compute

``row`` reduces outputs across the word lines on at once; the cell array holds
``rows / wordlines_on`` row groups that take turns, so every row group costs one ADC
conversion per output and input/weight slice. Weights stay in their macros: the core and
macro fanouts may not split output positions (no weight copies), which also halves
mapping time. There is no per-macro buffer: measured, one raises mapping time 20-60x.

This module builds data only; :mod:`cimco._af` turns it into AccelForge objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimco.spec.macro import ComponentEnergy, MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits

# The parts inside each macro (below the macro fanout), as named in the node list.
MACRO_PARTS = ("WordlineDriver", "ADC", "ShiftAdd", "CellArray")
# The system-spec field that sizes each bounded memory node (for errors naming the spec).
SPEC_FIELDS = {"GlobalBuffer": "global_buffer.size_bits", "CellArray": "macro.rows"}
# Rank variables of output positions; a fanout that splits these copies weights.
OUTPUT_POSITION_RANKS = "{p, q, t}"


@dataclass(frozen=True)
class Slicing:
    """How a layer's bits map onto the macro's slices."""

    input_slices: int
    weight_slices: int

    @classmethod
    def of(cls, macro: MacroSpec, bits: Bits) -> Slicing:
        return cls(macro.n_input_slices(bits.input), macro.n_weight_slices(bits.weight))


def _table(read_j: float, write_j: float, throughput: float, area_m2: float) -> dict:
    return {"component_class": "CimcoTable", "extra_attributes_for_component_model": {
        "read_energy": read_j, "write_energy": write_j, "throughput": throughput,
        "table_area": area_m2}}


def _macro_parts(m: MacroSpec) -> dict[str, dict]:
    """Component class + attributes for the four macro parts, table or model path."""
    shared = {"tech_node": m.tech_node_m, "voltage": m.voltage_v,
              "reference_voltage": m.reference_voltage_v, "cycle_s": m.cycle_s}
    # Accumulator wide enough for the macro's widest precision (hardware, not per layer).
    width = m.adc_bits + m.input_bits.max + m.weight_bits.max + (m.rows // m.wordlines_on).bit_length()
    e = m.energy
    if isinstance(e, ComponentEnergy):
        return {
            "CellArray": {"component_class": "CimcoCellArray", "extra_attributes_for_component_model": {
                **shared, "rows": m.rows, "cells": m.rows // m.wordlines_on,
                "array_scale": e.array_scale.value}},
            "WordlineDriver": {"component_class": "CimcoWordlineDriver",
                               "extra_attributes_for_component_model": {
                                   **shared, "cols": m.cols, "rows": m.rows,
                                   "wordlines_on": m.wordlines_on, "driver_scale": e.array_scale.value}},
            "ADC": {"component_class": "CimcoAdc", "extra_attributes_for_component_model": {
                **shared, "adc_bits": m.adc_bits, "adcs": m.adcs, "adc_scale": e.adc_scale.value}},
            "ShiftAdd": {"component_class": "CimcoShiftAdd", "extra_attributes_for_component_model": {
                **shared, "width_bits": width, "adcs": m.adcs, "digital_scale": e.array_scale.value}},
        }
    area = m.area_m2.value if m.area_m2 else 0.0  # a table macro's area sits on its cell array
    return {
        "CellArray": _table(e.cell_mac_j.value, e.weight_write_j.value, 1 / m.cycle_s,
                            area / (m.wordlines_on * m.cols)),
        "WordlineDriver": _table(e.wordline_drive_j.value, 0.0, m.wordlines_on / m.cycle_s, 0.0),
        "ADC": _table(e.adc_convert_j.value, 0.0, m.adcs / m.cycle_s, 0.0),
        "ShiftAdd": _table(e.shift_add_j.value, 0.0, m.adcs / m.cycle_s, 0.0),
    }


def build_nodes(system: SystemSpec, bits: Bits) -> list[dict]:
    """The architecture for layers of precision ``bits`` (slicing depends on bits)."""
    m = system.macro
    sl = Slicing.of(m, bits)
    parts = _macro_parts(m)
    both = sl.input_slices * sl.weight_slices
    conversions = m.conversions_per_output(bits.input, bits.weight)
    per_value = {"values_per_action": {"All": 1}}
    dram, glb = system.dram, system.global_buffer
    no_copy = [{"expression": OUTPUT_POSITION_RANKS, "operator": "<=", "value": 1}]
    return [
        {"kind": "Memory", "name": "DRAM", "size": float("inf"), "tensors": {"keep": "All"},
         "bits_per_action": 1,
         **_table(dram.energy_per_bit_j.value, dram.energy_per_bit_j.value,
                  dram.bandwidth_bits_per_s, 0.0)},
        {"kind": "Memory", "name": "GlobalBuffer", "size": glb.size_bits,
         "tensors": {"keep": "~weight", "may_keep": "Nothing"}, "bits_per_action": 1,
         **_table(glb.energy_per_bit_j.value, glb.energy_per_bit_j.value,
                  glb.bandwidth_bits_per_s, glb.area_m2.value)},
        {"kind": "Container", "name": "Core",
         "spatial": [{"name": "core", "fanout": system.cores, "loop_bounds": no_copy}]},
        {"kind": "Container", "name": "Macro",
         "spatial": [{"name": "macro", "fanout": system.macros_per_core, "loop_bounds": no_copy,
                      "power_gateable": True}]},
        {"kind": "Toll", "name": "WordlineDriver", "tensors": {"keep": "input"}, "direction": "down",
         "actions_scale": sl.input_slices, **per_value, **parts["WordlineDriver"]},
        {"kind": "Toll", "name": "ADC", "tensors": {"keep": "output"}, "direction": "up",
         "actions_scale": conversions, **per_value, **parts["ADC"]},
        {"kind": "Toll", "name": "ShiftAdd", "tensors": {"keep": "output"}, "direction": "up",
         "actions_scale": conversions, **per_value, **parts["ShiftAdd"]},
        {"kind": "Container", "name": "Column",
         "spatial": [{"name": "column", "fanout": m.cols, "may_reuse": "input", "min_usage": 1,
                      "usage_scale": sl.weight_slices}]},
        {"kind": "Container", "name": "Row",
         "spatial": [{"name": "row", "fanout": m.wordlines_on, "reuse": "output", "min_usage": 1}]},
        {"kind": "Memory", "name": "CellArray", "size": m.rows // m.wordlines_on * bits.weight,
         "tensors": {"keep": "weight", "no_refetch_from_above": "weight",
                     "force_memory_hierarchy_order": False},
         "actions_scale": both, "throughput_scale": sl.weight_slices, **per_value,
         **parts["CellArray"]},
        {"kind": "Compute", "name": "Compute", "component_class": "Dummy"},
    ]
