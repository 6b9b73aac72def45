"""Quantize and pack in one compiled pass, on every core: the fast path of ``lowbit.contract.quant`` + ``lowbit.contract.format``.

:func:`quantize_pack` double-samples float data (any level set, b = 1..8) and writes the lines of
:mod:`lowbit.contract.format` directly, in either layout (``planes`` or ``woven``), without ever holding the
codes of more than one chunk. It is the production path; ``lowbit.contract.quant.double_sample`` and
``lowbit.contract.format.pack_codes`` stay the readable reference it is tested against
(tests/test_fastquant.py): statistically (unbiasedness, the per-value distribution of codes) and
exactly (code ranges, packing, layout).

Design
------
* **One layout function.** Both layouts store eight consecutive codes of a row (features
  ``8q .. 8q + 7``, never across rows since rows are padded to 32 codes) as one byte per bit
  plane, the planes of one unit in ``b + 1`` consecutive lines. Where those bytes land is decided
  only by :func:`group_line` ((row, q) -> (line of plane 0, byte)); :func:`code_position`
  ((row, feature, plane) -> (line, bit)) and :func:`chunk_lines` follow from it. A layout change
  in ``lowbit.contract.format`` is an edit there; the tests comparing with ``pack_codes`` fail until it is
  made.
* **Chunks.** Rows are cut into chunks of a whole number of woven row groups (``W / 32`` rows,
  a multiple of the rows that fill whole ``planes`` blocks), so in both layouts every chunk owns
  its lines and chunks run in parallel (``numba.prange``) with no shared writes. A chunk's codes
  go to a small per-chunk byte buffer (row-major, rows padded), then every eight codes are
  transposed to bit planes in one 8x8 bit transpose (as ``lowbit.contract.format``) and their bytes stored.
* **Random numbers.** Counter-based: the two uniforms of value ``i`` of chunk ``c`` are the two
  32-bit halves of ``mix64(chunk_key(c) + (i + 1) * GAMMA)`` (SplitMix64's output function over
  its Weyl sequence), with ``chunk_key`` a hash of (seed, copy, c). Chunk boundaries depend only
  on the shape, never on the thread count or the layout, so the codes are a function of (data,
  levels, seed, copy) alone: the two layouts of one seed hold the same codes.
* **Interval.** Evenly spaced levels (``uniform_levels``) need no search: the interval is
  ``floor((x - l_0) / step)`` in float64, a branch-free loop the compiler vectorises. Near a
  level the product may round across it; the probability is then clamped to [0, 1], which gives
  the code of the level itself, so codes stay in the value's interval and values on a level are
  exact. Other levels sit on the 2^-14 grid, so a 32K-entry table (one uint8 per grid cell, it
  fits in L1) gives the interval of any value in one load, exactly the reference's
  (``searchsorted(levels, x, "right") - 1`` clipped) for float32 input.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .contract.format import LineFormat
from .contract.fixed import LEVEL_ONE
from .contract.quant import fixed_levels_value

#: Cells of the level grid over [-1, 1): one per 2^-14, the levels' resolution.
_CELLS = 2 * LEVEL_ONE
#: Target values per chunk: the chunk's code buffers (1 byte per slot, twice at b = 8) stay in L2.
_CHUNK_VALUES = 1 << 16
#: SplitMix64's Weyl increment (the golden ratio in 64 bits).
_GAMMA = np.uint64(0x9E3779B97F4A7C15)


# ------------------------------------------------------------------------------------ layout
# The one place that knows where codes live in lines (lowbit.contract.format). ``geom`` is (padded_features,
# log2(line_bits), code_bits, woven, log2(samples_per_line), chunks), from :func:`geometry`.

@njit(inline="always", cache=True)
def group_line(row, q, geom):
    """(row, group ``q`` of features 8q .. 8q + 7) -> (line of plane 0, byte): plane ``p`` of the
    group is byte ``byte`` of line ``line + p``, feature ``8q + t`` at bit ``t``.

    ``planes``: codes are a row-major stream (rows padded) cut into blocks of W codes, a block
    stored as b + 1 consecutive lines. ``woven``: line ``(g * chunks + c) * (b + 1) + p`` holds
    bit ``p`` of 32 features (chunk c) of the W / 32 rows of group g, row ``s`` in word ``s``.
    """
    if geom[3]:
        unit = (row >> geom[4]) * geom[5] + (q >> 2)
        return unit * geom[2], ((row & ((1 << geom[4]) - 1)) << 2) | (q & 3)
    n = row * geom[0] + 8 * q
    return (n >> geom[1]) * geom[2], (n & ((1 << geom[1]) - 1)) >> 3


@njit(cache=True)
def code_position(row, feature, plane, geom):
    """(row, feature, plane) -> (line, bit): bit ``plane`` of the code of (row, feature)."""
    line, byte = group_line(row, feature >> 3, geom)
    return line + plane, 8 * byte + (feature & 7)


@njit(inline="always", cache=True)
def chunk_lines(row0, row1, geom):
    """``(first, stop)``: the lines holding rows ``row0 .. row1``, ``row0`` at a chunk boundary."""
    if geom[3]:
        per_group = geom[5] * geom[2]
        return (row0 >> geom[4]) * per_group, ((row1 + (1 << geom[4]) - 1) >> geom[4]) * per_group
    w = 1 << geom[1]
    return ((row0 * geom[0]) >> geom[1]) * geom[2], ((row1 * geom[0] + w - 1) >> geom[1]) * geom[2]


def geometry(fmt: LineFormat) -> np.ndarray:
    """The layout parameters the compiled functions take (int64[6])."""
    return np.array([fmt.padded_features, int(math.log2(fmt.line_bits)), fmt.code_bits, fmt.layout == "woven",
                     int(math.log2(fmt.samples_per_line)), fmt.chunks], dtype=np.int64)


def rows_per_group(fmt: LineFormat) -> int:
    """The fewest rows whose codes fill whole units (``planes`` blocks, ``woven`` row groups)."""
    if fmt.layout == "woven":
        return fmt.samples_per_line
    return fmt.line_bits // math.gcd(fmt.padded_features, fmt.line_bits)


# ------------------------------------------------------------------------------ bit planes
@njit(inline="always", cache=True)
def _transpose8(x):
    """8x8 bit transpose of a uint64 (as ``lowbit.contract.format._transpose8``): byte k <-> bit k of each byte."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@njit(inline="always", cache=True)
