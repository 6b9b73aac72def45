"""The compiled golden model equals the NumPy spec (lowbit.contract.golden.run) bit for bit."""

import dataclasses

import numpy as np
import pytest

from lowbit.contract import golden
from lowbit.contract.fixed import INT32_MAX, INT32_MIN, labels_to_fixed, step_to_fixed
from lowbit.contract.format import SUPPORTED_LINE_BITS, LineFormat, pack_codes
from lowbit.contract.quant import code_table, levels_to_fixed, uniform_levels
from lowbit.golden_fast import affine_table, run_packed


def both(cfg, codes, labels, tm, te, line_bits=512, layout="planes"):
    fmt = LineFormat(cfg.bits, cfg.features, line_bits, layout=layout)
    lines = np.concatenate([pack_codes(c, fmt) for c in codes])
    ref = golden.run(cfg, codes, labels, tm, te)
    fast = run_packed(cfg, lines, labels, tm, te, fmt)
    return ref, fast


def random_case(seed, levels="random"):
    rng = np.random.default_rng(seed)
    bits = int(rng.integers(1, 9))
    rows = int(rng.integers(1, 120))
    features = int(rng.integers(1, 90))
    copies = int(rng.integers(1, 4))
    batch = int(rng.choice([1, 2, 3, 16, rows, rows + int(rng.integers(1, 50))]))
    ncodes = (1 << (bits + 1)) - 1
    codes = rng.integers(0, ncodes, (copies, rows, features)).astype(np.uint16)
    labels = labels_to_fixed(rng.uniform(-1, 1, rows))
    if levels == "uniform":
        lv = uniform_levels(bits)
    else:
        lv = np.sort(np.concatenate([[-1, 1], rng.uniform(-1, 1, (1 << bits) - 2)]))
    tm, te = code_table(levels_to_fixed(lv))
    step = step_to_fixed(float(rng.choice([1e-4, 0.5 / (features * min(batch, rows)), 0.3])))
    cfg = golden.EngineConfig(rows=rows, features=features, bits=bits, batch=batch,
                              epochs=int(rng.integers(1, 5)), step=step, copies=copies)
    return cfg, codes, labels, tm, te, int(rng.choice(SUPPORTED_LINE_BITS))


@pytest.mark.parametrize("seed", range(40))
def test_random_configurations_are_bit_identical(seed):
    cfg, codes, labels, tm, te, line_bits = random_case(seed)
    assert not affine_table(tm[: 2 * (1 << cfg.bits) - 1], te[: 2 * (1 << cfg.bits) - 1]) or cfg.bits == 1
    ref, fast = both(cfg, codes, labels, tm, te, line_bits)
    assert np.array_equal(ref.models, fast.models), cfg
    assert ref.losses == fast.losses, cfg


@pytest.mark.parametrize("seed", range(200, 216))
def test_pipelined_sgd_is_bit_identical(seed):
    """MODEL_DELAY 1 (dot products against the model one minibatch old, the correction and the
    update against the current one) on both code paths: looked-up tables and computed affine ones."""
    cfg, codes, labels, tm, te, line_bits = random_case(seed, levels="uniform" if seed % 2 else "random")
    cfg = dataclasses.replace(cfg, model_delay=1)
    ref, fast = both(cfg, codes, labels, tm, te, line_bits)
    assert np.array_equal(ref.models, fast.models), cfg
    assert ref.losses == fast.losses, cfg


@pytest.mark.parametrize("seed", range(100, 124))
def test_uniform_levels_computed_not_looked_up_are_bit_identical(seed):
    """Evenly spaced levels have an affine code table, which the fast model computes instead of
    looking up (another code path): random b = 1..8, batches, copies, line widths, both layouts."""
    cfg, codes, labels, tm, te, line_bits = random_case(seed, levels="uniform")
    assert affine_table(tm, te)
    for layout in ("planes", "woven"):
        ref, fast = both(cfg, codes, labels, tm, te, line_bits, layout)
        assert np.array_equal(ref.models, fast.models), (cfg, layout)
        assert ref.losses == fast.losses, (cfg, layout)


@pytest.mark.parametrize("bits", range(1, 9))
def test_every_uniform_table_is_affine_and_a_perturbed_one_is_not(bits):
    tm, te = code_table(levels_to_fixed(uniform_levels(bits)))
    assert affine_table(tm, te)
    bent = tm.copy()
    bent[-1] -= 1
    assert not affine_table(bent, te)
    if bits > 1:
        lv = uniform_levels(bits).copy()
        lv[1] += 1 / 16384                                         # one level one LSB off
        assert not affine_table(*code_table(levels_to_fixed(lv)))


