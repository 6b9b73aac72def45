"""`make bitstream` never hangs on a design that does not route: each nextpnr run has a time
budget (``--route-minutes``), its progress (placement estimate, router2's overused wires by
iteration) is printed as it goes and read back from its log, and a run stopped at its budget is
reported as not routed, with how far it got, instead of a bitstream or an fmax."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time

import pytest

from lowbit_hw.board import build
from lowbit_hw.board.build import (NotRouted, describe_progress, failed_record, fastest_run, nextpnr_progress,
                                   render, run_watched)

PLACED = """\
Info: Device utilisation:
Info: 	        TRELLIS_COMB:   58741/  83640    70%
Info: 	          TRELLIS_FF:   52671/  83640    62%
Info: Running Static placer...
Info: Running simulated annealing placer for refinement.
Info: Max frequency for clock '$glbnet$clk': 44.08 MHz (FAIL at 125.00 MHz)
"""
ROUTING = """\
Info: Running router2...
Info:     iter=1 wires=1172620 overused=74688 overuse=93879 archfail=NA
Info:     iter=2 wires=1150000 overused=49400 overuse=60000 archfail=NA
Info:     iter=3 wires=1140000 overused=1503 overuse=1600 archfail=NA
"""
ROUTED = """\
Info:     iter=4 wires=1140000 overused=0 overuse=0 archfail=NA
Info: Router2 time 120.00s
Info: Max frequency for clock '$glbnet$clk': 41.50 MHz (FAIL at 125.00 MHz)
Info: Program finished normally.
"""


def test_progress_of_a_run_still_routing(tmp_path):
    log = tmp_path / "x.tim"
    log.write_text(PLACED + ROUTING)
    p = nextpnr_progress(log)
    assert p["phase"] == "routing"
    assert p["estimate_mhz"] == {"$glbnet$clk": 44.08}  # the placement's, not a routed figure
    assert p["overused"] == [74688, 49400, 1503]
    assert p["utilization"]["TRELLIS_COMB"] == {"used": 58741, "available": 83640}
    assert describe_progress(p) == ("routing; post-placement estimate 44.08 MHz; "
                                    "router2 iteration 3, overused wires 74.7k, 49.4k, 1.5k")


def test_progress_before_routing_and_after_it(tmp_path):
    log = tmp_path / "x.tim"
    assert nextpnr_progress(log)["phase"] == "starting"  # no log yet
    log.write_text(PLACED)
    assert nextpnr_progress(log)["phase"] == "placing"
    log.write_text(PLACED + ROUTING + ROUTED)
    p = nextpnr_progress(log)
    assert p["phase"] == "routed" and p["overused"][-1] == 0
    assert p["estimate_mhz"] == {"$glbnet$clk": 44.08}  # the routed 41.50 is the report's fmax


def fake_nextpnr(tmp_path, body: str) -> list[str]:
    """A stand-in for nextpnr: a Python program that writes ``x.tim`` as nextpnr would, then ``body``."""
    script = tmp_path / "fake_nextpnr.py"
    script.write_text(textwrap.dedent(f"""\
        import subprocess, sys, time
        open("x.tim", "w").write({PLACED + ROUTING!r})
        child = subprocess.Popen(["sleep", "600"])  # as the build script's children: stopped with it
        open("child.pid", "w").write(str(child.pid))
        """) + textwrap.dedent(body))
    return [sys.executable, str(script)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead
        return f.read().split(")")[-1].split()[0] != "Z"


def test_a_run_past_its_budget_is_stopped_with_everything_it_started(tmp_path, capsys):
    cmd = fake_nextpnr(tmp_path, "time.sleep(600)\n")
    t0 = time.monotonic()
    with pytest.raises(NotRouted) as info:
        run_watched(cmd, tmp_path, tmp_path / "x.tim", "seed 7", minutes=1.5 / 60, poll_s=0.1)
    assert time.monotonic() - t0 < 10
    exc = info.value
    assert exc.progress["overused"] == [74688, 49400, 1503] and exc.minutes == 1.5 / 60
    assert str(exc).startswith("seed 7: not routed within 0.025 minutes (routing; post-placement estimate 44.08")
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the tool's own child process was left running"
    assert "seed 7: routing; post-placement estimate 44.08 MHz; router2 iteration 3" in capsys.readouterr().out


def test_a_failing_tool_raises_with_the_end_of_its_output(tmp_path):
    cmd = fake_nextpnr(tmp_path, 'child.kill(); print("ERROR: Max frequency cannot be met"); sys.exit(3)\n')
    with pytest.raises(RuntimeError, match=r"(?s)seed 1: .* failed \(exit 3\):.*ERROR: Max frequency cannot be met"):
        run_watched(cmd, tmp_path, tmp_path / "x.tim", "seed 1", minutes=5, poll_s=0.1)


def test_a_run_within_its_budget_just_finishes(tmp_path):
    cmd = fake_nextpnr(tmp_path, f'child.kill(); open("x.tim", "a").write({ROUTED!r})\n')
    run_watched(cmd, tmp_path, tmp_path / "x.tim", "seed 1", minutes=5, poll_s=0.1)
    assert nextpnr_progress(tmp_path / "x.tim")["phase"] == "routed"


DCCA_ERROR = ("ERROR: Failed to route arc 1.0 of net 'design.afu.core.seq.snap.snap_move_dcc_CLKI[2]', "
              "from X78/Y42/F5_SLICE to X0/Y0/G_CLKI_LDCC1.")


def _fmax(mhz):
    return {"$glbnet$clk": {"achieved_mhz": mhz, "target_mhz": 125.0}}


def test_a_failed_run_is_recorded_with_its_error_and_how_far_it_got(tmp_path):
    cmd = fake_nextpnr(tmp_path, f'child.kill(); open("x.tim", "a").write({(PLACED + ROUTING)!r}); '
                                 f'print({DCCA_ERROR!r}); print("0 warnings, 1 error"); sys.exit(125)\n')
    with pytest.raises(RuntimeError) as info:
        run_watched(cmd, tmp_path, tmp_path / "x.tim", "seed 1", minutes=5, poll_s=0.1)
    rec = failed_record(1, info.value, tmp_path / "x.tim")
    assert rec["failed"] == DCCA_ERROR and rec["fmax"] == {} and rec["seed"] == 1
    assert rec["utilization"]["TRELLIS_COMB"]["used"] == 58741 and rec["progress"]["phase"] == "routing"


def test_a_crash_without_an_error_line_is_recorded_by_its_last_line(tmp_path):
    crash = RuntimeError("seed 1: sh failed (exit 1):\nInfo: initialising bels...\nTraceback (most recent call last):\n"
                         "wasmtime._trap.Trap: error while executing\n\nCaused by:\n    thrown Wasm exception\n")
    assert failed_record(1, crash, tmp_path / "none.tim")["failed"] == "thrown Wasm exception"
    assert failed_record(2, RuntimeError("seed 2: sh failed (exit 1):\n"), tmp_path / "none.tim")["failed"] == \
        "seed 2: sh failed (exit 1):"


def test_the_bitstream_is_the_fastest_seed_that_routed():
    runs = [{"seed": 1, "fmax": {}, "failed": DCCA_ERROR}, {"seed": 2, "fmax": _fmax(54.52)},
            {"seed": 3, "fmax": _fmax(45.49)}, {"seed": 4, "fmax": {}, "not_routed_minutes": 120}]
    assert fastest_run(runs)["seed"] == 2
    assert fastest_run([runs[0], runs[3]]) is None  # none routed: no bitstream
    assert fastest_run([{"seed": 5, "fmax": _fmax(50.0)}, {"seed": 6, "fmax": _fmax(50.0)}])["seed"] == 5


def test_the_report_names_the_bitstreams_seed_and_every_other(tmp_path):
    log = tmp_path / "x.tim"
    log.write_text(PLACED + ROUTING)
    progress = nextpnr_progress(log)
    rep = {"board": {"bitstream": None, "seed": 1, "params": {"core": "woven"}, "fmax": {}, "seconds": None,
                     "utilization": progress["utilization"], "progress": progress, "failed": DCCA_ERROR},
           "seeds": [{"seed": 2, "fmax": _fmax(54.52), "progress": progress, "critical_path": ["  0.52 u2_parity"]},
                     {"seed": 3, "fmax": _fmax(45.49), "progress": progress}],
           "bitstream_seed": 2, "bitstream_path": "build/bitstream/lowbit_ulx3s.bit"}
    text = render(rep)
    assert "build: build/bitstream/lowbit_ulx3s.bit (seed 2, the fastest of seeds 1, 2, 3)" in text
    assert f"seed 1: FAILED ({DCCA_ERROR}; routing; post-placement estimate 44.08 MHz" in text
    assert "seed 2: clock $glbnet$clk: fmax 54.5 MHz, target 125.0 MHz (NOT met)" in text
    assert "seed 3: clock $glbnet$clk: fmax 45.5 MHz" in text
    assert "MEASURED_FMAX_MHZ = 54.5" in text  # the bitstream's seed, not the first or the mean
    assert "0.52 u2_parity" in text  # and its critical path


def test_the_report_of_a_build_that_did_not_route(tmp_path):
    log = tmp_path / "x.tim"
    log.write_text(PLACED + ROUTING)
    progress = nextpnr_progress(log)
    rep = {"board": {"bitstream": None, "seed": 1, "params": {"core": "woven"}, "fmax": {}, "seconds": None,
                     "utilization": progress["utilization"], "progress": progress, "not_routed_minutes": 120},
           "seeds": [{"seed": 2, "fmax": {}, "progress": progress, "failed": DCCA_ERROR}]}
    text = render(rep)
    assert "build: no bitstream: no seed routed (1, 2)" in text
    assert "TRELLIS_COMB      58741      83640   70.2%" in text  # the placement's size is still reported
    assert ("seed 1: NOT ROUTED within 120 minutes (routing; post-placement estimate 44.08 MHz; "
            "router2 iteration 3, overused wires 74.7k, 49.4k, 1.5k)") in text
    assert f"seed 2: FAILED ({DCCA_ERROR};" in text
    assert "no MEASURED_FMAX_MHZ line: no seed routed" in text
    assert "MEASURED_FMAX_MHZ =" not in text


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "soon"])
def test_route_minutes_must_be_a_positive_number(value, capsys):
    with pytest.raises(SystemExit) as info:
        build.main(["--route-minutes", value, "--out", "/nonexistent/never-made"])
    assert info.value.code == 2
    assert "--route-minutes takes a positive number of minutes" in capsys.readouterr().err


def test_finish_only_needs_a_saved_build(tmp_path, capsys):
    assert build.main(["--out", str(tmp_path), "--finish-only"]) == 2
    assert "--finish-only needs the report.json" in capsys.readouterr().err


def test_no_more_nextpnr_runs_at_once_than_jobs():
    """make bitstream's seeds each hold one of --jobs slots for their whole run: the others wait."""
    from lowbit_hw.board.build import one_at_a_time_of

    running, peak, lock = [0], [0], threading.Lock()

    def run(seed):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return seed

    limited = one_at_a_time_of(2)
    threads, results = [], []
    for seed in range(5):
        t = threading.Thread(target=lambda s=seed: results.append(limited(run, s)))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    assert peak[0] == 2 and sorted(results) == [0, 1, 2, 3, 4]
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="jobs"):
            one_at_a_time_of(bad)


def test_jobs_must_be_at_least_one(capsys):
    with pytest.raises(SystemExit):
        build.main(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err
