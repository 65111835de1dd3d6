"""Warnings that catch a user's likely mistakes in specs that are valid but implausible: printed
by ``cimco map`` and kept in report.json ``warnings``, never silent, never a refusal (each can
be what the user means).

- an uncalibrated macro: its energies are the models' estimates, not fitted to silicon;
- an ADC too narrow for a column sum even of one-bit products (analog macros);
- a layer whose input channels match none of its producers' outputs (16 -> 32 channels);
- a cycle time outside the span of the published macros cimco bundles (``arch_specs``);
- a macro-only efficiency (energy per MAC) outside the span of the published macros' measured
  TOPS/W that cimco's calibration tests reproduce."""

from __future__ import annotations

import math

from cimco.spec.macro import ComponentEnergy, MacroSpec
from cimco.spec.system import SystemSpec
from cimco.spec.workload import WorkloadSpec

# the cycle times of the bundled published macros (arch_specs/: Wu ISSCC 2022 3.3 ns ... Jia JSSC
# 2020 1.35 us), widened 10x each way: a cycle outside is more likely a unit mistake than a design
CYCLE_S_SPAN = (3.3e-9 / 10, 1.3497e-6 * 10)


def uncalibrated(m: MacroSpec) -> str | None:
    e = m.energy
    if not isinstance(e, ComponentEnergy):
        return None  # a datasheet table: its energies are the table's
    factors = [("array_scale", e.array_scale.value)] + ([("adc_scale", e.adc_scale.value)] if m.family == "analog"
                                                        else [])
    if any(v != 1.0 for _, v in factors):
        return None
    return (f"macro {m.name!r} is uncalibrated (energy.{' and energy.'.join(k for k, _ in factors)} are 1): its "
            f"energies and TOPS/W are cimco's model estimates at tech_node_m and voltage_v, not fitted to a "
            f"measured macro (docs/specs.md: calibration)")


def adc_too_narrow(m: MacroSpec) -> str | None:
    """An analog macro's ADC with fewer bits than a column sum of one-bit products over the word
    lines on at once needs. (Multi-bit input slices and cells need more; published macros
    clip those sums by design, e.g. the MARS-like macro's 5 bits for 16 rows of 4-bit slices,
    so only a sum of one-bit products is held against the ADC.)"""
    if m.family != "analog":
        return None
    need = m.wordlines_on.bit_length()
    if m.adc_bits >= need:
        return None
    return (f"macro {m.name!r}: its {m.adc_bits}-bit ADC cannot resolve a column sum of {m.wordlines_on} word lines "
            f"even of one-bit products (up to {m.wordlines_on:,}, {need} bits): conversions are counted, the lost "
            f"precision is not modelled")


def chain_mismatches(workload: WorkloadSpec) -> list[str]:
    """Layers whose input channels are neither the sum of their producers' output channels
    (concatenated), nor one producer's (added), nor, for a linear layer, their flattened outputs.
    Not checked: layers fed by or feeding a ``dynamic`` layer (attention's heads and blocks are
    reshaped between them; the exporter writes those shapes from the run)."""
    by_name = {x.name: x for x in workload.layers}
    out = []
    for i, layer in enumerate(workload.layers):
        producers = [by_name[n] for n in workload.producers(i) if n in by_name]
        if not producers or layer.dynamic or any(p.dynamic for p in producers):
            continue
        channels = [p.out_channels for p in producers]
        flat = [p.out_channels * math.prod(p.output_hw()) * p.tokens for p in producers]
        fits = {sum(channels), *channels} | ({sum(flat), *flat} if layer.type == "linear" else set())
        if layer.in_channels not in fits:
            names = ", ".join(repr(p.name) for p in producers)
            out.append(f"layer {layer.name!r} takes {layer.in_channels} input channels, but {names} "
                       f"give{'s' if len(producers) == 1 else ''} {' + '.join(map(str, channels))}: "
                       f"check the chain (each layer is mapped as written)")
    return out


# measured macro TOPS/W (2 ops per MAC) that tests/test_calibration.py reproduces: from X. Si et al.,
# IEEE JSSC 56, 2021 (28 nm, 8b x 8b: 11.5) to M. E. Sinangil et al., IEEE JSSC 56(1), 2021 (7 nm,
# 4b x 4b at zero output: 610.5)
TOPS_PER_W_SPAN = (11.5, 610.5)


def implausible_efficiency(tops_per_w_macro: float | None) -> str | None:
    lo, hi = TOPS_PER_W_SPAN
    if tops_per_w_macro is None or lo <= tops_per_w_macro <= hi:
        return None
    return (f"the macros' efficiency, {tops_per_w_macro:.4g} TOPS/W (report.json tops_per_w_macro), is outside the "
            f"{lo:g}-{hi:g} TOPS/W measured on the published macros cimco reproduces (Si, JSSC 2021, 8b; Sinangil, "
            f"JSSC 2021, 4b at zero output): check the macro's energies, voltage and cycle")


def implausible_cycle(m: MacroSpec) -> str | None:
    lo, hi = CYCLE_S_SPAN
    if lo <= m.cycle_s <= hi:
        return None
    return (f"macro {m.name!r}: cycle_s {m.cycle_s:g} s is outside {lo:g}..{hi:g} s, 10x beyond the bundled "
            f"published macros' 3.3 ns (Wu, ISSCC 2022) to 1.35 us (Jia, JSSC 2020): a unit mistake?")


def warnings_of(system: SystemSpec, workload: WorkloadSpec, tops_per_w_macro: float | None = None) -> list[str]:
    """Every warning for running ``workload`` on ``system`` (with the report's macro-only
    efficiency, where known), in a stable order."""
    m = system.macro
    found = [uncalibrated(m), adc_too_narrow(m), implausible_cycle(m), implausible_efficiency(tops_per_w_macro)]
    return [w for w in found if w] + chain_mismatches(workload) + unpriced_ops(system, workload)


def unpriced_ops(system: SystemSpec, workload: WorkloadSpec) -> list[str]:
    """The workload's non-MAC ops (:mod:`cimco.vector`), where the system has no vector unit to price them."""
    total = workload.ops
    if system.vector_unit is not None or not any(total.values()):
        return []
    listed = ", ".join(f"{kind} {n:,}" for kind, n in total.items())
    return [f"system {system.name!r} has no vector_unit: the workload's non-MAC ops ({listed} elements) are "
            f"not priced; give the system a vector_unit to count them"]