def _gather_bits(x):
    """Bit 0 of each byte of ``x`` (bytes 0 or 1) -> bit t of one byte (a multiply gathers them)."""
    return (x * np.uint64(0x0102040810204080)) >> np.uint64(56)


@njit(inline="always", cache=True)
def _spread_bits(b):
    """Inverse of :func:`_gather_bits`: bit t of a byte -> byte t (0 or 1)."""
    x = (np.uint64(b) * np.uint64(0x0101010101010101)) & np.uint64(0x8040201008040201)
    return ((x + np.uint64(0x7F7F7F7F7F7F7F7F)) >> np.uint64(7)) & np.uint64(0x0101010101010101)


@njit(inline="always", cache=True)
def _eight_adjacent(row, q, line, byte, groups, geom):
    """Whether groups ``q .. q + 7`` of ``row`` are the aligned bytes ``byte .. byte + 7`` of the
    same lines (``(line, byte)`` is group q's place): asked of :func:`group_line`, which says yes
    for most of a ``planes`` row and never in ``woven`` (four groups per row word)."""
    if byte & 7 or q + 8 > groups:
        return False
    last_line, last_byte = group_line(row, q + 7, geom)
    return last_line == line and last_byte == byte + 7


@njit(inline="always", cache=True)
def _swap_bytes(a, b, shift, mask):
    """One stage of an 8x8 byte transpose: bytes ``g + d`` of ``a`` <-> bytes ``g`` of ``b``."""
    t = ((a >> shift) ^ b) & mask
    return a ^ (t << shift), b ^ t


