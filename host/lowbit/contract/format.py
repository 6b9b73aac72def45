"""The packed line format: how double-sampled codes, labels, models and records sit in host memory.

This module is the one definition of the bytes; the RTL (``lowbit_hw``), the golden model, the
driver and ``docs/format.md`` all follow it. Summary (``W`` = line width in bits, 512 on CCI-P):

* **Code stream.** A copy of the data set is one stream of ``(b+1)``-bit codes, row after row, each
  row padded with code 0 to ``padded_features`` = F rounded up to :data:`ROW_ALIGN` (32) codes, so
  rows start on a multiple of 32 codes. The engine masks the padding (features >= F) itself.
* **Bit-plane blocks.** The stream is cut into blocks of ``W`` codes (the last block padded with
  code 0). A block is stored as ``b+1`` consecutive lines: line ``k`` of the block holds bit ``k``
  (LSB first) of each of the block's ``W`` codes, code ``n`` at line bit ``n``. There is no waste
  inside a block, and a decoder takes ``lanes`` codes at a fixed offset from every plane, so one
  decoder serves every ``b`` with no runtime barrel shifter.
* **Bit order.** Line bit ``n`` is bit ``n % 8`` of byte ``n // 8`` (little endian, as CCI-P).
* **Copies.** ``K`` independently quantized copies follow each other, each
  :meth:`LineFormat.lines_per_copy` lines long; epoch ``e`` reads copy ``e mod K``.
* **Labels.** A separate buffer of int32 (MODEL_FRAC fixed point), little endian, ``W/32`` per line.
* **Model.** int32 words, feature ``j`` at word ``j``, ``W/32`` per line, ``padded_features`` words
  (the padding words are 0). The engine writes one model snapshot per epoch, epoch ``e`` at line
  offset ``e * model_lines``.
* **Records.** Epoch records and the status record are 64 bytes (eight little-endian uint64),
  ``512 / W`` lines each; see :data:`EPOCH_RECORD` and :data:`STATUS_RECORD`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows start at a multiple of this many codes; engines have at most this many lanes.
ROW_ALIGN = 32
#: Record size in bytes (epoch records and the status record), and the width of each of its words.
RECORD_BYTES = 64
RECORD_WORD_BITS = 64
#: The format revision reported in the CAPS register; bump on any change to this module.
FORMAT_VERSION = 1
#: Line layouts, by the revision an engine reports in CAPS.FORMAT_VERSION. ``planes`` (1): bit-plane
#: blocks of W consecutive codes of the row-major code stream (the lane-parallel TrainingCore).
#: ``woven`` (2): each line is one bit plane of 32 features of W/32 consecutive rows (the
#: bit-serial WovenCore; see "Woven layout" below and docs/format.md).
LAYOUTS = {1: "planes", 2: "woven"}
LAYOUT_VERSION = {name: version for version, name in LAYOUTS.items()}

#: Word names of the 64-byte epoch record (uint64 each), written at STATS_ADDR + e records.
#: ``epoch`` is the number of epochs completed (e + 1); ``cycles``, ``read_lines``, ``stall_cycles``
#: and ``write_lines`` count from START (cumulative), as the registers of the same names do.
EPOCH_RECORD = ("epoch", "loss", "cycles", "read_lines", "stall_cycles", "write_lines", "reserved6", "reserved7")
#: Word names of the 64-byte status record written at STATUS_ADDR when a run ends. Its counters are
#: taken when the record is composed, so the frozen registers may lead it by the record's own write.
#: With lines narrower than 512 bits the record spans several lines that may land in any order:
#: the host reads it completely only after STATUS shows DONE/ERROR.
STATUS_RECORD = ("state", "error", "cycles", "read_lines", "write_lines", "stall_cycles", "epochs", "run_id")
if not len(EPOCH_RECORD) * RECORD_WORD_BITS == len(STATUS_RECORD) * RECORD_WORD_BITS == 8 * RECORD_BYTES:
    raise RuntimeError("lowbit.contract.format: a record is not RECORD_BYTES of RECORD_WORD_BITS-bit words")

MAX_BITS = 8
SUPPORTED_LINE_BITS = (64, 128, 256, 512)
SUPPORTED_LINE_BYTES = tuple(bits // 8 for bits in SUPPORTED_LINE_BITS)


def check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}")
    return int(bits)


def padded_features(features: int) -> int:
    return -(-int(features) // ROW_ALIGN) * ROW_ALIGN


@dataclass(frozen=True)
class LineFormat:
    """Layout of one data set in lines of ``line_bits`` bits.

    Parameters
    ----------
    bits : int
        Quantization bits ``b`` (1..8); codes are ``b + 1`` bits, ``2^(b+1) - 1`` code values.
    features : int
        Features per row ``F`` (>= 1).
    line_bits : int
        Line width ``W``: 512 for CCI-P, smaller for small FPGAs.
    """

    bits: int
    features: int
    line_bits: int = 512
    layout: str = "planes"

    def __post_init__(self):
        check_bits(self.bits)
        if self.layout not in LAYOUT_VERSION:
            raise ValueError(f"layout must be one of {tuple(LAYOUT_VERSION)}, got {self.layout!r}")
        if isinstance(self.features, bool) or not isinstance(self.features, (int, np.integer)) or self.features < 1:
            raise ValueError(f"features must be a positive integer, got {self.features!r}")
        if self.line_bits not in SUPPORTED_LINE_BITS:
            raise ValueError(f"line_bits must be one of {SUPPORTED_LINE_BITS}, got {self.line_bits!r}")

    @property
    def code_bits(self) -> int:
        return self.bits + 1

    @property
    def codes(self) -> int:
        """Number of distinct code values, ``2^(b+1) - 1``."""
        return (1 << self.code_bits) - 1

    @property
    def line_bytes(self) -> int:
        return self.line_bits // 8

    @property
    def padded_features(self) -> int:
        return padded_features(self.features)

    @property
    def version(self) -> int:
        """The CAPS.FORMAT_VERSION of an engine that reads this layout."""
        return LAYOUT_VERSION[self.layout]

    @property
    def samples_per_line(self) -> int:
        """Woven layout: rows sharing a line (one 32-bit word each), ``W / 32``."""
        return self.line_bits // ROW_ALIGN

    @property
    def chunks(self) -> int:
        """Woven layout: 32-feature chunks per row."""
        return self.padded_features // ROW_ALIGN

    def groups(self, rows: int) -> int:
        """Woven layout: groups of ``samples_per_line`` rows (the last one padded with code-0 rows)."""
        return -(-int(rows) // self.samples_per_line)

    def blocks(self, rows: int) -> int:
        """Units of ``b + 1`` consecutive lines, one per bit plane: W codes of the stream (planes),
        or one 32-feature chunk of a group of rows (woven)."""
        if self.layout == "woven":
            return self.groups(rows) * self.chunks
        return -(-int(rows) * self.padded_features // self.line_bits)

    def lines_per_copy(self, rows: int) -> int:
        return self.blocks(rows) * self.code_bits

    def bytes_per_copy(self, rows: int) -> int:
        return self.lines_per_copy(rows) * self.line_bytes

    def information_bytes(self, rows: int) -> float:
        """``N * F * (b+1) / 8``: what an ideal packing would stream."""
        return rows * self.features * self.code_bits / 8

    def label_lines(self, rows: int) -> int:
        return -(-int(rows) * 32 // self.line_bits)

    @property
    def model_lines(self) -> int:
        return self.padded_features * 32 // self.line_bits

    @property
    def record_lines(self) -> int:
        return RECORD_BYTES * 8 // self.line_bits


_M1, _M2, _M4 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)


def _transpose8(x: np.ndarray) -> np.ndarray:
    """Transpose, in place, each uint64 seen as an 8x8 bit matrix (bit ``8i + j`` = row i, column j).

    With eight consecutive 8-bit codes as the rows (byte ``t`` = code ``t``), row ``k`` of the
    transpose is the byte of bit plane ``k``: bit ``t`` = bit ``k`` of code ``t``, which is exactly
    one byte of line ``k`` of a block. Three delta swaps (Hacker's Delight, transpose8) do it for
    all codes at once, ~8x faster than one ``packbits`` per plane. The transpose is an involution,
    so the same function unpacks.
    """
    t = (x ^ (x >> _S7)) & _M1
    x ^= t
    x ^= t << _S7
    t = (x ^ (x >> _S14)) & _M2
    x ^= t
    x ^= t << _S14
    t = (x ^ (x >> _S28)) & _M4
    x ^= t
    x ^= t << _S28
    return x


def _stream(codes: np.ndarray, fmt: LineFormat, nblocks: int, shift: int = 0) -> np.ndarray:
    """Bits ``shift..shift+7`` of the padded code stream as uint8, ``nblocks * W`` long."""
    rows = codes.shape[0]
    stream = np.zeros(nblocks * fmt.line_bits, dtype=np.uint8)
    rows_view = stream[: rows * fmt.padded_features].reshape(rows, fmt.padded_features)[:, : fmt.features]
    np.copyto(rows_view, codes >> shift if shift else codes, casting="unsafe")  # keeps the low 8 bits
    return stream


def _pack_woven(codes: np.ndarray, fmt: LineFormat) -> np.ndarray:
    """Woven layout: line ``(g * chunks + c) * (b+1) + k`` holds, in its 32-bit word ``s``, bit ``k``
    of the codes of row ``g*S + s``, features ``32c .. 32c+31`` (feature ``32c + f`` at bit ``f``)."""
    S, C, P = fmt.samples_per_line, fmt.chunks, fmt.code_bits
    rows = codes.shape[0]
    G = fmt.groups(rows)
    padded = np.zeros((G * S, fmt.padded_features), dtype=np.uint16)
    padded[:rows, : fmt.features] = codes
    by_chunk = padded.reshape(G, S, C, ROW_ALIGN).transpose(0, 2, 1, 3)  # (G, C, S, 32)
    planes = (by_chunk[:, :, None] >> np.arange(P, dtype=np.uint16)[None, None, :, None, None]) & 1
    packed = np.packbits(planes.astype(np.uint8), axis=-1, bitorder="little")  # (G, C, P, S, 4)
    return packed.reshape(G * C * P, fmt.line_bytes)


def _unpack_woven(lines: np.ndarray, fmt: LineFormat, rows: int) -> np.ndarray:
    S, C, P = fmt.samples_per_line, fmt.chunks, fmt.code_bits
    G = fmt.groups(rows)
    bits = np.unpackbits(lines[: G * C * P].reshape(G, C, P, S, 4), axis=-1, bitorder="little")
    codes = (bits.astype(np.uint16) << np.arange(P, dtype=np.uint16)[None, None, :, None, None]).sum(axis=2, dtype=np.uint16)
    return codes.transpose(0, 2, 1, 3).reshape(G * S, fmt.padded_features)[:rows, : fmt.features]


def pack_codes(codes: np.ndarray, fmt: LineFormat) -> np.ndarray:
    """Pack an ``(N, F)`` array of codes into lines as ``fmt.layout`` says: ``(lines, line_bytes)`` uint8."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != fmt.features:
        raise ValueError(f"codes must have shape (rows, {fmt.features}), got {codes.shape}")
    if codes.shape[0] < 1:
        raise ValueError("codes has no rows")
    if codes.size and (codes.min() < 0 or codes.max() >= fmt.codes):
        raise ValueError(f"codes out of range for {fmt.bits}-bit double sampling: valid 0..{fmt.codes - 1}")
    if fmt.layout == "woven":
        return _pack_woven(codes, fmt)
    rows = codes.shape[0]
    nblocks = fmt.blocks(rows)
    nbytes = fmt.line_bytes
    # Planes 0..7: the 8x8 bit transpose of each group of eight codes gives one byte of each plane.
    x = _transpose8(_stream(codes, fmt, nblocks).view("<u8"))
    low = min(fmt.code_bits, 8)
    out = np.empty((nblocks, fmt.code_bits, nbytes), dtype=np.uint8)
    out[:, :low, :] = x.view(np.uint8).reshape(nblocks, nbytes, 8).transpose(0, 2, 1)[:, :low, :]
    if fmt.code_bits > 8:  # b = 8: the ninth plane
        hi = _stream(codes, fmt, nblocks, shift=8).reshape(nblocks, fmt.line_bits)
        out[:, 8, :] = np.packbits(hi, axis=1, bitorder="little")
    return out.reshape(nblocks * fmt.code_bits, nbytes)


def unpack_codes(lines: np.ndarray, fmt: LineFormat, rows: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``(rows, F)`` uint16 codes from packed lines."""
    lines = np.asarray(lines, dtype=np.uint8)
    need = fmt.lines_per_copy(rows)
    if lines.ndim != 2 or lines.shape[1] != fmt.line_bytes or lines.shape[0] < need:
        raise ValueError(f"need at least {need} lines of {fmt.line_bytes} bytes for {rows} rows, got {lines.shape}")
    if fmt.layout == "woven":
        return _unpack_woven(lines, fmt, rows)
    nblocks = fmt.blocks(rows)
    nbytes = fmt.line_bytes
    planes = lines[:need].reshape(nblocks, fmt.code_bits, nbytes)
    low = min(fmt.code_bits, 8)
    groups = np.zeros((nblocks, nbytes, 8), dtype=np.uint8)
    groups[:, :, :low] = planes[:, :low, :].transpose(0, 2, 1)
    n = rows * fmt.padded_features
    stream = _transpose8(groups.reshape(-1).view("<u8")).view(np.uint8)[:n].astype(np.uint16)
    if fmt.code_bits > 8:
        stream |= np.unpackbits(planes[:, 8, :], axis=1, bitorder="little").reshape(-1)[:n].astype(np.uint16) << 8
    return stream.reshape(rows, fmt.padded_features)[:, : fmt.features]


def pack_words(words: np.ndarray, line_bits: int, dtype=np.int32) -> np.ndarray:
    """Little-endian 32-bit words (labels, models) into ``(lines, line_bytes)`` uint8, zero padded."""
    words = np.ascontiguousarray(np.asarray(words, dtype=dtype).ravel().astype("<i4" if dtype == np.int32 else "<u4"))
    per_line = line_bits // 32
    n = -(-words.size // per_line) * per_line
    buf = np.zeros(max(n, per_line), dtype=words.dtype)
    buf[: words.size] = words
    return buf.view(np.uint8).reshape(-1, line_bits // 8)


def unpack_words(lines: np.ndarray, count: int) -> np.ndarray:
    """First ``count`` little-endian int32 words of packed lines."""
    return np.ascontiguousarray(lines, dtype=np.uint8).reshape(-1).view("<i4")[:count].astype(np.int32)


def unpack_record(raw: np.ndarray, names=STATUS_RECORD) -> dict[str, int]:
    """A 64-byte record as a dict of its uint64 words."""
    words = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)[:RECORD_BYTES].view("<u8")
    return {name: int(v) for name, v in zip(names, words)}
