"""hwcomponents models of the parts of an SRAM CIM macro.

Each class is a small :class:`hwcomponents.ComponentModel`: its ``__init__`` parameter names
are the attributes cimco's arch passes (hwcomponents matches them by name), and its
``@action`` methods return :class:`ActionCost` in SI units. ``read`` is the action
AccelForge charges for one use of a Toll or a memory read; ``write`` a memory write.

Energies are C*V^2 estimates from assumed per-cell capacitances, scaled across technology
nodes with hwcomponents' IRDS-based ``tech_node_energy`` and across supply voltage as V^2,
times a named calibration factor (``*_scale``) that a macro spec fits to silicon. The ADC
uses hwcomponents-adc's survey-based model (Murmann's ADC survey, arXiv 2404.06553).

Assumed constants carry ``# assumed``; they are starting points that calibration corrects,
and the calibration tests check predictions at operating points *not* used to fit.
"""

from __future__ import annotations

import functools

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import tech_node_energy

REF_NODE_M = 28e-9  # node at which the constants below are stated
# Per-cell capacitances at 28 nm (word line: gate + wire per cell; bit line: drain + wire).
WL_CAP_PER_CELL_F = 0.15e-15  # assumed
BL_CAP_PER_CELL_F = 0.10e-15  # assumed
CELL_LOCAL_CAP_F = 0.30e-15  # assumed: local compute cap/transistor switched per cell MAC
# Digital add: 0.1 pJ per 32-bit add at 45 nm, 0.9 V (M. Horowitz, "Computing's energy
# problem", ISSCC 2014) -> per bit, rescaled to REF_NODE_M by tech_node_energy.
ADD_J_PER_BIT_45NM = 0.1e-12 / 32
# Areas at 28 nm in units of F^2 (F = node): CIM bit cell (8T + compute device) and the
# per-row driver; 6T SRAM is ~120-150 F^2, compute cells are about twice that.
CIM_CELL_AREA_F2 = 300  # assumed
DRIVER_AREA_F2 = 2000  # assumed, per word line
ADDER_AREA_F2_PER_BIT = 600  # assumed, per bit of shift-add accumulator


def _dyn(energy_28nm_ref_v: float, tech_node: float, voltage: float, reference_voltage: float) -> float:
    """Energy stated at 28 nm and ``reference_voltage``, moved to ``tech_node``, ``voltage``."""
    return energy_28nm_ref_v * tech_node_energy(tech_node, REF_NODE_M) * (voltage / reference_voltage) ** 2


def _area(f2: float, tech_node: float) -> float:
    return f2 * tech_node**2


class CimcoCellArray(ComponentModel):
    """The SRAM CIM cell array: stores weight bits; ``read`` = one cell MAC with one input slice.

    A cell MAC switches the cell's local compute capacitance and its share of the bit line.
    ``write`` programs one weight bit (a full bit-line swing).
    """

    component_name = "CimcoCellArray"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, rows: int,
                 cycle_s: float, array_scale: float = 1.0, cells: int = 1, area_scale: float = 1.0,
                 write_throughput_scale: float = 1.0):
        self.tech_node, self.voltage, self.vref = tech_node, voltage, reference_voltage
        self.rows, self.cycle_s, self.scale = rows, cycle_s, array_scale
        self.write_tp = write_throughput_scale  # inf: weights preloaded, writes take no array cycles
        super().__init__(area=_area(CIM_CELL_AREA_F2, tech_node) * cells * area_scale, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        c = CELL_LOCAL_CAP_F + BL_CAP_PER_CELL_F
        e = _dyn(c * self.vref**2, self.tech_node, self.voltage, self.vref) * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=1 / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        c = BL_CAP_PER_CELL_F * self.rows
        e = _dyn(c * self.vref**2, self.tech_node, self.voltage, self.vref) * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=self.write_tp / self.cycle_s)


