"""Averaging a vector over torch.distributed workers: a reduce-scatter, then an all-gather.

Every worker holds a vector ``v`` of the same length ``n``; :func:`average` returns the same mean
on every worker. The vector is cut into ``K`` chunks (sizes differ by at most one), chunk ``j``
owned by worker ``j``:

1. **reduce-scatter**: each worker encodes its chunk ``j`` for every other worker ``j`` and sends it
   there (one ``all_to_all``); the owner decodes the ``K - 1`` chunks it receives, adds its own
   exact chunk, in rank order, and divides by ``K``;
2. **all-gather**: each owner encodes its mean chunk once and every worker receives every owner's
   (one ``all_gather``); every worker, the owner too, decodes the same bytes, so all replicas hold
   bit-identical means.

A worker so sends ``K - 1`` chunks of ``n / K`` values in each phase (gloo's all-gather is a ring:
each worker forwards ``K - 1`` chunks), ``2 (K - 1) / K`` of the vector in all: the bytes per worker
do not grow with ``K``, unlike an all-gather of whole vectors (``K - 1`` vectors per worker).

How a chunk travels is a :class:`ChunkCodec`: float32 (``"fp32"``) or QSGD (:mod:`.codec`), as a
headerless dense frame (fixed length: no length words) or as a full ``dense``/``elias`` message
(variable length: the lengths go first, 8 bytes each). Messages of one collective are padded to
the longest (gloo moves equal sizes); ``bytes_sent`` counts real lengths and length words only.
The rounding randomness comes from the caller's Generator, so a run is deterministic from its seeds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from .codec import FORMATS, bits_to_levels, decode, decode_frame, encode, encode_frame, frame_bytes, quantize

__all__ = ["ChunkCodec", "EXCHANGES", "Exchanged", "average", "chunk_bounds", "fixed_bytes_sent"]


@dataclass(frozen=True)
class ChunkCodec:
    """How a chunk of float32 values is put on the wire.

    Parameters
    ----------
    s : int
        QSGD levels; 0 sends raw float32.
    bucket_size, norm :
        QSGD bucket and scale (:func:`lowbit.qsgd.codec.quantize`).
    format : {"frame", "dense", "elias"}
        ``frame``: scales + dense codes, fixed length; ``dense``/``elias``: a full QSGD message.
    """

    s: int = 0
    bucket_size: int = 128
    norm: str = "max"
    format: str = "frame"

    def __post_init__(self):
        if self.format not in ("frame", *FORMATS):
            raise ValueError(f"format must be 'frame', 'dense' or 'elias', got {self.format!r}")

    def length(self, n: int) -> int | None:
        """Bytes of an encoded chunk of ``n`` values if fixed, else None (lengths are exchanged)."""
        if n == 0 or self.s == 0:
            return 4 * n
        return frame_bytes(n, self.s, self.bucket_size) if self.format == "frame" else None

    def encode(self, chunk: np.ndarray, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
        """``(bytes, the float32 values they stand for)``."""
        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
        if self.s == 0 or chunk.size == 0:
            return chunk.tobytes(), chunk
        q = quantize(chunk, self.s, self.bucket_size, self.norm, rng)
        data = encode_frame(q) if self.format == "frame" else encode(q, self.format)
        return data, q.dequantize()

    def decode(self, data: bytes, n: int) -> np.ndarray:
        if self.s == 0 or n == 0:
            return np.frombuffer(bytes(data), dtype=np.float32, count=n).copy()
        if self.format == "frame":
            return decode_frame(data, n, self.s, self.bucket_size, self.norm).dequantize()
        return decode(bytes(data)).dequantize()


#: ``--exchange`` choices: QSGD 8 and 4 dense bits per value with a max-norm scale per 128 values
#: (4.25 bits per value at qsgd4: 7.5x fewer bytes than float32).
EXCHANGES: dict[str, ChunkCodec] = {
    "fp32": ChunkCodec(),
    "qsgd8": ChunkCodec(s=bits_to_levels(8)),
    "qsgd4": ChunkCodec(s=bits_to_levels(4)),
}


@dataclass
class Exchanged:
    """What :func:`average` returned and cost this worker.

    Attributes
    ----------
    mean : ndarray float32
        The mean, identical on every worker.
    contributed : ndarray float32
        What this worker's vector stood for in the mean (its own chunk exact, the others as
        encoded): ``v - contributed`` is its quantization error (for error feedback).
    bytes_sent : int
        Real bytes this worker sent (messages + length words; no padding).
    wall_s : float
        Wall time of the exchange on this worker.
    """

    mean: np.ndarray
    contributed: np.ndarray
    bytes_sent: int
    wall_s: float


def chunk_bounds(n: int, world: int) -> np.ndarray:
    """``world + 1`` boundaries of the chunks (sizes differ by at most one; worker ``j`` owns ``j``)."""
    return (np.arange(world + 1, dtype=np.int64) * n) // world


def fixed_bytes_sent(n: int, world: int, rank: int, codec: ChunkCodec) -> int:
    """Bytes :func:`average` sends from ``rank`` for ``n`` values with a fixed-length codec:
    the ``K - 1`` chunks of the others, then (ring all-gather) every mean chunk but the next
    worker's. About ``2 (K - 1) / K`` of the coded vector: bounded by twice it for every ``K``."""
    if world == 1:
        return 0
    sizes = np.diff(chunk_bounds(n, world))
    lens = np.array([codec.length(int(k)) for k in sizes])
    return int(lens.sum() - lens[rank]) + int(lens.sum() - lens[(rank + 1) % world])


