"""QSGD as a PyTorch DistributedDataParallel communication hook.

Usage::

    from lowbit.qsgd.ddp import QSGDState, qsgd_hook
    state = QSGDState(s=7, bucket_size=512)
    ddp_model.register_comm_hook(state, qsgd_hook)

Every gradient bucket is averaged by :func:`lowbit.qsgd.exchange.average`: a reduce-scatter then
an all-gather of QSGD-coded chunks (:func:`lowbit.qsgd.codec.quantize`; ``format="dense"`` travels
as headerless dense frames of fixed length, ``"elias"`` as full messages after their lengths), so
the bytes a worker sends stay about twice its coded gradient whatever the number of workers (the
first version all-gathered whole messages: K - 1 of them per worker). Every worker decodes the
same bytes for the mean, so they apply the same update and the replicas stay identical. Optional
error feedback (off by default) adds the previous step's quantization error of this worker (its
gradient minus what it contributed) to its next gradient before quantizing; it is only accepted
when the quantizer contracts (variance bound < 1, e.g. s >= sqrt(bucket) for the 2-norm), because
otherwise the carried error grows step after step.

``state.bytes_sent`` counts the real bytes this worker sent (frames or messages, and 8-byte
length words for Elias); :func:`allreduce_hook` is the fp32 baseline, counted as a ring
all-reduce sends (``2 (K - 1) / K`` x 4 bytes per coordinate). Needs the ``distributed`` extra
(torch); tested with gloo on CPU.
"""

# No `from __future__ import annotations`: DDP checks the hooks' annotations as real objects.

import gc
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from .codec import FORMATS, NORMS, _check_params, variance_bound
from .exchange import ChunkCodec, average

__all__ = ["QSGDState", "qsgd_hook", "AllreduceState", "allreduce_hook", "end_worker", "gloo_worker"]


@dataclass
class QSGDState:
    """Configuration and counters of :func:`qsgd_hook` (one per worker).

    Parameters
    ----------
    s : int
        Quantization levels (``lowbit.qsgd.bits_to_levels(b)`` for ``b`` dense bits).
    bucket_size : int
        Coordinates per scale.
    norm : {"l2", "max"}
    format : {"dense", "elias"}
    error_feedback : bool
        Carry each worker's quantization error into its next gradient (off by default).
    seed : int
        Seed of the rounding randomness; each rank draws from ``(seed, rank)``.
    process_group : optional
        Defaults to the world group.
    """

    s: int
    bucket_size: int = 512
    norm: str = "l2"
    format: str = "dense"
    error_feedback: bool = False
    seed: int = 0
    process_group: object = None
    bytes_sent: int = 0
    messages: int = 0
    residuals: dict = field(default_factory=dict)
    _rng: object = field(default=None, repr=False)

    def __post_init__(self):
        _check_params(self.s, self.bucket_size, self.norm)
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        bound = variance_bound(self.bucket_size, self.s, self.norm)
        if self.error_feedback and bound >= 1:
            # The residual obeys E||e'||^2 <= bound * ||g + e||^2: unless bound < 1 it can grow
            # without limit (measured: s = 1 diverges within 40 steps).
            raise ValueError(
                f"error feedback needs a contracting quantizer, but the variance bound for "
                f"s={self.s}, bucket {self.bucket_size}, norm {self.norm} is {bound:.3g} >= 1: "
                f"raise s or shrink the bucket")

    def rng(self) -> np.random.Generator:
        if self._rng is None:
            rank = dist.get_rank(self.process_group) if dist.is_initialized() else 0
            self._rng = np.random.default_rng([self.seed, rank])
        return self._rng


def qsgd_hook(state: QSGDState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: average the bucket by a QSGD-coded reduce-scatter + all-gather."""
    tensor = bucket.buffer()
    grad = tensor.detach().to("cpu", torch.float32).numpy().copy()
    # DDP rebuilds its buckets after the first iteration: key residuals by index *and* size.
    key = (bucket.index(), grad.size)
    if state.error_feedback and key in state.residuals:
        grad += state.residuals[key]
    codec = ChunkCodec(s=state.s, bucket_size=state.bucket_size, norm=state.norm,
                       format="frame" if state.format == "dense" else state.format)
    try:
        ex = average(grad, codec, state.rng(), state.process_group)
    except ValueError as exc:
        # Raised inside DDP's reducer, the exception ends in std::terminate without its text:
        # say why (typically a NaN/inf gradient: a diverged run) before it does.
        print(f"lowbit.qsgd.ddp: bucket {key}: {exc}", file=sys.stderr, flush=True)
        raise
    if state.error_feedback:
        state.residuals[key] = grad - ex.contributed
    state.bytes_sent += ex.bytes_sent
    state.messages += 1
    tensor.copy_(torch.from_numpy(ex.mean).view(tensor.shape))
    fut = torch.futures.Future()
    fut.set_result(tensor)
    return fut


@dataclass
class AllreduceState:
    """Counters of the fp32 baseline :func:`allreduce_hook`."""

    process_group: object = None
    bytes_sent: int = 0
    messages: int = 0


def allreduce_hook(state: AllreduceState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """fp32 allreduce-and-average (what DDP does by default), counting what a ring all-reduce sends
    per worker: ``2 (K - 1) / K`` of the bucket (4 bytes per coordinate at K = 2)."""
    tensor = bucket.buffer()
    world = dist.get_world_size(state.process_group)
    state.bytes_sent += 2 * (world - 1) * tensor.numel() * tensor.element_size() // world
    state.messages += 1
    fut = dist.all_reduce(tensor, group=state.process_group, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0].div_(world))


@contextmanager
def gloo_worker(rank: int, world_size: int, port: int):
    """The life of one spawned data-parallel worker: join the gloo group at 127.0.0.1:``port``, run
    the ``with`` body, and leave. On success the worker leaves through :func:`end_worker` (the process
    ends there); on an exception it destroys the group and lets the exception go on to the parent.
    """
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size)
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    end_worker()


def end_worker(exitcode: int = 0) -> None:
    """Leave the gloo group together with the other workers and end this process, never returning.

    A spawned worker that simply returns runs the interpreter's finalization while gloo's C++
    threads may still hold futures with Python callbacks (DDP's reducer sits in reference cycles,
    so it is often freed only then). A thread that needs the GIL during finalization is ended by
    CPython with ``pthread_exit``; unwinding through gloo's ``noexcept`` frames then aborts the
    process ("terminate called without an active exception", SIGABRT), seen about once in tens of
    runs on a loaded machine. So: wait for every worker (no collective still in flight), free the
    DDP objects while the interpreter is whole, shut the group down, flush, and leave through
    ``os._exit`` without finalization. Call it last, after the results are sent to the parent
    (:func:`gloo_worker` does).
    """
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exitcode)

