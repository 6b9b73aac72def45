"""The bitstream's clock when the routed design missed its constraint.

``make bitstream`` constrains the engine clock to the issue's 125 MHz so that nextpnr reports how
close the design comes; the PLL in the netlist makes that clock. A board whose routing met only
54.5 MHz would then run its engine at 125 MHz and compute garbage. So when the fastest seed missed
the constraint, its routed configuration is packed with the PLL's dividers rewritten to the fastest
clock the PLL makes exactly at or below that seed's fmax less :data:`RUN_MARGIN`: every path nextpnr
timed then meets the clock the board runs at. Nothing else in the configuration changes (the
dividers are configuration words of the PLL's tile, not routing), so the timing report still holds.

The UART's divisor is built into the logic (``ULX3SBoardTop``: engine clock / baud), so at the
slower clock the link runs at ``run clock / divisor`` baud; the report says which, and the host
opens the port at that rate (``lowbit ... --backend serial --baud N``).
"""

from __future__ import annotations

import re

from .top import pll_outputs, pll_parameters

__all__ = ["RUN_MARGIN", "fastest_pll_clock", "pll_words", "set_pll_words", "uart_baud"]

#: How far below the routed fmax the board is clocked when the constraint was missed: nextpnr's
#: delays are Lattice's speed-grade-6 figures, not a measurement of this chip, so a little is kept
#: in hand.
RUN_MARGIN = 0.05

# The EHXPLLL dividers in nextpnr-ecp5's textual configuration (``--textcfg``): the dividers are
# stored less one and the coarse phase as is, 7 bits MSB first; the fine phase 3 bits (read from
# the routed board build: CLKFB_DIV 5 is "word: CLKFB_DIV 0000100", CLKOP_CPHASE 1 "0000001").
_WORDS = {"CLKI_DIV": (7, 1), "CLKFB_DIV": (7, 1), "CLKOP_DIV": (7, 1), "CLKOP_CPHASE": (7, 0),
          "CLKOP_FPHASE": (3, 0)}


def fastest_pll_clock(f_in_mhz: float, limit_mhz: float) -> tuple[float, dict]:
    """The fastest output clock at or below ``limit_mhz`` that an EHXPLLL makes exactly from
    ``f_in_mhz`` (one of :func:`.top.pll_outputs`, with :func:`.top.pll_parameters`' dividers)."""
    best = None
    for f, _, _ in pll_outputs(f_in_mhz):
        if f > limit_mhz or (best is not None and f <= best[0]):
            continue
        try:
            best = (f, pll_parameters(f_in_mhz, f))
        except ValueError:      # no output divider puts the VCO in range
            continue
    if best is None:
        raise ValueError(f"no EHXPLLL setting from {f_in_mhz} MHz at or below {limit_mhz:.3f} MHz")
    return best


def uart_baud(run_mhz: float, divisor: int) -> int:
    """The UART's rate at ``run_mhz`` with its built-in ``divisor`` (clock cycles per bit)."""
    return round(run_mhz * 1e6 / divisor)


def _pll_block(text: str) -> tuple[int, int]:
    """Start and end of the one tile group that configures an EHXPLLL."""
    blocks = [(mt.start(), mt.end()) for mt in re.finditer(r"^\.tile_group [^\n]*\n(?:(?!\.)[^\n]*\n)*", text, re.M)
              if re.search(r"^enum: MODE EHXPLLL$", mt.group(0), re.M)]
    if len(blocks) != 1:
        raise ValueError(f"expected one EHXPLLL in the configuration, found {len(blocks)}")
    return blocks[0]


def pll_words(text: str) -> dict:
    """The EHXPLLL's dividers and phases as configured in a ``--textcfg`` configuration."""
    start, end = _pll_block(text)
    block = text[start:end]
    out = {}
    for name, (width, bias) in _WORDS.items():
        mt = re.search(rf"^word: {name} ([01]{{{width}}})$", block, re.M)
        if mt is None:
            raise ValueError(f"the EHXPLLL's configuration has no {width}-bit word {name}")
        out[name] = int(mt.group(1), 2) + bias
    return out


def set_pll_words(text: str, params: dict) -> str:
    """``text`` with the EHXPLLL's dividers and phases set to ``params`` (:func:`.top.pll_parameters`'s
    keys); every other line unchanged."""
    pll_words(text)   # (exactly one PLL, every word present)
    start, end = _pll_block(text)
    block = text[start:end]
    for name, (width, bias) in _WORDS.items():
        value = params[name] - bias
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name} = {params[name]} does not fit its {width}-bit word")
        block = re.sub(rf"^word: {name} [01]+$", f"word: {name} {value:0{width}b}", block, count=1, flags=re.M)
    return text[:start] + block + text[end:]
