"""cocotb tests of the real CCI-P shell around a STREAMING PROBE CORE (a test fixture, not the engine).

:class:`StreamProbeCore` has the training core's ``CoreSignature``: on START it asks the shell for
ROWS data lines from DATA_ADDR and ROWS/8 label lines from LABEL_ADDR, swallows them as fast as they
come (ready always high), writes line ``i`` of the data back to ``MODEL_ADDR + i`` every
``2^BITS``-th line, and ends with a status record. It lets the bench exercise the real
RegisterBlock, ReadEngine (reorder buffer) and WriteEngine -- MMIO map, in-order delivery under
random latency and reordering, almost-full storms, RESET during traffic -- and measure the shell's
read bandwidth, before the training core exists. Export: :func:`export_probe`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import cocotb
from amaranth import Const, Module, Signal
from amaranth.lib import wiring

from lowbit.contract.registers import Ctrl, ErrorCode, State
from lowbit_hw.interfaces import CoreSignature, StatusRecord

from .afu_tb import TB
from .ccip_model import StormConfig

SEED0 = int(os.environ.get("LOWBIT_SEED0", "0"))


class StreamProbeCore(wiring.Component):
    """Test fixture with ``CoreSignature(line_bits)``: streams data and labels, echoes some lines back."""

    def __init__(self, *, line_bits: int, lanes: int, max_features: int):
        self.line_bits = line_bits
        super().__init__(CoreSignature(line_bits))

    def elaborate(self, platform):
        m = Module()
        cfg, st = self.cfg, self.status
        W = self.line_bits
        rows = Signal(32)
        got = Signal(32)
        labels_left = Signal(32)
        cmd_sent = Signal(2)
        wrote_status = Signal()
        busy = st.state == State.BUSY
        wr = self.write
        # One echo write at a time: data is taken only while no write waits.
        m.d.comb += [self.data_lines.ready.eq(~wr.valid), self.label_lines.ready.eq(1)]
        with m.If(busy):
            m.d.sync += st.cycles.eq(st.cycles + 1)
            with m.If(~self.data_lines.valid):
                m.d.sync += st.stall_cycles.eq(st.stall_cycles + 1)
        # Commands (a stream: valid held until ready).
        m.d.comb += [self.data_cmd.payload.address.eq(cfg.data_addr), self.data_cmd.payload.lines.eq(rows),
                     self.data_cmd.valid.eq(busy & ~cmd_sent[0]),
                     self.label_cmd.payload.address.eq(cfg.label_addr),
                     self.label_cmd.payload.lines.eq((rows + 7) >> 3),
                     self.label_cmd.valid.eq(busy & ~cmd_sent[1])]
        with m.If(self.data_cmd.valid & self.data_cmd.ready):
            m.d.sync += cmd_sent[0].eq(1)
        with m.If(self.label_cmd.valid & self.label_cmd.ready):
            m.d.sync += cmd_sent[1].eq(1)
        with m.If(self.label_lines.valid & busy):
            m.d.sync += [labels_left.eq(labels_left - 1), st.read_lines.eq(st.read_lines + 1)]
        # Echo every 2^BITS-th data line; the write stream holds while not ready.
        every = (Const(1, 32) << cfg.bits) - 1
        with m.If(wr.valid & wr.ready):
            m.d.sync += [wr.valid.eq(0), st.write_lines.eq(st.write_lines + 1)]
        take = self.data_lines.valid & self.data_lines.ready & busy
        with m.If(take):
            m.d.sync += [got.eq(got + 1), st.read_lines.eq(st.read_lines + 1 + (self.label_lines.valid & busy))]
            with m.If((got & every) == 0):
                m.d.sync += [wr.valid.eq(1), wr.payload.address.eq(cfg.model_addr + got),
                             wr.payload.data.eq(self.data_lines.payload)]
        record = Signal(StatusRecord)  # filled by name; error stays 0
        m.d.comb += [record.state.eq(State.DONE), record.cycles.eq(st.cycles), record.read_lines.eq(st.read_lines),
                     record.write_lines.eq(st.write_lines), record.stall_cycles.eq(st.stall_cycles),
                     record.epochs.eq(1), record.run_id.eq(cfg.run_id)]
        with m.If(busy & (got == rows) & (labels_left == 0) & ~wr.valid & self.write_idle & ~wrote_status):
            m.d.sync += [wr.valid.eq(1), wr.payload.address.eq(cfg.status_addr), wr.payload.data.eq(record.as_value()[:W]),
                         wrote_status.eq(1)]
        with m.If(busy & wrote_status & ~wr.valid & self.write_idle):
            m.d.sync += [st.state.eq(State.DONE), st.epoch.eq(1)]

        m.d.comb += self.flush.eq(self.reset)
        with m.If(self.reset):
            m.d.sync += [st.state.eq(State.IDLE), st.error.eq(0), wr.valid.eq(0)]
        with m.Elif(self.start):
            with m.If(busy):
                m.d.sync += [st.state.eq(State.ERROR), st.error.eq(ErrorCode.START_WHILE_BUSY)]
            with m.Elif(cfg.rows == 0):
                m.d.sync += [st.state.eq(State.ERROR), st.error.eq(ErrorCode.BAD_ROWS)]
            with m.Else():
                m.d.sync += [st.state.eq(State.BUSY), st.error.eq(0), rows.eq(cfg.rows), got.eq(0),
                             labels_left.eq((cfg.rows + 7) >> 3), cmd_sent.eq(0), wrote_status.eq(0),
                             st.cycles.eq(0), st.read_lines.eq(0), st.write_lines.eq(0), st.stall_cycles.eq(0),
                             st.epoch.eq(0)]
        return m


def export_probe(out_dir: Path, *, line_bits: int = 512, lanes: int = 32, max_features: int = 8192) -> Path:
    """The real LowbitAFU shell around :class:`StreamProbeCore`, as ``out_dir/lowbit_afu.v``."""
    from amaranth.back import verilog

    from lowbit_hw.afu import LowbitAFU

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "lowbit_afu.v"
    text = verilog.convert(LowbitAFU(line_bits=line_bits, lanes=lanes, max_features=max_features,
                                     core_factory=StreamProbeCore), name="lowbit_afu")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------ tests
async def stream(tb: TB, rows: int, every_log2: int, seed: int, run_id: int = 9):
    mem = tb.memory
    lb = mem.line_bytes
    rng = np.random.default_rng(seed)
    data = mem.alloc_lines(rows, name="data")
    data.write(rng.integers(0, 256, rows * lb, dtype=np.uint8))
    labels = mem.alloc_lines((rows + 7) // 8, name="labels")
    model = mem.alloc_lines(rows, name="model")
    model.data[:] = 0x5A
    status = mem.alloc_lines(max(1, 64 // lb), name="status")
    for name, value in (("DATA_ADDR", data.line_address), ("LABEL_ADDR", labels.line_address),
                        ("MODEL_ADDR", model.line_address), ("STATUS_ADDR", status.line_address), ("ROWS", rows),
                        ("BITS", every_log2), ("RUN_ID", run_id)):
        await tb.write_reg(name, value)
    c0 = tb.model.cycle
    await tb.ctrl(Ctrl.START)
    st, rec = await tb.wait_end(50_000 + 20 * rows, status, run_id)
    return data, model, st, rec, tb.model.cycle - c0


@cocotb.test()
async def mmio_map_of_the_real_register_block(dut):
    from .test_afu import check_mmio_map

    tb = TB(dut, seed=SEED0)
    await tb.setup()
    await check_mmio_map(tb, dut)


@cocotb.test()
@cocotb.parametrize(seed=[SEED0, SEED0 + 1, SEED0 + 2])
async def shell_delivers_lines_in_order_through_latency_reordering_and_storms(dut, seed):
    tb = TB(dut, seed=seed, storms=StormConfig(rate=0.02, max_len=100))
    await tb.setup()
    rows = 300
    data, model, st, rec, _ = await stream(tb, rows, every_log2=seed % 3, seed=seed)
    assert st["STATE"] == State.DONE, st
    k = 1 << (seed % 3)
    echoed = np.arange(0, rows, k)
    assert (model.lines[echoed] == data.lines[echoed]).all(), "an echoed line is not the line of its index"
    assert rec["read_lines"] == rows + (rows + 7) // 8 == tb.model.read_lines
    assert tb.model.almfull_cycles[0] > 0
    tb.check()


@cocotb.test()
async def shell_read_bandwidth_under_random_latency(dut):
    """The shell's sustained read rate with 100..400-cycle out-of-order latency (no storms)."""
    tb = TB(dut, seed=SEED0, storms=False)
    await tb.setup()
    rows = 4000
    _, _, st, rec, cycles = await stream(tb, rows, every_log2=12, seed=SEED0)
    assert st["STATE"] == State.DONE
    rate = rows / rec["cycles"]
    dut._log.info(f"shell read bandwidth: {rows} data lines (+{(rows + 7) // 8} label lines) in {rec['cycles']} "
                  f"cycles = {rate:.3f} data lines/cycle; max lines in flight {tb.model.max_lines_in_flight}")
    path = os.environ.get("LOWBIT_PROBE_JSON")
    if path:
        import json

        with open(path, "w") as f:
            json.dump(dict(rows=rows, cycles=rec["cycles"], rate=rate, in_flight=tb.model.max_lines_in_flight), f)
    # 32 lanes at b = 8 need 0.5625 lines per cycle; the shell must at least allow that.
    assert rate >= 0.95 * 0.5625, f"shell streams only {rate:.3f} lines/cycle"
    tb.check()


