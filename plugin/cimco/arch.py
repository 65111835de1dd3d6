"""SystemSpec -> architecture node list (plain dicts in AccelForge's arch schema).

The tree, top to bottom::

    DRAM -> GlobalBuffer (inputs, outputs) [-> NoC] -> core[cores] [-> CoreBuffer]
        -> macro[macros_per_core]
        -> WordlineDriver, ADC | AdderTree | nothing (by family), ShiftAdd (per macro)
        -> column[cols] -> row[wordlines_on] -> CellArray (weights) -> compute

``row`` reduces outputs across the word lines on at once; the cell array holds
``rows / wordlines_on`` row groups that take turns, so every row group costs one ADC
conversion per output and input/weight slice. Weights stay in their macros: the core and
macro fanouts may not split output positions (no weight copies), which also halves
mapping time. There is no per-macro buffer: measured, one raises mapping time 20-60x.

The NoC and the memory in each core are optional levels (:mod:`cimco.spec.levels`): the NoC a
pass-through that charges every bit crossing it (:mod:`cimco.noc`), the core buffer a memory
the mapper may use for inputs and outputs.

This module builds data only; :mod:`cimco._af` turns it into AccelForge objects.
"""

from __future__ import annotations

from cimco.geometry import MacroGeometry
from cimco.noc import hops
from cimco.parts import (
    ADC,
    ADDER_TREE,
    CELL_ARRAY,
    COMPUTE,
    CORE_BUFFER,
    DRAM,
    GLOBAL_BUFFER,
    NOC,
    SHIFT_ADD,
    WORDLINE_DRIVER,
)
from cimco.spec.macro import ComponentEnergy, MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import Bits

# Full-adder equivalents of one digital cell's logic (models.CimcoDigitalCell, charged per row
# drive): a NOR/AND multiplier (adder-tree macros), XNOR + full adder (bit-serial, Colonnade).
# Assumed ratios.
DIGITAL_CELL_FA = {"digital_adder_tree": 0.25, "digital_bit_serial": 1.25}
# The system-spec field that sizes each bounded memory node (for errors naming the spec).
SPEC_FIELDS = {GLOBAL_BUFFER: "global_buffer.size_bits", CORE_BUFFER: "core_buffer.size_bits",
               CELL_ARRAY: "macro.rows"}
# Rank variables of output positions; a fanout that splits these copies weights.
OUTPUT_POSITION_RANKS = "{p, q, t}"


def _table(read_j: float, write_j: float, throughput: float, area_m2: float) -> dict:
    return {"component_class": "CimcoTable", "extra_attributes_for_component_model": {
        "read_energy": read_j, "write_energy": write_j, "throughput": throughput,
        "table_area": area_m2}}


def _macro_parts(m: MacroSpec) -> dict[str, dict]:
    """Component class + attributes for the macro's parts, table or model path."""
    e = m.energy
    if isinstance(e, ComponentEnergy):
        parts = _model_parts(m, e)
        if m.area_m2 is not None:
            for name, scale in _area_scales(m, parts).items():
                parts[name]["extra_attributes_for_component_model"]["area_scale"] = scale
    else:
        parts = _table_parts(m, e)
    if m.weights_loaded == "once":  # preloaded: writing weights takes no array cycles
        parts[CELL_ARRAY]["extra_attributes_for_component_model"]["write_throughput_scale"] = float("inf")
    return parts


