# amaranth: UnusedElaboratable=no
"""RegisterBlock: every register of lowbit.contract.registers behaves as declared over CCI-P MMIO."""

import pytest
from amaranth.sim import Simulator

from lowbit.contract.ccip import MMIO_TID_MASK
from lowbit.contract.fixed import M_BITS, MODEL_FRAC
from lowbit.contract.format import FORMAT_VERSION
from lowbit.contract.registers import (AFU_ID_H, AFU_ID_L, CODE_TABLE_BASE, CODE_TABLE_ENTRIES, DFH_VALUE, REG, REGISTERS,
                              Access, code_table_address, encode_code_entry)
from lowbit_hw.shell import RegisterBlock
from lowbit_hw.shell.csr import MMIO_READ_LATENCY
from shell_models import Mmio, pattern_host, rng_for, run_simulation

PARAMS = dict(line_bits=128, lanes=8, max_features=1024)
M64 = (1 << 64) - 1


class Pulses:
    """What the register block pulses each cycle: (start, reset, table en/index/m/e)."""

    def __init__(self, dut):
        self.dut, self.seen = dut, []

    def __call__(self, ctx):
        d = self.dut
        self.seen.append((ctx.get(d.start), ctx.get(d.reset), ctx.get(d.table.en), ctx.get(d.table.index),
                          ctx.get(d.table.m), ctx.get(d.table.e)))


class ExactLatencyMmio(Mmio):
    """The tests' MMIO driver, holding every read to the block's promise: answered after exactly
    ``MMIO_READ_LATENCY`` cycles."""

    async def read(self, ctx, address, length=8):
        return await super().read(ctx, address, length, latency=MMIO_READ_LATENCY)


def simulate(body, dut=None):
    dut = dut or RegisterBlock(**PARAMS)
    pulses = Pulses(dut)
    mmio = ExactLatencyMmio(pattern_host(PARAMS["line_bits"], 0, c0_rx=dut.c0_rx, c2_tx=dut.c2_tx), on_tick=pulses)

    async def bench(ctx):
        await body(ctx, dut, mmio)
        await mmio.tick(ctx)  # a read answered twice shows here
        mmio.host.check()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    run_simulation(sim)
    return dut, pulses.seen[:-1]


RW = [r for r in REGISTERS if r.access is Access.RW]
RO = [r for r in REGISTERS if r.access is Access.RO]


def test_rw_registers_hold_their_implemented_bits_and_feed_cfg():
    rng = rng_for(1)
    values = {r.name: int(rng.integers(0, 1 << 63)) * 2 + 1 for r in RW}

    async def body(ctx, dut, mmio):
        for r in RW:
            await mmio.write(ctx, r.address, values[r.name])
        for r in RW:
            want = values[r.name] & ((1 << r.width) - 1)
            assert await mmio.read(ctx, r.address) == want, r.name
            if hasattr(dut.cfg, r.name.lower()):
                assert ctx.get(getattr(dut.cfg, r.name.lower())) == want, r.name

    simulate(body)


def test_four_byte_accesses_address_one_half():
    async def body(ctx, dut, mmio):
        a = REG["SCRATCH"].address
        await mmio.write(ctx, a, 0x1122334455667788)
        assert await mmio.read(ctx, a, 4) == 0x55667788
        assert await mmio.read(ctx, a + 4, 4) == 0x11223344
        await mmio.write(ctx, a + 4, 0xAABBCCDD, 4)
        assert await mmio.read(ctx, a) == 0xAABBCCDD55667788
        await mmio.write(ctx, a, 0x01020304, 4)
        assert await mmio.read(ctx, a) == 0xAABBCCDD01020304
        assert await mmio.read(ctx, REG["AFU_ID_H"].address + 4, 4) == AFU_ID_H >> 32

    simulate(body)


def test_ro_registers_show_constants_and_core_status():
    caps = REG["CAPS"]

    async def body(ctx, dut, mmio):
        st = dut.status
        ctx.set(st.state, 2)
        ctx.set(st.error, 0x5A)
        ctx.set(st.epoch, 0xDEADBEEF)
        counters = {"CYCLES": (st.cycles, 0x1234_5678_9ABC_DEF0), "READ_LINES": (st.read_lines, 0xFFFF_0000_1111),
                    "WRITE_LINES": (st.write_lines, 77), "STALL_CYCLES": (st.stall_cycles, M64)}
        for sig, v in counters.values():
            ctx.set(sig, v)
        got = {r.name: await mmio.read(ctx, r.address) for r in RO}
        assert got["DFH"] == DFH_VALUE
        assert got["AFU_ID_L"] == AFU_ID_L and got["AFU_ID_H"] == AFU_ID_H
        assert got["DFH_RSVD0"] == 0 and got["DFH_RSVD1"] == 0
        assert caps.decode(got["CAPS"]) == dict(LINE_BITS=128, LANES=8, MAX_FEATURES=1024, MODEL_FRAC=MODEL_FRAC,
                                                FORMAT_VERSION=FORMAT_VERSION)
        assert REG["STATUS"].decode(got["STATUS"]) == dict(STATE=2, ERROR=0x5A, EPOCH=0xDEADBEEF)
        for name, (_, v) in counters.items():
            assert got[name] == v, name
        # writes to RO registers are ignored
        for r in RO:
            await mmio.write(ctx, r.address, 0)
        assert await mmio.read(ctx, REG["DFH"].address) == DFH_VALUE
        assert await mmio.read(ctx, REG["CYCLES"].address) == counters["CYCLES"][1]

    simulate(body)


