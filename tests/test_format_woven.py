"""The woven line layout (format version 2), read by the bit-serial WovenCore.

Line ``(g * chunks + c) * (b+1) + k`` of a copy holds bit plane ``k`` of a 32-feature chunk ``c``
of the ``S = W/32`` rows of group ``g``: 32-bit word ``s`` belongs to row ``g*S + s``, its bit ``f``
to feature ``32c + f``. Rows past N (the last group's padding) and features past F are code 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.contract.format import LAYOUTS, LineFormat, pack_codes, unpack_codes


def reference_pack_woven(codes, fmt):
    """The layout as stated above, per row, per feature, per bit."""
    rows, F = codes.shape
    S = fmt.line_bits // 32
    lines = np.zeros((fmt.lines_per_copy(rows), fmt.line_bytes), dtype=np.uint8)
    for i in range(rows):
        g, s = divmod(i, S)
        for j in range(F):
            c, f = divmod(j, 32)
            n = 32 * s + f  # line bit
            for k in range(fmt.code_bits):
                if (int(codes[i, j]) >> k) & 1:
                    lines[(g * fmt.chunks + c) * fmt.code_bits + k, n // 8] |= 1 << (n % 8)
    return lines


@pytest.mark.parametrize("line_bits", [64, 128, 512])
@pytest.mark.parametrize("bits", [1, 2, 5, 8])
@pytest.mark.parametrize("rows,features", [(1, 1), (3, 33), (17, 70), (40, 32)])
def test_woven_pack_matches_the_written_definition(bits, line_bits, rows, features):
    rng = np.random.default_rng(bits * 100 + rows)
    fmt = LineFormat(bits, features, line_bits, layout="woven")
    codes = rng.integers(0, fmt.codes, (rows, features))
    packed = pack_codes(codes, fmt)
    assert np.array_equal(packed, reference_pack_woven(codes, fmt))
    assert np.array_equal(unpack_codes(packed, fmt, rows), codes)


def test_woven_sizes():
    fmt = LineFormat(4, 784, 512, layout="woven")
    assert fmt.samples_per_line == 16 and fmt.chunks == 25 and fmt.version == 2 and LAYOUTS[2] == "woven"
    # 100 rows: 7 groups (the last holds 4 rows) x 25 chunks x 5 planes
    assert fmt.groups(100) == 7 and fmt.lines_per_copy(100) == 7 * 25 * 5
    # labels: one line of 16 labels per group, the same count as in the planes layout
    assert fmt.label_lines(100) == 7
    # the stream is the information content up to row and feature padding
    assert fmt.bytes_per_copy(112) == 112 * 800 * 5 // 8


def test_unknown_layout_refused():
    with pytest.raises(ValueError, match="layout"):
        LineFormat(2, 10, 512, layout="rows")
