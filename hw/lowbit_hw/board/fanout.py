"""``python -m lowbit_hw.board.fanout NETLIST.json``: the nets of a ``synth_ecp5`` netlist with the
most sinks, across its module hierarchy, and what they reach (LUT inputs, flip-flop enables and
resets, LUT RAM addresses), in seconds.

The woven board's routed critical paths have each been one such net, 15-22 ns of routing from a
flip-flop to a few thousand sinks spread over the chip (docs/board.md, eighth and ninth passes):
a reset, a clear, a select, a LUT RAM's address. ``make bitstream``'s yosys step keeps the
hierarchy (``-noflatten``), so a net crosses module ports; this follows it through them to every
primitive input it reaches and names it by its driver's side. Then split the worst, one at a
time and measured: the ninth pass's globals, banked RAMs and copies, tried all at once, placed
worse; the tenth pass's, one at a time, routed seed 2 at 48.1-54.5 MHz against 45.64
(``lowbit_hw.ecp5.global_buffer``, ``register_copies``; docs/board.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

__all__ = ["fanout", "main"]


def _top(modules: dict) -> str:
    tops = [n for n, mod in modules.items() if int(mod.get("attributes", {}).get("top", 0) or 0)]
    if len(tops) != 1:
        raise ValueError(f"the netlist marks {len(tops)} modules as top; name one with --top")
    return tops[0]


def fanout(netlist: dict, top: str | None = None) -> list[tuple[int, str, Counter]]:
    """Every net of the flattened design with its sink count, most first: ``(sinks, name,
    Counter({(primitive type, port): n}))``. Module cells (the design's own hierarchy) are walked
    into; any other cell is a primitive whose input ports are sinks."""
    modules = netlist["modules"]
    top = top or _top(modules)
    if top not in modules:
        raise ValueError(f"no module {top!r} in the netlist")
    design = {n for n in modules if n == top or n.startswith(top + ".")}
    sinks: dict[int, Counter] = defaultdict(Counter)
    names: dict[int, str] = {}
    fresh = iter(range(1 << 62, 1 << 63))

    def walk(mname: str, path: str, outer: dict) -> None:
        mod, local = modules[mname], {}

        def net(bit):
            if isinstance(bit, str):          # a constant: "0", "1", "x", "z"
                return None
            if bit in outer:
                return outer[bit]
            if bit not in local:
                local[bit] = next(fresh)
            return local[bit]

        for nname, n in mod.get("netnames", {}).items():
            if not nname.startswith("$"):
                for i, b in enumerate(n["bits"]):
                    g = net(b)
                    if g is not None:
                        names.setdefault(g, f"{path}{nname}" + (f"[{i}]" if len(n["bits"]) > 1 else ""))
        for cname, cell in mod.get("cells", {}).items():
            ctype, conns = cell["type"], cell["connections"]
            if ctype in design:
                ports = modules[ctype]["ports"]
                inner = {pb: g for p, bits in conns.items() for pb, b in zip(ports[p]["bits"], bits)
                         if (g := net(b)) is not None}
                walk(ctype, f"{path}{cname}.", inner)
                continue
            kind = ctype.split("\\")[-1]
            for p, bits in conns.items():
                if cell.get("port_directions", {}).get(p) == "input":
                    for b in bits:
                        g = net(b)
                        if g is not None:
                            sinks[g][(kind, p.rstrip("0123456789"))] += 1

    walk(top, "", {})
    rows = [(sum(c.values()), names.get(g, f"<net {g}>"), c) for g, c in sinks.items()]
    rows.sort(key=lambda r: (-r[0], r[1]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.board.fanout", description=__doc__.split("\n\n")[0])
    ap.add_argument("netlist", type=Path)
    ap.add_argument("--top", help="module (default: the one marked top)")
    ap.add_argument("-n", type=int, default=30, help="nets shown")
    ap.add_argument("--all", action="store_true", help="include clock nets (a clock's sinks are its flip-flops)")
    args = ap.parse_args(argv)
    try:
        rows = fanout(json.loads(args.netlist.read_text()), args.top)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.netlist}: {exc}", file=sys.stderr)
        return 2
    shown = 0
    for total, name, kinds in rows:
        if not args.all and kinds.get(("TRELLIS_FF", "CLK"), 0) * 2 > total:
            continue
        parts = ", ".join(f"{n} {t}.{p}" for (t, p), n in kinds.most_common(3))
        print(f"{total:7d}  {name}  ({parts})")
        shown += 1
        if shown == args.n:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