def test_unknown_and_write_only_addresses_read_zero():
    known = {r.address for r in REGISTERS if r.access is not Access.WO}
    unknown = sorted({a for a in range(0, 0x200, 8)} - known)
    unknown += [REG["CTRL"].address, CODE_TABLE_BASE, code_table_address(CODE_TABLE_ENTRIES - 1),
                CODE_TABLE_BASE + 8 * CODE_TABLE_ENTRIES, 0x2000, 0xFFF8, 0x3FFF8]

    async def body(ctx, dut, mmio):
        for r in RW:  # make sure a decode slip would show a non-zero value
            await mmio.write(ctx, r.address, M64)
        for a in unknown:
            assert await mmio.read(ctx, a & 0x3FFFF) == 0, hex(a)
            assert await mmio.read(ctx, (a & 0x3FFFF) + 4, 4) == 0, hex(a)

    simulate(body)


def test_back_to_back_reads_each_answered_once_with_their_tid():
    rng = rng_for(2)
    addrs = [int(a) * 8 for a in rng.integers(0, 0x400, 300)]

    async def body(ctx, dut, mmio):
        await mmio.write(ctx, REG["SCRATCH"].address, 0x5555)
        reads = [mmio.host.host.mmio_read(a) for a in addrs]  # one goes out each cycle
        while not reads[-1].done:
            await mmio.tick(ctx)
        assert [r.latency for r in reads] == [MMIO_READ_LATENCY] * len(addrs)  # each answered once, by tid
        assert [r.tid for r in reads] == [i & MMIO_TID_MASK for i in range(len(addrs))]
        by_addr = {REG["SCRATCH"].address: 0x5555, REG["DFH"].address: DFH_VALUE}
        for a, r in zip(addrs, reads):
            if a in by_addr:
                assert r.value == by_addr[a]

    simulate(body)


def test_ctrl_writes_pulse_start_and_reset_for_one_cycle():
    ctrl = REG["CTRL"]

    async def body(ctx, dut, mmio):
        await mmio.write(ctx, ctrl.address, ctrl.encode(START=1))
        await mmio.tick(ctx)
        await mmio.write(ctx, ctrl.address, ctrl.encode(RESET=1))
        await mmio.tick(ctx)
        await mmio.write(ctx, ctrl.address, 0)
        await mmio.write(ctx, ctrl.address + 4, M64, 4)  # high half: no bits there
        await mmio.write(ctx, ctrl.address, ctrl.encode(START=1, RESET=1), 4)
        await mmio.tick(ctx)
        await mmio.write(ctx, REG["SCRATCH"].address, 3)  # not CTRL
        await mmio.tick(ctx)
        await mmio.tick(ctx)
        assert ctx.get(dut.cfg.rows) == 0

    _, pulses = simulate(body)
    seq = [(s, r) for s, r, *_ in pulses]
    assert seq == [(1, 0), (0, 0), (0, 1), (0, 0), (0, 0), (0, 0), (1, 1), (0, 0), (0, 0), (0, 0), (0, 0)]


def test_code_table_writes_pulse_one_entry_each():
    rng = rng_for(3)
    entries = [(int(c), int(rng.integers(-(1 << 16), 1 << 16)), int(rng.integers(0, 1 << 16)))
               for c in [0, 1, 255, 256, CODE_TABLE_ENTRIES - 1]]

    async def body(ctx, dut, mmio):
        for c, mv, ev in entries:
            await mmio.write(ctx, code_table_address(c), encode_code_entry(mv, ev))
        await mmio.write(ctx, CODE_TABLE_BASE + 8 * CODE_TABLE_ENTRIES, encode_code_entry(1, 1))  # past the window
        await mmio.write(ctx, code_table_address(7), encode_code_entry(1, 1), 4)  # 4-byte: ignored
        await mmio.write(ctx, CODE_TABLE_BASE - 8, encode_code_entry(1, 1))  # below the window
        await mmio.tick(ctx)

    _, pulses = simulate(body)
    got = [(i, m, e) for _, _, en, i, m, e in pulses if en]
    assert got == [(c, mv & ((1 << M_BITS) - 1), ev) for c, mv, ev in entries]


def test_construction_checks_parameters_and_caps_fields():
    with pytest.raises(ValueError, match="lanes"):
        RegisterBlock(line_bits=512, lanes=256, max_features=8192)
    with pytest.raises(ValueError, match="max_features"):
        RegisterBlock(line_bits=512, lanes=32, max_features=0)
    with pytest.raises(ValueError, match="line_bits"):
        RegisterBlock(line_bits=96, lanes=32, max_features=8192)