def test_woven_lines_with_random_levels():
    cfg, codes, labels, tm, te, line_bits = random_case(7)
    ref, fast = both(cfg, codes, labels, tm, te, line_bits, "woven")
    assert np.array_equal(ref.models, fast.models) and ref.losses == fast.losses


def test_every_batch_size_including_larger_than_rows():
    rng = np.random.default_rng(1)
    rows, features = 23, 40
    codes = rng.integers(0, 31, (2, rows, features)).astype(np.uint16)
    labels = labels_to_fixed(rng.uniform(-1, 1, rows))
    tm, te = code_table(levels_to_fixed(uniform_levels(4)))
    for batch in list(range(1, rows + 2)) + [4096]:
        cfg = golden.EngineConfig(rows=rows, features=features, bits=4, batch=batch, epochs=3,
                                  step=step_to_fixed(0.01), copies=2)
        ref, fast = both(cfg, codes, labels, tm, te)
        assert np.array_equal(ref.models, fast.models) and ref.losses == fast.losses, batch


@pytest.mark.parametrize("table", ["affine", "looked up"])
def test_saturation_of_model_residual_and_loss(table):
    """A huge step drives the residuals and the gradients to their clamps, and 2^18 residuals of
    2^31 make the loss accumulator saturate at 2^64 - 1. Both code paths (computed affine table,
    looked-up table); odd codes in half the features carry corrections."""
    rows, features, bits = 300, 64, 8
    lv = uniform_levels(bits).copy()
    if table == "looked up":
        lv[1] += 1 / 16384
    tm, te = code_table(levels_to_fixed(lv))
    assert affine_table(tm, te) == (table == "affine")
    top = (1 << (bits + 1)) - 2                                    # code of the pair (1, 1): m = 1
    codes = np.full((1, rows, features), top, dtype=np.uint16)
    codes[0, :, ::2] = np.random.default_rng(5).integers(0, top + 1, (rows, features // 2))
    labels = np.where(np.arange(rows) % 7 == 0, INT32_MAX, INT32_MIN).astype(np.int32)
    cfg = golden.EngineConfig(rows=rows, features=features, bits=bits, batch=rows, epochs=4,
                              step=(1 << 32) - 1, copies=1)
    ref, fast = both(cfg, codes, labels, tm, te)
    assert np.array_equal(ref.models, fast.models) and ref.losses == fast.losses
    # The residual and gradient clamps acted: one update moved the model by the clamped maximum.
    assert np.abs(ref.models.astype(np.int64)).max() >= INT32_MAX
    # Each row adds (2^31)^2 >> 16 = 2^46 at most; the accumulator saturates only past 2^18 such
    # rows, so check the saturating add directly with enough epochs' worth in one: rows = 2^18 + ...
    big_rows = (1 << 18) + 5
    codes = np.zeros((1, big_rows, 1), dtype=np.uint16)          # m = -1 times w = 0: residual = -y
    labels = np.full(big_rows, INT32_MIN, dtype=np.int32)        # residual sat32(2^31) = INT32_MAX
    cfg = golden.EngineConfig(rows=big_rows, features=1, bits=1, batch=4096, epochs=1, step=1, copies=1)
    tm1, te1 = code_table(levels_to_fixed(uniform_levels(1)))
    ref, fast = both(cfg, codes, labels, tm1, te1)
    assert ref.losses == fast.losses == [(1 << 64) - 1]


def test_rejects_what_the_spec_rejects():
    cfg, codes, labels, tm, te, _ = random_case(3)
    fmt = LineFormat(cfg.bits, cfg.features)
    lines = np.concatenate([pack_codes(c, fmt) for c in codes])
    with pytest.raises(ValueError, match="lines must be"):
        run_packed(cfg, lines[1:], labels, tm, te, fmt)
    with pytest.raises(ValueError, match="labels must have shape"):
        run_packed(cfg, lines, labels[1:], tm, te, fmt)
    with pytest.raises(ValueError, match="packed for"):
        run_packed(cfg, lines, labels, tm, te, LineFormat(cfg.bits, cfg.features + 1))
    bad = np.full((1, 5, 3), 3, dtype=np.uint16)                  # 3 is not a 1-bit code (0..2)
    fmt1 = LineFormat(1, 3)
    cfg1 = golden.EngineConfig(rows=5, features=3, bits=1, batch=2, epochs=1, step=1, copies=1)
    with pytest.raises(ValueError, match="out of range"):
        run_packed(cfg1, pack_codes_unchecked(bad[0], fmt1), np.zeros(5, np.int32), tm, te, fmt1)


def pack_codes_unchecked(codes, fmt):
    """pack_codes refuses out-of-range codes; corrupt lines are made by setting the bits by hand."""
    ok = pack_codes(codes & 1, fmt)
    ok[1] |= pack_codes(np.ones_like(codes), fmt)[0]  # plane 1 = bit 1 of every code
    return ok
