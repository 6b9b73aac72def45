"""Python CCI-P host models for Amaranth-simulator tests of the shell (``lowbit_hw.shell``).

Everything runs in ONE testbench coroutine: each cycle a test calls ``step(ctx, cycle)`` on its
models (which observe the DUT's registered outputs, then drive this cycle's inputs) and then
``await ctx.tick()``. The models check the CCI-P rules as they go (alignment, almost-full slack,
no response without a request) and raise ``AssertionError`` with the cycle on a violation.
"""

import numpy as np

from lowbit.contract.ccip import ALMOST_FULL_SLACK

MASK64 = (1 << 64) - 1


def line_value(address: int, line_bits: int, salt: int = 0) -> int:
    """Deterministic contents of host line ``address`` (distinct for every address and salt)."""
    v = 0
    x = (address * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03 + 1) & MASK64
    for i in range(0, line_bits, 64):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK64
        v |= (x ^ address) << i
    return v & ((1 << line_bits) - 1)


class AlmostFull:
    """Drives an almost-full input in storms and checks the AFU's slack on that channel.

    Parameters
    ----------
    rng : numpy.random.Generator
    p_on, p_off : float
        Per-cycle probabilities of raising / dropping almost-full (0 / 1 = never asserted).
    """

    def __init__(self, rng, p_on=0.0, p_off=1.0):
        self.rng, self.p_on, self.p_off = rng, p_on, p_off
        self.level = False
        self.after = 0  # requests seen while asserted since it rose
        self.max_after = 0
        self.cycles_on = 0

    def observe_request(self, cycle):
        if self.level:
            self.after += 1
            self.max_after = max(self.max_after, self.after)
            assert self.after <= ALMOST_FULL_SLACK, f"cycle {cycle}: {self.after} requests after almost-full"

    def next_level(self):
        """Decide the level for the coming cycle (call before observing this cycle's requests)."""
        if self.level and self.rng.random() < self.p_off:
            self.level, self.after = False, 0
        elif not self.level and self.rng.random() < self.p_on:
            self.level, self.after = True, 0
        self.cycles_on += self.level
        return int(self.level)


class ReadResponder:
    """Host memory answering c0 read requests after a random latency, line by line, out of order.

    Each line of each request gets its own latency drawn from ``latency``; at most one line returns
    per cycle (the one chosen at random among those due), so lines of one request and of different
    requests interleave in any order.

    Parameters
    ----------
    c0_tx, c0_rx, almfull : the DUT's CCI-P c0 request, response and almost-full signals
    line_bits : int
    rng : numpy.random.Generator
    latency : (int, int)
        Inclusive range of a line's latency in cycles.
    almost_full : AlmostFull
    salt : int
        Passed to :func:`line_value`.
    """

    def __init__(self, c0_tx, c0_rx, almfull, *, line_bits, rng, latency=(10, 60), almost_full=None, salt=0):
        self.tx, self.rx, self.almfull_sig = c0_tx, c0_rx, almfull
        self.line_bits, self.rng, self.latency, self.salt = line_bits, rng, latency, salt
        self.af = almost_full or AlmostFull(rng)
        self.pending = []  # [due_cycle, mdata, cl_num, address]
        self.requests = []  # (cycle, address, lines, mdata)
        self.responses = 0

    @property
    def in_flight(self):
        return len(self.pending)

    def step(self, ctx, cycle):
        level = self.af.next_level()
        ctx.set(self.almfull_sig, level)
        if ctx.get(self.tx.valid):
            addr, cl_len, mdata = ctx.get(self.tx.address), ctx.get(self.tx.cl_len), ctx.get(self.tx.mdata)
            assert cl_len in (0, 1, 3), f"cycle {cycle}: cl_len {cl_len}"
            n = cl_len + 1
            assert addr % n == 0, f"cycle {cycle}: {n}-line request at unaligned address {addr}"
            self.af.observe_request(cycle)
            self.requests.append((cycle, addr, n, mdata))
            lat = self.rng.integers(self.latency[0], self.latency[1] + 1, size=n)
            self.pending += [[cycle + int(lat[j]), mdata, j, addr + j] for j in range(n)]
        due = [i for i, p in enumerate(self.pending) if p[0] <= cycle]
        if due:
            _, mdata, num, addr = self.pending.pop(due[int(self.rng.integers(len(due)))])
            ctx.set(self.rx.rsp_valid, 1)
            ctx.set(self.rx.mdata, mdata)
            ctx.set(self.rx.cl_num, num)
            ctx.set(self.rx.data, line_value(addr, self.line_bits, self.salt))
            self.responses += 1
        else:
            ctx.set(self.rx.rsp_valid, 0)


