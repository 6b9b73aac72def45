"""The driver against the simulator process, with the DMA test-double AFU (tests/driver_fixtures.py).

Covers the OPAE-shaped API (open, MMIO by name, shared buffers, start/wait) and every error path:
bad arguments, engine errors, out-of-buffer accesses, a killed / stalled / timed-out simulator,
and that no simulator process outlives its driver.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from driver_fixtures import DOUBLE_MAX_FEATURES, children_of, double_server, pid_alive  # noqa: F401

from lowbit.contract.format import SUPPORTED_LINE_BITS
from lowbit.contract.registers import AFU_ID_L, REG, ErrorCode, State
from lowbit.driver import DeviceError, DeviceTimeout, DriverError, SharedBuffer, SimulatorDied, open_device
from lowbit.contract.simprocess import runtime_dir, start_server


@pytest.fixture
def dev(double_server):
    with open_device("sim", server=double_server, memory=64 << 20) as d:
        yield d


def start_copy(dev, lines: int, *, run_id: int = 5, burst: bool = False):
    """Program the double to copy ``lines`` random lines; returns (src, dst, status) buffers."""
    src = dev.allocate((lines, 64), np.uint8)
    dst = dev.allocate((lines, 64), np.uint8)
    status = dev.allocate(64, np.uint8)
    src[:] = np.random.default_rng(lines).integers(0, 256, src.shape, dtype=np.uint8)
    dev.write_reg("DATA_ADDR", src.line_address)
    dev.write_reg("MODEL_ADDR", dst.line_address)
    dev.write_reg("STATUS_ADDR", status.line_address)
    dev.write_reg("ROWS", lines)
    dev.write_reg("RUN_ID", run_id)
    dev.write_reg("BITS", 4 if burst else 0)  # the double's switch to 4-line read requests
    dev.start()
    return src, dst, status


# ------------------------------------------------------------------------------ API
def test_open_reads_identity_and_caps(dev):
    assert dev.read_reg("AFU_ID_L") == AFU_ID_L
    assert dev.caps["LINE_BITS"] == 512
    assert dev.caps["MAX_FEATURES"] == DOUBLE_MAX_FEATURES
    assert dev.status()["STATE"] == State.IDLE


def test_mmio_by_name_round_trips(dev):
    for value in (0, 1, 0xDEADBEEF_01234567, (1 << 64) - 1):
        dev.write_reg("SCRATCH", value)
        assert dev.read_reg("SCRATCH") == value
    dev.mmio_write64(REG["SCRATCH"].address, 42)
    assert dev.mmio_read64(REG["SCRATCH"].address) == 42
    assert dev.mmio_read64(0x1F8) == 0  # unknown addresses answer 0


@pytest.mark.parametrize("call, match", [
    (lambda d: d.read_reg("NOPE"), "no register named"),
    (lambda d: d.read_reg("CTRL"), "write-only"),
    (lambda d: d.write_reg("STATUS", 1), "read-only"),
    (lambda d: d.write_reg("ROWS", 1 << 32), "32 bits"),
    (lambda d: d.write_reg("ROWS", -1), "does not fit"),
    (lambda d: d.write_reg("ROWS", 1.5), "integer"),
    (lambda d: d.mmio_read64(0x0C4), "8-byte aligned"),
    (lambda d: d.mmio_read64(0x4000), "below"),
    (lambda d: d.mmio_write64(0x0C8, 1 << 64), "unsigned 64-bit"),
    (lambda d: d.allocate(0), "empty"),
    (lambda d: d.allocate((4, -1)), "non-negative"),
    (lambda d: d.free(np.zeros(4)), "not a buffer"),
    (lambda d: d.wait(0), "positive"),
])
def test_bad_arguments_raise_value_error(dev, call, match):
    with pytest.raises(ValueError, match=match):
        call(dev)


def test_allocate_gives_aligned_distinct_io_addresses(dev):
    a = dev.allocate((100,), np.int32)
    b = dev.allocate((3, 64), np.uint8)
    assert a.dtype == np.int32 and a.shape == (100,) and not a.any()
    for buf in (a, b):
        assert buf.io_address % 4096 == 0 and buf.line_address * 64 == buf.io_address
    assert b.io_address >= a.io_address + a.nbytes
    assert a[16:].io_address == a.io_address + 64 and a[16:].line_address == a.line_address + 1
    dev.free(a)
    with pytest.raises(ValueError):
        dev.free(a)
    c = dev.allocate((100,), np.int32)  # the freed hole is reused
    assert c.io_address == a.io_address
    with pytest.raises(MemoryError, match="exhausted"):
        dev.allocate(1 << 30)


def test_dma_through_shared_memory_with_out_of_order_latency(dev):
    src, dst, status = start_copy(dev, 3000, run_id=77)
    rec = dev.wait(30, status_buffer=status, run_id=77)
    assert rec["state"] == State.DONE and rec["run_id"] == 77
    assert rec["read_lines"] == 3000 and rec["write_lines"] == 3001
    np.testing.assert_array_equal(dst, src)
    stats = dev.backend.memory_stats()
    assert stats["lines_read"] == 3000 and stats["almfull_violations"] == 0


def test_multi_line_reads_return_every_line_by_cl_num(dev):
    src, dst, status = start_copy(dev, 4096, burst=True)
    rec = dev.wait(30, status_buffer=status, run_id=5)
    assert rec["read_lines"] == 4096
    np.testing.assert_array_equal(dst, src)
    assert dev.backend.memory_stats()["almfull_violations"] == 0


def test_fixed_latency_memory_model(double_server):
    with open_device("sim", server=double_server, memory=1 << 20, latency=20) as dev:
        src, dst, status = start_copy(dev, 100)
        rec = dev.wait(10, status_buffer=status, run_id=5)
        np.testing.assert_array_equal(dst, src)
        # 8 reads in flight at 20 cycles each: the copy takes about 100 / 8 * 20 cycles.
        assert 100 / 8 * 20 <= rec["cycles"] < 100 / 8 * 20 * 2


def test_engine_error_raises_device_error_with_code(dev):
    dev.write_reg("ROWS", 0)
    dev.start()
    with pytest.raises(DeviceError, match="BAD_ROWS") as info:
        dev.wait(5)
    assert info.value.code is ErrorCode.BAD_ROWS
    dev.reset()
    assert dev.status()["STATE"] == State.IDLE


# ------------------------------------------------------------------------------ isolation
def test_out_of_buffer_read_is_reported_and_touches_nothing(dev):
    canary = dev.allocate((16, 64), np.uint8)
    canary[:] = 0xA5
    dst = dev.allocate((16, 64), np.uint8)
    dst[:] = 0x5A
    status = dev.allocate(64, np.uint8)
    outside = canary.io_address + 64 * 4096  # inside the arena, but in no buffer
    dev.write_reg("DATA_ADDR", outside // 64)
    dev.write_reg("MODEL_ADDR", dst.line_address)
    dev.write_reg("STATUS_ADDR", status.line_address)
    dev.write_reg("ROWS", 16)
    dev.start()
    with pytest.raises(DeviceError, match=f"read from 0x{outside:x}") as info:
        dev.wait(10, status_buffer=status)
    assert info.value.address == outside
    assert (canary == 0xA5).all()
    assert not dev.backend._arena[outside - (1 << 32):][: 16 * 64].any()
    dev.reset()  # clears the record: the device is usable again
    dev.backend.check()


def test_out_of_buffer_write_is_dropped_and_reported(dev):
    src = dev.allocate((8, 64), np.uint8)
    src[:] = 0x11
    canary = dev.allocate((8, 64), np.uint8)
    status = dev.allocate(64, np.uint8)
    outside = status.io_address + 16 * 4096  # in the arena, in no buffer
    dev.write_reg("DATA_ADDR", src.line_address)
    dev.write_reg("MODEL_ADDR", outside // 64)
    dev.write_reg("STATUS_ADDR", status.line_address)
    dev.write_reg("ROWS", 8)
    dev.start()
    with pytest.raises(DeviceError, match="write to 0x") as info:
        dev.wait(10, status_buffer=status)
    # Writes leave in read-completion order (out of order): the first bad one is any of the 8.
    assert outside <= info.value.address < outside + 8 * 64 and info.value.address % 64 == 0
    assert f"0x{info.value.address:x}" in str(info.value)
    assert not canary.any()
    assert not dev.backend._arena[outside - (1 << 32):][: 8 * 64].any()


# ------------------------------------------------------------------------------ process model
def test_socket_is_private(double_server):
    with open_device("sim", server=double_server, memory=1 << 20) as dev:
        path = dev.backend.socket_path
        st = path.stat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        d = path.parent.stat()  # a fresh mkdtemp directory inside the runtime dir, not a fixed name
        assert stat.S_IMODE(d.st_mode) == 0o700 and d.st_uid == os.getuid()
        assert path.parent.parent == runtime_dir() and path.parent.name.startswith("lowbit-")
    assert not path.exists() and not path.parent.exists()  # both removed at close


def test_close_stops_the_server_and_is_idempotent(double_server):
    dev = open_device("sim", server=double_server, memory=1 << 20)
    proc = dev.backend.server.process
    dev.close()
    dev.close()
    assert proc.poll() is not None
    assert not dev.backend.socket_path.exists()
    with pytest.raises(DriverError, match="closed"):
        dev.read_reg("SCRATCH")


def test_killed_simulator_raises_within_bounded_time(double_server):
    others = set(children_of(os.getpid()))  # e.g. multiprocessing's resource tracker
    dev = open_device("sim", server=double_server, memory=64 << 20, latency=100_000)
    proc = dev.backend.server.process
    start_copy(dev, 20000)  # 20000 / 8 in flight * 100k cycles: minutes of simulation
    os.kill(proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(SimulatorDied, match="SIGKILL"):
        dev.wait(30)
    assert time.monotonic() - t0 < 2
    assert dev.closed and proc.poll() is not None
    assert set(children_of(os.getpid())) - others == set()  # no simulator left behind


def test_stalled_simulator_raises_within_io_timeout(double_server):
    others = set(children_of(os.getpid()))  # e.g. multiprocessing's resource tracker
    dev = open_device("sim", server=double_server, memory=1 << 20, io_timeout=0.5)
    proc = dev.backend.server.process
    os.kill(proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(SimulatorDied, match="no answer"):
        dev.read_reg("SCRATCH")
    assert time.monotonic() - t0 < 3
    assert proc.poll() is not None  # killed and reaped, not left stopped
    assert set(children_of(os.getpid())) - others == set()  # no simulator left behind


def test_timeout_raises_and_cleans_up(double_server):
    others = set(children_of(os.getpid()))  # e.g. multiprocessing's resource tracker
    dev = open_device("sim", server=double_server, memory=64 << 20, latency=100_000)
    proc = dev.backend.server.process
    start_copy(dev, 20000)  # 20000 / 8 in flight * 100k cycles: minutes of simulation
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="within 0.3 s"):
        dev.wait(0.3)
    assert time.monotonic() - t0 < 3
    assert dev.closed and proc.poll() is not None
    assert set(children_of(os.getpid())) - others == set()  # no simulator left behind


def test_server_dies_with_its_driver_process(double_server):
    script = textwrap.dedent(f"""
        import sys, time
        from lowbit.driver import open_device
        dev = open_device("sim", server={str(double_server)!r}, memory=1 << 20)
        print(dev.backend.server.pid, flush=True)
        time.sleep(60)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(driver.stdout.readline())
    assert pid_alive(server_pid)
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 3
    while pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(server_pid)


