"""The compiled quantize + pack path (lowbit.fastquant) against the NumPy reference.

Exactly: the layout (packing and unpacking equal ``lowbit.contract.format``'s bit for bit, for every b and
line width), the code ranges (every code is one of the three the value's interval allows, values
on a level are exact), reproducibility from the seed, independence from the thread count.
Statistically: each value's codes have the reference's distribution (a chi-square test against
the exact probabilities) and the decoded means are unbiased.
"""

import numba
import numpy as np
import pytest

from lowbit.fastquant import (
    chunk_rows,
    code_position,
    geometry,
    pack_codes_fast,
    quantize_pack,
    rows_per_group,
    set_threads,
    unpack_codes_fast,
)
from lowbit.contract.format import SUPPORTED_LINE_BITS, LineFormat, pack_codes, unpack_codes
from lowbit.contract.levels import optimal_levels
from lowbit.contract.quant import double_sample, fixed_levels_value, levels_to_fixed, uniform_levels


def levels(bits, kind):
    if kind == "uniform":
        return levels_to_fixed(uniform_levels(bits))
    skewed = np.random.default_rng(bits).beta(0.5, 3, 20000) * 2 - 1
    return levels_to_fixed(optimal_levels(skewed, bits))


@pytest.mark.parametrize("line_bits", SUPPORTED_LINE_BITS)
@pytest.mark.parametrize("bits", range(1, 9))
def test_packing_equals_the_reference_format(bits, line_bits):
    rng = np.random.default_rng(bits * line_bits)
    for rows, features in [(1, 1), (37, 3), (53, 100), (9, 785)]:
        fmt = LineFormat(bits, features, line_bits)
        codes = rng.integers(0, fmt.codes, (rows, features)).astype(np.uint16)
        lines = pack_codes(codes, fmt)
        assert np.array_equal(pack_codes_fast(codes, fmt), lines)
        assert np.array_equal(unpack_codes_fast(lines, fmt, rows), codes)


@pytest.mark.parametrize("fmt,seed", [(LineFormat(8, 45, 128), 3), (LineFormat(3, 45, 128, layout="woven"), 4)])
def test_code_position_is_where_pack_codes_puts_each_bit(fmt, seed):
    """The one layout function, probed bit by bit in both layouts: a single set bit lands where it says."""
    geom = geometry(fmt)
    rng = np.random.default_rng(seed)
    for _ in range(40):
        r, f, p = int(rng.integers(0, 7)), int(rng.integers(0, 45)), int(rng.integers(0, fmt.bits + 1))
        codes = np.zeros((7, 45), dtype=np.uint16)
        codes[r, f] = 1 << p
        lines = pack_codes(codes, fmt)
        line, bit = code_position(r, f, p, geom)
        assert np.argwhere(np.unpackbits(lines, axis=1, bitorder="little")).tolist() == [[line, bit]]


