"""The two CCI-P host models agree: the Python one (lowbit_sim.ccip_host, every Python bench) and the
C++ one (simserver/harness.cpp, the sim backend).

* The harness's header is generated from the Python definitions and matches them; the harness
  keeps none of those numbers itself.
* One request trace goes through both: ``CcipHost`` directly, and ``trace_check.cpp`` (the
  harness's own rules, ``ccip_rules.h``, compiled with the generated header); every request gets
  the same verdict (legal or not), MMIO tids stay inside the tid width in both.
"""

import re
import shutil
import subprocess

import numpy as np
import pytest

from lowbit.contract import ccip
from lowbit_sim import simserver
from lowbit_sim.ccip_host import CcipHost
from lowbit_sim.host_memory import HostMemory
from lowbit.contract import simwire as proto


def header_values(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r"\b(\w+) = (\d+)(?:ull)?[,;]", text)}


def test_generated_header_matches_the_python_definitions():
    text = simserver.protocol_header()
    got = header_values(text)
    want = {"PROTOCOL_VERSION": proto.PROTOCOL_VERSION, "MSG_BYTES": proto.MSG.size,
            **{f"OP_{op.name}": op.value for op in proto.Op}, **{f"ST_{st.name}": st.value for st in proto.Status},
            **{n: getattr(proto, n) for n in ("BAD_SEEN", "BAD_WRITE", "MAX_ARENA", "MAX_LATENCY", "MAX_REGIONS",
                                              "MAX_RUN_CYCLES")},
            **{n: getattr(ccip, n) for n in ("ALMOST_FULL_SLACK", "MMIO_TID_BITS", "MMIO_TID_MASK", "MMIO_SPAN",
                                             "ADDR_BITS", "MDATA_BITS", "C1_REQ_WRLINE", "C1_REQ_WRFENCE")}}
    assert got == want
    lines = re.search(r"CL_LEN_LINES\[4\] = \{([^}]*)\}", text).group(1)
    assert [int(x) for x in lines.split(",")] == [ccip.CL_LEN_LINES.get(k, 0) for k in range(4)]


def test_the_harness_keeps_no_copy_of_the_generated_numbers():
    cpp = (simserver.HARNESS.read_text() + simserver.RULES.read_text())
    assert '#include "lowbit_protocol.h"' in cpp
    for name in header_values(simserver.protocol_header()):
        assert not re.search(rf"\b{name}\s*=", cpp), f"{name} is defined by hand in the C++"
    assert not re.search(r"0x1ff|1u << 18|\b512\b", cpp.replace("LINE_BITS 512", ""))


@pytest.fixture(scope="module")
def trace_check(tmp_path_factory):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    out = tmp_path_factory.mktemp("trace_check")
    (out / "lowbit_protocol.h").write_text(simserver.protocol_header())
    exe = out / "trace_check"
    subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{out}", f"-I{simserver.HARNESS.parent}",
                    str(simserver.HARNESS.with_name("trace_check.cpp")), "-o", str(exe)], check=True)
    return exe


def run_cpp(exe, events) -> list[int]:
    text = "\n".join(" ".join(str(x) for x in e) for e in events) + "\n"
    res = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True)
    return [int(x) for x in res.stdout.split()]


def run_python(events, memory: HostMemory) -> list[int]:
    """The same trace through CcipHost over ``memory`` (where the trace's buffers, its "M" events,
    are allocated); the verdict (or tid) of each request, as trace_check prints."""
    # The harness has one MMIO read on the bus at a time and gives up on it at its timeout; here a
    # read not answered by the next event expires the same way.
    host = CcipHost(memory, read_latency=(1, 1), write_latency=(1, 1), mmio_timeout=1)
    out = []
    last = None
    for op, *args in events:
        if op in "BM":
            continue
        if op == "A":
            host.set_almfull(*args)
        elif op == "R":
            out.append(int(host.read_request(args[0], args[1], 0)))
        elif op == "W":
            out.append(int(host.write_request(args[0], args[1], args[2], 0, 0)))
        elif op == "T":
            last = host.mmio_read(0)
            host.advance()  # on the bus
            out.append(last.tid)
        elif op == "P":
            out.append(int(host.mmio_response((last.tid + args[0]) & ccip.MMIO_TID_MASK, 0)))
        host.advance()
    return out