def test_attach_to_a_long_lived_server(double_server):
    server = start_server(double_server, once=False, accept_timeout=0)
    try:
        for value in (1, 2):  # two sessions in a row, each sees a freshly reset AFU
            with open_device("sim", socket=server.socket_path, memory=1 << 20) as dev:
                assert dev.read_reg("SCRATCH") == 0
                dev.write_reg("SCRATCH", value)
                src, dst, status = start_copy(dev, 50)
                dev.wait(10, status_buffer=status, run_id=5)
                np.testing.assert_array_equal(dst, src)
        assert server.alive()
    finally:
        server.stop()
    assert not server.alive()


def test_idle_server_does_not_spin(dev):
    pid = dev.backend.server.pid
    src, dst, status = start_copy(dev, 100)
    dev.wait(10, status_buffer=status, run_id=5)

    def cpu_s():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    time.sleep(0.3)  # past the idle hold-off
    before = cpu_s()
    time.sleep(1.0)
    assert cpu_s() - before < 0.1


def test_an_engine_with_other_fixed_point_formats_is_refused():
    """An engine built from another lowbit (here: e at 2^-15, as before CORR_FRAC = 23) would train
    with a code table it misreads: the Device refuses it at open, naming both formats."""
    from lowbit.driver.backend import Backend
    from lowbit.driver.device import Device
    from lowbit.contract.registers import AFU_ID_H, ARITH_VALUE

    class OldEngine(Backend):
        name = "old-engine"

        def __init__(self):
            self.closed = False
            self.regs = {REG["AFU_ID_L"].address: AFU_ID_L, REG["AFU_ID_H"].address: AFU_ID_H,
                         REG["ARITH"].address: REG["ARITH"].encode(
                             **{**REG["ARITH"].decode(ARITH_VALUE), "CORR_FRAC": 15})}

        def mmio_read64(self, offset):
            return self.regs.get(offset, 0)

        def mmio_write64(self, offset, value):
            self.regs[offset] = value

        def allocate(self, nbytes):
            raise AssertionError("not reached")

        def free(self, io_address):
            pass

        def check(self):
            pass

        def close(self):
            self.closed = True

    backend = OldEngine()
    with pytest.raises(DeviceError, match="'CORR_FRAC': 15.*'CORR_FRAC': 23.*rebuild"):
        Device(backend)
    assert backend.closed