@njit(inline="always", cache=True)
def _transpose_bytes(a0, a1, a2, a3, a4, a5, a6, a7):
    """8x8 byte transpose of eight uint64 (byte g of word p <-> byte p of word g), in three
    stages of swaps at distance 1, 2, 4; its own inverse."""
    m1, m2, m4 = np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF), np.uint64(0x00000000FFFFFFFF)
    s8, s16, s32 = np.uint64(8), np.uint64(16), np.uint64(32)
    a0, a1 = _swap_bytes(a0, a1, s8, m1)
    a2, a3 = _swap_bytes(a2, a3, s8, m1)
    a4, a5 = _swap_bytes(a4, a5, s8, m1)
    a6, a7 = _swap_bytes(a6, a7, s8, m1)
    a0, a2 = _swap_bytes(a0, a2, s16, m2)
    a1, a3 = _swap_bytes(a1, a3, s16, m2)
    a4, a6 = _swap_bytes(a4, a6, s16, m2)
    a5, a7 = _swap_bytes(a5, a7, s16, m2)
    a0, a4 = _swap_bytes(a0, a4, s32, m4)
    a1, a5 = _swap_bytes(a1, a5, s32, m4)
    a2, a6 = _swap_bytes(a2, a6, s32, m4)
    a3, a7 = _swap_bytes(a3, a7, s32, m4)
    return a0, a1, a2, a3, a4, a5, a6, a7


@njit(cache=True)
def _pack_rows(lo, hi, row0, rows, geom, out, line_base):
    """Store rows ``row0 .. row0 + rows`` from their codes in ``lo`` (low 8 bits, row-major, rows
    padded) and ``hi`` (bit 8, used if b = 8) into ``out``, whose first row is line ``line_base``.

    As in :func:`decode_row`, eight aligned groups of a ``planes`` row go out as one word per
    plane line (bit transposes, then an 8x8 byte transpose); other groups byte by byte."""
    nbits = geom[2]
    low = min(nbits, 8)
    groups = geom[0] >> 3
    lo64 = lo.view(np.uint64)
    hi64 = hi.view(np.uint64)
    # Flat unsigned indices: no negative-index wraparound to check on every store.
    flat = out.reshape(-1)
    flat64 = flat.view(np.uint64)
    lb = np.uint64(out.shape[1])
    lw = out.shape[1] >> 3
    for r in range(rows):
        q = 0
        while q < groups:
            line, byte = group_line(row0 + r, q, geom)
            adjacent = _eight_adjacent(row0 + r, q, line, byte, groups, geom)
            line -= line_base
            k = r * groups + q
            if adjacent:
                a0, a1, a2, a3 = (_transpose8(lo64[k]), _transpose8(lo64[k + 1]), _transpose8(lo64[k + 2]),
                                  _transpose8(lo64[k + 3]))
                a4, a5, a6, a7 = (_transpose8(lo64[k + 4]), _transpose8(lo64[k + 5]), _transpose8(lo64[k + 6]),
                                  _transpose8(lo64[k + 7]))
                a0, a1, a2, a3, a4, a5, a6, a7 = _transpose_bytes(a0, a1, a2, a3, a4, a5, a6, a7)
                w = line * lw + (byte >> 3)
                flat64[w] = a0
                if low > 1:
                    flat64[w + lw] = a1
                if low > 2:
                    flat64[w + 2 * lw] = a2
                if low > 3:
                    flat64[w + 3 * lw] = a3
                if low > 4:
                    flat64[w + 4 * lw] = a4
                if low > 5:
                    flat64[w + 5 * lw] = a5
                if low > 6:
                    flat64[w + 6 * lw] = a6
                if low > 7:
                    flat64[w + 7 * lw] = a7
                if nbits > 8:
                    h = np.uint64(0)
                    for g in range(8):
                        h |= _gather_bits(hi64[k + g]) << np.uint64(8 * g)
                    flat64[w + 8 * lw] = h
                q += 8
                continue
            a = np.uint64(line) * lb + np.uint64(byte)
            x = _transpose8(lo64[k])
            for p in range(low):
                flat[a + np.uint64(p) * lb] = np.uint8((x >> np.uint64(8 * p)) & np.uint64(0xFF))
            if nbits > 8:  # b = 8: the ninth plane
                flat[a + np.uint64(8) * lb] = np.uint8(_gather_bits(hi64[k]))
            q += 1