def make_trace(seed: int, line_bytes: int):
    """Random requests, legal and not: storms with bursts past the slack, every cl_len, aligned and
    misaligned, inside and outside the buffers (and across their ends), MMIO answers with the right
    tid and a wrong one, and enough reads to wrap the tid."""
    rng = np.random.default_rng(seed)
    mem = HostMemory(line_bytes=line_bytes)
    bufs = [mem.alloc_lines(int(rng.integers(1, 40)), guard=line_bytes * int(rng.integers(0, 3)))
            for _ in range(4)]
    events = [("B", line_bytes)] + [("M", b.address, b.nbytes) for b in bufs]
    level = [0, 0]

    def some_line():
        b = bufs[int(rng.integers(len(bufs)))]
        return max(0, b.line_address + int(rng.integers(-6, b.nbytes // line_bytes + 6)))

    for _ in range(4000):
        r = rng.random()
        if r < 0.04:
            ch = int(rng.integers(2))
            level[ch] ^= 1
            events.append(("A", ch, level[ch]))
        elif r < 0.5:
            events.append(("R", int(rng.choice([0, 1, 2, 3], p=[0.5, 0.2, 0.05, 0.25])), some_line()))
        elif r < 0.8:
            sop, cl_len = (1, 0) if rng.random() < 0.9 else (int(rng.integers(2)), int(rng.integers(4)))
            events.append(("W", sop, cl_len, some_line()))
        else:
            events.append(("T",))
            events.append(("P", 0 if rng.random() < 0.8 else int(rng.integers(1, 512))))
    return events, mem


@pytest.mark.parametrize("seed,line_bytes", [(1, 64), (2, 16), (3, 8)])
def test_both_models_give_every_request_the_same_verdict(trace_check, seed, line_bytes):
    events, memory = make_trace(seed, line_bytes)
    cpp, py = run_cpp(trace_check, events), run_python(events, memory)
    kinds = [e[0] for e in events if e[0] in "RWTP"]
    assert len(cpp) == len(py) == len(kinds)
    verdicts = [(k, c, p) for k, c, p in zip(kinds, cpp, py) if k != "T"]
    differ = [(i, v) for i, v in enumerate(verdicts) if v[1] != v[2]]
    assert not differ, f"{len(differ)} verdicts differ, first {differ[:5]}"
    # Both saw legal and illegal requests of each kind (the trace is not vacuous).
    for kind in "RWP":
        assert {c for k, c, _ in verdicts if k == kind} == {0, 1}, kind
    tids = [(c, p) for k, c, p in zip(kinds, cpp, py) if k == "T"]
    assert len(tids) > ccip.MMIO_TID_MASK + 1 and all(max(t) <= ccip.MMIO_TID_MASK for t in tids)


def test_a_request_past_the_slack_is_flagged_by_both(trace_check):
    slack = ccip.ALMOST_FULL_SLACK
    mem = HostMemory(line_bytes=64)
    b = mem.alloc_lines(64)
    events = [("B", 64), ("M", b.address, b.nbytes), ("A", 0, 1), ("A", 1, 1)]
    events += [("R", 0, b.line_address + i) for i in range(slack + 2)]
    events += [("W", 1, 0, b.line_address + i) for i in range(slack + 1)]
    events += [("A", 0, 0), ("R", 0, b.line_address), ("A", 0, 1)] + [("R", 0, b.line_address)] * slack
    want = [1] * slack + [0, 0] + [1] * slack + [0] + [1] + [1] * slack
    assert run_cpp(trace_check, events) == want
    assert run_python(events, mem) == want
