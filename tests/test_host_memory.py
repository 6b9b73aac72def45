"""The cocotb benches' host memory: guarded, line-aligned buffers and a record of stray accesses."""

import numpy as np
import pytest

from lowbit_sim.host_memory import ALIGN, GUARD_BYTE, AccessError, GuardBandError, HostMemory, PatternMemory, line_value


def test_buffers_are_aligned_zeroed_whole_lines_between_guard_bands():
    mem = HostMemory(line_bytes=64)
    a = mem.alloc(100, name="a")
    b = mem.alloc(64, guard=128, name="b")
    assert a.address % ALIGN == 0 and b.address % ALIGN == 0
    assert a.nbytes == 128 and a.lines.shape == (2, 64)
    assert not a.data.any()
    assert (a.backing[: a.guard] == GUARD_BYTE).all() and (a.backing[-a.guard :] == GUARD_BYTE).all()
    assert b.address >= a.end + a.guard + b.guard  # guard bands never overlap a neighbour
    assert a.line_address * 64 == a.address
    mem.check()


def test_address_zero_is_unmapped():
    mem = HostMemory()
    mem.alloc(64)
    assert mem.read_line(0) == bytes(64)
    assert mem.errors and mem.errors[0].address == 0 and mem.errors[0].kind == "read"
    with pytest.raises(AccessError, match="0x0 is outside"):
        mem.check()


def test_line_reads_and_writes_round_trip_as_bytes_and_ints():
    mem = HostMemory(line_bytes=64)
    r = mem.alloc(4 * 64)
    pattern = np.arange(256, dtype=np.uint8)
    r.write(pattern)
    assert mem.read_line(r.line_address + 1) == bytes(range(64, 128))
    value = (1 << 511) | 0x1234
    assert mem.write_line_int(r.line_address + 3, value)
    assert mem.read_line_int(r.line_address + 3) == value
    assert r.lines[3, 0] == 0x34 and r.lines[3, 63] == 0x80
    assert mem.lines_read == 2 and mem.lines_written == 1
    mem.check()


def test_stray_write_is_recorded_and_touches_nothing():
    mem = HostMemory(line_bytes=64)
    r = mem.alloc(64, guard=256)
    before = r.backing.copy()
    assert not mem.write_line(r.line_address + 1, bytes([0x55]) * 64)  # just past the end: in the guard band
    assert not mem.write_line(r.line_address - 1, bytes(64))  # just before the start
    assert (r.backing == before).all()
    assert [e.kind for e in mem.errors] == ["write", "write"]
    assert mem.errors[0].address == r.end
    mem.check_guards()  # untouched
    with pytest.raises(AccessError, match=f"0x{r.end:x}"):
        mem.check()


def test_changed_guard_byte_is_reported_with_its_address():
    mem = HostMemory(line_bytes=64)
    r = mem.alloc(128, guard=64, name="model")
    r.backing[r.guard + r.nbytes + 5] = 0  # a host-side overrun 5 bytes past the end
    with pytest.raises(GuardBandError, match=f"model.*0x{r.end + 5:x}"):
        mem.check_guards()
    r.backing[r.guard + r.nbytes + 5] = GUARD_BYTE
    r.backing[r.guard - 1] = 1  # the byte just before the start
    with pytest.raises(GuardBandError, match=f"0x{r.address - 1:x}"):
        mem.check_guards()


def test_freed_buffer_is_no_longer_mapped():
    mem = HostMemory(line_bytes=32)
    r = mem.alloc(32)
    mem.free(r)
    mem.read_line(r.line_address)
    assert mem.errors[0].kind == "read"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="line_bytes"):
        HostMemory(line_bytes=48)
    mem = HostMemory()
    for n in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="nbytes"):
            mem.alloc(n)
    with pytest.raises(ValueError, match="guard"):
        mem.alloc(64, guard=10)
    r = mem.alloc(64)
    with pytest.raises(ValueError, match="do not fit"):
        r.write(np.zeros(65, np.uint8))


def test_a_buffer_placed_at_a_chosen_line_and_inside():
    mem = HostMemory(line_bytes=8)
    r = mem.alloc_lines(10, guard=16, name="data", line=0x1000)
    assert r.line_address == 0x1000 and mem.inside(0x1000, 10) and not mem.inside(0x1009, 2)
    assert not mem.inside(0xFFF) and mem.alloc_lines(1).address > r.end  # later buffers go after it
    for line, guard in ((0x1009, 0), (0x1000 - 2, 8), (0, 0)):
        with pytest.raises(ValueError, match="cannot place"):
            mem.alloc_lines(2, guard=guard, line=line)
    with pytest.raises(ValueError, match="cannot place"):
        mem.alloc(8, guard=0, address=0x8004)  # not line aligned


def test_pattern_memory_reads_every_line_and_keeps_writes():
    mem = PatternMemory(128, salt=3)
    assert mem.read_line_int(7) == line_value(7, 128, 3) != line_value(8, 128, 3)
    assert mem.read_line_int(7) != line_value(7, 128, 0) and line_value(7, 128, 3) < 1 << 128
    mem.write_line_int(7, 42)
    assert mem.read_line_int(7) == 42 and mem.written == {7: 42}
