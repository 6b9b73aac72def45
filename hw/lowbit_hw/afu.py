"""``LowbitAFU``: the engine's top, CCI-P on the outside, the training core inside."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from lowbit.contract.format import LAYOUT_VERSION
from lowbit.contract.registers import Built

from .ccip import CcipSignature
from .interfaces import CoreSignature
from .shell import ReadEngine, RegisterBlock, WriteEngine

__all__ = ["LowbitAFU"]


#: The training cores an AFU can be built with, by the line layout they read (lowbit.contract.format.LAYOUTS).
CORES = ("planes", "woven")


def _woven_core(*, line_bits, lanes, max_features):
    from .woven import WovenCore

    return WovenCore(line_bits=line_bits, max_features=max_features)


def _training_core(*, line_bits, lanes, max_features):
    from .core import TrainingCore

    return TrainingCore(line_bits=line_bits, lanes=lanes, max_features=max_features)


class LowbitAFU(wiring.Component):
    """The AFU: :class:`RegisterBlock`, :class:`ReadEngine`, :class:`WriteEngine` and the
    :class:`lowbit_hw.core.TrainingCore`, joined with ``wiring.connect``.

    Its only ports are ``ccip`` (plus the ``sync`` domain's ``clk`` / ``rst``), so the exported
    Verilog's ports are ``ccip__c0_tx__valid``, ``ccip__c0_rx__data``, ..., ``clk``, ``rst``.

    Parameters
    ----------
    line_bits : int
        CCI-P line width: 64, 128, 256 or 512.
    lanes : int
        Codes the core processes per cycle (1..255, reported in CAPS.LANES).
    max_features : int
        Largest FEATURES the core accepts (1..2^24-1, reported in CAPS.MAX_FEATURES).
    read_depth : int
        Reorder-buffer slots of the data read channel (power of two >= 4); the label channel gets
        half as many (labels are at most half the data traffic: a row is at least 32 codes of >= 2
        bits, i.e. 64 bits, against a 32-bit label).
    core : str
        ``"planes"``: the lane-parallel :class:`lowbit_hw.core.TrainingCore` (``lanes`` codes per
        cycle, every b alike); ``"woven"``: the bit-serial :class:`lowbit_hw.woven.WovenCore` (one
        line per cycle; ``lanes`` must be 32, its features per line). CAPS.FORMAT_VERSION tells
        the driver which line layout to pack.
    core_factory : callable, optional
        ``core_factory(line_bits=, lanes=, max_features=)`` returning a component with
        ``CoreSignature(line_bits)``; default ``lowbit_hw.core.TrainingCore``. For shell tests only.
    """

    def __init__(self, *, line_bits: int = 512, lanes: int = 32, max_features: int = 8192, read_depth: int = 256,
                 core: str = "planes", core_factory=None):
        CcipSignature(line_bits)  # checks line_bits
        if core not in CORES:
            raise ValueError(f"core must be one of {CORES}, got {core!r}")
        if core == "woven" and lanes != 32:
            raise ValueError(f"the woven core takes 32 features per line: lanes must be 32, got {lanes!r}")
        if not isinstance(lanes, int) or not 1 <= lanes <= 255:
            raise ValueError(f"lanes must be an int in 1..255, got {lanes!r}")
        if not isinstance(max_features, int) or not 1 <= max_features < (1 << 24):
            raise ValueError(f"max_features must be an int in 1..{(1 << 24) - 1}, got {max_features!r}")
        if not isinstance(read_depth, int) or read_depth < 8 or read_depth & (read_depth - 1) or read_depth > (1 << 14):
            raise ValueError(f"read_depth must be a power of two in 8..16384, got {read_depth!r}")
        self.line_bits, self.lanes, self.max_features, self.read_depth = line_bits, lanes, max_features, read_depth
        self.core = core
        self._core_factory = core_factory or (_woven_core if core == "woven" else _training_core)
        super().__init__({"ccip": Out(CcipSignature(line_bits))})

    def elaborate(self, platform):
        W = self.line_bits
        # The core first: if it cannot be built, nothing else has been created (no unused-object noise).
        core = self._core_factory(line_bits=W, lanes=self.lanes, max_features=self.max_features)
        if core.signature != CoreSignature(W):
            raise TypeError(f"the core's signature {core.signature!r} is not CoreSignature({W})")
        m = Module()
        m.submodules.core = core
        m.submodules.csr = csr = RegisterBlock(line_bits=W, lanes=self.lanes, max_features=self.max_features,
                                               format_version=LAYOUT_VERSION[self.core],
                                               built=getattr(core, "built", Built.NONE))
        m.submodules.reader = reader = ReadEngine(line_bits=W, data_depth=self.read_depth,
                                                  label_depth=self.read_depth // 2)
        m.submodules.writer = writer = WriteEngine(line_bits=W)

        # CCI-P: c0_rx fans out to the MMIO decoder and the read engine.
        ccip = self.ccip
        wiring.connect(m, wiring.flipped(ccip.c0_rx), csr.c0_rx, reader.c0_rx)
        wiring.connect(m, wiring.flipped(ccip.c0_tx), reader.c0_tx)
        wiring.connect(m, wiring.flipped(ccip.c1_tx), writer.c1_tx)
        wiring.connect(m, wiring.flipped(ccip.c1_rx), writer.c1_rx)
        wiring.connect(m, wiring.flipped(ccip.c2_tx), csr.c2_tx)
        m.d.comb += [reader.almfull.eq(ccip.c0_tx_almfull), writer.almfull.eq(ccip.c1_tx_almfull)]

        # Core <-> shell.
        wiring.connect(m, csr.table, core.table)
        wiring.connect(m, core.data_cmd, reader.data_cmd)
        wiring.connect(m, core.label_cmd, reader.label_cmd)
        wiring.connect(m, reader.data_lines, core.data_lines)
        wiring.connect(m, reader.label_lines, core.label_lines)
        wiring.connect(m, core.write, writer.write)
        # flush reaches the read engine a cycle late, through a register: the sequencer's state
        # decode is then not in front of the engine's request decision (the sequencer waits
        # IDLE_SETTLE cycles after the flush before it trusts read_idle).
        flush = Signal()
        m.d.sync += flush.eq(core.flush)
        m.d.comb += [
            core.cfg.eq(csr.cfg), core.start.eq(csr.start), core.reset.eq(csr.reset),
            csr.status.eq(core.status),
            reader.flush.eq(flush), core.read_idle.eq(reader.idle), core.write_idle.eq(writer.idle),
        ]
        return m
