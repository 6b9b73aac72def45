"""The simulator server as a process: start it on a Unix socket, wait for it to listen, stop it.

The server executable (built by ``python -m lowbit_sim.simserver --build-only``, the [sim] extra)
takes ``--socket PATH`` and optionally ``--once`` (exit when the first client disconnects),
``--accept-timeout S``, ``--remove-dir`` (remove the socket's private directory on exit) and
``--parent-fd FD`` (exit when that pipe's write end closes); it prints ``READY`` once it listens,
then speaks :mod:`.simwire`. Both the host's sim backend (a private server) and ``make sim-server``
(a long-lived one) start it with :func:`start_server`, so this lives in the contract: standard
library only, and neither side imports the other for it.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def runtime_dir() -> Path:
    """Where private socket directories go: ``$XDG_RUNTIME_DIR`` if it is a private directory of
    this user, else the system temporary directory.

    Nothing here has a predictable name: each server gets its own :func:`tempfile.mkdtemp`
    directory inside (see :func:`private_socket_dir`), so another local user cannot occupy it.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            st = os.lstat(xdg)
        except OSError:
            st = None
        if (st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
                and not st.st_mode & 0o077 and os.access(xdg, os.W_OK | os.X_OK)):
            return Path(xdg)
    return Path(tempfile.gettempdir())


def private_socket_dir() -> Path:
    """A fresh directory only this user can enter (``mkdtemp``: 0700, an unguessable name)."""
    return Path(tempfile.mkdtemp(prefix="lowbit-", dir=runtime_dir()))




def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``R``, ``S``, ``T`` stopped, ``Z``...), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@dataclass
class ServerProcess:
    """A running simulator server. :meth:`stop` ends it (and is idempotent).

    Attributes
    ----------
    lifeline : int
        Write end of the pipe the server watches (-1 if not tied to this process): closing it, or
        this process ending in any way, makes the server exit.
    private_dir : Path or None
        The mkdtemp directory made for the socket (removed by :meth:`stop`), None for a socket
        path the caller chose.
    """

    process: subprocess.Popen
    socket_path: Path
    line_bits: int
    log: list[str] = field(default_factory=list)
    lifeline: int = -1
    private_dir: Path | None = None
    socket_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the socket the server bound

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stopped(self) -> bool:
        """True if the process is stopped by a signal (SIGSTOP, SIGTSTP, a debugger)."""
        return self.alive() and process_state(self.pid) in ("T", "t")

    def describe_exit(self) -> str:
        rc = self.process.poll()
        if rc is None:
            return "was stopped (SIGSTOP or SIGTSTP)" if self.stopped() else "is still running"
        if rc < 0:
            try:
                return f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"was killed by signal {-rc}"
        err = ""
        if self.process.stderr is not None:
            try:
                err = self.process.stderr.read().decode(errors="replace").strip()
            except (OSError, ValueError):
                pass
        return f"exited with status {rc}" + (f": {err[-500:]}" if err else "")

    def stop(self, timeout: float = 2.0) -> None:
        """Terminate, then kill after ``timeout`` seconds; always reaps the process and removes
        the socket it bound (only that file) and the private directory (only if empty)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                os.kill(self.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for s in (self.process.stdout, self.process.stderr):
            if s is not None:
                s.close()
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1
        remove_own_socket(self.socket_path, self.socket_id)
        if self.private_dir is not None:
            try:
                self.private_dir.rmdir()
            except OSError:
                pass  # not empty: something else is in it, and it is not ours to delete


def socket_id(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the socket at ``path``, None if there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISSOCK(st.st_mode) else None


def remove_own_socket(path: Path, ident: tuple[int, int] | None) -> None:
    """Unlink ``path`` only if it is still the very socket ``ident`` names."""
    if ident is not None and socket_id(path) == ident:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def start_server(exe: Path, *, socket_path: Path | None = None, once: bool = True, tie_to_parent: bool = True,
                 accept_timeout: float = 30.0, ready_timeout: float = 30.0, line_bits: int = 512) -> ServerProcess:
    """Start ``exe`` on a socket and wait until it listens.

    Parameters
    ----------
    socket_path : path, optional
        Where to listen. An existing file there is refused unless it is a stale socket (one nobody
        listens on); default: ``sim.sock`` in a fresh :func:`private_socket_dir`.
    once : bool
        Exit when the first client disconnects (a driver's private simulator).
    tie_to_parent : bool
        The server exits when this process does, by any means (``kill -9`` included) and whichever
        thread started it: it watches a pipe whose write end only this process holds.
    accept_timeout : float
        Exit if no client connects within this many seconds (0: wait forever).

    Raises
    ------
    RuntimeError
        The server did not start; the message says why (its own words when it refused the path).
    """
    private_dir = None
    if socket_path is None:
        private_dir = private_socket_dir()
        path = private_dir / "sim.sock"
    else:
        path = Path(socket_path)
    cmd = [str(exe), "--socket", str(path)]
    if private_dir is not None:
        cmd.append("--remove-dir")
    if once:
        cmd.append("--once")
    if accept_timeout:
        cmd += ["--accept-timeout", str(accept_timeout)]
    pass_fds, lifeline = (), -1
    if tie_to_parent:
        r, lifeline = os.pipe()  # both ends close-on-exec: only the server inherits r (pass_fds)
        pass_fds = (r,)
        cmd += ["--parent-fd", str(r)]
    try:
        # Its own session: the terminal's Ctrl-C (SIGINT to the foreground process group) reaches
        # the driver only, which then stops the server in order, instead of both racing to die.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=pass_fds, start_new_session=True)
    except BaseException:
        for fd in (*pass_fds, lifeline):
            if fd >= 0:
                os.close(fd)
        if private_dir is not None:
            private_dir.rmdir()
        raise
    for fd in pass_fds:
        os.close(fd)
    server = ServerProcess(proc, path, line_bits, lifeline=lifeline, private_dir=private_dir)
    deadline = time.monotonic() + ready_timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                break
            r, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
            if r:
                ch = os.read(proc.stdout.fileno(), 256)
                if not ch:
                    break
                line += ch
        if not line.startswith(b"READY"):
            try:  # stdout closing comes a moment before the exit can be reaped
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                why = f"no READY within {ready_timeout:g} s"
            else:
                proc.wait()
                why = server.describe_exit()
            raise RuntimeError(f"simulator server did not start ({why})")
        server.socket_id = socket_id(path)
    except BaseException:
        server.stop()
        raise
    return server
