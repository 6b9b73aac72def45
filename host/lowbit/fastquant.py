"""Quantize and pack in one compiled pass, on every core: the fast path of ``lowbit.quant`` + ``lowbit.format``.

:func:`quantize_pack` double-samples float data (any level set, b = 1..8) and writes the
bit-plane lines of :mod:`lowbit.format` directly, without ever holding the codes of more than one
chunk. It is the production path; ``lowbit.quant.double_sample`` and
``lowbit.format.pack_codes`` stay the readable reference it is tested against
(tests/test_fastquant.py): statistically (unbiasedness, the per-value distribution of codes) and
exactly (code ranges, packing, layout).

Design
------
* **One layout function.** Where a code lands is decided only by :func:`code_slot` (row, feature
  -> block, slot) and :func:`plane_line` (block, plane -> line): together they are
  :func:`code_position`, ``(row, feature, plane) -> (line, bit)``. A *block* is ``line_bits``
  codes stored as ``b + 1`` lines, one per bit plane, code at slot ``s`` in bit ``s`` of each.
  A layout change in ``lowbit.format`` is an edit of these two functions (and of
  :func:`rows_per_group`); the test comparing with ``pack_codes`` fails until it is made.
* **Chunks.** Rows are cut into chunks of a whole number of *row groups* (the fewest rows that
  fill whole blocks, :func:`rows_per_group`), so every chunk owns its lines and chunks run in
  parallel (``numba.prange``) with no shared writes. A chunk's codes go to a small per-chunk
  buffer in slot order, then each block is transposed to bit planes eight codes at a time (the
  8x8 bit transpose of ``lowbit.format``).
* **Random numbers.** Counter-based: the two uniforms of value ``i`` of chunk ``c`` are the two
  32-bit halves of ``mix64(chunk_key(c) + (i + 1) * GAMMA)`` (SplitMix64's output function over
  its Weyl sequence), with ``chunk_key`` a hash of (seed, copy, c). Chunk boundaries depend only
  on the shape, never on the thread count, so the output is a function of (data, levels, seed,
  copy) alone.
* **Interval lookup.** Levels sit on the 2^-14 grid, so a 32K-entry table (one uint8 per grid
  cell, it fits in L1) gives the interval of any value in one load: exactly the interval of the
  reference (``searchsorted(levels, x, "right") - 1`` clipped) for float32 input, for uniform
  and optimal levels alike and at the same speed.
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
#: Target values per chunk: the chunk's code buffer (2 bytes per slot) stays in L2.
_CHUNK_VALUES = 1 << 16
#: SplitMix64's Weyl increment (the golden ratio in 64 bits).
_GAMMA = np.uint64(0x9E3779B97F4A7C15)


# ------------------------------------------------------------------------------------ layout
# The one place that knows where codes live in lines (lowbit.format, FORMAT_VERSION 1). ``geom``
# is (padded_features, log2(line_bits), code_bits), from :func:`geometry`.

@njit(inline="always", cache=True)
def code_slot(row, feature, geom):
    """(row, feature) -> (block, slot): codes are a row-major stream, rows padded, cut into blocks."""
    n = row * geom[0] + feature
    return n >> geom[1], n & ((1 << geom[1]) - 1)


@njit(inline="always", cache=True)
def plane_line(block, plane, geom):
    """(block, plane) -> line: a block's b + 1 planes are consecutive lines, LSB plane first."""
    return block * geom[2] + plane


@njit(cache=True)
def code_position(row, feature, plane, geom):
    """(row, feature, plane) -> (line, bit): bit ``plane`` of the code of (row, feature)."""
    block, slot = code_slot(row, feature, geom)
    return plane_line(block, plane, geom), slot


def geometry(fmt: LineFormat) -> np.ndarray:
    """The layout parameters the compiled functions take (int64[3])."""
    return np.array([fmt.padded_features, int(math.log2(fmt.line_bits)), fmt.code_bits], dtype=np.int64)


def rows_per_group(fmt: LineFormat) -> int:
    """The fewest rows whose codes fill whole blocks: chunks of such groups own their lines."""
    return fmt.line_bits // math.gcd(fmt.padded_features, fmt.line_bits)


