"""A CCI-P host as a cocotb 2 bus model: read/write responder over a :class:`HostMemory`, MMIO.

:class:`CcipHostModel` drives the host side of a top with ``ccip: Out(CcipSignature(W))`` (Verilog
ports ``ccip__c0_tx__valid``, ``ccip__c0_rx__data``, ...; see ``lowbit_hw.ccip``):

* **c0 reads** of 1, 2 or 4 lines (``cl_len`` 0/1/3, address aligned to the length) are answered
  line by line, each line after its own random latency (default uniform 100..400 cycles), so lines
  of one request and of different requests come back in any order, one line per cycle on c0_rx.
* **c1 writes** (one line, ``sop`` 1) are acknowledged on c1_rx after a random latency; the line
  is stored in memory at the acknowledgement.
* **Almost-full storms**: random bursts of ``c0_tx_almfull`` / ``c1_tx_almfull``; a checker records
  an error when the AFU issues more than :data:`~lowbit.contract.ccip.ALMOST_FULL_SLACK` requests on a
  channel while its almost-full is up.
* **MMIO**: :meth:`mmio_write64` and :meth:`mmio_read64` (the answer is matched by ``tid``; no
  answer within ``mmio_timeout`` cycles raises :class:`MmioTimeout`, never hangs). MMIO requests
  share c0_rx with read responses (as on CCI-P, one header per cycle) and go first.

Protocol violations (bad ``cl_len``, misaligned multi-line reads, multi-line or non-SOP writes,
unexpected MMIO read responses, almost-full overruns) and stray addresses (recorded by the memory)
are collected, not raised inside the clock loop; :meth:`check` raises them at the end of a test.

Timing: the model samples the AFU's outputs and drives its inputs at the *falling* clock edge, so
inputs are stable around the rising edge at which the AFU registers them and every sampled value is
the one the AFU presented for the whole cycle. The one coroutine does per cycle: read three valid
bits, compare the next due cycle of two heaps, write a port only when its value changes.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import cocotb
from cocotb.triggers import Event

from lowbit.contract.ccip import ALMOST_FULL_SLACK, MMIO_TIDS

from .host_memory import HostMemory

#: cl_len -> lines of a request.
CL_LEN_LINES = {0: 1, 1: 2, 3: 4}


class MmioTimeout(AssertionError):
    """An MMIO read was not answered within the model's ``mmio_timeout`` cycles."""


class ProtocolError(AssertionError):
    """Raised by :meth:`CcipHostModel.check` when the AFU broke a CCI-P rule."""


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


