"""``Sequencer``: run control of the training core (checks, epochs, commands, records, status)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from lowbit.contract.format import MAX_BITS, RECORD_BYTES, ROW_ALIGN
from lowbit.contract.registers import MAX_BATCH, Built, ErrorCode, Estimator, State

from ..ccip import CCIP_ADDR_BITS
from ..interfaces import CoreStatus, EpochRecord, ReadCommand, RunConfig, StatusRecord, write_request_layout
from .writer import RecordWriter, SnapshotWriter

__all__ = ["Sequencer", "IDLE_SETTLE"]

#: Cycles the sequencer waits after entering a wait state before it trusts ``write_idle`` /
#: ``read_idle`` (the shell updates them a cycle or two after a handshake or a flush).
IDLE_SETTLE = 4


def _log2(x: int) -> int:
    return x.bit_length() - 1


class Sequencer(wiring.Component):
    """Everything of a run except the datapath.

    * ``start`` (not busy): sample ``cfg``, check it in :class:`ErrorCode` order, derive the
      run's sizes (one small multiply, ``N * row_beats``), clear the model and G, then per epoch
      pulse ``epoch_start``, let the datapath run until all ``N`` rows have left the gradient
      pass, write the model snapshot and the epoch record.
    * Read commands are pushed one epoch ahead (epoch ``e+1``'s while ``e`` runs), so memory
      latency overlaps the snapshot; the decoder and label unpacker still take only their epoch's
      lines, so the line counters in each record are exact.
    * End of run: wait for ``write_idle``, write the status record, wait again, show DONE/ERROR.
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
        stall_r, data_r, label_r = Signal(), Signal(), Signal()
        epochs = st.epoch
        m.d.sync += [st.cycles.eq(st.cycles + busy),
                     st.read_lines.eq(st.read_lines + data_r + label_r),
                     st.write_lines.eq(st.write_lines + (busy & self.write.valid & self.write.ready)),
                     st.stall_cycles.eq(st.stall_cycles + stall_r)]
        # Counted a cycle late: stall and the line handshakes come at the end of the dot pass's
        # issue logic (interlock compare -> ready -> decoder), too long a path for a 64-bit add.
        m.d.sync += [stall_r.eq(busy & self.running & self.stall),
                     data_r.eq(busy & self.data_fire), label_r.eq(busy & self.label_fire)]

        # ---- read commands, one epoch ahead
        in_run = Signal()
        d_issued, l_issued = Signal(RunConfig.members["epochs"]), Signal(RunConfig.members["epochs"])
        d_addr = Signal(CCIP_ADDR_BITS)
        d_copy = Signal(RunConfig.members["copies"])
        for cmd, issued, addr, lines, is_data in ((self.data_cmd, d_issued, d_addr, self.data_lines, True),
                                                  (self.label_cmd, l_issued, cfg.label_addr, label_lines, False)):
            want = in_run & (issued < cfg.epochs) & (issued <= epochs + 1)
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += [cmd.valid.eq(0), issued.eq(issued + 1)]
                if is_data:
                    with m.If(d_copy == cfg.copies - 1):
                        m.d.sync += [d_copy.eq(0), d_addr.eq(cfg.data_addr)]
                    with m.Else():
                        m.d.sync += [d_copy.eq(d_copy + 1), d_addr.eq(d_addr + self.data_lines)]
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
                 Built.RESUME: icfg.warm_start | (icfg.start_minibatch != 0) | (icfg.max_minibatches != 0)}
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
        m.d.sync += rows_all.eq(self.rows_done == cfg.rows)

        def guard():
            """End of every BUSY state's body (so its ``m.next`` wins): reset / start abort the run."""
            with m.If(self.reset):
                m.d.sync += to_idle.eq(1)
                m.next = "ABORT_HOLD"
            with m.Elif(self.start):
                m.d.sync += [to_idle.eq(0), st.error.eq(ErrorCode.START_WHILE_BUSY)]
                m.next = "ABORT_HOLD"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.reset):
                    m.d.sync += [st.state.eq(State.IDLE), st.error.eq(0)]
                with m.Elif(self.start):
                    m.d.sync += [cfg.eq(self.cfg), st.state.eq(State.BUSY), st.error.eq(0), st.epoch.eq(0),
                                 st.cycles.eq(0), st.read_lines.eq(0), st.write_lines.eq(0),
                                 st.stall_cycles.eq(0)]
                    m.next = "CHECK"
            # Every state below is BUSY: reset / start abort the run.
            with m.State("CHECK"):
                m.d.comb += self.dp_rst.eq(1)
                with m.If(err != 0):
                    m.d.sync += [st.error.eq(err), settle.eq(0)]
                    m.next = "FINISH_WAIT"
                with m.Elif(self.core_busy):
                    pass
                with m.Else():
                    m.d.sync += [fpad.eq((cfg.features + ROW_ALIGN - 1) & ~(ROW_ALIGN - 1)),
                                 label_lines.eq((cfg.rows + P - 1) >> _log2(P))]
                    m.next = "SIZE1"
                guard()
            with m.State("SIZE1"):
                m.d.comb += self.dp_rst.eq(1)
                m.d.sync += [self.row_beats.eq(fpad >> _log2(L)), model_lines.eq(fpad >> _log2(P))]
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
                    m.d.sync += [d_issued.eq(0), l_issued.eq(0), d_addr.eq(cfg.data_addr), d_copy.eq(0),
                                 model_base.eq(cfg.model_addr), stats_base.eq(cfg.stats_addr)]
                    m.next = "CLEAR_GO"
                with m.Else():
                    m.d.sync += [self.data_lines.eq(self.data_lines + Mux(mplier[0], mcand, 0)),
                                 mcand.eq(mcand << 1), mplier.eq(mplier >> 1)]
                guard()
            with m.State("CLEAR_GO"):  # not under dp_rst, which would swallow the pulse
                m.d.comb += [in_run.eq(1), self.clear.eq(1)]
                m.next = "CLEAR"
                guard()
            with m.State("CLEAR"):
                m.d.comb += in_run.eq(1)
                with m.If(~self.clear_busy):
                    m.next = "EPOCH"
                guard()
            with m.State("EPOCH"):
                m.d.comb += [in_run.eq(1), self.epoch_start.eq(1)]
                m.next = "RUN"
                guard()
            with m.State("RUN"):
                m.d.comb += [in_run.eq(1), self.running.eq(1)]
                with m.If(rows_all & self.dot_done):
                    m.d.comb += [snap.start.eq(1), snap.base.eq(model_base), snap.lines.eq(model_lines)]
                    m.next = "SNAPSHOT"
                guard()
            with m.State("SNAPSHOT"):
                m.d.comb += in_run.eq(1)
                with m.If(~snap.busy):
                    m.d.comb += [rec.start.eq(1), rec.address.eq(stats_base), rec.record.eq(epoch_rec)]
                    m.next = "RECORD"
                guard()
            with m.State("RECORD"):
                m.d.comb += in_run.eq(1)
                with m.If(~rec.busy):
                    m.d.sync += [epochs.eq(epochs + 1), model_base.eq(model_base + model_lines),
                                 stats_base.eq(stats_base + RECORD_BYTES * 8 // W)]
                    with m.If(epochs + 1 == cfg.epochs):
                        m.d.sync += settle.eq(0)
                        m.next = "FINISH_WAIT"
                    with m.Else():
                        m.next = "EPOCH"
                guard()
            with m.State("FINISH_WAIT"):
                with m.If((settle == IDLE_SETTLE) & self.write_idle & ~self.write.valid):
                    m.d.comb += [rec.start.eq(1), rec.address.eq(cfg.status_addr), rec.record.eq(status_rec)]
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

        return m
