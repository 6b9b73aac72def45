"""Every bad input and every fault gets a clear, bounded answer, and nothing a user owns is touched.

Each case states: the exit status (or the exception), words the message must contain, a time
bound, and that no process, socket or file is left behind. The command-line cases run ``lowbit``
in this process on the golden backend with small data; the simulator cases use the DMA test
double's seconds-long build (tests/driver_fixtures.py), except the Ctrl-C one, which trains on the
real engine at the test build (the cached ``afu_server``). docs/driver.md ("Guarantees") lists them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from driver_fixtures import TEST_AFU, afu_server, children_of, double_server, export_double, pid_alive  # noqa: F401
from lowbit.cli import main
from lowbit.contract import simwire as proto
from lowbit.data import Normalizer
from lowbit.driver import DriverError, SimulatorDied, open_device
from lowbit.contract.simprocess import runtime_dir, start_server
from lowbit_sim.simserver import build_root

ROOT = Path(__file__).resolve().parents[1]
PYPATH = os.pathsep.join(str(ROOT / p) for p in ("host", "hw", "sim"))


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def private_runtime_dir(tmp_path_factory, monkeypatch):
    """Socket directories of this test go to a folder of its own, so the leftover check cannot
    mistake another test session's simulator for one of ours."""
    d = tmp_path_factory.mktemp("rt")
    d.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    return d


@pytest.fixture(scope="module", autouse=True)
def warm_imports(tmp_path_factory):
    """Import the heavy modules and compile the numba kernels once, so each case's time bound
    measures the command, not imports or JIT compilation: on a fresh checkout (CI) the first run
    that quantizes pays ~9 s of numba compiling before its cache exists."""
    import lowbit.experiment  # noqa: F401
    import lowbit.qsgd.demo  # noqa: F401
    import lowbit.contract.golden  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import sklearn.datasets  # noqa: F401
    plot = tmp_path_factory.mktemp("warm") / "warm.png"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["train", *SMALL, "--plot", str(plot)]) == 0


def leftovers(tmp_path: Path) -> dict:
    """What a case could leave behind: child processes, private socket dirs, files under tmp_path."""
    return {
        "children": set(children_of(os.getpid())),
        "socket dirs": set(runtime_dir().glob("lowbit-*")),
        "files": set(tmp_path.rglob("*")),
    }


def assert_nothing_left(before: dict, tmp_path: Path, *, allowed=()):
    after = leftovers(tmp_path)
    assert after["children"] - before["children"] == set(), "a process was left behind"
    assert after["socket dirs"] - before["socket dirs"] == set(), "a socket directory was left behind"
    new = after["files"] - before["files"] - {Path(a) for a in allowed}
    assert new == set(), f"files were left behind: {sorted(map(str, new))}"


def run_lowbit(capsys, argv):
    """``lowbit ARGV`` in this process: (exit status, stdout, stderr, wall seconds)."""
    t0 = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err, time.monotonic() - t0


# ------------------------------------------------------------------------------ command line
@dataclass
class Case:
    """One ``lowbit`` invocation and what it must answer. ``{tmp}`` in argv is the case's folder."""

    argv: list[str]
    status: int
    message: list[str]
    seconds: float = 10.0
    files: dict[str, str] = field(default_factory=dict)  # written before the run: name -> text
    env: dict[str, str] = field(default_factory=dict)  # "{tmp}" substituted too
    creates: list[str] = field(default_factory=list)  # files the run must write (and may leave)
    memory: int | None = None  # pretend this much memory is available (bytes)


SMALL = ["--data", "synthetic:200:5", "--epochs", "2", "--backend", "golden"]