class CcipHostModel:
    """The host side of CCI-P over a :class:`HostMemory`.

    Parameters
    ----------
    dut : cocotb handle
        The top; its ports are looked up as ``{prefix}c0_tx__valid`` etc.
    clk : cocotb handle
        The clock the AFU runs on (started by the caller).
    memory : HostMemory
    seed : int
        Seeds latencies, reordering and storms (a run is reproducible from it).
    read_latency, write_latency : (int, int)
        Inclusive cycle range of each line's response latency.
    c0_storms, c1_storms : StormConfig or None
        Almost-full storms; None keeps that almost-full low.
    mmio_timeout : int
        Cycles an MMIO read may take.
    prefix : str
        Port name prefix.
    """

    def __init__(self, dut, clk, memory: HostMemory, *, seed: int = 0, read_latency=(100, 400),
                 write_latency=(100, 400), c0_storms: StormConfig | None = None,
                 c1_storms: StormConfig | None = None, mmio_timeout: int = 2000, prefix: str = "ccip__"):
        for name, (lo, hi) in (("read_latency", read_latency), ("write_latency", write_latency)):
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 1 <= lo <= hi, got {(lo, hi)!r}")
        if mmio_timeout < 1:
            raise ValueError(f"mmio_timeout must be >= 1 cycle, got {mmio_timeout!r}")
        self.dut, self.clk, self.memory = dut, clk, memory
        self.rng = random.Random(seed)
        self.read_latency, self.write_latency = tuple(read_latency), tuple(write_latency)
        self.storms = (c0_storms, c1_storms)
        self.mmio_timeout = mmio_timeout
        p = lambda n: getattr(dut, prefix + n)  # noqa: E731
        # AFU -> host
        self._c0tx = (p("c0_tx__valid"), p("c0_tx__cl_len"), p("c0_tx__address"), p("c0_tx__mdata"))
        self._c1tx = (p("c1_tx__valid"), p("c1_tx__sop"), p("c1_tx__cl_len"), p("c1_tx__address"),
                      p("c1_tx__mdata"), p("c1_tx__data"))
        self._c2tx = (p("c2_tx__mmio_rd_valid"), p("c2_tx__tid"), p("c2_tx__data"))
        # host -> AFU
        self._rx0 = {n: p("c0_rx__" + n) for n in ("rsp_valid", "mdata", "cl_num", "data", "mmio_wr_valid",
                                                  "mmio_rd_valid", "mmio_address", "mmio_length", "mmio_tid")}
        self._rx1 = (p("c1_rx__rsp_valid"), p("c1_rx__mdata"))
        self._almfull = (p("c0_tx_almfull"), p("c1_tx_almfull"))
        self.cycle = 0
        self.errors: list[str] = []
        # Pending responses: (due cycle, random tiebreak, payload) -- the tiebreak reorders lines due together.
        self._reads: list = []
        self._writes: list = []
        self._mmio_queue: list = []  # (kind, byte address, value / tid)
        self._mmio_pending: dict[int, list] = {}  # tid -> [deadline, Event, value]
        self._next_tid = 0
        self._storm_channels = [ch for ch in (0, 1) if self.storms[ch] is not None]
        self._storm_edge = [1 + int(self.rng.expovariate(st.rate)) if st else 0 for st in self.storms]
        self._almfull_now = [0, 0]
        self._after_almfull = [0, 0]
        # Statistics
        self.read_requests = 0
        self.read_lines = 0
        self.write_lines = 0
        self.max_lines_in_flight = 0
        self.almfull_cycles = [0, 0]
        self._task = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Drive all host inputs to idle and start the clock loop (call once, with the clock running)."""
        for h in list(self._rx0.values()) + list(self._rx1) + list(self._almfull):
            h.value = 0
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def lines_in_flight(self) -> int:
        return len(self._reads)

    @property
    def idle(self) -> bool:
        """No read, write or MMIO response outstanding."""
        return not (self._reads or self._writes or self._mmio_queue or self._mmio_pending)

    def check(self) -> None:
        """Raise :class:`ProtocolError` with every rule the AFU broke, then check the memory."""
        if self.errors:
            more = f"\n... and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""
            raise ProtocolError("\n".join(self.errors[:10]) + more)
        self.memory.check()

    # ---------------------------------------------------------------- MMIO helpers
    async def mmio_write64(self, address: int, value: int) -> None:
        """A 64-bit MMIO write to byte ``address``; returns once it is on the bus."""
        self._check_mmio_address(address)
        done = Event()
        self._mmio_queue.append(("w", address, int(value) & ((1 << 64) - 1), done))
        await done.wait()

    async def mmio_read64(self, address: int) -> int:
        """A 64-bit MMIO read of byte ``address``; the answer is matched by tid.

        Raises
        ------
        MmioTimeout
            No answer within ``mmio_timeout`` cycles of the request.
        """
        self._check_mmio_address(address)
        tid = self._next_tid
        self._next_tid = (tid + 1) % MMIO_TIDS
        if tid in self._mmio_pending:
            raise ProtocolError(f"512 MMIO reads outstanding: tid {tid} still unanswered")
        done = Event()
        entry = [None, done, None, address]
        self._mmio_pending[tid] = entry
        self._mmio_queue.append(("r", address, tid, None))
        await done.wait()
        if entry[2] is None:
            raise MmioTimeout(f"MMIO read of 0x{address:x} (tid {tid}) not answered within "
                              f"{self.mmio_timeout} cycles")
        return entry[2]

    @staticmethod
    def _check_mmio_address(address):
        if address % 8 or not 0 <= address < (1 << 18):
            raise ValueError(f"MMIO address must be 8-byte aligned and < 2^18, got 0x{address:x}")

    # ---------------------------------------------------------------- the clock loop
    async def _run(self):
        rng = self.rng
        mem = self.memory
        c0v, c0len, c0addr, c0md = self._c0tx
        c1v, c1sop, c1len, c1addr, c1md, c1data = self._c1tx
        c2v, c2tid, c2data = self._c2tx
        rx0 = self._rx0
        rx1v, rx1md = self._rx1
        reads, writes = self._reads, self._writes
        rlo, rhi = self.read_latency
        wlo, whi = self.write_latency
        driven_rsp = driven_wr = driven_rd = driven_w1 = 0
        falling = self.clk.falling_edge
        while True:
            await falling
            self.cycle = now = self.cycle + 1
            # ---- sample what the AFU presented this cycle
            if c0v.value:
                self._on_read(now, c0len.value.to_unsigned(), c0addr.value.to_unsigned(),
                              c0md.value.to_unsigned(), rng, rlo, rhi)
            if c1v.value:
                self._on_write(now, int(c1sop.value), c1len.value.to_unsigned(), c1addr.value.to_unsigned(),
                               c1md.value.to_unsigned(),
                               c1data.value.to_unsigned(), rng, wlo, whi)
            if c2v.value:
                self._on_mmio_response(c2tid.value.to_unsigned(), c2data.value.to_unsigned())
            if self._mmio_pending:
                self._expire_mmio(now)
            # ---- almost-full storms, and the checker for the slack rule (counted against the value the
            # AFU saw when it issued: the one driven at the previous falling edge)
            # Storm edges are drawn ahead (geometric gaps), so a quiet cycle costs one comparison.
            for ch in self._storm_channels:
                if now >= self._storm_edge[ch]:
                    storm = self.storms[ch]
                    want = 1 - self._almfull_now[ch]
                    self._storm_edge[ch] = now + (rng.randint(storm.min_len, storm.max_len) if want
                                                  else 1 + int(rng.expovariate(storm.rate)))
                    self._almfull[ch].value = want
                    self._almfull_now[ch] = want
                    self._after_almfull[ch] = 0
                    if want:
                        self.almfull_cycles[ch] += self._storm_edge[ch] - now
            # ---- c0_rx: an MMIO request first, else the earliest due read line
            rsp = wr = rd = 0
            if self._mmio_queue:
                kind, address, arg, done = self._mmio_queue.pop(0)
                rx0["mmio_address"].value = address >> 2
                rx0["mmio_length"].value = 1
                if kind == "w":
                    rx0["data"].value = arg
                    wr = 1
                    done.set()
                else:
                    rx0["mmio_tid"].value = arg
                    self._mmio_pending[arg][0] = now + self.mmio_timeout
                    rd = 1
            elif reads and reads[0][0] <= now:
                _, _, mdata, cl_num, data = heapq.heappop(reads)
                rx0["mdata"].value = mdata
                rx0["cl_num"].value = cl_num
                rx0["data"].value = data
                rsp = 1
            if rsp != driven_rsp:
                rx0["rsp_valid"].value = driven_rsp = rsp
            if wr != driven_wr:
                rx0["mmio_wr_valid"].value = driven_wr = wr
            if rd != driven_rd:
                rx0["mmio_rd_valid"].value = driven_rd = rd
            # ---- c1_rx: the earliest due write response
            w1 = 0
            if writes and writes[0][0] <= now:
                _, _, mdata, line, data = heapq.heappop(writes)
                mem.write_line_int(line, data)
                rx1md.value = mdata
                w1 = 1
            if w1 != driven_w1:
                rx1v.value = driven_w1 = w1

    def _count_after_almfull(self, ch, what):
        if self._almfull_now[ch]:
            self._after_almfull[ch] += 1
            if self._after_almfull[ch] == ALMOST_FULL_SLACK + 1:
                self.errors.append(f"cycle {self.cycle}: more than {ALMOST_FULL_SLACK} {what} requests "
                                   f"after c{ch}_tx_almfull rose")

    def _on_read(self, now, cl_len, line, mdata, rng, lo, hi):
        self._count_after_almfull(0, "read")
        n = CL_LEN_LINES.get(cl_len)
        if n is None:
            self.errors.append(f"cycle {now}: read with reserved cl_len {cl_len} at line 0x{line:x}")
            return
        if line % n:
            self.errors.append(f"cycle {now}: {n}-line read at line 0x{line:x} is not aligned to {n} lines")
        self.read_requests += 1
        self.read_lines += n
        for k in range(n):  # each line its own latency: lines of one request come back in any order too
            heapq.heappush(self._reads, (now + rng.randint(lo, hi), rng.random(), mdata, k,
                                         self.memory.read_line_int(line + k)))
        if len(self._reads) > self.max_lines_in_flight:
            self.max_lines_in_flight = len(self._reads)

    def _on_write(self, now, sop, cl_len, line, mdata, data, rng, lo, hi):
        self._count_after_almfull(1, "write")
        if cl_len != 0 or sop != 1:
            self.errors.append(f"cycle {now}: write at line 0x{line:x} with cl_len {cl_len}, sop {sop} "
                               "(only single-line writes with sop 1 are used)")
        self.write_lines += 1
        # The line becomes visible when it is acknowledged (as the simserver harness does): an AFU
        # that reports DONE before its last write response would be caught reading stale memory.
        heapq.heappush(self._writes, (now + rng.randint(lo, hi), rng.random(), mdata, line, data))

    def _on_mmio_response(self, tid, value):
        entry = self._mmio_pending.pop(tid, None)
        if entry is None or entry[0] is None:
            self.errors.append(f"cycle {self.cycle}: MMIO read response with tid {tid} that no pending read has")
            if entry is not None:  # answered before it was even on the bus: keep waiting for the real one
                self._mmio_pending[tid] = entry
            return
        entry[2] = value
        entry[1].set()

    def _expire_mmio(self, now):
        for tid, entry in list(self._mmio_pending.items()):
            if entry[0] is not None and now > entry[0]:
                self.errors.append(f"cycle {now}: MMIO read of 0x{entry[3]:x} (tid {tid}) never answered")
                del self._mmio_pending[tid]
                entry[1].set()
