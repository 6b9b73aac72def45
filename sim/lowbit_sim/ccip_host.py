"""The CCI-P host, simulator-agnostic: one protocol responder over a separate memory store.

:class:`CcipHost` is pure Python (no cocotb, no Amaranth): every bench wraps it in a thin adapter
that moves values between the DUT's ports and these calls, once per clock cycle,
``lowbit_sim.ccip_model.CcipHostModel`` for cocotb and :class:`lowbit_sim.ccip_amaranth.AmaranthHost`
for the Amaranth simulator. The C++ simulator server (``simserver/harness.cpp``) applies the same
rules (its constants are generated from the same Python definitions), and
``tests/test_ccip_agreement.py`` replays one request trace through both.

What it does, per cycle (the adapter first reports what the AFU presented, then calls :meth:`advance`):

* **c0 reads** of 1, 2 or 4 lines (``cl_len`` 0/1/3, address aligned to the length) are answered
  line by line, each line after its own random latency (default uniform 100..400 cycles), so lines
  of one request and of different requests come back in any order, one line per cycle.
* **c1 writes** (one line, ``sop`` 1) are acknowledged after a random latency; the line is stored
  in memory at the acknowledgement (an AFU that reports DONE before its last write response reads
  stale memory). A **write fence** (``req_type`` ``C1_REQ_WRFENCE``) is acknowledged one cycle after
  the last earlier write (and no sooner than the shortest write latency), and every later write
  lands after it: so a status record written behind a fence is never seen before the data.
* **Almost-full storms**: random bursts of each channel's almost-full (:class:`StormConfig`); the
  AFU may issue at most :data:`~lowbit.contract.ccip.ALMOST_FULL_SLACK` requests on a channel while its
  almost-full is up (counted against the level the AFU saw when it issued).
* **MMIO**: :meth:`mmio_write` / :meth:`mmio_read` queue requests that share c0_rx with read
  responses (one header per cycle, MMIO first); reads are matched by tid and expire after
  ``mmio_timeout`` cycles.

Protocol violations are collected in :attr:`errors` (or raised at once with ``strict=True``);
:meth:`check` raises them, then checks the memory. The memory is any store with
``read_line_int(line)`` and ``write_line_int(line, value)`` (and optionally ``check()``):
:class:`lowbit_sim.host_memory.HostMemory` (guarded buffers, stray accesses recorded) or
:class:`lowbit_sim.host_memory.PatternMemory` (every line readable, a deterministic pattern).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Callable, NamedTuple

from lowbit.contract.ccip import (ALMOST_FULL_SLACK, C1_REQ_WRFENCE, C1_REQ_WRLINE, CL_LEN_LINES, MMIO_SPAN,
                                  MMIO_TID_MASK)

MASK64 = (1 << 64) - 1


class ProtocolError(AssertionError):
    """The AFU broke a CCI-P rule (raised by :meth:`CcipHost.check`, or at once when strict)."""


class MmioTimeout(AssertionError):
    """An MMIO read was not answered within the host's ``mmio_timeout`` cycles."""


@dataclass
class StormConfig:
    """Almost-full storms on one channel: each cycle a storm starts with probability ``rate``
    and lasts a uniformly random ``min_len..max_len`` cycles."""

    rate: float = 0.005
    min_len: int = 1
    max_len: int = 150

    def __post_init__(self):
        if not 0 < self.rate <= 1 or not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"a storm needs 0 < rate <= 1 and 1 <= min_len <= max_len, got {self}")


class Request(NamedTuple):
    """One request the AFU issued, as logged with ``log=True``."""

    cycle: int
    kind: str  # "read", "write" or "fence"
    line: int
    lines: int
    mdata: int
    data: int | None = None


class ReadLine(NamedTuple):
    """One read response line: the request's tag, the line's index within it, its data."""

    mdata: int
    cl_num: int
    data: int


class MmioAccess(NamedTuple):
    """An MMIO request on c0_rx this cycle: ``kind`` "w" (``value`` is the data) or "r" (``tid``)."""

    kind: str
    address: int  # byte address
    value: int = 0
    tid: int = 0
    length: int = 8  # bytes: 8, or 4 (CCI-P's mmio_length 1 or 0)

    @property
    def mmio_length(self) -> int:
        return 1 if self.length == 8 else 0


