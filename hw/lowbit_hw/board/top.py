"""``ULX3SBoardTop``: the lowbit AFU on a Radiona ULX3S (ECP5-85F), driven over its USB serial port.

    25 MHz oscillator -> EHXPLLL -> engine clock ("sync")
    FTDI rx/tx pins <-> UART <-> SerialBridge (CCI-P host end) <-> LowbitAFU

LEDs: 0 PLL locked, 1 a heartbeat (the engine clock runs), 2 a byte arrived recently, 3 a frame
was dropped (NAK) since power-up.
"""

from __future__ import annotations

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer

from ..ecp5 import global_buffer
from .bridge import BridgedAFU
from .uart import UART

__all__ = ["BOARD_CORE_OPTIONS", "ULX3SBoardTop", "board_woven_core", "pll_outputs", "pll_parameters", "uart_divisor"]

#: The WovenCore options of the board's build (``board_woven_core`` says why each): the one place
#: the tests take "the board's build" from.
BOARD_CORE_OPTIONS = dict(l2=False, chebyshev=False, delayed=False, update_lanes=8, block_ram=False)


def board_woven_core(*, line_bits, lanes, max_features):
    """The board's woven core, built without L2 and without the Chebyshev estimator
    (``WovenCore(l2=False, chebyshev=False)``): the L2 term's RAM is 43 DP16KD, and
    ``WovenCore(64, 256)`` with it takes 211 of the 85F's 208 (yosys ``synth_ecp5``,
    docs/architecture.md, "L2 regularisation"); with the Chebyshev estimator the board took ~9k
    more TRELLIS_COMB and placed at an estimated 37.8 MHz against 55.9 (docs/board.md, fifth
    pass). Its BUILT register says so: such runs are refused. Nor pipelined SGD (``delayed=False``:
    2 group slots), and the update takes a quarter chunk a cycle (``update_lanes=8``: 89 MULT18X18D
    of the 85F's 156 instead of 153; docs/board.md, seventh pass), and G, q and the model are in
    LUT RAM (``block_ram=False``: block RAM routed worse, fourth pass)."""
    from ..woven import WovenCore

    return WovenCore(line_bits=line_bits, max_features=max_features, **BOARD_CORE_OPTIONS)


def pll_outputs(f_in_mhz: float):
    """Every EHXPLLL output (feedback from CLKOP) from ``f_in``: ``(f_out, CLKI_DIV, CLKFB_DIV)``
    with ``f_out = f_in * CLKFB_DIV / CLKI_DIV`` and the phase detector ``f_in / CLKI_DIV`` at or
    above 3.125 MHz (ECP5 family data sheet); whether an output divider puts the VCO in range is
    :func:`pll_parameters`' to say."""
    for idiv in range(1, 129):
        if f_in_mhz / idiv < 3.125:
            return
        for fbdiv in range(1, 81):
            yield f_in_mhz * fbdiv / idiv, idiv, fbdiv


