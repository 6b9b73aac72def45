"""``WovenCore``: the bit-serial, sample-woven training core behind ``CoreSignature``."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.hdl import ResetInserter
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from lowbit.contract.format import ROW_ALIGN, SUPPORTED_LINE_BITS
from lowbit.contract.registers import MAX_DEGREE, REG, Built, ErrorCode, Estimator, Loss, State

from ..core.model_loader import model_loader
from ..core.params import check_max_features
from ..core.sequencer import Sequencer
from ..ecp5 import simple_dual_port_ram
from ..interfaces import CoreSignature
from .copies import CopyInterleaver
from .dot import WovenDotUnit
from .gradient import WovenGradientUnit, check_tail_lanes, check_update_lanes
from .table_scan import AffineTableScan

__all__ = ["WovenCore"]

MAX_PLANES = 9


class WovenCore(wiring.Component):
    """ZipML SGD on the woven layout, bit-exact with ``lowbit.contract.golden.run``: least squares,
    logistic and hinge loss with the naive or the Chebyshev estimator (``margin.RowNonlinearity``;
    ``copies.CopyInterleaver`` reads each group from the estimator's ``d + 1`` copies), L2 (the
    gradient unit), warm-started and bounded runs (``RunSchedule``, ``model_loader``): ``built``.

    Each line is one bit plane of 32 features of ``S = W/32`` rows, so the core takes one line per
    cycle whatever ``b`` is, and an epoch costs ``(b + 1)`` cycles per 32-feature chunk of each
    group of ``S`` rows: its time is proportional to the bits it streams. See
    docs/architecture.md ("The woven core")::

        data_lines -> WovenDotUnit --(residuals)--> WovenGradientUnit -> model update
                        |   ^  \\-> group buffer (4 slots) --^      |
        label_lines ----/   \\---- model RAMs (port A)  <-----------/ (port B, write)
        table writes -> AffineTableScan (m0, delta, e_odd; refuses other tables)

    Limits of this core (checked at START, after the common checks): the code table must be
    affine (uniform levels: ``ErrorCode.BAD_TABLE`` otherwise) and ``BATCH`` a multiple of ``S``
    or ``>= ROWS`` (``ErrorCode.BATCH_NOT_WOVEN``).

    Parameters
    ----------
    line_bits : int
        64, 128, 256 or 512: ``S = line_bits / 32`` rows per line.
    max_features : int
        Multiple of 32 (model, G and the group buffer are sized by it).
    l2 : bool
        Build the L2 datapath (default): the L2 term's RAM (32 x 48 bits a model row, 43 DP16KD
        at 32 features a row) and wider per-weight multipliers (no more MULT18X18D).
        ``l2=False`` leaves it out, and ``built`` then lacks ``Built.L2`` (runs with L2 != 0
        are refused with NOT_BUILT).
    chebyshev : bool
        Build the Chebyshev estimator (default): the copy interleaver and the rows' Horner steps.
        ``chebyshev=False`` leaves the interleaver out (the sequencer's data commands go straight
        to the shell) and holds the Horner controls at 0 (one factor, no polynomial), so synthesis
        drops that logic, and ``built`` lacks ``Built.CHEBYSHEV`` (such runs are
        refused with NOT_BUILT). The ECP5 board leaves it out (docs/board.md, fifth pass).
    delayed : bool
        Build pipelined SGD (default; MODEL_DELAY, docs/architecture.md): 4 group slots instead
        of 2 and the gradient unit's two locks. ``False``: BUILT lacks ``Built.DELAYED``.
    update_lanes : int
        Features the minibatch update takes a cycle: 16 (half a chunk; default) or, built without
        L2, 8 (a quarter chunk: half the update's 128 MULT18X18D and its datapath; a minibatch's
        last group then waits ``3 - b`` cycles after each chunk when b < 3). The board's choice.
    block_ram : bool
        On ECP5, G, q, L2's term and the model in DP16KD (default) or, ``False``, in LUT RAM (they
        are ``max_features / 32`` rows deep); the same behaviour either way (docs/board.md).
    gq_block_ram : bool or None
        G, q and L2's term alone in DP16KD (True) or in LUT RAM (False); None (default): as
        ``block_ram``. Either way they are read through an output register (the DP16KD's own).
        The board keeps them in LUT RAM: with G and q in block RAM it did not route (docs/board.md,
        fourteenth pass).
    tail_lanes : int
        Features the gradient unit's chunk tail (G's new value, its write-back) takes a cycle: 32
        (default, the board's as measured) or 16 (half a chunk: a chunk's last planes are >= 2
        cycles apart, so the rate is the same; 3.7k flip-flops fewer on the board, but it did not
        route there on 2 seeds: docs/board.md, fifteenth pass).
    """

    #: The optional datapaths this core has (its BUILT register; the sequencer refuses the rest):
    #: LOSS logistic and hinge, the Chebyshev estimator, L2 (unless built with ``l2=False``: the
    #: instance's ``built`` says), warm start and bounded runs: all of them.
    built = Built.NONLINEAR | Built.L2 | Built.CHEBYSHEV | Built.RESUME | Built.DELAYED

    def __init__(self, *, line_bits: int = 512, max_features: int = 8192, l2: bool = True,
                 chebyshev: bool = True, delayed: bool = True, update_lanes: int = 16, block_ram: bool = True,
                 gq_block_ram: bool | None = None, tail_lanes: int = 32):
        try:
            if line_bits not in SUPPORTED_LINE_BITS:
                raise ValueError(f"line_bits must be one of {SUPPORTED_LINE_BITS}, got {line_bits!r}")
            check_max_features(max_features)
            if not isinstance(l2, bool):
                raise ValueError(f"l2 must be True or False, got {l2!r}")
            if not isinstance(chebyshev, bool):
                raise ValueError(f"chebyshev must be True or False, got {chebyshev!r}")
            if not isinstance(delayed, bool):
                raise ValueError(f"delayed must be True or False, got {delayed!r}")
            if not isinstance(block_ram, bool):
                raise ValueError(f"block_ram must be True or False, got {block_ram!r}")
            if gq_block_ram is not None and not isinstance(gq_block_ram, bool):
                raise ValueError(f"gq_block_ram must be True, False or None, got {gq_block_ram!r}")
            check_update_lanes(update_lanes, l2=l2)
            check_tail_lanes(tail_lanes)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.l2, self.chebyshev, self.delayed, self.update_lanes = l2, chebyshev, delayed, update_lanes
        self.block_ram = block_ram
        self.gq_block_ram = block_ram if gq_block_ram is None else gq_block_ram
        self.tail_lanes = tail_lanes
        self.built = type(self).built
        if not l2:
            self.built &= ~Built.L2
        if not chebyshev:
            self.built &= ~Built.CHEBYSHEV
        if not delayed:
            self.built &= ~Built.DELAYED
        self.line_bits, self.max_features = line_bits, max_features
        self.lanes = ROW_ALIGN  # features per line; reported as CAPS.LANES
        self.samples = line_bits // ROW_ALIGN
        self.max_chunks = max_features // ROW_ALIGN
        self.slot_lines = 1 << (MAX_PLANES * self.max_chunks - 1).bit_length()
        super().__init__(CoreSignature(line_bits))

    def dot_unit(self) -> WovenDotUnit:
        """This core's dot unit, as :meth:`elaborate` builds it (also timed alone: ``board.ooc``)."""
        return WovenDotUnit(line_bits=self.line_bits, max_chunks=self.max_chunks, slot_lines=self.slot_lines,
                            chebyshev=self.chebyshev, delayed=self.delayed)

    def gradient_unit(self) -> WovenGradientUnit:
        """This core's gradient unit, as :meth:`elaborate` builds it (also timed alone: ``board.ooc``)."""
        return WovenGradientUnit(line_bits=self.line_bits, max_chunks=self.max_chunks, slot_lines=self.slot_lines,
                                 l2=self.l2, delayed=self.delayed, update_lanes=self.update_lanes,
                                 block_ram=self.block_ram, gq_block_ram=self.gq_block_ram, tail_lanes=self.tail_lanes)

    def _model_memory(self, m, platform):
        """The model twice (ports A and B, written together: as ``ModelMemory``), in block RAM
        built into this module. Neither read port is transparent, and none needs to be: the dot
        unit's interlock and the sequencer's snapshot decide a read from registers at least a cycle
        after the write they wait for, and port B's reads matter only for an update, a minibatch
        after its chunk was last written. (In a module of their own, a module of wires and DP16KD
        only, yosys 0.70's ABC9 failed an assertion in the board build.)"""
        row = data.ArrayLayout(signed(32), ROW_ALIGN)
        a = simple_dual_port_ram(m, platform, shape=row, depth=self.max_chunks, name="model_a", block=self.block_ram)
        b = simple_dual_port_ram(m, platform, shape=row, depth=self.max_chunks, name="model_b", block=self.block_ram)
        ports = SimpleNamespace(w_en=Signal(name="model_w_en"), w_addr=Signal(range(self.max_chunks), name="model_w_addr"),
                                w_data=Signal(row, name="model_w_data"), a_addr=a.r_addr, a_data=a.r_data,
                                b_addr=b.r_addr, b_data=b.r_data)
        for ram in (a, b):
            m.d.comb += [ram.w_en.eq(ports.w_en), ram.w_addr.eq(ports.w_addr), ram.w_data.eq(ports.w_data)]
        return ports

    def elaborate(self, platform):
        m = Module()
        W, S, C = self.line_bits, self.samples, self.max_chunks
        m.submodules.seq = seq = Sequencer(line_bits=W, lanes=ROW_ALIGN, max_features=self.max_features,
                                           samples_per_line=S, built=self.built)
        m.submodules.scan = scan = AffineTableScan()
        model = self._model_memory(m, platform)
        dot, grad = self.dot_unit(), self.gradient_unit()
        m.submodules.buffer = buf = Memory(shape=W, depth=dot.slots * self.slot_lines, init=[])
        buf_w, buf_r = buf.write_port(), buf.read_port()
        for name, block in (("dot", dot), ("gradient", grad)):
            m.submodules[name] = ResetInserter(seq.dp_rst)(block)
        # (reset at a run's start; an abort lets it finish the command the shell is offered)
        copies = None
        if self.chebyshev:
            copies = m.submodules.copies = ResetInserter(seq.dp_rst & ~seq.drain)(CopyInterleaver())

        # ---- run control
        m.d.comb += [seq.cfg.eq(self.cfg), seq.start.eq(self.start), seq.reset.eq(self.reset),
                     self.status.eq(seq.status), seq.write_idle.eq(self.write_idle),
                     seq.read_idle.eq(self.read_idle), self.flush.eq(seq.flush)]
        # the data commands through the interleaver: per group, every factor's copy (Chebyshev)
        # the registers the interleaver and the Chebyshev rows read, sampled at START
        held = {name: Signal.like(self.cfg[name], name=f"held_{name}")
                for name in ("data_addr", "copies", *(f"poly_{j}" for j in range(MAX_DEGREE + 1)))}
        with m.If(self.start & (self.status.state != State.BUSY)):
            m.d.sync += [v.eq(self.cfg[name]) for name, v in held.items()]
        if copies is not None:
            wiring.connect(m, seq.data_cmd, copies.cmd_in)
            wiring.connect(m, wiring.flipped(self.data_cmd), copies.cmd_out)
            group_lines = Signal(32)  # chunks * (b + 1), a sum of shifted copies of chunks (b + 1 <= 9)
            bp1 = seq.bits + 1
            m.d.sync += group_lines.eq(sum(Mux(bp1[i], seq.row_beats << i, 0) for i in range(4)))
            m.d.comb += [copies.cmd_in_model.eq(seq.data_cmd_model), copies.group_lines.eq(group_lines),
                         copies.copy_lines.eq(seq.data_lines), copies.copies.eq(held["copies"]),
                         copies.data_addr.eq(held["data_addr"]), copies.drain.eq(seq.drain)]
        else:  # one copy a row: the sequencer's commands go straight to the shell
            wiring.connect(m, wiring.flipped(self.data_cmd), seq.data_cmd)
        wiring.connect(m, wiring.flipped(self.label_cmd), seq.label_cmd)
        wiring.connect(m, wiring.flipped(self.write), seq.write)
        wiring.connect(m, wiring.flipped(self.table), scan.table)

        # The table is scanned at every START (while the sequencer runs its common checks).
        log_s = S.bit_length() - 1
        # The run's group counts as registers (the run's configuration is held from START; the
        # datapath first uses them many cycles later, at the first epoch_start).
        groups, batch_groups = Signal(32), Signal(32)
        groups_now = (seq.seg_rows + S - 1) >> log_s  # the segment's (an epoch's unless RESUME)
        # The core's own checks are a register, computed from the scan's result and the held
        # configuration; the sequencer reads it a cycle after the scan ends (core_busy is held a
        # cycle longer), so the check is never a compare chained into the sequencer's own.
        scan_busy_d = Signal()
        core_error = Signal(8)
        m.d.sync += scan_busy_d.eq(scan.busy)
        m.d.comb += [scan.scan.eq(self.start & (self.status.state != State.BUSY)), scan.bits.eq(self.cfg.bits),
                     seq.core_busy.eq(scan.busy | scan_busy_d), seq.core_error.eq(core_error)]
        m.d.sync += [groups.eq(groups_now),
                     batch_groups.eq(Mux(seq.batch >= seq.rows, groups_now, seq.batch >> log_s))]
        # LOSS, L2 and ESTIMATOR, held from START like the rest (the datapath reads them many
        # cycles later, at the first epoch_start). A build without L2 never runs with L2 != 0
        # (the sequencer's NOT_BUILT).
        loss_kind, bad_loss, bad_estimator = Signal(2), Signal(), Signal()
        l2 = Signal(32)
        est = REG["ESTIMATOR"]
        kind, degree, range_shift = (self.cfg.estimator[est.field(n).lsb:est.field(n).lsb + est.field(n).width]
                                     for n in ("KIND", "DEGREE", "RANGE"))
        cheb, degree_h, range_h = Signal(), Signal(4), Signal(3)
        # MODEL_DELAY (pipelined SGD): one group a minibatch (BATCH = S, or >= ROWS: then one
        # minibatch an epoch, which MODEL_DELAY does not change) and one factor a row.
        model_delay, bad_delay, delay_on = Signal(), Signal(), Signal()
        if self.delayed:
            with m.If(self.start & (self.status.state != State.BUSY)):
                m.d.sync += model_delay.eq(self.cfg.model_delay)
            m.d.sync += [bad_delay.eq(model_delay & (((seq.batch < seq.rows) & (seq.batch != S)) | cheb)),
                         delay_on.eq(model_delay & (batch_groups == 1))]
        with m.If(self.start & (self.status.state != State.BUSY)):
            # the golden model's _loss_error: KIND naive takes any DEGREE and RANGE; chebyshev
            # needs logistic or hinge, 1 <= d <= MAX_DEGREE and d + 1 copies (RANGE <= 7: any)
            m.d.sync += [loss_kind.eq(self.cfg.loss), bad_loss.eq(self.cfg.loss > max(Loss)), l2.eq(self.cfg.l2),
                         cheb.eq(kind == Estimator.CHEBYSHEV), degree_h.eq(degree), range_h.eq(range_shift),
                         bad_estimator.eq((kind > Estimator.CHEBYSHEV)
                                          | ((kind == Estimator.CHEBYSHEV)
                                             & ((self.cfg.loss == Loss.SQUARED) | (degree == 0)
                                                | (degree > MAX_DEGREE) | (self.cfg.copies <= degree))))]
        with m.If(~scan.affine):
            m.d.sync += core_error.eq(ErrorCode.BAD_TABLE)
        with m.Elif((seq.batch < seq.rows) & (seq.batch[:log_s] != 0)):
            m.d.sync += core_error.eq(ErrorCode.BATCH_NOT_WOVEN)
        with m.Elif(bad_loss):
            m.d.sync += core_error.eq(ErrorCode.BAD_LOSS)
        with m.Elif(bad_estimator):
            m.d.sync += core_error.eq(ErrorCode.BAD_ESTIMATOR)
        with m.Elif(bad_delay):
            m.d.sync += core_error.eq(ErrorCode.BAD_DELAY)
        with m.Else():
            m.d.sync += core_error.eq(ErrorCode.NONE)

        # ---- lines in (drained, not used, while an abort waits for the shell; a warm start's
        # model lines go to the loader)
        loader = model_loader(m, line_bits=W, depth=C, start=seq.clear, line_valid=self.data_lines.valid & seq.loading,
                              line=self.data_lines.payload, platform=platform, select_copies=ROW_ALIGN // 2)
        # (hold: the start model's lines, read early, wait here until the loader takes them)
        for src, dst, fire, load, hold in ((self.data_lines, dot.lines, seq.data_fire, seq.loading, seq.hold_lines),
                                           (self.label_lines, dot.labels, seq.label_fire, 0, 0)):
            m.d.comb += [dst.valid.eq(src.valid & ~seq.drain & ~load & ~hold), dst.payload.eq(src.payload),
                         src.ready.eq((dst.ready & ~load & ~hold) | load | seq.drain),
                         fire.eq(src.valid & src.ready & ~seq.drain)]

        # ---- datapath
        m.d.comb += dot.start.eq(seq.epoch_start)
        for unit in (dot, grad):
            m.d.comb += [unit.chunks.eq(seq.row_beats), unit.bits.eq(seq.bits),
                         unit.groups.eq(groups), unit.batch_groups.eq(batch_groups)]
        # The logistic and hinge gradients have no double-sampling correction (golden: it belongs
        # to least squares' x x^T): with e_odd = 0 the gradient unit's q = rnd(0 * w, 8) is 0.
        factors_m1 = Signal(4)  # d (Chebyshev), else 0: the copies a group is read from, less one
        if self.chebyshev:  # else 0 for good: one factor, and the Horner logic is constant
            m.d.sync += factors_m1.eq(Mux(cheb, degree_h, 0))
            m.d.comb += copies.factors_m1.eq(factors_m1)
        e_odd = Signal.like(scan.e_odd)
        m.d.sync += e_odd.eq(Mux(loss_kind == Loss.SQUARED, scan.e_odd, 0))
        m.d.comb += [dot.running.eq(seq.running), dot.rows.eq(seq.seg_rows), dot.m0.eq(scan.m0),
                     dot.loss_kind.eq(loss_kind), dot.factors_m1.eq(factors_m1),
                     dot.range_shift.eq(range_h if self.chebyshev else 0),
                     dot.poly.eq(Cat(*(held[f"poly_{j}"] for j in range(MAX_DEGREE + 1))) if self.chebyshev else 0),
                     dot.delta.eq(scan.delta), dot.upd_written.eq(grad.upd_written),
                     dot.model_delay.eq(delay_on), grad.model_delay.eq(delay_on), grad.dot_passed.eq(dot.chunks_passed),
                     dot.groups_read.eq(grad.groups_read),
                     model.a_addr.eq(Mux(seq.snapshot, seq.model_addr, dot.model_addr)),
                     dot.model_data.eq(model.a_data), seq.model_data.eq(model.a_data),
                     buf_w.en.eq(dot.buf_en), buf_w.addr.eq(dot.buf_addr), buf_w.data.eq(dot.buf_data),
                     seq.dot_done.eq(dot.done), seq.loss.eq(dot.loss), seq.stall.eq(dot.stall)]
        # A warm start primes the gradient unit with one all-zero record (no rows, G = 0): the
        # update of that one-group "minibatch" rewrites each loaded model row unchanged and
        # computes its q = rnd(e_odd * w, 8), which the next minibatch's correction reads.
        m.d.comb += [grad.residuals.valid.eq(Mux(seq.prime_rec, 1, dot.residuals.valid)),
                     grad.residuals.payload.eq(Mux(seq.prime_rec, 0, dot.residuals.payload)),
                     dot.residuals.ready.eq(grad.residuals.ready & ~seq.prime_rec),
                     seq.prime_taken.eq(grad.residuals.ready & seq.prime_rec),
                     grad.start.eq(seq.epoch_start | seq.prime_start)]
        primed = Signal()  # every model row rewritten (a register: the compare is 32 bits)
        m.d.sync += primed.eq(grad.upd_written == seq.row_beats)
        m.d.comb += seq.primed.eq(primed)
        m.d.comb += [grad.clear.eq(seq.clear), seq.clear_busy.eq(grad.clear_busy),
                     grad.features.eq(seq.features), grad.step.eq(seq.step), grad.e_odd.eq(e_odd),
                     grad.l2.eq(l2), grad.nonlinear.eq(loss_kind != Loss.SQUARED),
                     buf_r.addr.eq(grad.buf_addr), grad.buf_data.eq(buf_r.data),
                     model.b_addr.eq(grad.model_r_addr), grad.model_r_data.eq(model.b_data),
                     model.w_en.eq(grad.model_w_en | loader.w_en),
                     model.w_addr.eq(Mux(loader.w_en, loader.w_addr, grad.model_w_addr)),
                     # word by word, each pair of words selected by its own copy of loader.w_en
                     model.w_data.eq(Cat(Mux(loader.w_sel[k // 2], loader.w_data[k], grad.model_w_data[k])
                                         for k in range(ROW_ALIGN))),
                     seq.rows_done.eq(grad.rows_done)]
        return m
