"""Commented spec templates that validate as written (``cimco specs init KIND``): a starting
point for a newcomer's own macro, system and workload. Every number says what it is and that
it is assumed until replaced by a cited one (``cimco specs schema`` lists every field)."""

from __future__ import annotations

MACRO = """\
# A CIM macro (cimco specs init macro). Replace each number with your macro's and say where it
# comes from: a paper, a measurement, or `assumed`. Every field: `cimco specs schema`.
kind: macro
name: my_macro
citation: "assumed: a template; cite the paper or datasheet of your macro here"
family: analog             # analog (ADC readout), digital_adder_tree or digital_bit_serial
rows: 256                  # word lines (cell rows)
cols: 256                  # bit lines (cell columns)
wordlines_on: 16           # word lines an activation turns on at once (a row group)
bits_per_cell: 1           # weight bits one cell stores
input_bits: {min: 4, max: 8}     # input precisions the macro supports
weight_bits: {min: 4, max: 8}    # weight precisions
output_bits: {min: 1, max: 16}   # output precisions
bit_serial_input: false    # true: inputs applied one bit per activation
input_slice_bits: 4        # input bits per activation (a DAC step)
analog_weight_combine: true   # a weight's columns combined before the ADC (one conversion per weight)
adc_bits: 5                # ADC resolution; a column sum of 16 one-bit products needs 5
adcs: 32                   # ADCs per macro (columns share them)
tech_node_m: 28.0e-9       # metres (28 nm)
voltage_v: 0.9             # supply, volts
reference_voltage_v: 0.9   # the voltage the models' energies are given at
cycle_s: 5.0e-9            # seconds per macro cycle
energy:
  model: components        # energies from cimco's hwcomponents models at tech_node_m and voltage_v
  # Uncalibrated (every factor 1): cimco warns so. To calibrate, fit a factor so the macro
  # reaches a published TOPS/W, and cite that point in its source, e.g.
  # array_scale: {value: 0.6, source: "fitted to 68.4 TOPS/W at 4b x 4b (Si, JSSC 2021)"}
"""

SYSTEM = """\
# A multi-macro system (cimco specs init system). It names its macro file, beside it:
# write one with `cimco specs init macro --out my_macro.yaml`. Every field: `cimco specs schema`.
kind: system
name: my_system
citation: "assumed: a template; cite your accelerator here"
macro: my_macro.yaml
cores: 4                   # cores
macros_per_core: 8         # macros in each core
dram:
  energy_per_bit_j: {value: 20.0e-12, source: "assumed: LPDDR-class (Horowitz, ISSCC 2014: 1.3-2.6 nJ per 64 b)"}
  bandwidth_bits_per_s: 1.0e11     # assumed: 12.8 GB/s
global_buffer:
  size_bits: 2097152               # assumed: 256 KB
  energy_per_bit_j: {value: 0.4e-12, source: "assumed: on-chip SRAM at 28 nm"}
  bandwidth_bits_per_s: 1.0e12     # assumed: 128 B per cycle at ~1 GHz
  area_m2: {value: 0.6e-6, source: "assumed: ~0.3 um^2 per bit incl. periphery at 28 nm"}
# Optional: a vector unit for the work that is not a MAC (the workload's `ops`: activations, adds,
# pooling, softmax, norms, requantization); without one that work is reported, not priced.
# vector_unit:
#   energy_per_op_j: {value: 0.75e-12, source: "Horowitz, ISSCC 2014 (45 nm): mean of an FP16 add and multiply"}
#   ops_per_s: 3.2e10              # assumed: 32 lanes at 1 GHz
#   area_m2: {value: 0.05e-6, source: "assumed"}
# Optional: a network-on-chip between the global buffer and the cores (cimco.noc; a `levels:`
# list can give the whole hierarchy instead, docs/specs.md#a-systems-levels).
# noc:
#   topology: mesh                 # bus | mesh | htree
#   hop_energy_per_bit_j: {value: 0.1e-12, source: "assumed"}
#   hop_latency_s: 1.0e-9
#   link_bandwidth_bits_per_s: 1.28e11
"""

WORKLOAD = """\
# A workload (cimco specs init workload): the layers the macros compute, in execution order;
# each takes the previous one's output unless `inputs` names others. `cimco export` writes one
# from a torch model. Every field: `cimco specs schema`.
kind: workload
name: my_net
source: "assumed: a template; say where the network comes from"
bits: {input: 8, weight: 8, output: 8}
layers:
  - {name: conv1, type: conv, in_channels: 3, out_channels: 16, input_hw: [32, 32], kernel: 3, padding: 1}
  - {name: conv2, type: conv, in_channels: 16, out_channels: 32, input_hw: [32, 32], kernel: 3, stride: 2, padding: 1}
  - {name: fc, type: linear, in_channels: 32, out_channels: 10}   # after global average pooling
"""

TEMPLATES = {"macro": MACRO, "system": SYSTEM, "workload": WORKLOAD}
