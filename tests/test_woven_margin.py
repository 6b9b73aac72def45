"""RowNonlinearity (the woven core's per-row residual and loss) against the golden model's own
functions, on dot products chosen to reach every region: inside the table, both clamps, logistic's
tail, hinge's kink, and the saturations of ``rnd(dot, 15)`` and of ``-(-2^31)``."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lowbit.contract.fixed import INT32_MAX, INT32_MIN, LOSS_SHIFT, sat32
from lowbit.contract.golden import _phi_naive, _row_loss, horner
from lowbit.contract.losses import TABLE_HI, TABLE_LO, chebyshev_poly, label_signs
from lowbit.contract.registers import MAX_DEGREE, Loss
from lowbit_hw.woven.margin import RowNonlinearity

S = 2
DOT_WIDTH = 77  # as the 64-bit core's dot unit builds it


def margin_values(rng, n):
    """Rounded dot products v = rnd(dot, 15): edges first, then random ones on several scales."""
    edges = [0, 1, -1, INT32_MIN, INT32_MIN - 1, INT32_MIN + 1, INT32_MAX, INT32_MAX + 1, INT32_MAX - 1,
             1 << 44, -(1 << 44), TABLE_HI, TABLE_HI + 1, TABLE_HI - 1, TABLE_LO, TABLE_LO - 1, TABLE_LO + 1,
             1 << 24, (1 << 24) - 1, (1 << 24) + 1, -(1 << 24), (1 << 20) - 1, 1 << 20, 5 << 20]
    scales = rng.choice([1 << 22, 1 << 25, 1 << 28, 1 << 32], n - len(edges))
    rand = [int(rng.integers(-int(s), int(s))) for s in scales]
    return np.array(edges + rand, dtype=np.int64)


def expected(kind, v, y, mask):
    """Per group of S rows: (r, loss) as lowbit.contract.golden computes them."""
    if kind == Loss.SQUARED:
        r = sat32(v - y)
        loss = (r * r) >> LOSS_SHIFT
    else:
        s = label_signs(y)
        t = sat32(s * sat32(v))
        r = sat32(s * _phi_naive(kind, t))
        loss = _row_loss(kind, t)
    r = np.where(mask, r, 0)
    return r.reshape(-1, S), np.where(mask, loss, 0).reshape(-1, S).sum(axis=1)


@pytest.mark.parametrize("kind", [Loss.SQUARED, Loss.LOGISTIC, Loss.HINGE])
def test_row_nonlinearity_equals_golden(kind):
    rng = np.random.default_rng(int(kind) + 3)
    n = 128
    v = margin_values(rng, n)
    y = rng.choice([-(1 << 24), 0, 1 << 24, 1, -1, INT32_MIN, INT32_MAX], n).astype(np.int64)
    if kind == Loss.SQUARED:
        y = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    mask = rng.random(n) < 0.85
    low = rng.integers(0, 1 << 15, n)  # the bits rnd(., 15) drops
    want_r, want_loss = expected(kind, v, y, mask)
    unit = RowNonlinearity(samples=S, dot_width=DOT_WIDTH)
    got_r, got_loss = [], []

    async def bench(ctx):
        ctx.set(unit.kind, int(kind))
        await ctx.tick()
        gap = 2  # groups come at least two cycles apart; alternate 2 and 3
        for g in range(n // S + 30):
            rows = slice(g * S, g * S + S)
            if g < n // S:
                ctx.set(unit.valid, 1)
                ctx.set(unit.dot, [int((v[i] << 15) + low[i]) for i in range(rows.start, rows.stop)])
                ctx.set(unit.y, [int(y[i]) for i in range(rows.start, rows.stop)])
                ctx.set(unit.mask, int(sum(int(mask[i]) << (i - rows.start) for i in range(rows.start, rows.stop))))
            for c in range(gap):
                *_, r_valid, r, loss_valid, loss = await ctx.tick().sample(unit.r_valid, unit.r, unit.loss_valid,
                                                                          unit.loss)
                ctx.set(unit.valid, 0)
                if r_valid:
                    got_r.append([int(r[s]) for s in range(S)])
                if loss_valid:
                    got_loss.append(int(loss))
            gap = 5 - gap

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(np.array(got_r), want_r)
    assert got_loss == [int(x) for x in want_loss]


def chebyshev_expected(kind, vs, y, mask, poly, range_shift):
    """Per group: r from the factors' margins (``vs[0]`` factor 0, ``vs[j]`` copy j's) by
    ``golden.horner``, the loss from factor 0's margin."""
    s = label_signs(y)
    ts = [sat32(s * sat32(v)) for v in vs]
    r = np.where(mask, sat32(s * horner(poly, ts[1:], range_shift)), 0)
    loss = np.where(mask, _row_loss(kind, ts[0]), 0)
    return r.reshape(-1, S), loss.reshape(-1, S).sum(axis=1)


