"""The numbers of the CCI-P host interface, pure Python (no Amaranth, no NumPy).

Defined once here; the Amaranth signature (``lowbit_hw.ccip``), the Python host-memory model
(``lowbit_sim.ccip_host``) and the C++ simulator harness (its header is generated from this module
and ``lowbit_sim.simserver.protocol``) all take them from this module.
"""

#: Bits of a cache-line address on c0_tx / c1_tx.
ADDR_BITS = 42
#: Bits of the ``mdata`` tag a response echoes.
MDATA_BITS = 16
#: Bits of an MMIO address (in 32-bit words).
MMIO_ADDR_BITS = 16
#: Bits of an MMIO read's transaction id.
MMIO_TID_BITS = 9
#: MMIO read tids wrap at this mask.
MMIO_TID_MASK = (1 << MMIO_TID_BITS) - 1
#: Bytes of MMIO space the host may address (8-byte aligned accesses below this).
MMIO_SPAN = 1 << 18
#: How many more requests the AFU may issue on a channel after its almost-full is raised.
ALMOST_FULL_SLACK = 8
#: ``cl_len`` -> lines of a read request (cl_len 2 is reserved). Writes are single lines.
CL_LEN_LINES = {0: 1, 1: 2, 3: 4}
