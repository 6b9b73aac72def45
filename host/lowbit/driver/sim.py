"""The ``sim`` backend: the Verilated AFU in a separate simulator process (lowbit_sim.simserver).

A private simulator is built by a child ``python -m lowbit_sim.simserver --build-only`` (cached
after the first time) and started with :func:`lowbit.contract.simprocess.start_server`: the host
never imports ``lowbit_sim``, which imports the host's contract (docs/packaging.md).

Host memory is one ``memfd`` arena mapped by both processes: :meth:`SimBackend.allocate` carves
page-aligned buffers out of it and registers each with the server, whose CCI-P memory model serves
reads and applies writes directly in the mapping. Accesses outside every registered buffer touch
nothing and are reported by :meth:`check` as a :class:`DeviceError` naming the address. MMIO and
control go over a Unix socket (0600, in a 0700 per-user directory); every exchange has a deadline,
so a dead or stalled simulator raises :class:`SimulatorDied` within ``io_timeout`` seconds, and the
private server process is always reaped. It runs in its own session (a terminal's Ctrl-C reaches
this process only, which stops the server in order) and exits by itself when this *process* ends,
however it ends and whichever thread opened the device (it watches a pipe only this process holds).
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..contract.simprocess import start_server
from ..extras import EXTRAS, require
from .backend import Backend, HostArena
from .errors import DeviceError, DriverError, SimulatorDied

#: IO address of the arena's first byte: low addresses (0, small offsets) are never valid buffers.
ARENA_IO_BASE = 1 << 32
PAGE = 4096
#: The AFU a private simulator builds unless told otherwise (the full CCI-P configuration); read
#: at each open, and by ``lowbit train --backend golden`` for the engine's limits.


#: Seconds a new client keeps asking a server that answers BUSY (its previous client may have
#: disconnected a moment ago).
BUSY_GRACE_S = 0.5


class _Busy(DriverError):
    """The server serves another client."""


#: The module whose ``--build-only`` builds a private simulator (the [sim] extra), run as a program.
SIMSERVER = "lowbit_sim.simserver"


def require_simulator() -> None:
    """Raise :class:`lowbit.extras.MissingExtra` unless a private simulator can be built here."""
    require("sim", "the sim backend (a private simulator; socket= attaches to a running one)",
            ("lowbit_sim", *EXTRAS["sim"]))


def build_simulator(*, verilog=None, line_bits: int = 512, lanes: int = 32, max_features: int = 8192,
                    core: str = "planes", read_depth: int = 256) -> Path:
    """Build (or reuse, from the build cache) a simulator server and return its executable.

    Runs ``python -m lowbit_sim.simserver --build-only`` in a child process with this process's
    interpreter, seeing the same ``lowbit``, ``lowbit_hw`` and ``lowbit_sim`` as this one.

    Raises
    ------
    lowbit.extras.MissingExtra
        The [sim] extra is not installed.
    DriverError
        The build failed; the message ends with the builder's own last lines.
    """
    require_simulator()
    cmd = [sys.executable, "-m", SIMSERVER, "--build-only", "--line-bits", str(line_bits)]
    if verilog is None:
        cmd += ["--lanes", str(lanes), "--max-features", str(max_features), "--core", str(core),
                "--read-depth", str(read_depth)]
    else:
        cmd += ["--verilog", *(str(Path(v).resolve()) for v in
                               ([verilog] if isinstance(verilog, (str, os.PathLike)) else verilog))]
    roots = [str(Path(importlib.util.find_spec(m).origin).parents[1]) for m in ("lowbit", "lowbit_hw", "lowbit_sim")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(
        [*roots, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])))
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env)
    exe = Path(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else None
    if exe is None or not exe.is_file():
        raise DriverError(f"building the simulator failed ({' '.join(cmd[1:4])} exited with status "
                          f"{res.returncode}): {res.stderr.strip()[-2000:]}")
    return exe


class SimBackend(Backend):
    """Drive a simulated AFU.

    Parameters
    ----------
    socket : str or Path, optional
        Attach to a running server (``make sim-server``) instead of starting a private one.
    verilog : path or list of paths, optional
        AFU Verilog (top ``lowbit_afu``) to build the private server from; default: the real
        ``lowbit_hw`` AFU exported with ``line_bits``, ``lanes``, ``max_features``.
    server : path, optional
        A prebuilt server executable (skips the build).
    line_bits, lanes, max_features, core, read_depth : int / str
        Build parameters of the default AFU (``lowbit_hw.afu.LowbitAFU``).
    memory : int
        Arena bytes (sparse: pages cost memory only when touched).
    latency : int or (int, int)
        Memory latency in cycles: fixed, or uniform random in [lo, hi] per line (out of order).
    seed : int
        Seed of the latency model.
    io_timeout : float
        Seconds any one exchange with the server may take before the simulator counts as stalled.
    """

    name = "sim"
    alignment = PAGE

    def __init__(self, *, socket: str | Path | None = None, verilog=None, server=None, line_bits: int = 512,
                 lanes: int = 32, max_features: int = 8192, core: str = "planes", read_depth: int = 256,
                 memory: int = 1 << 30,
                 latency: int | tuple[int, int] = (100, 400), seed: int = 0, io_timeout: float = 10.0):
        from lowbit.contract import simwire as proto

        self._proto = proto
        lat = (latency, latency) if isinstance(latency, (int, np.integer)) else tuple(latency)
        if len(lat) != 2 or not 1 <= lat[0] <= lat[1] <= proto.MAX_LATENCY:
            raise ValueError(f"latency must be a cycle count >= 1 or a (lo, hi) range, got {latency!r}")
        if not io_timeout > 0:
            raise ValueError("io_timeout must be positive")
        self.io_timeout = float(io_timeout)
        self.server = None
        self._sock = None
        self._mm = None
        self._fd = -1
        self._closed = False
        self._heap = HostArena(memory, PAGE)  # validates memory before anything starts
        self.memory = self._heap.size
        if self.memory > proto.MAX_ARENA:
            raise ValueError(f"memory must be at most {proto.MAX_ARENA} bytes (the simulator's limit), got {memory}")
        try:
            if socket is None:
                if server is None:
                    server = build_simulator(verilog=verilog, line_bits=line_bits, lanes=lanes,
                                             max_features=max_features, core=core, read_depth=read_depth)
                try:
                    self.server = start_server(Path(server), line_bits=line_bits)
                except RuntimeError as exc:  # it did not start: say why, as a driver error
                    raise SimulatorDied(str(exc)) from None
                socket = self.server.socket_path
            self.socket_path = Path(socket)
            self._connect()
            self._fd = os.memfd_create("lowbit-host-memory", os.MFD_CLOEXEC)
            os.ftruncate(self._fd, self.memory)
            self._mm = mmap.mmap(self._fd, self.memory, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._arena = np.frombuffer(self._mm, dtype=np.uint8)
            # A long-lived server answers BUSY while it still serves a client; one that has just
            # disconnected may not have been noticed yet, so BUSY is retried for a moment.
            deadline = time.monotonic() + BUSY_GRACE_S
            while True:
                try:
                    _, version, line, _, _ = self._call(proto.Op.HELLO, ARENA_IO_BASE, self.memory,
                                                        lat[0] | (lat[1] << 32), int(seed) & ((1 << 64) - 1),
                                                        fds=[self._fd])
                    break
                except _Busy:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                    self._closed = False
                    self._connect()
            if version != proto.PROTOCOL_VERSION:
                raise DriverError(f"simulator speaks protocol {version}, this driver {proto.PROTOCOL_VERSION}")
            self.line_bits = line
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ channel
    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.io_timeout)
        try:
            s.connect(str(self.socket_path))
        except OSError as exc:
            s.close()
            raise SimulatorDied(f"cannot connect to the simulator at {self.socket_path}: {exc}") from None
        self._sock = s

    def _dead(self, what: str) -> SimulatorDied:
        """Tear down after the connection failed; the error says how the server ended."""
        if self.server is not None:
            # Give a dying process a moment so the message can say how it ended.
            for _ in range(20):
                if not self.server.alive():
                    break
                time.sleep(0.005)
            msg = f"simulator process {self.server.pid} {self.server.describe_exit()} ({what})"
        else:
            msg = f"simulator at {self.socket_path}: {what}"
        self._teardown()
        return SimulatorDied(msg)

    def _stalled(self, op) -> SimulatorDied:
        """Tear down after ``op`` got no answer in time, saying whether the server was stopped."""
        what = f"no answer to {self._proto.Op(op).name} within {self.io_timeout:g} s"
        if self.server is None:
            self._teardown()
            return SimulatorDied(f"simulator at {self.socket_path}: {what}; disconnected from it")
        pid = self.server.pid
        if self.server.stopped():
            msg = (f"simulator process {pid} was stopped by a signal (SIGSTOP or SIGTSTP): {what}; "
                   f"it has been killed")
        else:
            msg = f"simulator process {pid} stalled: {what}; it has been killed"
        self._teardown()
        return SimulatorDied(msg)

    def _call(self, op, a=0, b=0, c=0, d=0, *, fds=None):
        if self._closed or self._sock is None:
            raise DriverError("the sim backend is closed")
        proto = self._proto
        msg = proto.MSG.pack(int(op), 0, a, b, c, d)
        try:
            if fds:
                socket.send_fds(self._sock, [msg], fds)
            else:
                self._sock.sendall(msg)
            buf = b""
            while len(buf) < proto.MSG.size:
                chunk = self._sock.recv(proto.MSG.size - len(buf))
                if not chunk:
                    raise self._dead("it closed the connection")
                buf += chunk
        except socket.timeout:
            raise self._stalled(op) from None
        except (BrokenPipeError, ConnectionResetError, ConnectionRefusedError) as exc:
            raise self._dead(f"connection lost: {exc}") from None
        status, _, ra, rb, rc, rd = proto.MSG.unpack(buf)
        if status == proto.Status.BUSY:
            self._teardown()
            raise _Busy(f"the simulator at {self.socket_path} is busy with another client; wait for that "
                              f"one to finish, or start another simulator (make sim-server)")
        if status == proto.Status.DENIED:
            self._teardown()
            raise DriverError(f"the simulator at {self.socket_path} refused this user (it serves only its owner)")
        if status == proto.Status.MMIO_TIMEOUT:
            raise DeviceError(f"the AFU did not answer the MMIO read at 0x{a:x}")
        if status != proto.Status.OK:
            raise DriverError(f"simulator refused {proto.Op(op).name}: {proto.Status(status).name}")
        return status, ra, rb, rc, rd

    # ------------------------------------------------------------------ Backend
    def mmio_read64(self, offset: int) -> int:
        return self._call(self._proto.Op.MMIO_READ, offset)[1]

    def mmio_write64(self, offset: int, value: int) -> None:
        self._call(self._proto.Op.MMIO_WRITE, offset, value)

    def allocate(self, nbytes: int) -> tuple[np.ndarray, int]:
        off = self._heap.alloc(nbytes)
        size = self._heap.regions[off]
        view = self._arena[off : off + size]
        view[:] = 0
        try:
            self._call(self._proto.Op.REGION_ADD, ARENA_IO_BASE + off, size)
        except BaseException:
            self._heap.release(off)
            raise
        return view, ARENA_IO_BASE + off

    @property
    def _regions(self) -> dict[int, int]:
        """The live buffers: io address -> bytes."""
        return {ARENA_IO_BASE + off: size for off, size in self._heap.regions.items()}

    def free(self, io_address: int) -> None:
        if io_address - ARENA_IO_BASE not in self._heap.regions:
            raise ValueError(f"no buffer at io address 0x{io_address:x}")
        self._call(self._proto.Op.REGION_REMOVE, io_address)
        self._heap.release(io_address - ARENA_IO_BASE)

    def check(self) -> None:
        if self.server is not None and not self.server.alive():
            raise self._dead("found dead by check()")
        _, cycle, addr, flags, count = self._call(self._proto.Op.STATUS)
        if flags & self._proto.BAD_SEEN:
            kind = "write to" if flags & self._proto.BAD_WRITE else "read from"
            raise DeviceError(f"the AFU tried to {kind} 0x{addr:x}, outside every allocated buffer "
                              f"({count} such line access(es); nothing was touched)", address=addr)

    def clear_errors(self) -> None:
        self._call(self._proto.Op.CLEAR)

    # ------------------------------------------------------------------ extras (sim only)
    def cycle(self) -> int:
        """Simulated cycles since the server started."""
        return self._call(self._proto.Op.STATUS)[1]

    def memory_stats(self) -> dict[str, int]:
        _, rd, wr, mx, viol = self._call(self._proto.Op.STATS)
        return {"lines_read": rd, "lines_written": wr, "max_read_lines_in_flight": mx, "almfull_violations": viol}

    # ------------------------------------------------------------------ lifetime
    def _teardown(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.server is not None:
            self.server.stop()
        self._closed = True

    def close(self) -> None:
        """Stop a private server, disconnect, unmap the arena. Idempotent, and complete even after
        a failure already tore the connection down."""
        if not self._closed and self._sock is not None and self.server is not None:
            try:  # a polite goodbye; the server exits when the socket closes anyway
                self._sock.settimeout(1.0)
                self._sock.sendall(self._proto.MSG.pack(self._proto.Op.SHUTDOWN, 0, 0, 0, 0, 0))
            except OSError:
                pass
        self._teardown()
        self._arena = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # a caller still holds a view; the mapping goes when the last view does
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
