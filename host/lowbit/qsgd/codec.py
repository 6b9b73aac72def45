"""QSGD: the stochastic quantizer Q_s and its two wire formats.

The quantizer (Alistarh et al., "QSGD", NeurIPS 2017), applied per bucket of ``d`` coordinates::

    Q_s(v)_i = scale * sign(v_i) * l_i / s,     l_i in {0, 1, ..., s}

with ``scale = ||v||_2`` (default) or ``max_i |v_i|`` (``norm="max"``) of the bucket, and
``l_i = floor(r_i) + Bernoulli(r_i - floor(r_i))`` where ``r_i = s |v_i| / scale``. Then
``E[Q_s(v)] = v`` (unbiased) and, for the 2-norm,

    E ||Q_s(v) - v||^2  <=  min(d / s^2, sqrt(d) / s) * ||v||^2          (QSGD Lemma 3.1)

per bucket; for the max-norm every coordinate's variance is at most ``(scale / s)^2 / 4``, so
``E ||Q_s(v) - v||^2 <= d * max|v|^2 / (4 s^2)``.

The scale is sent as float32, rounded *up* from the exact float64 norm so that ``r_i <= s``
(rounding down could push a level past ``s``). The quantizer uses the rounded scale, so
unbiasedness holds with respect to what the receiver sees.

Wire formats (both byte exact, checked by ``decode``; layouts in docs/qsgd.md):

``"dense"``
    every coordinate as ``w = 1 + bitlen(s)`` bits: sign bit then the level ``l`` in
    ``bitlen(s)`` bits, packed MSB first. With ``s = 2**(b-1) - 1`` this is ``b`` bits per
    coordinate (``b = 2, 4, 8`` give ``s = 1, 7, 127``).
``"elias"``
    the paper's sparse format: for every non-zero level, the gap to the previous non-zero position
    and the level magnitude as Elias **gamma** codes, and a sign bit.

A message starts with a 24-byte header (magic ``QSGD``, version, format, norm, s, bucket size, n),
then the per-bucket float32 scales, the body, and ends with a CRC-32 of everything before it, so a
truncated or corrupted message raises ``ValueError`` instead of decoding to something else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .elias import BitWriter, UnaryReader, _as_words, gamma_append, gamma_values

__all__ = ["Quantized", "quantize", "encode", "decode", "compress", "decompress",
           "dense_bits", "bits_to_levels", "variance_bound", "FORMATS", "NORMS", "encode_frame", "decode_frame",
           "frame_bytes"]

MAGIC = b"QSGD"
VERSION = 1
FORMATS = ("dense", "elias")
NORMS = ("l2", "max")
_HEADER = struct.Struct("<4sBBBBIIQ")   # magic, version, format, norm, reserved, s, bucket, n
_ELIAS_HEADER = struct.Struct("<QQQ")   # nnz, prefix bits, suffix bits
_CRC = struct.Struct("<I")
MAX_S = (1 << 31) - 1
MAX_N = (1 << 32) - 1                   # gaps must stay Elias-codable in 63 bits
_F32_MAX = float(np.finfo(np.float32).max)
# Work on chunks of about this many coordinates: temporaries of a few hundred kB are reused by
# malloc, whereas whole-gradient temporaries are fresh mmaps whose page faults cost more than the
# arithmetic on this machine (measured: 114 ms vs 10 ms for one 48 MB subtraction).
CHUNK = 1 << 16
_F32_EXACT = 1 << 23        # levels up to here are exact in float32 with room for the fraction


def bits_to_levels(bits: int) -> int:
    """``s = 2**(bits-1) - 1``: the levels a ``bits``-bit dense code holds (one bit is the sign)."""
    if not isinstance(bits, (int, np.integer)) or bits < 2 or bits > 32:
        raise ValueError(f"bits must be an integer in [2, 32], got {bits!r}")
    return (1 << (int(bits) - 1)) - 1


def dense_bits(s: int) -> int:
    """Bits per coordinate of the dense format for ``s`` levels: one sign bit + bitlen(s)."""
    return 1 + int(s).bit_length()


def variance_bound(d: int, s: int, norm: str = "l2") -> float:
    """Bound on ``E||Q_s(v) - v||^2 / scale^2`` for one bucket of ``d`` coordinates.

    ``min(d/s^2, sqrt(d)/s)`` for the 2-norm (scale = ||v||_2), ``d / (4 s^2)`` for the max-norm
    (scale = max|v_i|).
    """
    if norm == "l2":
        return min(d / s**2, np.sqrt(d) / s)
    if norm == "max":
        return d / (4 * s**2)
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _level_dtype(s: int) -> type:
    return np.int8 if s <= 127 else np.int16 if s <= 32767 else np.int32


@dataclass(frozen=True, eq=False)
class Quantized:
    """A quantized vector: ``value[i] = scales[i // bucket_size] * levels[i] / s``.

    Attributes
    ----------
    n, s, bucket_size : int
    norm : str
        ``"l2"`` or ``"max"``.
    scales : ndarray of float32, shape (ceil(n / bucket_size),)
    levels : ndarray of int8/int16/int32, shape (n,)
        Signed levels in ``[-s, s]``.
    """

    n: int
    s: int
    bucket_size: int
    norm: str
    scales: np.ndarray
    levels: np.ndarray

    @property
    def n_buckets(self) -> int:
        return len(self.scales)

    def dequantize(self) -> np.ndarray:
        """The float32 vector this quantization stands for."""
        d, n = self.bucket_size, self.n
        step = (self.scales.astype(np.float64) / self.s).astype(np.float32)
        out = np.empty(n, dtype=np.float32)
        per = max(1, CHUNK // d)                      # buckets per chunk
        for b0 in range(0, self.n_buckets, per):
            lo, hi = b0 * d, min(n, (b0 + per) * d)
            full = (hi - lo) // d
            mid = lo + full * d
            np.multiply(self.levels[lo:mid].reshape(full, d), step[b0:b0 + full, None],
                        out=out[lo:mid].reshape(full, d))
            if mid < hi:                              # the short last bucket
                np.multiply(self.levels[mid:hi], step[b0 + full], out=out[mid:hi])
        return out

    def equals(self, other: "Quantized") -> bool:
        """Exact equality of every field (scales compared bit for bit)."""
        return (self.n == other.n and self.s == other.s and self.bucket_size == other.bucket_size
                and self.norm == other.norm
                and np.array_equal(self.scales.view(np.uint32), other.scales.view(np.uint32))
                and np.array_equal(self.levels, other.levels))


def _check_params(s, bucket_size, norm) -> None:
    if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or not 1 <= s <= MAX_S:
        raise ValueError(f"s (number of levels) must be an integer in [1, {MAX_S}], got {s!r}")
    if (not isinstance(bucket_size, (int, np.integer)) or isinstance(bucket_size, bool)
            or not 1 <= bucket_size <= MAX_N):
        raise ValueError(f"bucket_size must be a positive integer, got {bucket_size!r}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def quantize(v, s: int, bucket_size: int = 512, norm: str = "l2",
             rng: np.random.Generator | int | None = None) -> Quantized:
    """Stochastically quantize ``v`` (any shape, flattened) to ``s`` levels per bucket.

    Parameters
    ----------
    v : array_like of float
        The gradient. Converted to float32. Must be finite and non-empty.
    s : int
        Number of non-zero levels, ``s >= 1``.
    bucket_size : int
        Coordinates sharing one scale (the last bucket may be shorter).
    norm : {"l2", "max"}
        The scale of a bucket: its 2-norm (QSGD) or its max-norm.
    rng : numpy Generator, seed or None
        Source of the rounding randomness.

    Raises
    ------
    ValueError
        Empty or non-finite input, bad parameters, or a bucket norm beyond float32.
    """
    _check_params(s, bucket_size, norm)
    s, d = int(s), int(bucket_size)
    with np.errstate(over="ignore"):                 # float64 beyond float32 becomes inf: refused
        v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
    n = v.size
    if n == 0:
        raise ValueError("cannot quantize an empty vector")
    if n > MAX_N:
        raise ValueError(f"vector too long ({n} > {MAX_N} coordinates)")
    rng = np.random.default_rng(rng)
    nb = -(-n // d)
    scales = np.empty(nb, np.float32)
    levels = np.empty(n, _level_dtype(s))
    step = max(1, CHUNK // d)                         # buckets per chunk
    for b0 in range(0, nb, step):                     # chunks: see CHUNK
        b1 = min(nb, b0 + step)
        x = v[b0 * d:b1 * d]
        if len(x) != (b1 - b0) * d:                   # the last bucket is short: pad with zeros
            x = np.concatenate([x, np.zeros((b1 - b0) * d - len(x), np.float32)])
        scales[b0:b1], lv = _quantize_buckets(x.reshape(b1 - b0, d), s, norm, rng)
        levels[b0 * d:b1 * d] = lv.reshape(-1)[:len(levels[b0 * d:b1 * d])]
    return Quantized(n, s, d, norm, scales, levels)


def _quantize_buckets(v: np.ndarray, s: int, norm: str, rng: np.random.Generator):
    """Quantize the rows (buckets) of ``v``: (float32 scales, signed levels)."""
    if not np.isfinite(v).all():
        raise ValueError("gradient contains NaN or infinity")
    a = np.abs(v)
    amax = a.max(axis=1).astype(np.float64)
    if norm == "max":
        scale = amax.astype(np.float32)              # exact: it is one of the inputs
    else:
        # Squares of float32 values neither overflow nor underflow in float64.
        norm64 = np.sqrt(np.einsum("ij,ij->i", a, a, dtype=np.float64))
        with np.errstate(over="ignore"):
            scale = norm64.astype(np.float32)
        low = scale.astype(np.float64) < norm64       # round the scale up, never down
        scale[low] = np.nextafter(scale[low], np.float32(np.inf))
        if np.isinf(scale).any():
            raise ValueError("bucket 2-norm exceeds the float32 range")

    factor = np.where(scale > 0, s / np.where(scale > 0, scale.astype(np.float64), 1.0), 0.0)
    if factor.max() <= _F32_MAX and s <= _F32_EXACT:
        r = a * factor.astype(np.float32)[:, None]
        np.minimum(r, np.float32(s), out=r)           # float32 rounding may overshoot s by an ulp
    else:                  # subnormal scales or s beyond float32's integers: work in float64
        r = np.minimum(a * factor[:, None], float(s))
    low = np.floor(r)
    r -= low                                          # r is now the probability of rounding up
    up = rng.random(r.shape, dtype=r.dtype) < r
    lv = low.astype(_level_dtype(s))
    lv += up
    np.negative(lv, out=lv, where=(v < 0))
    return scale, lv


# ---------------------------------------------------------------------------------------- dense

def _pack_dense(levels: np.ndarray, s: int) -> bytes:
    # CHUNK is a multiple of 8 codes, so every chunk ends on a byte boundary.
    return b"".join(_pack_dense_chunk(levels[i:i + CHUNK], s) for i in range(0, len(levels), CHUNK))


def _unpack_dense(body: bytes, n: int, s: int) -> np.ndarray:
    w = dense_bits(s)
    out = np.empty(n, _level_dtype(s))
    step = CHUNK * w // 8                             # bytes per chunk of CHUNK codes
    for i in range(0, n, CHUNK):
        m = min(CHUNK, n - i)
        b0 = (i // CHUNK) * step
        out[i:i + m] = _unpack_dense_chunk(body[b0:b0 + (m * w + 7) // 8], m, s)
    return out


def _pack_dense_chunk(levels: np.ndarray, s: int) -> bytes:
    k = s.bit_length()
    w = k + 1
    mag = np.abs(levels.astype(np.int64) if w > 8 else levels.astype(np.int16))
    if w <= 8:
        code = (mag | ((levels < 0).astype(np.int16) << k)).astype(np.uint8)
        if 8 % w == 0:
            per = 8 // w
            pad = -len(code) % per
            if pad:
                code = np.concatenate([code, np.zeros(pad, np.uint8)])
            code = code.reshape(-1, per)
            out = code[:, 0] << np.uint8(8 - w)
            for j in range(1, per):                   # per <= 4 columns, not a per-element loop
                out |= code[:, j] << np.uint8(8 - w * (j + 1))
            return out.tobytes()
    else:
        code = mag | ((levels < 0).astype(np.int64) << k)
        if w == 16:
            return code.astype(">u2").tobytes()
    from .elias import write_bits
    data, _ = write_bits(code.astype(np.uint64), np.full(len(code), w, np.int64))
    return data


def _unpack_dense_chunk(body: bytes, n: int, s: int) -> np.ndarray:
    k = s.bit_length()
    w = k + 1
    buf = np.frombuffer(body, dtype=np.uint8)
    if w <= 8 and 8 % w == 0:
        per = 8 // w
        shifts = (8 - w * np.arange(1, per + 1)).astype(np.uint8)
        code = ((buf[:, None] >> shifts) & np.uint8((1 << w) - 1)).reshape(-1)
    elif w == 16:
        code = buf.view(">u2").astype(np.int64)
    else:
        from .elias import read_bits
        code = read_bits(body, n * w, np.arange(n, dtype=np.int64) * w,
                         np.full(n, w, np.int64)).astype(np.int64)
    if code[n:].any():
        raise ValueError("dense body: non-zero padding bits")
    code = code[:n]
    mag = code & ((1 << k) - 1)
    neg = (code >> k) & 1
    if mag.max() > s:
        raise ValueError(f"dense body: level {int(mag.max())} exceeds s = {s}")
    if (neg.astype(bool) & (mag == 0)).any():
        raise ValueError("dense body: negative zero level (non-canonical code)")
    lv = mag.astype(_level_dtype(s))
    np.negative(lv, out=lv, where=neg.astype(bool))
    return lv


# ---------------------------------------------------------------------------------------- elias

def _pairs(k: int) -> np.ndarray:
    """Which of ``k`` (gap, level) pairs, interleaved, carry a sign bit: the levels."""
    signed = np.zeros(2 * k, bool)
    signed[1::2] = True
    return signed


def _pack_elias(levels: np.ndarray) -> bytes:
    prefix, suffix = BitWriter(), BitWriter()
    nnz, prev = 0, -1
    for i in range(0, len(levels), CHUNK):
        idx = np.flatnonzero(levels[i:i + CHUNK]) + i
        if not len(idx):
            continue
        codes = np.empty(2 * len(idx), np.int64)
        codes[0::2] = np.diff(idx, prepend=prev)      # the gap to the previous non-zero, >= 1
        codes[1::2] = levels[idx]                     # the signed level
        prev, nnz = int(idx[-1]), nnz + len(idx)
        # Per non-zero: prefix 0^ng 1 0^nl 1, suffix gap_low(ng) sign level_low(nl).
        gamma_append(prefix, suffix, codes, _pairs(len(idx)))
    (pb, pbits), (sb, sbits) = prefix.getvalue(), suffix.getvalue()
    return _ELIAS_HEADER.pack(nnz, pbits, sbits) + pb + sb


def _unpack_elias(body: bytes, n: int, s: int) -> np.ndarray:
    if len(body) < _ELIAS_HEADER.size:
        raise ValueError("truncated QSGD message (Elias header)")
    nnz, pbits, sbits = _ELIAS_HEADER.unpack_from(body)
    if nnz > n:
        raise ValueError(f"Elias body claims {nnz} non-zeros in {n} coordinates")
    pb, sb = (pbits + 7) // 8, (sbits + 7) // 8
    if len(body) != _ELIAS_HEADER.size + pb + sb:
        raise ValueError("QSGD message length does not match its Elias section lengths")
    o = _ELIAS_HEADER.size
    prefix = UnaryReader(body[o:o + pb], pbits, chunk_bits=2 * CHUNK)
    words = _as_words(body[o + pb:o + pb + sb], sbits)
    lv = np.zeros(n, dtype=_level_dtype(s))
    pos, k, spos = -1, 0, 0                           # last position, non-zeros, suffix bits used
    pending = np.zeros(0, np.int64)                   # a gap length whose level is in the next piece
    while not prefix.done():
        lens = prefix.next_chunk()
        if len(pending):
            lens = np.concatenate([pending, lens])
        cut = len(lens) - len(lens) % 2
        lens, pending = lens[:cut], lens[cut:]
        if not len(lens):
            continue
        if k + len(lens) // 2 > nnz:
            raise ValueError(f"Elias body holds more than the {nnz} non-zeros it claims")
        codes, spos = gamma_values(lens, words, spos, sbits, _pairs(len(lens) // 2))
        gap, lev = codes[0::2], codes[1::2]
        idx = np.cumsum(gap) + pos
        if idx[-1] >= n:
            raise ValueError("Elias body: position past the end of the vector")
        if np.abs(lev).max() > s:
            raise ValueError(f"Elias body: level {int(np.abs(lev).max())} exceeds s = {s}")
        lv[idx] = lev
        pos, k = int(idx[-1]), k + len(gap)
    if k != nnz or len(pending):
        raise ValueError(f"Elias body holds {k} complete non-zeros, header says {nnz}")
    if nnz:
        prefix.finish()
    elif pbits:
        raise ValueError("Elias prefix section not empty for zero non-zeros")
    if spos != sbits:
        raise ValueError(f"Elias suffixes use {spos} bits, section has {sbits}")
    return lv


# ---------------------------------------------------------------------------------------- messages

def encode(q: Quantized, format: str = "dense") -> bytes:
    """Serialise ``q`` in the ``"dense"`` or ``"elias"`` wire format (see module docstring)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    _check_params(q.s, q.bucket_size, q.norm)
    if not 1 <= q.n <= MAX_N or len(q.levels) != q.n or len(q.scales) != -(-q.n // q.bucket_size):
        raise ValueError(f"inconsistent Quantized: n={q.n}, {len(q.levels)} levels, "
                         f"{len(q.scales)} scales for bucket size {q.bucket_size}")
    head = _HEADER.pack(MAGIC, VERSION, FORMATS.index(format), NORMS.index(q.norm), 0,
                        q.s, q.bucket_size, q.n)
    levels = np.asarray(q.levels)
    body = _pack_dense(levels, q.s) if format == "dense" else _pack_elias(levels)
    msg = b"".join([head, q.scales.astype("<f4").tobytes(), body])
    return msg + _CRC.pack(zlib.crc32(msg))


def decode(data: bytes) -> Quantized:
    """Parse a message from :func:`encode`; bit exact: ``decode(encode(q))`` equals ``q``.

    Raises
    ------
    ValueError
        Truncated, extended or corrupted messages (CRC-32, lengths, level ranges, padding).
    """
    data = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
    data = memoryview(data).cast("B")
    if len(data) < _HEADER.size + _CRC.size:
        raise ValueError(f"truncated QSGD message ({len(data)} bytes)")
    magic, version, fmt, norm, reserved, s, d, n = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a QSGD message (bad magic)")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise ValueError("QSGD message corrupted or truncated (CRC-32 mismatch)")
    if version != VERSION:
        raise ValueError(f"unsupported QSGD message version {version}")
    if fmt >= len(FORMATS) or norm >= len(NORMS) or reserved:
        raise ValueError("QSGD header: unknown format or norm")
    if not 1 <= s <= MAX_S or d < 1 or not 1 <= n <= MAX_N:
        raise ValueError(f"QSGD header: invalid s={s}, bucket={d}, n={n}")
    nb = -(-n // d)
    o = _HEADER.size + 4 * nb
    if o > len(data) - _CRC.size:
        raise ValueError("truncated QSGD message (scales)")
    scales = np.frombuffer(data, dtype="<f4", count=nb, offset=_HEADER.size).astype(np.float32)
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise ValueError("QSGD message: scales must be finite and non-negative")
    body = bytes(data[o:len(data) - _CRC.size])
    if fmt == 0:
        if len(body) != (n * dense_bits(s) + 7) // 8:
            raise ValueError("QSGD message length does not match n and s (dense format)")
        levels = _unpack_dense(body, n, s)
    else:
        levels = _unpack_elias(body, n, s)
    return Quantized(n, s, d, NORMS[norm], scales, levels)


# ------------------------------------------------------------------------------------ frames
# A frame is a dense message without its header and CRC: the scales and the packed levels. It is
# for links where both ends already know (n, s, bucket, norm), as the workers of one exchange do
# (lowbit.qsgd.exchange): on a chunk of a few hundred values the 28 bytes of header and CRC would
# cost as much as the scales, and TCP already checks the bytes.

def frame_bytes(n: int, s: int, bucket_size: int) -> int:
    """Length of a frame of ``n`` values: float32 scales, then ``n`` dense codes."""
    return 4 * -(-n // bucket_size) + (n * dense_bits(s) + 7) // 8


def encode_frame(q: Quantized) -> bytes:
    """The scales and dense body of ``q``, nothing else (:func:`frame_bytes` long)."""
    return q.scales.astype("<f4").tobytes() + _pack_dense(np.asarray(q.levels), q.s)


def decode_frame(data: bytes, n: int, s: int, bucket_size: int, norm: str) -> Quantized:
    """Parse a frame from :func:`encode_frame` of ``n`` values; ValueError on a wrong length or scale."""
    _check_params(s, bucket_size, norm)
    data = bytes(data)
    if len(data) != frame_bytes(n, s, bucket_size):
        raise ValueError(f"QSGD frame of {len(data)} bytes, expected {frame_bytes(n, s, bucket_size)} for n={n}")
    nb = -(-n // bucket_size)
    scales = np.frombuffer(data, dtype="<f4", count=nb).astype(np.float32)
    if not (np.isfinite(scales).all() and (scales >= 0).all()):
        raise ValueError("QSGD frame: scales must be finite and non-negative")
    return Quantized(n, s, bucket_size, norm, scales, _unpack_dense(data[4 * nb:], n, s))


def compress(v, s: int, bucket_size: int = 512, norm: str = "l2", format: str = "dense",
             rng=None) -> bytes:
    """``encode(quantize(v, ...), format)``."""
    return encode(quantize(v, s, bucket_size, norm, rng), format)


def decompress(data: bytes) -> np.ndarray:
    """``decode(data).dequantize()``: the float32 gradient a message stands for."""
    return decode(data).dequantize()
