"""The numbers of the CCI-P host interface, pure Python (no Amaranth, no NumPy).

Defined once here; the Amaranth signature (``lowbit_hw.ccip``), the Python host-memory model
(``lowbit_sim.ccip_host``), the driver's serial backend and the C++ simulator harness (its header
is generated from this module and :mod:`lowbit.contract.simwire`) all take them from this module.
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
#: c1_tx ``req_type`` (CCI-P's ``t_ccip_c1_req``; only these two are used): a one-line write, or a
#: write fence. A fence writes nothing and gets one c1_rx response, like a write; its response
#: comes only after every earlier write's, and a write issued after it becomes visible in host
#: memory only after every write issued before it. So an AFU can publish "done" (a status record)
#: right behind the data it announces, without waiting a round trip for their responses.
C1_REQ_TYPE_BITS = 4
C1_REQ_WRLINE = 0   # eREQ_WRLINE_I
C1_REQ_WRFENCE = 4  # eREQ_WRFENCE
#: ``cl_len`` -> lines of a read request (cl_len 2 is reserved). Writes are single lines.
CL_LEN_LINES = {0: 1, 1: 2, 3: 4}