@njit(cache=True)
def decode_row(lines, row, geom, lo, hi):
    """One row's codes from its bit planes (inverse of :func:`_pack_rows`): bits 0-7 into ``lo``,
    bit 8 (b = 8 only; else ``hi`` is left alone) into ``hi``, both uint8 of ``padded_features``.

    In the ``planes`` layout eight consecutive groups of a row are eight consecutive bytes of each
    plane line, mostly 8-byte aligned: they are read as one word per plane and turned into one
    word per group by an 8x8 byte transpose, then each by the 8x8 bit transpose (about half the
    operations of gathering every group's bytes one by one, which the other groups still do)."""
    nbits = geom[2]
    low = min(nbits, 8)
    lo64 = lo.view(np.uint64)
    hi64 = hi.view(np.uint64)
    flat = lines.reshape(-1)
    flat64 = flat.view(np.uint64)
    lb = np.uint64(lines.shape[1])
    lw = lines.shape[1] >> 3  # words per line
    groups = geom[0] >> 3
    zero = np.uint64(0)
    q = 0
    while q < groups:
        line, byte = group_line(row, q, geom)
        if _eight_adjacent(row, q, line, byte, groups, geom):
            w = line * lw + (byte >> 3)
            a0 = flat64[w]
            a1 = flat64[w + lw] if low > 1 else zero
            a2 = flat64[w + 2 * lw] if low > 2 else zero
            a3 = flat64[w + 3 * lw] if low > 3 else zero
            a4 = flat64[w + 4 * lw] if low > 4 else zero
            a5 = flat64[w + 5 * lw] if low > 5 else zero
            a6 = flat64[w + 6 * lw] if low > 6 else zero
            a7 = flat64[w + 7 * lw] if low > 7 else zero
            a0, a1, a2, a3, a4, a5, a6, a7 = _transpose_bytes(a0, a1, a2, a3, a4, a5, a6, a7)
            lo64[q] = _transpose8(a0)
            lo64[q + 1] = _transpose8(a1)
            lo64[q + 2] = _transpose8(a2)
            lo64[q + 3] = _transpose8(a3)
            lo64[q + 4] = _transpose8(a4)
            lo64[q + 5] = _transpose8(a5)
            lo64[q + 6] = _transpose8(a6)
            lo64[q + 7] = _transpose8(a7)
            if nbits > 8:
                h = flat64[w + 8 * lw]
                for g in range(8):
                    hi64[q + g] = _spread_bits((h >> np.uint64(8 * g)) & np.uint64(0xFF))
            q += 8
            continue
        a = np.uint64(line) * lb + np.uint64(byte)
        x = np.uint64(0)
        for p in range(low):
            x |= np.uint64(flat[a + np.uint64(p) * lb]) << np.uint64(8 * p)
        lo64[q] = _transpose8(x)
        if nbits > 8:
            hi64[q] = _spread_bits(flat[a + np.uint64(8) * lb])
        q += 1


