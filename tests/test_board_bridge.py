# amaranth: UnusedElaboratable=no
"""The serial bridge, end to end in Amaranth's simulator: a Python host speaking the byte protocol
of lowbit.contract.serial (below the UART bit level) to SerialBridge + a small real LowbitAFU,
serving its memory over frames; corrupted frames are refused; a training run is bit-exact."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from board_fixtures import board_simulation, simulation_of
from core_models import DATA_ADDR, LABEL_ADDR, MODEL_ADDR, STATS_ADDR, STATUS_ADDR, make_problem
from lowbit.contract import serial as P
from lowbit.contract.format import unpack_words
from lowbit.contract.registers import AFU_ID_H, AFU_ID_L, DFH_VALUE, REG, State, code_table_address, encode_code_entry
from lowbit_hw.board.bridge import BRIDGE_LINE_BITS, SerialBridge, frame_layout
from lowbit_hw.board.top import ULX3SBoardTop, pll_parameters
from lowbit_sim.host_memory import HostMemory

W = 64
WB = W // 8


class Host:
    """The host end of the byte protocol: MMIO, and memory served from a ``HostMemory``."""

    def __init__(self, memory=None):
        self.memory = HostMemory(line_bytes=WB) if memory is None else memory
        self.out = bytearray()  # bytes still to send
        self.inbox = bytearray()  # bytes received, not yet parsed
        self.mmio = {}  # tid -> value
        self.naks = []
        self.tid = 0
        self.reads = self.writes = 0

    def mmio_write(self, offset, value):
        self.out += P.mmio_write_frame(offset, value)

    def mmio_read(self, offset):
        self.tid += 1
        self.out += P.mmio_read_frame(offset, self.tid)
        return self.tid

    def handle(self):
        frames, errors = P.parse_frames(self.inbox, WB)
        assert errors == 0, "the board sent a corrupted frame"
        for ftype, pl in frames:
            if ftype == P.B_MMIO_DATA:
                tid, value = P.decode_mmio_data(pl)
                self.mmio[tid] = value
            elif ftype == P.B_READ_REQ:
                addr, n, md = P.decode_read_req(pl)
                for k in range(n):
                    self.out += P.read_data_frame(md, k, self.memory.read_line(addr + k))
                    self.reads += 1
            elif ftype == P.B_WRITE_REQ:
                addr, md, data = P.decode_write_req(pl)
                self.memory.write_line(addr, data)
                self.out += P.write_ack_frame(md)
                self.writes += 1
            elif ftype == P.B_NAK:
                self.naks.append(pl[0])


def run(dut, host, script, *, cycles, until=None, gap=0, corrupt=None):
    """Clock ``dut``: send ``host.out`` one byte per ``gap + 1`` cycles, collect tx bytes, answer
    frames. ``script(host)`` runs once at the start; ``until(host)`` ends the run early."""

    async def bench(ctx):
        script(host)
        wait = 0
        for cycle in range(cycles):
            if ctx.get(dut.tx.valid):
                host.inbox.append(ctx.get(dut.tx.payload))
                if ctx.get(dut.tx.payload) == P.SYNC or len(host.inbox) > 3:
                    host.handle()
            if host.out and wait == 0 and not ctx.get(dut.rx.valid):
                ctx.set(dut.rx.payload, host.out.pop(0))
                ctx.set(dut.rx.valid, 1)
                wait = gap
            elif ctx.get(dut.rx.valid) and ctx.get(dut.rx.ready):
                ctx.set(dut.rx.valid, 0)
            else:
                wait = max(0, wait - 1)
            await ctx.tick()
            if cycle % 64 == 0:
                host.handle()
                if until is not None and until(host):
                    return
        raise AssertionError(f"not done within {cycles} cycles")

    simulate(dut, bench)


def simulate(dut, *benches):
    """Clock ``dut`` with its byte output always ready and ``benches`` driving it, to their end."""
    async def tx_ready(ctx):
        ctx.set(dut.tx.ready, 1)

    shared = simulation_of(dut)
    if shared is not None:   # a board of board_simulation(): its compiled simulator, reset
        shared.run(tx_ready, *benches)
        return
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tx_ready)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


def small_board(rx_timeout=64):
    return board_simulation(line_bits=W, rx_timeout=rx_timeout, lanes=2, max_features=64, read_depth=16).dut


def test_mmio_identification_and_scratch_over_frames():
    dut, host = small_board(), Host()
    tids = {}

    def script(h):
        h.mmio_write(REG["SCRATCH"].address, 0x0123_4567_89AB_CDEF)
        for name in ("DFH", "AFU_ID_L", "AFU_ID_H", "CAPS", "SCRATCH", "STATUS"):
            tids[name] = h.mmio_read(REG[name].address)

    run(dut, host, script, cycles=3000, until=lambda h: len(h.mmio) == len(tids))
    got = {n: host.mmio[t] for n, t in tids.items()}
    assert (got["DFH"], got["AFU_ID_L"], got["AFU_ID_H"]) == (DFH_VALUE, AFU_ID_L, AFU_ID_H)
    assert got["SCRATCH"] == 0x0123_4567_89AB_CDEF
    caps = REG["CAPS"].decode(got["CAPS"])
    assert (caps["LINE_BITS"], caps["LANES"], caps["MAX_FEATURES"]) == (W, 2, 64)
    assert REG["STATUS"].decode(got["STATUS"])["STATE"] == State.IDLE
    assert host.naks == []


def test_a_reused_board_simulation_starts_from_reset():
    """The board tests share one compiled simulator per configuration (board_fixtures.BoardSimulation):
    each run starts from reset, so what a run leaves behind (here SCRATCH, written) is gone in the
    next one."""
    dut = small_board()
    seen = []

    def read_back(value):
        host, tid = Host(), {}

        def script(h):
            if value is not None:
                h.mmio_write(REG["SCRATCH"].address, value)
            tid["t"] = h.mmio_read(REG["SCRATCH"].address)

        run(dut, host, script, cycles=3000, until=lambda h: tid["t"] in h.mmio)
        seen.append(host.mmio[tid["t"]])

    read_back(0x0123_4567_89AB_CDEF)
    read_back(None)
    assert simulation_of(dut) is not None and seen == [0x0123_4567_89AB_CDEF, 0]


def test_corrupted_frames_are_refused_and_never_reach_the_afu():
    dut, host = small_board(), Host()
    tid = {}

    def script(h):
        h.mmio_write(REG["SCRATCH"].address, 7)
        bad = bytearray(P.mmio_write_frame(REG["SCRATCH"].address, 99))
        bad[5] ^= 0x10  # one flipped bit in the payload: CRC mismatch
        h.out += bad
        h.out += bytes((P.SYNC, P.H_MMIO_WRITE, 3, 1, 2, 3, 0))  # wrong length for the type
        h.out += bytes((P.SYNC, 0x55, 1, 0, 0))  # unknown type
        tid["scratch"] = h.mmio_read(REG["SCRATCH"].address)

    run(dut, host, script, cycles=4000, until=lambda h: tid["scratch"] in h.mmio and len(h.naks) >= 3)
    assert host.mmio[tid["scratch"]] == 7  # the corrupted write of 99 never happened
    assert sorted(host.naks) == [P.NAK_CRC, P.NAK_FORMAT, P.NAK_FORMAT]


def test_a_frame_stalled_midway_times_out():
    dut, host = small_board(), Host()
    tid = {}

    def script(h):
        h.out += P.frame(P.H_MMIO_WRITE, b"\x00" * 10)[:5]  # then nothing for > rx_timeout cycles

    def later(h):
        if not h.naks:
            return False
        if "t" not in tid:
            tid["t"] = h.mmio_read(REG["DFH"].address)  # the link works again after the NAK
        return tid["t"] in h.mmio

    run(dut, host, script, cycles=3000, until=later)
    assert host.naks == [P.NAK_TIMEOUT] and host.mmio[tid["t"]] == DFH_VALUE


@pytest.mark.parametrize("bits, batch", [(2, 1), (4, 3)])
def test_training_over_the_serial_protocol_is_bit_exact(bits, batch):
    prob = make_problem(rows=5, features=9, bits=bits, batch=batch, epochs=2, copies=2, line_bits=W, seed=bits)
    dut, host = small_board(rx_timeout=P.RX_TIMEOUT_CYCLES), Host(prob.memory)
    cfg, fmt = prob.cfg, prob.fmt
    state = {}

    def script(h):
        for c in range(fmt.codes):
            h.mmio_write(code_table_address(c), encode_code_entry(prob.table_m[c], prob.table_e[c]))
        for name, value in (("DATA_ADDR", DATA_ADDR), ("LABEL_ADDR", LABEL_ADDR), ("MODEL_ADDR", MODEL_ADDR),
                            ("STATS_ADDR", STATS_ADDR), ("STATUS_ADDR", STATUS_ADDR), ("ROWS", cfg.rows),
                            ("FEATURES", cfg.features), ("BITS", cfg.bits), ("BATCH", cfg.batch),
                            ("EPOCHS", cfg.epochs), ("COPIES", cfg.copies), ("STEP", cfg.step), ("RUN_ID", 77)):
            h.mmio_write(REG[name].address, value)
        h.mmio_write(REG["CTRL"].address, REG["CTRL"].encode(START=1))

    def done(h):
        if "poll" in state and state["poll"] in h.mmio:
            st = REG["STATUS"].decode(h.mmio.pop(state.pop("poll")))
            if st["STATE"] in (State.DONE, State.ERROR):
                state["status"] = st
                return True
        if "poll" not in state and not h.out:
            state["poll"] = h.mmio_read(REG["STATUS"].address)
        return False

    run(dut, host, script, cycles=60_000, until=done)
    assert state["status"]["STATE"] == State.DONE and state["status"]["ERROR"] == 0
    assert host.naks == []
    for e in range(cfg.epochs):
        lines = host.memory.region_at(MODEL_ADDR * WB).lines[e * fmt.model_lines:(e + 1) * fmt.model_lines]
        model = unpack_words(lines, fmt.padded_features)[: cfg.features]
        np.testing.assert_array_equal(model, prob.golden.models[e], err_msg=f"epoch {e}")
    assert host.reads >= cfg.epochs * fmt.lines_per_copy(cfg.rows)
    host.memory.check()  # nothing read or written outside the buffers, guard bands intact


def test_board_top_parameters_are_checked():
    assert pll_parameters(25.0, 50.0) == {"CLKI_DIV": 1, "CLKFB_DIV": 2, "CLKOP_DIV": 12, "CLKOP_CPHASE": 5,
                                          "CLKOP_FPHASE": 0}
    with pytest.raises(ValueError, match="EHXPLLL"):
        pll_parameters(25.0, 51.3)
    with pytest.raises(ValueError, match="baud"):
        ULX3SBoardTop(engine_mhz=50.0, baud=7_000_000)  # 7.14 cycles per bit: 2 % off
    with pytest.raises(ValueError, match="line_bits"):
        SerialBridge(line_bits=512)


def test_the_512_bit_exclusion_gives_its_real_reason():
    """512-bit lines fit the frames (LEN is one byte); the bridge leaves them out because no
    512-bit AFU fits an ECP5, and its docstring must say that, not a frame-size limit."""
    assert P.payload_len(P.H_READ_DATA, 64) <= 255 and P.payload_len(P.B_WRITE_REQ, 64) <= 255
    doc = " ".join(SerialBridge.__doc__.split())
    assert "payload is at most 255 bytes" not in doc and "no 512-bit AFU fits an ECP5" in doc


def test_the_board_toml_and_the_top_agree():
    """hw/lowbit_hw/board/ulx3s_85f.toml (what make bitstream builds) and ULX3SBoardTop's defaults
    (what the tests build) name the same clock, oscillator, UART rate and AFU."""
    import inspect

    from lowbit_hw.board.build import load_constraints

    c = load_constraints()
    defaults = {k: v.default for k, v in inspect.signature(ULX3SBoardTop.__init__).parameters.items()}
    shared = [k for k in c if k in defaults]
    assert {"engine_mhz", "oscillator_mhz", "baud", "line_bits", "core"} <= set(shared)
    assert {k: defaults[k] for k in shared} == {k: c[k] for k in shared}


@pytest.mark.parametrize("line_bits", BRIDGE_LINE_BITS)
def test_the_bridges_frame_structs_and_the_hosts_packing_agree(line_bits):
    """Both sides derive a payload from lowbit.contract.serial.FRAMES: the bridge's struct of every
    frame type (filled and read by field name) has the bytes the host packs, field for field."""
    lb = line_bits // 8
    for t in P.HOST_FRAMES + P.BOARD_FRAMES:
        layout = frame_layout(t, lb)
        assert layout.size == 8 * P.payload_len(t, lb)
        values = {name: (bytes(range(1, size + 1)) if name == "line" else (0x5A5A5A5A5A5A5A5A >> (64 - 8 * size)) - i)
                  for i, (name, size) in enumerate(P.fields(t, lb))}
        payload = P.pack(t, **values)
        assert len(payload) == P.payload_len(t, lb) and P.unpack(t, payload) == values
        const = layout.const({k: int.from_bytes(v, "little") if k == "line" else v for k, v in values.items()})
        assert const.as_value().value == int.from_bytes(payload, "little")


def test_the_frame_table_of_the_docs_is_the_contracts():
    from pathlib import Path

    assert P.render_markdown() in (Path(__file__).resolve().parents[1] / "docs" / "board.md").read_text()


def test_frame_packing_refuses_missing_and_unknown_fields():
    with pytest.raises(TypeError, match="needs its field 'data'"):
        P.pack(P.H_MMIO_WRITE, offset=8)
    with pytest.raises(TypeError, match=r"no field\(s\) \['tid'\]"):
        P.pack(P.H_MMIO_WRITE, offset=8, data=1, tid=2)
    with pytest.raises(ValueError, match="unknown frame type 0x7f"):
        P.pack(0x7F)


@pytest.mark.parametrize("ack_second", [True, False])
def test_the_bridge_answers_a_fence_once_the_writes_before_it_are_acknowledged(ack_second):
    """A write fence is not sent over the link (the link is in order): the bridge answers it
    itself, exactly once, and only after the host has acknowledged every write sent before it
    (later writes may delay the answer: the bridge waits for all writes outstanding). Negative
    control: with the second write never acknowledged, the fence is never answered."""
    from lowbit.contract.ccip import C1_REQ_WRFENCE, C1_REQ_WRLINE

    dut = SerialBridge(line_bits=W, read_fifo_depth=16, write_fifo_depth=16)
    ccip = dut.ccip
    host = Host()
    seen = []      # cycles of the c1 responses
    log = {}

    async def afu(ctx):
        for kind, md in ((C1_REQ_WRLINE, 1), (C1_REQ_WRLINE, 2), (C1_REQ_WRFENCE, 7), (C1_REQ_WRLINE, 3)):
            ctx.set(ccip.c1_tx.valid, 1)
            ctx.set(ccip.c1_tx.req_type, kind)
            ctx.set(ccip.c1_tx.address, 0x100 + md)
            ctx.set(ccip.c1_tx.mdata, md)
            ctx.set(ccip.c1_tx.data, md)
            await ctx.tick()
        ctx.set(ccip.c1_tx.valid, 0)

    async def bench(ctx):
        pending = []  # write requests seen on the link (mdata)
        # the host acknowledges late and out of turn: write 1 and 3 at cycle 1000, write 2 at 2000
        plan = {1000: (1, 3), 2000: (2,) if ack_second else ()}
        for cycle in range(4000):
            if ctx.get(ccip.c1_rx.rsp_valid):
                seen.append(cycle)
            if ctx.get(dut.tx.valid):
                host.inbox.append(ctx.get(dut.tx.payload))
                frames, errors = P.parse_frames(host.inbox, WB)
                assert errors == 0
                pending += [P.decode_write_req(pl)[1] for ftype, pl in frames if ftype == P.B_WRITE_REQ]
            for md in plan.get(cycle, ()):
                host.out += P.write_ack_frame(md)
            log["pending"] = list(pending)
            if host.out and not ctx.get(dut.rx.valid):
                ctx.set(dut.rx.payload, host.out.pop(0))
                ctx.set(dut.rx.valid, 1)
            elif ctx.get(dut.rx.valid) and ctx.get(dut.rx.ready):
                ctx.set(dut.rx.valid, 0)
            await ctx.tick()

    simulate(dut, afu, bench)

    assert log["pending"] == [1, 2, 3]  # three write frames, no fence frame
    assert seen and min(seen) > 1000, "nothing is answered before the host acknowledges"
    if ack_second:
        # three host acks (two before cycle 2000, one after), then the fence's one answer
        assert len(seen) == 4, seen
        assert sum(c < 2000 for c in seen) == 2 and seen[3] > seen[2] > 2000
    else:
        assert len(seen) == 2, seen  # writes 1 and 3 acknowledged; write 2 holds the fence back