def _lengths(mine: list[int], group, world: int) -> np.ndarray:
    """All workers' message lengths, ``(world, len(mine))``: one all-gather of int64 words."""
    t = torch.tensor(mine, dtype=torch.int64)
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t, group=group)
    return torch.stack(out).numpy()


def _pad(messages: list[bytes], width: int) -> torch.Tensor:
    buf = np.zeros((len(messages), width), dtype=np.uint8)
    for i, m in enumerate(messages):  # K messages: a loop over workers, not over data
        buf[i, : len(m)] = np.frombuffer(m, dtype=np.uint8)
    return torch.from_numpy(buf.reshape(-1))


def average(v: np.ndarray, codec: ChunkCodec, rng: np.random.Generator, group=None) -> Exchanged:
    """The mean of ``v`` over the workers of ``group`` (the world by default); see the module docstring."""
    t0 = time.perf_counter()
    v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if world == 1:
        return Exchanged(v.copy(), v.copy(), 0, time.perf_counter() - t0)
    bounds = chunk_bounds(v.size, world)
    sizes = np.diff(bounds)
    chunk = [v[bounds[j] : bounds[j + 1]] for j in range(world)]
    fixed = codec.length(int(sizes.max())) is not None and codec.length(int(sizes.min())) is not None
    sent = 0

    # 1. reduce-scatter: chunk j to worker j (own chunk exact), mean of my chunk.
    msgs, contributed = [], []
    for j in range(world):
        if j == rank:
            msgs.append(b"")
            contributed.append(chunk[j])
        else:
            m, c = codec.encode(chunk[j], rng)
            msgs.append(m)
            contributed.append(c)
    if fixed:
        lens = np.array([[codec.length(int(sizes[j])) if j != i else 0 for j in range(world)] for i in range(world)])
    else:
        lens = _lengths([len(m) for m in msgs], group, world)
        sent += 8 * (world - 1)
    width = int(lens.max())
    recv = torch.empty(world * width, dtype=torch.uint8)
    dist.all_to_all_single(recv, _pad(msgs, width), group=group)
    recv = recv.numpy().reshape(world, width)
    sent += sum(len(m) for m in msgs)
    total = np.zeros(int(sizes[rank]), dtype=np.float64)
    for i in range(world):  # rank order: every owner sums the same way
        part = chunk[rank] if i == rank else codec.decode(recv[i, : lens[i, rank]].tobytes(), int(sizes[rank]))
        total += part
    mine = (total / world).astype(np.float32)

    # 2. all-gather: every owner's mean chunk, decoded by everyone (the owner too).
    msg, _ = codec.encode(mine, rng)
    if fixed:
        glens = np.array([codec.length(int(sizes[j])) for j in range(world)])
    else:
        glens = _lengths([len(msg)], group, world)[:, 0]
        sent += 8 * (world - 1)
    width = int(glens.max())
    out = [torch.empty(width, dtype=torch.uint8) for _ in range(world)]
    dist.all_gather(out, _pad([msg], width), group=group)
    sent += int(glens.sum() - glens[(rank + 1) % world])  # a ring: all chunks but the next worker's pass here
    mean = np.concatenate([codec.decode(out[j].numpy()[: glens[j]].tobytes(), int(sizes[j])) for j in range(world)])
    return Exchanged(mean, np.concatenate(contributed), sent, time.perf_counter() - t0)
