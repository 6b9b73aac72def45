"""``RegisterBlock``: the MMIO side of CCI-P, generated from :mod:`lowbit.contract.registers`.

Every register comes from :data:`lowbit.contract.registers.REGISTERS`; no offset is written here.
RW registers are storage, and those of ``RUN_CONFIG`` feed :data:`RunConfig` (built from them);
RO registers are the build's constants (``BUILD_CONSTANTS``) or the core's :data:`CoreStatus`
(built from ``CORE_STATUS``). The map's own check (at import) makes those two every RO register,
so adding a register to the map either just works or fails at import, naming it.
"""

from __future__ import annotations

import functools
import operator

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import MODEL_FRAC
from lowbit.contract.format import FORMAT_VERSION
from lowbit.contract.registers import (AFU_ID_H, AFU_ID_L, ARITH_VALUE, BUILD_CONSTANTS, CODE_ENTRY, CODE_TABLE_BASE,
                                      CODE_TABLE_ENTRIES, CORE_STATUS, DFH_VALUE, REG, REGISTERS, RUN_CONFIG, Access,
                                      Built)

from ..ccip import CcipSignature
from ..interfaces import CodeTableWriteSignature, CoreStatus, RunConfig

__all__ = ["RegisterBlock", "ro_constants", "MMIO_READ_LATENCY"]

#: Cycles from an MMIO read request on c0_rx to its answer on c2_tx.
MMIO_READ_LATENCY = 3
#: Registers ORed together in the read's second cycle; the third ORs the groups.
READ_GROUP = 8

#: RO registers that are constants of every build (CAPS and ARITH are added per build).
_RO_CONSTANTS = {"DFH": DFH_VALUE, "AFU_ID_L": AFU_ID_L, "AFU_ID_H": AFU_ID_H, "DFH_RSVD0": 0, "DFH_RSVD1": 0}


def ro_constants(*, line_bits: int, lanes: int, max_features: int,
                 format_version: int = FORMAT_VERSION, built: Built = Built.NONE) -> dict[str, int]:
    """Values of the constant RO registers of a build (DFH, AFU_ID_L/H, reserved words, CAPS, ARITH, BUILT).

    ``format_version`` is the line layout the build's core reads (``lowbit.contract.format.LAYOUTS``);
    ``built`` the optional datapaths its core has (``lowbit.contract.registers.Built``)."""
    caps = REG["CAPS"].encode(LINE_BITS=line_bits, LANES=lanes, MAX_FEATURES=max_features,
                              MODEL_FRAC=MODEL_FRAC, FORMAT_VERSION=format_version)
    values = {**_RO_CONSTANTS, "CAPS": caps, "ARITH": ARITH_VALUE, "BUILT": int(Built(built))}
    return {name: values[name] for name in BUILD_CONSTANTS}


