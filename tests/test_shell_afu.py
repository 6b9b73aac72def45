# amaranth: UnusedElaboratable=no
"""LowbitAFU wiring (with a loopback TEST DOUBLE in place of the training core) and the Verilog export."""

import json

import pytest
from amaranth.sim import Simulator

import lowbit_hw.afu
from lowbit.contract.registers import AFU_ID_H, DFH_VALUE, REG, State, code_table_address, encode_code_entry
from lowbit_hw.afu import LowbitAFU
from lowbit_hw.export import export_verilog, port_list
from shell_models import AlmostFull, line_value, LoopbackCore, ReadResponder, rng_for, run_simulation, WriteResponder

W = 64


class HostMmio:
    """MMIO on the AFU's CCI-P ports, one access at a time (c2 answers are collected by tid)."""

    def __init__(self, ccip):
        self.ccip, self.answers, self.tid = ccip, {}, 0

    def write(self, ctx, byte_addr, value):
        ctx.set(self.ccip.c0_rx.mmio_address, byte_addr >> 2)
        ctx.set(self.ccip.c0_rx.mmio_length, 1)
        ctx.set(self.ccip.c0_rx.data, value)  # responses drive data too, but never in an MMIO cycle here
        ctx.set(self.ccip.c0_rx.mmio_wr_valid, 1)

    def read(self, ctx, byte_addr):
        self.tid += 1
        ctx.set(self.ccip.c0_rx.mmio_address, byte_addr >> 2)
        ctx.set(self.ccip.c0_rx.mmio_length, 1)
        ctx.set(self.ccip.c0_rx.mmio_tid, self.tid)
        ctx.set(self.ccip.c0_rx.mmio_rd_valid, 1)
        return self.tid

    def idle(self, ctx):
        ctx.set(self.ccip.c0_rx.mmio_wr_valid, 0)
        ctx.set(self.ccip.c0_rx.mmio_rd_valid, 0)

    def observe(self, ctx):
        if ctx.get(self.ccip.c2_tx.mmio_rd_valid):
            tid = ctx.get(self.ccip.c2_tx.tid)
            assert tid not in self.answers, f"tid {tid} answered twice"
            self.answers[tid] = ctx.get(self.ccip.c2_tx.data)


def run_mmio_script(dut, mmio, rd, wr, script, *, cycles, poll_every, done):
    """Clock the AFU with the CCI-P responders, issue ``script`` (one MMIO access a cycle:
    ``("w", addr, value)`` or ``("r", addr)``), then read STATUS every ``poll_every`` cycles until
    ``done(cycle, status)`` holds for the answer to the previous poll. Returns the read tids."""
    tids = []

    async def bench(ctx):
        polls = []
        for cycle in range(cycles):
            mmio.observe(ctx)
            rd.step(ctx, cycle)
            wr.step(ctx, cycle)
            mmio.idle(ctx)
            if cycle < len(script):
                op = script[cycle]
                if op[0] == "w":
                    mmio.write(ctx, op[1], op[2])
                else:
                    tids.append(mmio.read(ctx, op[1]))
            elif cycle % poll_every == 0:
                if polls and polls[-1] in mmio.answers and done(cycle, REG["STATUS"].decode(mmio.answers[polls[-1]])):
                    break
                polls.append(mmio.read(ctx, REG["STATUS"].address))
                tids.append(polls[-1])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    run_simulation(sim)
    return tids


def test_afu_runs_a_loopback_job_over_ccip():
    """MMIO config + START -> core commands -> reads out of order -> writes -> status, all through
    the real shell; the loopback core writes data ^ label per line."""
    rows, data_addr, label_addr, model_addr, status_addr = 37, 0x1003, 0x5000, 0x9001, 0xA000
    dut = LowbitAFU(line_bits=W, lanes=4, max_features=64, read_depth=16, core_factory=LoopbackCore)
    rng = rng_for(11)
    # Responses never coincide with an MMIO write: the testbench only writes MMIO before START.
    rd = ReadResponder(dut.ccip.c0_tx, dut.ccip.c0_rx, dut.ccip.c0_tx_almfull, line_bits=W, rng=rng,
                       latency=(20, 120), almost_full=AlmostFull(rng, 0.03, 0.2))
    wr = WriteResponder(dut.ccip.c1_tx, dut.ccip.c1_rx, dut.ccip.c1_tx_almfull, rng=rng,
                        almost_full=AlmostFull(rng, 0.03, 0.2))
    mmio = HostMmio(dut.ccip)
    setup = [("DATA_ADDR", data_addr), ("LABEL_ADDR", label_addr), ("MODEL_ADDR", model_addr),
             ("STATUS_ADDR", status_addr), ("ROWS", rows), ("RUN_ID", 0xC0FFEE)]
    script = [("w", REG[n].address, v) for n, v in setup]
    script += [("w", code_table_address(c), encode_code_entry(c, c)) for c in (0, 3, 9)]
    script += [("r", REG["DFH"].address), ("r", REG["AFU_ID_H"].address), ("r", REG["ROWS"].address),
               ("w", REG["CTRL"].address, REG["CTRL"].encode(START=1))]
    tids = run_mmio_script(dut, mmio, rd, wr, script, cycles=4000, poll_every=50,
                           done=lambda cycle, st: cycle > 100 and st["STATE"] == State.DONE)
    assert [mmio.answers[t] for t in tids[:3]] == [DFH_VALUE, AFU_ID_H, rows]
    status = REG["STATUS"].decode(mmio.answers[tids[-1]])  # the poll that ended the run
    assert status["STATE"] == State.DONE and status["EPOCH"] == 3  # 3 code-table writes reached the core
    writes = {a: d for _, a, d, _ in wr.writes}
    assert len(wr.writes) == rows + 1
    for i in range(rows):
        assert writes[model_addr + i] == line_value(data_addr + i, W) ^ line_value(label_addr + i, W), i
    assert writes[status_addr] == 0xC0FFEE
    assert [c for c, *_ in wr.writes][-1] == max(c for c, *_ in wr.writes)  # status written last
    assert rd.af.cycles_on > 0 and wr.af.cycles_on > 0


