"""``train()``: one training run on an open device, and ``train_golden()`` with the same result type.

The flow is the OPAE one: allocate the data, label, model, epoch-record and status buffers in
shared memory, fill them, program the code table and every register BY NAME from
:mod:`lowbit.contract.registers`, start, poll the status record, and read the model snapshots and records
back. :func:`train_golden` runs :func:`lowbit.contract.golden.run` on the same dataset and returns the
same :class:`TrainResult`, so callers (``lowbit train --backend``) switch backends freely; the sim
and golden results are bit-identical (tests/test_driver_train.py).
"""

from __future__ import annotations

import dataclasses

import secrets
from dataclasses import dataclass, field

import numpy as np

from lowbit.contract.fixed import step_to_fixed
from lowbit.contract.format import EPOCH_RECORD, LAYOUTS, RECORD_BYTES, LineFormat
from lowbit.contract.registers import (
    CODE_TABLE_ENTRIES,
    MAX_BATCH,
    MAX_COPIES,
    MAX_EPOCHS,
    BUILT_DOC,
    Built,
    ErrorCode,
    code_table_address,
    encode_code_entry,
)
from lowbit.contract.golden import EngineConfig

from .device import Device
from .errors import SimulatorDied


@dataclass
class TrainResult:
    """What a run produced (engine units; see lowbit.contract.fixed for the formats).

    Attributes
    ----------
    models : ndarray (snapshots, features) int32
        Model snapshot after each epoch, at 2^-24 (a bounded run's last one may be mid-epoch: ``partial``).
    losses : list[int]
        Each snapshot's loss accumulator (uint64 at 2^-32; lowbit.contract.fixed.loss_to_float for the mean).
    cycles, read_lines, write_lines, stall_cycles : int or None
        Whole-run counters from the status record (None for the golden model, which has no clock).
    epoch_cycles, epoch_read_lines, epoch_stall_cycles : ndarray or None
        The ``cycles`` / ``read_lines`` / ``stall_cycles`` words of each epoch record.
    config : EngineConfig
        Exactly what was programmed into the registers.
    backend : str
        ``"sim"``, ``"serial"``, ... or ``"golden"``.
    """

    models: np.ndarray
    losses: list[int]
    config: EngineConfig
    backend: str
    cycles: int | None = None
    read_lines: int | None = None
    write_lines: int | None = None
    stall_cycles: int | None = None
    epoch_cycles: np.ndarray | None = None
    epoch_read_lines: np.ndarray | None = None
    epoch_stall_cycles: np.ndarray | None = None
    status: dict = field(default_factory=dict)
    partial: bool = False

    @property
    def final_model(self) -> np.ndarray:
        """The model the run ended with (its last snapshot): what a resumed run warm-starts from."""
        return self.models[-1]


@dataclass(frozen=True)
class Resume:
    """Where a bounded run starts and how far it goes (registers WARM_START, MODEL_IN_ADDR,
    START_MINIBATCH, MAX_MINIBATCHES; semantics in :mod:`lowbit.contract.golden`).

    Parameters
    ----------
    model_in : array (features,) int32, optional
        Warm start from this model (at 2^-24); None starts from w = 0.
    start_minibatch : int
        Global index of the first minibatch (epoch ``g // P``, minibatch ``g mod P``).
    max_minibatches : int
        Stop after this many (0: to the end of the last epoch).
    """

    model_in: np.ndarray | None = None
    start_minibatch: int = 0
    max_minibatches: int = 0

    @property
    def plain(self) -> bool:
        """A plain run from w = 0 over the whole schedule (what every engine does)."""
        return self.model_in is None and self.start_minibatch == 0 and self.max_minibatches == 0


#: Why an engine without RESUME in its BUILT register (the planes core) refuses a Resume: the one
#: message, so the CLI and the driver say the same.
RESUME_UNSUPPORTED = ("warm start and bounded runs (WARM_START / START_MINIBATCH / MAX_MINIBATCHES) need an engine "
                      "built with RESUME: the {backend} engine's RTL does not implement them (the planes core; the "
                      "woven core does); use the woven engine or --backend golden")


