"""``AffineTableScan``: is the code table the bit-serial core's affine kind, and with which constants?"""

# No "from __future__ import annotations": Struct and Component read real annotations.

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CORR_BITS, M_BITS

from ..interfaces import CodeTableWriteSignature

__all__ = ["AffineTableScan"]


class _Entry(data.Struct):
    m: signed(M_BITS)
    e: CORR_BITS


class AffineTableScan(wiring.Component):
    """Keeps a copy of the code table and, on ``scan``, checks that its first ``2^(b+1) - 1``
    entries are affine: ``m(c) = m0 + c * delta`` and ``e(c) = e_odd * (c mod 2)``.

    That is what uniform levels give (``lowbit.contract.quant.uniform_levels`` spaces them by a whole
    number of LSBs): the dot product then splits into plane-masked sums of model words, and the
    gradient's ``m * r`` into shifted sums of ``delta * r`` (docs/architecture.md). Other tables
    (optimal levels) are refused with ``ErrorCode.BAD_TABLE`` by this core.

    The scan reads one entry per cycle (at most 513 cycles, once per run, while the core clears
    its memories). Entries are read from a private copy, so writes may come in any order.

    Attributes
    ----------
    table : In(CodeTableWriteSignature)
    scan : In(1)
        Pulse: start a scan for ``bits``.
    bits : In(4)
    busy : Out(1)
    affine : Out(1)
        Valid when not ``busy`` after a scan.
    m0 : Out(signed(M_BITS)), delta : Out(signed(M_BITS + 1)), e_odd : Out(CORR_BITS)
    """

    table: In(CodeTableWriteSignature())
    scan: In(1)
    bits: In(4)
    busy: Out(1)
    affine: Out(1)
    m0: Out(signed(M_BITS))
    delta: Out(signed(M_BITS + 1))
    e_odd: Out(CORR_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=_Entry, depth=512, init=[])
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.en.eq(self.table.en), wp.addr.eq(self.table.index),
                     wp.data.m.eq(self.table.m), wp.data.e.eq(self.table.e)]

        addr = Signal(10)          # next entry to read
        last = Signal(10)          # 2^(b+1) - 2: the last code of this precision
        got = Signal()             # rp.data holds entry ``idx``
        idx = Signal(10)
        # The entry is registered before it is checked: the RAM's output (no output register)
        # straight into a compare was the core's slowest path after the run-size sums.
        ent = Signal(_Entry)
        chk = Signal()             # ent holds entry ``cidx``
        cidx = Signal(10)
        expect = Signal(signed(28))
        m.d.comb += rp.addr.eq(addr)

        with m.If(self.scan):
            m.d.sync += [self.busy.eq(1), self.affine.eq(1), addr.eq(0), got.eq(0), chk.eq(0),
                         last.eq((1 << (self.bits + 1)) - 2)]
        with m.Elif(self.busy):
            # Read entry ``addr`` this cycle; its data is registered in the next, checked after.
            m.d.sync += [got.eq(addr <= last), idx.eq(addr), addr.eq(addr + 1),
                         chk.eq(got), cidx.eq(idx), ent.eq(rp.data)]
            with m.If(chk):
                with m.If(cidx == 0):
                    m.d.sync += [self.m0.eq(ent.m), expect.eq(ent.m)]
                    with m.If(ent.e != 0):
                        m.d.sync += self.affine.eq(0)
                with m.Elif(cidx == 1):
                    m.d.sync += [self.delta.eq(ent.m - self.m0), self.e_odd.eq(ent.e),
                                 expect.eq(2 * ent.m - self.m0)]
                with m.Else():
                    m.d.sync += expect.eq(expect + self.delta)
                    with m.If((ent.m != expect) | (ent.e != Cat(self.e_odd) * cidx[0])):
                        m.d.sync += self.affine.eq(0)
            with m.If(~got & ~chk & (addr > last)):
                m.d.sync += self.busy.eq(0)
        return m
