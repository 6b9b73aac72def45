"""``WovenDotUnit``: plane-masked sums of model words -> each row's residual."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CODE_FRAC, M_BITS
from lowbit.contract.format import ROW_ALIGN
from lowbit.contract.registers import MAX_DEGREE

from ..ecp5 import PipelinedMul, pipelined_sum
from .arith import add_levels, delay, register_all
from .margin import RowNonlinearity
from .records import group_slots, residual_layout

__all__ = ["WovenDotUnit"]

CHUNK = ROW_ALIGN  # features per line


class WovenDotUnit(wiring.Component):
    """Takes one woven line per cycle: bit plane ``k`` of chunk ``c`` (32 features) of the ``S``
    rows of a group. For every row ``s`` it adds the model words of the chunk whose bit is set
    (a 32-input adder tree per row, no multiplier) and accumulates ``sum << k``, so after the
    group's last line ``acc_s = sum_j c_sj * w_j``. With an affine table (``m = m0 + c * delta``):

        dot_s = m0 * sum_j w_j + delta * acc_s            (= sum_j m_sj w_j, exactly)
        r_s   = sat32(rnd(dot_s, 15) - y_s)                 (LOSS squared; logistic and hinge:
        loss += (r_s * r_s) >> 16                            margin.RowNonlinearity) rows < N only

    and it hands ``delta * r_s`` and ``m0 * sum_s r_s`` to the gradient unit. Every line is also
    written to the group buffer (slot ``g mod 2``), from which the gradient unit re-reads the group.

    Flow: a line is taken when its group has a free buffer slot, the model chunk it needs is
    up to date (interlock: the first group of minibatch ``q >= 1`` reads chunk ``c`` only after
    the update of minibatch ``q - 1`` has written ``(q-1)*chunks + c + 1`` chunks this epoch), and,
    for a group's last line, its label line is there and a residual record slot is free.

    Pipelined SGD (``delayed`` builds, ``model_delay`` held for the run: one group a minibatch,
    the core sees to it): minibatch ``q >= 2`` reads chunk ``c`` once ``(q-2)*chunks + c + 1``
    chunks are written (minibatches 0 and 1 freely), so it reads the model one minibatch old and
    runs while minibatch ``q-1``'s update is written; the gradient unit holds each chunk of that
    update until this unit has read it (``chunks_passed``: chunks whose last plane was taken this
    epoch). Such builds have 4 group slots instead of 2, so the dot pass of a group never waits
    for the gradient pass of the group two before it (which ends a record's latency later).

    Chebyshev estimator (``factors_m1 = d > 0``): a group comes ``d + 1`` times, once from each
    factor's copy (``CopyInterleaver``); every factor's last line gives its dot products to the row
    unit (at least ``RowNonlinearity.factor_gap`` cycles apart), only factor 0's lines go to the
    group buffer, the label line is taken with factor 0's last line, the record slot with the
    group's last, and factors after the first do not wait for the interlock (factor 0 did).

    Pipeline (line taken at t): t model read issued, buffer written; t+1 model word out of the RAM;
    t+2 registered, with the words' pair sums; t+3, t+4 the per-row adder trees over 16 pair terms
    (two levels per stage), t+5 registered again; t+6 ``sum << k``;
    t+7 accumulate. Then once per group, every multiply a ``PipelinedMul`` (MULT18X18D with its
    registers): ``delta*acc + m0*sum w + 2^14`` (6 cycles), ``r`` (``RowNonlinearity``: 2 cycles for
    least squares, 3 hinge, 9 logistic), then ``delta*r`` and ``m0 * sum r`` (the sum two adder
    levels a stage), and the record is offered as soon as both are there (4 cycles after ``r`` at
    64-bit lines, 5 at 512); the loss is added when the row unit has summed it, a few cycles later.
    The interlock and slot decisions are registers (see ``elaborate``): a line is never taken on a
    32-bit compare made in the same cycle.

    Parameters
    ----------
    line_bits : int
    max_chunks : int
        Model rows (``max_features / 32``).
    slot_lines : int
        Buffer lines per group slot (a power of two >= ``9 * max_chunks``).
    chebyshev : bool
        Build the Chebyshev estimator's factors and Horner steps (default). ``False`` holds them
        at constants here and in the row unit, so synthesis drops them even module by module
        (the board's ``-noflatten``), where a 0 held on a port by the core does not propagate.
    delayed : bool
        Build pipelined SGD (``model_delay``) and 4 group slots; ``False``: 2 slots, exact SGD only.
    """

    def __init__(self, *, line_bits: int, max_chunks: int, slot_lines: int, chebyshev: bool = True,
                 delayed: bool = False):
        self.line_bits, self.max_chunks, self.slot_lines = line_bits, max_chunks, slot_lines
        self.chebyshev = bool(chebyshev)
        self.delayed = bool(delayed)
        self.slots = group_slots(self.delayed)
        S = self.samples = line_bits // CHUNK
        super().__init__({
            "lines": In(stream.Signature(line_bits)),
            "labels": In(stream.Signature(line_bits)),
            "start": In(1), "running": In(1),
            "chunks": In(range(max_chunks + 1)), "bits": In(4), "groups": In(32), "rows": In(32),
            "batch_groups": In(32),  # groups per minibatch (>= groups: one minibatch per epoch)
            "m0": In(signed(M_BITS)), "delta": In(signed(M_BITS + 1)),
            "loss_kind": In(2),  # LOSS, held for the run
            # the Chebyshev estimator (held for the run): d (0: one copy a row), POLY_0..POLY_d, RANGE
            "factors_m1": In(4), "poly": In(data.ArrayLayout(signed(32), MAX_DEGREE + 1)), "range_shift": In(3),
            "upd_written": In(32), "groups_read": In(32),
            "model_delay": In(1), "chunks_passed": Out(32),
            "model_addr": Out(range(max_chunks)),
            "model_data": In(data.ArrayLayout(signed(32), CHUNK)),
            "buf_en": Out(1), "buf_addr": Out(range(self.slots * slot_lines)), "buf_data": Out(line_bits),
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
        mb_left = Signal(32)      # groups after this one in its minibatch
        # The minibatch's index in the epoch, counting to 2: minibatch 0 reads the model freely,
        # and with model_delay minibatch 1 too; the minibatch after which the lock's base is 0.
        mbi = Signal(2)
        if self.delayed:
            dly = Signal(reset_less=True)
            m.d.sync += dly.eq(self.model_delay)
        else:
            dly = Const(0, 1)
        mb_first = Signal()        # this minibatch reads freely
        next_free = Signal()       # ... and so does the next one
        base_zero = Signal()       # the next minibatch's lock base is 0 (reads chunk c at c + 1 written)
        m.d.comb += [mb_first.eq((mbi == 0) | (dly & (mbi == 1))), next_free.eq(dly & (mbi == 0)),
                     base_zero.eq(Mux(dly, mbi == 1, mbi == 0))]
        # lock_base + 1 and lock_base + chunks + 1, lock_base = (minibatch - 1) * chunks: kept as
        # registers of their own, so the next group's lock is a choice among registers, not a sum
        # of a sum (the run's sizes are registers too: chunks - 1, chunks + 1, batch_groups - 1).
        lb1, lbc1 = Signal(32), Signal(32)
        rows_left = Signal(signed(33))
        pending = Signal(2)       # residual records promised but not yet taken (<= 2)
        chunks_m1 = Signal(range(self.max_chunks + 1), reset_less=True)
        chunks_p1 = Signal(range(self.max_chunks + 2), reset_less=True)
        bg_m1 = Signal(32, reset_less=True)
        m.d.sync += [chunks_m1.eq(self.chunks - 1), chunks_p1.eq(self.chunks + 1),
                     bg_m1.eq(self.batch_groups - 1)]

        # Chebyshev: each group is read d + 1 times, factor f = 0 .. d (copies in the order 0, d, .., 1:
        # CopyInterleaver); only factor 0's lines go to the group buffer. One factor otherwise.
        f = Signal(4)
        if self.chebyshev:
            fm1 = Signal(4, reset_less=True)
            m.d.sync += fm1.eq(self.factors_m1)
        else:
            fm1 = Const(0, 4)  # one factor for good
        cheb = fm1 != 0
        f0, f_last = f == 0, f == fm1
        last_plane = k == self.bits
        last_chunk = c == chunks_m1
        last_fline = last_plane & last_chunk      # a factor's last line: its dot products
        last_line = last_fline & f_last           # the group's last line
        label_line = last_fline & f0              # the label line is taken with factor 0's dot products
        ends_mb = mb_left == 0
        # Chebyshev: a factor's dot products reach the row unit at least factor_gap cycles after the
        # previous factor's, so each Horner step has the last one's h (RowNonlinearity.factor_gap)
        wait = Signal(range(RowNonlinearity.factor_gap))
        gap_ok = ~last_fline | (wait == 0)
        # done (g == groups) is a register of its own, set as the last group is taken: it gates
        # every line's ready, so it must not be a 32-bit compare.
        groups_m1 = Signal(32, reset_less=True)
        m.d.sync += groups_m1.eq(self.groups - 1)

        # The interlock and the buffer-slot test are registered decisions (a 32-bit subtract or
        # compare in the ready path kept the clock far below 125 MHz): each cycle both outcomes,
        # "this position" and "the next position" (if this cycle's line is taken), are compared
        # from registers only, and ``fire`` just picks one. The counts they compare against
        # (``upd_written``, ``groups_read``) only grow, so a decision a cycle old is safe; it
        # costs at most one cycle when the gradient unit frees a slot or writes a chunk.
        #   need / free: chunk c of this group may be read once upd_written >= need, or freely
        #   in the first minibatch (free); wrap_need / wrap_free: the same for chunk 0 of the
        #   next group, recomputed the cycle after every group start.
        need, wrap_need = Signal(32), Signal(32)
        free, wrap_free = Signal(init=1), Signal(init=1)
        unlocked, slot_free = Signal(), Signal()
        credit = pending < 2
        ok = (self.running & ~self.done & slot_free & unlocked & gap_ok & (~label_line | self.labels.valid)
              & (~last_line | credit))
        fire = Signal()
        m.d.comb += [self.lines.ready.eq(ok), fire.eq(ok & self.lines.valid),
                     self.labels.ready.eq(ok & self.lines.valid & label_line),
                     self.stall.eq(self.running & ~self.done & slot_free & unlocked & ~self.lines.valid),
                     self.model_addr.eq(c),
                     self.buf_en.eq(fire & f0), self.buf_addr.eq(Cat(idx, g[:self.slots.bit_length() - 1])),
                     self.buf_data.eq(self.lines.payload)]
        with m.If(fire & last_fline):
            m.d.sync += wait.eq(Mux(cheb, RowNonlinearity.factor_gap - 1, 0))
        with m.Elif(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        upd = self.upd_written
        # factors after the first read the chunks factor 0 was let read: no wait
        later = Signal()  # f != 0, as a register
        stay_ok = free | later | (upd >= need)
        next_ok = Mux(last_line, wrap_free | (upd >= wrap_need),
                      Mux(last_fline, 1, Mux(last_plane, free | later | (upd > need), stay_ok)))
        in_flight = g - self.groups_read
        m.d.sync += [unlocked.eq(Mux(fire, next_ok, stay_ok)),
                     slot_free.eq(Mux(fire & last_line, in_flight < self.slots - 1, in_flight < self.slots))]
        # The next group's lock (valid from the second cycle of a group: groups have >= 2 lines):
        # next_base + 1, next_base = 0 / lock_base + chunks / lock_base.
        m.d.sync += [wrap_need.eq(Mux(ends_mb, Mux(base_zero, 1, lbc1), lb1)),
                     wrap_free.eq(Mux(ends_mb, next_free, mb_first))]

        with m.If(self.start):
            m.d.sync += [g.eq(0), c.eq(0), k.eq(0), f.eq(0), later.eq(0), wait.eq(0), idx.eq(0), mb_left.eq(bg_m1),
                         mbi.eq(0), lb1.eq(1), self.chunks_passed.eq(0),
                         lbc1.eq(chunks_p1), rows_left.eq(self.rows), self.loss.eq(0), free.eq(1), unlocked.eq(1),
                         slot_free.eq(1), self.done.eq(0)]
        with m.Elif(fire):
            m.d.sync += [k.eq(k + 1), idx.eq(idx + 1)]
            with m.If(last_plane):
                m.d.sync += [k.eq(0), c.eq(c + 1), need.eq(need + 1), self.chunks_passed.eq(self.chunks_passed + 1)]
                with m.If(last_chunk):
                    m.d.sync += [c.eq(0), f.eq(f + 1), later.eq(1)]
                with m.If(last_line):
                    m.d.sync += [f.eq(0), later.eq(0), idx.eq(0), g.eq(g + 1), rows_left.eq(rows_left - S),
                                 self.done.eq(g == groups_m1),
                                 mb_left.eq(mb_left - 1), need.eq(wrap_need), free.eq(wrap_free)]
                    with m.If(ends_mb):
                        m.d.sync += [mb_left.eq(bg_m1), mbi.eq(Mux(mbi == 2, 2, mbi + 1))]
                        # the bases stay at their start values until the base-0 minibatch
                        with m.If(base_zero | next_free):
                            m.d.sync += [lb1.eq(1), lbc1.eq(chunks_p1)]
                        with m.Else():
                            m.d.sync += [lb1.eq(lbc1), lbc1.eq(lbc1 + self.chunks)]

        # ---- t+1: model words arrive (synchronous read); register the line with them
        # Only ``valid`` is reset: the rest is read where ``valid`` says so (as the words, w2). On
        # the dot unit's reset (rst | dp_rst, one LUT) they were ~1k more flip-flops, which made it
        # one of the board's longest nets (docs/board.md, ninth and tenth passes).
        p1 = dict(valid=Signal(), line=Signal(W, reset_less=True), k=Signal(4, reset_less=True),
                  first=Signal(reset_less=True), last=Signal(reset_less=True), y=Signal(W, reset_less=True),
                  mask=Signal(S, reset_less=True), fac0=Signal(reset_less=True), flast=Signal(reset_less=True))
        mask_now = Cat(rows_left > s for s in range(S))
        y_hold = Signal(W, reset_less=True)  # the group's labels, for its factors after the first
        with m.If(fire & label_line):
            m.d.sync += y_hold.eq(self.labels.payload)
        m.d.sync += [p1["valid"].eq(fire), p1["line"].eq(self.lines.payload), p1["k"].eq(k),
                     p1["first"].eq((c == 0) & (k == 0)), p1["last"].eq(last_fline),
                     p1["y"].eq(Mux(f0, self.labels.payload, y_hold)), p1["mask"].eq(mask_now),
                     p1["fac0"].eq(f0), p1["flast"].eq(f_last)]

        def stage(prev, name):
            nxt = {n: Signal.like(v, name=f"{name}_{n}", reset_less=(n != "valid")) for n, v in prev.items()}
            m.d.sync += [nxt[n].eq(v) for n, v in prev.items()]
            return nxt

        p2 = stage(p1, "p2")
        w2 = Signal(data.ArrayLayout(signed(32), CHUNK), reset_less=True)
        # With the words, their sums in pairs (shared by every row): a row's bits of features 2p
        # and 2p+1 pick one of {0, w[2p], w[2p+1], w[2p] + w[2p+1]}, so each row's tree adds 16
        # terms, not 32.
        wpair = [Signal(signed(33), name=f"wpair_{p}", reset_less=True) for p in range(CHUNK // 2)]
        m.d.sync += w2.eq(self.model_data)
        m.d.sync += [wpair[p].eq(self.model_data[2 * p] + self.model_data[2 * p + 1]) for p in range(CHUNK // 2)]

        # ---- t+3 .. t+5: per-row sums of the selected pair terms, two adder levels per stage
        # (and of the plain words at plane 0, for sum w)
        p3 = stage({n: v for n, v in p2.items() if n != "line"}, "p3")
        rows = []
        for s in range(S):
            bits = p2["line"][CHUNK * s: CHUNK * (s + 1)]
            terms = [Mux(bits[2 * p + 1], Mux(bits[2 * p], wpair[p], w2[2 * p + 1]), Mux(bits[2 * p], w2[2 * p], 0))
                     for p in range(CHUNK // 2)]
            rows.append(register_all(m, add_levels(terms, 2), f"part3_{s}"))
        wrow = register_all(m, add_levels([Mux(p2["k"] == 0, wpair[p], 0) for p in range(CHUNK // 2)], 2), "wpart3")
        p4 = stage(p3, "p4")
        rows = [register_all(m, add_levels(r, 2), f"part4_{s}") for s, r in enumerate(rows)]
        wrow = register_all(m, add_levels(wrow, 2), "wpart4")
        p5 = stage(p4, "p5")
        rsum = [register_all(m, add_levels(r, 1), f"rsum_{s}")[0] for s, r in enumerate(rows)]
        wsum = register_all(m, add_levels(wrow, 1), "wsum")[0]

        # ---- t+6: rsum << k (its own stage: a 4-level shifter)
        p6 = stage(p5, "p6")
        shifted = [register_all(m, [rsum[s] << p5["k"]], f"shifted_{s}")[0] for s in range(S)]
        wsum6 = delay(m, wsum, 1, "wsum6")

        # ---- t+7: accumulate; the group's final sums go to their own registers
        acc = [Signal(signed(56), name=f"acc_{s}") for s in range(S)]
        sumw = Signal(signed(46))
        fin = [Signal(signed(56), name=f"fin_{s}", reset_less=True) for s in range(S)]
        fin_sumw = Signal(signed(46), reset_less=True)
        fin_valid = Signal()
        fin_y = Signal(W, reset_less=True)
        fin_mask = Signal(S, reset_less=True)
        fin_fac0, fin_flast = Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += fin_valid.eq(p6["valid"] & p6["last"])
        with m.If(p6["valid"]):
            new = [Mux(p6["first"], 0, acc[s]) + shifted[s] for s in range(S)]
            new_w = Mux(p6["first"], 0, sumw) + wsum6
            m.d.sync += [acc[s].eq(new[s]) for s in range(S)]
            m.d.sync += sumw.eq(new_w)
            with m.If(p6["last"]):
                m.d.sync += [fin[s].eq(new[s]) for s in range(S)]
                m.d.sync += [fin_sumw.eq(new_w), fin_y.eq(p6["y"]), fin_mask.eq(p6["mask"]),
                             fin_fac0.eq(p6["fac0"]), fin_flast.eq(p6["flast"])]

        # ---- once per group, fully pipelined (MULT18X18D with their registers, ecp5.PipelinedMul):
        #   s_s = delta * fin_s + m0 * sum w + 2^14          (rnd(., 15) = s >> 15)
        #   r_s = sat32((s_s >> 15) - y_s), 0 for padding rows
        #   d_s = delta * r_s;  m0r = m0 * sum_s r_s;  loss += sum_s (r_s * r_s) >> 16
        def mul(a, b, name):
            unit = m.submodules[name] = PipelinedMul(len(a), len(b))
            m.d.comb += [unit.a.eq(a), unit.b.eq(b)]
            return unit.p, unit.latency

        msw, lat_msw = mul(self.m0, fin_sumw, "mul_msw")
        prods = [mul(self.delta, fin[s], f"mul_dacc_{s}") for s in range(S)]
        lat_prod = prods[0][1]
        lat_a = max(lat_msw, lat_prod)
        msw = delay(m, msw, lat_a - lat_msw, "msw")
        dots, lat_sum = [], 0
        for s in range(S):
            total, _, lat_sum = pipelined_sum(m, [(delay(m, prods[s][0], lat_a - lat_prod, f"prod_{s}"), 0),
                                                  (msw, 0), (Const(1 << (CODE_FRAC - 1), signed(16)), 0)],
                                              f"dot_{s}")
            dots.append(total)
        lat_dot = lat_a + lat_sum
        y_d = delay(m, fin_y, lat_dot, "y")
        mask_d = delay(m, fin_mask, lat_dot, "mask")
        fac0_d = delay(m, fin_fac0, lat_dot, "fac0")
        flast_d = delay(m, fin_flast, lat_dot, "flast")
        valid_d = delay(m, fin_valid, lat_dot, "fin_valid", reset_less=False)

        # ---- each row's residual and the group's loss, for the run's LOSS (margin.py)
        nl = m.submodules.nonlinearity = RowNonlinearity(samples=S, dot_width=len(dots[0]), chebyshev=self.chebyshev)
        m.d.comb += [nl.kind.eq(self.loss_kind), nl.valid.eq(valid_d), nl.mask.eq(mask_d), nl.y.eq(y_d),
                     nl.dot.eq(Cat(*dots)), nl.cheb.eq(self.factors_m1 != 0), nl.degree.eq(self.factors_m1),
                     nl.first_factor.eq(fac0_d), nl.last_factor.eq(flast_d), nl.poly.eq(self.poly),
                     nl.range_shift.eq(self.range_shift)]
        r = [nl.r[s] for s in range(S)]
        mask_r, valid_r = nl.r_mask, nl.r_valid

        ds = [mul(self.delta, r[s], f"mul_dr_{s}") for s in range(S)]
        # sum_s r_s two adder levels a stage, as the row trees above (one level a stage took 4
        # cycles at 16 rows where 2 do), so that m0 * sum r is ready 2 cycles after the rows'
        # delta * r_s: the record leaves then, not when least squares' loss is summed (it did
        # until session 6, 3 cycles later at 512-bit lines, 1 at 64: each a cycle of every
        # minibatch boundary). The loss is added on its own a few cycles after the record, long
        # before the end of the run reads it (the record's update alone takes longer).
        rsum, lat_rs = list(r), 0
        while len(rsum) > 1:
            rsum = register_all(m, add_levels(rsum, 2), f"rsum{lat_rs}")
            lat_rs += 1
        m0r, lat_m0r = mul(self.m0, rsum[0], "mul_m0r")
        lat_rec = max(ds[0][1], lat_rs + lat_m0r)

        # ---- the record; the loss (saturating at 2^64 - 1)
        rec = Signal(rec_layout)
        rec_valid = delay(m, valid_r, lat_rec, "rec_valid", reset_less=False)
        rec_mask = delay(m, mask_r, lat_rec, "rec_mask")
        m.d.comb += [rec.d[s].eq(delay(m, ds[s][0], lat_rec - ds[s][1], f"d_{s}")) for s in range(S)]
        m.d.comb += [rec.m0r.eq(delay(m, m0r, lat_rec - lat_rs - lat_m0r, "m0r")), rec.valid.eq(rec_mask),
                     rec.count.eq(sum(rec_mask[s] for s in range(S)))]
        with m.If(nl.loss_valid):
            total = self.loss + nl.loss
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
        slots = [Signal(self.layout, name=f"slot{i}", reset_less=True) for i in range(2)]  # data: `full` says
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
