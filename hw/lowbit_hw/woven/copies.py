"""``CopyInterleaver``: the data channel's read commands, one group of every factor's copy at a time.

The Chebyshev estimator (``lowbit.contract.golden``) takes each row's margin from ``d + 1`` copies:
factor ``j`` of epoch ``e`` reads copy ``(e + j) mod K``. The sequencer issues one read command
per segment, over factor 0's copy (``e mod K``); the dot unit needs, for every group of ``S``
rows, the group's lines of each factor's copy one after the other. So each segment command
becomes, per group, ``d + 1`` commands of one group's ``chunks * (b + 1)`` lines, factors in the
order ``0, d, d-1, .., 1``: factor 0 first (its lines go to the group buffer for the gradient
pass, and its margin gives the loss), then the Horner steps from the highest coefficient down
(``golden.horner``: ``h = POLY_d``, then ``POLY_(j-1) + h c^(j)`` for ``j = d .. 1``), so every
margin is used as it arrives.

The copies' lines are not re-read or buffered: each line crosses the memory interface once, as
factor 0's do, so the extra samples cost only the lines they add. A command per group costs one
cycle of the command stream per ``chunks * (b + 1) >= 2`` lines.

With one factor (naive estimator, least squares), and for a warm start's model read
(``cmd_in_model``), commands pass straight through.

The segment's command is acknowledged (``cmd_in.ready``) with its last sub-command, so the
sequencer sees a command in flight until every sub-command is out (its abort waits for that);
on ``drain`` (an abort) the sub-command being offered is the last, and a segment command not yet
started is acknowledged and dropped. The core resets the interleaver at a run's start, not during
an abort (which would withdraw a command the shell has not taken).

Per segment, before its first sub-command: factor ``j``'s first address, ``a_0 = A`` (the
segment's), ``a_j = a_(j-1) + copy_lines``, less ``K * copy_lines`` past the last copy: two
cycles a factor, one carry chain each. ``K * copy_lines`` is a shift-and-add loop once per run
(8 cycles, no multiplier).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.registers import MAX_DEGREE

from ..ccip import CCIP_ADDR_BITS
from ..interfaces import ReadCommand

__all__ = ["CopyInterleaver"]


class CopyInterleaver(wiring.Component):
    """See the module docstring."""

    cmd_in: In(stream.Signature(ReadCommand))
    cmd_in_model: In(1)      # the command offered is the warm start's model read
    cmd_out: Out(stream.Signature(ReadCommand))
    factors_m1: In(4)        # d (Chebyshev), 0: one copy a row
    group_lines: In(32)      # chunks * (b + 1)
    copy_lines: In(32)       # lines of one copy
    copies: In(8)            # K
    data_addr: In(CCIP_ADDR_BITS)
    drain: In(1)

    def elaborate(self, platform):
        m = Module()
        nf = MAX_DEGREE + 1
        addr = [Signal(CCIP_ADDR_BITS, name=f"addr_{j}") for j in range(nf)]  # factor j's next group
        span = Signal(CCIP_ADDR_BITS)        # K * copy_lines
        end = Signal(CCIP_ADDR_BITS)         # data_addr + span: past the last copy
        have_span = Signal()
        mcand = Signal(CCIP_ADDR_BITS)
        mplier = Signal(8)
        j = Signal(range(nf + 1))            # factor being set up
        nxt = Signal(CCIP_ADDR_BITS + 1)     # a_(j-1) + copy_lines
        sel = Signal(range(nf))              # factor whose command is offered
        left = Signal(32)                    # lines of the segment after this group
        one = self.factors_m1 == 0

        # one adder each for the setup and the emission, on the address chosen (not one per factor)
        addr_sel = Signal(CCIP_ADDR_BITS)     # factor sel's (EMIT)
        addr_prev = Signal(CCIP_ADDR_BITS)    # factor j - 1's (SETUP_ADD)
        with m.Switch(sel):
            for i in range(nf):
                with m.Case(i):
                    m.d.comb += addr_sel.eq(addr[i])
        with m.Switch(j):
            for i in range(1, nf):
                with m.Case(i):
                    m.d.comb += addr_prev.eq(addr[i - 1])
        addr_next = addr_sel + self.group_lines

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.cmd_in_model | one):
                    m.d.comb += [self.cmd_out.valid.eq(self.cmd_in.valid),
                                 self.cmd_out.payload.eq(self.cmd_in.payload),
                                 self.cmd_in.ready.eq(self.cmd_out.ready)]
                with m.Elif(self.cmd_in.valid & self.drain):
                    m.d.comb += self.cmd_in.ready.eq(1)  # an abort reads nothing more: dropped
                with m.Elif(self.cmd_in.valid):
                    m.d.sync += [addr[0].eq(self.cmd_in.payload.address), j.eq(1), left.eq(self.cmd_in.payload.lines)]
                    with m.If(have_span):
                        m.next = "SETUP_ADD"
                    with m.Else():
                        m.d.sync += [span.eq(0), mcand.eq(self.copy_lines), mplier.eq(self.copies)]
                        m.next = "SPAN"
            with m.State("SPAN"):
                with m.If(mplier == 0):
                    m.d.sync += [end.eq(self.data_addr + span), have_span.eq(1)]
                    m.next = "SETUP_ADD"
                with m.Else():
                    m.d.sync += [span.eq(span + Mux(mplier[0], mcand, 0)), mcand.eq(mcand << 1),
                                 mplier.eq(mplier >> 1)]
            with m.State("SETUP_ADD"):
                with m.If(j > self.factors_m1):
                    m.d.sync += [sel.eq(0)]
                    m.next = "EMIT"
                with m.Else():
                    m.d.sync += nxt.eq(addr_prev + self.copy_lines)
                    m.next = "SETUP_WRAP"
            with m.State("SETUP_WRAP"):
                with m.Switch(j):
                    for i in range(1, nf):
                        with m.Case(i):
                            m.d.sync += addr[i].eq(Mux(nxt >= end, nxt - span, nxt))
                m.d.sync += j.eq(j + 1)
                m.next = "SETUP_ADD"
            with m.State("EMIT"):
                m.d.comb += [self.cmd_out.valid.eq(1), self.cmd_out.payload.address.eq(addr_sel),
                             self.cmd_out.payload.lines.eq(self.group_lines)]
                with m.If(self.cmd_out.ready):
                    with m.Switch(sel):
                        for i in range(nf):
                            with m.Case(i):
                                m.d.sync += addr[i].eq(addr_next)
                    # factors in the order 0, d, d-1, .., 1
                    group_done = sel == 1
                    m.d.sync += sel.eq(Mux(sel == 0, self.factors_m1, sel - 1))
                    last = group_done & (left == self.group_lines)
                    with m.If(group_done):
                        m.d.sync += left.eq(left - self.group_lines)
                    with m.If(last | self.drain):
                        m.d.comb += self.cmd_in.ready.eq(1)
                        m.next = "IDLE"
        return m
