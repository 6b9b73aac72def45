"""Python models around ``lowbit_hw.core.TrainingCore`` for Amaranth-simulator tests.

:class:`ShellModel` plays the CCI-P shell as ``CoreSignature`` describes it: it accepts read
commands (random ``ready``), returns exactly the commanded lines in order from a line memory with
random gaps, accepts writes with random back-pressure and holds ``write_idle`` low while a write
waits for its (random-latency) response, honours ``flush`` and reports ``read_idle``. Everything
runs in ONE testbench coroutine (one Python wake-up per cycle): :func:`run_core` drives the code
table, the configuration and ``start`` and steps the model until the core reports DONE/ERROR.
:func:`make_problem` builds a run's host memory (a ``lowbit_sim.host_memory.HostMemory``, the
store the CCI-P host model serves too: guarded buffers, stray accesses recorded; lowbit.contract.format
packing) and its golden result.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from lowbit.data import engine_problem
from lowbit.contract.fixed import labels_to_fixed, step_to_fixed
from lowbit.contract.format import EPOCH_RECORD, STATUS_RECORD, LineFormat, pack_codes, pack_words, unpack_record, unpack_words
from lowbit.contract.quant import code_table, double_sample, levels_to_fixed, uniform_levels
from lowbit.contract.losses import chebyshev_poly
from lowbit.contract.registers import MAX_DEGREE, Estimator, Loss, State
from lowbit.contract.golden import EngineConfig, run as golden_run
from lowbit_sim.host_memory import HostMemory

#: Line addresses of the buffers in the test memory (cache-line units, far apart).
DATA_ADDR, LABEL_ADDR, MODEL_ADDR, STATS_ADDR, STATUS_ADDR = 0x10000, 0x80000, 0x90000, 0xA0000, 0xB0000
MODEL_IN_ADDR = 0xC0000  # the start model of a warm start (snapshot layout)


def lines_to_ints(lines: np.ndarray) -> list[int]:
    """Packed ``(n, line_bytes)`` uint8 lines -> ints (line bit n = bit n of the int)."""
    return [int.from_bytes(row.tobytes(), "little") for row in np.asarray(lines, dtype=np.uint8)]


def ints_to_lines(values, line_bits: int) -> np.ndarray:
    return np.frombuffer(b"".join(int(v).to_bytes(line_bits // 8, "little") for v in values),
                         dtype=np.uint8).reshape(-1, line_bits // 8)


@dataclass
class Problem:
    """One run: configuration, host memory image and what the golden model says."""

    cfg: EngineConfig
    line_bits: int
    memory: HostMemory  # buffers at DATA_ADDR ... STATUS_ADDR between guard bands
    table_m: np.ndarray
    table_e: np.ndarray
    codes: np.ndarray | None = None
    labels: np.ndarray | None = None
    golden: object = None
    run_id: int = 0x1234_5678_9ABC_DEF0
    layout: str = "planes"
    model_in: np.ndarray | None = None  # the warm start's model (at MODEL_IN_ADDR)

    @property
    def fmt(self) -> LineFormat:
        return LineFormat(bits=max(1, min(self.cfg.bits, 8)), features=max(1, self.cfg.features),
                          line_bits=self.line_bits, layout=self.layout)


def make_problem(*, rows, features, bits, batch=1, epochs=1, copies=1, step=0.05, line_bits=64, seed=0,
                 label_scale=1.0, layout="planes", levels_q=None, model_in=None, start_minibatch=0,
                 max_minibatches=0, loss=Loss.SQUARED, classes="pm1", flip=0.0, l2=0,
                 degree=0, margin_range=2, model_delay=0) -> Problem:
    """A problem quantized with double sampling, packed as the engine reads it.

    ``model_in`` (int32, ``(features,)``) warm-starts the run from it; ``start_minibatch`` and
    ``max_minibatches`` bound it (lowbit.contract.golden, "Resumable runs").

    ``loss`` (LOSS) other than squared makes it a classification problem: the regression target's
    sign as labels in ``{-1, +1}`` (``classes="pm1"``) or ``{0, 1}`` (``"01"``; the engine reads
    ``y > 0`` as class +1 either way), a fraction ``flip`` of them in the wrong class.

    ``l2`` is the L2 register (uint32 at 2^-32). ``degree`` >= 1 selects the Chebyshev estimator of
    that degree on the margin range ``2^margin_range`` (``lowbit.contract.losses.chebyshev_poly``:
    the host's coefficients), which reads ``degree + 1`` of the ``copies``. ``model_delay`` is the
    MODEL_DELAY register (pipelined SGD)."""
    rng = np.random.default_rng(seed)
    X, y = engine_problem(rows, features, rng=rng, label_scale=label_scale, noise_sd=0.05)
    if loss != Loss.SQUARED:
        y = np.where((y > 0) != (rng.random(rows) < flip), 1.0, -1.0 if classes == "pm1" else 0.0)
    if levels_q is None:
        levels_q = levels_to_fixed(uniform_levels(bits))
    codes = np.stack([double_sample(X, levels_q, rng) for _ in range(copies)])
    labels = labels_to_fixed(y)
    tm, te = code_table(levels_q)
    cfg = EngineConfig(rows=rows, features=features, bits=bits, batch=batch, epochs=epochs,
                       step=step_to_fixed(step), copies=copies, warm_start=model_in is not None,
                       start_minibatch=start_minibatch, max_minibatches=max_minibatches, loss=int(loss), l2=l2,
                       model_delay=model_delay, **(dict(estimator=int(Estimator.CHEBYSHEV), degree=degree, margin_range=margin_range,
                               poly=chebyshev_poly(Loss(loss), degree, margin_range)) if degree else {}))
    fmt = LineFormat(bits=bits, features=features, line_bits=line_bits, layout=layout)
    memory = HostMemory(line_bytes=line_bits // 8)
    guard = 8 * memory.line_bytes
    data = np.concatenate([pack_codes(codes[k], fmt) for k in range(copies)])
    label_lines = pack_words(labels, line_bits)
    record = max(1, fmt.record_lines)
    for line, content, name in ((DATA_ADDR, data, "data"), (LABEL_ADDR, label_lines, "labels")):
        memory.alloc_lines(len(content), guard, name, line=line).write(content)
    if model_in is not None:
        words = np.zeros(fmt.padded_features, dtype=np.int32)
        words[:features] = model_in
        memory.alloc_lines(fmt.model_lines, guard, "model_in", line=MODEL_IN_ADDR).write(pack_words(words, line_bits))
    snapshots = cfg.snapshots() if cfg.start_minibatch < cfg.epochs * cfg.minibatches_per_epoch else 1
    for line, lines, name in ((MODEL_ADDR, snapshots * fmt.model_lines, "model"),
                              (STATS_ADDR, snapshots * record, "stats"), (STATUS_ADDR, record, "status")):
        memory.alloc_lines(max(1, lines), guard, name, line=line)
    gold = golden_run(cfg, codes, labels, tm, te, model_in=model_in) if snapshots == cfg.snapshots() else None
    return Problem(cfg=cfg, line_bits=line_bits, memory=memory, table_m=tm, table_e=te, codes=codes,
                   labels=labels, golden=gold, layout=layout, model_in=model_in)


@dataclass
class _Channel:
    cmds: deque = field(default_factory=deque)  # (next address, lines left)
    line: int | None = None  # line offered on the stream (valid)
    lines_served: int = 0


class ShellModel:
    """The shell's side of ``CoreSignature``, cycle by cycle (see the module docstring).

    Parameters
    ----------
    core : TrainingCore
    memory : HostMemory
        The buffers the core reads and writes (a write lands at its response); a read outside
        them fails the test at once, a stray write shows in :meth:`check`.
    rng : numpy.random.Generator
    p_cmd, p_line, p_write : float
        Per-cycle probabilities of ``cmd.ready``, of offering the next line, of ``write.ready``.
    write_latency : (int, int)
        Range of cycles from an accepted write to its response (``write_idle`` low meanwhile).
    """

    def __init__(self, core, memory, rng, *, p_cmd=0.7, p_line=0.8, p_write=0.7, write_latency=(1, 12)):
        self.core, self.memory, self.rng = core, memory, rng
        self.p_cmd, self.p_line, self.p_write, self.write_latency = p_cmd, p_line, p_write, write_latency
        self.ch = {"data": _Channel(), "label": _Channel()}
        self.writes: dict[int, int] = {}
        self.write_log: list[int] = []
        self.pending: list[list] = []  # [cycles until the response, line, data] of each outstanding write
        self.fences = 0                # write fences the core issued
        self.commands: list[tuple[str, int, int]] = []
        self.flushes = 0
        self.read_quiet = 0  # cycles read_idle stays low after a flush (responses still landing)

    def _streams(self, name):
        c = self.core
        return (c.data_cmd, c.data_lines) if name == "data" else (c.label_cmd, c.label_lines)

    def drive(self, ctx):
        """Set this cycle's inputs of the core."""
        r = self.rng.random(4)
        for i, (name, ch) in enumerate(self.ch.items()):
            cmd, lines = self._streams(name)
            ctx.set(cmd.ready, bool(r[i] < self.p_cmd))
            if ch.line is None and ch.cmds and self.rng.random() < self.p_line:
                addr, left = ch.cmds[0]
                if not self.memory.inside(addr):
                    raise AssertionError(f"core read unmapped line 0x{addr:x} on {name}")
                ch.line = self.memory.read_line_int(addr)
                ch.cmds[0] = (addr + 1, left - 1)
                if left == 1:
                    ch.cmds.popleft()
            ctx.set(lines.valid, ch.line is not None)
            if ch.line is not None:
                ctx.set(lines.payload, ch.line)
        ctx.set(self.core.write.ready, bool(r[2] < self.p_write))
        ctx.set(self.core.write_idle, not self.pending)
        idle = self.read_quiet == 0 and all(ch.line is None and not ch.cmds for ch in self.ch.values())
        ctx.set(self.core.read_idle, idle)

    def signals(self):
        c = self.core
        return (c.data_cmd.valid, c.data_cmd.ready, c.data_cmd.payload, c.data_lines.valid, c.data_lines.ready,
                c.label_cmd.valid, c.label_cmd.ready, c.label_cmd.payload, c.label_lines.valid,
                c.label_lines.ready, c.write.valid, c.write.ready, c.write.payload, c.flush, c.status)

    def observe(self, sampled):
        """Update the model with the handshakes sampled at the clock edge; returns the status."""
        (dcv, dcr, dcp, dlv, dlr, lcv, lcr, lcp, llv, llr, wv, wr, wp, flush, status) = sampled
        for t, line, data in self.pending:
            if t <= 1 and line is not None:  # None: a write fence (nothing to store)
                self.memory.write_line_int(line, data)
        self.pending = [[t - 1, line, data] for t, line, data in self.pending if t > 1]
        for name, cv, cr, cp, lv, lr in (("data", dcv, dcr, dcp, dlv, dlr), ("label", lcv, lcr, lcp, llv, llr)):
            ch = self.ch[name]
            if lv and lr:
                ch.line = None
                ch.lines_served += 1
            if cv and cr:
                assert cp.lines >= 1, f"{name} command of {cp.lines} lines"
                ch.cmds.append((int(cp.address), int(cp.lines)))
                self.commands.append((name, int(cp.address), int(cp.lines)))
        if wv and wr:
            if wp.fence:  # CCI-P's write fence: answered after every earlier write, later writes after it
                self.fences += 1
                self.pending.append([max((t for t, *_ in self.pending), default=0) + 1, None, None])
            else:
                fence_t = max((t for t, line, _ in self.pending if line is None), default=0)
                self.writes[int(wp.address)] = int(wp.data)
                self.write_log.append(int(wp.address))
                self.pending.append([max(int(self.rng.integers(*self.write_latency)), fence_t + 1), int(wp.address),
                                     int(wp.data)])
        if self.read_quiet:
            self.read_quiet -= 1
        if flush:
            self.flushes += 1
            for ch in self.ch.values():
                ch.cmds.clear()
                ch.line = None
            self.read_quiet = int(self.rng.integers(1, 10))
        return status

    def check(self) -> None:
        """Guard bands intact, no write outside the buffers (``HostMemory.check``)."""
        self.memory.check()

    def read_lines_of(self, address, count) -> np.ndarray:
        return ints_to_lines([self.writes.get(address + i, 0) for i in range(count)], self.core.line_bits)


async def write_table(ctx, core, table_m, table_e):
    """Write the code table through ``table``, one entry per cycle."""
    for i, (mv, ev) in enumerate(zip(np.asarray(table_m), np.asarray(table_e))):
        ctx.set(core.table.en, 1)
        ctx.set(core.table.index, i)
        ctx.set(core.table.m, int(mv))
        ctx.set(core.table.e, int(ev))
        await ctx.tick()
    ctx.set(core.table.en, 0)


def set_config(ctx, core, cfg, run_id=0):
    c = core.cfg
    for name, value in (("data_addr", DATA_ADDR), ("label_addr", LABEL_ADDR), ("model_addr", MODEL_ADDR),
                        ("stats_addr", STATS_ADDR), ("status_addr", STATUS_ADDR), ("rows", cfg.rows),
                        ("features", cfg.features), ("bits", cfg.bits), ("batch", cfg.batch),
                        ("epochs", cfg.epochs), ("copies", cfg.copies), ("step", cfg.step), ("run_id", run_id),
                        ("loss", cfg.loss), ("l2", cfg.l2), ("estimator", cfg.estimator_register()),
                        ("warm_start", cfg.warm_start), ("start_minibatch", cfg.start_minibatch),
                        ("max_minibatches", cfg.max_minibatches), ("model_in_addr", MODEL_IN_ADDR),
                        ("model_delay", cfg.model_delay),
                        *((f"poly_{j}", int(cfg.poly[j]) if j < len(cfg.poly) else 0) for j in range(MAX_DEGREE + 1))):
        ctx.set(getattr(c, name), value & 0xFFFFFFFF if name.startswith("poly") else value)


async def pulse(ctx, sig):
    ctx.set(sig, 1)
    await ctx.tick()
    ctx.set(sig, 0)


async def step_until_end(ctx, core, shell, max_cycles, *, hook=None):
    """Step the shell model until the core leaves BUSY; returns (cycles stepped, status)."""
    sigs = shell.signals()
    for cycle in range(max_cycles):
        shell.drive(ctx)
        if hook is not None:
            hook(ctx, cycle)
        status = shell.observe((await ctx.tick().sample(*sigs))[2:])  # (clk, rst, *sampled)
        if status.state != State.BUSY and cycle > 2:
            return cycle, status
    raise AssertionError(f"core still busy after {max_cycles} cycles")


@dataclass
class RunResult:
    status: object
    cycles: int
    shell: ShellModel
    models: np.ndarray  # (epochs, padded features) int32 as written
    epoch_records: list
    status_record: dict


def collect(problem: Problem, shell: ShellModel, epochs: int) -> tuple[np.ndarray, list, dict]:
    """The ``epochs`` snapshots and records (``cfg.snapshots()`` of them) and the status record."""
    fmt = problem.fmt
    rl = max(1, fmt.record_lines)
    models = np.stack([unpack_words(shell.read_lines_of(MODEL_ADDR + e * fmt.model_lines, fmt.model_lines),
                                    fmt.padded_features) for e in range(epochs)]) if epochs else np.zeros((0, 0))
    recs = [unpack_record(shell.read_lines_of(STATS_ADDR + e * rl, rl), EPOCH_RECORD) for e in range(epochs)]
    status = unpack_record(shell.read_lines_of(STATUS_ADDR, rl), STATUS_RECORD)
    return models, recs, status
