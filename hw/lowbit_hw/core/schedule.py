"""``RunSchedule``: a bounded, resumed run's segments, derived from the registers once per run."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.registers import MAX_BATCH

from ..interfaces import RunConfig

__all__ = ["RunSchedule", "SerialMultiplier", "SerialDivider"]

_W = RunConfig.members  # register widths
#: Widths of the shared shift-and-add multiplier and shift-subtract divider: E * P < 2^48.
WIDE = 48
NARROW = 16


class SerialMultiplier(wiring.Component):
    """``p = a * b`` (``a`` WIDE bits, ``b`` NARROW bits, ``p`` kept to WIDE bits), one bit of
    ``b`` per cycle: ``start`` loads the operands, ``busy`` falls when ``p`` is valid. Its
    registers have two sources (load, step), so no state decode sits in front of the adder."""

    def __init__(self):
        super().__init__({"start": In(1), "a": In(WIDE), "b": In(NARROW), "p": Out(WIDE), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        mcand, mplier = Signal(WIDE), Signal(NARROW)
        m.d.comb += self.busy.eq(mplier != 0)
        with m.If(self.start):
            m.d.sync += [self.p.eq(0), mcand.eq(self.a), mplier.eq(self.b)]
        with m.Elif(self.busy):
            m.d.sync += [self.p.eq(self.p + Mux(mplier[0], mcand, 0)), mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
        return m


class SerialDivider(wiring.Component):
    """``divmod(a, b)`` (``a`` WIDE bits, ``0 < b < 2^32``) by restoring division, one quotient bit
    per cycle into the dividend's register: ``start`` loads, ``busy`` falls when ``q`` and ``r``
    are valid. Each step is one 33-bit compare and subtract between registers.

    ``n`` (at ``start``) is the number of steps: a dividend known to be below ``2^n`` is given as
    ``a << (WIDE - n)`` (its top ``n`` bits are the dividend) and takes ``n`` cycles, not WIDE.
    Leading zeros go faster: while the remainder is 0 and the dividend's next ``SKIP`` bits are 0,
    those ``SKIP`` steps (each a 0 quotient bit, the remainder staying 0) take one cycle. A run's
    dividends are small numbers in wide registers (a K = 4 round's ``end`` is ~2^8 in 48 bits):
    this takes the schedule from ~210 cycles to ~130."""

    SKIP = 8

    def __init__(self):
        super().__init__({"start": In(1), "a": In(WIDE), "b": In(32), "n": In(range(WIDE + 1)),
                          "q": Out(WIDE), "r": Out(32), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        den = Signal(32)
        left = Signal(range(WIDE + 1))
        shifted = Signal(33)
        m.d.comb += [self.busy.eq(left != 0), shifted.eq(Cat(self.q[-1], self.r))]
        ge = shifted >= den
        k = self.SKIP
        skip = Signal()  # a register: no zero test chained into the step's compare
        m.d.sync += skip.eq(0)
        with m.If(self.start):
            m.d.sync += [self.q.eq(self.a), den.eq(self.b), self.r.eq(0), left.eq(self.n),
                         skip.eq((self.n >= k) & (self.a[-k:] == 0))]
        with m.Elif(skip):  # r == 0 and the top k dividend bits are 0: k quotient bits of 0 at once
            m.d.sync += [self.q.eq(self.q << k), left.eq(left - k),
                         skip.eq((left >= 2 * k) & (self.q[-2 * k:-k] == 0))]
        with m.Elif(self.busy):
            m.d.sync += [self.r.eq(Mux(ge, shifted - den, shifted)), self.q.eq(Cat(ge, self.q[:-1])),
                         left.eq(left - 1)]
        return m


class RunSchedule(wiring.Component):
    """The segments of a run (``lowbit.contract.golden._segments``) as the woven core's sequencer
    needs them: the run's span cut at epoch ends, each segment an "epoch" over consecutive rows of
    one copy, followed by a snapshot and a record.

    With ``P = ceil(N / B)``, ``end = min(E * P, S + M)`` (``E * P`` if ``M = 0``),
    ``(e0, lo0) = divmod(S, P)`` and ``(eZ, hiZ) = divmod(end, P)``, only the first segment may
    start mid-epoch (minibatch ``lo0``) and only the last may end mid-epoch (``hiZ != 0``); every
    other segment is a whole epoch (``N`` rows, a whole copy, all label lines). So three kinds of
    segment suffice, computed here once:

    * ``nseg = eZ - e0 + (hiZ != 0)`` segments (snapshots), ``bad_start = S >= E * P``;
    * the first: ``rows_first`` rows from row ``lo0 * B`` of copy ``copy_first = e0 mod K``:
      its data lines start ``data_off_first = lo0 * (B / S) * chunks * (b+1)`` lines into the
      copy (a minibatch is whole groups of ``S`` rows: BATCH_NOT_WOVEN), its labels
      ``label_off_first = lo0 * B / S`` lines in;
    * the last (used when ``nseg >= 2``): ``rows_last`` rows from row 0;
    * ``copy_off = copy_first * data_lines``: the first copy's offset in the data buffer.

    ``plain`` (START_MINIBATCH = MAX_MINIBATCHES = 0, a warm start or not) takes a short cut: every
    segment is a whole epoch, so a plain run pays a few cycles, not the program's ~250.

    Every product and quotient is a loop on one shared shift-and-add multiplier or shift-subtract
    divider (one bit per cycle; each division takes as many steps as its dividend has bits: ~210
    cycles once per run, while the start model's read is on its way): an inferred ``*``, ``/`` or
    ``%`` would be a combinational DSP chain between registers (too slow for the engine clock, and
    the woven build has no DSP to spare). The inputs are the run's configuration, held from START;
    the outputs are valid when ``busy`` falls after ``start``. (The sequencer reads a warm start's
    model before the schedule is known, and drains that read if the run is ``bad_start``.)

    Parameters
    ----------
    samples : int
        ``S``, rows per group (a power of two).
    """

    def __init__(self, *, samples: int):
        assert samples & (samples - 1) == 0
        self.samples = samples
        super().__init__({
            "start": In(1), "busy": Out(1),
            "rows": In(_W["rows"]), "batch": In(_W["batch"]), "epochs": In(_W["epochs"]),
            "copies": In(_W["copies"]), "first": In(_W["start_minibatch"]), "count": In(_W["max_minibatches"]),
            "chunks": In(16), "bits": In(4), "data_lines": In(32), "plain": In(1),
            "bad_start": Out(1), "nseg": Out(NARROW + 1),
            "rows_first": Out(32), "rows_last": Out(32),
            "data_off_first": Out(WIDE), "label_off_first": Out(32), "copy_first": Out(8), "copy_off": Out(WIDE),
            "data_lines_first": Out(32), "data_lines_last": Out(32),
            "label_lines_first": Out(32), "label_lines_last": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        log_s = self.samples.bit_length() - 1

        # ---- the shared loops
        m.submodules.mul = mul = SerialMultiplier()
        m.submodules.div = div = SerialDivider()

        # ---- the run's quantities (names as in the docstring)
        p, lg, total, end, s_m = Signal(33), Signal(16), Signal(WIDE), Signal(WIDE), Signal(WIDE)
        e0, lo0, ez, hiz = Signal(WIDE), Signal(32), Signal(WIDE), Signal(32)
        copy0 = self.copy_first
        lo0b, n0b, hizb = Signal(WIDE), Signal(WIDE), Signal(WIDE)
        first_ends = Signal()  # the first segment runs to its epoch's end
        bad = Signal()         # S >= E * P (a register: the FSM branches on it)
        rest = Signal()        # a remainder is not 0 (a register: no compare chained into a sum)
        groups_first, groups_last = Signal(32), Signal(32)
        o = self

        def groups(rows):
            return (rows + self.samples - 1) >> log_s

        # One step per entry, run in order: ("mul", a, b, dest) with b < 2^NARROW, ("div", a, b,
        # quotient, remainder), ("set", [assignments]) (one cycle; reads the previous steps'
        # registers), ("bad", flag): stop here (bad_start) if the flag (a register) is set.
        program = [
            ("div", o.rows, o.batch, e0, hiz),                       # scratch: N // B, N mod B (32 steps)
            ("set", [rest.eq(hiz != 0), s_m.eq(o.first + o.count)]),
            ("set", [p.eq(e0[:33] + rest)]),
            ("mul", o.chunks, o.bits + 1, lg),                         # lines per group
            ("mul", p, o.epochs, total),
            ("set", [end.eq(Mux((o.count == 0) | (s_m > total), total, s_m)), bad.eq(o.first >= total)]),
            ("bad", bad),
            ("div", o.first, p, e0, lo0),                            # 32 steps (START_MINIBATCH)
            ("div", end, p, ez, hiz),                                # 48 steps (end <= E * P)
            ("div", e0, o.copies, None, copy0),                      # 16 steps: e0 < E < 2^16 (not bad)
            ("set", [rest.eq(hiz != 0)]),
            # nseg <= E < 2^16: the difference is exact in its low bits, a short carry chain
            ("set", [o.nseg.eq(ez[:NARROW + 1] - e0[:NARROW + 1] + rest)]),
            ("set", [first_ends.eq((o.nseg != 1) | (hiz == 0))]),
            ("mul", lo0, o.batch, lo0b),
            ("mul", hiz - lo0, o.batch, n0b),
            ("mul", hiz, o.batch, hizb),
            ("set", [o.rows_first.eq(Mux(first_ends, o.rows - lo0b, n0b)),
                     o.rows_last.eq(Mux(hiz != 0, hizb, o.rows))]),
            ("set", [groups_first.eq(groups(o.rows_first)), groups_last.eq(groups(o.rows_last))]),
            ("mul", lo0, o.batch >> log_s, o.label_off_first),
            ("mul", o.label_off_first, lg, o.data_off_first),
            ("mul", groups_first, lg, o.data_lines_first),
            ("mul", groups_last, lg, o.data_lines_last),
            ("mul", o.data_lines, copy0, o.copy_off),
            ("set", [o.label_lines_first.eq(groups_first), o.label_lines_last.eq(groups_last)]),
        ]
        assert MAX_BATCH < (1 << NARROW) and (1 << len(o.epochs)) <= (1 << NARROW)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), self.bad_start.eq(0)]
                    m.next = "STEP0"
                    with m.If(self.plain):
                        m.next = "PLAIN"
            # START_MINIBATCH = MAX_MINIBATCHES = 0: every segment is a whole epoch (the program
            # would say so too, ~250 cycles later)
            with m.State("PLAIN"):
                m.d.sync += [o.nseg.eq(o.epochs), o.rows_first.eq(o.rows), o.rows_last.eq(o.rows),
                             o.data_off_first.eq(0), o.label_off_first.eq(0), o.copy_first.eq(0), o.copy_off.eq(0),
                             o.data_lines_first.eq(o.data_lines), o.data_lines_last.eq(o.data_lines),
                             o.label_lines_first.eq(groups(o.rows)), o.label_lines_last.eq(groups(o.rows))]
                m.next = "DONE"
            for i, (kind, *args) in enumerate(program):
                here, after = f"STEP{i}", f"STEP{i + 1}" if i + 1 < len(program) else "DONE"
                if kind == "set":
                    with m.State(here):
                        m.d.sync += args[0]
                        m.next = after
                elif kind == "bad":
                    with m.State(here):
                        with m.If(args[0]):
                            m.d.sync += self.bad_start.eq(1)
                            m.next = "DONE"
                        with m.Else():
                            m.next = after
                elif kind == "mul":
                    a, b, dest = args
                    with m.State(here):
                        m.d.comb += [mul.start.eq(1), mul.a.eq(a), mul.b.eq(b)]
                        m.next = here + "_WAIT"
                    with m.State(here + "_WAIT"):
                        with m.If(~mul.busy):
                            m.d.sync += dest.eq(mul.p)
                            m.next = after
                else:  # div: as many steps as the dividend has bits (at most WIDE)
                    a, b, quo, rmd = args
                    n = min(WIDE, len(a) if a is not e0 else len(o.epochs))
                    with m.State(here):
                        m.d.comb += [div.start.eq(1), div.a.eq((a << (WIDE - n))[:WIDE]), div.b.eq(b), div.n.eq(n)]
                        m.next = here + "_WAIT"
                    with m.State(here + "_WAIT"):
                        with m.If(~div.busy):
                            if quo is not None:
                                m.d.sync += quo.eq(div.q)
                            m.d.sync += rmd.eq(div.r)
                            m.next = after
            with m.State("DONE"):
                m.d.sync += self.busy.eq(0)
                m.next = "IDLE"
        return m
