"""The ``serial`` backend: the ULX3S board over its USB serial port (docs/board.md).

The board's :class:`lowbit_hw.board.bridge.SerialBridge` plays CCI-P's host towards the AFU and
forwards everything over the byte protocol of :mod:`lowbit.contract.serial`; this backend is the
other end. It owns host memory (one NumPy arena, buffers carved out of it) and a service thread
that answers the board: ``B_READ_REQ`` -> ``H_READ_DATA`` frames with the lines, ``B_WRITE_REQ`` ->
the line stored and ``H_WRITE_ACK``, ``B_MMIO_DATA`` -> the waiting :meth:`mmio_read64`. An access
outside every allocated buffer touches nothing (reads are answered with zeros, writes dropped,
both acknowledged so the AFU never hangs) and is reported by :meth:`check`, as are frames the
board refused (``B_NAK``) and corrupted frames from the board.

The transport is pluggable: :class:`PySerialTransport` for the real port (pyserial), and any
object with ``write(bytes)``, ``read(max_bytes, timeout) -> bytes`` and ``close()`` — the tests use
a simulated board top speaking the same bytes (tests/board_fixtures.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ..contract.ccip import MMIO_TID_MASK
from ..extras import require
from .backend import Backend, HostArena
from .errors import DeviceError, DriverError, SimulatorDied

#: IO address of the arena's first byte (address 0 is never a valid buffer).
ARENA_IO_BASE = 1 << 32
ALIGN = 4096


class PySerialTransport:
    """The board's USB serial port through pyserial (8N1, no flow control)."""

    def __init__(self, port: str, baud: int):
        require("board", "the serial backend's USB port", modules=("serial",))
        import serial

        try:
            self.port = serial.Serial(port, baudrate=baud, timeout=0.05)
        except (OSError, ValueError) as exc:
            raise DriverError(f"cannot open serial port {port!r}: {exc}") from None

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self.port.timeout = timeout
        return self.port.read(max(1, min(max_bytes, self.port.in_waiting or 1)))

    def close(self) -> None:
        self.port.close()


