"""``WovenDotUnit``: plane-masked sums of model words -> each row's residual."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.fixed import CODE_FRAC, LOSS_SHIFT

from .arith import rnd, sat32, tree_sum
from .records import residual_layout

__all__ = ["WovenDotUnit"]

CHUNK = 32  # features per line (lowbit.format.ROW_ALIGN)


class WovenDotUnit(wiring.Component):
    """Takes one woven line per cycle: bit plane ``k`` of chunk ``c`` (32 features) of the ``S``
    rows of a group. For every row ``s`` it adds the model words of the chunk whose bit is set
    (a 32-input adder tree per row, no multiplier) and accumulates ``sum << k``, so after the
    group's last line ``acc_s = sum_j c_sj * w_j``. With an affine table (``m = m0 + c * delta``):

        dot_s = m0 * sum_j w_j + delta * acc_s            (= sum_j m_sj w_j, exactly)
        r_s   = sat32(rnd(dot_s, 15) - y_s)
        loss += (r_s * r_s) >> 16                           (saturating, rows < N only)

    and it hands ``delta * r_s`` and ``m0 * sum_s r_s`` to the gradient unit. Every line is also
    written to the group buffer (slot ``g mod 2``), from which the gradient unit re-reads the group.

    Flow: a line is taken when its group has a free buffer slot, the model chunk it needs is
    up to date (interlock: the first group of minibatch ``q >= 1`` reads chunk ``c`` only after
    the update of minibatch ``q - 1`` has written ``(q-1)*chunks + c + 1`` chunks this epoch), and,
    for a group's last line, its label line is there and a residual record slot is free.

    Pipeline (line taken at t): t model read issued, buffer written; t+1 model word registered;
    t+2 partial sums of 4; t+3 per-row sums; t+4 accumulate; t+5 ``delta*acc``, ``m0*sum w``;
    t+6 ``r``; t+7 ``delta*r``, ``r*r``; t+8 record offered, loss added.

    Parameters
    ----------
    line_bits : int
    max_chunks : int
        Model rows (``max_features / 32``).
    slot_lines : int
        Buffer lines per group slot (a power of two >= ``9 * max_chunks``).
    """

    def __init__(self, *, line_bits: int, max_chunks: int, slot_lines: int):
        self.line_bits, self.max_chunks, self.slot_lines = line_bits, max_chunks, slot_lines
        S = self.samples = line_bits // CHUNK
        super().__init__({
            "lines": In(stream.Signature(line_bits)),
            "labels": In(stream.Signature(line_bits)),
            "start": In(1), "running": In(1),
            "chunks": In(range(max_chunks + 1)), "bits": In(4), "groups": In(32), "rows": In(32),
            "batch_groups": In(32),  # groups per minibatch (>= groups: one minibatch per epoch)
            "m0": In(signed(17)), "delta": In(signed(18)),
            "upd_written": In(32), "groups_read": In(32),
            "model_addr": Out(range(max_chunks)),
            "model_data": In(data.ArrayLayout(signed(32), CHUNK)),
            "buf_en": Out(1), "buf_addr": Out(range(2 * slot_lines)), "buf_data": Out(line_bits),
            "residuals": Out(stream.Signature(residual_layout(S))),
            "loss": Out(64), "done": Out(1), "stall": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        S, W = self.samples, self.line_bits
        rec_layout = residual_layout(S)

        # ---- position in the epoch
        g = Signal(32)            # group being read
        c = Signal(range(self.max_chunks + 1))
        k = Signal(4)
        idx = Signal(range(self.slot_lines))  # line within the group
        mb_pos = Signal(32)       # group index within its minibatch
        mb = Signal(32)           # minibatch index in the epoch
        lock_base = Signal(32)    # (mb - 1) * chunks
        rows_left = Signal(signed(33))
        pending = Signal(2)       # residual records promised but not yet taken (<= 2)

        last_plane = k == self.bits
        last_chunk = c == self.chunks - 1
        last_line = last_plane & last_chunk
        m.d.comb += self.done.eq(g == self.groups)
        slot_free = (g - self.groups_read) < 2
        unlocked = (mb == 0) | (self.upd_written >= lock_base + c + 1)
        credit = pending < 2
        ok = self.running & ~self.done & slot_free & unlocked & (~last_line | (self.labels.valid & credit))
        fire = Signal()
        m.d.comb += [self.lines.ready.eq(ok), fire.eq(ok & self.lines.valid),
                     self.labels.ready.eq(ok & self.lines.valid & last_line),
                     self.stall.eq(self.running & ~self.done & slot_free & unlocked & ~self.lines.valid),
                     self.model_addr.eq(c),
                     self.buf_en.eq(fire), self.buf_addr.eq(Cat(idx, g[0])), self.buf_data.eq(self.lines.payload)]

        with m.If(self.start):
            m.d.sync += [g.eq(0), c.eq(0), k.eq(0), idx.eq(0), mb_pos.eq(0), mb.eq(0), lock_base.eq(0),
                         rows_left.eq(self.rows), self.loss.eq(0)]
        with m.Elif(fire):
            m.d.sync += [k.eq(k + 1), idx.eq(idx + 1)]
            with m.If(last_plane):
                m.d.sync += [k.eq(0), c.eq(c + 1)]
                with m.If(last_chunk):
                    m.d.sync += [c.eq(0), idx.eq(0), g.eq(g + 1), rows_left.eq(rows_left - S),
                                 mb_pos.eq(mb_pos + 1)]
                    with m.If(mb_pos + 1 == self.batch_groups):
                        m.d.sync += [mb_pos.eq(0), mb.eq(mb + 1),
                                     lock_base.eq(Mux(mb == 0, 0, lock_base + self.chunks))]

        # ---- t+1: model words arrive (synchronous read); register the line with them
        p1 = dict(valid=Signal(), line=Signal(W), k=Signal(4), first=Signal(), last=Signal(),
                  y=Signal(W), mask=Signal(S))
        mask_now = Cat(rows_left > s for s in range(S))
        m.d.sync += [p1["valid"].eq(fire), p1["line"].eq(self.lines.payload), p1["k"].eq(k),
                     p1["first"].eq((c == 0) & (k == 0)), p1["last"].eq(last_line),
                     p1["y"].eq(self.labels.payload), p1["mask"].eq(mask_now)]
        p2 = {n: Signal.like(v, name=f"p2_{n}") for n, v in p1.items()}
        w2 = Signal(data.ArrayLayout(signed(32), CHUNK))
        m.d.sync += [p2[n].eq(v) for n, v in p1.items()]
        m.d.sync += w2.eq(self.model_data)

        # ---- t+2: partial sums of 4 masked words per row, and of the plain words (for sum w)
        p3 = {n: Signal.like(v, name=f"p3_{n}") for n, v in p2.items()}
        m.d.sync += [p3[n].eq(v) for n, v in p2.items()]
        parts = [[Signal(signed(34), name=f"part_{s}_{q}") for q in range(CHUNK // 4)] for s in range(S)]
        wparts = [Signal(signed(34), name=f"wpart_{q}") for q in range(CHUNK // 4)]
        for s in range(S):
            bits = p2["line"][CHUNK * s: CHUNK * (s + 1)]
            for q in range(CHUNK // 4):
                m.d.sync += parts[s][q].eq(tree_sum(Mux(bits[f], w2[f], 0) for f in range(4 * q, 4 * q + 4)))
        for q in range(CHUNK // 4):
            m.d.sync += wparts[q].eq(Mux(p2["k"] == 0, tree_sum(w2[f] for f in range(4 * q, 4 * q + 4)), 0))

        # ---- t+3: per-row sums
        p4 = {n: Signal.like(v, name=f"p4_{n}") for n, v in p3.items()}
        m.d.sync += [p4[n].eq(v) for n, v in p3.items()]
        rsum = [Signal(signed(37), name=f"rsum_{s}") for s in range(S)]
        wsum = Signal(signed(37))
        m.d.sync += [rsum[s].eq(tree_sum(parts[s])) for s in range(S)]
        m.d.sync += wsum.eq(tree_sum(wparts))

        # ---- t+4: accumulate; the group's final sums go to their own registers
        acc = [Signal(signed(56), name=f"acc_{s}") for s in range(S)]
        sumw = Signal(signed(46))
        fin = [Signal(signed(56), name=f"fin_{s}") for s in range(S)]
        fin_sumw = Signal(signed(46))
        p5 = dict(valid=Signal(), y=Signal(W), mask=Signal(S))
        m.d.sync += p5["valid"].eq(p4["valid"] & p4["last"])
        with m.If(p4["valid"]):
            new = [Mux(p4["first"], 0, acc[s]) + (rsum[s] << p4["k"]) for s in range(S)]
            new_w = Mux(p4["first"], 0, sumw) + wsum
            m.d.sync += [acc[s].eq(new[s]) for s in range(S)]
            m.d.sync += sumw.eq(new_w)
            with m.If(p4["last"]):
                m.d.sync += [fin[s].eq(new[s]) for s in range(S)]
                m.d.sync += [fin_sumw.eq(new_w), p5["y"].eq(p4["y"]), p5["mask"].eq(p4["mask"])]

        # ---- t+5: delta * acc, m0 * sum w
        p6 = {n: Signal.like(v, name=f"p6_{n}") for n, v in p5.items()}
        m.d.sync += [p6[n].eq(v) for n, v in p5.items()]
        prod = [Signal(signed(76), name=f"prod_{s}") for s in range(S)]
        msw = Signal(signed(64))
        m.d.sync += [prod[s].eq(self.delta * fin[s]) for s in range(S)]
        m.d.sync += msw.eq(self.m0 * fin_sumw)

        # ---- t+6: residuals (0 for padding rows)
        p7 = {n: Signal.like(v, name=f"p7_{n}") for n, v in p6.items()}
        m.d.sync += [p7[n].eq(v) for n, v in p6.items()]
        r = [Signal(signed(32), name=f"r_{s}") for s in range(S)]
        for s in range(S):
            y = p6["y"][32 * s: 32 * (s + 1)].as_signed()
            m.d.sync += r[s].eq(Mux(p6["mask"][s], sat32(rnd(prod[s] + msw, CODE_FRAC) - y), 0))

        # ---- t+7: delta * r, sum r, r*r
        p8 = {n: Signal.like(v, name=f"p8_{n}") for n, v in p7.items()}
        m.d.sync += [p8[n].eq(v) for n, v in p7.items()]
        d = [Signal(signed(50), name=f"d_{s}") for s in range(S)]
        rs = Signal(signed(40))
        sq = [Signal(62, name=f"sq_{s}") for s in range(S)]
        m.d.sync += [d[s].eq(self.delta * r[s]) for s in range(S)]
        m.d.sync += rs.eq(tree_sum(r))
        m.d.sync += [sq[s].eq((r[s] * r[s]) >> LOSS_SHIFT) for s in range(S)]

        # ---- t+8: the record; the loss (saturating at 2^64 - 1)
        rec = Signal(rec_layout)
        rec_valid = Signal()
        m.d.sync += rec_valid.eq(p8["valid"])
        with m.If(p8["valid"]):
            m.d.sync += [rec.d[s].eq(d[s]) for s in range(S)]
            m.d.sync += [rec.m0r.eq(self.m0 * rs), rec.valid.eq(p8["mask"]),
                         rec.count.eq(sum(p8["mask"][s] for s in range(S)))]
            total = self.loss + tree_sum(sq)
            m.d.sync += self.loss.eq(Mux(total[64:].any(), (1 << 64) - 1, total[:64]))

        # A two-entry queue toward the gradient unit; ``pending`` counts entries promised at the
        # group's last line and not yet taken, so the queue never overflows.
        m.submodules.queue = queue = _RecordQueue(rec_layout)
        m.d.comb += [queue.w_en.eq(rec_valid), queue.w_data.eq(rec)]
        wiring.connect(m, queue.r_stream, wiring.flipped(self.residuals))
        taken = self.residuals.valid & self.residuals.ready
        promised = fire & last_line
        with m.If(self.start):
            m.d.sync += pending.eq(0)
        with m.Else():
            m.d.sync += pending.eq(pending + promised - taken)
        return m


class _RecordQueue(wiring.Component):
    """Two registers in a queue: written without back-pressure (the writer holds a credit)."""

    def __init__(self, layout):
        self.layout = layout
        super().__init__({"w_en": In(1), "w_data": In(layout), "r_stream": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        slots = [Signal(self.layout, name=f"slot{i}") for i in range(2)]
        full = Signal(2)
        head = Signal()  # slot read next
        tail = Signal()  # slot written next
        m.d.comb += [self.r_stream.valid.eq(full.bit_select(head, 1)),
                     self.r_stream.payload.eq(Mux(head, slots[1], slots[0]))]
        take = self.r_stream.valid & self.r_stream.ready
        set_ = Signal(2)
        clr = Signal(2)
        with m.If(self.w_en):
            m.d.sync += tail.eq(~tail)
            with m.If(tail):
                m.d.sync += slots[1].eq(self.w_data)
            with m.Else():
                m.d.sync += slots[0].eq(self.w_data)
            m.d.comb += set_.eq(Mux(tail, 2, 1))
        with m.If(take):
            m.d.sync += head.eq(~head)
            m.d.comb += clr.eq(Mux(head, 2, 1))
        m.d.sync += full.eq((full & ~clr) | set_)
        return m