def test_rows_per_group_fills_whole_blocks():
    for f in (1, 32, 33, 100, 785, 5000):
        for w in (64, 512):
            fmt = LineFormat(4, f, w)
            g = rows_per_group(fmt)
            assert g * fmt.padded_features % w == 0 and (g == 1 or (g // 2) * fmt.padded_features % w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "optimal"])
@pytest.mark.parametrize("bits", range(1, 9))
def test_codes_lie_in_the_values_interval(bits, kind, dtype):
    lq = levels(bits, kind)
    lv = fixed_levels_value(lq)
    rng = np.random.default_rng(bits)
    X = rng.uniform(-1, 1, (300, 77)).astype(dtype)
    inside = lv[lv >= -1.0]  # uniform levels may reach past -1; data stays in [-1, 1]
    X[0, :] = inside[rng.integers(0, inside.size, 77)]    # values exactly on a level
    X[1, :3] = [-1.0, 1.0, 0.0]
    fmt = LineFormat(bits, 77)
    codes = unpack_codes(quantize_pack(X, fmt, lq, seed=5), fmt, 300)
    k = np.clip(np.searchsorted(lv, X.astype(np.float64), side="right") - 1, 0, lv.size - 2)
    assert codes.max() < fmt.codes
    assert np.all((codes >= 2 * k) & (codes <= 2 * k + 2))
    on_level = np.isin(X.astype(np.float64), lv)
    ref = double_sample(X, lq, np.random.default_rng(0))   # on a level the reference is deterministic
    assert np.array_equal(codes[on_level], ref[on_level])


def test_reproducible_from_the_seed_and_copies_differ():
    fmt = LineFormat(4, 100)
    X = np.random.default_rng(0).uniform(-1, 1, (500, 100)).astype(np.float32)
    lq = levels(4, "uniform")
    a = quantize_pack(X, fmt, lq, seed=7)
    assert np.array_equal(a, quantize_pack(X, fmt, lq, seed=7))
    assert not np.array_equal(a, quantize_pack(X, fmt, lq, seed=8))
    assert not np.array_equal(a, quantize_pack(X, fmt, lq, seed=7, copy=1))


@pytest.mark.parametrize("bits,kind,layout", [(3, "optimal", "planes"), (8, "uniform", "planes"),
                                               (8, "uniform", "woven")])
def test_result_is_independent_of_thread_count_and_super_chunks(bits, kind, layout):
    """Table and arithmetic (uniform) paths, both layouts: the same bytes on 1 or 2 threads, whatever
    the super-chunking."""
    fmt = LineFormat(bits, 300, 256, layout=layout)
    X = np.random.default_rng(1).uniform(-1, 1, (2000, 300)).astype(np.float32 if kind == "uniform" else np.float64)
    lq = levels(bits, kind)
    before = numba.get_num_threads()
    try:
        set_threads(1)
        one = quantize_pack(X, fmt, lq, seed=11)
        set_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = quantize_pack(X, fmt, lq, seed=11)
        small = quantize_pack(X, fmt, lq, seed=11, super_rows=1)  # one chunk per kernel call
    finally:
        set_threads(before)
    assert np.array_equal(one, two) and np.array_equal(one, small)


def test_writes_into_a_given_buffer():
    fmt = LineFormat(2, 10)
    X = np.zeros((20, 10), dtype=np.float32)
    out = np.full((fmt.lines_per_copy(20), fmt.line_bytes), 0xAA, dtype=np.uint8)
    assert quantize_pack(X, fmt, levels(2, "uniform"), out=out) is out
    with pytest.raises(ValueError, match="out must be"):
        quantize_pack(X, fmt, levels(2, "uniform"), out=out[1:])
    with pytest.raises(ValueError, match="C-contiguous"):              # the packer writes it as flat bytes
        quantize_pack(X, fmt, levels(2, "uniform"), out=np.asfortranarray(out))
    with pytest.raises(ValueError, match="X must have shape"):
        quantize_pack(X[:, :5], fmt, levels(2, "uniform"))


@pytest.mark.parametrize("kind", ["uniform", "optimal"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_per_value_code_distribution_matches_the_reference(bits, kind):
    """Each value's codes 2k, 2k+1, 2k+2 come with probabilities (1-p)^2, 2p(1-p), p^2: a chi-square
    test per value over 4000 draws, and the mean level (m) of the draws is unbiased."""
    lq = levels(bits, kind)
    lv = fixed_levels_value(lq)
    rng = np.random.default_rng(bits)
    values = rng.uniform(-1, 1, 24)
    draws = 4000
    fmt = LineFormat(bits, values.size)
    X = np.broadcast_to(values, (draws, values.size))
    codes = unpack_codes(quantize_pack(X, fmt, lq, seed=bits), fmt, draws).astype(np.int64)
    k = np.clip(np.searchsorted(lv, values, side="right") - 1, 0, lv.size - 2)
    p = (values - lv[k]) / (lv[k + 1] - lv[k])
    expected = np.stack([(1 - p) ** 2, 2 * p * (1 - p), p**2]) * draws       # (3, values)
    observed = np.stack([(codes == 2 * k + d).sum(axis=0) for d in range(3)])
    assert observed.sum() == draws * values.size
    live = expected > 5
    chi2 = (((observed - expected) ** 2 / np.where(live, expected, 1)) * live).sum(axis=0)
    # 2 degrees of freedom: P(chi2 > 18.4) = 1e-4 per value.
    assert chi2.max() < 18.4
    m = (lv[codes >> 1] + lv[(codes + 1) >> 1]) / 2
    se = np.sqrt(p * (1 - p) / 2 / draws) * (lv[k + 1] - lv[k])
    z = (m.mean(axis=0) - values) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 4.5


def test_adjacent_values_are_independent():
    """Counter-based streams have no visible correlation between neighbouring values or copies."""
    lq = levels(1, "uniform")
    fmt = LineFormat(1, 64)
    X = np.zeros((4000, 64), dtype=np.float32)                # p = 1/2 everywhere
    c = unpack_codes(quantize_pack(X, fmt, lq, seed=3), fmt, 4000).astype(np.float64)
    d = unpack_codes(quantize_pack(X, fmt, lq, seed=3, copy=1), fmt, 4000).astype(np.float64)
    n = c.size
    for a, b in [(c[:, :-1], c[:, 1:]), (c[:-1], c[1:]), (c, d)]:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 4.5 / np.sqrt(n)


@pytest.mark.parametrize("bits", [1, 2, 5, 8])
@pytest.mark.parametrize("rows,features,line_bits", [(1, 1, 64), (7, 33, 64), (17, 100, 128), (40, 64, 512),
                                                      (33, 785, 512)])
def test_woven_packing_is_the_reference_bit_for_bit(bits, rows, features, line_bits):
    """The compiled woven packer (what QuantizedDataset uses for the woven engine) equals
    lowbit.contract.format.pack_codes: partial groups, padding features, every plane."""
    fmt = LineFormat(bits, features, line_bits, layout="woven")
    codes = np.random.default_rng(rows * features + bits).integers(0, fmt.codes, (rows, features)).astype(np.uint16)
    np.testing.assert_array_equal(pack_codes_fast(codes, fmt), pack_codes(codes, fmt))


@pytest.mark.parametrize("bits", [1, 3, 8])
@pytest.mark.parametrize("rows,features,line_bits", [(1, 1, 64), (37, 33, 64), (100, 100, 128), (53, 785, 512),
                                                      (300, 64, 256)])
def test_fused_woven_equals_the_two_pass_result(bits, rows, features, line_bits):
    """Quantizing straight into the woven layout gives the bytes of quantizing into planes and
    re-packing the codes (the codes do not depend on the layout): partial row groups, padding
    features and rows, every plane; also through a sink, one chunk per kernel call."""
    planes = LineFormat(bits, features, line_bits)
    woven = LineFormat(bits, features, line_bits, layout="woven")
    X = np.random.default_rng(rows + bits).uniform(-1, 1, (rows, features)).astype(np.float32)
    lq = levels(bits, "uniform")
    two_pass = pack_codes_fast(unpack_codes(quantize_pack(X, planes, lq, seed=9), planes, rows), woven)
    np.testing.assert_array_equal(quantize_pack(X, woven, lq, seed=9), two_pass)
    np.testing.assert_array_equal(two_pass, pack_codes(unpack_codes(quantize_pack(X, planes, lq, seed=9), planes, rows),
                                                       woven))
    parts = []
    quantize_pack(X, woven, lq, seed=9, sink=parts.append, super_rows=1)
    np.testing.assert_array_equal(np.concatenate(parts), two_pass)



@pytest.mark.parametrize("bits", range(1, 9))
def test_evenly_spaced_levels_take_the_arithmetic_path_with_the_tables_codes(bits, monkeypatch):
    """Uniform levels skip the interval table; on float32 data (values on, just below and just
    above every level included) the codes are those of the table path, bit for bit."""
    import lowbit.fastquant as fq

    lq = levels(bits, "uniform")
    assert fq.evenly_spaced(lq) and not fq.evenly_spaced(levels(max(bits, 2), "optimal"))
    lv = fixed_levels_value(lq).astype(np.float32)
    lv = lv[(lv >= -1) & (lv <= 1)]
    near = np.concatenate([lv, np.nextafter(lv, np.float32(-2)), np.nextafter(lv, np.float32(2))])
    rng = np.random.default_rng(bits)
    X = rng.uniform(-1, 1, (200, 150)).astype(np.float32)
    X.ravel()[: near.size] = np.clip(near, -1, 1)
    fmt = LineFormat(bits, 150)
    even = quantize_pack(X, fmt, lq, seed=2)
    monkeypatch.setattr(fq, "evenly_spaced", lambda levels_q: False)
    np.testing.assert_array_equal(quantize_pack(X, fmt, lq, seed=2), even)


def test_finite_abs_max_checks_in_one_pass_without_converting():
    from lowbit.fastquant import finite_abs_max

    X = np.random.default_rng(0).uniform(-0.5, 0.5, (40, 7)).astype(np.float32)
    X[3, 2] = -0.75
    assert finite_abs_max(X) == 0.75
    assert finite_abs_max(X.astype(np.float64)) == 0.75
    for bad in (np.nan, np.inf, -np.inf):
        Y = X.copy()
        Y[5, 4] = bad
        Y[9, 1] = np.nan                       # the first one is named
        with pytest.raises(ValueError, match=r"X contains NaN or inf \(first at index \(5, 4\)\)"):
            finite_abs_max(Y)


@pytest.mark.parametrize("layout", ["planes", "woven"])
def test_every_byte_of_a_given_buffer_is_written(layout):
    """Lines are written whole, padding included: a buffer full of 0xAA ends up holding exactly
    the reference packing of the codes (several chunks, a partial last chunk and row group)."""
    fmt = LineFormat(3, 100, 128, layout=layout)
    rows = 12 * chunk_rows(fmt) + 5                               # 12 full chunks, then 5 rows
    X = np.random.default_rng(8).uniform(-1, 1, (rows, 100)).astype(np.float32)
    out = np.full((fmt.lines_per_copy(rows), fmt.line_bytes), 0xAA, dtype=np.uint8)
    quantize_pack(X, fmt, levels(3, "uniform"), seed=4, out=out)
    np.testing.assert_array_equal(out, pack_codes(unpack_codes(out, fmt, rows), fmt))