def pll_parameters(f_in_mhz: float, f_out_mhz: float) -> dict:
    """EHXPLLL dividers for ``f_out`` from ``f_in`` (feedback from CLKOP), exact or refused.

    ``f_out`` must be one of :func:`pll_outputs`; the VCO ``f_out * CLKOP_DIV`` must lie in
    400..800 MHz (ECP5 family data sheet).
    """
    for f, idiv, fbdiv in pll_outputs(f_in_mhz):
        if abs(f - f_out_mhz) > 1e-9:
            continue
        # The output divider that puts the VCO nearest the middle of its range (600 MHz).
        for opdiv in sorted(range(1, 129), key=lambda d: abs(f_out_mhz * d - 600)):
            if 400 <= f_out_mhz * opdiv <= 800:
                return {"CLKI_DIV": idiv, "CLKFB_DIV": fbdiv, "CLKOP_DIV": opdiv,
                        "CLKOP_CPHASE": opdiv // 2 - 1, "CLKOP_FPHASE": 0}
    raise ValueError(f"no exact EHXPLLL setting for {f_out_mhz} MHz from {f_in_mhz} MHz")


def uart_divisor(engine_mhz: float, baud: int) -> int:
    """The UART's clock cycles per bit: ``baud`` from ``engine_mhz`` within 2 %, or refused."""
    divisor = round(engine_mhz * 1e6 / baud)
    if divisor < 4 or abs(engine_mhz * 1e6 / divisor / baud - 1) > 0.02:
        raise ValueError(f"{baud} baud is not within 2 % of {engine_mhz} MHz / an integer >= 4")
    return divisor


class ULX3SBoardTop(Elaboratable):
    """The board design: see the module docstring.

    Parameters
    ----------
    engine_mhz, oscillator_mhz : float
        Engine clock and the board oscillator (the PLL must reach the engine clock exactly).
    baud : int
        UART rate; the engine clock must be within 2 % of a whole multiple of it.
    line_bits, lanes, max_features, read_depth : int; core : str
        The AFU's parameters (:class:`lowbit_hw.afu.LowbitAFU`).
    read_fifo_depth, write_fifo_depth : int
        The bridge's request FIFOs (:class:`.bridge.SerialBridge`).
    """

    def __init__(self, *, engine_mhz=125.0, oscillator_mhz=25.0, baud=1_000_000, line_bits=64, lanes=32,
                 max_features=256, read_depth=32, read_fifo_depth=32, write_fifo_depth=16, core="woven"):
        self.pll = pll_parameters(oscillator_mhz, engine_mhz)
        divisor = uart_divisor(engine_mhz, baud)
        self.engine_mhz, self.oscillator_mhz, self.baud, self.divisor = engine_mhz, oscillator_mhz, baud, divisor
        self.design = BridgedAFU(line_bits=line_bits, read_fifo_depth=read_fifo_depth,
                                 write_fifo_depth=write_fifo_depth, lanes=lanes, max_features=max_features,
                                 read_depth=read_depth, core=core,
                                 **({"core_factory": board_woven_core} if core == "woven" else {}))
        self.uart = UART(divisor)

    def elaborate(self, platform):
        m = Module()
        clk25 = platform.request("clk25", 0)
        m.domains.sync = cd_sync = ClockDomain("sync")
        locked = Signal()
        p = self.pll
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(self.oscillator_mhz), a_FREQUENCY_PIN_CLKOP=str(self.engine_mhz),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKOP_ENABLE="ENABLED",
            p_FEEDBK_PATH="CLKOP", p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"],
            p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=p["CLKOP_FPHASE"],
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=cd_sync.clk, i_CLKFB=cd_sync.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        # No clock constraint here: nextpnr derives the engine clock's from the PLL's dividers and
        # the oscillator's FREQUENCY PORT (a FREQUENCY NET on this signal names a net yosys renamed).
        # The reset reaches every block's control registers (~6.5k flip-flops and the LUTs of the
        # blocks' own clears): through general routing it was 22 ns of seed 1's critical path
        # (docs/board.md, eighth pass). So it is synchronised in a domain of its own on the engine
        # clock and reaches the "sync" domain over a global network (a DCCA), which adds no
        # flip-flop (tenth pass).
        m.domains.reset_sync = cd_reset = ClockDomain("reset_sync", local=True)
        m.d.comb += cd_reset.clk.eq(cd_sync.clk)
        m.submodules.reset = ResetSynchronizer(~locked, domain="reset_sync")
        m.d.comb += cd_sync.rst.eq(global_buffer(m, platform, cd_reset.rst, "reset_global"))

        m.submodules.design = design = self.design
        m.submodules.uart = uart = self.uart
        wiring.connect(m, uart.rx_data, design.rx)
        wiring.connect(m, design.tx, uart.tx_data)
        pins = platform.request("uart", 0)
        m.d.comb += [uart.rx.eq(pins.rx.i), pins.tx.o.eq(uart.tx)]

        heartbeat = Signal(26)
        recent = Signal(22)  # ~34 ms at 125 MHz
        m.d.sync += heartbeat.eq(heartbeat + 1)
        with m.If(uart.rx_data.valid):
            m.d.sync += recent.eq((1 << len(recent)) - 1)
        with m.Elif(recent != 0):
            m.d.sync += recent.eq(recent - 1)
        leds = [platform.request("led", i) for i in range(4)]
        m.d.comb += [leds[0].o.eq(locked), leds[1].o.eq(heartbeat[-1]), leds[2].o.eq(recent != 0),
                     leds[3].o.eq(design.bridge.naks != 0)]
        return m
