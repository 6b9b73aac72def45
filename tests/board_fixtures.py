"""Board test fixtures: the board design minus UART and PLL, and a SIMULATED board that speaks the
serial byte protocol, so the host's serial backend drives it exactly as it would the real port."""

import collections
import threading

from amaranth.sim import Simulator

from lowbit_hw.board.bridge import BridgedAFU


#: The board design minus UART and PLL (the UART is tested on its own).
Board = BridgedAFU


class SimulatedBoard:
    """A serial transport (``write``, ``read``, ``close``) whose far end is :class:`Board` in
    Amaranth's simulator, running in a thread: one byte per cycle each way (below the UART)."""

    def __init__(self, *, line_bits=64, lanes=2, max_features=64, read_depth=16):
        self.dut = Board(line_bits=line_bits, rx_timeout=4096, lanes=lanes, max_features=max_features,
                         read_depth=read_depth)
        self._to_board = collections.deque()
        self._from_board = bytearray()
        self._cond = threading.Condition()
        self._stop = False
        self.cycles = 0
        self.killed = False
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self._bench)
        self._thread = threading.Thread(target=sim.run, name="simulated-board", daemon=True)
        self._thread.start()

    async def _bench(self, ctx):
        dut = self.dut
        ctx.set(dut.tx.ready, 1)
        while not self._stop:
            if ctx.get(dut.tx.valid):
                with self._cond:
                    self._from_board.append(ctx.get(dut.tx.payload))
                    self._cond.notify_all()
            if self._to_board:
                ctx.set(dut.rx.payload, self._to_board.popleft())
                ctx.set(dut.rx.valid, 1)
            else:
                ctx.set(dut.rx.valid, 0)
            await ctx.tick()
            self.cycles += 1

    def write(self, data: bytes) -> None:
        if self.killed:
            raise BrokenPipeError("the simulated board was unplugged")
        self._to_board.extend(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.killed:
            raise BrokenPipeError("the simulated board was unplugged")
        with self._cond:
            if not self._from_board:
                self._cond.wait(timeout)
            out = bytes(self._from_board[:max_bytes])
            del self._from_board[:max_bytes]
        return out

    def unplug(self) -> None:
        """Make every further read and write fail, as a pulled USB cable does."""
        self.killed = True

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=10)
