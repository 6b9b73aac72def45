"""CcipHost on its own, no simulator: what every bench's host model promises."""

import pytest

from lowbit.contract.ccip import ALMOST_FULL_SLACK, C1_REQ_WRFENCE, MMIO_TID_MASK
from lowbit_sim.ccip_host import CcipHost, ProtocolError, StormConfig
from lowbit_sim.host_memory import HostMemory, PatternMemory, line_value


def drain(host, cycles=1000):
    """Advance until idle; returns the read lines and write acks in the order they came."""
    reads, acks = [], []
    for _ in range(cycles):
        out = host.advance()
        if out.read is not None:
            reads.append((host.cycle, out.read))
        if out.write_ack is not None:
            acks.append(out.write_ack)
        if host.idle:
            break
    return reads, acks


def test_reads_answer_every_line_once_within_the_latency_out_of_order():
    host = CcipHost(PatternMemory(64), seed=1, read_latency=(10, 40))
    for k in range(16):
        assert host.read_request(3, 4 * k, mdata=k)
    reads, _ = drain(host)
    got = [(r.mdata, r.cl_num) for _, r in reads]
    assert sorted(got) == [(k, i) for k in range(16) for i in range(4)] and got != sorted(got)
    assert all(r.data == line_value(4 * r.mdata + r.cl_num, 64) for _, r in reads)
    assert 10 <= reads[0][0] and reads[-1][0] <= 40 + 64  # one line a cycle: 64 lines take >= 64 cycles
    assert host.max_lines_in_flight == 64 and host.read_lines == 64


def test_a_write_lands_at_its_acknowledgement():
    mem = HostMemory(line_bytes=64)
    buf = mem.alloc_lines(1)
    host = CcipHost(mem, write_latency=(5, 5))
    assert host.write_request(1, 0, buf.line_address, 7, 0x1234)
    for _ in range(4):
        host.advance()
        assert mem.read_line_int(buf.line_address) == 0
    assert host.advance().write_ack == 7 and mem.read_line_int(buf.line_address) == 0x1234


def test_a_write_fence_orders_later_writes_behind_earlier_ones():
    """The status record written behind a fence never lands before the data it announces, and
    the fence is answered only after every earlier write (each with one response)."""
    for seed in range(20):
        mem = HostMemory(line_bytes=64)
        buf = mem.alloc_lines(9)
        host = CcipHost(mem, seed=seed, write_latency=(10, 200))
        order = []
        for i in range(8):
            host.write_request(1, 0, buf.line_address + i, i, 100 + i)
        host.write_request(1, 0, 0, 99, 0, req_type=C1_REQ_WRFENCE)
        host.write_request(1, 0, buf.line_address + 8, 8, 108)  # the "status"
        for _ in range(1000):
            out = host.advance()
            if out.write_ack is not None:
                order.append(out.write_ack)
                if out.write_ack == 8:  # when the status lands, every data line has landed
                    assert [mem.read_line_int(buf.line_address + i) for i in range(8)] == [100 + i for i in range(8)]
            if host.idle:
                break
        assert sorted(order[:8]) == list(range(8)) and order[8:] == [99, 8], order
        assert host.write_lines == 9 and host.write_fences == 1 and not host.errors
    # without the fence, the same writes land in another order for some seed (the control)
    disorder = []
    for seed in range(20):
        host = CcipHost(PatternMemory(64), seed=seed, write_latency=(10, 200))
        for i in range(9):
            host.write_request(1, 0, i, i, 0)
        disorder.append(drain(host)[1][-1] != 8)
    assert any(disorder)


def test_illegal_requests_are_flagged():
    mem = HostMemory(line_bytes=64)
    buf = mem.alloc_lines(8)
    host = CcipHost(mem)
    assert not host.read_request(2, buf.line_address, 0)  # reserved cl_len
    assert not host.read_request(1, buf.line_address + 1, 0)  # misaligned
    assert not host.read_request(3, buf.line_address + 8, 0)  # outside the buffer
    assert not host.write_request(0, 0, buf.line_address, 0, 0)  # not SOP
    assert not host.mmio_response(5, 0)  # nobody asked
    assert not host.write_request(1, 0, buf.line_address, 0, 0, req_type=6)  # an interrupt: not ours
    assert len(host.errors) == 5  # the stray read is the memory's to report
    with pytest.raises(ProtocolError, match="reserved cl_len"):
        host.check()
    with pytest.raises(ProtocolError, match="not aligned"):
        CcipHost(PatternMemory(64), strict=True).read_request(3, 2, 0)


def test_the_slack_after_almost_full():
    host = CcipHost(PatternMemory(64))
    host.set_almfull(0, 1)
    verdicts = [host.read_request(0, i, 0) for i in range(ALMOST_FULL_SLACK + 3)]
    assert verdicts == [True] * ALMOST_FULL_SLACK + [False] * 3 and len(host.errors) == 1
    host.set_almfull(0, 0)
    host.set_almfull(0, 1)  # a new storm: the count starts again
    assert all(host.read_request(0, i, 0) for i in range(ALMOST_FULL_SLACK))


def test_storms_come_and_go():
    host = CcipHost(PatternMemory(64), seed=3, c0_storms=StormConfig(rate=0.05, max_len=20))
    levels = [host.advance().almfull[0] for _ in range(2000)]
    assert 0 < sum(levels) < 2000 and host.almfull_cycles[0] >= sum(levels)
    assert not any(host.advance().almfull[1] for _ in range(100))  # no storms asked for on c1


def test_mmio_by_tid_wraps_and_expires():
    host = CcipHost(PatternMemory(64), mmio_timeout=3)
    host.mmio_write(0x18, 5)
    read = host.mmio_read(0x20)
    assert host.advance().mmio.kind == "w"
    out = host.advance().mmio
    assert (out.kind, out.address, out.tid) == ("r", 0x20, read.tid)
    assert host.mmio_response(read.tid, 99) and read.value == 99 and read.latency == 1
    tids = []
    for _ in range(MMIO_TID_MASK + 2):
        r = host.mmio_read(0)
        host.advance()
        host.mmio_response(r.tid, 0)
        tids.append(r.tid)
    assert max(tids) == MMIO_TID_MASK and tids[-2:] == [0, 1]
    lost = host.mmio_read(0x8)
    for _ in range(5):
        host.advance()
    assert lost.done and lost.value is None and "never answered" in host.errors[-1]
    with pytest.raises(ValueError, match="aligned"):
        host.mmio_read(0x4)
    assert host.mmio_read(0x4, length=4).tid >= 0


def test_the_model_and_its_amaranth_adapter_import_no_simulator():
    import subprocess
    import sys

    code = ("import sys, lowbit_sim.ccip_host, lowbit_sim.ccip_amaranth; "
            "print(sorted(m for m in ('amaranth', 'cocotb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
