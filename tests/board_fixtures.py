"""Board test fixtures: the board design minus UART and PLL, and a SIMULATED board that speaks the
serial byte protocol, so the host's serial backend drives it exactly as it would the real port."""

import collections
import threading

from amaranth.sim import Simulator

from lowbit_hw.board.bridge import BridgedAFU


#: The board design minus UART and PLL (the UART is tested on its own).
Board = BridgedAFU


class BoardSimulation:
    """One :class:`Board` and its compiled simulator, for many runs: compiling the board takes
    ~4 s, most tests' runs a fraction of that. :meth:`run` starts each run from the reset state
    (``Simulator.reset()`` returns every signal and memory to its initial value and restarts the
    testbenches, as ``tests/test_core_train.py`` reuses the core's), so a reused simulation starts
    exactly as a fresh one does."""

    #: Testbenches a run may have (each slot runs one or, when a run has fewer, returns at once).
    SLOTS = 3

    def __init__(self, **params):
        self.dut = Board(**params)
        self._benches = ()
        self._runs = 0
        self.busy = False
        self.sim = Simulator(self.dut)
        self.sim.add_clock(1e-8)
        for slot in range(self.SLOTS):
            async def run_slot(ctx, slot=slot):
                if slot < len(self._benches):
                    await self._benches[slot](ctx)
            self.sim.add_testbench(run_slot)

    def run(self, *benches) -> None:
        """Run ``benches`` (coroutine functions of ``ctx``) together from reset to their end; the
        simulation is free for its next user once the run ends."""
        if not 1 <= len(benches) <= self.SLOTS:
            raise ValueError(f"a run takes 1..{self.SLOTS} testbenches, got {len(benches)}")
        if self._runs:
            self.sim.reset()
        self._runs += 1
        self._benches = benches
        try:
            self.sim.run()
        finally:
            self.busy = False


_SIMULATIONS: dict = {}


def board_simulation(**params) -> BoardSimulation:
    """A :class:`BoardSimulation` of a board with these parameters, claimed (``busy``) until its
    next run ends: the shared one if it is free, else a new one (as when two simulated boards are
    open at once, or a test stopped before its run)."""
    key = tuple(sorted(params.items()))
    shared = _SIMULATIONS.get(key)
    if shared is None or shared.busy:
        shared = BoardSimulation(**params)
        _SIMULATIONS.setdefault(key, shared)
    shared.busy = True
    return shared


def simulation_of(dut):
    """The :class:`BoardSimulation` that ``dut`` belongs to, if it is a shared one."""
    return next((s for s in _SIMULATIONS.values() if s.dut is dut), None)


class SimulatedBoard:
    """A serial transport (``write``, ``read``, ``close``) whose far end is :class:`Board` in
    Amaranth's simulator, running in a thread: one byte per cycle each way (below the UART)."""

    def __init__(self, *, line_bits=64, lanes=2, max_features=64, read_depth=16):
        simulation = board_simulation(line_bits=line_bits, rx_timeout=4096, lanes=lanes,
                                      max_features=max_features, read_depth=read_depth)
        self.dut = simulation.dut
        self._to_board = collections.deque()
        self._from_board = bytearray()
        self._cond = threading.Condition()
        self._stop = False
        self.cycles = 0
        self.killed = False
        self._thread = threading.Thread(target=simulation.run, args=(self._bench,), name="simulated-board",
                                        daemon=True)
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
