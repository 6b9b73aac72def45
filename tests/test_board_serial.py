"""The host driver's ``serial`` backend against a simulated board top, over the real byte protocol:
open (UUID, CAPS), MMIO, a training run bit-identical to the golden model, out-of-buffer access,
refused frames, and a link that dies."""

import numpy as np
import pytest

from board_fixtures import SimulatedBoard
from driver_fixtures import make_dataset
from lowbit.contract import serial as P
from lowbit.driver import Device
from lowbit.driver.errors import DeviceError, SimulatorDied
from lowbit.driver.serial import ARENA_IO_BASE, SerialBackend
from lowbit.driver.train import train, train_golden

W = 64


@pytest.fixture
def board():
    b = SimulatedBoard(line_bits=W, lanes=2, max_features=64, read_depth=16)
    yield b
    b.close()


def open_board(board, **kw):
    return Device(SerialBackend(transport=board, line_bits=W, io_timeout=kw.pop("io_timeout", 20.0), **kw))


def test_open_reads_identity_and_caps_and_mmio_round_trips(board):
    with open_board(board) as dev:
        assert (dev.caps["LINE_BITS"], dev.caps["LANES"], dev.caps["MAX_FEATURES"]) == (W, 2, 64)
        dev.write_reg("SCRATCH", 0xFEED_F00D_1234_5678)
        assert dev.read_reg("SCRATCH") == 0xFEED_F00D_1234_5678
        dev.check()


def test_training_over_serial_equals_the_golden_model(board):
    qds = make_dataset(6, 10, bits=4, copies=2, seed=3, line_bits=W)
    with open_board(board) as dev:
        res = train(dev, qds, step=0.02, batch=3, epochs=2, progress=False, timeout_s=300)
        dev.check()
    gold = train_golden(qds, step=0.02, batch=3, epochs=2)
    np.testing.assert_array_equal(res.models, gold.models)
    assert res.losses == gold.losses and res.backend == "serial"
    assert res.cycles > 0 and res.read_lines >= 2 * qds.fmt.lines_per_copy(qds.rows)


def test_an_access_outside_the_buffers_is_reported_and_touches_nothing(board):
    with open_board(board) as dev:
        buf = dev.allocate((64,), np.uint8)
        buf[:] = 7
        # A one-row "run" whose data address points past every buffer: the AFU reads there.
        assert buf.line_address * (W // 8) == buf.io_address  # line addresses in the engine's own lines
        stray = (buf.line_address + 10_000) * (W // 8)  # byte address of the data the AFU will read
        heap = dev.backend._heap
        assert not any(off <= stray - ARENA_IO_BASE < off + size for off, size in heap.regions.items())
        dev.write_reg("DATA_ADDR", buf.line_address + 10_000)
        for name, v in (("LABEL_ADDR", buf.line_address), ("MODEL_ADDR", buf.line_address),
                        ("STATS_ADDR", buf.line_address), ("STATUS_ADDR", buf.line_address), ("ROWS", 1),
                        ("FEATURES", 1), ("BITS", 1), ("BATCH", 1), ("EPOCHS", 1), ("COPIES", 1), ("STEP", 1)):
            dev.write_reg(name, v)
        dev.start()
        with pytest.raises(DeviceError, match="outside every allocated buffer") as err:
            dev.wait(60, status_buffer=buf)
        assert err.value.address == stray  # the access reported is the one this test made stray


def test_a_refused_frame_is_reported(board):
    backend = SerialBackend(transport=board, line_bits=W, io_timeout=20.0)
    try:
        bad = bytearray(P.frame(P.H_MMIO_WRITE, bytes(10)))
        bad[-1] ^= 0xFF
        board.write(bytes(bad))
        backend.mmio_read64(0)  # a round trip: the NAK has arrived by the time the answer has
        with pytest.raises(DeviceError, match="refused"):
            backend.check()
        backend.clear_errors()
        backend.check()
    finally:
        backend.close()


def test_a_dead_link_raises_instead_of_hanging(board):
    backend = SerialBackend(transport=board, line_bits=W, io_timeout=2.0)
    try:
        board.unplug()
        with pytest.raises((SimulatorDied, DeviceError)):
            backend.mmio_read64(0)
    finally:
        backend.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="serial port"):
        SerialBackend()
    with pytest.raises(ValueError, match="line_bytes"):
        SerialBackend(transport=object(), line_bits=96)
