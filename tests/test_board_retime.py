"""A bitstream runs at a clock its routing met: when the fastest seed missed the 125 MHz
constraint, `make bitstream` packs its routing with the PLL's dividers rewritten to the fastest
exact clock at or below its fmax less a margin, and says at which UART rate the host must talk."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from lowbit_hw.board import build
from lowbit_hw.board.retime import RUN_MARGIN, fastest_pll_clock, pll_words, set_pll_words, uart_baud
from lowbit_hw.board.top import pll_parameters, uart_divisor

# The PLL's tile group as nextpnr-ecp5 wrote it for the board build at 125 MHz from 25 MHz
# (build/bitstream/lowbit_ulx3s_seed2.config, 2026-12-02), between two other tiles.
ROUTED = """\
.tile_group MIB_R22C64:MIB_EBR6 MIB_R22C65:MIB_EBR7 MIB_R22C66:EBR_CMUX_UL
word: EBR3.WID 001000000
enum: EBR3.MODE PDPW16KD

.tile_group MIB_R4C0:PLL0_UL MIB_R5C0:PLL1_UL
word: CLKI_DIV 0000000
word: CLKFB_DIV 0000100
word: CLKOP_DIV 0000100
word: CLKOP_CPHASE 0000001
word: CLKOP_FPHASE 000
word: CLKOS_DIV 0000111
word: CLKOS_CPHASE 0000000
word: LPF_RESISTOR 0001000
word: ICP_CURRENT 01100
enum: MODE EHXPLLL