def _model_parts(m: MacroSpec, e: ComponentEnergy) -> dict[str, dict]:
    shared = {"tech_node": m.tech_node_m, "voltage": m.voltage_v,
              "reference_voltage": m.reference_voltage_v, "cycle_s": m.cycle_s}

    def part(cls: str, **attrs) -> dict:
        return {"component_class": cls, "extra_attributes_for_component_model": {**shared, **attrs}}

    driver = part("CimcoWordlineDriver", cols=m.cols, rows=m.rows, wordlines_on=m.wordlines_on,
                  driver_scale=e.array_scale.value)
    cells = {"rows": m.rows, "cells": m.rows // m.wordlines_on, "array_scale": e.array_scale.value}
    if m.family == "analog":
        # Accumulator wide enough for the macro's widest precision (hardware, not per layer).
        width = m.adc_bits + m.input_bits.max + m.weight_bits.max + (m.rows // m.wordlines_on).bit_length()
        return {
            CELL_ARRAY: part("CimcoCellArray", **cells),
            WORDLINE_DRIVER: driver,
            ADC: part("CimcoAdc", adc_bits=m.adc_bits, adcs=m.adcs, adc_scale=e.adc_scale.value),
            SHIFT_ADD: part("CimcoShiftAdd", width_bits=width, adcs=m.adcs, digital_scale=e.array_scale.value),
        }
    # Digital: a column's partial sum has log2(wordlines_on)+1 bits; the accumulator holds the
    # full-precision output over input bits, weight columns and row groups.
    width = (m.wordlines_on.bit_length() + m.input_bits.max + m.weight_bits.max
             + (m.rows // m.wordlines_on).bit_length())
    driver["extra_attributes_for_component_model"]["cell_logic_fa"] = DIGITAL_CELL_FA[m.family]
    out = {
        CELL_ARRAY: part("CimcoDigitalCell", logic_fa=DIGITAL_CELL_FA[m.family], **cells),
        WORDLINE_DRIVER: driver,
        SHIFT_ADD: part("CimcoShiftAdd", width_bits=width, adcs=m.readout_units(),
                         digital_scale=e.array_scale.value),
    }
    if m.family == "digital_adder_tree":
        out[ADDER_TREE] = part("CimcoAdderTree", wordlines_on=m.wordlines_on, trees=m.readout_units(),
                                digital_scale=e.array_scale.value)
    return out


def _instances_per_macro(m: MacroSpec, part: str) -> int:
    """Copies of a part's component in one macro (the cell array sits below column x row)."""
    return m.cols * m.wordlines_on if part == CELL_ARRAY else 1


def _area_scales(m: MacroSpec, parts: dict[str, dict]) -> dict[str, float]:
    """Factors that bring the models' areas to the spec's measured ``area_m2``: each given
    part to its own area; a single total scales every part alike."""
    from cimco.models import MODELS

    classes = {c.component_name: c for c in MODELS}
    model = {p: classes[d["component_class"]](**d["extra_attributes_for_component_model"]).area
             * _instances_per_macro(m, p) for p, d in parts.items()}
    if isinstance(m.area_m2, dict):
        return {p: a.value / model[p] for p, a in m.area_m2.items()}
    return dict.fromkeys(parts, m.area_m2.value / sum(model.values()))


def _table_parts(m: MacroSpec, e) -> dict[str, dict]:
    # A single measured area sits on the cell array; a per-part area on each part.
    per_part = m.area_m2 if isinstance(m.area_m2, dict) else {CELL_ARRAY: m.area_m2} if m.area_m2 else {}

    def area(p: str) -> float:
        return per_part[p].value / _instances_per_macro(m, p) if p in per_part else 0.0

    readout = e.adc_convert_j.value if e.adc_convert_j is not None else 0.0
    out = {
        CELL_ARRAY: _table(e.cell_mac_j.value, e.weight_write_j.value, 1 / m.cycle_s, area(CELL_ARRAY)),
        WORDLINE_DRIVER: _table(e.wordline_drive_j.value, 0.0, m.wordlines_on / m.cycle_s, area(WORDLINE_DRIVER)),
        ADC: _table(readout, 0.0, m.readout_units() / m.cycle_s, area(ADC)),
        ADDER_TREE: _table(readout, 0.0, m.readout_units() / m.cycle_s, area(ADDER_TREE)),
        SHIFT_ADD: _table(e.shift_add_j.value, 0.0, m.readout_units() / m.cycle_s, area(SHIFT_ADD)),
    }
    return {p: out[p] for p in m.parts}


def _noc(system: SystemSpec) -> list[dict]:
    """The NoC as a pass-through: a bit crossing it costs its mean hops from the buffer to a core."""
    noc = system.noc
    if noc is None:
        return []
    area = noc.area_m2.value if noc.area_m2 else 0.0
    return [{"kind": "Toll", "name": NOC, "tensors": {"keep": "All"}, "bits_per_action": 1,
             "direction": {"input": "down", "weight": "down", "output": "up_and_down"},
             **_table(noc.hop_energy_per_bit_j.value * hops(noc.topology, system.cores), 0.0,
                      noc.link_bandwidth_bits_per_s, area)}]


def _core_buffer(system: SystemSpec) -> list[dict]:
    b = system.core_buffer
    if b is None:
        return []
    keep = "~weight" if set(b.keeps) == {"input", "output"} else b.keeps[0]
    return [{"kind": "Memory", "name": CORE_BUFFER, "size": b.size_bits, "tensors": {"keep": keep},
             "bits_per_action": 1,
             **_table(b.energy_per_bit_j.value, b.energy_per_bit_j.value, b.bandwidth_bits_per_s, b.area_m2.value)}]


# Columns share word lines, so they see the same inputs: they may split output channels
# only, never a reduction rank or output positions (a real SRAM macro cannot).
NOT_ACROSS_COLUMNS = "{c, r, s, p, q, t, g}"


def build_nodes(system: SystemSpec, bits: Bits, column_split: bool = False, fuse: bool = False) -> list[dict]:
    """The architecture for layers of precision ``bits`` (slicing depends on bits).

    ``column_split`` lifts the one-input-per-row rule on the columns: the fallback for
    layers AccelForge cannot map under it (counted and reported). ``fuse`` lets a
    multi-Einsum chain's intermediates bypass DRAM (``_af.map_chain``): AccelForge fuses
    only tensors that bypass the outermost memory."""
    m = system.macro
    g = MacroGeometry.of(m, bits.input, bits.weight)
    parts = _macro_parts(m)
    both = g.input_slices * g.weight_slices
    per_value = {"values_per_action": {"All": 1}}
    dram, glb = system.dram, system.global_buffer
    no_copy = [{"expression": OUTPUT_POSITION_RANKS, "operator": "<=", "value": 1}]
    return [
        {"kind": "Memory", "name": DRAM, "size": float("inf"),
         "tensors": {"keep": "~Intermediates", "may_keep": "All"} if fuse else {"keep": "All"},
         "bits_per_action": 1,
         **_table(dram.energy_per_bit_j.value, dram.energy_per_bit_j.value,
                  dram.bandwidth_bits_per_s, 0.0)},
        {"kind": "Memory", "name": GLOBAL_BUFFER, "size": glb.size_bits,
         "tensors": {"keep": "~weight", "may_keep": "Nothing"}, "bits_per_action": 1,
         **_table(glb.energy_per_bit_j.value, glb.energy_per_bit_j.value,
                  glb.bandwidth_bits_per_s, glb.area_m2.value)},
        *_noc(system),
        {"kind": "Container", "name": "Core",
         "spatial": [{"name": "core", "fanout": system.cores, "loop_bounds": no_copy}]},
        *_core_buffer(system),
        {"kind": "Container", "name": "Macro",
         "spatial": [{"name": "macro", "fanout": system.macros_per_core, "loop_bounds": no_copy,
                      "power_gateable": True}]},
        {"kind": "Toll", "name": WORDLINE_DRIVER, "tensors": {"keep": "input"}, "direction": "down",
         "actions_scale": g.input_slices, **per_value, **parts[WORDLINE_DRIVER]},
        *[{"kind": "Toll", "name": readout, "tensors": {"keep": "output"}, "direction": "up",
           "actions_scale": g.conversions_per_output, **per_value, **parts[readout]}
          for readout in (ADC, ADDER_TREE) if readout in parts],
        {"kind": "Toll", "name": SHIFT_ADD, "tensors": {"keep": "output"}, "direction": "up",
         "actions_scale": g.conversions_per_output, **per_value, **parts[SHIFT_ADD]},
        {"kind": "Container", "name": "Column",
         "spatial": [{"name": "column", "fanout": m.cols, "may_reuse": "input", "min_usage": 1,
                      "usage_scale": g.weight_slices,
                      **({} if column_split else {"loop_bounds": [
                          {"expression": NOT_ACROSS_COLUMNS, "operator": "<=", "value": 1}]})}]},
        {"kind": "Container", "name": "Row",
         "spatial": [{"name": "row", "fanout": m.wordlines_on, "reuse": "output", "min_usage": 1}]},
        {"kind": "Memory", "name": CELL_ARRAY, "size": m.rows // m.wordlines_on * bits.weight,
         "tensors": {"keep": "weight", "no_refetch_from_above": "weight",
                     "force_memory_hierarchy_order": False},
         "actions_scale": both, "throughput_scale": g.weight_slices, **per_value,
         # a read is one MAC's cell operations (input x weight slices); a write is one weight
         # bit (the ERT's write energy): a weight's write stands for its bits, not for the
         # actions_scale (which would count it once per input slice)
         "actions": [{"name": "read"}, {"name": "write", "values_per_action": {"All": both / bits.weight}}],
         **parts[CELL_ARRAY]},
        {"kind": "Compute", "name": COMPUTE, "component_class": "Dummy"},
    ]
