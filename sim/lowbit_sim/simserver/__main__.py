"""``python -m lowbit_sim.simserver`` (``make sim-server``): a long-lived simulator for many sessions.

Builds (or reuses) the full AFU's server, starts it on a socket in the per-user runtime directory,
prints the socket path, and runs until Ctrl-C. Clients attach with ``open_device("sim",
socket=PATH)`` or ``lowbit train --backend sim --socket PATH``; each client gets a freshly reset AFU.

With ``--build-only`` it builds (or reuses) the server, prints the executable's path and exits: the
host's sim backend runs this in a child process to get its private server, so the host never
imports ``lowbit_sim`` (docs/packaging.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from lowbit.contract.simprocess import start_server

from . import build_afu_server, build_server


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lowbit_sim.simserver", description=__doc__.split("\n\n")[0])
    p.add_argument("--line-bits", type=int, default=512)
    p.add_argument("--lanes", type=int, default=32)
    p.add_argument("--max-features", type=int, default=8192)
    p.add_argument("--core", default="planes", help="the AFU's training core (lowbit.driver.sim_engines)")
    p.add_argument("--read-depth", type=int, default=256)
    p.add_argument("--socket", default=None, help="socket path (default: a fresh one in the runtime dir)")
    p.add_argument("--verilog", type=Path, nargs="+", default=None,
                   help="simulate this AFU Verilog (top lowbit_afu) instead of exporting lowbit_hw's")
    p.add_argument("--build-only", action="store_true",
                   help="build (or reuse) the server, print the executable's path and exit")
    args = p.parse_args(argv)
    try:
        return _serve(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError) as exc:  # a refused socket path, an unwritable build folder, a bad parameter
        print(f"lowbit-simserver: error: {exc}", file=sys.stderr)
        return 1


def _serve(args) -> int:
    if not args.build_only:
        print("building the simulator (cached after the first time)...", file=sys.stderr, flush=True)
    if args.verilog:
        exe = build_server(args.verilog, line_bits=args.line_bits)
    else:
        exe = build_afu_server(args.line_bits, args.lanes, args.max_features, args.core, args.read_depth)
    if args.build_only:
        print(exe, flush=True)
        return 0
    server = start_server(exe, socket_path=args.socket, once=False, accept_timeout=0, line_bits=args.line_bits)
    print(server.socket_path, flush=True)
    print(f"simulator pid {server.pid}; attach with: lowbit train --backend sim --socket {server.socket_path}\n"
          f"One client at a time (others are told it is busy). Ctrl-C stops it.", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    interrupted = False
    try:
        server.process.wait()
    except KeyboardInterrupt:
        interrupted = True  # the server runs in its own session: only we saw the Ctrl-C
    finally:
        ended = server.describe_exit()  # before stop(), which ends it either way
        server.stop()
    if interrupted:
        print(f"simulator stopped; {server.socket_path} removed", file=sys.stderr)
        return 0
    print(f"simulator {ended}", file=sys.stderr)
    return 1

if __name__ == "__main__":
    sys.exit(main())