class Outputs(NamedTuple):
    """What the host drives towards the AFU in one cycle (None: nothing on that channel)."""

    almfull: tuple[int, int]
    read: ReadLine | None
    mmio: MmioAccess | None
    write_ack: int | None  # mdata of the acknowledged write


class MmioRead:
    """A pending MMIO read: ``value`` once answered; ``on_done`` is called when it is answered or expires."""

    __slots__ = ("address", "tid", "deadline", "sent", "answered", "value", "done", "on_done")

    def __init__(self, address: int, tid: int, on_done: Callable[[], None] | None = None):
        self.address, self.tid, self.on_done = address, tid, on_done
        self.deadline = self.sent = self.answered = None  # set when the request goes out on c0_rx / is answered
        self.value = None
        self.done = False

    @property
    def latency(self) -> int | None:
        """Cycles from the request to its answer (1: the AFU answered in the next cycle)."""
        return None if self.answered is None else self.answered - self.sent + 1

    def _finish(self, value, cycle=None):
        self.value, self.done, self.answered = value, True, cycle
        if self.on_done is not None:
            self.on_done()


class CcipHost:
    """The host side of CCI-P over a memory store (see the module docstring).

    Parameters
    ----------
    memory : store
        ``read_line_int(line) -> int`` and ``write_line_int(line, value)``.
    seed : int
        Seeds latencies, reordering and storms (a run is reproducible from it).
    read_latency, write_latency : (int, int)
        Inclusive cycle range of each line's response latency.
    c0_storms, c1_storms : StormConfig or None
        Almost-full storms; None keeps that almost-full low (unless set with :meth:`set_almfull`).
    mmio_timeout : int
        Cycles an MMIO read may take.
    strict : bool
        Raise :class:`ProtocolError` at the first violation instead of collecting it.
    log : bool
        Keep every request in :attr:`requests` (as :class:`Request`).
    """

    def __init__(self, memory, *, seed: int = 0, read_latency=(100, 400), write_latency=(100, 400),
                 c0_storms: StormConfig | None = None, c1_storms: StormConfig | None = None,
                 mmio_timeout: int = 2000, strict: bool = False, log: bool = False):
        for name, (lo, hi) in (("read_latency", read_latency), ("write_latency", write_latency)):
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 1 <= lo <= hi, got {(lo, hi)!r}")
        if mmio_timeout < 1:
            raise ValueError(f"mmio_timeout must be >= 1 cycle, got {mmio_timeout!r}")
        self.memory = memory
        self.rng = random.Random(seed)
        self.read_latency, self.write_latency = tuple(read_latency), tuple(write_latency)
        self.storms = (c0_storms, c1_storms)
        self.mmio_timeout = mmio_timeout
        self.strict = strict
        self.requests: list[Request] | None = [] if log else None
        self.cycle = 0
        self.errors: list[str] = []
        # Pending responses: (due cycle, random tiebreak, ...) -- the tiebreak reorders lines due together.
        self._reads: list = []
        self._writes: list = []
        self._write_horizon = 0  # the latest due cycle of any write so far
        self._fence_due = 0      # the due cycle of the latest fence: later writes land after it
        self._mmio_queue: list = []  # (MmioAccess, the MmioRead of a read or the on_sent of a write)
        self._mmio_pending: dict[int, MmioRead] = {}
        self._next_tid = 0
        self._storm_channels = [ch for ch in (0, 1) if self.storms[ch] is not None]
        self._storm_edge = [1 + int(self.rng.expovariate(st.rate)) if st else 0 for st in self.storms]
        self.almfull = [0, 0]
        self._after_almfull = [0, 0]
        # Statistics
        self.read_requests = 0
        self.read_lines = 0
        self.write_lines = 0
        self.write_fences = 0
        self.read_responses = 0
        self.write_responses = 0
        self.max_lines_in_flight = 0
        self.almfull_cycles = [0, 0]
        self.max_after_almfull = [0, 0]

    # ---------------------------------------------------------------- state
    @property
    def lines_in_flight(self) -> int:
        return len(self._reads)

    @property
    def writes_in_flight(self) -> int:
        return len(self._writes)

    def pending_read_tags(self) -> list[int]:
        """``mdata`` of every read line not yet answered (one entry a line)."""
        return [r[2] for r in self._reads]

    @property
    def idle(self) -> bool:
        """No read, write or MMIO response outstanding."""
        return not (self._reads or self._writes or self._mmio_queue or self._mmio_pending)

    def error(self, message: str) -> None:
        message = f"cycle {self.cycle}: {message}"
        if self.strict:
            raise ProtocolError(message)
        self.errors.append(message)

    def check(self) -> None:
        """Raise :class:`ProtocolError` with every rule the AFU broke, then check the memory."""
        if self.errors:
            more = f"\n... and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""
            raise ProtocolError("\n".join(self.errors[:10]) + more)
        check = getattr(self.memory, "check", None)
        if check is not None:
            check()

    # ---------------------------------------------------------------- MMIO
    @staticmethod
    def check_mmio_address(address: int, length: int = 8) -> None:
        if length not in (4, 8) or address % length or not 0 <= address < MMIO_SPAN:
            raise ValueError(f"an MMIO access is 4 or 8 bytes, aligned to its size, below 0x{MMIO_SPAN:x}; "
                             f"got {length} bytes at 0x{address:x}")

    def mmio_write(self, address: int, value: int, on_sent: Callable[[], None] | None = None, *,
                   length: int = 8) -> None:
        """Queue an MMIO write (64-bit, or 32-bit with ``length=4``) to byte ``address``;
        ``on_sent`` is called when it goes on c0_rx."""
        self.check_mmio_address(address, length)
        self._mmio_queue.append((MmioAccess("w", address, int(value) & MASK64, length=length), on_sent))

    def mmio_read(self, address: int, on_done: Callable[[], None] | None = None, *, length: int = 8) -> MmioRead:
        """Queue an MMIO read of byte ``address``; the returned :class:`MmioRead` gets its value
        when the AFU answers with its tid (``value`` stays None if it expires)."""
        self.check_mmio_address(address, length)
        tid = self._next_tid
        if tid in self._mmio_pending:
            raise ProtocolError(f"{MMIO_TID_MASK + 1} MMIO reads outstanding: tid {tid} still unanswered")
        self._next_tid = (tid + 1) & MMIO_TID_MASK
        read = MmioRead(address, tid, on_done)
        self._mmio_pending[tid] = read
        self._mmio_queue.append((MmioAccess("r", address, tid=tid, length=length), read))
        return read

    @property
    def mmio_busy(self) -> bool:
        return bool(self._mmio_queue)

    # ---------------------------------------------------------------- what the AFU presented this cycle
    def _within_slack(self, ch: int, what: str) -> bool:
        """Count a request against the almost-full slack; False for a request beyond it (the
        first of a storm is reported)."""
        if not self.almfull[ch]:
            return True
        n = self._after_almfull[ch] = self._after_almfull[ch] + 1
        self.max_after_almfull[ch] = max(self.max_after_almfull[ch], n)
        if n == ALMOST_FULL_SLACK + 1:
            self.error(f"more than {ALMOST_FULL_SLACK} {what} requests after c{ch}_tx_almfull rose")
        return n <= ALMOST_FULL_SLACK

    def _stray(self, line: int, n: int) -> bool:
        """Whether the memory store refuses ``n`` lines at ``line`` (a store without ``inside``
        accepts every line)."""
        inside = getattr(self.memory, "inside", None)
        return inside is not None and not inside(line, n)

    def read_request(self, cl_len: int, line: int, mdata: int) -> bool:
        """A c0_tx read request; returns whether it was legal (protocol and memory)."""
        legal = self._within_slack(0, "read")
        n = CL_LEN_LINES.get(cl_len)
        if n is None:
            self.error(f"read with reserved cl_len {cl_len} at line 0x{line:x}")
            return False
        if line % n:
            self.error(f"{n}-line read at line 0x{line:x} is not aligned to {n} lines")
            legal = False
        legal &= not self._stray(line, n)
        if self.requests is not None:
            self.requests.append(Request(self.cycle, "read", line, n, mdata))
        self.read_requests += 1
        self.read_lines += n
        lo, hi = self.read_latency
        rng = self.rng
        for k in range(n):  # each line its own latency: lines of one request come back in any order too
            heapq.heappush(self._reads, (self.cycle + rng.randint(lo, hi), rng.random(), mdata, k,
                                         self.memory.read_line_int(line + k)))
        if len(self._reads) > self.max_lines_in_flight:
            self.max_lines_in_flight = len(self._reads)
        return legal

    def write_request(self, sop: int, cl_len: int, line: int, mdata: int, data: int,
                      req_type: int = C1_REQ_WRLINE) -> bool:
        """A c1_tx write request (or fence); returns whether it was legal (protocol and memory)."""
        legal = self._within_slack(1, "write")
        if req_type == C1_REQ_WRFENCE:
            due = max(self._write_horizon, self.cycle + self.write_latency[0] - 1) + 1
            self._fence_due = self._write_horizon = due
            if self.requests is not None:
                self.requests.append(Request(self.cycle, "fence", 0, 0, mdata))
            self.write_fences += 1
            heapq.heappush(self._writes, (due, self.rng.random(), mdata, None, None))
            return legal
        if req_type != C1_REQ_WRLINE:
            self.error(f"c1 request with req_type {req_type} (only line writes and fences are used)")
            return False
        if cl_len != 0 or sop != 1:
            self.error(f"write at line 0x{line:x} with cl_len {cl_len}, sop {sop} "
                       "(only single-line writes with sop 1 are used)")
            legal = False
        legal &= not self._stray(line, 1)
        if self.requests is not None:
            self.requests.append(Request(self.cycle, "write", line, 1, mdata, data))
        self.write_lines += 1
        lo, hi = self.write_latency
        due = max(self.cycle + self.rng.randint(lo, hi), self._fence_due + 1)
        self._write_horizon = max(self._write_horizon, due)
        heapq.heappush(self._writes, (due, self.rng.random(), mdata, line, data))
        return legal

    def mmio_response(self, tid: int, value: int) -> bool:
        """A c2_tx MMIO read response; returns whether a read on the bus had its tid."""
        read = self._mmio_pending.get(tid)
        if read is None or read.deadline is None:  # none pending, or not even on the bus yet
            self.error(f"MMIO read response with tid {tid} that no pending read has")
            return False
        del self._mmio_pending[tid]
        read._finish(value, self.cycle)
        return True

    # ---------------------------------------------------------------- the host's side of this cycle
    def set_almfull(self, ch: int, level: int) -> None:
        """Drive channel ``ch``'s almost-full from outside (a trace, a capacity model)."""
        level = int(bool(level))
        if level != self.almfull[ch]:
            self.almfull[ch] = level
            self._after_almfull[ch] = 0

    def advance(self) -> Outputs:
        """End the cycle: expire MMIO reads, move the storms, and pick what the host drives in the
        next cycle (an MMIO request, else the earliest due read line; the earliest due write ack)."""
        self.cycle = now = self.cycle + 1
        if self._mmio_pending:
            for tid, read in list(self._mmio_pending.items()):
                if read.deadline is not None and now > read.deadline:
                    self.error(f"MMIO read of 0x{read.address:x} (tid {tid}) never answered")
                    del self._mmio_pending[tid]
                    read._finish(None)
        # Storm edges are drawn ahead (geometric gaps), so a quiet cycle costs one comparison.
        rng = self.rng
        for ch in self._storm_channels:
            if now >= self._storm_edge[ch]:
                storm = self.storms[ch]
                want = 1 - self.almfull[ch]
                self._storm_edge[ch] = now + (rng.randint(storm.min_len, storm.max_len) if want
                                              else 1 + int(rng.expovariate(storm.rate)))
                self.set_almfull(ch, want)
                if want:
                    self.almfull_cycles[ch] += self._storm_edge[ch] - now
        read = mmio = ack = None
        if self._mmio_queue:
            mmio, pending = self._mmio_queue.pop(0)
            if isinstance(pending, MmioRead):
                pending.sent, pending.deadline = now, now + self.mmio_timeout
            elif pending is not None:
                pending()
        elif self._reads and self._reads[0][0] <= now:
            _, _, mdata, cl_num, data = heapq.heappop(self._reads)
            read = ReadLine(mdata, cl_num, data)
            self.read_responses += 1
        if self._writes and self._writes[0][0] <= now:
            _, _, mdata, line, data = heapq.heappop(self._writes)
            if line is not None:  # None: a fence
                self.memory.write_line_int(line, data)
            ack = mdata
            self.write_responses += 1
        return Outputs((self.almfull[0], self.almfull[1]), read, mmio, ack)
