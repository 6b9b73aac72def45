"""The cocotb adapter of the CCI-P host: :class:`~lowbit_sim.ccip_host.CcipHost` on a Verilated top.

:class:`CcipHostModel` drives the host side of a top with ``ccip: Out(CcipSignature(W))`` (Verilog
ports ``ccip__c0_tx__valid``, ``ccip__c0_rx__data``, ...; see ``lowbit_hw.ccip``). Everything the
host does (latencies, reordering, storms, the slack check, MMIO by tid) is the simulator-agnostic
:class:`~lowbit_sim.ccip_host.CcipHost`; this module only moves values between ports and it, and
turns MMIO into awaitables (:meth:`mmio_write64`, :meth:`mmio_read64`; no answer within
``mmio_timeout`` cycles raises :class:`MmioTimeout`, never hangs).

Timing: the model samples the AFU's outputs and drives its inputs at the *falling* clock edge, so
inputs are stable around the rising edge at which the AFU registers them and every sampled value is
the one the AFU presented for the whole cycle. A port is written only when its value changes.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import Event

from .ccip_host import CcipHost, MmioTimeout, ProtocolError, StormConfig  # noqa: F401 (re-exported)
from .host_memory import HostMemory


class CcipHostModel:
    """The host side of CCI-P over a :class:`HostMemory`, on cocotb handles.

    Parameters
    ----------
    dut : cocotb handle
        The top; its ports are looked up as ``{prefix}c0_tx__valid`` etc.
    clk : cocotb handle
        The clock the AFU runs on (started by the caller).
    memory : HostMemory
    prefix : str
        Port name prefix.
    **host_args
        :class:`~lowbit_sim.ccip_host.CcipHost`'s: ``seed``, ``read_latency``, ``write_latency``,
        ``c0_storms``, ``c1_storms``, ``mmio_timeout``.

    Attributes
    ----------
    host : CcipHost
        The model itself; its statistics (``cycle``, ``read_lines``, ``almfull_cycles``, ...) read
        through this adapter too.
    """

    def __init__(self, dut, clk, memory: HostMemory, *, prefix: str = "ccip__", **host_args):
        self.host = CcipHost(memory, **host_args)
        self.dut, self.clk, self.memory = dut, clk, memory
        p = lambda n: getattr(dut, prefix + n)  # noqa: E731
        # AFU -> host
        self._c0tx = (p("c0_tx__valid"), p("c0_tx__cl_len"), p("c0_tx__address"), p("c0_tx__mdata"))
        self._c1tx = (p("c1_tx__valid"), p("c1_tx__sop"), p("c1_tx__cl_len"), p("c1_tx__address"),
                      p("c1_tx__mdata"), p("c1_tx__data"), p("c1_tx__req_type"))
        self._c2tx = (p("c2_tx__mmio_rd_valid"), p("c2_tx__tid"), p("c2_tx__data"))
        # host -> AFU
        self._rx0 = {n: p("c0_rx__" + n) for n in ("rsp_valid", "mdata", "cl_num", "data", "mmio_wr_valid",
                                                  "mmio_rd_valid", "mmio_address", "mmio_length", "mmio_tid")}
        self._rx1 = (p("c1_rx__rsp_valid"), p("c1_rx__mdata"))
        self._almfull = (p("c0_tx_almfull"), p("c1_tx_almfull"))
        self._task = None

    def __getattr__(self, name):  # statistics and state of the host model
        if "host" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["host"], name)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Drive all host inputs to idle and start the clock loop (call once, with the clock running)."""
        for h in list(self._rx0.values()) + list(self._rx1) + list(self._almfull):
            h.value = 0
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def check(self) -> None:
        """Raise :class:`ProtocolError` with every rule the AFU broke, then check the memory."""
        self.host.check()

    # ---------------------------------------------------------------- MMIO
    async def mmio_write64(self, address: int, value: int) -> None:
        """A 64-bit MMIO write to byte ``address``; returns once it is on the bus."""
        done = Event()
        self.host.mmio_write(address, value, on_sent=done.set)
        await done.wait()

    async def mmio_read64(self, address: int) -> int:
        """A 64-bit MMIO read of byte ``address``; the answer is matched by tid.

        Raises
        ------
        MmioTimeout
            No answer within ``mmio_timeout`` cycles of the request.
        """
        done = Event()
        read = self.host.mmio_read(address, on_done=done.set)
        await done.wait()
        if read.value is None:
            raise MmioTimeout(f"MMIO read of 0x{address:x} (tid {read.tid}) not answered within "
                              f"{self.host.mmio_timeout} cycles")
        return read.value

    # ---------------------------------------------------------------- the clock loop
    async def _run(self):
        host = self.host
        c0v, c0len, c0addr, c0md = self._c0tx
        c1v, c1sop, c1len, c1addr, c1md, c1data, c1type = self._c1tx
        c2v, c2tid, c2data = self._c2tx
        rx0 = self._rx0
        rx1v, rx1md = self._rx1
        driven = {"rsp": 0, "wr": 0, "rd": 0, "w1": 0, "af0": 0, "af1": 0}
        falling = self.clk.falling_edge

        def drive(key, handle, value):
            if driven[key] != value:
                handle.value = driven[key] = value

        while True:
            await falling
            # ---- what the AFU presented this cycle
            if c0v.value:
                host.read_request(c0len.value.to_unsigned(), c0addr.value.to_unsigned(), c0md.value.to_unsigned())
            if c1v.value:
                host.write_request(int(c1sop.value), c1len.value.to_unsigned(), c1addr.value.to_unsigned(),
                                   c1md.value.to_unsigned(), c1data.value.to_unsigned(), c1type.value.to_unsigned())
            if c2v.value:
                host.mmio_response(c2tid.value.to_unsigned(), c2data.value.to_unsigned())
            # ---- what the host drives next
            out = host.advance()
            drive("af0", self._almfull[0], out.almfull[0])
            drive("af1", self._almfull[1], out.almfull[1])
            if out.mmio is not None:
                rx0["mmio_address"].value = out.mmio.address >> 2
                rx0["mmio_length"].value = out.mmio.mmio_length
                if out.mmio.kind == "w":
                    rx0["data"].value = out.mmio.value
                else:
                    rx0["mmio_tid"].value = out.mmio.tid
            elif out.read is not None:
                rx0["mdata"].value, rx0["cl_num"].value, rx0["data"].value = out.read
            drive("rsp", rx0["rsp_valid"], int(out.read is not None))
            drive("wr", rx0["mmio_wr_valid"], int(out.mmio is not None and out.mmio.kind == "w"))
            drive("rd", rx0["mmio_rd_valid"], int(out.mmio is not None and out.mmio.kind == "r"))
            if out.write_ack is not None:
                rx1md.value = out.write_ack
            drive("w1", rx1v, int(out.write_ack is not None))
