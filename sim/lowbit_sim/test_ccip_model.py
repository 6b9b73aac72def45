"""cocotb tests of the CCI-P host model itself, against the DMA TEST DOUBLE (tests/driver_fixtures.py).

The double copies ROWS lines from DATA_ADDR to MODEL_ADDR (4-line reads when BITS = 4) and writes a
status record; it is not the engine. These tests prove the bench's own machinery (latency,
reordering, multi-line reads, almost-full storms, MMIO by tid, stray-address and guard checks)
before it is trusted to judge the real AFU. Run from tests/test_cocotb_afu.py.
"""

from __future__ import annotations

import os

import numpy as np

import cocotb

from lowbit.registers import AFU_ID_H, AFU_ID_L, DFH_VALUE, REG, Ctrl, State

from .afu_tb import TB
from .ccip_model import StormConfig
from .ccip_model import ProtocolError
from .host_memory import AccessError

SEED0 = int(os.environ.get("LOWBIT_SEED0", "0"))


async def copy_run(tb: TB, rows: int, burst: bool, rng: np.random.Generator, dst_guard: int = 4096,
                   dst_lines: int | None = None):
    mem = tb.memory
    lb = mem.line_bytes
    src = mem.alloc_lines(rows, name="src")
    src.write(rng.integers(0, 256, rows * lb, dtype=np.uint8))
    dst = mem.alloc_lines(rows if dst_lines is None else dst_lines, dst_guard, name="dst")
    status = mem.alloc_lines(max(1, 64 // lb), name="status")
    for name, value in (("DATA_ADDR", src.line_address), ("MODEL_ADDR", dst.line_address),
                        ("STATUS_ADDR", status.line_address), ("ROWS", rows), ("BITS", 4 if burst else 1),
                        ("RUN_ID", 77)):
        await tb.write_reg(name, value)
    await tb.ctrl(Ctrl.START)
    st, rec = await tb.wait_end(20_000 + 50 * rows, status, run_id=77)
    return src, dst, st, rec


@cocotb.test()
async def mmio_identifies_the_afu_and_answers_every_read(dut):
    tb = TB(dut, seed=SEED0)
    await tb.setup()
    assert await tb.read_reg("DFH") == DFH_VALUE
    assert await tb.read_reg("AFU_ID_L") == AFU_ID_L
    assert await tb.read_reg("AFU_ID_H") == AFU_ID_H
    for value in (0, (1 << 64) - 1, 0x0123_4567_89AB_CDEF):
        await tb.write_reg("SCRATCH", value)
        assert await tb.read_reg("SCRATCH") == value
    assert await tb.model.mmio_read64(0x0F00) == 0  # an unknown address reads 0 and is answered
    # Many reads in flight at once, each matched to its answer by tid.
    reads = [cocotb.start_soon(tb.model.mmio_read64(a)) for a in (REG["SCRATCH"].address, REG["DFH"].address) * 20]
    got = [await t for t in reads]
    assert got == [0x0123_4567_89AB_CDEF, DFH_VALUE] * 20
    tb.check()


@cocotb.test()
@cocotb.parametrize(burst=[False, True], seed=[SEED0, SEED0 + 1])
async def copies_arrive_intact_through_random_latency_reordering_and_storms(dut, burst, seed):
    tb = TB(dut, seed=seed, storms=StormConfig(rate=0.02, max_len=100))
    await tb.setup()
    rows = 64
    src, dst, st, rec = await copy_run(tb, rows, burst, np.random.default_rng(seed))
    assert st["STATE"] == State.DONE and rec["run_id"] == 77
    assert (dst.data == src.data).all()
    m = tb.model
    assert m.read_lines == rows and m.read_requests == (rows // 4 if burst else rows)
    assert m.max_lines_in_flight > 1
    assert m.almfull_cycles[0] > 0 and m.almfull_cycles[1] > 0, "no almost-full storm happened"
    tb.check()


@cocotb.test()
async def responses_come_back_out_of_order(dut):
    """The double writes each response line where it belongs, so the write ORDER shows the reordering."""
    tb = TB(dut, seed=SEED0, storms=False)
    await tb.setup()
    order = []
    orig = tb.memory.write_line

    def spy(line, data):
        order.append(line)
        return orig(line, data)

    tb.memory.write_line = spy
    src, dst, st, _ = await copy_run(tb, 32, True, np.random.default_rng(SEED0))
    lines = [x - dst.line_address for x in order if dst.line_address <= x < dst.line_address + 32]
    assert sorted(lines) == list(range(32))
    assert lines != sorted(lines), "32 lines with 100-400 cycles of random latency came back in order"
    # lines of one 4-line request too
    assert any(lines.index(4 * k + 1) < lines.index(4 * k) for k in range(8))
    tb.check()


@cocotb.test()
async def a_stray_write_is_caught_and_memory_is_untouched(dut):
    tb = TB(dut, seed=SEED0, read_latency=(5, 20), write_latency=(5, 20))
    await tb.setup()
    # Destination one line short: the AFU's last write lands in the guard band.
    src, dst, st, _ = await copy_run(tb, 8, False, np.random.default_rng(SEED0), dst_guard=64, dst_lines=7)
    assert len(tb.memory.errors) == 1 and tb.memory.errors[0].kind == "write"
    assert tb.memory.errors[0].address == dst.end
    tb.memory.check_guards()  # the write did not land
    try:
        tb.check()
    except AccessError as exc:
        assert f"0x{dst.end:x}" in str(exc)
    else:
        raise AssertionError("check() did not report the stray write")


@cocotb.test()
async def an_unanswered_mmio_read_times_out_instead_of_hanging(dut):
    tb = TB(dut, seed=SEED0, mmio_timeout=50)
    await tb.setup()
    # Hide the AFU's answer: ignore the c2 port by swapping in a never-valid handle.
    from .ccip_model import MmioTimeout

    task_model = tb.model

    class Never:
        value = 0

    task_model.stop()
    task_model._c2tx = (Never(), Never(), Never())
    task_model.start()
    try:
        await task_model.mmio_read64(REG["SCRATCH"].address)
    except MmioTimeout:
        pass
    else:
        raise AssertionError("no MmioTimeout")
    assert any("never answered" in e for e in task_model.errors)
    try:
        task_model.check()
    except ProtocolError:
        pass
    else:
        raise AssertionError("check() did not report the unanswered read")


@cocotb.test()
async def the_almost_full_checker_catches_an_afu_that_ignores_it(dut):
    """The model believes almost-full is up, but the AFU is never shown it: the 9th request is flagged."""
    tb = TB(dut, seed=SEED0, storms=StormConfig(rate=1.0, min_len=100_000, max_len=100_000))
    await tb.setup()

    class Sink:
        value = 0

    tb.model._almfull = (Sink(), Sink())  # the AFU keeps seeing 0
    tb.dut.ccip__c0_tx_almfull.value = 0
    tb.dut.ccip__c1_tx_almfull.value = 0
    await copy_run(tb, 32, False, np.random.default_rng(SEED0))
    assert any("more than 8 read requests after c0_tx_almfull rose" in e for e in tb.model.errors)
    assert any("more than 8 write requests after c1_tx_almfull rose" in e for e in tb.model.errors)
    try:
        tb.model.check()
    except ProtocolError:
        pass
    else:
        raise AssertionError("check() did not report the overrun")
