"""Verilog export of the AFU: ``python -m lowbit_hw.export [-o DIR] [--line-bits W --lanes L --max-features F]``.

Writes ``DIR/lowbit_afu.v`` (top module ``lowbit_afu``: ports ``clk``, ``rst`` and
``ccip__<channel>__<field>`` from :class:`lowbit_hw.ccip.CcipSignature`) and ``DIR/lowbit_afu.json``
(the parameters, the port list and a digest of the gateware sources). :func:`export_verilog` is
what the cocotb benches and the simulator backend call; it skips the conversion when the JSON says
the file was written from the same parameters and sources.
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

TOP = "lowbit_afu"
DEFAULTS = dict(line_bits=512, lanes=32, max_features=8192, read_depth=256)


def source_digest() -> str:
    """SHA-256 (16 hex digits) of every gateware source and of the contract it is generated from."""
    import lowbit.contract
    import lowbit_hw

    srcs = sorted(Path(lowbit_hw.__file__).parent.rglob("*.py"))
    srcs += sorted(Path(lowbit.contract.__file__).parent.rglob("*.py"))
    h = hashlib.sha256()
    for p in srcs:
        h.update(str(p.relative_to(p.parents[1])).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def port_list(line_bits: int) -> list[dict]:
    """The top's ports as ``{"name", "dir", "width"}``, in the order the signature declares them."""
    from .ccip import CcipSignature

    ports = [{"name": "clk", "dir": "in", "width": 1}, {"name": "rst", "dir": "in", "width": 1}]
    for path, member in CcipSignature(line_bits).members.flatten():
        if member.is_port:
            ports.append({"name": "ccip__" + "__".join(path), "dir": "out" if member.flow.name == "Out" else "in",
                          "width": member.shape.width if hasattr(member.shape, "width") else int(member.shape)})
    return ports


def export_verilog(out_dir, *, line_bits: int = 512, lanes: int = 32, max_features: int = 8192,
                   read_depth: int = 256, core: str = "planes") -> Path:
    """Write ``out_dir/lowbit_afu.v`` for these parameters (if not already there) and return its path.

    Parameters
    ----------
    out_dir : path
        Created if missing. One directory holds one configuration.
    line_bits, lanes, max_features, read_depth : int
        :class:`lowbit_hw.afu.LowbitAFU` parameters.
    """
    from .afu import LowbitAFU

    params = dict(line_bits=line_bits, lanes=lanes, max_features=max_features, read_depth=read_depth)
    if not all(isinstance(v, int) for v in params.values()):
        raise TypeError(f"export_verilog parameters must be ints, got {params!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vpath, jpath = out / f"{TOP}.v", out / f"{TOP}.json"
    params["core"] = core
    meta = {"top": TOP, "params": params, "sources": source_digest(), "ports": port_list(line_bits)}
    if vpath.exists() and jpath.exists():
        try:
            if json.loads(jpath.read_text()) == meta:
                return vpath
        except json.JSONDecodeError:
            pass
    from amaranth.back import verilog

    afu = LowbitAFU(**params)  # checks the parameters (a cached export was made from valid ones)
    text = verilog.convert(afu, name=TOP)
    # Write-then-rename so a concurrent reader never sees half a file.
    for path, content in ((vpath, text), (jpath, json.dumps(meta, indent=1) + "\n")):
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(content)
        tmp.replace(path)
    return vpath


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowbit_hw.export", description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="build/verilog", help="output directory (default: %(default)s)")
    for name, value in DEFAULTS.items():
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=value, help=f"default: {value}")
    ap.add_argument("--core", choices=("planes", "woven"), default="planes",
                    help="training core: lane-parallel (planes layout) or bit-serial (woven layout)")
    args = ap.parse_args(argv)
    try:
        path = export_verilog(args.out, core=args.core, **{k: getattr(args, k) for k in DEFAULTS})
    except (ValueError, TypeError) as e:
        ap.error(str(e))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