class SerialBackend(Backend):
    """Drive the board (or a simulated board) over the serial byte protocol.

    Parameters
    ----------
    port : str, optional
        Serial device (e.g. ``/dev/ttyUSB0``); ignored when ``transport`` is given.
    transport : object, optional
        A ready transport (``write``, ``read``, ``close``).
    line_bits : int
        The board AFU's line width (hw/lowbit_hw/board/ulx3s_85f.toml; checked against CAPS by the Device).
    baud : int
        UART rate of the board build.
    memory : int
        Bytes of host memory the board may use.
    io_timeout : float
        Seconds an MMIO read may take before the board counts as dead.
    """

    name = "serial"
    alignment = ALIGN

    def __init__(self, port: str | None = None, *, transport=None, line_bits: int = 64, baud: int = 1_000_000,
                 memory: int = 64 << 20, io_timeout: float = 5.0):
        from lowbit.contract import serial as proto

        self._p = proto
        self.line_bytes = proto.check_line_bytes(line_bits // 8)
        self._heap = HostArena(memory, ALIGN)
        if transport is None:
            if port is None:
                raise ValueError("give the serial port (e.g. port='/dev/ttyUSB0') or a transport")
            transport = PySerialTransport(port, baud)
        self.transport = transport
        self.io_timeout = float(io_timeout)
        self.arena = np.zeros(memory, dtype=np.uint8)
        self._lock = threading.Lock()  # transport writes and shared state
        self._answers: dict[int, int] = {}
        self._answered = threading.Condition(self._lock)
        self._tid = 0
        self._bad: list[tuple[str, int]] = []
        self._naks: list[int] = []
        self._garbled = 0
        self._failure: BaseException | None = None
        self._closed = False
        self.lines_read = self.lines_written = 0
        self._thread = threading.Thread(target=self._serve, name="lowbit-serial", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ service thread
    def _send(self, data: bytes) -> None:
        try:
            self.transport.write(data)
        except OSError as exc:  # a pulled cable, a closed port
            raise SimulatorDied(f"the serial link failed: {exc}") from None

    def _serve(self) -> None:
        p, lb = self._p, self.line_bytes
        inbox = bytearray()
        try:
            while not self._closed:
                chunk = self.transport.read(4096, 0.02)
                if not chunk:
                    continue
                inbox += chunk
                frames, errors = p.parse_frames(inbox, lb)
                with self._lock:
                    self._garbled += errors
                    for ftype, pl in frames:
                        if ftype == p.B_MMIO_DATA:
                            tid, value = p.decode_mmio_data(pl)
                            self._answers[tid] = value
                            self._answered.notify_all()
                        elif ftype == p.B_READ_REQ:
                            line, n, md = p.decode_read_req(pl)
                            for k in range(n):
                                off = (line + k) * lb - ARENA_IO_BASE
                                if off >= 0 and self._heap.inside(off, lb):
                                    data = self.arena[off: off + lb].tobytes()
                                else:
                                    self._bad.append(("read from", (line + k) * lb))
                                    data = bytes(lb)
                                self._send(p.read_data_frame(md, k, data))
                                self.lines_read += 1
                        elif ftype == p.B_WRITE_REQ:
                            line, md, data = p.decode_write_req(pl)
                            off = line * lb - ARENA_IO_BASE
                            if off >= 0 and self._heap.inside(off, lb):
                                self.arena[off: off + lb] = np.frombuffer(data, np.uint8)
                            else:
                                self._bad.append(("write to", line * lb))
                            self._send(p.write_ack_frame(md))
                            self.lines_written += 1
                        elif ftype == p.B_NAK:
                            self._naks.append(pl[0])
        except BaseException as exc:  # the transport died: every waiter must learn it
            with self._lock:
                self._failure = exc
                self._answered.notify_all()

    # ------------------------------------------------------------------ Backend
    def _alive(self):
        if self._closed:
            raise DriverError("the serial backend is closed")
        if self._failure is not None:
            raise SimulatorDied(f"the serial link failed: {self._failure!r}")

    def mmio_write64(self, offset: int, value: int) -> None:
        self._alive()
        with self._lock:
            self._send(self._p.mmio_write_frame(offset, value))

    def mmio_read64(self, offset: int) -> int:
        self._alive()
        with self._lock:
            self._tid = self._tid % MMIO_TID_MASK + 1  # 1..511: the AFU echoes MMIO_TID_BITS-bit tids
            tid = self._tid
            self._answers.pop(tid, None)
            self._send(self._p.mmio_read_frame(offset, tid))
            deadline = time.monotonic() + self.io_timeout
            while tid not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._failure is not None:
                    break
                self._answered.wait(left)
            if tid not in self._answers:
                if self._failure is not None:
                    raise SimulatorDied(f"the serial link failed: {self._failure!r}")
                raise DeviceError(f"the board did not answer the MMIO read at 0x{offset:x} within "
                                  f"{self.io_timeout:g} s (NAKs seen: {self._naks})")
            return self._answers.pop(tid)

    def allocate(self, nbytes: int) -> tuple[np.ndarray, int]:
        with self._lock:
            off = self._heap.alloc(nbytes)
            view = self.arena[off : off + self._heap.regions[off]]
            view[:] = 0
        return view, ARENA_IO_BASE + off

    def free(self, io_address: int) -> None:
        with self._lock:
            self._heap.release(io_address - ARENA_IO_BASE)

    def check(self) -> None:
        self._alive()
        with self._lock:
            if self._bad:
                kind, addr = self._bad[0]
                raise DeviceError(f"the AFU tried to {kind} 0x{addr:x}, outside every allocated buffer "
                                  f"({len(self._bad)} such line access(es); nothing was touched)", address=addr)
            if self._naks:
                raise DeviceError(f"the board refused {len(self._naks)} frame(s) (NAK reasons {self._naks[:8]})")
            if self._garbled:
                raise DeviceError(f"{self._garbled} corrupted frame(s) arrived from the board")

    def clear_errors(self) -> None:
        with self._lock:
            self._bad.clear()
            self._naks.clear()
            self._garbled = 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._thread.join(timeout=2.0)
        try:
            self.transport.close()
        except Exception:
            pass
