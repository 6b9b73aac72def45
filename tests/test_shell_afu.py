# amaranth: UnusedElaboratable=no
"""LowbitAFU wiring (with a loopback TEST DOUBLE in place of the training core) and the Verilog export."""

import json

import pytest
from amaranth.sim import Simulator

import lowbit_hw.afu
from lowbit.registers import AFU_ID_H, DFH_VALUE, REG, State, code_table_address, encode_code_entry
from lowbit_hw.afu import LowbitAFU
from lowbit_hw.export import export_verilog, port_list
from shell_models import StormConfig, line_value, LoopbackCore, pattern_host, run_simulation

W = 64


def afu_host(dut, seed, **kw):
    return pattern_host(dut.ccip.c0_rx.data.shape().width, seed, ccip=dut.ccip, **kw)


def run_mmio_script(dut, host, script, *, cycles, poll_every, done):
    """Clock the AFU with the CCI-P host, queue ``script`` (``("w", addr, value)`` or ``("r", addr)``;
    one access goes out a cycle), then read STATUS every ``poll_every`` cycles until
    ``done(cycle, status)`` holds for the answer to the previous poll. Returns the reads
    (``MmioRead``, script reads first, then the polls)."""
    reads = [host.host.mmio_write(*op[1:]) if op[0] == "w" else host.host.mmio_read(op[1]) for op in script]
    reads = [r for r in reads if r is not None]

    async def bench(ctx):
        for cycle in range(cycles):
            host.step(ctx)
            if not host.mmio_busy and cycle % poll_every == 0:
                poll = reads[-1] if len(reads) > len([op for op in script if op[0] == "r"]) else None
                if poll is not None and poll.done and done(cycle, REG["STATUS"].decode(poll.value)):
                    break
                if poll is None or poll.done:
                    reads.append(host.host.mmio_read(REG["STATUS"].address))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    run_simulation(sim)
    host.check()
    return reads


def test_afu_runs_a_loopback_job_over_ccip():
    """MMIO config + START -> core commands -> reads out of order -> writes -> status, all through
    the real shell; the loopback core writes data ^ label per line."""
    rows, data_addr, label_addr, model_addr, status_addr = 37, 0x1003, 0x5000, 0x9001, 0xA000
    dut = LowbitAFU(line_bits=W, lanes=4, max_features=64, read_depth=16, core_factory=LoopbackCore)
    host = afu_host(dut, 11, latency=(20, 120), storms=StormConfig(rate=0.03, max_len=9))
    setup = [("DATA_ADDR", data_addr), ("LABEL_ADDR", label_addr), ("MODEL_ADDR", model_addr),
             ("STATUS_ADDR", status_addr), ("ROWS", rows), ("RUN_ID", 0xC0FFEE)]
    script = [("w", REG[n].address, v) for n, v in setup]
    script += [("w", code_table_address(c), encode_code_entry(c, c)) for c in (0, 3, 9)]
    script += [("r", REG["DFH"].address), ("r", REG["AFU_ID_H"].address), ("r", REG["ROWS"].address),
               ("w", REG["CTRL"].address, REG["CTRL"].encode(START=1))]
    reads = run_mmio_script(dut, host, script, cycles=4000, poll_every=50,
                            done=lambda cycle, st: cycle > 100 and st["STATE"] == State.DONE)
    assert [r.value for r in reads[:3]] == [DFH_VALUE, AFU_ID_H, rows]
    status = REG["STATUS"].decode(reads[-1].value)  # the poll that ended the run
    assert status["STATE"] == State.DONE and status["EPOCH"] == 3  # 3 code-table writes reached the core
    writes = [r for r in host.requests if r.kind == "write"]
    assert len(writes) == rows + 1
    memory = host.memory.written  # what the host stored at the acknowledgements
    for i in range(rows):
        assert memory[model_addr + i] == line_value(data_addr + i, W) ^ line_value(label_addr + i, W), i
    assert memory[status_addr] == 0xC0FFEE
    assert writes[-1].line == status_addr  # status written last
    assert host.almfull_cycles[0] > 0 and host.almfull_cycles[1] > 0


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
    from lowbit.registers import AFU_ID_L, ErrorCode

    dut = LowbitAFU(line_bits=128, lanes=4, max_features=64, read_depth=16)
    host = afu_host(dut, 12)
    names = ("DFH", "AFU_ID_L", "AFU_ID_H", "CAPS", "STATUS")
    script = [("r", REG[n].address) for n in names]
    script += [("w", REG["ROWS"].address, 0), ("w", REG["STATUS_ADDR"].address, 0x40),
               ("w", REG["CTRL"].address, REG["CTRL"].encode(START=1))]
    reads = run_mmio_script(dut, host, script, cycles=3000, poll_every=20,
                            done=lambda cycle, st: cycle > 40 and st["STATE"] != State.BUSY)
    dfh, id_l, id_h, caps, status = (r.value for r in reads[:len(names)])
    final = REG["STATUS"].decode(reads[-1].value)
    assert (dfh, id_l, id_h) == (DFH_VALUE, AFU_ID_L, AFU_ID_H)
    assert REG["CAPS"].decode(caps)["LINE_BITS"] == 128 and REG["CAPS"].decode(caps)["LANES"] == 4
    assert REG["CAPS"].decode(caps)["MAX_FEATURES"] == 64
    assert REG["STATUS"].decode(status)["STATE"] == State.IDLE
    assert final["STATE"] == State.ERROR and final["ERROR"] == ErrorCode.BAD_ROWS
