"""Test fixtures for the driver: a small AFU TEST DOUBLE (not the engine) and helpers.

:class:`DmaTestAFU` speaks CCI-P like the real ``lowbit_hw.afu.LowbitAFU`` and answers the
identification registers, SCRATCH, STATUS and the counters from the real register map, but instead
of training it copies ``ROWS`` lines from ``DATA_ADDR`` to ``MODEL_ADDR`` and then writes a status
record to ``STATUS_ADDR``. It exists so the simulator harness, the memory model and the driver's
error paths can be tested with a seconds-long Verilator build, independent of the engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amaranth import Module, Mux, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from lowbit.contract.registers import REG, ErrorCode, State
from lowbit_hw.ccip import CcipSignature
from lowbit_hw.interfaces import StatusRecord
from lowbit_hw.shell.csr import ro_constants

#: CAPS the double reports (LANES 0 marks it as not an engine).
DOUBLE_MAX_FEATURES = 1024
#: Reads the double keeps in flight (<= CCI-P's almost-full slack, so writes never overrun).
DOUBLE_OUTSTANDING = 8


class DmaTestAFU(wiring.Component):
    """CCI-P AFU test double: MMIO registers plus a line-copy DMA.

    Parameters
    ----------
    line_bits : int
        CCI-P data width (512 on CCI-P).
    """

    def __init__(self, line_bits: int = 512):
        self.line_bits = line_bits
        super().__init__({"ccip": Out(CcipSignature(line_bits))})

    def elaborate(self, platform):
        m = Module()
        c = self.ccip
        W = self.line_bits
        # The build constants (DFH, AFU_ID, CAPS, ARITH) exactly as the engine's RegisterBlock has them
        constants = ro_constants(line_bits=W, lanes=0, max_features=DOUBLE_MAX_FEATURES)
        regs = {n: Signal(64, name=n.lower()) for n in
                ("SCRATCH", "DATA_ADDR", "MODEL_ADDR", "STATUS_ADDR", "ROWS", "RUN_ID", "BITS")}
        state = Signal(2)
        error = Signal(8)
        cycles = Signal(64)
        read_lines = Signal(64)
        write_lines = Signal(64)
        issued = Signal(32)  # reads issued
        written = Signal(32)  # write responses received
        outstanding = Signal(range(DOUBLE_OUTSTANDING + 8))
        status_sent = Signal()

        # ---- MMIO: answer every read one cycle later, unknown addresses with 0.
        byte_addr = Signal(16)
        m.d.comb += byte_addr.eq(c.c0_rx.mmio_address << 2)
        rd_data = Signal(64)
        with m.Switch(byte_addr):
            for name, value in constants.items():
                with m.Case(REG[name].address):
                    m.d.comb += rd_data.eq(value)
            for name, sig in regs.items():
                with m.Case(REG[name].address):
                    m.d.comb += rd_data.eq(sig)
            with m.Case(REG["STATUS"].address):
                m.d.comb += rd_data.eq(state | (error << 8)
                                       | (Mux(state == State.DONE, 1, 0) << 16))
            for name, sig in (("CYCLES", cycles), ("READ_LINES", read_lines), ("WRITE_LINES", write_lines)):
                with m.Case(REG[name].address):
                    m.d.comb += rd_data.eq(sig)
        m.d.sync += [c.c2_tx.mmio_rd_valid.eq(c.c0_rx.mmio_rd_valid), c.c2_tx.tid.eq(c.c0_rx.mmio_tid),
                     c.c2_tx.data.eq(rd_data)]

        start = Signal()
        reset = Signal()
        with m.If(c.c0_rx.mmio_wr_valid):
            with m.Switch(byte_addr):
                for name, sig in regs.items():
                    with m.Case(REG[name].address):
                        m.d.sync += sig.eq(c.c0_rx.data[:64])
                with m.Case(REG["CTRL"].address):
                    m.d.comb += [start.eq(c.c0_rx.data[0]), reset.eq(c.c0_rx.data[1])]

        # ---- DMA: keep <= DOUBLE_OUTSTANDING lines in flight; each response line becomes one write.
        # BITS == 4 selects 4-line read requests (cl_len 3; ROWS a multiple of 4, DATA_ADDR aligned),
        # to exercise the memory model's multi-line reads and cl_num.
        busy = state == State.BUSY
        burst = regs["BITS"] == 4
        n = Mux(burst, 4, 1)
        m.d.sync += [c.c0_tx.valid.eq(0), c.c1_tx.valid.eq(0)]
        can_read = (busy & (issued < regs["ROWS"][:32]) & ~c.c0_tx_almfull & ~c.c1_tx_almfull
                    & (outstanding + n <= DOUBLE_OUTSTANDING))
        got = c.c0_rx.rsp_valid & busy
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.sync += outstanding.eq(outstanding + Mux(can_read, n, 0) - got)
        with m.If(can_read):
            m.d.sync += [c.c0_tx.valid.eq(1), c.c0_tx.cl_len.eq(Mux(burst, 3, 0)),
                         c.c0_tx.address.eq(regs["DATA_ADDR"] + issued), c.c0_tx.mdata.eq(issued[:16]),
                         issued.eq(issued + n)]
        with m.If(got):
            m.d.sync += [c.c1_tx.valid.eq(1), c.c1_tx.sop.eq(1), c.c1_tx.cl_len.eq(0),
                         c.c1_tx.address.eq(regs["MODEL_ADDR"] + c.c0_rx.mdata + c.c0_rx.cl_num), c.c1_tx.mdata.eq(0),
                         c.c1_tx.data.eq(c.c0_rx.data), read_lines.eq(read_lines + 1),
                         write_lines.eq(write_lines + 1)]
        with m.If(c.c1_rx.rsp_valid & busy):
            with m.If(status_sent):
                m.d.sync += state.eq(State.DONE)
            with m.Else():
                m.d.sync += written.eq(written + 1)
        record = Signal(StatusRecord)  # filled by name; error and stall_cycles stay 0
        m.d.comb += [record.state.eq(State.DONE), record.cycles.eq(cycles), record.read_lines.eq(read_lines),
                     record.write_lines.eq(write_lines + 1), record.epochs.eq(1), record.run_id.eq(regs["RUN_ID"])]
        with m.If(busy & ~status_sent & (written == regs["ROWS"][:32]) & ~got & ~c.c1_tx_almfull):
            m.d.sync += [c.c1_tx.valid.eq(1), c.c1_tx.sop.eq(1), c.c1_tx.cl_len.eq(0),
                         c.c1_tx.address.eq(regs["STATUS_ADDR"]), c.c1_tx.mdata.eq(1),
                         c.c1_tx.data.eq(record.as_value()[:W]), status_sent.eq(1)]

        with m.If(reset):
            m.d.sync += [state.eq(State.IDLE), error.eq(0), outstanding.eq(0)]
        with m.Elif(start):
            with m.If(busy):
                m.d.sync += [state.eq(State.ERROR), error.eq(ErrorCode.START_WHILE_BUSY)]
            with m.Elif(regs["ROWS"] == 0):
                m.d.sync += [state.eq(State.ERROR), error.eq(ErrorCode.BAD_ROWS)]
            with m.Else():
                m.d.sync += [state.eq(State.BUSY), error.eq(0), issued.eq(0), written.eq(0), cycles.eq(0),
                             read_lines.eq(0), write_lines.eq(0), status_sent.eq(0), outstanding.eq(0)]
        return m


def export_double(out_dir: Path, line_bits: int = 512) -> Path:
    """Write the double's Verilog (top ``lowbit_afu``, like the real AFU) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "lowbit_afu.v"
    text = verilog.convert(DmaTestAFU(line_bits), name="lowbit_afu")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------ datasets
