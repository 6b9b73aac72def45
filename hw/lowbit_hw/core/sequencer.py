"""``Sequencer``: run control of the training core (checks, epochs, commands, records, status)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.hdl import ResetInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.format import MAX_BITS, RECORD_BYTES, ROW_ALIGN
from lowbit.contract.registers import MAX_BATCH, Built, ErrorCode, Estimator, State

from ..ccip import CCIP_ADDR_BITS
from ..interfaces import CoreStatus, EpochRecord, ReadCommand, RunConfig, StatusRecord, write_request_layout
from .schedule import RunSchedule
from .writer import RecordWriter, SnapshotWriter

__all__ = ["Sequencer", "IDLE_SETTLE", "PRIME_SETTLE"]

#: Cycles the sequencer waits after entering a wait state before it trusts ``write_idle`` /
#: ``read_idle`` (the shell updates them a cycle or two after a handshake or a flush).
IDLE_SETTLE = 4
#: Cycles a warm start waits after the priming pass has written the last model row, for the
#: gradient unit's ``q`` of that row (written 6 cycles after the row: model at u+16, q at u+22)
#: and for the datapath's sizes to follow ``seg_rows`` (two registers, as IDLE_SETTLE).
PRIME_SETTLE = 8


def _log2(x: int) -> int:
    return x.bit_length() - 1


class Sequencer(wiring.Component):
    """Everything of a run except the datapath.

    * ``start`` (not busy): sample ``cfg``, check it in :class:`ErrorCode` order, derive the
      run's sizes (one small multiply, ``N * row_beats``), clear the model and G, then per epoch
      pulse ``epoch_start``, let the datapath run until all ``N`` rows have left the gradient
      pass, write the model snapshot and the epoch record.
    * Read commands are pushed one epoch (segment) ahead (``e+1``'s while ``e`` runs), so memory
      latency overlaps the snapshot; the decoder and label unpacker still take only their epoch's
      lines, so the line counters in each record are exact.
    * RESUME builds (woven layout only) run *segments* instead of epochs (``RunSchedule``,
      ``lowbit.contract.golden._segments``): the run's span of minibatches cut at epoch ends, each
      an epoch over ``seg_rows`` consecutive rows of one copy, read by one data and one label
      command starting at the segment's first group, followed by a snapshot and a record. A
      warm start first reads the model (MODEL_IN_ADDR, one snapshot's layout) on the data
      channel into the model memory (``loading``: the core's loader takes those lines), then
      primes the gradient unit with one all-zero group (``prime_start``, ``prime_rec``): its
      update rewrites every model row unchanged (G = 0) and computes the row's ``q``.
    * End of run: write a write fence and the status record (the fence orders it behind the
      snapshot), wait for ``write_idle`` (every response), show DONE/ERROR.
    * ``start`` while busy / ``reset``: abort. Pending command and write handshakes complete
      (stream rule: ``valid`` is never withdrawn), lines are drained (``drain``), ``flush`` pulses,
      then ``read_idle`` and ``write_idle`` are awaited; ``reset`` ends in IDLE, ``start`` in
      ERROR / START_WHILE_BUSY with a status record.

    Parameters
    ----------
    line_bits, lanes, max_features : int
    built : Built
        The optional datapaths of the core (its BUILT register): a run needing another is refused
        with ``NOT_BUILT`` (``EngineConfig.error(built=...)``).
    """

    def __init__(self, *, line_bits: int, lanes: int, max_features: int, samples_per_line: int | None = None,
                 built: Built = Built.NONE):
        self.built = Built(built)
        if self.built & Built.RESUME and not samples_per_line:
            raise ValueError("RESUME needs the woven layout: a segment starts at a whole group of rows")
        # samples_per_line: the woven layout (WovenCore): a copy is groups * chunks blocks of
        # b+1 lines, a group being samples_per_line rows; None: the planes layout.
        self.line_bits, self.lanes, self.max_features = line_bits, lanes, max_features
        self.samples_per_line = samples_per_line
        rbm = max_features // lanes
        self.row_beats_max = rbm
        widths = RunConfig.members
        super().__init__({
            # core-facing
            "cfg": In(RunConfig), "start": In(1), "reset": In(1), "status": Out(CoreStatus),
            "data_cmd": Out(stream.Signature(ReadCommand)), "label_cmd": Out(stream.Signature(ReadCommand)),
            "data_cmd_model": Out(1),  # the data command offered is a warm start's model read (not a segment's)
            "write": Out(stream.Signature(write_request_layout(line_bits))),
            "write_idle": In(1), "flush": Out(1), "read_idle": In(1),
            # datapath control
            "dp_rst": Out(1), "drain": Out(1), "epoch_start": Out(1), "running": Out(1),
            "clear": Out(1), "clear_busy": In(1),
            **{name: Out(widths[name]) for name in ("features", "bits", "rows", "batch", "step")},
            "row_beats": Out(range(rbm + 1)), "pad_beats": Out(range(line_bits // lanes)),
            "data_lines": Out(32),  # lines per copy = per epoch
            "rows_done": In(widths["rows"]), "dot_done": In(1), "loss": In(EpochRecord.members["loss"]), "stall": In(1),
            "data_fire": In(1), "label_fire": In(1),
            # core-specific checks: CHECK waits while core_busy, then refuses core_error != 0
            "core_busy": In(1), "core_error": In(CoreStatus.members["error"]),
            "snapshot": Out(1),  # the snapshot writer owns model port A
            # segments (every build): the rows of the segment being run, for the datapath
            "seg_rows": Out(widths["rows"]),
            # warm start (RESUME builds): model lines to the loader, then the priming pass
            "loading": Out(1), "hold_lines": Out(1), "prime_start": Out(1), "prime_rec": Out(1),
            "prime_taken": In(1), "primed": In(1),
            "model_addr": Out(range(rbm)), "model_data": In(data.ArrayLayout(signed(32), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        W, L = self.line_bits, self.lanes
        P = W // 32  # words per line
        S = self.samples_per_line
        BB = 1 if S else W // L  # beats per block
        cfg = Signal(RunConfig)
        st = self.status

        m.submodules.snap = snap = SnapshotWriter(line_bits=W, lanes=L, row_beats_max=self.row_beats_max)
        m.submodules.rec = rec = RecordWriter(line_bits=W)
        m.d.comb += [self.model_addr.eq(snap.model_addr), snap.model_data.eq(self.model_data),
                     self.snapshot.eq(snap.busy)]
        # The two writers are never active together: OR the valids, pick the payload.
        m.d.comb += [self.write.valid.eq(snap.write.valid | rec.write.valid),
                     self.write.payload.eq(Mux(snap.write.valid, snap.write.payload, rec.write.payload)),
                     snap.write.ready.eq(self.write.ready), rec.write.ready.eq(self.write.ready)]

        # ---- derived run sizes
        fpad = Signal(25)
        nr = Signal(32 + self.row_beats_max.bit_length())  # N * row_beats: beats of rows per epoch
        blocks = Signal(len(nr))
        label_lines = Signal(32)
        model_lines = Signal(32)
        mcand = Signal(len(nr))               # shift-and-add multiplier (SIZE2_MUL, SIZE4_MUL)
        mplier = Signal(max(len(self.row_beats), 5))
        m.d.comb += [self.features.eq(cfg.features), self.bits.eq(cfg.bits), self.rows.eq(cfg.rows),
                     self.batch.eq(cfg.batch), self.step.eq(cfg.step)]

        busy = st.state == State.BUSY
        stall_r, data_r, label_r, write_r = Signal(), Signal(), Signal(), Signal()
        epochs = st.epoch
        m.d.sync += [st.cycles.eq(st.cycles + busy),
                     st.read_lines.eq(st.read_lines + data_r + label_r),
                     st.write_lines.eq(st.write_lines + write_r),
                     st.stall_cycles.eq(st.stall_cycles + stall_r)]
        # Counted a cycle late: stall and the line handshakes come at the end of the dot pass's
        # issue logic (interlock compare -> ready -> decoder), too long a path for a 64-bit add;
        # a write's (valid -> fence mux -> handshake) too. So a record waits for ~write_r.
        m.d.sync += [stall_r.eq(busy & self.running & self.stall),
                     data_r.eq(busy & self.data_fire), label_r.eq(busy & self.label_fire),
                     write_r.eq(busy & self.write.valid & self.write.ready & ~self.write.payload.fence)]

        # ---- the run's segments: three kinds (RunSchedule), or every segment an epoch
        resume = bool(self.built & Built.RESUME)
        seg_w = RunConfig.members["epochs"]
        nseg, copy_first = Signal(seg_w), Signal(RunConfig.members["copies"])
        rows_first, rows_last = Signal(32), Signal(32)
        copy_off, data_off_first, label_off_first = Signal(48), Signal(48), Signal(32)
        dl_first, dl_last, ll_first, ll_last = Signal(32), Signal(32), Signal(32), Signal(32)
        if resume:
            # reset by an abort (drain) so that the next START finds it idle
            m.submodules.sched = sched = ResetInserter(self.drain)(RunSchedule(samples=S))
            m.d.comb += [sched.rows.eq(cfg.rows), sched.batch.eq(cfg.batch), sched.epochs.eq(cfg.epochs),
                         sched.copies.eq(cfg.copies), sched.first.eq(cfg.start_minibatch),
                         sched.count.eq(cfg.max_minibatches), sched.chunks.eq(self.row_beats),
                         sched.bits.eq(cfg.bits), sched.data_lines.eq(self.data_lines),
                         sched.plain.eq((cfg.start_minibatch == 0) & (cfg.max_minibatches == 0))]
            m.d.comb += [nseg.eq(sched.nseg), rows_first.eq(sched.rows_first), rows_last.eq(sched.rows_last),
                         copy_off.eq(sched.copy_off), data_off_first.eq(sched.data_off_first),
                         label_off_first.eq(sched.label_off_first), dl_first.eq(sched.data_lines_first),
                         dl_last.eq(sched.data_lines_last), ll_first.eq(sched.label_lines_first),
                         ll_last.eq(sched.label_lines_last), copy_first.eq(sched.copy_first)]
        else:  # every segment is a whole epoch from w = 0
            m.d.comb += [nseg.eq(cfg.epochs), rows_first.eq(cfg.rows), rows_last.eq(cfg.rows),
                         dl_first.eq(self.data_lines), dl_last.eq(self.data_lines), ll_first.eq(label_lines),
                         ll_last.eq(label_lines)]
        warm = cfg.warm_start if resume else 0
        seg_left = Signal(seg_w)  # segments after the one running

        # ---- read commands, one segment ahead (warm start: the model's read first, on the data channel)
        in_run = Signal()
        d_issued, l_issued = Signal(seg_w), Signal(seg_w)
        d_addr = Signal(CCIP_ADDR_BITS)  # the next segment's copy
        d_copy = Signal(RunConfig.members["copies"])
        d_first_addr, l_first_addr = Signal(CCIP_ADDR_BITS), Signal(CCIP_ADDR_BITS)
        model_pending, on_model = Signal(), Signal()
        model_asked = Signal()  # this run's start model has been (or is being) read
        m.d.comb += self.data_cmd_model.eq(on_model)
        cmd_state = []  # per stream: (first, left, done), set for the run in SETUP
        for cmd, issued, is_data in ((self.data_cmd, d_issued, True), (self.label_cmd, l_issued, False)):
            # the next command is the run's first / its last (left == 0) / all are out (done)
            tag = "d" if is_data else "l"
            first, left, done = Signal(name=f"{tag}_first"), Signal(seg_w, name=f"{tag}_left"), Signal(name=f"{tag}_done")
            cmd_state.append((first, left, done))
            if is_data:
                addr = Mux(first, d_first_addr, d_addr)
                lines = Mux(first, dl_first, Mux(left == 0, dl_last, self.data_lines))
            else:
                addr = Mux(first, l_first_addr, cfg.label_addr)
                lines = Mux(first, ll_first, Mux(left == 0, ll_last, label_lines))
            want = in_run & ~done & (issued <= epochs + 1)
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += cmd.valid.eq(0)
                segment = ~on_model if is_data else 1
                with m.If(segment):
                    m.d.sync += [issued.eq(issued + 1), first.eq(0), left.eq(left - 1), done.eq(left == 0)]
                    if is_data:
                        with m.If(d_copy == cfg.copies - 1):
                            m.d.sync += [d_copy.eq(0), d_addr.eq(cfg.data_addr)]
                        with m.Else():
                            m.d.sync += [d_copy.eq(d_copy + 1), d_addr.eq(d_addr + self.data_lines)]
                if is_data:
                    m.d.sync += on_model.eq(0)
            if is_data:
                # the start model's read goes out the cycle after CHECK, once the configuration's
                # own checks have passed, long before the run's first segment: its latency
                # overlaps the table scan, the schedule and the clear; its lines wait
                # (hold_lines) until the loader takes them (LOAD). A run refused after it (a bad
                # code table, BAD_START) drains it as an abort does.
                with m.Elif(~cmd.valid & model_pending & ~self.drain):
                    m.d.sync += [cmd.valid.eq(1), cmd.payload.address.eq(cfg.model_in_addr),
                                 cmd.payload.lines.eq(model_lines), model_pending.eq(0), on_model.eq(1)]
            with m.Elif(~cmd.valid & want):
                m.d.sync += [cmd.valid.eq(1), cmd.payload.address.eq(addr), cmd.payload.lines.eq(lines)]

        model_base = Signal(CCIP_ADDR_BITS)
        stats_base = Signal(CCIP_ADDR_BITS)
        settle = Signal(range(IDLE_SETTLE + 1))
        to_idle = Signal()  # the abort came from reset
        m.d.sync += settle.eq(Mux(settle == IDLE_SETTLE, settle, settle + 1))
        final_state = Mux(st.error == ErrorCode.NONE, int(State.DONE), int(State.ERROR))
        # The two records, filled by name (reserved words stay 0); written in SNAPSHOT / FINISH_WAIT.
        epoch_rec, status_rec = Signal(EpochRecord, name="epoch_rec"), Signal(StatusRecord, name="status_rec")
        m.d.comb += [epoch_rec.epoch.eq(epochs + 1), epoch_rec.loss.eq(self.loss), epoch_rec.cycles.eq(st.cycles),
                     epoch_rec.read_lines.eq(st.read_lines), epoch_rec.stall_cycles.eq(st.stall_cycles),
                     epoch_rec.write_lines.eq(st.write_lines)]
        m.d.comb += [status_rec.state.eq(final_state), status_rec.error.eq(st.error), status_rec.cycles.eq(st.cycles),
                     status_rec.read_lines.eq(st.read_lines), status_rec.write_lines.eq(st.write_lines),
                     status_rec.stall_cycles.eq(st.stall_cycles), status_rec.epochs.eq(epochs),
                     status_rec.run_id.eq(cfg.run_id)]

        # The common checks are a register, computed every cycle from the configuration input
        # (held by the register block): in CHECK it holds the checks of the START cycle's
        # configuration, which is what ``cfg`` latched. So CHECK's decision is a choice among
        # registers, not a priority chain of compares.
        common_err = Signal(CoreStatus.members["error"])
        icfg = self.cfg
        with m.If(icfg.rows == 0):
            m.d.sync += common_err.eq(ErrorCode.BAD_ROWS)
        with m.Elif((icfg.features == 0) | (icfg.features > self.max_features)):
            m.d.sync += common_err.eq(ErrorCode.BAD_FEATURES)
        with m.Elif((icfg.bits == 0) | (icfg.bits > MAX_BITS)):
            m.d.sync += common_err.eq(ErrorCode.BAD_BITS)
        with m.Elif((icfg.batch == 0) | (icfg.batch > MAX_BATCH)):
            m.d.sync += common_err.eq(ErrorCode.BAD_BATCH)
        with m.Elif(icfg.epochs == 0):
            m.d.sync += common_err.eq(ErrorCode.BAD_EPOCHS)
        with m.Elif(icfg.copies == 0):
            m.d.sync += common_err.eq(ErrorCode.BAD_COPIES)
        with m.Elif(icfg.step == 0):
            m.d.sync += common_err.eq(ErrorCode.BAD_STEP)
        # A run needing a datapath the core was not built with is refused, not run as a plain
        # least-squares run under another name (EngineConfig.needs / error(built=...)).
        chebyshev = icfg.estimator[:2] == Estimator.CHEBYSHEV  # ESTIMATOR.KIND
        needs = {Built.NONLINEAR: (icfg.loss != 0) | ((icfg.estimator != 0) & ~chebyshev),
                 Built.L2: icfg.l2 != 0,
                 Built.CHEBYSHEV: chebyshev,
                 Built.RESUME: icfg.warm_start | (icfg.start_minibatch != 0) | (icfg.max_minibatches != 0),
                 Built.DELAYED: icfg.model_delay}
        lacking = [need for flag, need in needs.items() if not flag & self.built]
        if lacking:
            with m.Elif(Cat(*lacking).any()):
                m.d.sync += common_err.eq(ErrorCode.NOT_BUILT)
        with m.Else():
            m.d.sync += common_err.eq(ErrorCode.NONE)
        err = Signal(CoreStatus.members["error"])
        with m.If(common_err != 0):
            m.d.comb += err.eq(common_err)
        with m.Elif(~self.core_busy):
            m.d.comb += err.eq(self.core_error)
        # All rows of the epoch have left the gradient pass: a register (a cycle late) rather than
        # a 32-bit compare in RUN's decision.
        rows_all = Signal()
        m.d.sync += rows_all.eq(self.rows_done == self.seg_rows)
        load_left = Signal(32)                     # warm start: model lines still to load
        # Decisions of the FSM and the line routing are registers, set a cycle ahead (a compare of
        # a counter in the state register's enable was the core's slowest path).
        loading = Signal()                         # the next data line is the model's
        hold = Signal()                            # the model's lines are on their way: hold them
        last_seg = Signal()                        # the segment running is the run's last
        m.d.comb += [self.loading.eq(loading),     # set only in LOAD (cleared by an abort)
                     self.hold_lines.eq(hold)]     # from the model's read to LOAD
        prime_wait = Signal(range(PRIME_SETTLE + 1))

        def guard():
            """End of every BUSY state's body (so its ``m.next`` wins): reset / start abort the run."""
            with m.If(self.reset):
                m.d.sync += [to_idle.eq(1), loading.eq(0), hold.eq(0), model_pending.eq(0)]
                m.next = "ABORT_HOLD"
            with m.Elif(self.start):
                m.d.sync += [to_idle.eq(0), st.error.eq(ErrorCode.START_WHILE_BUSY), loading.eq(0), hold.eq(0),
                             model_pending.eq(0)]
                m.next = "ABORT_HOLD"

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.reset):
                    m.d.sync += [st.state.eq(State.IDLE), st.error.eq(0)]
                with m.Elif(self.start):
                    m.d.sync += [cfg.eq(self.cfg), st.state.eq(State.BUSY), st.error.eq(0), st.epoch.eq(0),
                                 model_asked.eq(0), st.cycles.eq(0), st.read_lines.eq(0), st.write_lines.eq(0),
                                 st.stall_cycles.eq(0)]
                    m.next = "CHECK"
            # Every state below is BUSY: reset / start abort the run.
            with m.State("CHECK"):
                m.d.comb += self.dp_rst.eq(1)
                # from the START's FEATURES (checked by common_err, valid from CHECK's first cycle)
                m.d.sync += model_lines.eq(((cfg.features + ROW_ALIGN - 1) & ~(ROW_ALIGN - 1)) >> _log2(P))
                with m.If(err != 0):  # one cycle: nothing has been read yet
                    m.d.sync += [st.error.eq(err), settle.eq(0)]
                    m.next = "FINISH_WAIT"
                with m.Else():
                    if resume:  # the start model's read goes out next cycle
                        m.d.sync += [model_pending.eq(warm), hold.eq(warm), model_asked.eq(warm)]
                    # the core's own checks (its table scan) go on while the sizes and the schedule
                    # are computed: GATE waits for them before the run reads or clears anything
                    m.d.sync += [fpad.eq((cfg.features + ROW_ALIGN - 1) & ~(ROW_ALIGN - 1)),
                                 label_lines.eq((cfg.rows + P - 1) >> _log2(P))]
                    m.next = "SIZE1"
                guard()
            with m.State("SIZE1"):
                m.d.comb += self.dp_rst.eq(1)
                m.d.sync += self.row_beats.eq(fpad >> _log2(L))
                m.next = "SIZE2"
                guard()
            # The two products of the run's sizes are shift-and-add loops (one multiplier bit per
            # cycle, a few cycles once per run): an inferred multiply would be a combinational
            # MULT18X18D chain between registers, too slow for the engine clock, and would take
            # DSPs the woven core needs (docs/board.md).
            with m.State("SIZE2"):
                m.d.comb += self.dp_rst.eq(1)
                rows = ((cfg.rows + S - 1) >> _log2(S)) if S else cfg.rows  # woven: groups of S rows
                m.d.sync += [nr.eq(0), mcand.eq(rows), mplier.eq(self.row_beats)]
                m.next = "SIZE2_MUL"
                guard()
            with m.State("SIZE2_MUL"):
                m.d.comb += self.dp_rst.eq(1)
                with m.If(mplier == 0):
                    m.next = "SIZE3"
                with m.Else():
                    m.d.sync += [nr.eq(nr + Mux(mplier[0], mcand, 0)), mcand.eq(mcand << 1),
                                 mplier.eq(mplier >> 1)]
                guard()
            with m.State("SIZE3"):
                m.d.comb += self.dp_rst.eq(1)
                m.d.sync += blocks.eq((nr + BB - 1) >> _log2(BB))
                if not S:
                    m.d.sync += self.pad_beats.eq(-nr)
                m.next = "SIZE4"
                guard()
            with m.State("SIZE4"):
                m.d.comb += self.dp_rst.eq(1)
                # data_lines = blocks * (bits + 1), kept to its 32 bits as the product was
                m.d.sync += [self.data_lines.eq(0), mcand.eq(blocks), mplier.eq(cfg.bits + 1)]
                m.next = "SIZE4_MUL"
                guard()
            with m.State("SIZE4_MUL"):
                m.d.comb += self.dp_rst.eq(1)
                with m.If(mplier == 0):
                    m.next = "SCHEDULE" if resume else "GATE"
                with m.Else():
                    m.d.sync += [self.data_lines.eq(self.data_lines + Mux(mplier[0], mcand, 0)),
                                 mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
                guard()
            if resume:
                with m.State("SCHEDULE"):
                    m.d.comb += [self.dp_rst.eq(1), sched.start.eq(1)]
                    m.next = "SCHEDULE_WAIT"
                    guard()
                with m.State("SCHEDULE_WAIT"):
                    m.d.comb += self.dp_rst.eq(1)
                    with m.If(~sched.busy):
                        m.next = "GATE"
                    guard()
            # The core's checks, then BAD_START (ErrorCode order): a refused warm start has its
            # model read out, drained as an abort drains.
            with m.State("GATE"):
                m.d.comb += self.dp_rst.eq(1)
                gate_err = Mux(self.core_error != 0, self.core_error, ErrorCode.BAD_START)
                refuse = (self.core_error != 0) | (sched.bad_start if resume else 0)
                with m.If(~self.core_busy):
                    with m.If(refuse):
                        m.d.sync += [st.error.eq(gate_err), settle.eq(0), model_pending.eq(0), hold.eq(0),
                                     to_idle.eq(0)]
                        m.next = "FINISH_WAIT"
                        if resume:
                            with m.If(model_asked):
                                m.next = "ABORT_HOLD"
                    with m.Else():
                        m.next = "SETUP"
                guard()
            with m.State("SETUP"):
                m.d.comb += self.dp_rst.eq(1)
                m.d.sync += [d_issued.eq(0), l_issued.eq(0), d_copy.eq(copy_first), d_addr.eq(cfg.data_addr + copy_off),
                             model_base.eq(cfg.model_addr), stats_base.eq(cfg.stats_addr), seg_left.eq(nseg - 1),
                             # a warm start's priming pass runs one group: seg_rows = 1 until it is done
                             self.seg_rows.eq(Mux(warm, 1, rows_first)),
                             load_left.eq(model_lines), loading.eq(0), last_seg.eq(nseg == 1)]
                for first, left, done in cmd_state:
                    m.d.sync += [first.eq(1), left.eq(nseg - 1), done.eq(0)]
                m.next = "SETUP2"
                guard()
            with m.State("SETUP2"):
                m.d.comb += self.dp_rst.eq(1)
                m.d.sync += [d_first_addr.eq(d_addr + data_off_first), l_first_addr.eq(cfg.label_addr + label_off_first)]
                m.next = "CLEAR_GO"
                guard()
            with m.State("CLEAR_GO"):  # not under dp_rst, which would swallow the pulse
                m.d.comb += [in_run.eq(1), self.clear.eq(1)]
                m.next = "CLEAR"
                guard()
            with m.State("CLEAR"):
                m.d.comb += in_run.eq(1)
                with m.If(~self.clear_busy):
                    m.next = "EPOCH"
                    if resume:
                        with m.If(warm):
                            m.d.sync += [loading.eq(1), hold.eq(0)]  # model_lines >= 1
                            m.next = "LOAD"
                guard()
            if resume:
                # The model's lines come first on the data channel; the core's loader writes a model
                # row per 32 words (the loader's write is registered: it lands in PRIME_GO's cycle).
                with m.State("LOAD"):
                    m.d.comb += in_run.eq(1)
                    with m.If(~loading):
                        m.next = "PRIME_GO"
                    with m.Elif(self.data_fire):
                        m.d.sync += [load_left.eq(load_left - 1), loading.eq(load_left != 1)]
                    guard()
                with m.State("PRIME_GO"):
                    m.d.comb += [in_run.eq(1), self.prime_start.eq(1)]
                    m.next = "PRIME_REC"
                    guard()
                with m.State("PRIME_REC"):  # one all-zero residual record (no rows): G = 0, an update
                    m.d.comb += [in_run.eq(1), self.prime_rec.eq(1)]
                    with m.If(self.prime_taken):
                        m.next = "PRIME_WAIT"
                    guard()
                with m.State("PRIME_WAIT"):
                    m.d.comb += in_run.eq(1)
                    m.d.sync += prime_wait.eq(0)
                    with m.If(self.primed):
                        m.d.sync += self.seg_rows.eq(rows_first)
                        m.next = "PRIME_SETTLE"
                    guard()
                with m.State("PRIME_SETTLE"):  # q of the last rows; the datapath's sizes of seg_rows
                    m.d.comb += in_run.eq(1)
                    m.d.sync += prime_wait.eq(prime_wait + 1)
                    with m.If(prime_wait == PRIME_SETTLE):
                        m.next = "EPOCH"
                    guard()
            with m.State("EPOCH"):
                m.d.comb += [in_run.eq(1), self.epoch_start.eq(1)]
                m.next = "RUN"
                guard()
            with m.State("RUN"):
                m.d.comb += [in_run.eq(1), self.running.eq(1)]
                with m.If(rows_all & self.dot_done):
                    m.next = "SNAP_GO"
                guard()
            with m.State("SNAP_GO"):  # the writer's start from the state register alone (a short path)
                m.d.comb += [in_run.eq(1), snap.start.eq(1), snap.base.eq(model_base), snap.lines.eq(model_lines)]
                m.next = "SNAPSHOT"
                guard()
            with m.State("SNAPSHOT"):
                m.d.comb += in_run.eq(1)
                with m.If(~snap.busy & ~write_r):  # the last line counted (write_r is a cycle late)
                    m.d.comb += [rec.start.eq(1), rec.address.eq(stats_base), rec.record.eq(epoch_rec)]
                    m.next = "RECORD"
                guard()
            with m.State("RECORD"):
                m.d.comb += in_run.eq(1)
                with m.If(~rec.busy):
                    m.d.sync += [epochs.eq(epochs + 1), model_base.eq(model_base + model_lines),
                                 stats_base.eq(stats_base + RECORD_BYTES * 8 // W)]
                    with m.If(last_seg):
                        m.d.sync += settle.eq(0)
                        m.next = "FINISH_WAIT"
                    with m.Else():
                        # the next segment: the last one's rows, or a whole epoch's; the datapath's
                        # sizes follow seg_rows through two registers, so wait IDLE_SETTLE cycles
                        m.d.sync += [seg_left.eq(seg_left - 1), self.seg_rows.eq(Mux(seg_left == 1, rows_last, cfg.rows)),
                                     last_seg.eq(seg_left == 1), settle.eq(0)]
                        m.next = "SEGMENT"
                guard()
            with m.State("SEGMENT"):
                m.d.comb += in_run.eq(1)
                with m.If(settle == IDLE_SETTLE):
                    m.next = "EPOCH"
                guard()
            with m.State("FINISH_WAIT"):
                # Every earlier write is with the shell (~write.valid: the writers are done). The
                # status record goes out now, behind a write fence, not a round trip later after
                # the writes' responses: the fence keeps host memory from showing it before them.
                with m.If((settle == IDLE_SETTLE) & ~self.write.valid):
                    m.d.comb += [rec.start.eq(1), rec.address.eq(cfg.status_addr), rec.record.eq(status_rec),
                                 rec.fence.eq(1)]
                    m.next = "STATUS"
                guard()
            with m.State("STATUS"):
                with m.If(~rec.busy):
                    m.d.sync += settle.eq(0)
                    m.next = "STATUS_WAIT"
                guard()
            with m.State("STATUS_WAIT"):
                with m.If((settle == IDLE_SETTLE) & self.write_idle):
                    m.d.sync += st.state.eq(final_state)
                    m.next = "IDLE"
                guard()
            with m.State("ABORT_HOLD"):
                with m.If(self.reset):
                    m.d.sync += to_idle.eq(1)
                # Let started handshakes finish; the writers stop after their current record.
                m.d.comb += [self.dp_rst.eq(1), self.drain.eq(1)]
                with m.If(~self.data_cmd.valid & ~self.label_cmd.valid & ~snap.busy & ~rec.busy):
                    m.next = "ABORT_FLUSH"
            with m.State("ABORT_FLUSH"):
                with m.If(self.reset):
                    m.d.sync += to_idle.eq(1)
                m.d.comb += [self.dp_rst.eq(1), self.drain.eq(1), self.flush.eq(1)]
                m.d.sync += settle.eq(0)
                m.next = "ABORT_WAIT"
            with m.State("ABORT_WAIT"):
                m.d.comb += [self.dp_rst.eq(1), self.drain.eq(1)]
                with m.If((settle == IDLE_SETTLE) & self.read_idle & self.write_idle):
                    with m.If(to_idle):
                        m.d.sync += [st.state.eq(State.IDLE), st.error.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += settle.eq(0)
                        m.next = "FINISH_WAIT"
                with m.If(self.reset):
                    m.d.sync += to_idle.eq(1)
        self.fsm = fsm  # the run-control FSM (tests and profiles read its state)

        return m
