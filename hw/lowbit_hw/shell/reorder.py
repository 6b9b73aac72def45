"""``ReadReorderBuffer``: out-of-order read responses in, lines in request order out."""

from __future__ import annotations

from amaranth import Mux, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["ReadReorderBuffer"]


class ReadReorderBuffer(wiring.Component):
    """A circular buffer of ``depth`` line slots, reserved in request order, filled in any order.

    The read engine reserves ``reserve_lines`` consecutive slots starting at ``tail`` (mod
    ``depth``) when it issues a request, so every response has a slot waiting for it and is
    written the cycle it arrives (CCI-P responses have no ready). Slots are delivered in order
    from ``head``: a line leaves as soon as its own slot is filled and every earlier slot has left.

    Delivery uses a synchronous memory read port whose enable is held low while the output is
    stalled, so the output register itself is the only skid stage and the buffer sustains one
    line per cycle.

    ``flush`` drops every line not yet delivered: the buffer then *discards* slots in order as their
    responses arrive (responses of requests issued before the flush still come back and must land in
    their reserved slots), and leaves discard mode when all reserved slots have been consumed.
    ``idle`` is high when no slot is reserved and no line waits at the output.

    Parameters
    ----------
    line_bits : int
        Width of a line.
    depth : int
        Number of slots, a power of two >= 4 (a 4-line request needs 4 slots).

    Attributes
    ----------
    free : Out(range(depth + 1))
        Slots not reserved (a delivered slot counts from the cycle after its delivery).
    tail : Out(range(depth))
        First slot of the next reservation.
    reserve : In(1), reserve_lines : In(3)
        Reserve ``reserve_lines`` (1..4, <= ``free``) slots at ``tail`` this cycle.
    fill_en : In(1), fill_slot : In(range(depth)), fill_data : In(line_bits)
        A response line for a reserved slot.
    lines : Out(stream.Signature(line_bits))
        Lines in reservation order.
    flush : In(1)
        Drop all undelivered lines (see above).
    discarding : Out(1)
        High from the cycle after ``flush`` until every reserved slot has been consumed.
    idle : Out(1)
    """

    def __init__(self, *, line_bits: int, depth: int):
        if not isinstance(line_bits, int) or line_bits < 1:
            raise ValueError(f"line_bits must be a positive int, got {line_bits!r}")
        if not isinstance(depth, int) or depth < 4 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 4, got {depth!r}")
        self.line_bits, self.depth = line_bits, depth
        super().__init__({
            "free": Out(range(depth + 1)),
            "tail": Out(range(depth)),
            "reserve": In(1),
            "reserve_lines": In(3),
            "fill_en": In(1),
            "fill_slot": In(range(depth)),
            "fill_data": In(line_bits),
            "lines": Out(stream.Signature(line_bits)),
            "flush": In(1),
            "discarding": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        k = depth.bit_length() - 1

        m.submodules.mem = mem = Memory(shape=self.line_bits, depth=depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())

        # Pointers carry one wrap bit so that full (depth reserved) and empty differ.
        head = Signal(k + 1)
        tail = Signal(k + 1)
        filled = Signal(depth)  # slot holds a response not yet delivered
        out_valid = Signal()
        discard = Signal()

        # free (= depth - (tail - head), a cycle late for a delivered slot: below) is a register of
        # its own, kept as slots are reserved and delivered, so the read engine's "may I issue"
        # test starts from a register rather than from two subtractions.
        free = Signal(range(depth + 1), init=depth)
        m.d.comb += [
            self.free.eq(free),
            self.tail.eq(tail[:k]),
            self.discarding.eq(discard),
            self.idle.eq((head == tail) & ~out_valid),
            wr.en.eq(self.fill_en),
            wr.addr.eq(self.fill_slot),
            wr.data.eq(self.fill_data),
        ]

        with m.If(self.reserve):
            m.d.sync += tail.eq(tail + self.reserve_lines)

        head_filled = filled.bit_select(head[:k], 1)
        # The read port may load a new line when the output register is empty or being taken.
        can_load = ~out_valid | self.lines.ready
        load = can_load & head_filled & ~discard
        drop = discard & head_filled
        take = load | drop
        m.d.comb += [rd.addr.eq(head[:k]), rd.en.eq(can_load),
                     self.lines.valid.eq(out_valid), self.lines.payload.eq(rd.data)]
        with m.If(take):
            m.d.sync += head.eq(head + 1)
        # A delivered slot's filled bit is cleared a cycle late, from registers (take_r, head_r):
        # cleared straight from take it closed a loop filled -> head select -> take -> decoder
        # -> filled, 14 ns in the flat delay model. Late is safe: the next cycle reads the next
        # slot, and the slot is filled again only after it is reserved again, which needs the
        # free count that this take raises a cycle later, then a request and its response; a
        # fill in the same cycle as the late clear would win all the same.
        take_r = Signal()
        head_r = Signal(k)
        m.d.sync += [take_r.eq(take), head_r.eq(head[:k])]
        # free counts a delivered slot a cycle late too (take_r): between the two it is one low,
        # which can only hold a request back a cycle, never let one through without room.
        m.d.sync += free.eq(free - Mux(self.reserve, self.reserve_lines, 0) + take_r)
        set_mask = Signal(depth)
        clr_mask = Signal(depth)
        m.d.comb += [set_mask.eq(self.fill_en << self.fill_slot), clr_mask.eq(take_r << head_r)]
        m.d.sync += filled.eq((filled & ~clr_mask) | set_mask)

        with m.If(load):
            m.d.sync += out_valid.eq(1)
        with m.Elif(self.lines.ready):
            m.d.sync += out_valid.eq(0)

        with m.If(self.flush):
            m.d.sync += [discard.eq(1), out_valid.eq(0)]
        with m.Elif(discard & (head == tail)):
            m.d.sync += discard.eq(0)
        return m
