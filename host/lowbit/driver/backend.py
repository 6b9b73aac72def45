"""The one interface every device backend implements (``sim`` today, ``serial`` for the board).

A backend is deliberately small: MMIO, shared memory, a health check, close. Everything that
knows the register map (open checks, start, wait, train) lives above it in :class:`~.device.Device`,
so a new backend only has to move 64-bit MMIO words and bytes of host memory.

Rules every backend keeps
-------------------------
* ``mmio_read64`` / ``mmio_write64`` take a *byte* offset into the AFU's MMIO space (8-byte
  aligned, below :data:`lowbit.contract.registers.MMIO_SPAN`) and 64-bit unsigned values.
* ``allocate(nbytes)`` returns ``(view, io_address)``: ``view`` is a writable 1-D ``uint8`` NumPy
  array of at least ``nbytes`` bytes that *is* the memory the device reads and writes (no copies:
  a hardware backend that cannot share memory must document when it synchronises), and
  ``io_address`` is the byte address the device uses for its first byte, aligned to
  :attr:`alignment` (>= 64, one cache line). The device may touch only allocated buffers.
* ``check()`` raises :class:`~.errors.SimulatorDied` if the device side is gone or not answering, and
  :class:`~.errors.DeviceError` (with ``address``) if the device accessed memory outside every
  buffer; it returns ``None`` otherwise. It is cheap enough to call every few milliseconds.
* ``close()`` is idempotent and releases everything (processes, buffers, sockets). After close
  every other method raises :class:`~.errors.DriverError`.
* Backends raise only :mod:`lowbit.driver.errors` exceptions for device-side failures and
  ``ValueError`` for bad arguments.
"""

from __future__ import annotations

import abc

import numpy as np


class Backend(abc.ABC):
    """Abstract device backend. Subclasses set :attr:`name` and implement the methods below."""

    #: Short name used by :func:`lowbit.driver.open_device`.
    name: str = "abstract"
    #: Alignment in bytes of every io_address returned by :meth:`allocate`.
    alignment: int = 64

    @abc.abstractmethod
    def mmio_read64(self, offset: int) -> int:
        """Read the 64-bit MMIO register at byte ``offset``."""

    @abc.abstractmethod
    def mmio_write64(self, offset: int, value: int) -> None:
        """Write the 64-bit value ``value`` to the MMIO register at byte ``offset``."""

    @abc.abstractmethod
    def allocate(self, nbytes: int) -> tuple[np.ndarray, int]:
        """Allocate ``nbytes`` (> 0) of device-visible host memory, zero filled.

        Returns
        -------
        view : ndarray, uint8, 1-D
            The buffer's bytes, shared with the device.
        io_address : int
            Byte address of ``view[0]`` as the device sees it, aligned to :attr:`alignment`.
        """

    @abc.abstractmethod
    def free(self, io_address: int) -> None:
        """Release the buffer at ``io_address``; the device may no longer touch it."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise if the device side died, stalled or reported an access outside the buffers."""

    def clear_errors(self) -> None:
        """Forget a reported out-of-buffer access (after :meth:`Device.reset`). Optional."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything; idempotent."""

    # Context manager sugar shared by all backends.
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



class HostArena:
    """First-fit allocation of aligned buffers inside one arena of ``size`` bytes, for backends
    whose host memory is one block (the simulator's memfd, the serial backend's array).

    Offsets are from the arena's start; backends add their IO base. Buffers are few and large, so
    a sorted hole list (coalesced on release) is all it takes.
    """

    def __init__(self, size: int, align: int):
        if not isinstance(size, (int, np.integer)) or size < align or size % align:
            raise ValueError(f"memory must be a positive multiple of {align} bytes, got {size!r}")
        self.size, self.align = int(size), int(align)
        self.regions: dict[int, int] = {}  # offset -> bytes
        self._holes: list[tuple[int, int]] = [(0, self.size)]

    def alloc(self, nbytes: int) -> int:
        """Offset of a new buffer of at least ``nbytes`` (rounded up to the alignment)."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes <= 0:
            raise ValueError(f"nbytes must be a positive integer, got {nbytes!r}")
        size = -(-int(nbytes) // self.align) * self.align
        for i, (off, hole) in enumerate(self._holes):
            if hole >= size:
                self._holes[i] = (off + size, hole - size)
                self.regions[off] = size
                return off
        raise MemoryError(f"host memory exhausted: {nbytes} bytes requested, the arena holds {self.size} bytes "
                          f"(open the device with a larger memory=...)")

    def release(self, offset: int) -> int:
        """Free the buffer at ``offset``; returns its size."""
        size = self.regions.pop(offset, None)
        if size is None:
            raise ValueError(f"no buffer at arena offset 0x{offset:x}")
        merged: list[tuple[int, int]] = []
        for off, sz in sorted(self._holes + [(offset, size)]):  # coalesce neighbouring holes
            if merged and merged[-1][0] + merged[-1][1] == off:
                merged[-1] = (merged[-1][0], merged[-1][1] + sz)
            else:
                merged.append((off, sz))
        self._holes = merged
        return size

    def inside(self, offset: int, nbytes: int) -> bool:
        """Whether ``[offset, offset + nbytes)`` lies inside one allocated buffer."""
        return any(o <= offset and offset + nbytes <= o + n for o, n in self.regions.items())


def check_mmio_offset(offset: int, span: int) -> int:
    """Validate an MMIO byte offset (shared by backends)."""
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise ValueError(f"MMIO offset must be an integer, got {offset!r}")
    offset = int(offset)
    if offset < 0 or offset >= span or offset % 8:
        raise ValueError(f"MMIO offset 0x{offset:x} is not an 8-byte aligned offset below 0x{span:x}")
    return offset


def check_u64(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < (1 << 64):
        raise ValueError(f"MMIO value must be an unsigned 64-bit integer, got {value!r}")
    return int(value)