class WriteResponder:
    """Host memory taking c1 writes and answering each after a random latency (in any order).

    Records ``writes`` as ``(cycle, address, data, mdata)`` and checks single-line writes.
    """

    def __init__(self, c1_tx, c1_rx, almfull, *, rng, latency=(5, 40), almost_full=None):
        self.tx, self.rx, self.almfull_sig = c1_tx, c1_rx, almfull
        self.rng, self.latency = rng, latency
        self.af = almost_full or AlmostFull(rng)
        self.pending = []  # [due, mdata]
        self.writes = []
        self.responses = 0

    @property
    def in_flight(self):
        return len(self.pending)

    def step(self, ctx, cycle):
        ctx.set(self.almfull_sig, self.af.next_level())
        if ctx.get(self.tx.valid):
            assert ctx.get(self.tx.sop) == 1 and ctx.get(self.tx.cl_len) == 0, f"cycle {cycle}: not a 1-line write"
            self.af.observe_request(cycle)
            mdata = ctx.get(self.tx.mdata)
            self.writes.append((cycle, ctx.get(self.tx.address), ctx.get(self.tx.data), mdata))
            self.pending.append([cycle + int(self.rng.integers(self.latency[0], self.latency[1] + 1)), mdata])
        due = [i for i, p in enumerate(self.pending) if p[0] <= cycle]
        if due:
            _, mdata = self.pending.pop(due[int(self.rng.integers(len(due)))])
            ctx.set(self.rx.rsp_valid, 1)
            ctx.set(self.rx.mdata, mdata)
            self.responses += 1
        else:
            ctx.set(self.rx.rsp_valid, 0)


class StreamSource:
    """Offers ``items`` (payload values) on a stream, idling at random with probability ``p_idle``.

    Keeps valid and payload stable until taken (the stream rules)."""

    def __init__(self, stream, items, *, rng, p_idle=0.0):
        self.stream, self.items, self.rng, self.p_idle = stream, list(items), rng, p_idle
        self.sent = 0
        self.offering = False

    @property
    def done(self):
        return self.sent == len(self.items)

    def step(self, ctx, cycle):
        if not self.offering and self.sent < len(self.items) and self.rng.random() >= self.p_idle:
            self.offering = True
        ctx.set(self.stream.valid, int(self.offering))
        if self.offering:
            ctx.set(self.stream.payload, self.items[self.sent])
            if ctx.get(self.stream.ready):
                self.sent += 1
                self.offering = False


class StreamSink:
    """Takes a stream with ``ready`` high with probability ``p_ready`` (or as ``hold(cycle)`` says),
    recording ``(cycle, payload)``; checks the payload stays stable while valid and not ready."""

    def __init__(self, stream, *, rng, p_ready=1.0, hold=None):
        self.stream, self.rng, self.p_ready, self.hold = stream, rng, p_ready, hold
        self.items = []
        self.cycles = []
        self._stalled = None

    def step(self, ctx, cycle):
        ready = self.rng.random() < self.p_ready and not (self.hold and self.hold(cycle))
        ctx.set(self.stream.ready, int(ready))
        if ctx.get(self.stream.valid):
            payload = ctx.get(self.stream.payload)
            if self._stalled is not None:
                assert payload == self._stalled, f"cycle {cycle}: payload changed while stalled"
            if ready:
                self.items.append(payload)
                self.cycles.append(cycle)
                self._stalled = None
            else:
                self._stalled = payload
        else:
            self._stalled = None


def rng_for(seed: int):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------ core double
from amaranth import Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402

from lowbit.contract.registers import State  # noqa: E402
from lowbit_hw.interfaces import CoreSignature  # noqa: E402