CLI_CASES = {
    # 3. limits, checked before any work (the float run included)
    "libsvm index 2e9 vs MAX_FEATURES": Case(
        ["train", "--data", "{tmp}/huge.svm", "--backend", "golden"], 2,
        ["2000000000 features", "counting the intercept", "max_features = 8192", "huge.svm"],
        files={"huge.svm": "1 1:0.5 2000000000:1\n-1 3:1\n"}),
    "libsvm dense size vs memory": Case(
        ["train", "--data", "{tmp}/wide.svm", "--backend", "float"], 2,
        ["wide.svm", "2 rows x 300000000 features is 2.2 GiB as dense float32", "the 1.0 GiB of memory available"],
        files={"wide.svm": "1 1:0.5 300000000:1\n-1 3:1\n"}, memory=1 << 30),
    "synthetic dense size vs memory": Case(
        ["train", "--data", "synthetic:1000000000:1000", "--backend", "float"], 2,
        ["synthetic:1000000000:1000", "as dense float32", "of memory available"]),
    "features + intercept over MAX_FEATURES": Case(
        ["train", "--data", "synthetic:10:8192", "--backend", "golden"], 2,
        ["8192 features (8193 counting the intercept column)", "max_features = 8192"]),
    "batch over MAX_BATCH": Case(["train", *SMALL, "--batch", "1000000000"], 2,
                                 ["--batch 1000000000", "at most 4096"], seconds=3),
    "copies over MAX_COPIES": Case(["train", *SMALL, "--copies", "100000"], 2,
                                   ["--copies 100000", "at most 255"], seconds=3),
    "epochs over MAX_EPOCHS": Case(["train", "--data", "synthetic:200:5", "--epochs", "70000"], 2,
                                   ["--epochs 70000", "at most 65535"], seconds=3),
    # 4. the paths reported are the paths written
    "--plot without a suffix": Case(["train", *SMALL, "--json", "--plot", "{tmp}/x"], 0, ['"plot": "{tmp}/x.png"'],
                                    creates=["x.png"]),
    "--save-model without .npz": Case(["train", *SMALL, "--save-model", "{tmp}/m"], 0,
                                      ["models written to {tmp}/m.npz"], creates=["m.npz"]),
    "quantize -o without .npz": Case(["quantize", "synthetic:50:3", "--bits", "2", "-o", "{tmp}/q"], 0,
                                     ["-> {tmp}/q.npz"], creates=["q.npz"]),
    # 5. OS and argument errors: one line, no traceback, nothing created
    "output folder under a file": Case(["train", *SMALL, "--plot", "{tmp}/afile/sub/p.png"], 2,
                                       ["--plot {tmp}/afile/sub/p.png", "afile is not a directory"],
                                       files={"afile": "mine"}, seconds=3),
    "output path is a folder": Case(["train", *SMALL, "--save-model", "{tmp}/d.npz"], 2,
                                    ["--save-model {tmp}/d.npz", "is a directory"], files={"d.npz/keep": "x"},
                                    seconds=3),
    "LOWBIT_BUILD_DIR is a file": Case(["info", "--backend", "sim"], 1,
                                       ["LOWBIT_BUILD_DIR={tmp}/afile", "writable directory"],
                                       files={"afile": "mine"}, env={"LOWBIT_BUILD_DIR": "{tmp}/afile"}),
    "--fmax 0": Case(["train", *SMALL, "--fmax", "0"], 2, ["--fmax takes a positive clock", "'0'"], seconds=3),
    "--fmax -5": Case(["train", *SMALL, "--fmax=-5"], 2, ["--fmax takes a positive clock", "'-5'"], seconds=3),
    "--fmax nan": Case(["train", *SMALL, "--fmax", "nan"], 2, ["--fmax takes a positive clock"], seconds=3),
    "--fmax inf": Case(["train", *SMALL, "--fmax", "inf"], 2, ["--fmax takes a positive clock"], seconds=3),
    # 6. divergence: a clear error, status 1, strict JSON
    "--step 0.99 diverges": Case(["train", *SMALL, "--step", "0.99"], 1,
                                 ["float64 diverged at epoch", "use a smaller --step", "--step auto would use"]),
    "--step 0.99 --no-float diverges on the engine": Case(
        ["train", *SMALL, "--step", "0.99", "--no-float"], 1, ["b=4 uniform diverged at epoch", "smaller --step"]),
    # 11. minor
    "--seed -1": Case(["train", *SMALL, "--seed=-1"], 2, ["--seed takes a non-negative integer"], seconds=3),
    "quantize --seed -1": Case(["quantize", "synthetic:50:3", "--bits", "2", "-o", "{tmp}/q", "--seed=-1"], 2,
                               ["--seed takes a non-negative integer"], seconds=3),
    "qsgd-demo --lr -1": Case(["qsgd-demo", "--lr", "-1"], 2, ["--lr must be a positive number"], seconds=3),
    "qsgd-demo --momentum 1": Case(["qsgd-demo", "--momentum", "1"], 2, ["--momentum must be in [0, 1)"],
                                   seconds=3),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_command_line_case(name, capsys, tmp_path, monkeypatch):
    case = CLI_CASES[name]
    sub = lambda text: text.replace("{tmp}", str(tmp_path))  # noqa: E731
    for rel, text in case.files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for k, v in case.env.items():
        monkeypatch.setenv(k, sub(v))
    if case.memory is not None:
        monkeypatch.setattr("lowbit.data.available_memory", lambda: case.memory)
    before = leftovers(tmp_path)
    code, out, err, wall = run_lowbit(capsys, [sub(a) for a in case.argv])
    assert code == case.status, f"exit status {code}; stderr: {err}"
    text = out + err
    for words in case.message:
        assert sub(words) in text, f"{sub(words)!r} not in {text!r}"
    assert "Traceback" not in err
    if case.status:
        error_lines = [line for line in err.splitlines() if "error" in line]
        assert len(error_lines) == 1, err  # one line naming the problem
    assert wall < case.seconds, f"took {wall:.1f} s"
    for rel in case.creates:
        assert (tmp_path / rel).is_file()
        assert not (tmp_path / rel.rsplit(".", 1)[0]).exists()  # not also a file at the name given
    assert_nothing_left(before, tmp_path, allowed=[tmp_path / c for c in case.creates])


def test_diverging_json_is_strict_with_a_flag(capsys):
    code, out, err, _ = run_lowbit(capsys, ["train", *SMALL, "--step", "0.99", "--json"])
    assert code == 1 and "diverged" in err

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    summary = json.loads(out, parse_constant=refuse)  # NaN / Infinity would be refused here
    assert summary["diverged"] == "float64"
    assert summary["runs"][0]["label"] == "float64"
    losses = summary["runs"][0]["train_loss"]
    assert summary["nonfinite_as_null"] is (None in losses)
    assert any(v is None or v > 100 for v in losses)


def test_healthy_json_says_no_value_was_replaced(capsys):
    code, out, _, _ = run_lowbit(capsys, ["train", *SMALL, "--json"])
    assert code == 0
    summary = json.loads(out)
    assert summary["nonfinite_as_null"] is False and summary["diverged"] is None


def test_a_column_spanning_1e308_is_normalised_not_zeroed():
    X = np.array([[-1e308, 1.0], [1e308, 2.0], [0.0, 3.0], [5e307, 4.0]])
    y = np.array([1.0, -1.0, 1.0, -1.0])
    norm = Normalizer().fit(X, y)
    Xn = norm.transform_X(X)
    np.testing.assert_allclose(Xn[:, 0], [-1.0, 1.0, 0.0, 0.5])
    assert np.all(np.isfinite(norm.half_range)) and np.all(np.isfinite(norm.center))
    coef, intercept = norm.model_to_original(np.array([0.5, 0.25, 0.125]))
    assert np.all(np.isfinite(coef)) and math.isfinite(intercept)


# ------------------------------------------------------------------------------ simulator
@pytest.fixture(scope="module")
def double_verilog():
    return export_double(build_root() / "double")


def copy_job(dev, rows: int):
    """Start the test double copying ``rows`` lines; (src, dst, status buffer)."""
    src = dev.allocate((rows, 64), "uint8")
    src[:] = np.random.default_rng(rows).integers(0, 256, src.shape, dtype=np.uint8)
    dst = dev.allocate((rows, 64), "uint8")
    status = dev.allocate((64,), "uint8")
    for name, value in (("DATA_ADDR", src.line_address), ("MODEL_ADDR", dst.line_address),
                        ("STATUS_ADDR", status.line_address), ("ROWS", rows), ("RUN_ID", 5), ("BITS", 1)):
        dev.write_reg(name, value)
    dev.start()
    return src, dst, status


def test_device_opened_in_a_thread_outlives_the_thread(double_server, tmp_path):
    """1. The simulator's life is tied to the process, not to the thread that started it."""
    before = leftovers(tmp_path)
    opened = {}
    t = threading.Thread(target=lambda: opened.setdefault("dev", open_device("sim", server=double_server,
                                                                              memory=1 << 20)))
    t.start()
    t.join()
    dev = opened["dev"]
    time.sleep(0.5)  # PR_SET_PDEATHSIG would have fired by now
    assert dev.backend.server.alive()
    src, dst, status = copy_job(dev, 64)
    dev.wait(10, status_buffer=status, run_id=5)
    np.testing.assert_array_equal(dst, src)
    dev.close()
    assert_nothing_left(before, tmp_path)


@dataclass
class PathCase:
    make: object  # callable(path) -> None: what sits at the path before the server starts
    refused: str | None  # words of the refusal, None if the server must start
    kept: bool  # the thing at the path is still there, unchanged, after the server ends


def _stale_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # bound, never listened on, not unlinked: what a killed server leaves


SOCKET_PATHS = {
    "a regular file": PathCase(lambda p: p.write_text("precious"), "exists and is not a socket", True),
    "a directory": PathCase(lambda p: p.mkdir(), "exists and is not a socket", True),
    "a stale socket": PathCase(_stale_socket, None, False),
    "nothing": PathCase(lambda p: None, None, False),
}


@pytest.mark.parametrize("name", list(SOCKET_PATHS))
def test_socket_path_is_never_taken_from_its_owner(name, double_server, tmp_path):
    """2. --socket PATH replaces only a stale socket and removes only what the server created."""
    case = SOCKET_PATHS[name]
    path = tmp_path / "s.sock"
    case.make(path)
    before = leftovers(tmp_path)
    t0 = time.monotonic()
    if case.refused:
        with pytest.raises(RuntimeError, match=case.refused) as info:
            start_server(double_server, socket_path=path, once=False, accept_timeout=0)
        assert str(path) in str(info.value)
    else:
        server = start_server(double_server, socket_path=path, once=False, accept_timeout=0)
        with open_device("sim", socket=path, memory=1 << 20) as dev:
            dev.write_reg("SCRATCH", 7)
        server.stop()
        assert not path.exists()  # the socket it bound is removed
    assert time.monotonic() - t0 < 5
    if case.kept:
        assert path.exists() and (not path.is_file() or path.read_text() == "precious")
    assert_nothing_left(before, tmp_path, allowed=[path] if case.kept else [])


def test_a_live_servers_socket_is_not_taken_over(double_server, tmp_path):
    path = tmp_path / "s.sock"
    first = start_server(double_server, socket_path=path, once=False, accept_timeout=0)
    try:
        with pytest.raises(RuntimeError, match="something is listening on"):
            start_server(double_server, socket_path=path, once=False, accept_timeout=0)
        with open_device("sim", socket=path, memory=1 << 20) as dev:  # the first one still serves
            dev.write_reg("SCRATCH", 3)
            assert dev.read_reg("SCRATCH") == 3
    finally:
        first.stop()
    assert not path.exists()


def test_server_removes_only_the_socket_it_bound(double_server, tmp_path):
    """A file that replaced the socket (another tool's) survives the server's exit."""
    path = tmp_path / "s.sock"
    server = start_server(double_server, socket_path=path, once=False, accept_timeout=0)
    path.unlink()
    path.write_text("someone else's")
    server.stop()
    assert path.read_text() == "someone else's"


def test_second_client_is_told_busy(double_server, tmp_path):
    """8. A second client of a long-lived server is refused at once, and the first is unharmed."""
    server = start_server(double_server, once=False, accept_timeout=0)
    try:
        with open_device("sim", socket=server.socket_path, memory=1 << 20) as first:
            first.write_reg("SCRATCH", 11)
            t0 = time.monotonic()
            with pytest.raises(DriverError, match="busy with another client"):
                open_device("sim", socket=server.socket_path, memory=1 << 20)
            assert time.monotonic() - t0 < 2
            assert first.read_reg("SCRATCH") == 11
            src, dst, status = copy_job(first, 32)
            first.wait(10, status_buffer=status, run_id=5)
            np.testing.assert_array_equal(dst, src)
    finally:
        server.stop()


def test_stopped_simulator_is_reported_as_stopped(double_server, tmp_path):
    """8. SIGSTOP is named as such (not "still running"), within io_timeout, and cleaned up."""
    before = leftovers(tmp_path)
    dev = open_device("sim", server=double_server, memory=1 << 20, io_timeout=0.5)
    proc = dev.backend.server.process
    os.kill(proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(SimulatorDied) as info:
        dev.read_reg("SCRATCH")
    assert time.monotonic() - t0 < 0.5 + 2
    msg = str(info.value)
    assert "stopped by a signal" in msg and "no answer to MMIO_READ within 0.5 s" in msg
    assert "has been killed" in msg and "still running" not in msg
    assert proc.poll() is not None
    dev.close()
    assert_nothing_left(before, tmp_path)


@pytest.mark.parametrize("xdg", ["world-writable", "another user's", "missing"])
def test_socket_directory_cannot_be_preempted(xdg, double_server, tmp_path, monkeypatch):
    """5. An unusable $XDG_RUNTIME_DIR, or a /tmp/lowbit-$UID made by someone else, blocks nobody."""
    d = tmp_path / "xdg"
    if xdg != "missing":
        d.mkdir()
        if xdg == "world-writable":
            d.chmod(0o777)
        else:
            os.chown(d, 65534, 65534)
            d.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(d))
    squatted = Path(f"/tmp/lowbit-{os.getuid()}")  # the old predictable name, taken by "someone"
    made = not squatted.exists()
    if made:
        squatted.mkdir()
        os.chown(squatted, 65534, 65534)
    try:
        with open_device("sim", server=double_server, memory=1 << 20) as dev:
            path = dev.backend.socket_path
            assert not path.is_relative_to(d) and not path.is_relative_to(squatted)
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and path.parent.stat().st_uid == os.getuid()
            dev.write_reg("SCRATCH", 1)
        assert not path.parent.exists()
    finally:
        if made:
            squatted.rmdir()


def _raw_client(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    return s


def _ask(s, op, a=0, b=0, c=0, d=0, fds=None):
    msg = proto.MSG.pack(int(op), 0, a, b, c, d)
    if fds:
        socket.send_fds(s, [msg], fds)
    else:
        s.sendall(msg)
    buf = b""
    while len(buf) < proto.MSG.size:
        chunk = s.recv(proto.MSG.size - len(buf))
        assert chunk, "the server closed the connection"
        buf += chunk
    return proto.Status(proto.MSG.unpack(buf)[0])


IO_BASE = 1 << 32
ARENA = 1 << 20
SERVER_REQUESTS = {
    # 10. sizes a client sends, checked against the arena and the server's limits
    "arena larger than its file": [(proto.Op.HELLO, IO_BASE, ARENA * 4, 100 | 100 << 32, 0, "fd")],
    "arena over MAX_ARENA": [(proto.Op.HELLO, IO_BASE, proto.MAX_ARENA + 4096, 100 | 100 << 32, 0, "fd")],
    "arena wrapping the io space": [(proto.Op.HELLO, (1 << 64) - 4096, ARENA, 100 | 100 << 32, 0, "fd")],
    "latency over MAX_LATENCY": [(proto.Op.HELLO, IO_BASE, ARENA, 100 | (proto.MAX_LATENCY + 1) << 32, 0, "fd")],
    "region size wrapping": [(proto.Op.HELLO, IO_BASE, ARENA, 100 | 100 << 32, 0, "fd", proto.Status.OK),
                             (proto.Op.REGION_ADD, IO_BASE + 4096, (1 << 64) - 4096, 0, 0)],
    "region past the arena": [(proto.Op.HELLO, IO_BASE, ARENA, 100 | 100 << 32, 0, "fd", proto.Status.OK),
                              (proto.Op.REGION_ADD, IO_BASE + ARENA - 4096, 8192, 0, 0)],
    "RUN of 2^63 cycles": [(proto.Op.HELLO, IO_BASE, ARENA, 100 | 100 << 32, 0, "fd", proto.Status.OK),
                           (proto.Op.RUN, 1 << 63, 0, 0, 0)],
    "RUN over MAX_RUN_CYCLES": [(proto.Op.HELLO, IO_BASE, ARENA, 100 | 100 << 32, 0, "fd", proto.Status.OK),
                                (proto.Op.RUN, proto.MAX_RUN_CYCLES + 1, 0, 0, 0)],
}


@pytest.mark.parametrize("name", list(SERVER_REQUESTS))
def test_server_checks_every_size_a_client_sends(name, double_server):
    server = start_server(double_server, once=False, accept_timeout=0)
    fd = os.memfd_create("arena", os.MFD_CLOEXEC)
    os.ftruncate(fd, ARENA)
    try:
        s = _raw_client(server.socket_path)
        t0 = time.monotonic()
        for req in SERVER_REQUESTS[name]:
            op, a, b, c, d, *rest = req
            fds = [fd] if rest and rest[0] == "fd" else None
            expect = rest[1] if len(rest) > 1 else proto.Status.BAD_REQUEST
            assert _ask(s, op, a, b, c, d, fds=fds) == expect
        assert time.monotonic() - t0 < 2
        assert _ask(s, proto.Op.STATUS) == proto.Status.OK  # still serving this client
        s.close()
        assert server.alive()
    finally:
        os.close(fd)
        server.stop()


def test_server_refuses_another_user(double_server, tmp_path):
    """10. SO_PEERCRED: a client of another uid is answered DENIED, even if it can reach the socket."""
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    # The other user runs the system interpreter: this one may sit where only root can reach
    # (a venv under /root); the client needs nothing but socket and struct.
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 for the other user")
    # A socket directory the other user can reach at all (pytest's own tmp dirs are root-only).
    where = Path(tempfile.mkdtemp(prefix="lowbit-peercred-", dir="/tmp"))
    server = start_server(double_server, once=False, accept_timeout=0, socket_path=where / "sim.sock")
    try:
        where.chmod(0o755)
        server.socket_path.chmod(0o777)
        script = (f"import socket, struct; s = socket.socket(socket.AF_UNIX); s.settimeout(5); "
                  f"s.connect({str(server.socket_path)!r}); s.sendall(struct.pack('<IIQQQQ', 6, 0, 0, 0, 0, 0)); "
                  f"print(struct.unpack('<IIQQQQ', s.recv(40))[0])")
        res = subprocess.run([python, "-c", script], user=65534, group=65534, capture_output=True,
                             text=True, timeout=10)
        assert res.stdout.strip() == str(int(proto.Status.DENIED)), res.stderr
        with open_device("sim", socket=server.socket_path, memory=1 << 20) as dev:  # the owner is served
            dev.write_reg("SCRATCH", 2)
    finally:
        server.stop()
        shutil.rmtree(where, ignore_errors=True)


@contextlib.contextmanager
def reaped(p: subprocess.Popen):
    """``p`` is killed and reaped on the way out, whatever the test asserted."""
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _sigint_default():
    """In the child: SIGINT back to its default. A shell starts background jobs with SIGINT
    ignored, and Python keeps an ignored SIGINT ignored, so without this the suite run as a
    background job would test nothing about Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c(p: subprocess.Popen, within: float = 3.0) -> str:
    """SIGINT to ``p``'s process group (what the terminal's Ctrl-C sends); asserts it ended within
    ``within`` seconds and returns its stderr."""
    t0 = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < within
    return err


def test_ctrl_c_on_sim_server_stops_it_cleanly(double_verilog, double_server, tmp_path):
    """8. Ctrl-C on ``make sim-server``: "stopped", exit 0, socket and its folder gone, no process."""
    env = dict(os.environ, PYTHONPATH=PYPATH)
    p = subprocess.Popen([sys.executable, "-m", "lowbit_sim.simserver", "--verilog", str(double_verilog)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True,  # its own group: killpg stands for the terminal's Ctrl-C
                         preexec_fn=_sigint_default)
    with reaped(p):
        path = Path(p.stdout.readline().strip())
        assert path.exists()
        time.sleep(0.3)
        server_pid = [c for c in children_of(p.pid)]
        err = ctrl_c(p)
    assert p.returncode == 0, err
    assert "simulator stopped" in err and "still running" not in err and "Traceback" not in err
    assert not path.exists() and not path.parent.exists()
    assert server_pid and not any(pid_alive(pid) for pid in server_pid)


CTRL_C_SCRIPT = """
import sys
from lowbit.driver.sim_engines import SIM_ENGINES
# the test build of the real engine (cached), not the full ones
SIM_ENGINES.update(woven={afu!r}, planes={afu!r})
from lowbit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_ctrl_c_during_training_says_interrupted(delay, afu_server, tmp_path):
    """7. Ctrl-C (SIGINT to the foreground process group) at any moment of a sim run: "interrupted",
    exit status 130, never a device error, and no simulator left behind."""
    env = dict(os.environ, PYTHONPATH=PYPATH)
    argv = ["train", "--data", "synthetic:3000:60", "--epochs", "200", "--backend", "sim", "--no-float",
            "--plot", str(tmp_path / "p.png")]
    p = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT.format(afu=TEST_AFU), *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True, preexec_fn=_sigint_default)
    with reaped(p):
        for line in p.stderr:  # wait until the engine is open (the simulator runs)
            if line.startswith("engine:"):
                break
        time.sleep(delay)
        servers = children_of(p.pid)
        err = ctrl_c(p)
    assert p.returncode == 130, err
    assert "lowbit: interrupted" in err and "device error" not in err and "Traceback" not in err
    assert servers and not any(pid_alive(pid) for pid in servers)
    assert list(tmp_path.iterdir()) == []  # no plot from an interrupted run