.tile MIB_R50C0:BANKREF6
enum: BANK.VCCIO 3V3
"""


def test_the_routed_configuration_holds_the_netlists_pll_dividers():
    assert pll_words(ROUTED) == pll_parameters(25.0, 125.0)


def test_the_dividers_are_rewritten_and_nothing_else():
    pll = pll_parameters(25.0, 50.0)
    text = set_pll_words(ROUTED, pll)
    assert pll_words(text) == pll
    changed = [(a, b) for a, b in zip(ROUTED.splitlines(), text.splitlines()) if a != b]
    assert changed == [("word: CLKFB_DIV 0000100", "word: CLKFB_DIV 0000001"),
                       ("word: CLKOP_DIV 0000100", "word: CLKOP_DIV 0001011"),
                       ("word: CLKOP_CPHASE 0000001", "word: CLKOP_CPHASE 0000101")]


def test_a_configuration_without_one_pll_is_refused():
    with pytest.raises(ValueError, match="one EHXPLLL"):
        set_pll_words(ROUTED.replace("enum: MODE EHXPLLL", ""), pll_parameters(25.0, 50.0))
    with pytest.raises(ValueError, match="one EHXPLLL"):
        pll_words(ROUTED + "\n" + ROUTED[ROUTED.index(".tile_group MIB_R4C0"):])
    with pytest.raises(ValueError, match="CLKOP_DIV"):
        pll_words(ROUTED.replace("word: CLKOP_DIV 0000100\n", ""))


@pytest.mark.parametrize("limit, expected", [(54.5 * (1 - RUN_MARGIN), 50.0), (125.0, 125.0), (45.49, 45.0),
                                             (10.0, 10.0)])
def test_the_run_clock_is_the_fastest_exact_pll_output_under_the_limit(limit, expected):
    mhz, pll = fastest_pll_clock(25.0, limit)
    assert mhz == pytest.approx(expected) and mhz <= limit
    assert 25.0 * pll["CLKFB_DIV"] / pll["CLKI_DIV"] == pytest.approx(mhz)
    assert 400 <= mhz * pll["CLKOP_DIV"] <= 800 and 25.0 / pll["CLKI_DIV"] >= 3.125
    with pytest.raises(ValueError, match="no EHXPLLL setting"):
        fastest_pll_clock(25.0, 3.0)


def test_the_uart_rate_follows_the_clock():
    assert uart_divisor(125.0, 1_000_000) == 125
    assert uart_baud(50.0, 125) == 400_000


def _fmax(mhz):
    return {"$glbnet$clk": {"achieved_mhz": mhz, "target_mhz": 125.0}}


def _saved_build(tmp_path, fmax_mhz):
    (tmp_path / "lowbit_ulx3s_seed2.config").write_text(ROUTED)
    progress = {"phase": "routed", "estimate_mhz": {}, "overused": [], "utilization": {}}
    params = {"engine_mhz": 125.0, "oscillator_mhz": 25.0, "baud": 1_000_000, "core": "woven"}
    return {"board": {"bitstream": None, "seed": 1, "params": params, "fmax": {}, "seconds": None,
                      "utilization": {"TRELLIS_COMB": {"used": 58854, "available": 83640}}, "progress": progress,
                      "failed": "ERROR: Failed to route arc"},
            "seeds": [{"seed": 2, "fmax": _fmax(fmax_mhz), "progress": progress,
                       "config": str(tmp_path / "lowbit_ulx3s_seed2.config")},
                      {"seed": 3, "fmax": _fmax(45.49), "progress": progress,
                       "config": str(tmp_path / "lowbit_ulx3s_seed3.config")}]}


@pytest.fixture
def fake_ecppack(tmp_path, monkeypatch):
    packer = tmp_path / "fake_ecppack.py"
    packer.write_text(textwrap.dedent("""\
        import sys
        args = sys.argv[1:]
        cfg, bit = args[args.index("--input") + 1], args[args.index("--bit") + 1]
        open(bit, "w").write(open(cfg).read())
        """))
    fake = tmp_path / "ecppack"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} {packer} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ECPPACK", str(fake))


def test_a_missed_constraint_packs_the_bitstream_at_a_clock_it_met(tmp_path, fake_ecppack):
    (tmp_path / "report.json").write_text(json.dumps(_saved_build(tmp_path, 54.52)))
    assert build.main(["--out", str(tmp_path), "--finish-only", "--no-synth-512"]) == 0
    packed = (tmp_path / "lowbit_ulx3s.bit").read_text()
    assert pll_words(packed) == pll_parameters(25.0, 50.0)      # 50 MHz <= 54.52 less 5 %
    assert (tmp_path / "lowbit_ulx3s_seed2.config").read_text() == ROUTED   # the routed one kept as it was
    text = (tmp_path / "report.txt").read_text()
    assert "(seed 2, the fastest of seeds 1, 2, 3)" in text
    assert "bitstream clock: 50.00 MHz" in text and "--baud 400000" in text
    assert "MEASURED_FMAX_MHZ = 54.5" in text   # modelled times still quote the routed fmax
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["run_clock"]["mhz"] == 50.0 and rep["run_clock"]["baud"] == 400_000


def test_a_met_constraint_packs_the_routing_as_it_is(tmp_path, fake_ecppack):
    (tmp_path / "report.json").write_text(json.dumps(_saved_build(tmp_path, 131.0)))
    assert build.main(["--out", str(tmp_path), "--finish-only", "--no-synth-512"]) == 0
    assert (tmp_path / "lowbit_ulx3s.bit").read_text() == ROUTED
    assert "bitstream clock: 125 MHz (the constraint, met); UART 1000000 baud" in (tmp_path / "report.txt").read_text()
    assert "run_clock" not in json.loads((tmp_path / "report.json").read_text())


def test_the_first_seeds_own_routing_is_retimed_when_it_is_the_fastest(tmp_path, fake_ecppack):
    """(the first seed's build script writes lowbit_ulx3s.config; its report entry names no file)"""
    saved = _saved_build(tmp_path, 50.78)
    (tmp_path / "lowbit_ulx3s.config").write_text(ROUTED)
    saved["board"].update(fmax=_fmax(62.20), failed=None)
    del saved["board"]["failed"]
    (tmp_path / "report.json").write_text(json.dumps(saved))
    assert build.main(["--out", str(tmp_path), "--finish-only", "--no-synth-512"]) == 0
    assert pll_words((tmp_path / "lowbit_ulx3s.bit").read_text()) == pll_parameters(25.0, 25.0 * 7 / 3)   # 58.33 MHz <= 62.20 less 5 %
    assert "(seed 1, the fastest of seeds 1, 2, 3)" in (tmp_path / "report.txt").read_text()