class LoopbackCore(wiring.Component):
    """A TEST DOUBLE of ``lowbit_hw.core.TrainingCore`` (same ``CoreSignature``), for shell tests.

    On ``start`` it reads ``rows`` lines from ``data_addr`` and from ``label_addr`` (one command per
    channel), writes ``data ^ label`` of line i to ``model_addr + i``, waits for ``write_idle``,
    writes ``run_id`` to ``status_addr``, waits for ``write_idle`` again and reports DONE.
    ``reset`` flushes the reads and returns to IDLE once ``read_idle``. ``status.epoch`` counts
    code-table writes, ``status.cycles`` cycles since start, ``read_lines`` / ``write_lines`` lines.
    """

    def __init__(self, *, line_bits, lanes=0, max_features=0):
        self.line_bits = line_bits
        super().__init__(CoreSignature(line_bits))

    def elaborate(self, platform):
        m = Module()
        st, cfg = self.status, self.cfg
        rows = Signal(32)
        done_rows = Signal(32)
        with m.If(self.table.en):
            m.d.sync += st.epoch.eq(st.epoch + 1)
        m.d.comb += [self.data_cmd.payload.address.eq(cfg.data_addr), self.data_cmd.payload.lines.eq(cfg.rows),
                     self.label_cmd.payload.address.eq(cfg.label_addr), self.label_cmd.payload.lines.eq(cfg.rows)]
        with m.If(st.state == State.BUSY):
            m.d.sync += st.cycles.eq(st.cycles + 1)
        def abort_on_reset():
            with m.If(self.reset):
                m.next = "ABORT"

        with m.FSM():
            with m.State("IDLE"):
                abort_on_reset()
                with m.If(self.start):
                    m.d.sync += [st.state.eq(State.BUSY), rows.eq(cfg.rows), done_rows.eq(0), st.cycles.eq(0),
                                 st.read_lines.eq(0), st.write_lines.eq(0)]
                    m.next = "CMD_DATA"
            with m.State("CMD_DATA"):
                m.d.comb += self.data_cmd.valid.eq(1)
                with m.If(self.data_cmd.ready):
                    m.next = "CMD_LABEL"
                abort_on_reset()
            with m.State("CMD_LABEL"):
                m.d.comb += self.label_cmd.valid.eq(1)
                with m.If(self.label_cmd.ready):
                    m.next = "COPY"
                abort_on_reset()
            with m.State("COPY"):
                both = self.data_lines.valid & self.label_lines.valid
                m.d.comb += [self.write.valid.eq(both),
                             self.write.payload.address.eq(cfg.model_addr + done_rows),
                             self.write.payload.data.eq(self.data_lines.payload ^ self.label_lines.payload)]
                take = both & self.write.ready
                m.d.comb += [self.data_lines.ready.eq(take), self.label_lines.ready.eq(take)]
                with m.If(take):
                    m.d.sync += [done_rows.eq(done_rows + 1), st.read_lines.eq(st.read_lines + 2),
                                 st.write_lines.eq(st.write_lines + 1)]
                    with m.If(done_rows + 1 == rows):
                        m.next = "DRAIN"
                abort_on_reset()
            with m.State("DRAIN"):
                with m.If(self.write_idle):
                    m.next = "STATUS"
                abort_on_reset()
            with m.State("STATUS"):
                m.d.comb += [self.write.valid.eq(1), self.write.payload.address.eq(cfg.status_addr),
                             self.write.payload.data.eq(cfg.run_id)]
                with m.If(self.write.ready):
                    m.d.sync += st.write_lines.eq(st.write_lines + 1)
                    m.next = "FINISH"
                abort_on_reset()
            with m.State("FINISH"):
                with m.If(self.write_idle):
                    m.d.sync += st.state.eq(State.DONE)
                    m.next = "IDLE"
                abort_on_reset()
            with m.State("ABORT"):
                with m.If(self.read_idle & self.write_idle):
                    m.d.sync += st.state.eq(State.IDLE)
                    m.next = "IDLE"
        m.d.comb += self.flush.eq(self.reset)
        return m


def run_simulation(sim, name: str | None = None):
    """``sim.run()``; with ``WAVES=1`` in the environment also write ``build/shell/waves/<name>.vcd``
    (``name`` defaults to the running pytest test's id)."""
    import os
    import re
    from pathlib import Path

    if name is None:
        name = re.sub(r"[^\w.-]+", "_", os.environ.get("PYTEST_CURRENT_TEST", "shell").split(" ")[0])
    if os.environ.get("WAVES", "0") not in ("", "0"):
        out = Path(__file__).resolve().parents[1] / "build" / "shell" / "waves"
        out.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(out / f"{name}.vcd")):
            sim.run()
    else:
        sim.run()
