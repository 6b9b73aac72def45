"""Host memory for the cocotb benches: an address space of guarded buffers (no cocotb here).

The CCI-P bus model (:mod:`lowbit_sim.ccip_model`) serves the AFU's requests from a
:class:`HostMemory`, the way cocotbext-axi splits a protocol responder from the memory it serves.
As in verilog-pcie's test benches every buffer sits between two guard bands filled with
:data:`GUARD_BYTE`; :meth:`HostMemory.check_guards` proves none was touched.

:class:`PatternMemory` is the other store: no buffers, every line readable, each line's contents a
deterministic function of its address (:func:`line_value`), writes kept in a dict; for unit
benches of the shell that issue requests at arbitrary addresses.

Addresses follow CCI-P: the bus carries *line* addresses (byte address / line bytes; 64-byte lines
on CCI-P proper). An access through :meth:`HostMemory.read_line` / :meth:`HostMemory.write_line`
that is not entirely inside one allocated buffer is recorded in :attr:`HostMemory.errors` and does
not touch memory (reads return zeros), so a stray address from the AFU is reported, not absorbed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from lowbit.contract.format import SUPPORTED_LINE_BYTES

#: Fill of the guard bands (the verilog-pcie convention).
GUARD_BYTE = 0xAA
#: Buffers start on this byte boundary (a page): line aligned and aligned for 4-line requests.
ALIGN = 4096


class GuardBandError(AssertionError):
    """A guard band byte changed: something wrote outside its buffer."""


class AccessError(AssertionError):
    """Raised by :meth:`HostMemory.check` when the AFU accessed memory outside every buffer."""


@dataclass(frozen=True)
class BadAccess:
    """One access outside every allocated buffer, as recorded in :attr:`HostMemory.errors`."""

    kind: str  # "read" or "write"
    address: int  # byte address of the first line
    nbytes: int

    def __str__(self):
        return f"{self.kind} of {self.nbytes} bytes at 0x{self.address:x} is outside every buffer"


@dataclass(eq=False)
class Region:
    """One allocated buffer.

    Attributes
    ----------
    address : int
        Byte address of the first byte (a multiple of :data:`ALIGN`).
    nbytes : int
        Usable size (whole lines).
    guard : int
        Guard band bytes on each side.
    name : str
    """

    address: int
    nbytes: int
    guard: int
    line_bytes: int
    name: str = ""
    backing: np.ndarray = field(repr=False, default=None)  # guard + nbytes + guard bytes

    @property
    def data(self) -> np.ndarray:
        """The usable bytes (a writable view)."""
        return self.backing[self.guard : self.guard + self.nbytes]

    @property
    def lines(self) -> np.ndarray:
        """The usable bytes as ``(lines, line_bytes)``."""
        return self.data.reshape(-1, self.line_bytes)

    @property
    def line_address(self) -> int:
        """What the AFU's address registers take: ``address / line_bytes``."""
        return self.address // self.line_bytes

    @property
    def end(self) -> int:
        return self.address + self.nbytes

    def write(self, array: np.ndarray, offset: int = 0) -> None:
        """Copy ``array``'s bytes into the buffer at byte ``offset`` (bounds checked)."""
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if offset < 0 or offset + raw.size > self.nbytes:
            raise ValueError(f"{raw.size} bytes at offset {offset} do not fit in {self.name or 'buffer'} "
                             f"of {self.nbytes} bytes")
        self.data[offset : offset + raw.size] = raw