@cocotb.test()
async def reset_during_traffic_drains_and_the_next_stream_is_exact(dut):
    tb = TB(dut, seed=SEED0 + 7)
    await tb.setup()
    mem = tb.memory
    data = mem.alloc_lines(512, name="data")
    for name, value in (("DATA_ADDR", data.line_address), ("LABEL_ADDR", data.line_address),
                        ("MODEL_ADDR", data.line_address), ("STATUS_ADDR", data.line_address), ("ROWS", 512),
                        ("BITS", 15), ("RUN_ID", 1)):
        await tb.write_reg(name, value)
    await tb.ctrl(Ctrl.START)
    await tb.cycles(250)
    await tb.ctrl(Ctrl.START)  # start while busy
    for _ in range(100):
        st = await tb.status()
        if st["STATE"] == State.ERROR:
            break
    assert st["STATE"] == State.ERROR and st["ERROR"] == ErrorCode.START_WHILE_BUSY
    await tb.ctrl(Ctrl.RESET)
    await tb.cycles(600)  # stale responses of the aborted stream arrive now
    assert (await tb.status())["STATE"] == State.IDLE
    d2, model, st, rec, _ = await stream(tb, 64, every_log2=0, seed=SEED0 + 7, run_id=10)
    assert st["STATE"] == State.DONE
    assert (model.data == d2.data).all(), "stale lines of the aborted stream leaked into the next one"
    tb.check()
