"""``python -m lowbit_hw.board.depth NETLIST.json``: the longest register-to-register paths of a
``synth_ecp5`` netlist, in seconds rather than the half hour a placement takes.

nextpnr prints its critical path only after routing, and the woven core takes 15-30 minutes to
place and longer to route. This walks the mapped netlist instead (LUT4, PFUMX, L6MUX21, CCU2C
carry chains, LUT RAM reads) with a flat delay model: each cell's logic delay plus a fixed
routing delay per net that leaves a cell (none along a carry chain, which is dedicated wiring).
The absolute figures are rough (routing in a full device is what nextpnr measures); the ranking
of paths and their cells is what it is for: which chain of logic to cut next.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

#: Logic delay (ns) from any input to any output of a combinational cell, roughly ECP5 speed 6.
LOGIC_NS = {"LUT4": 0.45, "PFUMX": 0.25, "L6MUX21": 0.25, "TRELLIS_DPR16X4": 1.2}
#: A carry chain (CCU2C, two bits): input to output, carry-in to carry-out (per bit), carry-in to sum.
CCU2C_IN_NS, CCU2C_CARRY_NS, CCU2C_SUM_NS = 0.45, 0.05, 0.3
#: Routing per ordinary net, clock-to-out of a flip-flop and setup.
NET_NS, CLK_TO_Q_NS, SETUP_NS = 0.9, 0.5, 0.2
#: Clock-to-out of a DP16KD without its output register (with it: about 1 ns).
BRAM_NOREG_NS = 5.8


def _paths(module: dict):
    """Yield (arrival, endpoint bit, predecessor map) data: arrival time per bit and back pointers."""
    cells = module["cells"]
    drivers = {}           # bit -> (cell, out port, in ports (comb), delay kind)
    sources = {}           # bit -> launch time (registers, RAM outputs, DSP outputs, module inputs)
    sinks = []             # (bit, cell, port) register inputs
    for name, c in cells.items():
        t, conn, dirs = c["type"], c["connections"], c.get("port_directions", {})
        if t == "TRELLIS_FF":
            sources[conn["Q"][0]] = (CLK_TO_Q_NS, name)
            sinks += [(b, name, p) for p in ("DI", "CE", "LSR", "M") if p in conn for b in conn[p]]
        elif t in ("LUT4", "PFUMX", "L6MUX21"):
            out = conn["Z"][0]
            ins = [b for p, bits in conn.items() if p != "Z" for b in bits]
            drivers[out] = (name, ins, LOGIC_NS[t])
        elif t == "CCU2C":
            cin = ("cin", conn["CIN"][0], CCU2C_SUM_NS)
            for k in "01":
                ins = [conn[p + k][0] for p in "ABCD"]
                drivers[conn["S" + k][0]] = (name, [cin] + ins, CCU2C_IN_NS)
            ins = [conn[p + k][0] for k in "01" for p in "ABCD"]
            drivers[conn["COUT"][0]] = (name, [("cin", conn["CIN"][0], 2 * CCU2C_CARRY_NS)] + ins, CCU2C_IN_NS)
        elif t == "TRELLIS_DPR16X4":
            for b in conn["DO"]:
                drivers[b] = (name, list(conn["RAD"]), LOGIC_NS[t])
            sinks += [(b, name, p) for p in ("DI", "WAD", "WRE") for b in conn[p]]
        elif t == "DP16KD":
            reg = c["parameters"].get("REGMODE_A", "NOREG") != "NOREG"
            for p, bits in conn.items():
                if dirs.get(p) == "output":
                    for b in bits:
                        sources[b] = (1.0 if reg else BRAM_NOREG_NS, name)
                elif dirs.get(p) == "input" and not p.startswith("CLK"):
                    sinks += [(b, name, p) for b in bits]
        elif t == "MULT18X18D":
            # Registered at both ends when instantiated by lowbit_hw.ecp5.Mul18 (the only kind here).
            for p, bits in conn.items():
                if dirs.get(p) == "output":
                    for b in bits:
                        sources[b] = (1.2, name)
                elif dirs.get(p) == "input" and p[0] in "AB" and p[1:].isdigit():
                    sinks += [(b, name, p) for b in bits]
    for pname, port in module["ports"].items():
        if port["direction"] == "input":
            for b in port["bits"]:
                sources.setdefault(b, (0.0, f"<port {pname}>"))
    return drivers, sources, sinks


def longest(module: dict, top: int = 10):
    drivers, sources, sinks = _paths(module)
    arrival, back = {}, {}
    sys.setrecursionlimit(1 << 20)

    def arr(bit):
        if isinstance(bit, str):        # constant "0" / "1"
            return 0.0
        if bit in arrival:
            return arrival[bit]
        if bit in sources:
            arrival[bit] = sources[bit][0]
            return arrival[bit]
        if bit not in drivers:
            arrival[bit] = 0.0
            return 0.0
        arrival[bit] = 0.0  # (breaks a combinational loop, should there be one)
        name, ins, delay = drivers[bit]
        best, via = 0.0, None
        for i in ins:
            if isinstance(i, tuple):    # carry in: dedicated wire, no routing; its own delay
                a = arr(i[1]) + i[2]
                src = i[1]
            else:
                a = arr(i) + NET_NS + delay
                src = i
            if a > best:
                best, via = a, src
        arrival[bit] = best
        back[bit] = (name, via)
        return arrival[bit]

    # Iterative warm-up in topological-ish order keeps the recursion shallow.
    for b in list(drivers):
        try:
            arr(b)
        except RecursionError:
            pass
    ends = sorted(((arr(b) + NET_NS + SETUP_NS, b, cell, port) for b, cell, port in sinks),
                  key=lambda e: -e[0])
    seen, out = set(), []
    for t, b, cell, port in ends:
        key = cell.rsplit(".", 1)[0].rstrip("0123456789_")
        if key in seen:
            continue
        seen.add(key)
        chain, x = [], b
        while x in back:
            name, via = back[x]
            chain.append(name)
            x = via
        start = sources.get(x, (0.0, "?"))[1]
        out.append((t, start, chain[::-1], f"{cell}.{port}"))
        if len(out) == top:
            break
    return out


def _fold(chain):
    """Consecutive cells of one carry chain / one signal folded to 'name (xN)'."""
    out = []
    for c in chain:
        base = re.split(r"_(?:TRELLIS|LUT4|CCU2C|PFUMX|L6MUX)", c, maxsplit=1)[0]
        if out and out[-1][0] == base:
            out[-1][1] += 1
        else:
            out.append([base, 1])
    return [f"{b} (x{n})" if n > 1 else b for b, n in out]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.depth", description=__doc__.split("\n\n")[0])
    ap.add_argument("netlist", type=Path)
    ap.add_argument("--top", default=None, help="module (default: the one marked top)")
    ap.add_argument("-n", type=int, default=12, help="paths shown (one per endpoint group)")
    args = ap.parse_args(argv)
    design = json.loads(args.netlist.read_text())
    mods = design["modules"]
    name = args.top or next((k for k, v in mods.items() if v.get("attributes", {}).get("top")), next(iter(mods)))
    for t, start, chain, end in longest(mods[name], args.n):
        print(f"{t:6.1f} ns ({1000 / t:5.1f} MHz)  {start} -> {end}  [{len(chain)} cells]")
        for c in _fold(chain):
            print(f"           {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
