"""Helpers for Amaranth-simulator tests of the shell (``lowbit_hw.shell``).

The CCI-P host is the one model of every bench (``lowbit_sim.ccip_host.CcipHost``) through its
Amaranth adapter (``lowbit_sim.ccip_amaranth.AmaranthHost``); :func:`pattern_host` builds it for
the unit benches. Everything runs in ONE testbench coroutine: each cycle a test calls ``step`` on
its models (which observe the DUT's registered outputs, then drive the next cycle's inputs) and then
``await ctx.tick()``. The host is strict: a CCI-P violation (alignment, almost-full slack, a
response nobody asked for) raises ``ProtocolError`` with the cycle.
"""

import numpy as np

from lowbit_sim.ccip_amaranth import AmaranthHost, Mmio  # noqa: F401 (the benches' host and MMIO driver)
from lowbit_sim.ccip_host import CcipHost, StormConfig  # noqa: F401
from lowbit_sim.host_memory import PatternMemory, line_value  # noqa: F401


def pattern_host(line_bits: int, seed: int, *, latency=(10, 60), write_latency=(5, 40), storms=None,
                 salt: int = 0, ccip=None, **ports) -> AmaranthHost:
    """The CCI-P host over a :class:`PatternMemory` (every line readable), strict (a violation fails
    at once) and logging every request, on a whole ``ccip`` port or on the DUT ports given
    (``AmaranthHost`` keywords). ``storms``: a :class:`StormConfig` for each connected almost-full."""
    both = ccip is not None
    host = CcipHost(PatternMemory(line_bits, salt), seed=seed, read_latency=latency, write_latency=write_latency,
                    c0_storms=storms if both or ports.get("c0_almfull") is not None else None,
                    c1_storms=storms if both or ports.get("c1_almfull") is not None else None, strict=True, log=True)
    return AmaranthHost.on(ccip, host) if both else AmaranthHost(host, **ports)


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

from lowbit.registers import State  # noqa: E402
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
