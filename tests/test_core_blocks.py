"""Unit tests of the training core's blocks in Amaranth's simulator (separate producer and
consumer testbenches with random valid/ready gaps)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from core_models import lines_to_ints
from lowbit.contract.fixed import rshift_round, sat32
from lowbit.contract.format import MAX_BITS, LineFormat, pack_codes, unpack_codes
from lowbit.contract.quant import code_table, levels_to_fixed, uniform_levels
from lowbit_hw.core.code_table import CodeTable
from lowbit_hw.core.decoder import BitPlaneDecoder
from lowbit_hw.core.dot import DotPass
from lowbit_hw.core.labels import LabelUnpacker
from lowbit_hw.core.model_memory import ModelMemory
from lowbit_hw.core.params import MASK_CODE
from lowbit_hw.core.row_buffer import RowBuffer


def run_sim(dut, *benches, deadline=200_000):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for b in benches:
        sim.add_testbench(b)
    sim.run_until(deadline * 1e-8) if deadline else sim.run()


async def gap(ctx, rng, p):
    """Idle for a geometric number of cycles (none with probability 1 - p)."""
    while rng.random() < p:
        await ctx.tick()


async def put(ctx, stream, payload):
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def get(ctx, stream):
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


# ---------------------------------------------------------------------------------------------
# BitPlaneDecoder


async def load_decoder(ctx, dut, *, bits, count):
    """Set the decoder up for ``count`` lines of ``bits``-bit codes: a one-cycle ``load`` pulse."""
    ctx.set(dut.bits, bits)
    ctx.set(dut.count, count)
    ctx.set(dut.load, 1)
    await ctx.tick()
    ctx.set(dut.load, 0)


@pytest.mark.parametrize("bits", range(1, MAX_BITS + 1))
@pytest.mark.parametrize("line_bits, lanes", [(64, 4), (128, 32)])
def test_decoder_matches_unpack_codes(bits, line_bits, lanes):
    """Beats are the stream of codes in order, ``lanes`` at a time, for every b with one design;
    the decoder takes exactly ``count`` lines after ``load`` and not one more."""
    rng = np.random.default_rng(bits * 7 + lanes)
    fmt = LineFormat(bits=bits, features=32, line_bits=line_bits)
    rows = 2 * line_bits // 32 + 1  # 3 blocks, the last one partly padding
    codes = rng.integers(0, fmt.codes, size=(rows, 32))
    lines = pack_codes(codes, fmt)
    assert np.array_equal(unpack_codes(lines, fmt, rows), codes)
    values = lines_to_ints(lines)
    n_beats = len(values) // (bits + 1) * line_bits // lanes
    dut = BitPlaneDecoder(line_bits=line_bits, lanes=lanes)
    got = []
    accepted = []

    async def producer(ctx):
        await load_decoder(ctx, dut, bits=bits, count=len(values))
        for v in values + [12345]:  # one extra line: must not be taken
            await gap(ctx, rng, 0.4)
            ctx.set(dut.lines.valid, 1)
            ctx.set(dut.lines.payload, v)
            for _ in range(200):
                _, _, ready = await ctx.tick().sample(dut.lines.ready)
                if ready:
                    accepted.append(v)
                    break
            ctx.set(dut.lines.valid, 0)

    async def consumer(ctx):
        for _ in range(n_beats):
            await gap(ctx, rng, 0.4)
            beat = await get(ctx, dut.beats)
            got.append([int(beat[i]) for i in range(lanes)])

    run_sim(dut, producer, consumer, deadline=20_000)
    assert accepted == values, "decoder must take exactly the loaded line count"
    stream = np.array(got).reshape(-1)
    expect = np.zeros(n_beats * lanes, dtype=np.int64)
    expect[: rows * 32] = codes.reshape(-1)
    np.testing.assert_array_equal(stream, expect)


def test_decoder_full_rate():
    """Compute-bound (3 lines, 8 beats per block): with lines and beats always available a beat
    leaves every cycle, no bubble between blocks."""
    line_bits, lanes, bits = 64, 8, 2
    dut = BitPlaneDecoder(line_bits=line_bits, lanes=lanes)
    valid_cycles = []

    async def bench(ctx):
        await load_decoder(ctx, dut, bits=bits, count=3 * 20)
        ctx.set(dut.lines.valid, 1)
        ctx.set(dut.beats.ready, 1)
        for cycle in range(100):
            _, _, v = await ctx.tick().sample(dut.beats.valid)
            valid_cycles.append(bool(v))

    run_sim(dut, bench, deadline=None)
    first = valid_cycles.index(True)
    assert all(valid_cycles[first:first + 8 * 12]), "a beat every cycle once the first block is in"


def test_decoder_memory_bound_takes_a_line_every_cycle():
    """Memory-bound (9 lines, 8 beats per block): a line is taken every cycle, the line arriving
    as the drain takes over the fill buffer included."""
    line_bits, lanes, bits = 64, 8, 8
    dut = BitPlaneDecoder(line_bits=line_bits, lanes=lanes)
    taken = []

    async def bench(ctx):
        await load_decoder(ctx, dut, bits=bits, count=9 * 10)
        ctx.set(dut.lines.valid, 1)
        ctx.set(dut.beats.ready, 1)
        for cycle in range(9 * 10):
            _, _, r = await ctx.tick().sample(dut.lines.ready)
            taken.append(bool(r))

    run_sim(dut, bench, deadline=None)
    assert all(taken)


# ---------------------------------------------------------------------------------------------
# CodeTable


def test_code_table_two_ports_and_mask_code():
    lanes = 4
    dut = CodeTable(lanes=lanes)
    m, e = code_table(levels_to_fixed(uniform_levels(8)))
    rng = np.random.default_rng(0)

    async def bench(ctx):
        for i in range(len(m)):
            ctx.set(dut.table.en, 1)
            ctx.set(dut.table.index, i)
            ctx.set(dut.table.m, int(m[i]))
            ctx.set(dut.table.e, int(e[i]))
            await ctx.tick()
        # entry 511 cannot be written: it is the padding code, m = e = 0
        ctx.set(dut.table.index, MASK_CODE)
        ctx.set(dut.table.m, 777)
        ctx.set(dut.table.e, 555)
        await ctx.tick()
        ctx.set(dut.table.en, 0)
        for _ in range(50):
            a = rng.integers(0, 512, size=lanes)
            b = rng.integers(0, 512, size=lanes)
            for lane in range(lanes):
                ctx.set(dut.a_addr[lane], int(a[lane]))
                ctx.set(dut.b_addr[lane], int(b[lane]))
            await ctx.tick()
            for lane in range(lanes):
                ma = int(m[a[lane]]) if a[lane] < 511 else 0
                mb = int(m[b[lane]]) if b[lane] < 511 else 0
                eb = int(e[b[lane]]) if b[lane] < 511 else 0
                assert ctx.get(dut.a_m[lane]) == ma
                assert ctx.get(dut.b_m[lane]) == mb and ctx.get(dut.b_e[lane]) == eb

    run_sim(dut, bench, deadline=None)


# ---------------------------------------------------------------------------------------------
# LabelUnpacker


def test_label_unpacker_epochs():
    """N labels per epoch from ceil(N/P) lines, the tail of the last line dropped."""
    line_bits, n = 128, 6  # 4 words per line: 2 lines, 2 words dropped
    rng = np.random.default_rng(3)
    dut = LabelUnpacker(line_bits=line_bits)
    epochs = [rng.integers(-2**31, 2**31, size=n) for _ in range(2)]
    lines = []
    for y in epochs:
        words = np.concatenate([y, rng.integers(-2**31, 2**31, size=2)]).astype(np.int64) & 0xFFFFFFFF
        lines += [sum(int(w) << (32 * i) for i, w in enumerate(words[j:j + 4])) for j in (0, 4)]
    got = []

    async def producer(ctx):
        for v in lines:
            await gap(ctx, rng, 0.3)
            await put(ctx, dut.lines, v)

    async def consumer(ctx):
        for y in epochs:
            ctx.set(dut.count, n)
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for _ in range(n):
                await gap(ctx, rng, 0.3)
                got.append(int(await get(ctx, dut.labels)))

    run_sim(dut, producer, consumer, deadline=5_000)
    np.testing.assert_array_equal(got, np.concatenate(epochs))


# ---------------------------------------------------------------------------------------------
# DotPass (with the code table, model memory and row buffer it reads and writes)


def dot_harness(lanes, row_beats_max, block_beats):
    m = Module()
    m.submodules.dot = dot = DotPass(lanes=lanes, row_beats_max=row_beats_max, block_beats=block_beats)
    m.submodules.table = table = CodeTable(lanes=lanes)
    m.submodules.model = model = ModelMemory(lanes=lanes, depth=row_beats_max)
    m.submodules.rb = rb = RowBuffer(lanes=lanes, depth=256)
    m.d.comb += [table.a_addr.eq(dot.table_addr), dot.table_m.eq(table.a_m), model.a_addr.eq(dot.model_addr),
                 dot.model_data.eq(model.a_data), rb.w_en.eq(dot.rb_en), rb.w_data.eq(dot.rb_data),
                 dot.rb_space.eq(rb.space)]
    return m, dot, table, model


def dot_problem(rng, rows, features, lanes, bits=4):
    m, e = code_table(levels_to_fixed(uniform_levels(bits)))
    codes = rng.integers(0, len(m), size=(rows, features))
    w = rng.integers(-2**31, 2**31, size=features)
    w[: features // 2] >>= 10  # some small, some huge (saturating residuals)
    y = rng.integers(-2**31, 2**31, size=rows)
    fpad = -(-features // 32) * 32
    r = sat32(rshift_round(m[codes] @ w, 15) - y)
    loss = int(((r * r) >> 16).sum())
    return m, e, codes, w, y, fpad, r, loss


async def load_dot(ctx, dot, table, model, m, e, w, fpad, lanes, *, rows, features, batch, pad_beats=0):
    for i in range(len(m)):
        ctx.set(table.table.en, 1)
        ctx.set(table.table.index, i)
        ctx.set(table.table.m, int(m[i]))
        ctx.set(table.table.e, int(e[i]))
        await ctx.tick()
    ctx.set(table.table.en, 0)
    wp = np.zeros(fpad, dtype=np.int64)
    wp[: len(w)] = w
    for k in range(fpad // lanes):
        ctx.set(model.w_en, 1)
        ctx.set(model.w_addr, k)
        for lane in range(lanes):
            ctx.set(model.w_data[lane], int(wp[k * lanes + lane]))
        await ctx.tick()
    ctx.set(model.w_en, 0)
    for name, v in (("features", features), ("row_beats", fpad // lanes), ("rows", rows), ("batch", batch),
                    ("pad_beats", pad_beats)):
        ctx.set(getattr(dot, name), v)
    ctx.set(dot.start, 1)
    await ctx.tick()
    ctx.set(dot.start, 0)
    ctx.set(dot.running, 1)


def beats_of(codes, fpad, lanes):
    """Row-padded code stream (padding code 0, as in memory), in beats."""
    rows, f = codes.shape
    s = np.zeros((rows, fpad), dtype=np.int64)
    s[:, :f] = codes
    return s.reshape(-1, lanes)


def test_dot_pass_residuals_and_loss():
    """r_i = sat32(rnd(sum_j m_ij w_j, 15) - y_i), loss = sum (r*r >> 16); padding lanes ignored
    (memory holds code 0 there, whose m is not 0); labels, beats and residuals all with gaps."""
    lanes, rows, features = 4, 6, 45
    rng = np.random.default_rng(11)
    m, e, codes, w, y, fpad, r_exp, loss_exp = dot_problem(rng, rows, features, lanes)
    assert m[0] != 0
    top, dot, table, model = dot_harness(lanes, 64, 16)
    beats = beats_of(codes, fpad, lanes)
    got = []
    ready = {}

    async def control(ctx):
        await load_dot(ctx, dot, table, model, m, e, w, fpad, lanes, rows=rows, features=features, batch=rows)
        ready["go"] = True

    async def beat_producer(ctx):
        while "go" not in ready:
            await ctx.tick()
        for b in beats:
            await gap(ctx, rng, 0.3)
            await put(ctx, dot.beats, [int(x) for x in b])

    async def label_producer(ctx):
        while "go" not in ready:
            await ctx.tick()
        for v in y:
            await gap(ctx, rng, 0.3)
            await put(ctx, dot.labels, int(v))

    async def consumer(ctx):
        for _ in range(rows):
            await gap(ctx, rng, 0.5)
            got.append(await get(ctx, dot.residuals))
        for _ in range(8):  # the loss pipeline
            await ctx.tick()
        ready["loss"] = ctx.get(dot.loss)
        ready["done"] = ctx.get(dot.done)

    run_sim(top, control, beat_producer, label_producer, consumer, deadline=20_000)
    assert [int(g.r) for g in got] == [int(v) for v in r_exp]
    assert [int(g.batch_last) for g in got] == [0] * (rows - 1) + [1]
    assert ready["loss"] == loss_exp
    assert ready["done"]


def test_dot_pass_interlock_follows_update_beat_by_beat():
    """batch = 1: beat k of a row of minibatch q >= 1 issues only once the gradient pass has written
    model beat k of update q-1 (upd_written >= (q-1)*R + k + 1), and as soon as it has."""
    lanes, rows, features = 4, 3, 64
    R = features // lanes
    rng = np.random.default_rng(5)
    m, e, codes, w, y, fpad, _, _ = dot_problem(rng, rows, features, lanes)
    top, dot, table, model = dot_harness(lanes, 64, 16)
    beats = beats_of(codes, fpad, lanes)
    issues = []  # (row, k, upd_written) per issued beat
    state = {}

    async def control(ctx):
        await load_dot(ctx, dot, table, model, m, e, w, fpad, lanes, rows=rows, features=features, batch=1)
        state["go"] = True
        ctx.set(dot.labels.valid, 1)
        ctx.set(dot.residuals.ready, 1)
        upd, row, residuals = 0, 0, 0
        for cycle in range(600):
            ctx.set(dot.upd_written, upd)
            _, _, en, k, ly, rv = await ctx.tick().sample(dot.rb_en, dot.model_addr, dot.labels.ready,
                                                          dot.residuals.valid)
            if en:
                issues.append((row, int(k), upd))
            row += bool(ly)
            residuals += bool(rv)
            # The update of row i (batch 1) starts once its residual is out, and writes a beat
            # every 3 cycles.
            if cycle % 3 == 2 and upd < min(residuals, rows - 1) * R:
                upd += 1

    async def beat_producer(ctx):
        while "go" not in state:
            await ctx.tick()
        for b in beats:
            await put(ctx, dot.beats, [int(x) for x in b])

    run_sim(top, control, beat_producer, deadline=None)
    assert len(issues) == rows * R
    for row, k, upd in issues:
        if row == 0:
            continue
        need = (row - 1) * R + k + 1
        assert upd == need, f"row {row} beat {k} issued at upd_written {upd}, interlock needs exactly {need}"
    assert [k for _, k, _ in issues] == list(range(R)) * rows
