"""The serial host link's byte protocol, defined once: the gateware (:mod:`.bridge`) and the host
backend (:mod:`lowbit.driver.serial`) both import these constants and helpers.

A frame is::

    SYNC  TYPE  LEN  PAYLOAD[LEN]  CRC

``SYNC`` is 0xA5, ``LEN`` the payload length in bytes (one byte), ``CRC`` the CRC-8 (polynomial
0x07, initial value 0, no reflection: CRC-8/SMBUS) of ``TYPE``, ``LEN`` and the payload. All
multi-byte fields are little-endian. ``W`` below is the line width in bytes (``line_bits / 8``).

Host -> board (the host is CCI-P's "host": it issues MMIO and serves memory):

=================  ====  ==========================================================
type               code  payload
=================  ====  ==========================================================
H_MMIO_WRITE       0x01  byte offset u16, data u64                       (10 bytes)
H_MMIO_READ        0x02  byte offset u16, tid u16                        (4 bytes)
H_READ_DATA        0x03  mdata u16, cl_num u8, line[W]                   (3 + W)
H_WRITE_ACK        0x04  mdata u16                                       (2 bytes)
=================  ====  ==========================================================

Board -> host:

=================  ====  ==========================================================
B_MMIO_DATA        0x81  tid u16, data u64                               (10 bytes)
B_READ_REQ         0x82  line address u48, cl_len u8, mdata u16         (9 bytes)
B_WRITE_REQ        0x83  line address u48, mdata u16, line[W]            (8 + W)
B_NAK              0x8F  reason u8 (NAK_CRC, NAK_FORMAT, NAK_TIMEOUT)    (1 byte)
=================  ====  ==========================================================

The board drops a frame whose CRC does not match, whose type is unknown, whose LEN is not the
type's, or which stalls for more than :data:`RX_TIMEOUT_CYCLES` between bytes, and answers it with
one ``B_NAK``: a corrupted frame never reaches the AFU. It then hunts for the next ``SYNC``.
"""

from __future__ import annotations

import numpy as np

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

#: Cycles the board waits for the next byte of a frame before dropping it (at 3 Mbaud a byte
#: takes ~33 cycles at 100 MHz; 2^16 cycles is generous for any host).
RX_TIMEOUT_CYCLES = 1 << 16

#: Bytes of the line address in B_READ_REQ / B_WRITE_REQ (CCI-P addresses are 42 bits).
ADDR_BYTES = 6
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


def payload_len(ftype: int, line_bytes: int) -> int:
    """Payload length of frame type ``ftype`` at ``line_bytes`` bytes per line."""
    lengths = {
        H_MMIO_WRITE: 10, H_MMIO_READ: 4, H_READ_DATA: 3 + line_bytes, H_WRITE_ACK: 2,
        B_MMIO_DATA: 10, B_READ_REQ: ADDR_BYTES + 3, B_WRITE_REQ: ADDR_BYTES + 2 + line_bytes, B_NAK: 1,
    }
    try:
        return lengths[ftype]
    except KeyError:
        raise ValueError(f"unknown frame type 0x{ftype:02x}") from None


def check_line_bytes(line_bytes: int) -> int:
    if line_bytes not in (8, 16, 32, 64):
        raise ValueError(f"line_bytes must be 8, 16, 32 or 64, got {line_bytes!r}")
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
    return frame(H_MMIO_WRITE, int(offset).to_bytes(2, "little") + int(value).to_bytes(8, "little"))


def mmio_read_frame(offset: int, tid: int) -> bytes:
    return frame(H_MMIO_READ, int(offset).to_bytes(2, "little") + int(tid).to_bytes(2, "little"))


def read_data_frame(mdata: bytes, cl_num: int, line: bytes) -> bytes:
    """One line answering a read request; ``mdata`` as the request carried it (2 bytes)."""
    return frame(H_READ_DATA, bytes(mdata) + bytes((cl_num,)) + bytes(line))


def write_ack_frame(mdata: bytes) -> bytes:
    return frame(H_WRITE_ACK, bytes(mdata))


def decode_mmio_data(payload: bytes) -> tuple[int, int]:
    """``B_MMIO_DATA`` -> ``(tid, value)``."""
    return int.from_bytes(payload[:2], "little"), int.from_bytes(payload[2:10], "little")


def decode_read_req(payload: bytes) -> tuple[int, int, bytes]:
    """``B_READ_REQ`` -> ``(line address, number of lines, mdata bytes)``."""
    line = int.from_bytes(payload[:ADDR_BYTES], "little")
    cl_len = payload[ADDR_BYTES]
    if cl_len not in CL_LINES:
        raise ValueError(f"read request with cl_len {cl_len}")
    return line, CL_LINES[cl_len], bytes(payload[ADDR_BYTES + 1:ADDR_BYTES + 3])


def decode_write_req(payload: bytes) -> tuple[int, bytes, bytes]:
    """``B_WRITE_REQ`` -> ``(line address, mdata bytes, line data)``."""
    return (int.from_bytes(payload[:ADDR_BYTES], "little"), bytes(payload[ADDR_BYTES:ADDR_BYTES + 2]),
            bytes(payload[ADDR_BYTES + 2:]))
