"""lowbit: low-precision (ZipML double-sampled) training of linear models on an FPGA engine.

Packages
--------
lowbit.contract  the shared definitions (NumPy only): fixed-point and line formats, register map,
                 quantizer code semantics, golden model, serial and simulator wire protocols.
lowbit           host side: fast quantize + pack, data sets, driver, CLI, QSGD, plots.
lowbit_hw        Amaranth gateware of the engine (CCI-P AFU) and the board top ([hw] extra).
lowbit_sim       the CCI-P host-memory model, cocotb benches, the simulator server ([sim] extra).

This file imports nothing, so that ``import lowbit.contract`` stays NumPy-only (docs/packaging.md).
"""

__version__ = "0.1.0"
