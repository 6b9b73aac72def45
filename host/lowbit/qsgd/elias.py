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

__all__ = ["write_bits", "read_bits", "gamma_encode", "gamma_decode", "ilog2"]

_U64 = np.uint64


def ilog2(x: np.ndarray) -> np.ndarray:
    """``floor(log2 x)`` of positive integers below 2**53, exact, as int64."""
    x = np.asarray(x)
    # frexp is exact for integers representable in float64: x = m * 2**e with 0.5 <= m < 1.
    _, e = np.frexp(x.astype(np.float64))
    return (e - 1).astype(np.int64)


def write_bits(values: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate the low ``lengths[i]`` bits of ``values[i]`` (MSB first) into a byte string.

    Parameters
    ----------
    values : ndarray of uint64
        Each value must fit in its length (higher bits must be zero).
    lengths : ndarray of int
        Bit lengths, 0 to 64 each.

    Returns
    -------
    data : bytes
        The bits, padded with zeros to whole 64-bit words and then cut to whole bytes.
    nbits : int
        The number of bits written.
    """
    values = np.asarray(values, dtype=_U64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if values.shape != lengths.shape or values.ndim != 1:
        raise ValueError("values and lengths must be 1-D arrays of the same length")
    ends = np.cumsum(lengths)
    nbits = int(ends[-1]) if len(ends) else 0
    nwords = (nbits + 63) // 64 + 1
    words = np.zeros(nwords, dtype=_U64)
    keep = lengths > 0
    if not keep.all():
        values, lengths, ends = values[keep], lengths[keep], ends[keep]
    if len(values):
        starts = ends - lengths
        w = starts >> 6
        # shift = where the value's LSB lands in its first word; negative: it spills into w + 1.
        shift = 64 - (starts & 63) - lengths
        hi = np.where(shift >= 0, values << np.maximum(shift, 0).astype(_U64),
                      values >> np.maximum(-shift, 0).astype(_U64))
        # Codes never share bits, so OR == ADD; codes sorted by offset make each word's
        # contributions a contiguous run, which add.reduceat sums without ufunc.at.
        _scatter_or(words, w, hi)
        spill = shift < 0
        if spill.any():
            lo = values[spill] << (64 + shift[spill]).astype(_U64)
            _scatter_or(words, w[spill] + 1, lo)
    data = words.astype(">u8").tobytes()
    return data[: (nbits + 7) // 8], nbits


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
    words = _as_words(data, nbits)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    w = starts >> 6
    sh = (starts & 63).astype(_U64)
    # A 64-bit window starting at the field; the two-step shift avoids the undefined shift by 64.
    window = (words[w] << sh) | ((words[w + 1] >> _U64(1)) >> (_U64(63) - sh))
    out = window >> (64 - np.maximum(lengths, 1)).astype(_U64)   # lengths 1..64: shifts 63..0
    out[lengths == 0] = 0
    return out


def gamma_encode(x: np.ndarray) -> tuple[bytes, int, bytes, int]:
    """Elias gamma codes of positive integers (below 2**32), as (prefix, prefix_bits, suffix, suffix_bits)."""
    x = np.asarray(x, dtype=np.int64)
    if len(x) and (x.min() < 1 or x.max() >= 1 << 32):
        raise ValueError("Elias gamma codes integers in [1, 2**32)")
    n = ilog2(x) if len(x) else np.zeros(0, np.int64)
    # Prefix: N zeros then a one, i.e. the value 1 in N + 1 bits.
    prefix, pbits = write_bits(np.ones(len(x), _U64), n + 1)
    # Suffix: the low N bits (the leading one of x is the prefix's terminator).
    low = (x - (np.int64(1) << n)).astype(_U64)
    suffix, sbits = write_bits(low, n)
    return prefix, pbits, suffix, sbits


def gamma_decode(prefix: bytes | np.ndarray, prefix_bits: int, suffix: bytes | np.ndarray,
                 suffix_bits: int, count: int) -> np.ndarray:
    """Decode ``count`` gamma-coded values; raise ValueError on any inconsistency.

    Both sections must be used exactly: the prefix section must hold exactly ``count`` ones, the
    last of them at its final bit, and the suffix bits must add up to ``suffix_bits``.
    """
    pbytes = (prefix_bits + 7) // 8
    if len(prefix) < pbytes or len(suffix) < (suffix_bits + 7) // 8:
        raise ValueError("Elias section shorter than its stated length")
    bits = np.unpackbits(np.frombuffer(prefix, dtype=np.uint8, count=pbytes))
    ones = np.flatnonzero(bits)
    if len(ones) != count:
        raise ValueError(f"Elias prefix section holds {len(ones)} codes, expected {count}")
    if count == 0:
        if prefix_bits or suffix_bits:
            raise ValueError("Elias sections not empty for zero codes")
        return np.zeros(0, np.int64)
    if ones[-1] != prefix_bits - 1:
        raise ValueError("Elias prefix section has bits after its last code")
    n = np.diff(ones, prepend=-1) - 1
    if n.max() > 31:
        raise ValueError("Elias code longer than 63 bits (value >= 2**32)")
    ends = np.cumsum(n)
    if int(ends[-1]) != suffix_bits:
        raise ValueError(f"Elias suffixes need {int(ends[-1])} bits, section has {suffix_bits}")
    low = read_bits(suffix, suffix_bits, ends - n, n).astype(np.int64)
    return (np.int64(1) << n) | low
