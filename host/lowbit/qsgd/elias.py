"""Vectorised bit packing and Elias gamma coding.

Elias gamma codes a positive integer ``x`` with ``N = floor(log2 x)`` as ``N`` zero bits, a one
bit, then the low ``N`` bits of ``x`` (most significant first): ``2N + 1`` bits in all.

A stream of gamma codes is inherently sequential to parse bit by bit (where a code starts depends
on every code before it), which no NumPy expression can do. The wire layout therefore stores the
same bits in two sections (see docs/qsgd.md):

* the *prefix section*: for every value, its ``N`` zeros and the terminating one (a unary code of
  ``N``), all values back to back;
* the *suffix section*: for every value, its low ``N`` bits, all values back to back.

Every value costs exactly its ``2N + 1`` gamma bits; only their order differs from the interleaved
stream. Decoding is then vectorised: the ones of the prefix section give every ``N`` at once, a
prefix sum of the ``N`` gives every suffix offset, and the suffixes are read with 64-bit windows.

All bit strings are big-endian: bit 0 of a section is the most significant bit of its first byte.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BitWriter", "UnaryReader", "write_bits", "read_bits", "gamma_encode", "gamma_append",
           "gamma_values", "gamma_decode", "ilog2"]

_U64 = np.uint64


def ilog2(x: np.ndarray) -> np.ndarray:
    """``floor(log2 x)`` of positive integers below 2**53, exact, as int64."""
    x = np.asarray(x)
    # frexp is exact for integers representable in float64: x = m * 2**e with 0.5 <= m < 1.
    _, e = np.frexp(x.astype(np.float64))
    return (e - 1).astype(np.int64)


def write_bits(values: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate the low ``lengths[i]`` bits (0 to 64) of ``values[i]`` (MSB first).

    Returns the bytes (zero-padded to a whole byte) and the number of bits.
    """
    values, lengths = np.asarray(values), np.asarray(lengths)
    if values.shape != lengths.shape or values.ndim != 1:
        raise ValueError("values and lengths must be 1-D arrays of the same length")
    out = BitWriter(int(lengths.sum()))
    out.write(values, lengths)
    return out.getvalue()


def _scatter_or(words: np.ndarray, idx: np.ndarray, vals: np.ndarray) -> None:
    """``words[idx] |= vals`` for sorted ``idx`` with repeats, bits disjoint per word."""
    first = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    words[idx[first]] |= np.add.reduceat(vals, first)