class CimcoWordlineDriver(ComponentModel):
    """Word-line (input) driver: ``read`` = drive one word line with one input slice.

    In a digital macro the input bit is wired to the logic of every cell in the row, which
    switches whether or not its column holds a weight in use (Colonnade JSSC 2021; AccelForge
    models it the same way): ``cell_logic_fa`` full-adder equivalents per cell are charged here.
    """

    component_name = "CimcoWordlineDriver"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, cols: int,
                 wordlines_on: int, rows: int, cycle_s: float, driver_scale: float = 1.0,
                 area_scale: float = 1.0, cell_logic_fa: float = 0.0):
        self.tech_node, self.voltage, self.vref = tech_node, voltage, reference_voltage
        self.cols, self.wl_on, self.cycle_s, self.scale = cols, wordlines_on, cycle_s, driver_scale
        self.cell_logic_fa = cell_logic_fa
        super().__init__(area=_area(DRIVER_AREA_F2, tech_node) * rows * area_scale, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        c = WL_CAP_PER_CELL_F * self.cols
        e = _dyn(c * self.vref**2, self.tech_node, self.voltage, self.vref)
        if self.cell_logic_fa:
            e += _add_bit_j(self.tech_node, self.voltage, self.vref) * self.cell_logic_fa * self.cols
        return ActionCost(energy=e * self.scale, latency=0.0, throughput=self.wl_on / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        return ActionCost(energy=0.0, latency=0.0, throughput=float("inf"))


class CimcoAdc(ComponentModel):
    """Column ADCs of one macro: ``read`` = one conversion.

    Energy per conversion comes from hwcomponents-adc's survey model at the macro's
    conversion rate, scaled as V^2 from the macro's reference voltage (the survey model is
    voltage-agnostic; the V^2 law is assumed) and by the calibration factor ``adc_scale``.
    """

    component_name = "CimcoAdc"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, adc_bits: int,
                 adcs: int, cycle_s: float, adc_scale: float = 1.0, area_scale: float = 1.0):
        self.voltage, self.vref, self.scale = voltage, reference_voltage, adc_scale
        self.adcs, self.cycle_s = adcs, cycle_s
        # The survey model covers >= 4 bits; a smaller ADC (or sense amp) is costed as 4 bits.
        area, self._energy = _adc_survey(max(adc_bits, 4), tech_node, adcs / cycle_s, adcs)
        super().__init__(area=area * area_scale, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        e = self._energy * (self.voltage / self.vref) ** 2 * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=self.adcs / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        return ActionCost(energy=0.0, latency=0.0, throughput=float("inf"))


@functools.lru_cache(maxsize=256)
def _adc_survey(n_bits: int, tech_node: float, throughput: float, n_adcs: int) -> tuple[float, float]:
    """(area, energy per conversion) of hwcomponents-adc's survey model, kept per process (the
    model reads its survey each time it is built)."""
    from hwcomponents_adc import ADC

    adc = ADC(n_bits=n_bits, tech_node=tech_node, throughput=throughput, n_adcs=n_adcs)
    return adc.area, adc.get_energy()


class CimcoShiftAdd(ComponentModel):
    """Digital shift-add accumulating converted partial sums across bit slices and row groups."""

    component_name = "CimcoShiftAdd"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, width_bits: int,
                 adcs: int, cycle_s: float, digital_scale: float = 1.0, area_scale: float = 1.0):
        self.tech_node, self.voltage, self.vref = tech_node, voltage, reference_voltage
        self.width, self.adcs, self.cycle_s, self.scale = width_bits, adcs, cycle_s, digital_scale
        super().__init__(area=_area(ADDER_AREA_F2_PER_BIT, tech_node) * width_bits * adcs * area_scale,
                         leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        e28 = ADD_J_PER_BIT_45NM * tech_node_energy(REF_NODE_M, 45e-9) * self.width
        e = _dyn(e28 * (self.vref / 0.9) ** 2, self.tech_node, self.voltage, self.vref) * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=self.adcs / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        return ActionCost(energy=0.0, latency=0.0, throughput=float("inf"))


def _add_bit_j(tech_node: float, voltage: float, reference_voltage: float) -> float:
    """One full-adder bit (Horowitz's 45 nm, 0.9 V figure) at ``tech_node`` and ``voltage``."""
    e28 = ADD_J_PER_BIT_45NM * tech_node_energy(REF_NODE_M, 45e-9)
    return _dyn(e28 * (reference_voltage / 0.9) ** 2, tech_node, voltage, reference_voltage)


class CimcoDigitalCell(ComponentModel):
    """Cell array of a digital CIM macro: weight storage plus ``logic_fa`` full-adder equivalents
    of logic per cell (its area). ``read`` (one cell's 1b product with one input bit) costs 0 J
    here: the logic of every cell in a driven row switches, so :class:`CimcoWordlineDriver`
    charges it per row drive. ``write`` programs one weight bit, as in :class:`CimcoCellArray`.
    """

    component_name = "CimcoDigitalCell"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, rows: int,
                 cycle_s: float, logic_fa: float, array_scale: float = 1.0, cells: int = 1,
                 area_scale: float = 1.0, write_throughput_scale: float = 1.0):
        self.tech_node, self.voltage, self.vref = tech_node, voltage, reference_voltage
        self.rows, self.cycle_s, self.scale, self.logic_fa = rows, cycle_s, array_scale, logic_fa
        self.write_tp = write_throughput_scale
        f2 = CIM_CELL_AREA_F2 + ADDER_AREA_F2_PER_BIT * logic_fa
        super().__init__(area=_area(f2, tech_node) * cells * area_scale, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        return ActionCost(energy=0.0, latency=0.0, throughput=1 / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        c = BL_CAP_PER_CELL_F * self.rows
        e = _dyn(c * self.vref**2, self.tech_node, self.voltage, self.vref) * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=self.write_tp / self.cycle_s)


def adder_tree_fa_bits(leaves: int) -> int:
    """Full-adder bits of a binary tree summing ``leaves`` 1b values: level k has
    leaves / 2^k adders of k bits."""
    total, n, width = 0, leaves, 1
    while n > 1:
        total += (n // 2) * width
        n, width = -(-n // 2), width + 1
    return total


class CimcoAdderTree(ComponentModel):
    """Digital adder tree of one column (Chih ISSCC 2021 style): ``read`` = sum the
    ``wordlines_on`` 1b products of one column for one input bit. One tree per column."""

    component_name = "CimcoAdderTree"
    priority = 0.9

    def __init__(self, tech_node: float, voltage: float, reference_voltage: float, wordlines_on: int,
                 trees: int, cycle_s: float, digital_scale: float = 1.0, area_scale: float = 1.0):
        self.tech_node, self.voltage, self.vref = tech_node, voltage, reference_voltage
        self.fa_bits, self.trees, self.cycle_s, self.scale = (adder_tree_fa_bits(wordlines_on), trees, cycle_s,
                                                              digital_scale)
        super().__init__(area=_area(ADDER_AREA_F2_PER_BIT, tech_node) * self.fa_bits * trees * area_scale,
                         leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        e = _add_bit_j(self.tech_node, self.voltage, self.vref) * self.fa_bits * self.scale
        return ActionCost(energy=e, latency=0.0, throughput=self.trees / self.cycle_s)

    @action
    def write(self) -> ActionCost:
        return ActionCost(energy=0.0, latency=0.0, throughput=float("inf"))


class CimcoIndexMemory(ComponentModel):
    """Per-macro memory of the index codes of kept weight blocks (MARS): ``read`` = one code.

    Energy per bit and area come from the system spec (a table, with its source).
    """

    component_name = "CimcoIndexMemory"
    priority = 0.9

    def __init__(self, code_bits: int, energy_per_bit: float, index_area: float):
        self.code_bits, self.e_bit = code_bits, energy_per_bit
        super().__init__(area=index_area, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        return ActionCost(energy=self.code_bits * self.e_bit, latency=0.0, throughput=float("inf"))

    @action
    def write(self) -> ActionCost:
        return self.read()


class CimcoTable(ComponentModel):
    """A component whose per-action energies and area are given in a spec (table plug-in)."""

    component_name = "CimcoTable"
    priority = 0.9

    def __init__(self, read_energy: float, write_energy: float, throughput: float, table_area: float,
                 write_throughput_scale: float = 1.0):
        self.e_read, self.e_write, self.tp = read_energy, write_energy, throughput
        self.write_tp = throughput * write_throughput_scale
        super().__init__(area=table_area, leak_power=0.0)

    @action
    def read(self) -> ActionCost:
        return ActionCost(energy=self.e_read, latency=0.0, throughput=self.tp)

    @action
    def write(self) -> ActionCost:
        return ActionCost(energy=self.e_write, latency=0.0, throughput=self.write_tp)


MODELS: tuple[type[ComponentModel], ...] = (
    CimcoCellArray, CimcoWordlineDriver, CimcoAdc, CimcoShiftAdd, CimcoIndexMemory, CimcoTable,
    CimcoDigitalCell, CimcoAdderTree,
)
