"""The names of a system's parts: one vocabulary for the architecture, every backend, the
sparsity and execution steps and the reports.

A system is DRAM -> global buffer -> cores -> macros; each macro family has its own parts
(:data:`FAMILY_PARTS`), and pruned layers add an index memory beside the macros.
"""

from __future__ import annotations

DRAM = "DRAM"
GLOBAL_BUFFER = "GlobalBuffer"
WORDLINE_DRIVER = "WordlineDriver"
ADC = "ADC"
ADDER_TREE = "AdderTree"
SHIFT_ADD = "ShiftAdd"
CELL_ARRAY = "CellArray"
COMPUTE = "Compute"
INDEX_MEMORY = "IndexMemory"
DIGITAL_UNIT = "DigitalUnit"  # optional, beside the macros: the matmuls of activations (cimco.digital)
NOC = "NoC"  # optional, between the global buffer and the cores (cimco.noc)
CORE_BUFFER = "CoreBuffer"  # optional, a memory in each core
VECTOR_UNIT = "VectorUnit"  # optional, beside the macros: the work that is not a MAC (cimco.vector)

# The parts inside each family's macro, as named in the architecture (cimco.arch).
FAMILY_PARTS: dict[str, tuple[str, ...]] = {
    "analog": (WORDLINE_DRIVER, ADC, SHIFT_ADD, CELL_ARRAY),
    "digital_adder_tree": (WORDLINE_DRIVER, ADDER_TREE, SHIFT_ADD, CELL_ARRAY),
    "digital_bit_serial": (WORDLINE_DRIVER, SHIFT_ADD, CELL_ARRAY),
}
# Every macro part over all families, in first-seen order.
MACRO_PARTS = tuple(dict.fromkeys(p for parts in FAMILY_PARTS.values() for p in parts))
# The parts that read a column's sum out, in the order they act (conversion, then shift-add).
READOUT_PARTS = (ADC, ADDER_TREE, SHIFT_ADD)
# Memories and the NoC outside the macros (bandwidth-bound: their time follows their traffic).
MEMORIES = (DRAM, GLOBAL_BUFFER, NOC)
