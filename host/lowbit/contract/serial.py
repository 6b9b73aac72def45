"""The serial host link's byte protocol, defined once: the gateware (``lowbit_hw.board.bridge``) and the host
backend (:mod:`lowbit.driver.serial`) both import these constants and helpers.

A frame is::

    SYNC  TYPE  LEN  PAYLOAD[LEN]  CRC

``SYNC`` is 0xA5, ``LEN`` the payload length in bytes (one byte), ``CRC`` the CRC-8 (polynomial
0x07, initial value 0, no reflection: CRC-8/SMBUS) of ``TYPE``, ``LEN`` and the payload. All
multi-byte fields are little-endian. ``W`` below is the line width in bytes (``line_bits / 8``).

The host (CCI-P's "host": it issues MMIO and serves memory) sends the ``H_*`` types, the board the
``B_*`` ones. Each type's payload is :data:`FRAMES`, its fields in order; the host packs and reads
payloads with :func:`pack` and :func:`unpack`, the bridge (RTL) fills and reads structs built from
the same table, and the table in docs/board.md is :func:`render_markdown` of it.

The board drops a frame whose CRC does not match, whose type is unknown, whose LEN is not the
type's, or which stalls for more than :data:`RX_TIMEOUT_CYCLES` between bytes, and answers it with
one ``B_NAK``: a corrupted frame never reaches the AFU. It then hunts for the next ``SYNC``.
"""

from __future__ import annotations

import numpy as np

from .format import SUPPORTED_LINE_BYTES

SYNC = 0xA5

H_MMIO_WRITE = 0x01
H_MMIO_READ = 0x02
H_READ_DATA = 0x03
H_WRITE_ACK = 0x04

B_MMIO_DATA = 0x81
B_READ_REQ = 0x82
B_WRITE_REQ = 0x83
B_NAK = 0x8F

NAK_CRC = 1  # CRC mismatch
NAK_FORMAT = 2  # unknown type or wrong LEN for the type
NAK_TIMEOUT = 3  # frame stalled mid-way
NAK_REASONS = {NAK_CRC: "CRC", NAK_FORMAT: "format (unknown type / wrong length)", NAK_TIMEOUT: "timeout"}

#: Cycles the board waits for the next byte of a frame before dropping it (at 3 Mbaud a byte
#: takes ~33 cycles at 100 MHz; 2^16 cycles is generous for any host).
RX_TIMEOUT_CYCLES = 1 << 16

#: Bytes of the line address in B_READ_REQ / B_WRITE_REQ (CCI-P addresses are 42 bits).
ADDR_BYTES = 6
#: The size of a payload field that is one line (``line_bytes``: the engine's LINE_BITS / 8).
LINE = "line"

#: Every frame type's payload: ``(field, bytes, what it carries)`` in order, each little-endian; a
#: field of :data:`LINE` bytes is one line. ``offset`` is an MMIO byte offset, ``tid`` the CCI-P MMIO
#: tid, ``mdata`` a request's tag, ``cl_num`` a line's place in a multi-line read, ``cl_len`` CCI-P's
#: length code (:data:`CL_LINES`), ``reason`` one of :data:`NAK_REASONS`.
FRAMES: dict[int, tuple[tuple[str, int | str, str], ...]] = {
    H_MMIO_WRITE: (("offset", 2, "byte offset"), ("data", 8, "data")),
    H_MMIO_READ: (("offset", 2, "byte offset"), ("tid", 2, "tid")),
    H_READ_DATA: (("mdata", 2, "mdata"), ("cl_num", 1, "cl_num"), ("line", LINE, "line")),
    H_WRITE_ACK: (("mdata", 2, "mdata"),),
    B_MMIO_DATA: (("tid", 2, "tid"), ("data", 8, "data")),
    B_READ_REQ: (("address", ADDR_BYTES, "line address"), ("cl_len", 1, "cl_len"), ("mdata", 2, "mdata")),
    B_WRITE_REQ: (("address", ADDR_BYTES, "line address"), ("mdata", 2, "mdata"), ("line", LINE, "line")),
    B_NAK: (("reason", 1, "reason"),),
}
#: The frames the host sends, and those the board sends.
HOST_FRAMES = (H_MMIO_WRITE, H_MMIO_READ, H_READ_DATA, H_WRITE_ACK)
BOARD_FRAMES = (B_MMIO_DATA, B_READ_REQ, B_WRITE_REQ, B_NAK)
#: MMIO reads the host may have outstanding at once (the bridge buffers this many answers).
MAX_MMIO_READS = 4

CRC_POLY = 0x07


def _crc_table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 0x80, (t << 1) ^ CRC_POLY, t << 1) & 0xFF
    return t.astype(np.uint8)


CRC_TABLE = _crc_table()