# ------------------------------------------------------------------------------ bit planes
@njit(inline="always", cache=True)
def _transpose8(x):
    """8x8 bit transpose of a uint64 (as ``lowbit.format._transpose8``): byte k <-> bit k of each byte."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@njit(cache=True)
def _planes_from_slots(buf, nblocks, block0, geom, out, line_base):
    """Write blocks ``block0 .. block0 + nblocks`` from their codes ``buf`` in slot order into
    ``out``, whose first row is line ``line_base``."""
    nbits = geom[2]
    w = 1 << geom[1]
    low = min(nbits, 8)
    for bi in range(nblocks):
        for g in range(w >> 3):
            base = bi * w + 8 * g
            lo = np.uint64(0)
            hi = np.uint64(0)
            for t in range(8):
                c = np.uint64(buf[base + t])
                lo |= (c & np.uint64(0xFF)) << np.uint64(8 * t)
                hi |= (c >> np.uint64(8)) << np.uint64(8 * t)
            lo = _transpose8(lo)
            for p in range(low):
                out[plane_line(block0 + bi, p, geom) - line_base, g] = np.uint8((lo >> np.uint64(8 * p)) & np.uint64(0xFF))
            if nbits > 8:  # b = 8: the ninth plane is byte 0 of the transposed high bits
                out[plane_line(block0 + bi, 8, geom) - line_base, g] = np.uint8(_transpose8(hi) & np.uint64(0xFF))


@njit(cache=True)
def _slots_from_planes(lines, nblocks, block0, geom, buf):
    """Inverse of :func:`_planes_from_slots`: the codes of blocks ``block0 ..`` into ``buf`` (slot order)."""
    nbits = geom[2]
    w = 1 << geom[1]
    low = min(nbits, 8)
    for bi in range(nblocks):
        for g in range(w >> 3):
            lo = np.uint64(0)
            for p in range(low):
                lo |= np.uint64(lines[plane_line(block0 + bi, p, geom), g]) << np.uint64(8 * p)
            lo = _transpose8(lo)
            hib = np.uint64(0)
            if nbits > 8:
                hib = np.uint64(lines[plane_line(block0 + bi, 8, geom), g])
            base = bi * w + 8 * g
            for t in range(8):
                buf[base + t] = np.uint16(((lo >> np.uint64(8 * t)) & np.uint64(0xFF))
                                          | (((hib >> np.uint64(t)) & np.uint64(1)) << np.uint64(8)))


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


@njit(inline="always", cache=True)
def _code(x, lv, inv, cell, h):
    """The double-sampling code of ``x`` from 64 random bits ``h`` (two 32-bit uniforms)."""
    x = min(max(x, -1.0), 1.0)
    k = np.int64(cell[int((x + 1.0) * LEVEL_ONE)])  # exact for float32 x: (x + 1) 2^14 is exact
    # p is clamped because a float64 x within one ulp below a level can land in the level's cell.
    t = max(min((x - lv[k]) * inv[k], 1.0), 0.0) * 4294967296.0  # P(u < t) = p for u uniform on 0 .. 2^32 - 1
    return 2 * k + (np.int64(h & np.uint64(0xFFFFFFFF)) < t) + (np.int64(h >> np.uint64(32)) < t)


@njit(parallel=True, cache=True)
def _quantize_pack_kernel(X, row0, nchunks, chunk_rows, lv, inv, cell, key, geom, out, line_base):
    """Chunks ``0 .. nchunks`` of rows of ``X`` (global row ``row0 + r``) into ``out``'s lines."""
    n, f = X.shape
    w = 1 << geom[1]
    for c in prange(nchunks):
        r0 = c * chunk_rows
        r1 = min(n, r0 + chunk_rows)
        b0, _ = code_slot(row0 + r0, 0, geom)
        bl, _ = code_slot(row0 + r1 - 1, f - 1, geom)
        buf = np.zeros((bl - b0 + 1) * w, dtype=np.uint16)  # padding slots stay code 0
        gchunk = (row0 // chunk_rows) + c  # global chunk index: its RNG stream
        ck = _chunk_key(key, gchunk)
        i = np.uint64(0)
        for r in range(r0, r1):
            for j in range(f):
                i += np.uint64(1)
                h = _mix64(ck + i * _GAMMA)
                blk, s = code_slot(row0 + r, j, geom)
                buf[(blk - b0) * w + s] = _code(np.float64(X[r, j]), lv, inv, cell, h)
        _planes_from_slots(buf, bl - b0 + 1, b0, geom, out, line_base)


def chunk_rows(fmt: LineFormat) -> int:
    """Rows per chunk (and per RNG stream): whole row groups, about 64K values."""
    g = rows_per_group(fmt)
    return g * max(1, _CHUNK_VALUES // (g * fmt.padded_features))


def line_span(fmt: LineFormat, row0: int, row1: int) -> tuple[int, int]:
    """``(first, stop)``: the lines holding rows ``row0 .. row1`` (row0 at a row-group boundary)."""
    geom = geometry(fmt)
    first, _ = code_position(row0, 0, 0, geom)
    last, _ = code_position(row1 - 1, fmt.features - 1, fmt.code_bits - 1, geom)
    return int(first), int(last) + 1


def quantize_pack(X, fmt: LineFormat, levels_q, *, seed=0, copy: int = 0, out=None, sink=None, transform=None,
                  progress=None, super_rows: int | None = None) -> np.ndarray | None:
    """Double-sample ``X`` against ``levels_q`` and pack it: one copy's lines.

    Parameters
    ----------
    X : ndarray (N, F), float32 or float64
        Normalised features (clipped to [-1, 1] on the fly); a ``np.memmap`` is read in place,
        one super-chunk of rows at a time. Must be finite (not checked here: callers validate,
        e.g. in ``transform``).
    fmt : LineFormat
    levels_q : ndarray int16 (2^b,)
        The engine's levels (``lowbit.quant.levels_to_fixed``).
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
        if out.shape != (lines, fmt.line_bytes) or out.dtype != np.uint8:
            raise ValueError(f"out must be ({lines}, {fmt.line_bytes}) uint8, got {out.shape} {out.dtype}")
    lv, inv, cell = level_tables(levels_q)
    if lv.size != 1 << fmt.bits:
        raise ValueError(f"{fmt.bits} bits need {1 << fmt.bits} levels, got {lv.size}")
    geom = geometry(fmt)
    key = stream_key(seed, copy)
    cr = chunk_rows(fmt)
    step = cr * max(1, (super_rows or (1 << 22) // fmt.padded_features) // cr)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        part = np.asarray(X[r0:r1]) if transform is None else np.asarray(transform(X[r0:r1]))
        if part.shape != (r1 - r0, fmt.features):
            raise ValueError(f"transformed rows have shape {part.shape}, expected {(r1 - r0, fmt.features)}")
        if part.dtype not in (np.float32, np.float64):
            part = part.astype(np.float64)
        nch = -(-(r1 - r0) // cr)
        if sink is None:
            _quantize_pack_kernel(part, r0, nch, cr, lv, inv, cell, key, geom, out, 0)
        else:
            first, stop = line_span(fmt, r0, r1)
            buf = np.empty((stop - first, fmt.line_bytes), dtype=np.uint8)
            _quantize_pack_kernel(part, r0, nch, cr, lv, inv, cell, key, geom, buf, first)
            sink(buf)
        if progress is not None:
            progress(r1 - r0)
    return out if sink is None else None


# -------------------------------------------------------------------------- packing, unpacking
@njit(parallel=True, cache=True)
def _pack_kernel(codes, nchunks, chunk_rows, geom, out):
    n, f = codes.shape
    w = 1 << geom[1]
    for c in prange(nchunks):
        r0 = c * chunk_rows
        r1 = min(n, r0 + chunk_rows)
        b0, _ = code_slot(r0, 0, geom)
        bl, _ = code_slot(r1 - 1, f - 1, geom)
        buf = np.zeros((bl - b0 + 1) * w, dtype=np.uint16)
        for r in range(r0, r1):
            for j in range(f):
                blk, s = code_slot(r, j, geom)
                buf[(blk - b0) * w + s] = codes[r, j]
        _planes_from_slots(buf, bl - b0 + 1, b0, geom, out, 0)


@njit(parallel=True, cache=True)
def _pack_woven_kernel(codes, samples, chunks, planes, out):
    """Woven layout (``lowbit.format``, version 2): line ``(g * chunks + c) * planes + k`` holds, in
    its little-endian 32-bit word ``s``, bit ``k`` of the codes of row ``g * samples + s``, feature
    ``32 c + f`` at bit ``f``; padding rows and features are code 0. One thread per group of rows:
    a group owns its lines."""
    n, f = codes.shape
    groups = (n + samples - 1) // samples
    for g in prange(groups):
        words = np.empty(planes, dtype=np.uint32)
        for c in range(chunks):
            j0 = c * 32
            j1 = min(f, j0 + 32)
            for s in range(samples):
                r = g * samples + s
                for k in range(planes):
                    words[k] = 0
                if r < n:
                    for j in range(j0, j1):
                        v = np.uint32(codes[r, j])
                        bit = np.uint32(j - j0)
                        for k in range(planes):
                            words[k] |= ((v >> np.uint32(k)) & np.uint32(1)) << bit
                for k in range(planes):
                    line = (g * chunks + c) * planes + k
                    w = words[k]
                    for q in range(4):
                        out[line, 4 * s + q] = np.uint8((w >> np.uint32(8 * q)) & np.uint32(0xFF))


def pack_codes_fast(codes, fmt: LineFormat) -> np.ndarray:
    """``lowbit.format.pack_codes`` through the compiled layouts (same result, bit for bit), for
    either layout ``fmt.layout`` names."""
    codes = np.ascontiguousarray(codes, dtype=np.uint16)
    if codes.ndim != 2 or codes.shape[1] != fmt.features or codes.shape[0] < 1:
        raise ValueError(f"codes must have shape (rows >= 1, {fmt.features}), got {codes.shape}")
    if codes.max() >= fmt.codes:
        raise ValueError(f"codes out of range for {fmt.bits}-bit double sampling: valid 0..{fmt.codes - 1}")
    if fmt.layout == "woven":
        out = np.empty((fmt.lines_per_copy(codes.shape[0]), fmt.line_bytes), dtype=np.uint8)
        _pack_woven_kernel(codes, fmt.samples_per_line, fmt.chunks, fmt.code_bits, out)
        return out
    out = np.empty((fmt.lines_per_copy(codes.shape[0]), fmt.line_bytes), dtype=np.uint8)
    cr = chunk_rows(fmt)
    _pack_kernel(codes, -(-codes.shape[0] // cr), cr, geometry(fmt), out)
    return out


@njit(cache=True)
def unpack_rows(lines, row0, row1, features, geom, buf, codes):
    """Codes of rows ``row0 .. row1`` (a whole number of row groups from ``row0``, or up to the last
    row) into ``codes[: row1 - row0]``; ``buf`` is scratch of at least their blocks' slots."""
    w = 1 << geom[1]
    b0, _ = code_slot(row0, 0, geom)
    bl, _ = code_slot(row1 - 1, features - 1, geom)
    _slots_from_planes(lines, bl - b0 + 1, b0, geom, buf)
    for r in range(row0, row1):
        for j in range(features):
            blk, s = code_slot(r, j, geom)
            codes[r - row0, j] = buf[(blk - b0) * w + s]


@njit(cache=True)
def _max_code(lines, rows, features, geom, group_rows, buf, codes):
    top = 0
    for r0 in range(0, rows, group_rows):
        r1 = min(rows, r0 + group_rows)
        unpack_rows(lines, r0, r1, features, geom, buf, codes)
        for i in range(r1 - r0):
            for j in range(features):
                top = max(top, np.int64(codes[i, j]))
    return top


def max_code(lines, fmt: LineFormat, rows: int, copies: int = 1) -> int:
    """The largest code in ``copies`` packed copies (validation of loaded data), a row group at a time."""
    per = fmt.lines_per_copy(rows)
    gr = chunk_rows(fmt)
    buf = np.empty((fmt.blocks(gr) + 1) * fmt.line_bits, dtype=np.uint16)
    codes = np.empty((gr, fmt.features), dtype=np.uint16)
    geom = geometry(fmt)
    return max(int(_max_code(np.ascontiguousarray(lines[k * per : (k + 1) * per]), rows, fmt.features, geom, gr,
                             buf, codes)) for k in range(copies))


def unpack_codes_fast(lines, fmt: LineFormat, rows: int) -> np.ndarray:
    """``lowbit.format.unpack_codes`` through the compiled layout: ``(rows, F)`` uint16."""
    lines = np.ascontiguousarray(lines, dtype=np.uint8)
    need = fmt.lines_per_copy(rows)
    if lines.ndim != 2 or lines.shape[1] != fmt.line_bytes or lines.shape[0] < need:
        raise ValueError(f"need at least {need} lines of {fmt.line_bytes} bytes for {rows} rows, got {lines.shape}")
    codes = np.empty((rows, fmt.features), dtype=np.uint16)
    buf = np.empty(fmt.blocks(rows) * fmt.line_bits, dtype=np.uint16)
    unpack_rows(lines, 0, rows, fmt.features, geometry(fmt), buf, codes)
    return codes


def set_threads(n: int | None) -> int:
    """Use ``n`` threads for the parallel kernels (None: all); returns the number in use."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS if n is None else int(n))
    return numba.get_num_threads()