class RegisterBlock(wiring.Component):
    """CCI-P MMIO decode and the engine's registers.

    MMIO addresses arrive in 32-bit words (``mmio_address``); ``mmio_length`` 1 is an 8-byte
    access of the register at ``address // 2``, 0 a 4-byte access of its half ``address % 2``.

    * Reads are answered exactly once, ``MMIO_READ_LATENCY`` (3) cycles later on ``c2_tx`` with the request's tid;
      unknown and write-only addresses read 0; a 4-byte read returns the addressed half in
      ``data[0:32]`` (``data[32:64]`` = 0).
    * Writes to RW registers store their implemented bits (``Register.width``); a 4-byte write
      replaces only the addressed half. Writes elsewhere are ignored, except:
    * CTRL (8-byte write, or 4-byte write of its low half): ``start`` / ``reset`` pulse for one
      cycle for the bits written as 1;
    * the code table window (8-byte writes only, since an entry's M and E are in different
      halves): one ``table`` pulse with the entry's index, M and E (``lowbit.contract.registers.CODE_ENTRY``).

    All outputs are registered (writes take effect one cycle after the MMIO request, reads answer two cycles after).

    Parameters
    ----------
    line_bits, lanes, max_features : int
        Build parameters reported in CAPS.

    Attributes
    ----------
    c0_rx : In(c0_rx of CcipSignature)
        Only the ``mmio_*`` fields and ``data[0:64]`` are used.
    c2_tx : Out(c2_tx of CcipSignature)
        MMIO read responses.
    cfg : Out(RunConfig)
        RW register values, to the core.
    start, reset : Out(1)
        CTRL pulses.
    table : Out(CodeTableWriteSignature)
        Code-table writes.
    status : In(CoreStatus)
        Shown in STATUS and the counter registers.
    """

    def __init__(self, *, line_bits: int = 512, lanes: int = 32, max_features: int = 8192,
                 format_version: int = FORMAT_VERSION, built: Built = Built.NONE):
        caps = REG["CAPS"]
        for name, value in (("line_bits", line_bits), ("lanes", lanes), ("max_features", max_features)):
            width = caps.field(name.upper()).width
            if not isinstance(value, int) or not 1 <= value < (1 << width):
                raise ValueError(f"{name} must be an int in 1..{(1 << width) - 1} (CAPS.{name.upper()}), got {value!r}")
        self.line_bits, self.lanes, self.max_features = line_bits, lanes, max_features
        self._constants = ro_constants(line_bits=line_bits, lanes=lanes, max_features=max_features,
                                       format_version=format_version, built=built)
        ccip = CcipSignature(line_bits)
        super().__init__({
            "c0_rx": ccip.members["c0_rx"],
            "c2_tx": ccip.members["c2_tx"],
            "cfg": Out(RunConfig),
            "start": Out(1),
            "reset": Out(1),
            "table": Out(CodeTableWriteSignature()),
            "status": In(CoreStatus),
        })

    def elaborate(self, platform):
        m = Module()
        rx = self.c0_rx
        qword = rx.mmio_address[1:]  # register index (byte address / 8)
        upper = rx.mmio_address[0]  # 4-byte access of the high half
        is8 = rx.mmio_length == 1

        # ---- storage for RW registers, and the read value of every register
        rw = {r.name: Signal(r.width, name=r.name.lower()) for r in REGISTERS if r.access is Access.RW}
        m.d.comb += [self.cfg[name.lower()].eq(rw[name]) for name in RUN_CONFIG]
        read_value = {}
        for r in REGISTERS:
            if r.access is Access.RW:
                read_value[r.name] = rw[r.name]
            elif r.name in CORE_STATUS:
                if r.fields:
                    v = Signal(64, name=f"{r.name.lower()}_value")
                    for f in r.fields:
                        m.d.comb += v[f.lsb:f.lsb + f.width].eq(self.status[f.name.lower()])
                    read_value[r.name] = v
                else:
                    read_value[r.name] = self.status[r.name.lower()]
            elif r.access is Access.RO:
                read_value[r.name] = Const(self._constants[r.name], 64)

        # ---- reads: the request registered, then two cycles of AND-OR tree (no priority chain).
        # The first cycle decodes the address into one select bit per register; the second ORs
        # the selected value within groups of READ_GROUP registers, the third ORs the groups and
        # takes the half. (As one cycle's OR over every register, the board's router could not
        # clear the last few overused wires around it: docs/board.md, eighth pass.)
        rd_valid, rd_tid = Signal(), Signal.like(rx.mmio_tid)
        rd_upper, rd_is8 = Signal(), Signal()
        sel = {name: Signal(name=f"rd_sel_{name.lower()}") for name in read_value}
        m.d.sync += [rd_valid.eq(rx.mmio_rd_valid), rd_tid.eq(rx.mmio_tid), rd_upper.eq(upper), rd_is8.eq(is8)]
        m.d.sync += [sel[name].eq(qword == REG[name].address >> 3) for name in read_value]
        names = list(read_value)
        groups = [names[i:i + READ_GROUP] for i in range(0, len(names), READ_GROUP)]
        part = [Signal(64, name=f"rd_part{i}", reset_less=True) for i in range(len(groups))]
        m.d.sync += [p.eq(functools.reduce(operator.or_, [Mux(sel[n], read_value[n], 0) for n in g]))
                     for p, g in zip(part, groups)]
        rd2_valid, rd2_tid = Signal(), Signal.like(rx.mmio_tid)
        rd2_upper, rd2_is8 = Signal(), Signal()
        m.d.sync += [rd2_valid.eq(rd_valid), rd2_tid.eq(rd_tid), rd2_upper.eq(rd_upper), rd2_is8.eq(rd_is8)]
        rd_q = Signal(64)
        m.d.comb += rd_q.eq(functools.reduce(operator.or_, part))
        m.d.sync += [
            self.c2_tx.mmio_rd_valid.eq(rd2_valid),
            self.c2_tx.tid.eq(rd2_tid),
            self.c2_tx.data.eq(Mux(rd2_is8, rd_q, Mux(rd2_upper, rd_q[32:], rd_q[:32]))),
        ]

        # ---- writes
        wdata = rx.data[:64]
        m.d.sync += [self.start.eq(0), self.reset.eq(0), self.table.en.eq(0)]
        with m.If(rx.mmio_wr_valid):
            with m.Switch(qword):
                for name, sig in rw.items():
                    with m.Case(REG[name].address >> 3):
                        old = Signal(64, name=f"{name.lower()}_old")
                        m.d.comb += old.eq(sig)
                        merged = Mux(is8, wdata, Mux(upper, Cat(old[:32], wdata[:32]), Cat(wdata[:32], old[32:])))
                        m.d.sync += sig.eq(merged)
                with m.Case(REG["CTRL"].address >> 3):
                    with m.If(is8 | ~upper):
                        m.d.sync += [self.start.eq(_field(wdata, REG["CTRL"].field("START"))),
                                     self.reset.eq(_field(wdata, REG["CTRL"].field("RESET")))]
            base = CODE_TABLE_BASE >> 3
            index = Signal(range(CODE_TABLE_ENTRIES + base + 1))
            m.d.comb += index.eq(qword - base)
            with m.If(is8 & (qword >= base) & (qword < base + CODE_TABLE_ENTRIES)):
                m.d.sync += [self.table.en.eq(1), self.table.index.eq(index),
                             self.table.m.eq(_field(wdata, CODE_ENTRY.field("M"))),
                             self.table.e.eq(_field(wdata, CODE_ENTRY.field("E")))]
        return m


def _field(value, f):
    """Bits of register field ``f`` (a :class:`lowbit.contract.registers.Field`) of an Amaranth value."""
    return value[f.lsb:f.lsb + f.width]
