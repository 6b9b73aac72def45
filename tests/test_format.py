"""The packed line format (lowbit.contract.format, docs/format.md): bit order, bit planes, padding, round trips."""

import numpy as np
import pytest

from lowbit.contract.format import (
    MAX_BITS,
    RECORD_BYTES,
    ROW_ALIGN,
    STATUS_RECORD,
    LineFormat,
    pack_codes,
    pack_words,
    unpack_codes,
    unpack_record,
    unpack_words,
)


def reference_pack(codes, fmt):
    """The format as docs/format.md states it, written the slow obvious way (per code, per bit)."""
    rows, F = codes.shape
    stream = np.zeros(fmt.blocks(rows) * fmt.line_bits, dtype=np.int64)
    for i in range(rows):
        stream[i * fmt.padded_features : i * fmt.padded_features + F] = codes[i]
    lines = np.zeros((fmt.lines_per_copy(rows), fmt.line_bytes), dtype=np.uint8)
    for block in range(fmt.blocks(rows)):
        for n in range(fmt.line_bits):
            code = stream[block * fmt.line_bits + n]
            for k in range(fmt.code_bits):
                if (code >> k) & 1:
                    lines[block * fmt.code_bits + k, n // 8] |= 1 << (n % 8)
    return lines


@pytest.mark.parametrize("line_bits", [64, 512])
@pytest.mark.parametrize("bits", range(1, MAX_BITS + 1))
def test_pack_matches_the_written_definition(bits, line_bits):
    rng = np.random.default_rng(bits)
    fmt = LineFormat(bits, 45, line_bits)
    codes = rng.integers(0, fmt.codes, (5, 45))
    assert np.array_equal(pack_codes(codes, fmt), reference_pack(codes, fmt))


@pytest.mark.parametrize("bits", range(1, MAX_BITS + 1))
@pytest.mark.parametrize("rows,features", [(1, 1), (1, 784), (7, 1), (3, 33), (13, 100), (2, 5000), (600, 17)])
def test_round_trip_every_b(bits, rows, features):
    """F not a multiple of the codes per line (and of ROW_ALIGN), F = 1 and N = 1 included."""
    rng = np.random.default_rng(rows * 1000 + features)
    fmt = LineFormat(bits, features)
    codes = rng.integers(0, fmt.codes, (rows, features)).astype(np.uint16)
    codes[0, 0] = fmt.codes - 1  # the largest code survives
    lines = pack_codes(codes, fmt)
    assert lines.shape == (fmt.lines_per_copy(rows), 64) and lines.dtype == np.uint8
    back = unpack_codes(lines, fmt, rows)
    assert back.dtype == np.uint16
    assert np.array_equal(back, codes)


def test_bit_order_one_code():
    """Code n of a block is line bit n: bit n % 8 of byte n // 8, LSB plane first."""
    fmt = LineFormat(bits=2, features=40)
    codes = np.zeros((1, 40), dtype=np.uint16)
    codes[0, 11] = 0b101
    lines = pack_codes(codes, fmt)
    assert lines.shape == (3, 64)
    expect = np.zeros((3, 64), dtype=np.uint8)
    expect[0, 1] = 1 << 3  # plane 0, code 11 = byte 1 bit 3
    expect[2, 1] = 1 << 3  # plane 2
    assert np.array_equal(lines, expect)


def test_rows_start_on_row_align_and_padding_is_zero():
    fmt = LineFormat(bits=3, features=33)
    assert fmt.padded_features == 2 * ROW_ALIGN
    codes = np.full((3, 33), fmt.codes - 1, dtype=np.uint16)
    lines = pack_codes(codes, fmt)
    bits = np.unpackbits(lines[1], bitorder="little")  # plane 1 of block 0 (code 14 = 0b1110)
    row = np.r_[np.ones(33), np.zeros(31)]
    assert np.array_equal(bits[: 3 * 64], np.tile(row, 3))
    assert not bits[3 * 64 :].any()  # the block's tail after the last row is code 0


def test_block_sizes_and_information_content():
    fmt = LineFormat(bits=4, features=784)
    assert fmt.padded_features == 800 and fmt.blocks(64) == 100 and fmt.lines_per_copy(64) == 500
    assert fmt.information_bytes(64) == 64 * 784 * 5 / 8
    for b in range(2, 9):
        for F in (784, 5000):
            f = LineFormat(b, F)
            assert f.bytes_per_copy(10000) <= 1.15 * f.information_bytes(10000)


def test_pack_rejects_bad_codes_and_shapes():
    fmt = LineFormat(bits=2, features=4)
    with pytest.raises(ValueError, match="out of range"):
        pack_codes(np.full((1, 4), 7), fmt)
    with pytest.raises(ValueError, match="out of range"):
        pack_codes(np.full((1, 4), -1), fmt)
    with pytest.raises(ValueError, match="shape"):
        pack_codes(np.zeros((1, 5)), fmt)
    with pytest.raises(ValueError, match="no rows"):
        pack_codes(np.zeros((0, 4)), fmt)
    with pytest.raises(ValueError, match="lines"):
        unpack_codes(np.zeros((2, 64), np.uint8), fmt, rows=1)


@pytest.mark.parametrize("kw,match", [(dict(bits=0, features=1), "bits"), (dict(bits=9, features=1), "bits"),
                                      (dict(bits=2, features=0), "features"),
                                      (dict(bits=2, features=1, line_bits=100), "line_bits")])
def test_line_format_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        LineFormat(**kw)


def test_words_and_records():
    w = np.array([1, -1, 2**31 - 1, -(2**31), 5], dtype=np.int32)
    lines = pack_words(w, 128)
    assert lines.shape == (2, 16)
    assert lines[0, :4].tolist() == [1, 0, 0, 0] and lines[0, 4:8].tolist() == [255] * 4  # little endian
    assert not lines[1, 4:].any()  # zero padded
    assert np.array_equal(unpack_words(lines, 5), w)
    raw = np.arange(8, dtype="<u8").view(np.uint8)
    assert raw.size == RECORD_BYTES
    assert unpack_record(raw) == dict(zip(STATUS_RECORD, range(8)))
