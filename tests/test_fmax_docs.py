"""Modelled engine time is quoted at the clock nextpnr measured (lowbit.experiment.MEASURED_FMAX_MHZ).

The constant is the one place the number lives; `make bitstream` prints the line that sets it, the
CLI and the benchmarks default to it, and the README and docs that quote it must agree with it.
The 200 MHz HARP clock may appear in the docs only next to the word "assumed"/"assumption".
"""

import re
from pathlib import Path

import pytest

from lowbit.cli import build_parser
from lowbit.experiment import ASSUMED_HARP_FMAX_MHZ, DEFAULT_FMAX_MHZ, MEASURED_FMAX_MHZ, describe_clock
from lowbit_hw.board.build import engine_fmax_mhz, fmax_constant_line, render

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MEASURED = f"{MEASURED_FMAX_MHZ:g} MHz"
ASSUMED = f"{ASSUMED_HARP_FMAX_MHZ:g} MHz"


def chunks(path: Path) -> list[str]:
    """Paragraphs of a Markdown file, with every table row a chunk of its own."""
    out = []
    for para in re.split(r"\n\s*\n", path.read_text()):
        rows = [line for line in para.splitlines() if line.lstrip().startswith("|")]
        out.extend(rows if rows else [para])
    return out


def test_the_default_clock_is_the_measured_one():
    assert DEFAULT_FMAX_MHZ == MEASURED_FMAX_MHZ != ASSUMED_HARP_FMAX_MHZ
    for command in ("train", "demo"):
        assert build_parser().parse_args([command]).fmax == MEASURED_FMAX_MHZ


def test_every_clock_is_labelled_measured_assumed_or_stated():
    assert describe_clock(MEASURED_FMAX_MHZ) == f"{MEASURED}, the fmax make bitstream measured"
    assert "assumed" in describe_clock(ASSUMED_HARP_FMAX_MHZ) and "not measured" in describe_clock(ASSUMED_HARP_FMAX_MHZ)
    assert describe_clock(100.0) == "100 MHz, a clock stated with --fmax, not measured"


def test_readme_and_board_doc_quote_the_measured_fmax():
    for name in ("README.md", "docs/board.md"):
        assert f"fmax {MEASURED}" in (ROOT / name).read_text(), f"{name} must quote fmax {MEASURED} (make bitstream)"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_modelled_times_in_the_docs_are_at_the_measured_clock(path):
    for chunk in chunks(path):
        if "modelled" in chunk and "MHz" in chunk:
            assert MEASURED in chunk, f"{path.name}: modelled time at a clock other than {MEASURED}:\n{chunk}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_200_mhz_appears_only_as_a_labelled_assumption(path):
    for chunk in chunks(path):
        if ASSUMED in chunk:
            assert "assum" in chunk.lower(), f"{path.name}: {ASSUMED} without saying it is assumed:\n{chunk}"


def test_speedup_doc_is_at_the_measured_clock():
    text = (ROOT / "docs" / "speedup.md").read_text()
    assert f"engine at {MEASURED}, measured fmax" in text  # bench/speedup.py's table header
    assert "bench/speedup.py" in text


def _report(fmax: dict) -> dict:
    return {"board": {"seed": 1, "seconds": 1.0, "params": {"lanes": 4}, "utilization": {},
                      "fmax": {k: {"achieved_mhz": v, "target_mhz": 50.0} for k, v in fmax.items()}},
            "bitstream_seed": 1, "bitstream_path": "x.bit"}


def test_bitstream_report_prints_the_line_that_sets_the_constant():
    text = render(_report({"$glbnet$sync_clk": 61.27, "$glbnet$clk25": 300.0}))
    line = next(s.strip() for s in text.splitlines() if s.strip().startswith("MEASURED_FMAX_MHZ ="))
    assert line == fmax_constant_line(61.27)
    scope = {}
    exec(line, scope)  # it is valid Python that sets the constant
    assert scope["MEASURED_FMAX_MHZ"] == 61.3


def test_engine_clock_is_found_or_the_report_says_why_not():
    assert engine_fmax_mhz({"clk": {"achieved_mhz": 70.0}}) == 70.0  # the only clock
    with pytest.raises(ValueError, match="cannot tell the engine clock"):
        engine_fmax_mhz({"a": {"achieved_mhz": 1.0}, "b": {"achieved_mhz": 2.0}})
    assert "no MEASURED_FMAX_MHZ line" in render(_report({"a": 1.0, "b": 2.0}))