@pytest.mark.parametrize("line_bits", SUPPORTED_LINE_BITS)
def test_line_address_counts_the_devices_own_lines(line_bits):
    """SharedBuffer.line_address divides by LINE_BITS / 8 (it was // 64: wrong below 512 bits)."""
    buf = np.zeros(256, np.uint8).view(SharedBuffer)
    buf.io_address, buf.line_bytes = 1 << 20, line_bits // 8
    assert buf.line_address == (1 << 20) // (line_bits // 8)
    assert buf[line_bits // 8:].line_address == buf.line_address + 1
    with pytest.raises(ValueError, match="not aligned"):
        buf[1:].line_address


def test_a_private_simulator_is_built_without_importing_the_simulator_package(double_server):
    """open_device("sim") builds its private simulator in a child ``python -m lowbit_sim.simserver
    --build-only`` (issue 12: the host imports neither lowbit_sim nor the gateware): here the
    double's Verilog, whose executable the fixture already built, so the child finds it cached."""
    from lowbit_sim.simserver import build_root

    script = textwrap.dedent(f"""
        import sys
        from lowbit.driver import open_device
        with open_device("sim", verilog={str(build_root() / "double" / "lowbit_afu.v")!r}, memory=1 << 20) as dev:
            dev.write_reg("SCRATCH", 77)
            print(dev.read_reg("SCRATCH"), dev.backend.server.process.args[0])
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("lowbit_sim", "lowbit_hw", "amaranth")))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    first, loaded = r.stdout.splitlines()
    assert first == f"77 {double_server}" and loaded == "[]"


def test_a_failed_simulator_build_is_a_driver_error(tmp_path):
    bad = tmp_path / "lowbit_afu.v"
    bad.write_text("module lowbit_afu(input wire clk; endmodule\n")
    with pytest.raises(DriverError, match=r"building the simulator failed \(-m lowbit_sim.simserver --build-only "
                                          r"exited with status 1\): .*(Verilator build|syntax error)"):
        open_device("sim", verilog=bad, memory=1 << 20)