def _as_words(data: bytes | np.ndarray, nbits: int) -> np.ndarray:
    """The section as native uint64 words, with two zero words of slack so window reads at the end stay in bounds."""
    nbytes = (nbits + 7) // 8
    buf = np.zeros(((nbytes + 7) // 8 + 2) * 8, dtype=np.uint8)
    buf[:nbytes] = np.frombuffer(data, dtype=np.uint8, count=nbytes)
    return buf.view(">u8").astype(_U64)


def read_bits(data: bytes | np.ndarray, nbits: int, starts: np.ndarray,
              lengths: np.ndarray) -> np.ndarray:
    """Read fields of ``lengths`` bits (0 to 64) at bit offsets ``starts`` of a big-endian section.

    The caller guarantees ``starts + lengths <= nbits``.
    """
    return _read_words(_as_words(data, nbits), starts, lengths)


def _read_words(words: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    w = starts >> 6
    sh = (starts & 63).astype(_U64)
    # A 64-bit window starting at the field; the two-step shift avoids the undefined shift by 64.
    window = (words[w] << sh) | ((words[w + 1] >> _U64(1)) >> (_U64(63) - sh))
    out = window >> (64 - np.maximum(lengths, 1)).astype(_U64)   # lengths 1..64: shifts 63..0
    out[lengths == 0] = 0
    return out


class BitWriter:
    """An append-only big-endian bit string over a growing uint64 word buffer.

    Appending in pieces (one per chunk of a gradient) keeps every temporary small; the buffer
    grows by doubling.
    """

    def __init__(self, capacity_bits: int = 1 << 16):
        self.words = np.zeros(max(2, capacity_bits // 64 + 2), dtype=_U64)
        self.nbits = 0

    def _reserve(self, nbits: int) -> None:
        need = (self.nbits + nbits) // 64 + 2
        if need > len(self.words):
            grown = np.zeros(max(need, 2 * len(self.words)), dtype=_U64)
            grown[:len(self.words)] = self.words
            self.words = grown

    def write(self, values: np.ndarray, lengths: np.ndarray) -> None:
        """Append the low ``lengths[i]`` bits (0 to 64) of each ``values[i]``, MSB first."""
        values = np.asarray(values, dtype=_U64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if not len(lengths):
            return
        ends = np.cumsum(lengths)
        total = int(ends[-1])
        self._reserve(total)
        keep = lengths > 0
        if not keep.all():
            values, lengths, ends = values[keep], lengths[keep], ends[keep]
        if len(values):
            starts = ends - lengths + self.nbits
            w = starts >> 6
            # shift: where the value's LSB lands in its first word; < 0: it spills into w + 1.
            shift = 64 - (starts & 63) - lengths
            hi = (values << np.maximum(shift, 0).astype(_U64)) >> np.maximum(-shift, 0).astype(_U64)
            _scatter_or(self.words, w, hi)
            spill = shift < 0
            if spill.any():
                _scatter_or(self.words, w[spill] + 1, values[spill] << (64 + shift[spill]).astype(_U64))
        self.nbits += total

    def write_unary(self, n: np.ndarray) -> None:
        """Append ``n[i]`` zeros then a one for each ``i`` (only the ones need setting)."""
        n = np.asarray(n, dtype=np.int64)
        if not len(n):
            return
        ones = np.cumsum(n + 1) - 1 + self.nbits
        total = int(ones[-1]) + 1 - self.nbits
        self._reserve(total)
        _scatter_or(self.words, ones >> 6, _U64(1) << (63 - (ones & 63)).astype(_U64))
        self.nbits += total

    def getvalue(self) -> tuple[bytes, int]:
        """(the bits padded with zeros to whole bytes, number of bits)."""
        return self.words.astype(">u8").tobytes()[: (self.nbits + 7) // 8], self.nbits


class UnaryReader:
    """Read a section of unary codes (``N`` zeros then a one) piece by piece.

    ``next_chunk()`` returns the ``N`` of the codes whose terminating one lies in the next
    ``chunk_bits`` bits (an empty array when none); ``finish()`` checks that the last code ends
    exactly at the end of the section.
    """

    def __init__(self, data, nbits: int, chunk_bits: int = 1 << 17):
        if len(data) < (nbits + 7) // 8:
            raise ValueError("Elias prefix section shorter than its stated length")
        self.data = np.frombuffer(data, dtype=np.uint8, count=(nbits + 7) // 8)
        self.nbits = nbits
        self.chunk_bytes = max(1, chunk_bits // 8)
        self.byte = 0            # next byte to read
        self.last_one = -1       # bit position of the previous terminator

    def done(self) -> bool:
        return self.byte >= len(self.data)

    def next_chunk(self) -> np.ndarray:
        b0 = self.byte
        self.byte = min(len(self.data), b0 + self.chunk_bytes)
        ones = np.flatnonzero(np.unpackbits(self.data[b0:self.byte])) + 8 * b0
        if not len(ones):
            return np.zeros(0, np.int64)
        n = np.diff(ones, prepend=self.last_one) - 1
        self.last_one = int(ones[-1])
        if n.max() > 31:
            raise ValueError("Elias code longer than 63 bits (value >= 2**32)")
        return n

    def finish(self) -> None:
        if self.last_one != self.nbits - 1:
            raise ValueError("Elias prefix section has bits after its last code")


def gamma_encode(x: np.ndarray) -> tuple[bytes, int, bytes, int]:
    """Elias gamma codes of positive integers (below 2**32), as (prefix, prefix_bits, suffix, suffix_bits)."""
    x = np.asarray(x, dtype=np.int64)
    if len(x) and (x.min() < 1 or x.max() >= 1 << 32):
        raise ValueError("Elias gamma codes integers in [1, 2**32)")
    prefix, suffix = BitWriter(), BitWriter()
    gamma_append(prefix, suffix, x)
    return (*prefix.getvalue(), *suffix.getvalue())


def gamma_append(prefix: BitWriter, suffix: BitWriter, x: np.ndarray, signed: np.ndarray | None = None) -> None:
    """Append the gamma codes of ``|x|`` (int64, ``|x|`` in [1, 2**32), unchecked) to the two sections.

    Where ``signed[i]`` is true, ``x[i]``'s suffix starts with a sign bit (1: negative) before its
    low bits: the QSGD codec's levels (:mod:`.codec`, format ``"elias"``) are coded so.
    """
    mag = np.abs(x)
    n = ilog2(mag)
    prefix.write_unary(n)                          # N zeros, then the leading one of |x|
    low = (mag - (np.int64(1) << n)).astype(_U64)  # the low N bits
    if signed is None:
        suffix.write(low, n)
    else:
        sign = ((x < 0) & signed).astype(_U64)
        suffix.write((sign << n.astype(_U64)) | low, n + signed)


def gamma_values(n: np.ndarray, words: np.ndarray, start: int, nbits: int,
                 signed: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The values of gamma codes whose prefixes gave ``n`` and whose suffixes start at bit ``start``
    of a suffix section of ``nbits`` bits (``words``: :func:`_as_words`); ``signed`` as for
    :func:`gamma_append`. Returns ``(values, the suffix bit after the last code)``."""
    width = n if signed is None else n + signed
    ends = np.cumsum(width) + start
    if not len(ends):
        return np.zeros(0, np.int64), start
    if int(ends[-1]) > nbits:
        raise ValueError("Elias suffix section shorter than its codes need")
    token = _read_words(words, ends - width, width).astype(np.int64)
    mag = (np.int64(1) << n) | (token & ((np.int64(1) << n) - 1))
    if signed is not None:
        mag = np.where(((token >> n) & 1).astype(bool) & signed, -mag, mag)
    return mag, int(ends[-1])


def gamma_decode(prefix: bytes | np.ndarray, prefix_bits: int, suffix: bytes | np.ndarray,
                 suffix_bits: int, count: int) -> np.ndarray:
    """Decode ``count`` gamma-coded values; raise ValueError on any inconsistency.

    Both sections must be used exactly: the prefix section must hold exactly ``count`` ones, the
    last of them at its final bit, and the suffix bits must add up to ``suffix_bits``.
    """
    reader = UnaryReader(prefix, prefix_bits)
    if len(suffix) < (suffix_bits + 7) // 8:
        raise ValueError("Elias suffix section shorter than its stated length")
    parts = []
    while not reader.done():
        parts.append(reader.next_chunk())
    n = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if len(n) != count:
        raise ValueError(f"Elias prefix section holds {len(n)} codes, expected {count}")
    if not count:
        if prefix_bits or suffix_bits:
            raise ValueError("Elias sections not empty for zero codes")
        return n
    reader.finish()
    values, used = gamma_values(n, _as_words(suffix, suffix_bits), 0, suffix_bits)
    if used != suffix_bits:
        raise ValueError(f"Elias suffixes need {used} bits, section has {suffix_bits}")
    return values
