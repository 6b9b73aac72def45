"""lowbit: low-precision (ZipML double-sampled) training of linear models on an FPGA engine.

Packages
--------
lowbit        host side: quantization toolkit, packed line format, register map, driver, CLI, QSGD.
lowbit_hw     Amaranth gateware of the engine (CCI-P AFU) and the board top.
lowbit_sim    the NumPy golden model, the CCI-P host-memory model, cocotb benches, the simulator backend.
"""

__version__ = "0.1.0"
