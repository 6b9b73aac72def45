"""QSGD codec: the quantizer is unbiased within its variance bound, both wire formats round-trip
bit for bit, and bad input is refused with a clear error."""

import struct
import zlib

import numpy as np
import pytest

from lowbit.qsgd import (bits_to_levels, compress, decode, decompress, dense_bits, encode,
                         quantize, variance_bound)
from lowbit.qsgd.codec import Quantized
from lowbit.qsgd.elias import gamma_decode, gamma_encode, read_bits, write_bits

FORMATS = ("dense", "elias")
NORMS = ("l2", "max")


def sample(v, s, d, norm, k, seed=0):
    """k independent quantizations of v, dequantized: shape (k, len(v)), float64."""
    rng = np.random.default_rng(seed)
    return np.stack([quantize(v, s, d, norm, rng).dequantize() for _ in range(k)]).astype(np.float64)


def expected_sq_error(v, s, d, norm):
    """Exact E||Q(v) - v||^2 per bucket: sum of (scale/s)^2 p (1 - p) with p the fractional part."""
    q = quantize(v, s, d, norm, 0)
    nb = q.n_buckets
    a = np.abs(np.concatenate([v, np.zeros(nb * d - len(v))])).reshape(nb, d).astype(np.float64)
    scale = q.scales.astype(np.float64)[:, None]
    r = np.divide(a * s, scale, out=np.zeros_like(a), where=scale > 0)
    p = r - np.floor(r)
    return ((scale / s) ** 2 * p * (1 - p)).sum(axis=1), scale[:, 0]


def coordinate_std(v, s, d, norm):
    """Exact standard deviation of each coordinate of Q(v): (scale/s) sqrt(p (1 - p))."""
    q = quantize(v, s, d, norm, 0)
    step = np.repeat(q.scales.astype(np.float64) / s, d)[: len(v)]
    r = np.abs(v.astype(np.float64)) / step
    p = r - np.floor(r)
    return np.maximum(step * np.sqrt(p * (1 - p)), 1e-30)


# ---------------------------------------------------------------------------- the quantizer

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("s", [1, 4])
def test_quantizer_is_unbiased(s, norm):
    v = np.random.default_rng(1).standard_normal(700).astype(np.float32)   # buckets 512 + 188
    k = 3000
    x = sample(v, s, 512, norm, k)
    z = np.abs(x.mean(0) - v) / (coordinate_std(v, s, 512, norm) / np.sqrt(k))
    assert z.max() < 5.5, f"coordinate off by {z.max():.1f} standard errors"
    assert abs(z.mean() - np.sqrt(2 / np.pi)) < 0.1        # |N(0,1)| has mean 0.80


def test_unbiasedness_check_catches_a_biased_rounding():
    """The same statistic rejects nearest rounding, which is biased: the test can fail."""
    v = np.random.default_rng(1).standard_normal(700).astype(np.float32)
    q = quantize(v, 4, 512, "l2", 0)
    step = np.repeat(q.scales / 4, 512)[:700]
    nearest = np.round(v / step) * step
    se = coordinate_std(v, 4, 512, "l2") / np.sqrt(3000)
    assert (np.abs(nearest - v) / se).max() > 20


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("s,d", [(1, 512), (2, 512), (8, 512), (16, 64), (4, 37)])
def test_variance_within_the_bound(s, d, norm):
    rng = np.random.default_rng(2)
    # Gaussian, heavy-tailed and constant vectors; the constant one is the hard case for the
    # max-norm bound and a near-tight one for the 2-norm bound at small s.
    vectors = [rng.standard_normal(3 * d), rng.standard_cauchy(3 * d), np.full(3 * d, 0.3)]
    for v in vectors:
        v = v.astype(np.float32)
        exact, scale = expected_sq_error(v, s, d, norm)
        bound = variance_bound(d, s, norm) * scale ** 2
        assert (exact <= bound * (1 + 1e-6) + 1e-30).all()
        # The empirical mean squared error agrees with the exact expectation.
        x = sample(v, s, d, norm, 400, seed=3)
        err = ((x - v) ** 2).reshape(400, 3, d).sum(axis=2)
        assert np.allclose(err.mean(0), exact, rtol=0.25, atol=1e-12)


def test_variance_bound_formula():
    assert variance_bound(512, 1) == pytest.approx(np.sqrt(512))     # sqrt(d)/s < d/s^2
    assert variance_bound(512, 64) == pytest.approx(512 / 64 ** 2)   # d/s^2 < sqrt(d)/s
    assert variance_bound(512, 7, "max") == pytest.approx(512 / (4 * 49))
    with pytest.raises(ValueError, match="norm"):
        variance_bound(512, 7, "l1")