# ------------------------------------------------------------------------------------ random
@njit(inline="always", cache=True)
def _mix64(z):
    """SplitMix64's output function: a bijective avalanche of 64 bits."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always", cache=True)
def _chunk_key(key, chunk):
    return _mix64(key ^ _mix64(np.uint64(chunk) * _GAMMA + np.uint64(0x632BE59BD9B4E019)))


def stream_key(seed, copy: int = 0) -> np.uint64:
    """The 64-bit key of copy ``copy`` under ``seed`` (an int, or a Generator that supplies one)."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 1 << 63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or a numpy Generator, got {seed!r}")
    s = np.random.SeedSequence([int(seed) & ((1 << 64) - 1), int(copy)])
    return np.uint64(s.generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------------------- quantizing
def level_tables(levels_q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lv, inv_width, interval)``: exact level values, 1/width per interval (0 if empty), and the
    interval of every point of the level grid (``interval[j]`` for ``x`` in ``[-1 + j 2^-14, -1 + (j+1) 2^-14)``).

    Levels are multiples of 2^-14 (LEVEL_FRAC), so no level lies strictly inside a grid cell and
    the cell alone decides the interval: no search at run time.
    """
    lv = fixed_levels_value(levels_q)
    if lv.size < 2 or lv.size > 256:
        raise ValueError(f"a level set has 2..256 levels, got {lv.size}")
    width = np.diff(lv)
    inv = np.divide(1.0, width, out=np.zeros_like(width), where=width > 0)
    grid = -1.0 + np.arange(_CELLS + 1) / LEVEL_ONE
    k = np.clip(np.searchsorted(lv, grid, side="right") - 1, 0, lv.size - 2).astype(np.uint8)
    return lv, inv, k


def evenly_spaced(levels_q) -> bool:
    """Whether the levels are evenly spaced (``uniform_levels``): then the interval is arithmetic."""
    d = np.diff(np.asarray(levels_q, dtype=np.int64))
    return bool(d[0] > 0 and np.all(d == d[0]))


@njit(inline="always", cache=True)
def _two_draws(p, h):
    """How many of two roundings go up, each with probability ``p``, from 64 random bits ``h``:
    two 32-bit uniforms u, each up if ``u < T = round(p 2^32)``, so with probability ``p`` to 2^-33,
    exactly 0 for ``p <= 0`` and exactly 1 for ``p >= 1`` (no clamp needed). Integer compares: no
    int-to-float conversion per draw."""
    t = np.int64(p * 4294967296.0 + 0.5)  # truncation: 0 for any p in (-2^-33, 0]
    return np.int64(np.int64(h & np.uint64(0xFFFFFFFF)) < t) + np.int64(np.int64(h >> np.uint64(32)) < t)


@njit(inline="always", cache=True)
def _even_code(x, lv0, width, inv, kmax, h):
    """The code of ``x`` for evenly spaced levels ``lv0 + k width``: no lookup, so it vectorises.
    Near a level, k may be off by one; p is then just outside [0, 1] and the draw gives the
    level's own code, as the exact interval would."""
    x = min(max(np.float64(x), -1.0), 1.0)
    k = min(np.int64((x - lv0) * inv), kmax)  # x - lv0 >= 0: truncation is floor
    return 2 * k + _two_draws((x - (lv0 + k * width)) * inv, h)


@njit(inline="always", cache=True)
def _table_code(x, lv, inv, cell, h):
    """The code of ``x`` for any levels, through the grid table."""
    x = min(max(np.float64(x), -1.0), 1.0)
    k = np.int64(cell[int((x + 1.0) * LEVEL_ONE)])  # exact for float32 x: (x + 1) 2^14 is exact
    # A float64 x within one ulp below a level can land in the level's cell: p a hair below 0 draws 0.
    return 2 * k + _two_draws((x - lv[k]) * inv[k], h)


@njit(inline="always", cache=True)
def _even_row(x, out, ctr, lv0, width, inv, kmax):
    """One row's codes for evenly spaced levels; value ``j`` draws from ``mix64(ctr + j GAMMA)``.

    The row is walked as four independent quarters in one loop: each value's hash is a chain of
    three 64-bit multiplies (~50 cycles of latency per vector), and one chain per iteration left
    the loop latency-bound at half its throughput whenever the out-of-order window could not
    overlap iterations (measured: 35 ms -> 22 ms for 16M values). The draws are the same."""
    f = x.shape[0]
    h = f // 4
    x0, x1, x2, x3 = x[:h], x[h : 2 * h], x[2 * h : 3 * h], x[3 * h : 4 * h]
    o0, o1, o2, o3 = out[:h], out[h : 2 * h], out[2 * h : 3 * h], out[3 * h : 4 * h]
    step = np.uint64(h) * _GAMMA
    c0 = ctr
    c1 = c0 + step
    c2 = c1 + step
    c3 = c2 + step
    for j in range(h):
        g = np.uint64(j) * _GAMMA
        o0[j] = _even_code(x0[j], lv0, width, inv, kmax, _mix64(c0 + g))
        o1[j] = _even_code(x1[j], lv0, width, inv, kmax, _mix64(c1 + g))
        o2[j] = _even_code(x2[j], lv0, width, inv, kmax, _mix64(c2 + g))
        o3[j] = _even_code(x3[j], lv0, width, inv, kmax, _mix64(c3 + g))
    for j in range(4 * h, f):
        out[j] = _even_code(x[j], lv0, width, inv, kmax, _mix64(ctr + np.uint64(j) * _GAMMA))


@njit(cache=True)
def _quantize_chunk(X, r0, r1, even, lv, inv, cell, ck, pf, codes):
    """Codes of rows ``r0 .. r1`` of ``X`` into ``codes`` (uint16, row-major, rows padded to ``pf``
    with code 0)."""
    f = X.shape[1]
    kmax = lv.size - 2
    lv0, width, inv0 = lv[0], lv[1] - lv[0], inv[0]
    for r in range(r0, r1):
        x = X[r]
        # A slice per row: an index the compiler cannot prove >= 0 (codes[base + j]) stops
        # vectorisation, and rewriting one row buffer for every row runs at half the speed.
        out = codes[(r - r0) * pf : (r - r0) * pf + f]
        codes[(r - r0) * pf + f : (r - r0 + 1) * pf] = 0  # padding features are code 0
        ctr = ck + np.uint64((r - r0) * f + 1) * _GAMMA  # value i of the chunk draws at ck + i GAMMA, i >= 1
        if even:
            _even_row(x, out, ctr, lv0, width, inv0, kmax)
        else:
            for j in range(f):
                out[j] = _table_code(x[j], lv, inv, cell, _mix64(ctr + np.uint64(j) * _GAMMA))


@njit(cache=True)
def _split(codes, lo, hi, nine):
    """uint16 codes -> their low bytes ``lo`` and (if ``nine``, b = 8) bit 8 ``hi``: the packer's input."""
    for i in range(codes.size):
        lo[i] = np.uint8(codes[i] & 0xFF)
    if nine:
        for i in range(codes.size):
            hi[i] = np.uint8(codes[i] >> 8)


@njit(parallel=True, cache=True)
def _quantize_pack_kernel(X, row0, nchunks, crows, even, lv, inv, cell, key, geom, out, line_base):
    """Chunks ``0 .. nchunks`` of rows of ``X`` (global row ``row0 + r``) into ``out``'s lines."""
    n = X.shape[0]
    pf = geom[0]
    nine = geom[2] > 8
    for c in prange(nchunks):
        r0 = c * crows
        r1 = min(n, r0 + crows)
        codes = np.empty(crows * pf, dtype=np.uint16)  # rows r1 - r0 .. crows are never packed
        _quantize_chunk(X, r0, r1, even, lv, inv, cell, _chunk_key(key, row0 // crows + c), pf, codes)
        lo = np.empty(crows * pf, dtype=np.uint8)
        hi = np.empty(crows * pf if nine else 0, dtype=np.uint8)
        _split(codes, lo, hi, nine)
        if r1 - r0 < crows:  # the last chunk: its lines' padding (rows past the end) is code 0
            first, stop = chunk_lines(row0 + r0, row0 + r1, geom)
            out[first - line_base : stop - line_base] = 0
        _pack_rows(lo, hi, row0 + r0, r1 - r0, geom, out, line_base)


def chunk_rows(fmt: LineFormat) -> int:
    """Rows per chunk (and per RNG stream): whole woven row groups (so also whole ``planes``
    blocks), about 64K values; the same for both layouts, so both hold the same codes."""
    g = fmt.samples_per_line
    return g * max(1, _CHUNK_VALUES // (g * fmt.padded_features))


def line_span(fmt: LineFormat, row0: int, row1: int) -> tuple[int, int]:
    """``(first, stop)``: the lines holding rows ``row0 .. row1`` (row0 at a chunk boundary)."""
    first, stop = chunk_lines(row0, row1, geometry(fmt))
    return int(first), int(stop)


def quantize_pack(X, fmt: LineFormat, levels_q, *, seed=0, copy: int = 0, out=None, sink=None, transform=None,
                  progress=None, super_rows: int | None = None) -> np.ndarray | None:
    """Double-sample ``X`` against ``levels_q`` and pack it: one copy's lines, in ``fmt.layout``.

    Parameters
    ----------
    X : ndarray (N, F), float32 or float64
        Normalised features (clipped to [-1, 1] on the fly); a ``np.memmap`` is read in place,
        one super-chunk of rows at a time. Must be finite (not checked here: callers validate,
        e.g. in ``transform``).
    fmt : LineFormat
        Either layout; the codes do not depend on it.
    levels_q : ndarray int16 (2^b,)
        The engine's levels (``lowbit.contract.quant.levels_to_fixed``).
    seed : int or numpy.random.Generator
        With ``copy``, selects the random streams (:func:`stream_key`).
    copy : int
        Copy index: copies of one seed are independent.
    out : ndarray (lines_per_copy(N), line_bytes) uint8, optional
        Where to write (e.g. a slice of a larger buffer); allocated if None and no ``sink``.
    sink : callable(lines), optional
        Instead of ``out``: receives each super-chunk's lines in order (e.g. to stream them to a
        file); nothing is returned. Working memory is then one super-chunk.
    transform : callable(X_rows) -> ndarray, optional
        Applied to each super-chunk of rows of ``X`` before quantizing (e.g. normalising raw data
        read from a memmap); its output must have ``fmt.features`` columns.
    progress : callable(rows_done) or None
        Called after each super-chunk with the number of rows it covered.
    super_rows : int, optional
        Rows per call of the compiled kernel (default: about 4M values); only the progress and
        working-memory granularity depend on it, never the result.

    Returns
    -------
    ndarray (lines_per_copy(N), line_bytes) uint8, or None with a ``sink``
    """
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    n = X.shape[0] if X.ndim == 2 else 0
    if n < 1 or (transform is None and X.shape[1] != fmt.features):
        raise ValueError(f"X must have shape (rows >= 1, {fmt.features}), got {X.shape}")
    lines = fmt.lines_per_copy(n)
    if sink is None:
        if out is None:
            out = np.empty((lines, fmt.line_bytes), dtype=np.uint8)
        if out.shape != (lines, fmt.line_bytes) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be ({lines}, {fmt.line_bytes}) uint8 and C-contiguous, got {out.shape} "
                             f"{out.dtype}")
    lv, inv, cell = level_tables(levels_q)
    if lv.size != 1 << fmt.bits:
        raise ValueError(f"{fmt.bits} bits need {1 << fmt.bits} levels, got {lv.size}")
    even = evenly_spaced(levels_q)
    geom = geometry(fmt)
    key = stream_key(seed, copy)
    cr = chunk_rows(fmt)
    step = cr * max(1, (super_rows or (1 << 22) // fmt.padded_features) // cr)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        part = X[r0:r1] if transform is None else transform(X[r0:r1])
        part = np.ascontiguousarray(part)  # a contiguous memmap slice is read in place
        if part.shape != (r1 - r0, fmt.features):
            raise ValueError(f"transformed rows have shape {part.shape}, expected {(r1 - r0, fmt.features)}")
        if part.dtype not in (np.float32, np.float64):
            part = part.astype(np.float64)
        nch = -(-(r1 - r0) // cr)
        if sink is None:
            _quantize_pack_kernel(part, r0, nch, cr, even, lv, inv, cell, key, geom, out, 0)
        else:
            first, stop = line_span(fmt, r0, r1)
            buf = np.empty((stop - first, fmt.line_bytes), dtype=np.uint8)
            _quantize_pack_kernel(part, r0, nch, cr, even, lv, inv, cell, key, geom, buf, first)
            sink(buf)
        if progress is not None:
            progress(r1 - r0)
    return out if sink is None else None


# -------------------------------------------------------------------------- packing, unpacking
@njit(parallel=True, cache=True)
def _pack_kernel(codes, nchunks, crows, geom, out):
    n, f = codes.shape
    pf = geom[0]
    for c in prange(nchunks):
        r0 = c * crows
        r1 = min(n, r0 + crows)
        padded = np.zeros(crows * pf, dtype=np.uint16)
        for r in range(r0, r1):
            padded[(r - r0) * pf : (r - r0) * pf + f] = codes[r]
        lo = np.empty(crows * pf, dtype=np.uint8)
        hi = np.empty(crows * pf, dtype=np.uint8)
        _split(padded, lo, hi, True)
        if r1 - r0 < crows:
            first, stop = chunk_lines(r0, r1, geom)
            out[first:stop] = 0
        _pack_rows(lo, hi, r0, r1 - r0, geom, out, 0)


def pack_codes_fast(codes, fmt: LineFormat) -> np.ndarray:
    """``lowbit.contract.format.pack_codes`` through the compiled layout function (same result, bit for
    bit), for either layout ``fmt.layout`` names."""
    codes = np.ascontiguousarray(codes, dtype=np.uint16)
    if codes.ndim != 2 or codes.shape[1] != fmt.features or codes.shape[0] < 1:
        raise ValueError(f"codes must have shape (rows >= 1, {fmt.features}), got {codes.shape}")
    if codes.max() >= fmt.codes:
        raise ValueError(f"codes out of range for {fmt.bits}-bit double sampling: valid 0..{fmt.codes - 1}")
    out = np.empty((fmt.lines_per_copy(codes.shape[0]), fmt.line_bytes), dtype=np.uint8)
    cr = chunk_rows(fmt)
    _pack_kernel(codes, -(-codes.shape[0] // cr), cr, geometry(fmt), out)
    return out


@njit(cache=True)
def unpack_rows(lines, row0, row1, features, geom, lo, hi, codes):
    """Codes of rows ``row0 .. row1`` into ``codes[: row1 - row0]`` (uint16); ``lo`` and ``hi``
    are zeroed scratch of ``padded_features`` uint8."""
    for r in range(row0, row1):
        decode_row(lines, r, geom, lo, hi)
        out = codes[r - row0]
        for j in range(features):
            out[j] = np.uint16(lo[j]) | (np.uint16(hi[j]) << np.uint16(8))


@njit(cache=True)
def _max_code(lines, rows, geom, lo, hi):
    top = 0
    for r in range(rows):
        decode_row(lines, r, geom, lo, hi)
        for j in range(lo.size):  # padding codes are 0
            top = max(top, np.int64(lo[j]) | (np.int64(hi[j]) << 8))
    return top


def max_code(lines, fmt: LineFormat, rows: int, copies: int = 1) -> int:
    """The largest code in ``copies`` packed copies (validation of loaded data), a row at a time."""
    per = fmt.lines_per_copy(rows)
    lo, hi = np.zeros(fmt.padded_features, np.uint8), np.zeros(fmt.padded_features, np.uint8)
    geom = geometry(fmt)
    return max(int(_max_code(np.ascontiguousarray(lines[k * per : (k + 1) * per]), rows, geom, lo, hi))
               for k in range(copies))


def unpack_codes_fast(lines, fmt: LineFormat, rows: int) -> np.ndarray:
    """``lowbit.contract.format.unpack_codes`` through the compiled layout function: ``(rows, F)`` uint16."""
    lines = np.ascontiguousarray(lines, dtype=np.uint8)
    need = fmt.lines_per_copy(rows)
    if lines.ndim != 2 or lines.shape[1] != fmt.line_bytes or lines.shape[0] < need:
        raise ValueError(f"need at least {need} lines of {fmt.line_bytes} bytes for {rows} rows, got {lines.shape}")
    codes = np.empty((rows, fmt.features), dtype=np.uint16)
    unpack_rows(lines, 0, rows, fmt.features, geometry(fmt), np.zeros(fmt.padded_features, np.uint8),
                np.zeros(fmt.padded_features, np.uint8), codes)
    return codes


@njit(cache=True)
def _max_magnitude_bits(bits, mask):
    """max of ``bits & mask`` (the magnitude bits of IEEE floats, as unsigned integers: ordered
    as the magnitudes, NaN and inf above every finite value). An integer max vectorises; a
    float max with NaN handling does not."""
    top = bits[0] & mask
    for i in range(bits.size):
        v = bits[i] & mask
        top = v if v > top else top
    return top


def finite_abs_max(X, what: str = "X") -> float:
    """max |x| of float data after checking it is finite, in one compiled pass with no copy
    (``lowbit.contract.quant.check_finite`` converts to float64 first: 2x the memory of float32 data).

    Raises ValueError naming the first NaN/inf, as ``check_finite`` does.
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    flat = np.ascontiguousarray(X).reshape(-1)
    if flat.size == 0:
        return 0.0
    uint, mask, inf = ((np.uint32, 0x7FFFFFFF, 0x7F800000) if flat.dtype == np.float32 else
                       (np.uint64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000))
    top = _max_magnitude_bits(flat.view(uint), uint(mask))
    if top >= inf:  # the error path: find the first NaN/inf a block at a time
        step = 1 << 20
        for i in range(0, flat.size, step):
            bad = np.flatnonzero(~np.isfinite(flat[i : i + step]))
            if bad.size:
                where = np.unravel_index(i + int(bad[0]), X.shape)
                raise ValueError(f"{what} contains NaN or inf (first at index {tuple(int(k) for k in where)})")
    return float(np.array([top], dtype=uint).view(flat.dtype)[0])


def set_threads(n: int | None) -> int:
    """Use ``n`` threads for the parallel kernels (None: all); returns the number in use."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if n is None else int(n))
    return numba.get_num_threads()