def make_dataset(rows: int, features: int, *, bits: int, copies: int = 2, seed: int = 0, line_bits: int = 512,
                 layout: str = "planes"):
    """A synthetic least-squares problem (``lowbit.data.engine_problem``), quantized with double
    sampling, in the ``layout`` of the engine it is for."""
    from lowbit.data import engine_problem
    from lowbit.dataset import QuantizedDataset

    X, y = engine_problem(rows, features, seed=seed)
    return QuantizedDataset.build(X, y, bits=bits, levels="uniform", copies=copies, seed=seed, line_bits=line_bits,
                                  layout=layout)


# ------------------------------------------------------------------------------ pytest fixtures
import pytest  # noqa: E402

#: The moderate real-AFU configuration the tests build (the full 512/32/8192 one is for bench/).
TEST_AFU = dict(line_bits=512, lanes=8, max_features=1024)


#: A small build of the woven core: 4 rows per 128-bit line, as the cocotb woven bench's. The suite's
#: sim-backend runs of what only the woven core has (BUILT.NONLINEAR, RESUME) use it, without
#: building the 512-bit woven engine.
WOVEN_TEST_AFU = dict(line_bits=128, lanes=32, max_features=256, core="woven", read_depth=256)


@pytest.fixture(scope="session")
def woven_server():
    """Path of the simulator server built around the real AFU with the woven core (cached)."""
    from lowbit_sim.simserver import build_afu_server

    return build_afu_server(**WOVEN_TEST_AFU)


@pytest.fixture(scope="session")
def double_server(tmp_path_factory):
    """Path of the simulator server built around the DMA test double (cached in build/simserver)."""
    from lowbit_sim.simserver import build_root, build_server

    return build_server(export_double(build_root() / "double"))


@pytest.fixture(scope="session")
def afu_server():
    """Path of the simulator server built around the real AFU at :data:`TEST_AFU` (cached)."""
    from lowbit_sim.simserver import build_afu_server

    return build_afu_server(**TEST_AFU)


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc), to prove no simulator is left behind."""
    import os

    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d))
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