def crc8(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-8/SMBUS of ``data`` (continuing from ``crc``)."""
    table = CRC_TABLE
    for b in bytes(data):  # frames are <= 258 bytes; a table lookup per byte is cheap enough
        crc = int(table[crc ^ b])
    return crc


def fields(ftype: int, line_bytes: int) -> tuple[tuple[str, int], ...]:
    """``(field, bytes)`` of a ``ftype`` frame's payload, in order, at ``line_bytes`` bytes per line."""
    try:
        spec = FRAMES[ftype]
    except KeyError:
        raise ValueError(f"unknown frame type 0x{ftype:02x}") from None
    return tuple((name, line_bytes if size == LINE else size) for name, size, _ in spec)


def payload_len(ftype: int, line_bytes: int) -> int:
    """Payload length of frame type ``ftype`` at ``line_bytes`` bytes per line."""
    return sum(size for _, size in fields(ftype, line_bytes))


def pack(ftype: int, **values: int | bytes) -> bytes:
    """A ``ftype`` frame's payload from its fields by name: integers, or the bytes of a line."""
    line = values.get("line")
    out = bytearray()
    for name, size in fields(ftype, 0 if line is None else len(line)):
        if name not in values:
            raise TypeError(f"frame 0x{ftype:02x} needs its field {name!r}")
        v = values.pop(name)
        out += bytes(v) if name == "line" else int(v).to_bytes(size, "little")
    if values:
        raise TypeError(f"frame 0x{ftype:02x} has no field(s) {sorted(values)}")
    return bytes(out)


def unpack(ftype: int, payload: bytes) -> dict[str, int | bytes]:
    """A ``ftype`` frame's payload by field name: integers, and the bytes of a line (the rest of the
    payload after the fixed-size fields)."""
    fixed = sum(size for _, size, _ in FRAMES.get(ftype, ()) if size != LINE)
    out, pos = {}, 0
    for name, size in fields(ftype, len(payload) - fixed):
        chunk = bytes(payload[pos:pos + size])
        out[name] = chunk if name == "line" else int.from_bytes(chunk, "little")
        pos += size
    return out


def render_markdown() -> str:
    """The frame table of docs/board.md (``tests/test_board_serial.py`` keeps the doc equal to it)."""
    names = {v: k for k, v in globals().items() if k.startswith(("H_", "B_")) and isinstance(v, int) and v in FRAMES}
    rows = ["| direction | type | payload (little-endian) |", "|---|---|---|"]
    for direction, types in (("host -> board", HOST_FRAMES), ("board -> host", BOARD_FRAMES)):
        for i, t in enumerate(types):
            payload = ", ".join(f"{what}[W/8]" if size == LINE else f"{what} u{8 * size}" for _, size, what in FRAMES[t])
            if t == B_NAK:
                payload += ": " + ", ".join(f"{code} {why}" for code, why in NAK_REASONS.items())
            rows.append(f"| {direction} | " if i == 0 else "| | ")
            rows[-1] += f"`{names[t]}` 0x{t:02X} | {payload} |"
    return "\n".join(rows) + "\n"


def check_line_bytes(line_bytes: int) -> int:
    if line_bytes not in SUPPORTED_LINE_BYTES:
        raise ValueError(f"line_bytes must be one of {SUPPORTED_LINE_BYTES}, got {line_bytes!r}")
    return line_bytes


def frame(ftype: int, payload: bytes) -> bytes:
    """One complete frame around ``payload``."""
    if len(payload) > 255:
        raise ValueError("payload longer than 255 bytes")
    head = bytes((ftype, len(payload)))
    return bytes((SYNC,)) + head + bytes(payload) + bytes((crc8(head + bytes(payload)),))


def parse_frames(buf: bytearray, line_bytes: int | None = None):
    """Pop every complete frame from the front of ``buf`` (modified in place).

    Returns ``(frames, errors)``: ``frames`` a list of ``(type, payload)``, ``errors`` the number
    of corrupted frames skipped (bad CRC, bad length, garbage before a SYNC). A corrupted frame is
    skipped by resuming the hunt one byte after its SYNC. With ``line_bytes`` None, any length is
    accepted for known types whose length depends on the line width.
    """
    frames, errors = [], 0
    while True:
        i = buf.find(SYNC)
        if i < 0:
            errors += bool(buf)
            buf.clear()
            break
        if i:
            errors += 1
            del buf[:i]
        if len(buf) < 3:
            break
        ftype, n = buf[1], buf[2]
        try:
            want = payload_len(ftype, line_bytes) if line_bytes else None
        except ValueError:
            want = -1
        if want is not None and want != n:
            errors += 1
            del buf[:1]
            continue
        if len(buf) < 4 + n:
            break
        if crc8(buf[1:3 + n]) != buf[3 + n]:
            errors += 1
            del buf[:1]
            continue
        frames.append((ftype, bytes(buf[3:3 + n])))
        del buf[:4 + n]
    return frames, errors


# ------------------------------------------------------------------ payload layouts (host side)
#: Lines of a read request by its CCI-P ``cl_len``.
CL_LINES = {0: 1, 1: 2, 3: 4}


def mmio_write_frame(offset: int, value: int) -> bytes:
    return frame(H_MMIO_WRITE, pack(H_MMIO_WRITE, offset=offset, data=value))


def mmio_read_frame(offset: int, tid: int) -> bytes:
    return frame(H_MMIO_READ, pack(H_MMIO_READ, offset=offset, tid=tid))


def read_data_frame(mdata: int, cl_num: int, line: bytes) -> bytes:
    """One line answering a read request; ``mdata`` as the request carried it."""
    return frame(H_READ_DATA, pack(H_READ_DATA, mdata=mdata, cl_num=cl_num, line=line))


def write_ack_frame(mdata: int) -> bytes:
    return frame(H_WRITE_ACK, pack(H_WRITE_ACK, mdata=mdata))


def decode_mmio_data(payload: bytes) -> tuple[int, int]:
    """``B_MMIO_DATA`` -> ``(tid, value)``."""
    f = unpack(B_MMIO_DATA, payload)
    return f["tid"], f["data"]


def decode_read_req(payload: bytes) -> tuple[int, int, int]:
    """``B_READ_REQ`` -> ``(line address, number of lines, mdata)``."""
    f = unpack(B_READ_REQ, payload)
    if f["cl_len"] not in CL_LINES:
        raise ValueError(f"read request with cl_len {f['cl_len']}")
    return f["address"], CL_LINES[f["cl_len"]], f["mdata"]


def decode_write_req(payload: bytes) -> tuple[int, int, bytes]:
    """``B_WRITE_REQ`` -> ``(line address, mdata, line data)``."""
    f = unpack(B_WRITE_REQ, payload)
    return f["address"], f["mdata"], f["line"]
