"""``python -m lowbit_hw.board.registers NETLIST.json``: a ``synth_ecp5`` netlist's flip-flops,
module by module, grouped by the signal each one drives (numbers folded), most first.

The board is placed at 71 % of the 85F, and two thirds of its flip-flops are one module's (the
woven gradient unit's): which of its registers are the bulk says what a smaller core must change
(docs/board.md, fifteenth pass). ``make bitstream``'s yosys step keeps the hierarchy
(``-noflatten``), so each module's own flip-flops are counted where they are; a TRELLIS_FF is named
by the public net on its ``Q`` (``gm5_17`` -> ``gm#_#``: feature 17's ``G + m0 r``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

__all__ = ["register_families", "main"]

_NUMBERS = re.compile(r"\d+")
FLIP_FLOP = "TRELLIS_FF"


def register_families(netlist: dict, module_suffix: str = "") -> dict[str, Counter]:
    """For every module whose name ends with ``module_suffix`` (all of them by default): a Counter
    of its flip-flops by the folded name of the net each drives (``?`` when only a hidden yosys
    name is left). Modules without flip-flops are left out."""
    out = {}
    for name, mod in netlist["modules"].items():
        if not name.endswith(module_suffix):
            continue
        bit_names: dict[int, str] = {}
        # public names first, so a bit that also has a yosys-internal name is named by its signal
        for net, info in sorted(mod.get("netnames", {}).items(), key=lambda kv: bool(kv[1].get("hide_name"))):
            for bit in info["bits"]:
                if isinstance(bit, int):
                    bit_names.setdefault(bit, "?" if info.get("hide_name") else _NUMBERS.sub("#", net))
        counts = Counter(bit_names.get(cell["connections"]["Q"][0], "?")
                         for cell in mod.get("cells", {}).values() if cell["type"] == FLIP_FLOP)
        if counts:
            out[name] = counts
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.registers", description=__doc__.split("\n\n")[0])
    ap.add_argument("netlist", type=Path, help="yosys JSON netlist (make bitstream's build folder: lowbit_ulx3s.json)")
    ap.add_argument("--module", default="", help="only modules whose name ends with this (say: core.gradient)")
    ap.add_argument("-n", type=int, default=25, help="families shown per module (default 25)")
    args = ap.parse_args(argv)
    try:
        families = register_families(json.loads(args.netlist.read_text()), args.module)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.netlist}: {exc}", file=sys.stderr)
        return 2
    if not families:
        print(f"no module ending with {args.module!r} has flip-flops", file=sys.stderr)
        return 1
    total = sum(sum(c.values()) for c in families.values())
    print(f"{total} flip-flops in {len(families)} modules")
    for name, counts in sorted(families.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"{sum(counts.values()):7d}  {name}")
        for family, n in counts.most_common(args.n):
            print(f"    {n:7d}  {family}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
