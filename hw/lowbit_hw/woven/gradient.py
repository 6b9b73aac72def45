"""``WovenGradientUnit``: re-reads a group's lines, accumulates G, and updates the model."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.fixed import CODE_FRAC, CORR_BITS, CORR_SHIFT, STEP_FRAC, rshift_round
from lowbit.contract.golden import L2_SHIFT
from lowbit.contract.format import MAX_BITS, ROW_ALIGN

from ..ecp5 import PipelinedMul, global_buffer, register_copies, register_copies_of, simple_dual_port_ram
from .arith import add_levels, delay, register_all, sat32
from .records import group_slots, residual_layout

__all__ = ["WovenGradientUnit", "GROUP_GAP", "check_tail_lanes", "check_update_lanes"]

CHUNK = ROW_ALIGN  # features per line
#: Cycles a group waits after the previous group's take (so group starts are >= GROUP_GAP + 1
#: apart). G of a chunk is read for its last (plane 0) line, issued at uL: the read is issued at
#: uL + 2 through a block RAM's output register, uL + 3 from LUT RAM (its data at uL + 4 either
#: way), and the new G is written at the end of cycle uL + 7. RAM reads are not transparent, so the
#: next group's read of that chunk, at uL' + 2 (or + 3), must come at uL + 8 or later: uL' - uL >= 6,
#: and uL' - uL is the distance between the two group starts (>= GROUP_GAP + 1 = 9): three cycles
#: (or four) in hand.
GROUP_GAP = 8
#: Registered copies of a group's operands (and of m0 r), each serving CHUNK / OPERAND_COPIES features.
OPERAND_COPIES = 4


def check_update_lanes(update_lanes, *, l2: bool) -> None:
    """The update's lanes: half a chunk a cycle, or a quarter in a build without L2 (whose second
    pass through the per-weight multipliers assumes two phases). ValueError otherwise."""
    if update_lanes not in (CHUNK // 2, CHUNK // 4) or (l2 and update_lanes != CHUNK // 2):
        raise ValueError(f"update_lanes must be {CHUNK // 2} (half a chunk a cycle) or, built without L2, "
                         f"{CHUNK // 4} (a quarter), got {update_lanes!r}")


def check_tail_lanes(tail_lanes) -> None:
    """The chunk's tail (G's new value and its write-back) takes a whole chunk a cycle (32) or half
    a chunk (16: a chunk's last planes are >= 2 cycles apart, b >= 1). ValueError otherwise."""
    if tail_lanes not in (CHUNK, CHUNK // 2):
        raise ValueError(f"tail_lanes must be {CHUNK} (a chunk a cycle) or {CHUNK // 2} (half a chunk), "
                         f"got {tail_lanes!r}")


class WovenGradientUnit(wiring.Component):
    """For each group (after the dot unit's residuals), per feature ``j`` of each chunk:

        G_j += m0 * sum_s r_s - n_odd_j * q_j + sum_k 2^k * sum_s bit_k(c_sj) * (delta * r_s)

    which is ``sum_s m(c_sj) r_s - sum_s rnd(e(c_sj) w0_j, 8)`` exactly (``m = m0 + c delta``,
    ``e = e_odd`` on odd codes, ``q_j = rnd(e_odd * w0_j, 8)``, ``n_odd_j`` the group's odd codes
    of feature ``j``): an ``S``-input adder tree per feature and plane, no multiplier per code.
    G lives in a RAM of one 32-feature chunk per row, read for a chunk's last plane and written
    4 cycles later. On the last group of a minibatch, G goes to the update instead (and 0 back):

        w_j = sat32(w0_j - rnd(sat32(rnd(G_j, 15)) * step, 32));   q_j = rnd(e_odd * w_j, 8)

    The unit never stalls once a group has started: every line is already in the group buffer.

    Pipeline (line read issued at u; a chunk's planes are read from b down to 0): u+1 the line
    out of the buffer, q read (block RAM: through its output register); u+2 registered, G read
    (block RAM), q read (LUT RAM); u+3 partial sums over rows (two adder levels), odd-code counts,
    q out of its RAM, G read (LUT RAM); u+4 G out of its RAM, per-feature sums ``t``, ``n_odd * q`` as shifted copies of ``q``, ``G + m0 * sum r``; u+5 ``h = 2h + t``
    (Horner), ``n_odd * q`` summed; u+6 ``h + G + m0 * sum r``; u+7 minus ``n_odd * q``: G
    written. Every stage is at most one carry chain
    (two adder levels in the row trees). The update (end of a minibatch) runs half a chunk per
    cycle through 16 ``PipelinedMul`` for ``gs * step`` and 16 for ``e_odd * w`` (chunks end >= 2
    cycles apart): u+8 ``rnd(G, 15)``, u+9 ``gs``, u+9/u+10 the halves enter, model written at
    u+16, ``q`` at u+21 (u+22 built with ``l2=False``), ``nd`` at u+21 or u+23.

    L2 (``l2``, unless built with ``l2=False``): ``G_j += count * nd_j`` per group in the same
    correction tree, ``nd_j = -rnd(L2 * w0_j, 17)`` from the same 16 per-weight multipliers (their
    operand 33 bits wide), kept in a RAM of its own: for logistic and hinge instead of ``q`` (0
    there), for least squares after it, the row's halves a second time (a minibatch's last group
    then waits ``3 - b`` cycles after each chunk when b < 3, so chunks end >= 4 cycles apart).
    Summed over a minibatch's groups that is golden's ``n_b * rnd(L2 * w0_j, 17)``.

    Pipelined SGD (``delayed`` builds, ``model_delay`` held for the run: one group a minibatch):
    the dot unit no longer orders a minibatch's update after the next minibatch's reads, so two
    locks hold a chunk's first plane here instead, each a registered decision:

    * write after read: the update of chunk ``c`` of group ``g`` (every group ends its minibatch)
      waits until the dot unit has taken the last plane of chunk ``c`` of group ``g + 1``
      (``dot_passed``), unless ``g`` is the epoch's last group, so the next minibatch reads the
      model before this update, as golden's MODEL_DELAY 1 says;
    * ``q`` (and L2's term) ready: group ``g >= 1`` reads chunk ``c``'s ``q`` only once the update
      of group ``g - 1`` has written it (``q`` is written ~21 cycles after its chunk is read).

    A held chunk also restarts ``GROUP_GAP``, so the next group's G read of a chunk still comes
    after this group's write of it however long this group was held.
    """

    def __init__(self, *, line_bits: int, max_chunks: int, slot_lines: int, l2: bool = True,
                 delayed: bool = False, update_lanes: int = CHUNK // 2, block_ram: bool = True,
                 gq_block_ram: bool | None = None, tail_lanes: int = CHUNK):
        self.line_bits, self.max_chunks, self.slot_lines = line_bits, max_chunks, slot_lines
        check_tail_lanes(tail_lanes)
        self.tail_lanes = tail_lanes
        self.with_l2 = bool(l2)
        check_update_lanes(update_lanes, l2=l2)
        self.update_lanes = update_lanes
        self.block_ram = bool(block_ram)
        self.gq_block_ram = self.block_ram if gq_block_ram is None else bool(gq_block_ram)
        self.delayed = bool(delayed)
        self.slots = group_slots(self.delayed)
        S = self.samples = line_bits // CHUNK
        super().__init__({
            "residuals": In(stream.Signature(residual_layout(S))),
            "start": In(1), "clear": In(1), "clear_busy": Out(1),
            "chunks": In(range(max_chunks + 1)), "bits": In(4), "groups": In(32),
            "batch_groups": In(32), "features": In(24), "step": In(32), "e_odd": In(CORR_BITS),
            # L2 (the register, held for the run) and whether the loss is not least squares (then
            # the per-weight multipliers are free for L2: e_odd is 0)
            "l2": In(32), "nonlinear": In(1),
            "buf_addr": Out(range(self.slots * slot_lines)), "buf_data": In(line_bits),
            "model_delay": In(1), "dot_passed": In(32),
            "model_r_addr": Out(range(max_chunks)), "model_r_data": In(data.ArrayLayout(signed(32), CHUNK)),
            "model_w_en": Out(1), "model_w_addr": Out(range(max_chunks)),
            "model_w_data": Out(data.ArrayLayout(signed(32), CHUNK)),
            "upd_written": Out(32), "groups_read": Out(32), "rows_done": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        S, W, C = self.samples, self.line_bits, self.max_chunks
        U = self.update_lanes
        P = CHUNK // U              # cycles the update takes a chunk in, so chunks end >= P cycles apart
        g_row = data.ArrayLayout(signed(64), CHUNK)
        q_row = data.ArrayLayout(signed(48), CHUNK)
        # Block RAM, though a few rows deep: as LUT RAM (yosys' choice for so shallow a memory)
        # G and q were ~900 DPR16X4 whose shared read and write addresses were among the most
        # congested nets of the board build; as DP16KD they are ~100 of the 85F's 208, which the
        # design otherwise leaves unused (docs/board.md). A row is never read in the cycle it is
        # written (simple_dual_port_ram's one rule): G's read of a chunk comes >= 1 cycle after its
        # write (GROUP_GAP); q's is read only for a minibatch's groups, after the update that
        # wrote it has reached the model and the dot pass has read it (the dot interlock).
        # In block RAM each is read through the DP16KD's output register (two cycles, the address
        # a cycle earlier): 1 ns from the clock where its array is 5.8 ns. In LUT RAM the read is
        # fast and takes one cycle (the read port's register): an output register there would be
        # 3.6k flip-flops more on the board (G's 2 048 and q's 1 536) for nothing (docs/board.md,
        # fifteenth pass: that netlist placed with a longer wire length on all three seeds).
        out_reg = self.gq_block_ram
        half = self.tail_lanes < CHUNK
        if half:  # G in two RAMs of half a chunk, read and written a cycle apart (the half-chunk tail, below)
            TL = self.tail_lanes
            g_mems = [simple_dual_port_ram(m, platform, shape=data.ArrayLayout(signed(64), TL), depth=C,
                                           name=f"g_mem{k}", block=self.gq_block_ram, out_reg=out_reg)
                      for k in range(2)]
        else:
            g_mem = simple_dual_port_ram(m, platform, shape=g_row, depth=C, name="g_mem", block=self.gq_block_ram,
                                         out_reg=out_reg)
        q_mem = simple_dual_port_ram(m, platform, shape=q_row, depth=C, name="q_mem", block=self.gq_block_ram,
                                     out_reg=out_reg)
        # nd_j = -rnd(L2 * w0_j, 17), the L2 term of the minibatch's model, written and read as q
        # is (the same rule holds: its writes come at most 2 cycles after q's); kept negated so
        # that it joins the correction tree, which is subtracted, as count * nd.
        d_mem = (simple_dual_port_ram(m, platform, shape=q_row, depth=C, name="d_mem", block=self.gq_block_ram,
                                      out_reg=out_reg)
                 if self.with_l2 else None)

        # The run's sizes less one, as registers (a group's "last of its minibatch" is then two
        # equality tests on registers, not a sum compared with a sum).
        chunks_m1 = Signal(range(C + 1), reset_less=True)
        groups_m1 = Signal(32, reset_less=True)
        bg_m1 = Signal(32, reset_less=True)
        m.d.sync += [chunks_m1.eq(self.chunks - 1), groups_m1.eq(self.groups - 1), bg_m1.eq(self.batch_groups - 1)]

        # ---- clear (run start): G, q and the model to 0 over the run's ``chunks`` rows (the
        # only rows the run reads, updates or snapshots; ``chunks`` is set long before the clear)
        clearing = Signal()
        clr_addr = Signal(range(C + 1))
        m.d.comb += self.clear_busy.eq(clearing | self.clear)
        with m.If(self.clear):
            m.d.sync += [clearing.eq(1), clr_addr.eq(0)]
        with m.Elif(clearing):
            m.d.sync += clr_addr.eq(clr_addr + 1)
            with m.If(clr_addr == chunks_m1):
                m.d.sync += clearing.eq(0)

        # ---- group issue: a chunk's planes are read from the group buffer highest first
        # (b, b-1, .., 0), so the plane sums accumulate by Horner's rule, h = 2h + t_k: a fixed
        # one-bit shift where summing t_k << k took a barrel shifter per feature.
        busy = Signal()
        gap = Signal(range(GROUP_GAP + 1))
        # Two record slots by group parity: a group's record is still read by the pipeline's
        # tail when the next group is taken.
        # (data, not reset: a slot is read only for a group taken into it since; as ~500 flip-flops
        # more on the unit's reset, rst | dp_rst, they made it one of the board's long nets)
        recs = [Signal(residual_layout(S), name=f"rec{i}", reset_less=True) for i in range(2)]
        # With each record, the sums of its rows in pairs, d[2p] + d[2p+1]: a feature's bits in
        # rows 2p and 2p+1 then pick one of {0, d[2p], d[2p+1], d[2p] + d[2p+1]}, so the per-feature
        # tree adds S/2 terms, not S (and none at S = 2).
        pairs = [[Signal(signed(51), name=f"pair{i}_{p}", reset_less=True) for p in range(S // 2)]
                 for i in range(2)]
        gg = Signal(32)                 # group being read
        mb_left = Signal(32)            # groups after this one in its minibatch
        # ... and the two tests themselves are registers. mb_left changes at a take, and the next
        # take is >= GROUP_GAP cycles later; gg changes as a group's last line is issued, which may
        # be the cycle before the next take, so at_last_group is set with it (gg == groups - 2).
        groups_m2 = Signal(32, reset_less=True)
        at_last_group, at_mb_end = Signal(), Signal()
        m.d.sync += [groups_m2.eq(self.groups - 2), at_mb_end.eq(mb_left == 0)]
        c = Signal(range(C + 1))
        kk = Signal(4)                  # plane being read
        top = Signal(4)                 # the plane each chunk of the group starts at: b (or 1)
        cbase = Signal(range(self.slot_lines))   # the chunk's plane 0 in the slot: c * (b + 1)
        addr = Signal(range(self.slot_lines))    # cbase + kk, kept as its own register
        ends_mb = Signal()              # this group ends its minibatch: update instead of write-back
        take = Signal()
        m.d.comb += [take.eq(~busy & self.residuals.valid & (gap == GROUP_GAP)),
                     self.residuals.ready.eq(take)]
        last_plane = kk == 0
        last_chunk = c == chunks_m1
        # L2 with least squares: each updated row goes through the per-weight multipliers twice
        # (q, then the L2 term), 4 cycles a chunk, so a minibatch's last group waits ``pad`` cycles
        # after each chunk when its (b + 1) planes are fewer (b < 3). Nothing else waits.
        two_pass = Signal(reset_less=True)
        pad = Signal(2, reset_less=True)
        idle = Signal(2)
        if self.with_l2:
            m.d.sync += [two_pass.eq(~self.nonlinear & (self.l2 != 0)),
                         pad.eq(Mux(two_pass & (self.bits < 3), 3 - self.bits, 0))]
        elif P > 2:  # a quarter chunk a cycle: chunks of a minibatch's last group end >= 4 cycles apart
            m.d.sync += pad.eq(Mux(self.bits < P - 1, P - 1 - self.bits, 0))
        priming = Signal()                            # the group is a priming pass (no rows)
        prime_pad = Signal(2, reset_less=True)        # its two planes a chunk, kept 4 apart with L2
        if self.with_l2:
            m.d.sync += prime_pad.eq(Mux(two_pass, 2, 0))
        elif P > 2:
            m.d.sync += prime_pad.eq(P - 2)
        # Pipelined SGD's locks on a chunk's first plane (see the class docstring); constant 1
        # in builds without it. war_need / q_need: dot_passed / q_written needed for this chunk
        # (+ 1 kept beside each, so that the decision for the next chunk is a compare of registers).
        lock_ok = Signal()
        chunk_start = kk == top
        if self.delayed:
            dly = Signal(reset_less=True)
            m.d.sync += dly.eq(self.model_delay)
            war_on, q_on = Signal(), Signal()       # set at a take, for the group
            war_need, war_need1 = Signal(32), Signal(32)
            q_need, q_need1 = Signal(32), Signal(32)
            q_written = Signal(32)                  # chunks whose q (and L2 term) rows the updates wrote
            q_wrote = Signal()                      # driven below, by the update's last row write
            war_ok, q_ok = Signal(), Signal()
            adv = Signal()                          # a chunk's last plane is issued: the needs advance
            m.d.sync += [war_ok.eq(self.dot_passed >= Mux(adv, war_need1, war_need)),
                         q_ok.eq(q_written >= Mux(adv & q_on, q_need1, q_need))]
            m.d.comb += lock_ok.eq((~war_on | war_ok) & (~q_on | q_ok))
        else:
            m.d.comb += lock_ok.eq(1)
        held_now = busy & (idle == 0) & chunk_start & ~lock_ok
        issue = busy & (idle == 0) & (~chunk_start | lock_ok)
        # GROUP_GAP counts from the take, and from the last cycle a chunk was held
        m.d.sync += gap.eq(Mux(held_now, 0, Mux(gap == GROUP_GAP, gap, gap + 1)))
        with m.If(self.start):
            m.d.sync += [gg.eq(0), mb_left.eq(bg_m1), busy.eq(0), self.groups_read.eq(0), gap.eq(GROUP_GAP), idle.eq(0),
                         at_last_group.eq(groups_m1 == 0)]
        with m.Elif(take):
            last_of_mb = at_mb_end | at_last_group
            d_in = self.residuals.payload.d
            for i in range(2):
                with m.If(gg[0] == i):
                    m.d.sync += recs[i].eq(self.residuals.payload)
                    m.d.sync += [pairs[i][p].eq(d_in[2 * p] + d_in[2 * p + 1]) for p in range(S // 2)]
            # A record of no rows (count 0: a warm start's priming pass) adds nothing to G at any
            # plane, so it reads only planes 1 and 0 of each chunk (two, as the update's half
            # chunks need; with L2's two passes, 2 idle cycles keep chunks 4 apart): its update
            # comes (b - 1) * chunks cycles sooner.
            none = self.residuals.payload.count == 0
            top_new = Mux(none, 1, self.bits)
            m.d.sync += [busy.eq(1), c.eq(0), kk.eq(top_new), top.eq(top_new), cbase.eq(0), addr.eq(top_new),
                         ends_mb.eq(last_of_mb), gap.eq(0), idle.eq(0), priming.eq(none),
                         mb_left.eq(Mux(last_of_mb, bg_m1, mb_left - 1))]
        with m.Elif(issue):
            m.d.sync += [kk.eq(kk - 1), addr.eq(addr - 1)]
            with m.If(last_plane):
                m.d.sync += [kk.eq(top), c.eq(c + 1), cbase.eq(cbase + self.bits + 1),
                             addr.eq(cbase + self.bits + 1 + top),
                             idle.eq(Mux(ends_mb, Mux(priming, prime_pad, pad), 0))]
                with m.If(last_chunk):
                    m.d.sync += [busy.eq(0), gg.eq(gg + 1), self.groups_read.eq(self.groups_read + 1),
                                 at_last_group.eq(gg == groups_m2)]
        with m.Elif(busy & (idle != 0)):
            m.d.sync += idle.eq(idle - 1)
        m.d.comb += self.buf_addr.eq(Cat(addr, gg[:self.slots.bit_length() - 1]))
        if self.delayed:
            m.d.comb += adv.eq(issue & last_plane)
            with m.If(self.start):
                m.d.sync += [war_on.eq(0), q_on.eq(0), war_need.eq(chunks_m1 + 2), war_need1.eq(chunks_m1 + 3),
                             q_need.eq(1), q_need1.eq(2), q_written.eq(0)]
            with m.Else():
                with m.If(take):
                    # (a record of no rows is a warm start's priming pass: no next group to wait for)
                    m.d.sync += [war_on.eq(dly & ~at_last_group & (self.residuals.payload.count != 0)),
                                 q_on.eq(dly & (gg != 0))]
                with m.If(adv):
                    m.d.sync += [war_need.eq(war_need1), war_need1.eq(war_need1 + 1)]
                    with m.If(q_on):
                        m.d.sync += [q_need.eq(q_need1), q_need1.eq(q_need1 + 1)]
                m.d.sync += q_written.eq(q_written + q_wrote)

        def stage(prev, name):
            nxt = {n: Signal.like(v, name=f"{name}_{n}") for n, v in prev.items()}
            m.d.sync += [nxt[n].eq(v) for n, v in prev.items()]
            return nxt

        # ---- u+1: the line out of the buffer; u+2: registered
        u1 = dict(valid=Signal(), c=Signal(range(C + 1)), first=Signal(), last=Signal(),
                  end=Signal(), group_last=Signal(), count=Signal(range(S + 1)), parity=Signal())
        cur = Signal(residual_layout(S))
        m.d.comb += cur.eq(Mux(gg[0], recs[1], recs[0]))
        m.d.sync += [u1["valid"].eq(issue), u1["parity"].eq(gg[0]), u1["c"].eq(c),
                     u1["first"].eq(kk == top), u1["last"].eq(last_plane), u1["end"].eq(ends_mb),
                     u1["group_last"].eq(last_plane & last_chunk), u1["count"].eq(cur.count)]
        u2 = stage(u1, "u2")
        line2 = Signal(W, reset_less=True)   # (data: read where u2's valid says)
        m.d.sync += line2.eq(self.buf_data)

        # ---- u+3: partial sums over row pairs (two adder levels), odd-code counts (used at plane 0).
        # q and G are read for every plane (only the last one's are used), q in cycle u+2 and G in
        # u+3 (from block RAM a cycle earlier, through its output register), so they arrive when
        # the chunk's last plane needs them instead of riding the pipeline from its first plane.
        u3 = stage(u2, "u3")
        nodd_w = (S + 1).bit_length()
        nodd = [Signal(nodd_w, name=f"nodd_{f}", reset_less=True) for f in range(CHUNK)]
        # The group's operands, selected by its parity a cycle early (at u+1) into OPERAND_COPIES
        # registers, each serving CHUNK / OPERAND_COPIES features: selected at u+2 and broadcast
        # to every feature's tree, they were the board's critical path (u2's parity through the
        # select, then 14 ns of routing; with the copies 54.5 -> 62.2 MHz: docs/board.md, twelfth pass).
        # The slot cannot change between u+1 and u+2: it is written only when the group two later is taken.
        per = CHUNK // OPERAND_COPIES
        op_layout = data.StructLayout({"d": data.ArrayLayout(signed(50), S), "valid": S,
                                       "pair": data.ArrayLayout(signed(51), S // 2)})
        ops = register_copies_of(
            m, platform, Cat(Mux(u1["parity"], Cat(recs[1].d, recs[1].valid, *pairs[1]),
                                 Cat(recs[0].d, recs[0].valid, *pairs[0]))), OPERAND_COPIES, "op2", op_layout)
        parts = []
        for f in range(CHUNK):
            rec2 = ops[f // per]
            pair2 = rec2.pair
            # (padding rows have d = 0, so their bits need no mask here; they do for n_odd)
            hit = [line2[CHUNK * s + f] for s in range(S)]
            terms = [Mux(hit[2 * p + 1], Mux(hit[2 * p], pair2[p], rec2.d[2 * p + 1]),
                         Mux(hit[2 * p], rec2.d[2 * p], 0)) for p in range(S // 2)]
            parts.append(register_all(m, add_levels(terms, 2), f"gpart_{f}"))
            m.d.sync += nodd[f].eq(sum(hit[s] & rec2.valid[s] for s in range(S)))
        # (through an output register, each read is issued a cycle earlier: the data is due at the same cycle)
        q_at, g_at = (u1, u2) if out_reg else (u2, u3)
        m.d.comb += q_mem.r_addr.eq(q_at["c"])
        if not half:
            m.d.comb += g_mem.r_addr.eq(g_at["c"])
        if self.with_l2:
            m.d.comb += d_mem.r_addr.eq(q_at["c"])

        # ---- u+4: per-feature sums t; n_odd * q as shifted copies of q (no multiplier); G + m0 * sum r
        u4 = stage(u3, "u4")
        t = [register_all(m, add_levels(parts[f], 2), f"t4_{f}") for f in range(CHUNK)]
        assert all(len(v) == 1 for v in t), "S <= 16: two levels of rows, two of partial sums"
        # (with L2: plus count * nd_j, the group's real rows times -rnd(L2 * w0_j, 17); over the
        # minibatch's groups that is golden's n_b * rnd(L2 * w0_j, 17), added to G in another order,
        # which modulo 2^64 is the same sum)
        l2_terms = ([[Mux(u3["count"][i], d_mem.r_data[f] << i, 0) for i in range(len(u3["count"]))]
                     for f in range(CHUNK)] if self.with_l2 else [[] for _ in range(CHUNK)])
        cterms = [register_all(m, add_levels([Mux(nodd[f][i], q_mem.r_data[f] << i, 0) for i in range(nodd_w)]
                                             + l2_terms[f], 2), f"corr4_{f}") for f in range(CHUNK)]
        if not half:
            # (m0 r selected a cycle early too, into copies: the slot cannot change between u+3 and u+4)
            m0r4 = register_copies_of(m, platform, Mux(u3["parity"], recs[1].m0r, recs[0].m0r), OPERAND_COPIES,
                                      "m0r4", signed(56))
            gm = [Signal(signed(64), name=f"gm5_{f}", reset_less=True) for f in range(CHUNK)]
            m.d.sync += [gm[f].eq(g_mem.r_data[f] + m0r4[f // per]) for f in range(CHUNK)]

        # ---- u+5: h = 2h + t (0 before the chunk's first plane): after plane 0, h = sum_k 2^k t_k
        # exactly (|t| < 2^(w_t - 1), at most MAX_BITS + 1 planes); n_odd * q summed
        u5 = stage(u4, "u5")
        h_width = min(len(t[0][0]) + MAX_BITS + 1, 64)
        h = [Signal(signed(h_width), name=f"h_{f}", reset_less=True) for f in range(CHUNK)]
        corr = [register_all(m, add_levels(cterms[f], 2), f"corr5_{f}")[0] for f in range(CHUNK)]
        # u4's first and valid bits in 8 copies, 4 features each: as single registers they reached
        # ~1.9k LUT and enable inputs and were among the board router's most congested nets. The
        # copies are not reset (register_copies); h is data, reloaded at every chunk's first plane
        # before a last plane uses it, so a stray update in the cycle after a reset is overwritten.
        first4 = register_copies(m, platform, u3["first"], CHUNK // 4, "u4_first")
        valid4 = register_copies(m, platform, u3["valid"], CHUNK // 4, "u4_valid")
        for f in range(CHUNK):
            with m.If(valid4[f // 4]):
                m.d.sync += h[f].eq(Mux(first4[f // 4], 0, h[f] << 1) + t[f][0])

        u6 = stage(u5, "u6")
        if not half:
            # ---- u+6, u+7: G' = (h + G + m0 * sum r) - n_odd * q, one carry chain per stage (the
            # sums are taken at every plane; the last plane's go on). G is 64-bit in the golden model
            # and these are sums: modulo 2^64 they are exact in any order, so nothing is wider.
            hb = [Signal(signed(64), name=f"hb6_{f}", reset_less=True) for f in range(CHUNK)]
            corr6 = [delay(m, corr[f], 1, f"corr6_{f}") for f in range(CHUNK)]
            m.d.sync += [hb[f].eq(h[f] + gm[f]) for f in range(CHUNK)]
            new_g = Cat((hb[f] - corr6[f])[:64] for f in range(CHUNK))
            fin = Signal(g_row, reset_less=True)
            m.d.sync += fin.eq(new_g)
            # What G's RAM is written with: fin, or 0 while clearing and at the end of a minibatch.
            # Zeroed as a synchronous reset of its own register (free in an ECP5 flip-flop) rather
            # than by a 2048-bit mux on the write data.
            # clear_now zeroes ~2.3k flip-flops (G's, q's and the model's write words), g_zero G's
            # 2048 and go enables ~2.6k (g_rnd and w0's hold): each on a global network (a DCCA on
            # ECP5, an alias elsewhere), where general routing took 15-22 ns at the board's placement
            # (docs/board.md, eighth to tenth passes). No flip-flop is added.
            clear_now = global_buffer(m, platform, self.clear | clearing, "clear_now")
            g_zero = global_buffer(m, platform, clear_now | u6["end"], "g_zero")
            g_back = Signal(g_row, reset_less=True)
            with m.If(g_zero):
                m.d.sync += g_back.eq(0)
            with m.Else():
                m.d.sync += g_back.eq(new_g)
            u7 = dict(valid=Signal(), c=Signal(range(C + 1)), end=Signal(), group_last=Signal(),
                      count=Signal(range(S + 1)))
            m.d.sync += [u7["valid"].eq(u6["valid"] & u6["last"])]
            m.d.sync += [u7[n].eq(u6[n]) for n in ("c", "end", "group_last", "count")]

            # ---- u+7: G back (0 at the end of a minibatch); the model row for the update is read
            # from stage 6's chunk (the same one), so w0 arrives with fin.
            m.d.comb += [g_mem.w_en.eq(clearing | u7["valid"]), g_mem.w_addr.eq(Mux(clearing, clr_addr, u7["c"]))]
            m.d.comb += g_mem.w_data.eq(g_back)
        else:
            # ---- u+6, u+7 (tail_lanes = 16): the chunk's tail at half a chunk a cycle. h and corr are
            # the chunk's in the cycle after its last plane's u+5 (T = u+5 of that line) only: features
            # 0-15 enter the tail then, 16-31 a cycle later from hold registers (the next chunk's last
            # plane is >= 2 cycles away, b >= 1). In T: h - corr, and G + m0 * sum r (G of the half from
            # its own RAM, read a cycle apart); in T + 1 their sum: G' = (G + m0 r) + (h - corr), the
            # same sum modulo 2^64 as the whole-chunk tail's; written at u+7 (0-15) and u+8 (16-31).
            hold_h = [delay(m, h[TL + i], 1, f"h_hold_{i}") for i in range(TL)]
            hold_c = [delay(m, corr[TL + i], 1, f"corr_hold_{i}") for i in range(TL)]
            # (second_half: the line in u+6 was a last plane, so this cycle is its second half; in the
            # cycle before, u+5 holds it. The selects in copies, each serving a quarter of the lanes.)
            tper = TL // OPERAND_COPIES
            second = register_copies(m, platform, u5["valid"] & u5["last"], OPERAND_COPIES, "tail_second")
            # (G's halves: the first read a cycle before its T, from u+4's chunk, the second from u+5's;
            # through a block RAM's output register each a cycle earlier)
            g0_at, g1_at = (u3, u4) if out_reg else (u4, u5)
            m.d.comb += [g_mems[0].r_addr.eq(g0_at["c"]), g_mems[1].r_addr.eq(g1_at["c"])]
            # m0 r of the line in the tail, selected a cycle early: u+4's line, or u+5's on its second half
            m0r_t = register_copies_of(m, platform, Mux(Mux(u5["valid"] & u5["last"], u5["parity"], u4["parity"]),
                                                        recs[1].m0r, recs[0].m0r), OPERAND_COPIES, "m0r_t", signed(56))
            hc = [Signal(signed(h_width + 1), name=f"hc_{i}", reset_less=True) for i in range(TL)]
            gm = [Signal(signed(64), name=f"gm_t_{i}", reset_less=True) for i in range(TL)]
            for i in range(TL):
                sel = second[i // tper]
                m.d.sync += [hc[i].eq(Mux(sel, hold_h[i], h[i]) - Mux(sel, hold_c[i], corr[i])),
                             gm[i].eq(Mux(sel, g_mems[1].r_data[i], g_mems[0].r_data[i]) + m0r_t[i // tper])]
            new_g = Cat((gm[i] + hc[i])[:64] for i in range(TL))
            fin = Signal(data.ArrayLayout(signed(64), TL), reset_less=True)
            m.d.sync += fin.eq(new_g)
            clear_now = global_buffer(m, platform, self.clear | clearing, "clear_now")
            u7 = dict(valid=Signal(), c=Signal(range(C + 1)), end=Signal(), group_last=Signal(),
                      count=Signal(range(S + 1)))
            m.d.sync += [u7["valid"].eq(u6["valid"] & u6["last"])]
            m.d.sync += [u7[n].eq(u6[n]) for n in ("c", "end", "group_last", "count")]
            # g_back is loaded in T + 1: with the first half when u+6 holds the line, the second when u+7 does
            g_zero = global_buffer(m, platform, clear_now | Mux(u7["valid"], u7["end"], u6["end"]), "g_zero")
            g_back = Signal(data.ArrayLayout(signed(64), TL), reset_less=True)
            with m.If(g_zero):
                m.d.sync += g_back.eq(0)
            with m.Else():
                m.d.sync += g_back.eq(new_g)
            u8_valid, u8_c = delay(m, u7["valid"], 1, "u8_valid", reset_less=False), delay(m, u7["c"], 1, "u8_c")
            for ram, valid, c_w in ((g_mems[0], u7["valid"], u7["c"]), (g_mems[1], u8_valid, u8_c)):
                m.d.comb += [ram.w_en.eq(clearing | valid), ram.w_addr.eq(Mux(clearing, clr_addr, c_w)),
                             ram.w_data.eq(g_back)]
        m.d.comb += self.model_r_addr.eq(u6["c"])
        wb_rows = Mux(u7["valid"] & ~u7["end"] & u7["group_last"], u7["count"], 0)

        # ---- update (end of a minibatch), half a chunk per cycle through shared multipliers:
        # chunks end >= 2 cycles apart (b >= 1), so 16 multipliers of each kind keep up, and the
        # whole core fits the 85F's 156 MULT18X18D. u+8: rnd(G, 15); u+9: gs = sat32(.) and w0 held;
        # u+9 / u+10: features 0-15 / 16-31 enter gs * step (+ 2^31: rnd(., 32) = p >> 32).
        # (Built with update_lanes = 8, a quarter chunk a cycle, P = 4 phases, without L2: the
        # board's, half the multipliers; ``pad`` then keeps a minibatch's last chunks 4 apart.)
        H = U
        gs = Signal(data.ArrayLayout(signed(32), CHUNK), reset_less=True)
        w0 = Signal(data.ArrayLayout(signed(32), CHUNK), reset_less=True)
        upd_c = Signal(range(C + 1), reset_less=True)
        upd_last = Signal(reset_less=True)
        upd_count = Signal(range(S + 1), reset_less=True)
        go = global_buffer(m, platform, u7["valid"] & u7["end"], "go")
        # rnd(G, 15) and its sat32 in two stages (a 64-bit carry chain, then the range test)
        g_rnd = [Signal(signed(64 - CODE_FRAC + 1), name=f"g_rnd_{f}", reset_less=True) for f in range(CHUNK)]
        go2 = Signal()
        held = [Signal.like(v, name=f"{n}_a") for n, v in (("w0", w0), ("upd_c", upd_c), ("upd_last", upd_last),
                                                             ("upd_count", upd_count))]
        with m.If(go):
            m.d.sync += [g_rnd[f].eq(rshift_round(fin[f], CODE_FRAC)) for f in range(self.tail_lanes)]
            m.d.sync += [a.eq(v) for a, v in zip(held, (self.model_r_data, u7["c"], u7["group_last"], u7["count"]))]
        if half:  # the second half's G a cycle after the first's (copies: 800 enables; the globals are taken)
            go_b = register_copies(m, platform, u7["valid"] & u7["end"], OPERAND_COPIES, "go_second")
            for i in range(TL):
                with m.If(go_b[i // tper]):
                    m.d.sync += g_rnd[TL + i].eq(rshift_round(fin[i], CODE_FRAC))
        m.d.sync += go2.eq(go)
        # gs, w0 and the chunk's tags copy what go held every cycle, with no enable: chunks end >= 2
        # cycles apart (b >= 1), so what go held stays until the end of the cycle after go2, and
        # the copies are read in the two cycles after go2 (pa, pb): at t + 2 and t + 3 for a go at
        # t, the copies made at the ends of t + 1 and t + 2 are both this chunk's. (As an enable, go2
        # fanned out to ~2k flip-flops: the most congested net of the board build, docs/board.md.)
        m.d.sync += [gs[f].eq(sat32(g_rnd[f])) for f in range(CHUNK)]
        m.d.sync += [v.eq(a) for v, a in zip((w0, upd_c, upd_last, upd_count), held)]
        # phase j (the cycle j + 1 after go2): features j*U .. j*U + U - 1 enter the multipliers
        phase = [Signal(name=f"phase{j}") for j in range(P)]
        m.d.sync += [phase[0].eq(go2)] + [phase[j].eq(phase[j - 1]) for j in range(1, P)]
        pa, pb = phase[0], phase[P - 1]     # the first phase and the last
        # The operand selects, a copy of phases 1.. for each multiplier lane: one phase register
        # selected ~1k operand bits, the most congested nets of the board build after the reset.
        # Not reset (register_copies): a select is stray for one cycle after a reset, when no
        # update is under way (wr, from the phase registers themselves, writes nothing then).
        lane_phase = [[None] + [register_copies(m, platform, phase[j - 1], 1, f"phase{j}_lane{i}")[0]
                                for j in range(1, P)] for i in range(U)]

        def by_phase(values, i):
            out = values[i]
            for j in range(1, P):
                out = Mux(lane_phase[i][j], values[j * U + i], out)
            return out

        step_s = Cat(self.step, Const(0, 1)).as_signed()
        prods, w0s, reals = [], [], []
        lat_step = None
        for i in range(H):
            unit = m.submodules[f"mul_step_{i}"] = PipelinedMul(32, 33, 1 << (STEP_FRAC - 1))
            m.d.comb += [unit.a.eq(by_phase(gs, i)), unit.b.eq(step_s)]
            lat_step = unit.latency
            prods.append(unit.p)
            w0s.append(delay(m, by_phase(w0, i), unit.latency, f"w0_{i}"))
            offset = 0
            for j in range(1, P):
                offset = Mux(lane_phase[i][j], j * U, offset)
            real = (upd_c * CHUNK + i + offset) < self.features
            reals.append(delay(m, real, unit.latency, f"real_{i}"))

        # ---- w = sat32(w0 - rnd(gs * step, 32)), features >= F stay 0; half a chunk per cycle
        w_h = [Signal(signed(32), name=f"w_{i}", reset_less=True) for i in range(H)]
        w_lo = [Signal(signed(32), name=f"w_lo_{i}", reset_less=True) for i in range(H)]
        # the earlier phases' words, oldest first (P = 2: w_lo alone), shifted along as w_h is
        w_parts = [[Signal(signed(32), name=f"w_p{j}_{i}", reset_less=True) for i in range(H)]
                   for j in range(P - 2)] + [w_lo]
        # (w_h, w_lo and q_h, q_lo are 0 while clearing: the RAMs are cleared through them)
        with m.If(clear_now):
            m.d.sync += [v.eq(0) for v in (*w_h, *(v for part in w_parts for v in part))]
        with m.Else():
            m.d.sync += [w_h[i].eq(Mux(reals[i], sat32(w0s[i] - (prods[i] >> STEP_FRAC)), 0)) for i in range(H)]
            m.d.sync += [w_parts[-1][i].eq(w_h[i]) for i in range(H)]
            m.d.sync += [w_parts[j][i].eq(w_parts[j + 1][i]) for j in range(P - 2) for i in range(H)]
        wr = delay(m, pb, lat_step + 1, "model_wr", reset_less=False)   # w_h holds the last phase's words
        wr_c = delay(m, upd_c, lat_step + 1, "model_wr_c")
        wr_last = delay(m, upd_last, lat_step + 1, "model_wr_last")
        wr_count = delay(m, upd_count, lat_step + 1, "model_wr_count")
        m.d.comb += [self.model_w_en.eq(clearing | wr), self.model_w_addr.eq(Mux(clearing, clr_addr, wr_c))]
        m.d.comb += self.model_w_data.eq(Cat(*(v for part in w_parts for v in part), *w_h))
        up_rows = Mux(wr & wr_last, wr_count, 0)
        with m.If(self.start):
            m.d.sync += [self.upd_written.eq(0), self.rows_done.eq(0)]
        with m.Else():
            m.d.sync += [self.upd_written.eq(self.upd_written + wr),
                         self.rows_done.eq(self.rows_done + wb_rows + up_rows)]

        # ---- q = rnd(e_odd * w, 8) for the next minibatch, through 16 more multipliers
        if not self.with_l2:
            e_s = Cat(self.e_odd, Const(0, 1)).as_signed()
            q_h = [Signal(signed(48), name=f"q_{i}", reset_less=True) for i in range(H)]
            lat_q = None
            q_lo = [Signal(signed(48), name=f"q_lo_{i}", reset_less=True) for i in range(H)]
            q_parts = [[Signal(signed(48), name=f"q_p{j}_{i}", reset_less=True) for i in range(H)]
                       for j in range(P - 2)] + [q_lo]
            for i in range(H):
                unit = m.submodules[f"mul_e_{i}"] = PipelinedMul(CORR_BITS + 1, 32, 1 << (CORR_SHIFT - 1))
                m.d.comb += [unit.a.eq(e_s), unit.b.eq(w_h[i])]
                with m.If(clear_now):
                    m.d.sync += [q_h[i].eq(0)] + [part[i].eq(0) for part in q_parts]
                with m.Else():
                    m.d.sync += [q_h[i].eq(unit.p >> CORR_SHIFT), q_parts[-1][i].eq(q_h[i])]
                    m.d.sync += [q_parts[j][i].eq(q_parts[j + 1][i]) for j in range(P - 2)]
                lat_q = unit.latency
            qw = delay(m, wr, lat_q + 1, "q_wr", reset_less=False)
            qw_c = delay(m, wr_c, lat_q + 1, "q_wr_c")
            m.d.comb += [q_mem.w_en.eq(clearing | qw), q_mem.w_addr.eq(Mux(clearing, clr_addr, qw_c))]
            m.d.comb += q_mem.w_data.eq(Cat(*(v for part in q_parts for v in part), *q_h))
            if self.delayed:
                m.d.comb += q_wrote.eq(qw)
            return m

        # ---- with L2: the same 16 multipliers, one operand wider (33 x 32 bits is still 2 x 2
        # MULT18X18D, as 25 x 32 was), give q = rnd(e_odd * w, 8) and nd = -rnd(L2 * w, 17):
        #   least squares, L2 = 0:  pass A (e_odd) -> q RAM              (as without L2)
        #   other losses:           pass A (-L2)   -> d RAM              (e_odd is 0 there: q stays 0)
        #   least squares, L2 != 0: pass A (e_odd) -> q RAM, then pass B (-L2) -> d RAM, the row's
        #                           two halves again 2 cycles later (``pad`` keeps chunks 4 apart)
        # -rnd(x, 17) = floor((-x + 2^16 - 1) / 2^17): the negation rides in the operand (-L2 fits
        # 33 bits) and the rounding constant is added after the product, by mode.
        nl = Signal(reset_less=True)
        m.d.sync += nl.eq(self.nonlinear)
        e_s = Cat(self.e_odd, Const(0, 9)).as_signed()          # 33 bits, >= 0
        nl2_s = Signal(signed(33), reset_less=True)
        m.d.sync += nl2_s.eq(-Cat(self.l2, Const(0, 1)).as_signed())
        pre = delay(m, pb, lat_step, "x_pre", reset_less=False)     # pass A's first half (w_h: 0-15)
        pass_b = Signal()                                             # pass B: both halves from w_b
        b1 = delay(m, wr, 1, "x_b1", reset_less=False)
        b2 = delay(m, b1, 1, "x_b2", reset_less=False)
        m.d.comb += pass_b.eq(two_pass & (b1 | b2))
        use_l2 = pass_b | (nl & (pre | wr))
        x_h = [Signal(signed(48), name=f"x_{i}", reset_less=True) for i in range(H)]
        x_lo = [Signal(signed(48), name=f"x_lo_{i}", reset_less=True) for i in range(H)]
        lat_x = None
        for i in range(H):
            unit = m.submodules[f"mul_x_{i}"] = PipelinedMul(33, 32)
            w_b = delay(m, w_lo[i], 1, f"w_b_{i}")   # the row's halves again, 0-15 then 16-31
            m.d.comb += [unit.a.eq(Mux(use_l2, nl2_s, e_s)), unit.b.eq(Mux(pass_b, w_b, w_h[i]))]
            lat_x = unit.latency
            l2_out = delay(m, use_l2, lat_x, f"x_l2_{i}")
            with m.If(clear_now):
                m.d.sync += [x_h[i].eq(0), x_lo[i].eq(0)]
            with m.Else():
                # one adder for either rounding constant, then the shift chosen
                rounded = unit.p + Mux(l2_out, (1 << (L2_SHIFT - 1)) - 1, 1 << (CORR_SHIFT - 1))
                m.d.sync += [x_h[i].eq(Mux(l2_out, rounded >> L2_SHIFT, rounded >> CORR_SHIFT)), x_lo[i].eq(x_h[i])]
        qw = delay(m, wr, lat_x + 1, "q_wr", reset_less=False)       # pass A's row complete
        qw_c = delay(m, wr_c, lat_x + 1, "q_wr_c")
        dw = delay(m, qw, 2, "d_wr", reset_less=False)              # pass B's
        dw_c = delay(m, qw_c, 2, "d_wr_c")
        m.d.comb += [q_mem.w_en.eq(clearing | (qw & ~nl)), q_mem.w_addr.eq(Mux(clearing, clr_addr, qw_c)),
                     q_mem.w_data.eq(Cat(*x_lo, *x_h)),
                     d_mem.w_en.eq(clearing | (qw & nl) | (dw & two_pass)),
                     d_mem.w_addr.eq(Mux(clearing, clr_addr, Mux(nl, qw_c, dw_c))),
                     d_mem.w_data.eq(Cat(*x_lo, *x_h))]
        if self.delayed:  # a chunk's rows are complete with the last of its one or two writes
            m.d.comb += q_wrote.eq(Mux(two_pass, dw, qw))
        return m
