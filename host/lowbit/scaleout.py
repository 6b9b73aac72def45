"""Several engines train one model: ``lowbit train --engines K --sync-every T --exchange E``.

K worker processes join one torch.distributed (gloo) group. Worker ``k`` quantizes its own shard of
the rows (contiguous, sizes differ by at most one; quantization seed ``seed + SEED_STRIDE * k``), and
drives its own engine through the driver's resumable runs (:class:`lowbit.driver.train.Resume`):
every round it warm-starts the engine from the shared model, runs at most ``T`` minibatches of its
shard (never past the end of an epoch), and the workers then average their model *deltas* with
:func:`lowbit.qsgd.exchange.average` (a reduce-scatter + all-gather, coded as ``E``). The mean delta
is rounded back onto the engine's int32 model grid, identically on every worker, so the replicas
stay bit-identical and the whole run is deterministic from its seeds. With K = 1 there is no
exchange and the run is the engine's plain run, bit for bit (the pieces add up, lowbit.contract.golden).

Launching: :func:`launch` (what ``lowbit train --engines K`` does) starts K copies of the same entry
point, ``python -m lowbit.cli train ...``, with torchrun's variables (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT); under ``torchrun`` the same command runs unchanged on several machines
(docs/scaleout.md). If a worker dies, :func:`launch` stops the others and raises
:class:`WorkerFailed` naming it; a worker whose launcher dies is killed by the kernel
(PR_SET_PDEATHSIG), and a worker blocked on a dead peer gives up after the gloo timeout.

Reported per run: the training loss per epoch (float64 on the normalised data, from the shared
model), test metric, bytes each worker sent, each worker's engine cycles (golden engines: MODELLED
per bounded run by :func:`round_cycles`, a model calibrated against the sim's measured rounds, the
golden model having no clock; sim engines: MEASURED, each round's CYCLES), the epoch time (per
round: the slowest engine's cycles at ``fmax_mhz``, plus the largest exchange at ``link_gbps``),
and the exchange's wall time measured on this machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from .experiment import MEASURED_FMAX_MHZ, RunSummary

#: Quantization seed of worker k: seed + SEED_STRIDE * k (worker 0 quantizes as ``lowbit train``).
SEED_STRIDE = 1_000_003
#: Seconds a worker waits in a collective for a peer that neither answers nor closes its socket.
GLOO_TIMEOUT_S = 60.0
#: Seconds between a worker's death and the end of the others (SIGTERM, then SIGKILL).
STOP_GRACE_S = 3.0
#: Default link rate of the modelled exchange time.
DEFAULT_LINK_GBPS = 10.0
EXCHANGE_NAMES = ("fp32", "qsgd8", "qsgd4")
STEP_SCALINGS = ("linear", "none")
#: Environment: set by :func:`launch` for its workers (rank 0 writes its report to LOWBIT_RESULT).
ENV_RESULT, ENV_LAUNCHED, ENV_STATUS_DIR = "LOWBIT_RESULT", "LOWBIT_LAUNCHED", "LOWBIT_WORKER_STATUS_DIR"


class WorkerFailed(RuntimeError):
    """A worker died or failed; the message names it (rank, pid, exit status or signal)."""


class PeerLost(RuntimeError):
    """A collective of the process group failed: another worker is gone (a symptom, not a cause)."""


#: A worker's exit status when it stopped because a peer was lost (:class:`PeerLost`): the launcher
#: then names the worker that failed first for a reason of its own, if it shows within STOP_GRACE_S.
EXIT_PEER_LOST = 3


@dataclass(frozen=True)
class Plan:
    """One scale-out run's parameters (the CLI's options)."""

    data: str
    bits: int
    engines: int
    sync_every: int
    exchange: str = "fp32"
    levels: str = "uniform"
    epochs: int = 10
    batch: int = 16
    step: float | str = "auto"
    copies: int | None = None
    seed: int = 0
    engine: str = "woven"
    fmax_mhz: float = MEASURED_FMAX_MHZ
    link_gbps: float = DEFAULT_LINK_GBPS
    step_scaling: str = "linear"
    backend: str = "golden"  # or "sim": each worker opens its own simulated engine (needs RESUME)

    def __post_init__(self):
        if self.step_scaling not in STEP_SCALINGS:
            raise ValueError(f"--step-scaling must be one of {STEP_SCALINGS}, got {self.step_scaling!r}")
        if not 1 <= self.engines <= 16:
            raise ValueError(f"--engines takes 1..16, got {self.engines}")
        if self.exchange not in EXCHANGE_NAMES:
            raise ValueError(f"--exchange must be one of {EXCHANGE_NAMES}, got {self.exchange!r}")
        if self.sync_every < 1:
            raise ValueError(f"--sync-every must be a positive number of minibatches, got {self.sync_every}")
        if self.backend not in ("golden", "sim"):
            raise ValueError(f"--engines runs on --backend golden or sim, got {self.backend!r}")


@dataclass
class ScaleoutRun(RunSummary):
    """A :class:`~lowbit.experiment.RunSummary` with the scale-out columns (one entry per worker in lists)."""

    engines: int = 1
    sync_every: int = 0
    engine_step: float = 0.0   # the per-sample step each engine ran with (engine_step(); step is the one asked)
    exchange: str = "fp32"
    link_gbps: float = DEFAULT_LINK_GBPS
    exchange_bytes: list[int] = field(default_factory=list)      # sent by each worker over the run
    engine_cycles: list[int] = field(default_factory=list)       # MODELLED, each worker over the run
    cycles_note: str = ("modelled: lowbit.scaleout.round_cycles per bounded run (calibrated against the sim's "
                        "measured rounds), not measured")
    modelled_epoch_s: float = 0.0   # per round: slowest engine at fmax_mhz + largest exchange at link_gbps
    exchange_wall_s: list[float] = field(default_factory=list)   # measured here, each worker over the run
    rounds_per_epoch: int = 0


# ---------------------------------------------------------------------------------- the step
#: Fraction of the stability bound ``2 / lambda_max`` the scaled step may reach (a margin for the
#: quantization noise the bound does not see).
STEP_CAP_FRACTION = 0.75


def stability_bound(X: np.ndarray, batch: int) -> float:
    """``2 / max_b lambda_max(A_b^T A_b)`` over the minibatches ``A_b`` of ``X``: below it every
    minibatch step ``w -= step A_b^T (A_b w - y_b)`` is non-expansive (``||I - step A_b^T A_b|| <= 1``),
    so least-squares SGD cannot diverge. ``A_b A_b^T`` is only ``B x B``: exact eigenvalues, cheap."""
    n = X.shape[0] // batch * batch
    blocks = [X[:n].reshape(-1, batch, X.shape[1])] if n else []
    if X.shape[0] > n:
        blocks.append(X[n:][None])
    lam = max(float(np.linalg.eigvalsh(A @ A.transpose(0, 2, 1))[:, -1].max()) for A in blocks)
    return 2.0 / max(lam, 1e-12)


def engine_step(step: float, engines: int, X: np.ndarray, batch: int, scaling: str) -> float:
    """The per-sample step each engine runs with.

    Averaging K models that each took T steps on their own shard advances the shared model about
    as far as T steps of one engine with a K-times smaller step, so per epoch K engines would
    learn K times slower. ``"linear"`` scales the step by K (the linear scaling rule of large-batch
    SGD), capped at ``STEP_CAP_FRACTION`` of :func:`stability_bound` (never below ``step``).
    ``"none"`` keeps the step as given.
    """
    if scaling == "none" or engines == 1:
        return step
    cap = STEP_CAP_FRACTION * stability_bound(np.asarray(X, dtype=np.float64), batch)
    return min(0.999, max(step, min(step * engines, cap)))


# ---------------------------------------------------------------------------------- the schedule
def shard_bounds(rows: int, engines: int) -> np.ndarray:
    """Row boundaries of the shards: worker k holds rows ``[b[k], b[k+1])``."""
    from .qsgd.exchange import chunk_bounds

    return chunk_bounds(rows, engines)


def rounds_per_epoch(rows: int, engines: int, batch: int, sync_every: int) -> int:
    """Averaging rounds per epoch: enough for the largest shard's minibatches, T at a time."""
    largest = int(np.diff(shard_bounds(rows, engines)).max())
    return -(-(-(-largest // batch)) // sync_every)


def round_span(shard_rows: int, batch: int, sync_every: int, epoch: int, rnd: int) -> tuple[int, int]:
    """``(first minibatch, count)`` of a worker's run in ``rnd`` of ``epoch`` (count 0: it waits)."""
    p = -(-shard_rows // batch)
    count = max(0, min(sync_every, p - rnd * sync_every))
    return epoch * p + rnd * sync_every, count


def _run_rows(shard_rows: int, batch: int, first: int, count: int) -> int:
    """Rows a run of ``count`` minibatches from ``first`` reads (the epoch's last one may be short)."""
    m0 = first % -(-shard_rows // batch)
    return min(shard_rows, (m0 + count) * batch) - m0 * batch


# ---------------------------------------------------------------------------------- one worker
def _engine_format(qds, engine: str):
    from .driver.sim_engines import SIM_ENGINES

    return dataclasses.replace(qds.fmt, layout=SIM_ENGINES[engine]["core"]), SIM_ENGINES[engine]["lanes"]


#: Coefficients of :func:`round_cycles` (one per :func:`round_terms` entry), fitted by
#: ``bench/round_cycles.py`` to 16 warm-started rounds measured on the sim backend's woven engine
#: (``SIM_ENGINES["woven"]``: 512-bit lines, 100..400-cycle random memory latency; b = 4, batch 16;
#: 100 / 785 / 2000 / 5001 features x 1 / 4 / 13 / 32 minibatches): within 9.4 % of every one of
#: them (the worst: the smallest rounds, where the random latency weighs most), within 1.2 % at
#: 5001 features. ``tests/test_scaleout.py::test_round_cycle_model_matches_the_sim`` holds it to
#: fresh measurements within :data:`ROUND_CYCLES_TOLERANCE`. (Refitted after the round's fixed
#: cost fell from ~913 to ~449 cycles, the status record behind a write fence, docs/scaleout.md;
#: and again in session 6, ~434 and ~47 cycles a minibatch instead of ~56: the dot unit's record
#: no longer waits for the loss sum, the read engine's arbiter is registered.)
ROUND_CYCLES = (434.241, 0.996, 46.783, 2.627)
ROUND_CYCLES_TOLERANCE = 0.10


def round_terms(fmt, batch: int, minibatches: int, rows: int | None = None) -> tuple[int, int, int, int]:
    """The terms of :func:`round_cycles` for a round of ``minibatches`` minibatches (``rows`` rows,
    default ``minibatches * batch``) in the woven layout ``fmt``: 1 (the run's fixed cost: checks,
    schedule, the start model's read, the writes' responses), the data lines streamed (about one a
    cycle), the minibatches (each one's update and the pipeline's turn-around), chunks x (b + 1)
    (the clear, the priming pass over a group's lines, the model's load and snapshot)."""
    rows = minibatches * batch if rows is None else rows
    return (1, fmt.lines_per_copy(rows), minibatches, fmt.chunks * fmt.code_bits)


def round_cycles(fmt, batch: int, minibatches: int, rows: int | None = None) -> int:
    """MODELLED cycles of one scale-out round on the woven engine: a linear model calibrated against
    the sim's measured rounds (:data:`ROUND_CYCLES`; within :data:`ROUND_CYCLES_TOLERANCE` of them)."""
    return int(round(sum(c * t for c, t in zip(ROUND_CYCLES, round_terms(fmt, batch, minibatches, rows)))))


def _run_cycles(cfg, fmt, lanes: int, rows: int, minibatches: int) -> int:
    """MODELLED cycles of one bounded run over ``rows`` rows (``minibatches`` of them): the calibrated
    round model on the woven engine; the driver's (generous) timeout bound on the planes engine."""
    if fmt.layout == "woven":
        return round_cycles(fmt, cfg.batch, minibatches, rows)
    from .driver.train import _estimate_cycles

    return _estimate_cycles(dataclasses.replace(cfg, rows=rows, epochs=1, copies=1, warm_start=False,
                                                start_minibatch=0, max_minibatches=0), fmt, lanes)


def _status(rank: int, rounds: int) -> None:
    """Write ``pid rounds`` to $LOWBIT_WORKER_STATUS_DIR/rank<k> (monitoring; the fault test uses it)."""
    d = os.environ.get(ENV_STATUS_DIR)
    if d:
        tmp = Path(d) / f".rank{rank}"
        tmp.write_text(f"{os.getpid()} {rounds}\n")
        tmp.replace(Path(d) / f"rank{rank}")


def train_worker(plan: Plan, prepared, step: float, group=None) -> dict:
    """This worker's part of a run (in an initialised process group) at the engines' own, already
    scaled, per-sample ``step``; every worker returns the same shared models, and its own counters.

    ``plan.backend == "sim"``: the worker opens its own simulated engine (``SIM_ENGINES[plan.engine]``)
    and runs every round on it (:func:`lowbit.driver.train.train` with a Resume); its cycles are
    then measured (CYCLES of each run), not modelled."""
    import contextlib

    import torch.distributed as dist

    from .dataset import QuantizedDataset
    from .driver.sim_engines import SIM_ENGINES
    from .driver.train import Resume, train, train_golden
    from .contract.fixed import INT32_MAX, INT32_MIN
    from .qsgd.exchange import EXCHANGES, average

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    bounds = shard_bounds(prepared.rows, world)
    lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    copies = plan.copies or min(plan.epochs, 8)
    t0 = time.perf_counter()
    qds = QuantizedDataset.build(prepared.X[lo:hi], prepared.y[lo:hi], bits=plan.bits, levels=plan.levels,
                                 copies=copies, seed=plan.seed + SEED_STRIDE * rank, progress=False,
                                 line_bits=SIM_ENGINES[plan.engine]["line_bits"])
    host_s = time.perf_counter() - t0  # this worker's quantize + pack of its shard, before the run
    fmt, lanes = _engine_format(qds, plan.engine)
    rounds = rounds_per_epoch(prepared.rows, world, plan.batch, plan.sync_every)
    codec, rng = EXCHANGES[plan.exchange], np.random.default_rng([plan.seed, rank])
    w = np.zeros(qds.features, dtype=np.int32)
    models = np.zeros((plan.epochs, qds.features), dtype=np.int32)
    cycles = np.zeros((plan.epochs, rounds), dtype=np.int64)
    sent = np.zeros((plan.epochs, rounds), dtype=np.int64)
    wall = np.zeros((plan.epochs, rounds))
    losses = [0] * plan.epochs
    with contextlib.ExitStack() as stack:
        device = None
        if plan.backend == "sim":
            from .driver import open_device

            device = stack.enter_context(open_device("sim", **SIM_ENGINES[plan.engine], seed=rank))
        for epoch in range(plan.epochs):
            for rnd in range(rounds):
                first, count = round_span(hi - lo, plan.batch, plan.sync_every, epoch, rnd)
                local = w
                if count:
                    args = dict(step=step, batch=plan.batch, epochs=plan.epochs, resume=Resume(w, first, count))
                    if device is None:
                        res = train_golden(qds, **args)
                        cycles[epoch, rnd] = _run_cycles(res.config, fmt, lanes,
                                                         _run_rows(hi - lo, plan.batch, first, count), count)
                    else:
                        res = train(device, qds, **args, progress=False)
                        cycles[epoch, rnd] = res.cycles
                    local = res.final_model
                    losses[epoch] += sum(res.losses)
                if world == 1:
                    w = local
                else:
                    try:
                        ex = average((local.astype(np.int64) - w).astype(np.float32), codec, rng, group)
                    except RuntimeError as exc:  # gloo: "Connection closed by peer", a timeout
                        raise PeerLost(str(exc)) from exc
                    w = np.clip(w + np.rint(ex.mean).astype(np.int64), INT32_MIN, INT32_MAX).astype(np.int32)
                    sent[epoch, rnd], wall[epoch, rnd] = ex.bytes_sent, ex.wall_s
                _status(rank, epoch * rounds + rnd + 1)
            models[epoch] = w
    return dict(models=models, cycles=cycles, sent=sent, wall=wall, losses=losses, rounds=rounds, host_s=host_s)


def summarise(plan: Plan, prepared, step: float, parts: list[dict], run_step: float) -> ScaleoutRun:
    """The run's summary from every worker's :func:`train_worker` result (rank order)."""
    from .experiment import _losses, _metrics
    from .contract.fixed import UINT64_MAX, loss_to_float, model_to_float

    models = model_to_float(parts[0]["models"])
    cycles = np.stack([p["cycles"] for p in parts])      # (K, epochs, rounds)
    sent = np.stack([p["sent"] for p in parts])
    per_round = cycles.max(axis=0) / (plan.fmax_mhz * 1e6) + sent.max(axis=0) * 8 / (plan.link_gbps * 1e9)
    epoch_s = per_round.sum(axis=1)
    metric, name = _metrics(prepared, models[-1])
    engine_loss = [loss_to_float(min(sum(p["losses"][e] for p in parts), UINT64_MAX), prepared.rows)
                   for e in range(plan.epochs)]
    return ScaleoutRun(
        label=f"b={plan.bits} K={plan.engines} {plan.exchange}", backend=plan.backend, bits=plan.bits,
        levels=plan.levels, epochs=plan.epochs, batch=plan.batch, step=step,
        train_loss=_losses(prepared, models), engine_loss=engine_loss, test_metric=metric, metric_name=name,
        cycles=int(cycles.sum(axis=(1, 2)).max()), fmax_mhz=plan.fmax_mhz,
        elapsed_s=[float(x) for x in np.cumsum(epoch_s)], model=models[-1],
        engines=plan.engines, sync_every=plan.sync_every, engine_step=run_step, exchange=plan.exchange, link_gbps=plan.link_gbps,
        exchange_bytes=[int(x) for x in sent.sum(axis=(1, 2))],
        engine_cycles=[int(x) for x in cycles.sum(axis=(1, 2))],
        cycles_note=("measured: CYCLES of each bounded run on the simulated engine" if plan.backend == "sim"
                     else ScaleoutRun.cycles_note),
        modelled_epoch_s=float(epoch_s.mean()),
        host_s=max(p["host_s"] for p in parts),  # the workers quantize their shards side by side
        exchange_wall_s=[float(p["wall"].sum()) for p in parts], rounds_per_epoch=int(parts[0]["rounds"]),
    )


def worker_main(plan: Plan, prepare_args: dict) -> ScaleoutRun | None:
    """Entry of one worker (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT in the environment, as torchrun
    sets them): join the group, train, gather; rank 0 returns the summary (and writes it to
    $LOWBIT_RESULT if the launcher asked), the others None."""
    import torch
    import torch.distributed as dist

    from . import experiment as ex

    if os.environ.get(ENV_LAUNCHED):
        _die_with_parent()
    world = int(os.environ["WORLD_SIZE"])
    if world != plan.engines:
        raise ValueError(f"--engines {plan.engines} but WORLD_SIZE is {world}: start {plan.engines} workers")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=GLOO_TIMEOUT_S))
    try:
        prepared = ex.prepare(plan.data, seed=plan.seed, **prepare_args)
        if prepared.rows < world:
            raise ValueError(f"{prepared.rows} rows cannot be shared by {world} engines")
        step = plan.step
        if step == "auto":
            from .experiment import auto_step

            step = auto_step(prepared.X, plan.batch)
        run_step = engine_step(step, world, prepared.X, plan.batch, plan.step_scaling)
        part = train_worker(plan, prepared, run_step)
        parts = [None] * world
        try:
            dist.all_gather_object(parts, part)
        except RuntimeError as exc:
            raise PeerLost(str(exc)) from exc
        run = summarise(plan, prepared, step, parts, run_step) if dist.get_rank() == 0 else None
        if run is not None and os.environ.get(ENV_RESULT):
            _write_result(run, prepared, Path(os.environ[ENV_RESULT]))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return run


def _die_with_parent() -> None:
    """Have the kernel kill this worker if its launcher dies (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass  # not Linux: the gloo timeout still ends an orphaned worker


def _write_result(run: ScaleoutRun, prepared, path: Path) -> None:
    d = run.to_json()
    d["model"] = [float(x) for x in run.model]
    d["_data"] = {"name": prepared.name, "rows": prepared.rows, "features": prepared.features}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d))
    tmp.replace(path)


def read_result(path: Path) -> tuple[ScaleoutRun, dict]:
    d = json.loads(Path(path).read_text())
    info = d.pop("_data")
    d["model"] = np.array(d["model"])
    return ScaleoutRun(**d), info


# ---------------------------------------------------------------------------------- the launcher
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(rank: int, world: int, proc: subprocess.Popen, code: int) -> str:
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    return f"worker {rank} of {world} (pid {proc.pid}) {how}"


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every live worker, SIGKILL what is left after STOP_GRACE_S, reap them all."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(argv: list[str], engines: int, *, timeout_s: float | None = None,
           env: dict | None = None) -> tuple[ScaleoutRun, dict]:
    """Start ``engines`` workers running ``python -m lowbit.cli *argv`` on this machine, wait, and
    return rank 0's report. Raises :class:`WorkerFailed` (naming the first worker that died; the
    others are stopped within STOP_GRACE_S) or TimeoutError after ``timeout_s``."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="lowbit-scaleout-") as tmp:
        result = Path(tmp) / "result.json"
        base = {**os.environ, **(env or {}), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                "WORLD_SIZE": str(engines), ENV_RESULT: str(result), ENV_LAUNCHED: "1", "OMP_NUM_THREADS": "1"}
        procs: list[subprocess.Popen] = []
        try:
            for rank in range(engines):
                procs.append(subprocess.Popen([sys.executable, "-m", "lowbit.cli", *argv],
                                              env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                                              stdin=subprocess.DEVNULL))
            _watch(procs, timeout_s)
        finally:
            _stop(procs)
        return read_result(result)


def _watch(procs: list[subprocess.Popen], timeout_s: float | None) -> None:
    """Return when every worker exited 0; raise at the first failure (killed ones named first)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    symptom_since = None
    while True:
        codes = [p.poll() for p in procs]
        failed = [(rank, c) for rank, c in enumerate(codes) if c not in (None, 0)]
        if failed and all(c == EXIT_PEER_LOST for _, c in failed) and any(c is None for c in codes):
            # Only symptoms so far (a peer was lost): give the cause a moment to exit and be named.
            symptom_since = symptom_since or time.monotonic()
            if time.monotonic() - symptom_since < STOP_GRACE_S:
                time.sleep(0.05)
                continue
        if failed:
            # a signal is the cause, then a worker's own failure, then a lost peer (a symptom)
            rank, code = min(failed, key=lambda rc: (rc[1] >= 0, rc[1] == EXIT_PEER_LOST, rc[0]))
            raise WorkerFailed(f"{_describe(rank, len(procs), procs[rank], code)}; stopped the other "
                               f"{len(procs) - 1} worker(s)")
        if all(c == 0 for c in codes):
            return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the {len(procs)} workers did not finish within {timeout_s:g} s; stopped them")
        time.sleep(0.05)