def _positive_int(name, value, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= hi:
        raise ValueError(f"{name} must be an integer in 1..{hi}, got {value!r}")
    return int(value)


def engine_config(qds, *, step: float, batch: int, epochs: int, max_features: int | None = None,
                  loss=None, resume: Resume = Resume(), model_delay: int = 0) -> EngineConfig:
    """Validate the arguments and the dataset; the EngineConfig a run programs. Raises ValueError.

    ``loss`` is a :class:`lowbit.contract.losses.LossConfig` (None: least squares, no L2); ``resume`` a
    :class:`Resume` (default: a plain run from w = 0); ``model_delay`` the MODEL_DELAY register (1:
    pipelined SGD, residuals against the model one minibatch old; lowbit.contract.golden)."""
    if isinstance(model_delay, bool) or model_delay not in (0, 1):
        raise ValueError(f"model_delay must be 0 (exact SGD) or 1 (pipelined), got {model_delay!r}")
    batch = _positive_int("batch", batch, MAX_BATCH)
    epochs = _positive_int("epochs", epochs, MAX_EPOCHS)
    try:
        step_q = step_to_fixed(step)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    for attr in ("fmt", "data_lines", "labels_q", "table_m", "table_e", "rows", "features", "copies"):
        if not hasattr(qds, attr):
            raise ValueError(f"expected a lowbit.dataset.QuantizedDataset, got {type(qds).__name__} without .{attr}")
    copies = _positive_int("copies", qds.copies, MAX_COPIES)
    extra = {} if loss is None else loss.registers()
    if loss is not None and loss.samples() > copies:
        raise ValueError(f"the {loss.estimator} estimator of degree {loss.degree} reads {loss.samples()} independent "
                         f"copies of each row; the data set has {copies} (quantize with copies >= {loss.samples()})")
    for name in ("start_minibatch", "max_minibatches"):
        v = getattr(resume, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < (1 << 32):
            raise ValueError(f"{name} must be an integer in 0..2^32-1, got {v!r}")
    cfg = EngineConfig(rows=int(qds.rows), features=int(qds.features), bits=int(qds.fmt.bits), batch=batch,
                       epochs=epochs, step=step_q, copies=copies, **extra, warm_start=resume.model_in is not None,
                       start_minibatch=int(resume.start_minibatch), max_minibatches=int(resume.max_minibatches),
                       model_delay=int(model_delay))
    if max_features is not None and not 1 <= cfg.features <= max_features:
        raise ValueError(f"{cfg.features} features exceed this engine's MAX_FEATURES = {max_features}")
    err = cfg.error(max_features if max_features is not None else 1 << 24)
    if err is not ErrorCode.NONE:
        raise ValueError(f"the engine would reject this run: {err.name} ({cfg})")
    if np.shape(qds.labels_q) != (cfg.rows,):
        raise ValueError(f"labels have shape {np.shape(qds.labels_q)}, expected ({cfg.rows},)")
    if len(qds.table_m) < qds.fmt.codes or len(qds.table_e) < qds.fmt.codes or qds.fmt.codes > CODE_TABLE_ENTRIES:
        raise ValueError(f"the code table needs {qds.fmt.codes} entries for {cfg.bits} bits")
    return cfg


def engine_layout(caps: dict) -> str:
    """The line layout the engine with these CAPS reads (CAPS.FORMAT_VERSION); quantize in it
    (``QuantizedDataset.build(layout=...)``) to pack once. Raises ValueError if unknown."""
    layout = LAYOUTS.get(caps["FORMAT_VERSION"])
    if layout is None:
        raise ValueError(f"the engine reads line format {caps['FORMAT_VERSION']}, unknown to this lowbit "
                         f"(it knows {sorted(LAYOUTS)})")
    return layout


def engine_format(fmt: LineFormat, caps: dict) -> LineFormat:
    """``fmt`` as the engine with these CAPS reads it: the data set's codes and line width, the
    engine's layout (CAPS.FORMAT_VERSION). Raises ValueError if the two cannot meet."""
    if fmt.line_bits != caps["LINE_BITS"]:
        raise ValueError(f"dataset packed for {fmt.line_bits}-bit lines, the engine has {caps['LINE_BITS']}-bit lines")
    # The codes are the data set; the layout is the engine's: pack them as it reads them.
    return dataclasses.replace(fmt, layout=engine_layout(caps))


def _estimate_cycles(cfg: EngineConfig, fmt, lanes: int) -> int:
    """A generous upper bound of the run's cycles (for the default timeout)."""
    if fmt.layout == "woven":  # a line per cycle, and GROUP_GAP cycles per group at worst
        groups = fmt.groups(cfg.rows)
        return 2 * cfg.epochs * (fmt.lines_per_copy(cfg.rows) + groups * 64 + fmt.chunks * 64 + 1000)
    lanes = max(1, lanes)
    per_row = fmt.padded_features // lanes + 8
    per_batch = 2 * fmt.padded_features // lanes + 64
    per_epoch = cfg.rows * per_row + (-(-cfg.rows // cfg.batch)) * per_batch + fmt.lines_per_copy(cfg.rows) + 1000
    return 2 * cfg.epochs * per_epoch


def loss_needs(loss) -> Built:
    """The optional datapaths (BUILT) a :class:`lowbit.contract.losses.LossConfig` needs (None: none),
    as :meth:`EngineConfig.needs` says of its registers."""
    if loss is None:
        return Built.NONE
    return EngineConfig(rows=1, features=1, bits=1, batch=1, epochs=1, step=1, copies=loss.samples(),
                        **loss.registers()).needs()


def check_built(needs: Built, built: Built, backend: str) -> None:
    """Refuse (ValueError, one line) a run needing datapaths (``needs``: :meth:`EngineConfig.needs`,
    :func:`loss_needs`) that the engine was built without (its BUILT register, or
    :data:`lowbit.driver.sim_engines.SIM_BUILT` before a device is open): the engine would refuse
    it at START with NOT_BUILT."""
    missing = Built(needs) & ~Built(built)
    if missing:
        what = "; ".join(doc for flag, doc in BUILT_DOC.items() if flag & missing)
        raise ValueError(f"the {backend} engine is built without {what} (its BUILT register is "
                         f"{int(built):#x}); use --backend golden (the spec)")


def train(device: Device, qds, *, step: float, batch: int, epochs: int, progress: bool = True,
          timeout_s: float | None = None, loss=None, resume: Resume = Resume(), model_delay: int = 0) -> TrainResult:
    """Train on ``device`` (an open :class:`~.device.Device`); see the module docstring.

    Parameters
    ----------
    qds : lowbit.dataset.QuantizedDataset
        Quantized copies, labels and code table; its line width must match the engine's.
    step : float
        Per-sample step size in (0, 1) (STEP = step_to_fixed(step)).
    batch, epochs : int
        Minibatch size (1..MAX_BATCH) and epochs (1..MAX_EPOCHS).
    progress : bool
        A tqdm bar over epochs (from STATUS.EPOCH).
    timeout_s : float, optional
        Wall-clock limit; default from a generous cycle estimate at 10k simulated cycles/s.
    resume : Resume
        Warm start / bounded run: the start model is written to a buffer at MODEL_IN_ADDR (one
        snapshot's layout) and the run returns ``cfg.snapshots()`` snapshots (``partial`` if the
        last is mid-epoch), as :func:`train_golden`. Refused (ValueError, :data:`RESUME_UNSUPPORTED`)
        by engines without RESUME in their BUILT register (the planes core), never silently run as
        a plain run.
    model_delay : int
        MODEL_DELAY: 1 trains with pipelined SGD (minibatch p's residuals against the model before
        minibatch p-1's update; lowbit.contract.golden), which the woven core runs with one group of
        W/32 rows a minibatch (BATCH = W/32, or >= ROWS; BAD_DELAY otherwise).

    Raises
    ------
    ValueError
        Bad arguments, a dataset the engine cannot take, or a Resume the engine lacks (checked
        before touching the device).
    DeviceTimeout, DeviceError, SimulatorDied
        From :meth:`Device.wait`.
    """
    from tqdm.auto import tqdm

    built = getattr(device, "built", Built.NONE)
    if not resume.plain and not built & Built.RESUME:
        raise ValueError(RESUME_UNSUPPORTED.format(backend=device.backend.name))
    # What the engine itself says it has (BUILT): a loss, L2 or resumed run it lacks is refused
    # here, before START.
    check_built(engine_config(qds, step=step, batch=batch, epochs=epochs, loss=loss, resume=resume,
                              model_delay=model_delay).needs(), built, device.backend.name)
    caps = device.caps
    cfg = engine_config(qds, step=step, batch=batch, epochs=epochs, max_features=caps["MAX_FEATURES"], loss=loss,
                        resume=resume, model_delay=model_delay)
    snapshots = cfg.snapshots()
    fmt = engine_format(qds.fmt, caps)
    data = np.ascontiguousarray(qds.data_lines(fmt), dtype=np.uint8)
    labels = np.ascontiguousarray(qds.label_lines(), dtype=np.uint8)
    need = (cfg.copies * fmt.lines_per_copy(cfg.rows), fmt.line_bytes)
    if data.shape != need:
        raise ValueError(f"data_lines() has shape {data.shape}, expected {need}")
    if labels.shape != (fmt.label_lines(cfg.rows), fmt.line_bytes):
        raise ValueError(f"label_lines() has shape {labels.shape}, expected {(fmt.label_lines(cfg.rows), fmt.line_bytes)}")
    if timeout_s is None:
        timeout_s = 60.0 + _estimate_cycles(cfg, fmt, caps.get("LANES", 1)) / 10_000

    lb = fmt.line_bytes
    rec_lines = max(1, fmt.record_lines)
    bufs = []

    def alloc(lines):
        buf = device.allocate((lines, lb), np.uint8)
        bufs.append(buf)
        return buf

    try:
        d_buf = alloc(data.shape[0])
        l_buf = alloc(labels.shape[0])
        m_buf = alloc(snapshots * fmt.model_lines)
        s_buf = alloc(snapshots * rec_lines)
        st_buf = alloc(rec_lines)
        d_buf[:] = data
        l_buf[:] = labels
        in_addr = 0
        if cfg.warm_start:  # the start model in one snapshot's layout (padding words 0)
            i_buf = alloc(fmt.model_lines)
            words = np.zeros(fmt.padded_features, dtype="<i4")
            words[: cfg.features] = resume.model_in
            i_buf[:] = words.view(np.uint8).reshape(fmt.model_lines, lb)
            in_addr = i_buf.io_address // lb
        for c in range(fmt.codes):
            device.mmio_write64(code_table_address(c), encode_code_entry(qds.table_m[c], qds.table_e[c]))
        run_id = secrets.randbits(63) | 1
        # Address registers count lines of the engine's width (bytes / 64 for 512-bit lines).
        for name, value in (("DATA_ADDR", d_buf.io_address // lb), ("LABEL_ADDR", l_buf.io_address // lb),
                            ("MODEL_ADDR", m_buf.io_address // lb), ("STATS_ADDR", s_buf.io_address // lb),
                            ("STATUS_ADDR", st_buf.io_address // lb), ("ROWS", cfg.rows), ("FEATURES", cfg.features),
                            ("BITS", cfg.bits), ("BATCH", cfg.batch), ("EPOCHS", cfg.epochs),
                            ("COPIES", cfg.copies), ("STEP", cfg.step), ("RUN_ID", run_id),
                            # every run programs these, so a plain run after a resumed one is
                            # plain and an earlier run's loss registers never linger
                            ("MODEL_IN_ADDR", in_addr), ("WARM_START", int(cfg.warm_start)),
                            ("START_MINIBATCH", cfg.start_minibatch), ("MAX_MINIBATCHES", cfg.max_minibatches),
                            ("LOSS", cfg.loss), ("L2", cfg.l2), ("ESTIMATOR", cfg.estimator_register()),
                            ("MODEL_DELAY", cfg.model_delay),
                            *((f"POLY_{j}", a & 0xFFFF_FFFF) for j, a in enumerate(cfg.poly))):
            device.write_reg(name, value)
        with tqdm(total=snapshots, unit="epoch", disable=not progress, leave=False, desc="engine") as bar:
            def on_epoch(e):
                bar.update(min(e, snapshots) - bar.n)

            device.start()
            rec = device.wait(timeout_s, status_buffer=st_buf, run_id=run_id, on_epoch=on_epoch)
        models = (m_buf.view(np.ndarray).reshape(-1).view("<i4")
                  .reshape(snapshots, fmt.padded_features)[:, : cfg.features].astype(np.int32))
        records = (s_buf.view(np.ndarray).reshape(snapshots, rec_lines * lb)[:, :RECORD_BYTES]
                   .copy().view("<u8").astype(np.uint64))
    except SimulatorDied:
        # The simulator is gone (from any call, not only wait's): close the device so that the
        # buffers are not freed on a dead backend, whose "closed" error would hide this one.
        device.close()
        raise
    finally:
        if not device.closed:
            for b in bufs:
                device.free(b)
    col = {n: records[:, i] for i, n in enumerate(EPOCH_RECORD)}
    return TrainResult(
        models=models, losses=[int(x) for x in col["loss"]], config=cfg, backend=device.backend.name,
        cycles=rec["cycles"], read_lines=rec["read_lines"], write_lines=rec["write_lines"],
        stall_cycles=rec["stall_cycles"], epoch_cycles=col["cycles"].astype(np.int64),
        epoch_read_lines=col["read_lines"].astype(np.int64), epoch_stall_cycles=col["stall_cycles"].astype(np.int64),
        status=rec, partial=cfg.span()[1] % cfg.minibatches_per_epoch != 0,
    )


def train_golden(qds, *, step: float, batch: int, epochs: int, loss=None, resume: Resume = Resume(),
                 model_delay: int = 0) -> TrainResult:
    """The golden model on the same dataset and arguments, as a :class:`TrainResult` (no cycle counts).

    A plain least-squares run without L2 uses the compiled model
    (:func:`lowbit.golden_fast.run_packed`) on the packed lines the engine would read; it is
    bit-identical to :func:`lowbit.contract.golden.run` (tests/test_golden_fast.py). Any other ``loss``
    (:class:`lowbit.contract.losses.LossConfig`) and any ``resume`` run (warm start, bounded) use the spec
    itself, :func:`lowbit.contract.golden.run`, which decodes only the rows the run reads.
    ``model_delay`` 1 (pipelined SGD) runs compiled too.
    """
    cfg = engine_config(qds, step=step, batch=batch, epochs=epochs, loss=loss, resume=resume, model_delay=model_delay)
    if cfg.loss or cfg.l2 or not resume.plain:
        from lowbit.contract.golden import run

        g = run(cfg, qds.codes, qds.labels_q, qds.table_m, qds.table_e, model_in=resume.model_in)
    else:
        from lowbit.golden_fast import run_packed

        g = run_packed(cfg, qds.data_lines(), qds.labels_q, qds.table_m, qds.table_e, qds.fmt)
    return TrainResult(models=g.models, losses=[int(x) for x in g.losses], config=cfg, backend="golden",
                       partial=g.partial)