class HostMemory:
    """A sparse byte address space of guarded buffers.

    Parameters
    ----------
    line_bytes : int
        Bytes per bus line (64 on CCI-P; the board build's narrower lines too).
    base : int
        Byte address of the first buffer; address 0 stays unmapped so an unprogrammed (zero)
        address register is caught as a bad access.
    """

    def __init__(self, line_bytes: int = 64, base: int = 0x10_0000):
        if line_bytes not in SUPPORTED_LINE_BYTES:
            raise ValueError(f"line_bytes must be one of {SUPPORTED_LINE_BYTES}, got {line_bytes!r}")
        if base <= 0 or base % ALIGN:
            raise ValueError(f"base must be a positive multiple of {ALIGN}, got {base!r}")
        self.line_bytes = line_bytes
        self._next = base
        self._starts: list[int] = []  # sorted region start addresses (for bisect)
        self._regions: list[Region] = []
        self.errors: list[BadAccess] = []
        self.lines_read = 0
        self.lines_written = 0

    # ---------------------------------------------------------------- allocation
    def alloc(self, nbytes: int, guard: int = 4096, name: str = "", address: int | None = None) -> Region:
        """A new zeroed buffer of ``nbytes`` (rounded up to whole lines) between guard bands.

        Parameters
        ----------
        nbytes : int
            Usable bytes, > 0.
        guard : int
            Guard band bytes on each side (a multiple of the line size, >= 0).
        name : str
            For error messages.
        address : int, optional
            Place it at this byte address (line aligned; it and its guards must not overlap another
            buffer's) instead of after the last one.
        """
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes <= 0:
            raise ValueError(f"nbytes must be a positive integer, got {nbytes!r}")
        if guard < 0 or guard % self.line_bytes:
            raise ValueError(f"guard must be a non-negative multiple of {self.line_bytes}, got {guard!r}")
        size = -(-int(nbytes) // self.line_bytes) * self.line_bytes
        if address is None:
            address = -(-(self._next + guard) // ALIGN) * ALIGN
        elif address % self.line_bytes or address - guard <= 0 or any(
                address - guard < r.end + r.guard and r.address - r.guard < address + size + guard
                for r in self._regions):
            raise ValueError(f"cannot place {size} bytes (guard {guard}) at 0x{address:x}: not line aligned, "
                             "at address 0 or overlapping another buffer")
        backing = np.zeros(guard + size + guard, dtype=np.uint8)
        backing[:guard] = GUARD_BYTE
        backing[guard + size :] = GUARD_BYTE
        region = Region(address=address, nbytes=size, guard=guard, line_bytes=self.line_bytes, name=name,
                        backing=backing)
        self._next = max(self._next, address + size + guard)
        i = bisect.bisect(self._starts, address)
        self._starts.insert(i, address)
        self._regions.insert(i, region)
        return region

    def alloc_lines(self, lines: int, guard: int = 4096, name: str = "", line: int | None = None) -> Region:
        """:meth:`alloc` in lines (``line``: the bus line address to place it at)."""
        return self.alloc(int(lines) * self.line_bytes, guard=guard, name=name,
                          address=None if line is None else int(line) * self.line_bytes)

    def free(self, region: Region) -> None:
        """Unmap ``region`` (its guards are checked first); later accesses to it are bad accesses."""
        self._check_region_guards(region)
        i = self._regions.index(region)
        del self._regions[i], self._starts[i]

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(self._regions)

    def region_at(self, address: int, nbytes: int = 1) -> Region | None:
        """The buffer holding bytes ``[address, address + nbytes)`` entirely, or None."""
        i = bisect.bisect(self._starts, address) - 1
        if i < 0:
            return None
        r = self._regions[i]
        return r if address + nbytes <= r.end else None

    # ---------------------------------------------------------------- bus accesses (line addresses)
    def inside(self, line: int, lines: int = 1) -> bool:
        """Whether bus lines ``[line, line + lines)`` lie entirely inside one buffer."""
        return self.region_at(line * self.line_bytes, lines * self.line_bytes) is not None

    def read_line(self, line: int) -> bytes:
        """The bytes of bus line ``line``; zeros and a recorded error if it is outside every buffer."""
        address = line * self.line_bytes
        r = self.region_at(address, self.line_bytes)
        if r is None:
            self.errors.append(BadAccess("read", address, self.line_bytes))
            return bytes(self.line_bytes)
        self.lines_read += 1
        off = r.guard + address - r.address
        return r.backing[off : off + self.line_bytes].tobytes()

    def write_line(self, line: int, data: bytes) -> bool:
        """Store one line; returns False (and records an error, memory untouched) if outside every buffer."""
        address = line * self.line_bytes
        r = self.region_at(address, self.line_bytes)
        if r is None:
            self.errors.append(BadAccess("write", address, self.line_bytes))
            return False
        self.lines_written += 1
        off = r.guard + address - r.address
        r.backing[off : off + self.line_bytes] = np.frombuffer(data, dtype=np.uint8, count=self.line_bytes)
        return True

    def read_line_int(self, line: int) -> int:
        """:meth:`read_line` as a little-endian integer (what a bus data port takes)."""
        return int.from_bytes(self.read_line(line), "little")

    def write_line_int(self, line: int, value: int) -> bool:
        return self.write_line(line, int(value).to_bytes(self.line_bytes, "little"))

    # ---------------------------------------------------------------- checks
    def _check_region_guards(self, r: Region) -> None:
        for lo, hi, base in ((0, r.guard, r.address - r.guard), (r.guard + r.nbytes, r.backing.size, r.end)):
            bad = np.flatnonzero(r.backing[lo:hi] != GUARD_BYTE)
            if bad.size:
                where = base + int(bad[0])
                raise GuardBandError(
                    f"guard band of {r.name or 'buffer'} at 0x{r.address:x} changed: byte 0x{where:x} is "
                    f"0x{int(r.backing[lo + bad[0]]):02x}, not 0x{GUARD_BYTE:02x} ({bad.size} bytes changed)")

    def check_guards(self) -> None:
        """Raise :class:`GuardBandError` naming the first changed guard byte of any buffer."""
        for r in self._regions:
            self._check_region_guards(r)

    def check(self) -> None:
        """:meth:`check_guards`, then raise :class:`AccessError` if any bad access was recorded."""
        self.check_guards()
        if self.errors:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise AccessError(f"{self.errors[0]}{more}")


MASK64 = (1 << 64) - 1


def line_value(address: int, line_bits: int, salt: int = 0) -> int:
    """Deterministic contents of host line ``address`` (distinct for every address and salt)."""
    v = 0
    x = (address * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03 + 1) & MASK64
    for i in range(0, line_bits, 64):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
        v |= (x ^ address) << i
    return v & ((1 << line_bits) - 1)


class PatternMemory:
    """Every line readable: :func:`line_value` of its address, or what was last written there.

    Parameters
    ----------
    line_bits : int
    salt : int
        Passed to :func:`line_value`.

    Attributes
    ----------
    written : dict
        Line address -> int of every line written (at its acknowledgement).
    """

    def __init__(self, line_bits: int, salt: int = 0):
        self.line_bits, self.salt = line_bits, salt
        self.written: dict[int, int] = {}

    def read_line_int(self, line: int) -> int:
        value = self.written.get(line)
        return line_value(line, self.line_bits, self.salt) if value is None else value

    def write_line_int(self, line: int, value: int) -> bool:
        self.written[line] = int(value)
        return True