def test_levels_scales_and_signs():
    v = np.array([3.0, -4.0, 0.0], np.float32)
    q = quantize(v, 5, 512, "l2", 0)
    assert q.scales[0] == 5.0 and q.levels.tolist() == [3, -4, 0]     # exact: r is an integer
    q = quantize(v, 5, 512, "max", 0)
    assert q.scales[0] == 4.0 and q.levels[1] == -5
    assert np.array_equal(q.dequantize()[1:], [-4.0, 0.0])


def test_scale_is_rounded_up_so_levels_never_exceed_s():
    rng = np.random.default_rng(4)
    for _ in range(50):
        v = (rng.standard_normal(rng.integers(1, 40)) * 10.0 ** rng.integers(-30, 30)).astype(np.float32)
        q = quantize(v, 1, 8, "l2", rng)
        assert np.abs(q.levels).max() <= 1
        exact = np.sqrt((np.abs(np.concatenate([v, np.zeros(-len(v) % 8, np.float32)]))
                         .astype(np.float64).reshape(-1, 8) ** 2).sum(1))
        assert (q.scales.astype(np.float64) >= exact).all()


# ---------------------------------------------------------------------------- wire formats

def roundtrip(q, fmt):
    back = decode(encode(q, fmt))
    assert back.equals(q), f"{fmt} round trip changed the message"
    return back


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("s", [1, 2, 3, 7, 8, 15, 16, 127, 128, 255, 1000, 32767, 40000, 2**31 - 1])
def test_roundtrip_bit_exact(s, norm, fmt):
    rng = np.random.default_rng(s)
    for n, d in [(1, 512), (7, 3), (512, 512), (513, 512), (1000, 512), (999, 1)]:
        v = rng.standard_normal(n).astype(np.float32)
        v[rng.random(n) < 0.3] = 0                     # exact zeros and runs of them
        roundtrip(quantize(v, s, d, norm, rng), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_roundtrip_edge_cases(fmt):
    rng = np.random.default_rng(5)
    cases = {
        "all zeros": np.zeros(1000, np.float32),
        "one element": np.array([-2.5], np.float32),
        "huge norm": (rng.standard_normal(600) * 1e36).astype(np.float32),
        "float32 max": np.array([3.4e38, -3.4e38], np.float32),
        "tiny norm": (rng.standard_normal(600) * 1e-38).astype(np.float32),
        "subnormal": np.array([1e-45, -3e-45, 0, 1e-44], np.float32),
        "one non-zero at the end": np.r_[np.zeros(5000, np.float32), np.float32(1)],
    }
    for name, v in cases.items():
        for norm in NORMS:
            if name == "float32 max" and norm == "l2":
                continue                               # its 2-norm overflows float32: see below
            for s in (1, 7, 127):
                q = quantize(v, s, 512, norm, rng)
                back = roundtrip(q, fmt)
                x = back.dequantize()
                assert np.isfinite(x).all(), name
                assert (np.sign(x) * np.sign(v) >= 0).all(), f"{name}: sign flipped"
    zero = decompress(compress(np.zeros(1000, np.float32), 7, format=fmt))
    assert not zero.any()
    one = decompress(compress(np.array([-2.5], np.float32), 7, format=fmt))
    assert one.tolist() == [-2.5]                     # |v| = ||v||: level s, exact


def test_norm_overflow_is_an_error():
    with pytest.raises(ValueError, match="float32 range"):
        quantize(np.array([3.4e38, -3.4e38], np.float32), 7)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
def test_dense_message_length(bits):
    s = bits_to_levels(bits)
    assert dense_bits(s) == bits
    n, d = 1001, 512
    msg = compress(np.ones(n, np.float32), s, d)
    assert len(msg) == 24 + 4 * 2 + (n * bits + 7) // 8 + 4


def test_elias_is_sparse_at_low_s():
    v = np.random.default_rng(6).standard_normal(1 << 16).astype(np.float32)
    q = quantize(v, 1, 512, "l2", 0)
    nnz = np.count_nonzero(q.levels)
    assert nnz <= (1 + np.sqrt(512)) * 128 * 1.2     # QSGD Lemma 3.1: E nnz <= s(s + sqrt d)
    bits = 8 * len(encode(q, "elias")) / len(v)
    assert bits < 0.7 < 2.0 < 8 * len(encode(q, "dense")) / len(v)


def test_elias_gamma_codes():
    x = np.array([1, 2, 3, 4, 7, 8, 255, 256, 2**31, 2**32 - 1, 1, 1], np.int64)
    p, pb, s, sb = gamma_encode(x)
    n = np.floor(np.log2(x.astype(np.float64))).astype(int)
    assert pb + sb == (2 * n + 1).sum()              # gamma: 2 floor(log2 x) + 1 bits each
    assert np.array_equal(gamma_decode(p, pb, s, sb, len(x)), x)
    # The prefix section of [1, 2, 5] is 1 | 01 | 001 and the suffix section 0 | 01.
    p, pb, s, sb = gamma_encode(np.array([1, 2, 5]))
    assert (pb, p, sb, s) == (6, bytes([0b10100100]), 3, bytes([0b00100000]))
    for bad in ([0], [-3], [2**32]):
        with pytest.raises(ValueError, match="gamma"):
            gamma_encode(np.array(bad))


def test_bit_writer_and_reader_agree():
    rng = np.random.default_rng(7)
    lengths = rng.integers(0, 65, 5000)
    values = rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    values = np.where(lengths == 64, values, values & ((np.uint64(1) << lengths.astype(np.uint64)) - np.uint64(1)))
    data, nbits = write_bits(values, lengths)
    assert nbits == lengths.sum() and len(data) == (nbits + 7) // 8
    starts = np.cumsum(lengths) - lengths
    assert np.array_equal(read_bits(data, nbits, starts, lengths), values)


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("v,match", [
    (np.array([1.0, np.nan], np.float32), "NaN"),
    (np.array([np.inf, 1.0], np.float32), "NaN or infinity"),
    (np.array([1e39]), "NaN or infinity"),           # float64 beyond float32: inf after conversion
    (np.zeros(0, np.float32), "empty"),
])
def test_bad_vectors(v, match):
    with pytest.raises(ValueError, match=match):
        quantize(v, 7)


@pytest.mark.parametrize("kw,match", [
    (dict(s=0), "s"), (dict(s=-1), "s"), (dict(s=1.5), "s"), (dict(s=2**31), "s"),
    (dict(s=7, bucket_size=0), "bucket_size"), (dict(s=7, norm="l1"), "norm"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        quantize(np.ones(10, np.float32), **kw)


def test_bad_format_and_bits():
    q = quantize(np.ones(4, np.float32), 7)
    with pytest.raises(ValueError, match="format"):
        encode(q, "zip")
    with pytest.raises(ValueError, match="bits"):
        bits_to_levels(1)
    with pytest.raises(ValueError, match="inconsistent"):
        encode(Quantized(5, 7, 4, "l2", q.scales, q.levels))   # 4 levels, 1 scale for n = 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_truncation_and_extension_is_refused(fmt):
    msg = compress(np.random.default_rng(8).standard_normal(300).astype(np.float32), 3, 64, format=fmt)
    for cut in range(len(msg)):
        with pytest.raises(ValueError):
            decode(msg[:cut])
    with pytest.raises(ValueError):
        decode(msg + b"\0")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_single_bit_flip_is_refused(fmt):
    msg = bytearray(compress(np.random.default_rng(9).standard_normal(200).astype(np.float32), 2, 64,
                             format=fmt))
    for bit in range(8 * len(msg)):
        bad = bytearray(msg)
        bad[bit // 8] ^= 0x80 >> (bit % 8)
        with pytest.raises(ValueError):
            decode(bytes(bad))


def reseal(body: bytes) -> bytes:
    """A message with a valid CRC: exercises the structural checks behind the checksum."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_structural_checks_behind_the_crc():
    q = Quantized(4, 2, 4, "l2", np.ones(1, np.float32), np.array([3, 0, 0, 0], np.int8))  # level > s
    with pytest.raises(ValueError, match="exceeds s"):
        decode(encode(q, "dense"))
    with pytest.raises(ValueError, match="exceeds s"):
        decode(encode(q, "elias"))
    good = encode(quantize(np.ones(4, np.float32), 2, 4), "dense")[:-4]
    with pytest.raises(ValueError, match="magic"):
        decode(reseal(b"QSGX" + good[4:]))
    with pytest.raises(ValueError, match="version"):
        decode(reseal(good[:4] + b"\x09" + good[5:]))
    nan_scale = good[:24] + struct.pack("<f", np.nan) + good[28:]
    with pytest.raises(ValueError, match="scales"):
        decode(reseal(nan_scale))
    # Dense code 0b100 = sign set on level 0: a second encoding of zero, refused.
    negzero = good[:28] + bytes([0b10000000]) + good[29:]
    with pytest.raises(ValueError, match="negative zero"):
        decode(reseal(negzero))


@pytest.mark.parametrize("chunk", [8, 64, 1 << 16])
def test_roundtrip_across_chunks(monkeypatch, chunk):
    """The codec works on chunks of CHUNK coordinates (and reads Elias prefixes in pieces of
    2 CHUNK bits, so a piece can end between a gap and its level); messages and decoding must not
    depend on the chunking."""
    from lowbit.qsgd import codec

    rng = np.random.default_rng(10)
    v = rng.standard_normal(3 * (1 << 16) + 123).astype(np.float32) if chunk == 1 << 16 else \
        rng.standard_normal(1000).astype(np.float32)
    v[rng.random(len(v)) < 0.5] = 0
    reference = {}
    for s in (1, 3, 7, 127):
        for d in (5, 512):
            q = quantize(v, s, d, "l2", s)
            reference[s, d] = q, {f: encode(q, f) for f in FORMATS}
    monkeypatch.setattr(codec, "CHUNK", chunk)
    for (s, d), (q, msgs) in reference.items():
        assert quantize(v, s, d, "l2", s).equals(q)   # same randomness, same levels
        for fmt, msg in msgs.items():
            assert encode(q, fmt) == msg
            assert decode(msg).equals(q)
            assert np.array_equal(decode(msg).dequantize(), q.dequantize())


GOLDEN = Quantized(6, 3, 4, "l2", np.array([2.0, 1.0], np.float32),
                   np.array([0, 3, 0, -1, 0, 2], np.int8))
GOLDEN_HEAD = (b"QSGD" + bytes([1, 0, 0, 0]) + struct.pack("<IIQ", 3, 4, 6)
               + struct.pack("<ff", 2.0, 1.0))


def test_dense_format_bit_by_bit():
    """docs/qsgd.md's dense example: codes sign|level in 3 bits: 000 011 000 101 000 010."""
    body = bytes([0b00001100, 0b01010000, 0b10000000])
    msg = GOLDEN_HEAD[:5] + b"\0" + GOLDEN_HEAD[6:] + body
    assert encode(GOLDEN, "dense") == msg + struct.pack("<I", zlib.crc32(msg))


def test_elias_format_bit_by_bit():
    """docs/qsgd.md's Elias example: non-zeros (gap, level) = (2, +3), (2, -1), (2, +2).

    prefix section 0101 011 0101 (unary N of gap, then of level, per non-zero)
    suffix section 0 0 1 | 0 1 | 0 0 0 (gap low bits, sign, level low bits)
    """
    body = struct.pack("<QQQ", 3, 11, 8) + bytes([0b01010110, 0b10100000, 0b00101000])
    msg = GOLDEN_HEAD[:5] + b"\1" + GOLDEN_HEAD[6:] + body
    assert encode(GOLDEN, "elias") == msg + struct.pack("<I", zlib.crc32(msg))
    assert decode(msg + struct.pack("<I", zlib.crc32(msg))).equals(GOLDEN)


def test_the_elias_format_is_coded_by_the_tested_gamma_functions(monkeypatch):
    """One gamma coder (issue 12): the codec's "elias" format goes through elias.gamma_append and
    elias.gamma_values, the functions test_elias_gamma_codes holds to the definition."""
    from lowbit.qsgd import codec, elias

    calls = []
    for name in ("gamma_append", "gamma_values"):
        real = getattr(elias, name)
        monkeypatch.setattr(codec, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    q = quantize(np.random.default_rng(2).standard_normal(3000), 3, rng=5)
    assert decode(encode(q, "elias")).equals(q)
    assert {"gamma_append", "gamma_values"} <= set(calls)


def test_signed_gamma_codes_carry_the_sign_before_the_low_bits():
    from lowbit.qsgd.elias import BitWriter, _as_words, gamma_append, gamma_values

    x = np.array([5, -5, 1, -1, 2**31], np.int64)
    signed = np.array([False, True, True, True, True])
    prefix, suffix = BitWriter(), BitWriter()
    gamma_append(prefix, suffix, x, signed)
    sb, sbits = suffix.getvalue()
    # 5 = 1|01: suffix 01; -5 signed: 1 01; 1: 0; -1: 1; 2**31 signed: 0 then 31 zeros.
    assert sbits == 2 + 3 + 1 + 1 + 32
    assert sb[0] == 0b01101010
    values, used = gamma_values(np.array([2, 2, 0, 0, 31]), _as_words(sb, sbits), 0, sbits, signed)
    assert used == sbits and values.tolist() == x.tolist()