def test_afu_ports_are_ccip_only():
    afu = LowbitAFU(line_bits=W, read_depth=16, core_factory=LoopbackCore)
    assert list(afu.signature.members) == ["ccip"]


def test_afu_parameters_are_checked():
    for kw, match in ((dict(line_bits=96), "line_bits"), (dict(lanes=0), "lanes"), (dict(max_features=1 << 24),
                      "max_features"), (dict(read_depth=100), "read_depth")):
        with pytest.raises(ValueError, match=match):
            LowbitAFU(**kw)


def test_export_writes_verilog_and_json_and_caches(tmp_path, monkeypatch):
    monkeypatch.setattr(lowbit_hw.afu, "_training_core", LoopbackCore)
    v = export_verilog(tmp_path, line_bits=W, lanes=4, max_features=64, read_depth=16)
    text = v.read_text()
    assert v.name == "lowbit_afu.v" and "module lowbit_afu(" in text
    meta = json.loads((tmp_path / "lowbit_afu.json").read_text())
    assert meta["params"] == dict(line_bits=W, lanes=4, max_features=64, read_depth=16, core="planes")
    for p in port_list(W):
        rng = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        decl = f"{'input' if p['dir'] == 'in' else 'output'} {rng}{p['name']};"
        assert decl in text, decl
    mtime = v.stat().st_mtime_ns
    assert export_verilog(tmp_path, line_bits=W, lanes=4, max_features=64, read_depth=16) == v
    assert v.stat().st_mtime_ns == mtime  # cached
    export_verilog(tmp_path, line_bits=W, lanes=8, max_features=64, read_depth=16)
    assert json.loads((tmp_path / "lowbit_afu.json").read_text())["params"]["lanes"] == 8


def test_real_afu_identifies_itself_and_rejects_a_bad_start():
    """The real LowbitAFU (TrainingCore inside), small build: identification over MMIO, CAPS from
    the build parameters, START with ROWS = 0 ends in ERROR / BAD_ROWS."""
    from lowbit.contract.registers import AFU_ID_L, ErrorCode

    dut = LowbitAFU(line_bits=128, lanes=4, max_features=64, read_depth=16)
    rng = rng_for(12)
    rd = ReadResponder(dut.ccip.c0_tx, dut.ccip.c0_rx, dut.ccip.c0_tx_almfull, line_bits=128, rng=rng)
    wr = WriteResponder(dut.ccip.c1_tx, dut.ccip.c1_rx, dut.ccip.c1_tx_almfull, rng=rng)
    mmio = HostMmio(dut.ccip)
    names = ("DFH", "AFU_ID_L", "AFU_ID_H", "CAPS", "STATUS")
    script = [("r", REG[n].address) for n in names]
    script += [("w", REG["ROWS"].address, 0), ("w", REG["STATUS_ADDR"].address, 0x40),
               ("w", REG["CTRL"].address, REG["CTRL"].encode(START=1))]
    tids = run_mmio_script(dut, mmio, rd, wr, script, cycles=3000, poll_every=20,
                           done=lambda cycle, st: cycle > 40 and st["STATE"] != State.BUSY)
    dfh, id_l, id_h, caps, status = (mmio.answers[t] for t in tids[:len(names)])
    final = REG["STATUS"].decode(mmio.answers[tids[-1]])
    assert (dfh, id_l, id_h) == (DFH_VALUE, AFU_ID_L, AFU_ID_H)
    assert REG["CAPS"].decode(caps)["LINE_BITS"] == 128 and REG["CAPS"].decode(caps)["LANES"] == 4
    assert REG["CAPS"].decode(caps)["MAX_FEATURES"] == 64
    assert REG["STATUS"].decode(status)["STATE"] == State.IDLE
    assert final["STATE"] == State.ERROR and final["ERROR"] == ErrorCode.BAD_ROWS
