"""``lowbit_hw.board.arrivals``: the endpoints nextpnr's routed timing puts past the clock period,
grouped into families of one kind of path, most first; and their place in the build report."""

import json

import pytest

from lowbit_hw.board import arrivals
from lowbit_hw.board.build import late_summary, NAME


def _net(driver, *endpoints):
    return {"driver": driver, "net": driver + "_Q", "port": "Q", "event": "posedge clk",
            "endpoints": [{"cell": c, "port": p, "delay": [d / 2, d], "event": "posedge clk"} for c, p, d in endpoints]}


REPORT = {"detailed_net_timings": [
    _net("design.afu.core.gradient.u6_c_TRELLIS_FF_Q",
         *(("design.afu.core.gradient.g_mem.0.%d$DPRAM_COMB%d" % (r, k), "WAD0", 9.0 + r) for r in range(3) for k in range(2))),
    _net("design.afu.core.seq.fsm_state_TRELLIS_FF_Q",
         ("design.afu.core.seq.snap.left_TRELLIS_FF_Q_12", "CE", 16.08),
         ("design.afu.core.seq.snap.left_TRELLIS_FF_Q_3", "CE", 7.5)),
    _net("design.afu.csr.cfg_TRELLIS_FF_Q_1", ("design.afu.core.x_TRELLIS_FF_Q", "M", 1.2)),
]}


def test_a_family_folds_numbers_and_keeps_the_port():
    assert arrivals.family("design.afu.core.gradient.g_mem.0.99$DPRAM_COMB3", "WAD0") == \
        "gradient.g_mem.#.#$DPRAM_COMB#.WAD#"
    assert arrivals.family("design.bridge.rd_q.r_data_TRELLIS_FF_Q_7", "CE") == "design.bridge.rd_q.r_data_TRELLIS_FF_Q_#.CE"


def test_late_endpoints_are_counted_by_family_largest_first():
    fams = arrivals.late_families(REPORT, 8.0)
    assert [f["family"] for f in fams] == ["gradient.g_mem.#.#$DPRAM_COMB#.WAD#", "seq.snap.left_TRELLIS_FF_Q_#.CE"]
    assert fams[0]["endpoints"] == 6 and fams[0]["worst_ns"] == 11.0
    assert fams[0]["example"].endswith("g_mem.0.2$DPRAM_COMB0.WAD0")
    assert fams[1] == {"family": "seq.snap.left_TRELLIS_FF_Q_#.CE", "endpoints": 1, "worst_ns": 16.08,
                       "example": "design.afu.core.seq.snap.left_TRELLIS_FF_Q_12.CE"}


def test_the_latest_arrival_is_the_maximum_of_the_pair_and_the_period_is_a_strict_limit():
    assert arrivals.late_families(REPORT, 16.08) == []            # the critical path's own period
    assert sum(f["endpoints"] for f in arrivals.late_families(REPORT, 16.0)) == 1
    assert sum(f["endpoints"] for f in arrivals.late_families(REPORT, 5.0)) == 8


def test_a_report_without_detailed_timings_or_a_bad_period_is_refused():
    with pytest.raises(ValueError, match="detailed-timing-report"):
        arrivals.late_families({"fmax": {}}, 8.0)
    with pytest.raises(ValueError, match="positive"):
        arrivals.late_families(REPORT, 0)


def test_the_command_prints_the_families_and_fails_cleanly_on_a_bad_file(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(REPORT))
    assert arrivals.main([str(path), "--mhz", "125"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("7 endpoints arrive after 8.00 ns (125.0 MHz), in 2 families")
    assert "     6  latest  11.00 ns  gradient.g_mem.#.#$DPRAM_COMB#.WAD#" in out
    (tmp_path / "bad.json").write_text("{not json")
    assert arrivals.main([str(tmp_path / "bad.json")]) == 1
    assert "error:" in capsys.readouterr().err
    assert arrivals.main([str(tmp_path / "none.json")]) == 1


def test_the_build_report_reads_the_report_the_bitstream_seeds_entry_names(tmp_path):
    (tmp_path / f"{NAME}_seed2_report.json").write_text(json.dumps(REPORT))
    lines = late_summary({"seed": 2, "report": str(tmp_path / f"{NAME}_seed2_report.json")}, {"engine_mhz": 125})
    assert lines[0].startswith("7 endpoints arrive after 8.00 ns")
    # a report without detailed timings, or a run entry naming none (older builds), gives None
    (tmp_path / f"{NAME}_report.json").write_text(json.dumps({"fmax": {}}))
    assert late_summary({"seed": 1, "report": str(tmp_path / f"{NAME}_report.json")}, {"engine_mhz": 125}) is None
    assert late_summary({"seed": 1}, {"engine_mhz": 125}) is None
