"""An open device: OPAE's flow (open, map MMIO, allocate shared buffers, start, poll) over a backend."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from lowbit.contract.format import RECORD_BYTES, STATUS_RECORD, unpack_record
from lowbit.contract.registers import (
    AFU_ID_H,
    AFU_ID_L,
    AFU_UUID,
    ARITH_VALUE,
    BUILT_ALL,
    MMIO_SPAN,
    REG,
    Access,
    Built,
    Ctrl,
    ErrorCode,
    State,
)

from .. import interrupts
from .backend import Backend, check_mmio_offset, check_u64
from .errors import DeviceError, DeviceTimeout, DriverError, SimulatorDied


class SharedBuffer(np.ndarray):
    """A NumPy array in device-visible host memory that knows its IO address.

    Attributes
    ----------
    io_address : int
        Byte address of the array's first element as the device sees it. Contiguous views and
        slices keep a correct ``io_address`` (computed from their offset into the parent).
    line_address : int
        ``io_address // line_bytes``: what the engine's ``*_ADDR`` registers take (line addresses;
        ``line_bytes`` is the device's ``LINE_BITS / 8``: 64 on a 512-bit CCI-P engine, 8 on the
        board's 64-bit one).
    """

    io_address: int
    line_bytes: int = 64

    def __array_finalize__(self, obj):
        self.line_bytes = getattr(obj, "line_bytes", 64)
        base_io = getattr(obj, "io_address", None)
        if base_io is None or not isinstance(obj, np.ndarray):
            self.io_address = None
            return
        self.io_address = base_io + (self.__array_interface__["data"][0] - obj.__array_interface__["data"][0])

    @property
    def line_address(self) -> int:
        if self.io_address is None:
            raise ValueError("this array is not in device memory")
        if self.io_address % self.line_bytes:
            raise ValueError(f"io_address 0x{self.io_address:x} is not aligned to a {self.line_bytes}-byte line")
        return self.io_address // self.line_bytes


def decode_status(value: int) -> dict[str, int]:
    return REG["STATUS"].decode(value)


class Device:
    """A lowbit engine behind a :class:`~.backend.Backend`. Use :func:`lowbit.driver.open_device`.

    Opening checks the AFU UUID, so a wrong bitstream or a dead simulator fails at once. The device
    is a context manager; :meth:`close` frees every buffer and closes the backend.

    Parameters
    ----------
    backend : Backend
        An open backend; the device owns it from now on.
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self._buffers: dict[int, SharedBuffer] = {}
        self._closed = False
        try:
            afu_id = (self.mmio_read64(REG["AFU_ID_H"].address), self.mmio_read64(REG["AFU_ID_L"].address))
            if afu_id != (AFU_ID_H, AFU_ID_L):
                raise DeviceError(
                    f"not a lowbit AFU: AFU_ID is {afu_id[0]:016x}{afu_id[1]:016x}, expected {AFU_UUID.hex}")
            self.caps: dict[str, int] = REG["CAPS"].decode(self.mmio_read64(REG["CAPS"].address))
            self.arith: dict[str, int] = REG["ARITH"].decode(self.mmio_read64(REG["ARITH"].address))
            #: The engine's optional datapaths (BUILT): the driver refuses a run needing another.
            self.built = Built(self.mmio_read64(REG["BUILT"].address) & int(BUILT_ALL))
            if self.arith != REG["ARITH"].decode(ARITH_VALUE):
                raise DeviceError(
                    f"the engine's fixed-point formats {self.arith} differ from this driver's "
                    f"{REG['ARITH'].decode(ARITH_VALUE)}: it was built from another lowbit; "
                    "rebuild the bitstream (or the simulator) from this tree")
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- lifetime
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Free all buffers and close the backend (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._buffers.clear()
        self.backend.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _live(self):
        if self._closed:
            raise DriverError("device is closed")

    # ---------------------------------------------------------------- MMIO
    def mmio_read64(self, offset: int) -> int:
        self._live()
        return self.backend.mmio_read64(check_mmio_offset(offset, MMIO_SPAN))

    def mmio_write64(self, offset: int, value: int) -> None:
        self._live()
        self.backend.mmio_write64(check_mmio_offset(offset, MMIO_SPAN), check_u64(value))

    def read_reg(self, name: str) -> int:
        """Read a register by its name in :data:`lowbit.contract.registers.REG`."""
        reg = _register(name)
        if reg.access is Access.WO:
            raise ValueError(f"register {name} is write-only")
        return self.mmio_read64(reg.address)

    def write_reg(self, name: str, value: int) -> None:
        """Write a register by name; refuses read-only registers and values wider than the register."""
        reg = _register(name)
        if reg.access is Access.RO:
            raise ValueError(f"register {name} is read-only")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"register {name}: value must be an integer, got {value!r}")
        width = 64 if reg.fields else reg.width
        if not 0 <= int(value) < (1 << width):
            raise ValueError(f"register {name} is {width} bits wide, {value} does not fit")
        self.mmio_write64(reg.address, int(value))

    def status(self) -> dict[str, int]:
        """STATUS decoded: ``{"STATE", "ERROR", "EPOCH"}``."""
        return decode_status(self.read_reg("STATUS"))

    # ---------------------------------------------------------------- memory
    def allocate(self, shape, dtype=np.uint8) -> SharedBuffer:
        """A zero-filled array in device-visible memory, cache-line aligned, with ``.io_address``."""
        self._live()
        dtype = np.dtype(dtype)
        shape = (shape,) if np.isscalar(shape) else tuple(shape)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in shape):
            raise ValueError(f"shape must be non-negative integers, got {shape!r}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes <= 0:
            raise ValueError(f"cannot allocate an empty buffer (shape {shape}, dtype {dtype})")
        raw, io = self.backend.allocate(nbytes)
        if io % 64:
            raise DriverError(f"backend returned an unaligned buffer at 0x{io:x}")
        arr = raw[:nbytes].view(dtype).reshape(shape).view(SharedBuffer)
        arr.io_address = io
        arr.line_bytes = self.caps["LINE_BITS"] // 8
        self._buffers[io] = arr
        return arr

    def free(self, buf: SharedBuffer) -> None:
        self._live()
        io = getattr(buf, "io_address", None)
        if io not in self._buffers:
            raise ValueError("not a buffer allocated on this device (or already freed)")
        del self._buffers[io]
        self.backend.free(io)

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        self.write_reg("CTRL", int(Ctrl.START))

    def reset(self) -> None:
        """Abort any run, clear STATUS to IDLE and forget reported out-of-buffer accesses."""
        self.write_reg("CTRL", int(Ctrl.RESET))
        self.backend.clear_errors()

    def check(self) -> None:
        """Raise if the backend reports a dead simulator or an out-of-buffer access."""
        self._live()
        try:
            self.backend.check()
        except SimulatorDied:
            self.close()
            raise

    def wait(
        self,
        timeout_s: float,
        *,
        poll: float = 0.002,
        status_buffer: SharedBuffer | None = None,
        run_id: int | None = None,
        on_epoch: Callable[[int], None] | None = None,
        status_every: float = 0.05,
    ) -> dict[str, int]:
        """Wait for the run to end; return the status record (or STATUS-derived values).

        Polls the status record in host memory every ``poll`` seconds (the AFU writes it last, after
        the models and epoch records, so seeing it means everything else is in memory too), and the
        STATUS register plus the backend's health every ``status_every`` seconds.

        Parameters
        ----------
        timeout_s : float
            Give up after this many wall seconds: the run is aborted (CTRL.RESET) if the device
            still answers, the device is CLOSED (a simulator is killed), and DeviceTimeout raised.
        status_buffer : SharedBuffer, optional
            The buffer STATUS_ADDR points at (at least 64 bytes). Without it only STATUS is polled.
        run_id : int, optional
            Only a status record carrying this RUN_ID ends the wait (a stale record from an earlier
            run in the same buffer is ignored).
        on_epoch : callable(int), optional
            Called with STATUS.EPOCH whenever it changes (progress bars).

        Raises
        ------
        DeviceTimeout, DeviceError (``.code`` = the ErrorCode), SimulatorDied
        """
        self._live()
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        if status_buffer is not None and status_buffer.nbytes < RECORD_BYTES:
            raise ValueError("status_buffer must hold a 64-byte status record")
        deadline = time.monotonic() + timeout_s
        next_status = 0.0
        last_epoch = -1
        try:
            while True:
                now = time.monotonic()
                if now >= next_status:
                    next_status = now + status_every
                    self.backend.check()
                    st = self.status()
                    if on_epoch is not None and st["EPOCH"] != last_epoch:
                        last_epoch = st["EPOCH"]
                        on_epoch(last_epoch)
                    if status_buffer is None and st["STATE"] in (State.DONE, State.ERROR):
                        return self._finish(st, None)
                if status_buffer is not None:
                    rec = unpack_record(status_buffer.view(np.ndarray).view(np.uint8).reshape(-1)[:RECORD_BYTES],
                                        STATUS_RECORD)
                    if rec["state"] in (State.DONE, State.ERROR) and (run_id is None or rec["run_id"] == run_id):
                        self.backend.check()
                        st = self.status()
                        # With lines narrower than 512 bits the record spans several lines that
                        # land in any order: it is complete only once STATUS has left BUSY (the
                        # AFU shows the end after the record's writes are answered). Re-read it.
                        if st["STATE"] in (State.DONE, State.ERROR):
                            rec = unpack_record(
                                status_buffer.view(np.ndarray).view(np.uint8).reshape(-1)[:RECORD_BYTES],
                                STATUS_RECORD)
                            if on_epoch is not None and st["EPOCH"] != last_epoch:
                                on_epoch(st["EPOCH"])
                            return self._finish(st, rec)
                if time.monotonic() >= deadline:
                    break
                interrupts.check()  # a Ctrl-C some library swallowed (lowbit.interrupts)
                time.sleep(poll)
        except (SimulatorDied, DeviceTimeout):
            self.close()
            raise
        # Timed out: abort the run if the device still answers, then close (kills a simulator).
        try:
            st = self.status()
            self.reset()
            detail = f"STATUS: state {State(st['STATE']).name}, epoch {st['EPOCH']}"
        except Exception as exc:  # the device is in trouble anyway; report the timeout
            detail = f"device did not answer while aborting: {exc}"
        self.close()
        raise DeviceTimeout(f"run did not finish within {timeout_s:g} s ({detail}); device closed")

    def _finish(self, st: dict[str, int], rec: dict[str, int] | None) -> dict[str, int]:
        state = State(rec["state"] if rec is not None else st["STATE"])
        if state is State.ERROR:
            raw = rec["error"] if rec is not None else st["ERROR"]
            try:
                code = ErrorCode(raw)
                name = code.name
            except ValueError:
                code, name = None, f"unknown error {raw}"
            raise DeviceError(f"the engine ended the run with ERROR {name}", code=code)
        if rec is None:
            rec = {
                "state": int(state), "error": st["ERROR"], "epochs": st["EPOCH"],
                "cycles": self.read_reg("CYCLES"), "read_lines": self.read_reg("READ_LINES"),
                "write_lines": self.read_reg("WRITE_LINES"), "stall_cycles": self.read_reg("STALL_CYCLES"),
                "run_id": self.read_reg("RUN_ID"),
            }
        return rec


def _register(name: str):
    try:
        return REG[name]
    except KeyError:
        raise ValueError(f"no register named {name!r} (see lowbit.contract.registers.REG)") from None
