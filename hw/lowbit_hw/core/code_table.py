"""``CodeTable``: per-lane code -> (m, e) lookup with a dot-pass port and a gradient-pass port."""

from __future__ import annotations

from amaranth import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CORR_BITS, M_BITS

from ..interfaces import CodeTableWriteSignature
from .params import CODE_BITS, MASK_CODE, check_lanes

__all__ = ["CodeTable", "entry_layout"]

entry_layout = data.StructLayout({"m": signed(M_BITS), "e": unsigned(CORR_BITS)})


class CodeTable(wiring.Component):
    """One copy of the code table per lane, each with two synchronous read ports.

    Every lane looks up a different code each cycle in both passes, so each lane owns a
    512 x 41-bit table: one true-dual-port block RAM per lane (port A: dot pass, port B: gradient
    pass; writes from ``table`` share port B's address, which is free while the host writes the
    table between runs). Entry 511 is not writable: it is the "no feature" code the dot pass
    substitutes for padding lanes, and reads ``m = e = 0``.

    Reads are synchronous: data for the address of cycle ``t`` is valid in cycle ``t + 1``.

    Parameters
    ----------
    lanes : int

    Attributes
    ----------
    table : In(CodeTableWriteSignature())
    a_addr : In(ArrayLayout(unsigned(9), lanes))
    a_m : Out(ArrayLayout(signed(M_BITS), lanes))
    b_addr : In(ArrayLayout(unsigned(9), lanes))
    b_m : Out(ArrayLayout(signed(M_BITS), lanes))
    b_e : Out(ArrayLayout(unsigned(CORR_BITS), lanes))
    """

    def __init__(self, *, lanes: int):
        check_lanes(512, lanes)
        self.lanes = lanes
        codes = data.ArrayLayout(unsigned(CODE_BITS), lanes)
        super().__init__({
            "table": In(CodeTableWriteSignature()),
            "a_addr": In(codes),
            "a_m": Out(data.ArrayLayout(signed(M_BITS), lanes)),
            "b_addr": In(codes),
            "b_m": Out(data.ArrayLayout(signed(M_BITS), lanes)),
            "b_e": Out(data.ArrayLayout(unsigned(CORR_BITS), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        we = self.table.en & (self.table.index != MASK_CODE)
        for lane in range(self.lanes):
            mem = Memory(shape=entry_layout, depth=1 << CODE_BITS, init=[])
            m.submodules[f"lane{lane}"] = mem
            wp = mem.write_port()
            ra = mem.read_port()
            rb = mem.read_port()
            m.d.comb += [wp.en.eq(we), wp.addr.eq(self.table.index),
                         wp.data.m.eq(self.table.m), wp.data.e.eq(self.table.e),
                         ra.addr.eq(self.a_addr[lane]), rb.addr.eq(self.b_addr[lane]),
                         self.a_m[lane].eq(ra.data.m),
                         self.b_m[lane].eq(rb.data.m), self.b_e[lane].eq(rb.data.e)]
        return m