@pytest.mark.parametrize("kind, degree, range_shift", [(Loss.LOGISTIC, 1, 2), (Loss.LOGISTIC, 3, 4),
                                                       (Loss.HINGE, 2, 0), (Loss.HINGE, MAX_DEGREE, 7), (Loss.HINGE, 1, 7),
                                                       (Loss.LOGISTIC, MAX_DEGREE, 3)])
def test_row_nonlinearity_chebyshev_equals_golden(kind, degree, range_shift):
    """The Chebyshev estimator: a group's d + 1 factors come ``factor_gap`` cycles apart (factor 0,
    then copies d .. 1, as the dot unit sends them); r is golden.horner's, the loss factor 0's, at
    margins inside and beyond +-2^(24 + RANGE) (the clamp), with the host's coefficients and with
    large random ones (the saturations of each step)."""
    rng = np.random.default_rng(degree * 10 + range_shift)
    n = 48
    vs = [margin_values(rng, n) for _ in range(degree + 1)]
    for v in vs[1:]:
        rng.shuffle(v)
    y = rng.choice([-(1 << 24), 0, 1 << 24, 1, -1, INT32_MIN, INT32_MAX], n).astype(np.int64)
    for v in vs:  # row 3: t = -(-2^31), sat32'd to 2^31 - 1 (at RANGE 7 below the clamp's 2^31)
        v[3] = INT32_MIN
    y[3], mask = -1, rng.random(n) < 0.85
    mask[3] = True
    polys = [chebyshev_poly(kind, degree, range_shift),
             tuple(int(a) for a in rng.integers(INT32_MIN, INT32_MAX, degree + 1, endpoint=True)),
             (0,) * degree + (3 << 29,)]  # |h| > 2^30: row 3's c = 2^31 - 1, not 2^31, shows at RANGE 7
    unit = RowNonlinearity(samples=S, dot_width=DOT_WIDTH)
    got = {}

    async def bench(ctx):
        ctx.set(unit.kind, int(kind))
        ctx.set(unit.cheb, 1)
        ctx.set(unit.degree, degree)
        ctx.set(unit.range_shift, range_shift)
        for pi, poly in enumerate(polys):
            got[pi] = ([], [])
            ctx.set(unit.poly, [int(a) for a in poly] + [0] * (MAX_DEGREE - degree))
            await ctx.tick()
            order = [0, *range(degree, 0, -1)]
            steps = [(g, j) for g in range(n // S) for j in order] + [None] * 4
            for step in steps:
                if step is not None:
                    g, j = step
                    rows = range(g * S, g * S + S)
                    ctx.set(unit.valid, 1)
                    ctx.set(unit.first_factor, j == 0)
                    ctx.set(unit.last_factor, j == order[-1])
                    ctx.set(unit.dot, [int(vs[j][i] << 15) for i in rows])
                    ctx.set(unit.y, [int(y[i]) for i in rows])
                    ctx.set(unit.mask, int(sum(int(mask[i]) << (i - rows.start) for i in rows)))
                for _ in range(RowNonlinearity.factor_gap):
                    *_, r_valid, r, loss_valid, loss = await ctx.tick().sample(unit.r_valid, unit.r, unit.loss_valid,
                                                                              unit.loss)
                    ctx.set(unit.valid, 0)
                    if r_valid:
                        got[pi][0].append([int(r[s]) for s in range(S)])
                    if loss_valid:
                        got[pi][1].append(int(loss))

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for pi, poly in enumerate(polys):
        want_r, want_loss = chebyshev_expected(kind, vs, y, mask, poly, range_shift)
        np.testing.assert_array_equal(np.array(got[pi][0]), want_r)
        assert got[pi][1] == [int(x) for x in want_loss]


@pytest.mark.parametrize("kw, message", [(dict(samples=3, dot_width=DOT_WIDTH), "power of two"),
                                         (dict(samples=2, dot_width=40), "dot_width must exceed 47")])
def test_row_nonlinearity_checks_its_parameters(kw, message):
    with pytest.raises(ValueError, match=message):
        RowNonlinearity(**kw)
