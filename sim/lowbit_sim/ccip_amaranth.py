"""The Amaranth-simulator adapter of the CCI-P host, and the one MMIO driver of the Amaranth tests.

:class:`AmaranthHost` puts a :class:`~lowbit_sim.ccip_host.CcipHost` on a DUT's CCI-P ports in an
Amaranth testbench (``add_testbench``): a test calls :meth:`AmaranthHost.step` once a cycle, then
``await ctx.tick()``. ``step`` reports what the AFU presents (its registered outputs after the last
edge) to the host, then drives the host's side for the next edge. Any subset of the channels may be
connected (a read engine has only c0, the register block only MMIO). No Amaranth import: only the
testbench context is used.

:class:`Mmio` is the MMIO driver: ``await mmio.write(ctx, address, value)`` /
``await mmio.read(ctx, address)``, ticking the clock (and stepping the host) until done.
"""

from __future__ import annotations

from .ccip_host import CcipHost


class AmaranthHost:
    """:class:`CcipHost` on Amaranth ports.

    Parameters
    ----------
    host : CcipHost
    c0_tx, c0_rx, c1_tx, c1_rx, c2_tx : interface objects or None
        The DUT's CCI-P members (as in ``lowbit_hw.ccip.CcipSignature``); None for a channel the
        DUT does not have.
    c0_almfull, c1_almfull : signal or None
    """

    def __init__(self, host: CcipHost, *, c0_tx=None, c0_rx=None, c0_almfull=None, c1_tx=None, c1_rx=None,
                 c1_almfull=None, c2_tx=None):
        self.host = host
        self.c0_tx, self.c0_rx, self.c1_tx, self.c1_rx, self.c2_tx = c0_tx, c0_rx, c1_tx, c1_rx, c2_tx
        self.almfull = (c0_almfull, c1_almfull)

    @classmethod
    def on(cls, ccip, host: CcipHost) -> AmaranthHost:
        """The adapter for a whole ``CcipSignature`` port (e.g. ``afu.ccip``)."""
        return cls(host, c0_tx=ccip.c0_tx, c0_rx=ccip.c0_rx, c0_almfull=ccip.c0_tx_almfull, c1_tx=ccip.c1_tx,
                   c1_rx=ccip.c1_rx, c1_almfull=ccip.c1_tx_almfull, c2_tx=ccip.c2_tx)

    def __getattr__(self, name):  # statistics and state of the host model
        if "host" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["host"], name)

    def step(self, ctx) -> None:
        """One cycle: report the AFU's requests and MMIO answers, then drive the host's side."""
        host, get, put = self.host, ctx.get, ctx.set
        tx = self.c0_tx
        if tx is not None and get(tx.valid):
            host.read_request(get(tx.cl_len), get(tx.address), get(tx.mdata))
        tx = self.c1_tx
        if tx is not None and get(tx.valid):
            host.write_request(get(tx.sop), get(tx.cl_len), get(tx.address), get(tx.mdata), get(tx.data),
                               get(tx.req_type))
        tx = self.c2_tx
        if tx is not None and get(tx.mmio_rd_valid):
            host.mmio_response(get(tx.tid), get(tx.data))
        out = host.advance()
        for sig, level in zip(self.almfull, out.almfull):
            if sig is not None:
                put(sig, level)
        rx = self.c0_rx
        if rx is not None:
            mmio, read = out.mmio, out.read
            if mmio is not None:
                put(rx.mmio_address, mmio.address >> 2)
                put(rx.mmio_length, mmio.mmio_length)
                if mmio.kind == "w":
                    put(rx.data, mmio.value)
                else:
                    put(rx.mmio_tid, mmio.tid)
            elif read is not None:
                put(rx.mdata, read.mdata)
                put(rx.cl_num, read.cl_num)
                put(rx.data, read.data)
            if hasattr(rx, "rsp_valid"):
                put(rx.rsp_valid, read is not None)
            if hasattr(rx, "mmio_wr_valid"):
                put(rx.mmio_wr_valid, mmio is not None and mmio.kind == "w")
                put(rx.mmio_rd_valid, mmio is not None and mmio.kind == "r")
        elif out.read is not None or out.mmio is not None:
            raise AssertionError("the host has a c0_rx response for a DUT without c0_rx")
        rx = self.c1_rx
        if rx is not None:
            put(rx.rsp_valid, out.write_ack is not None)
            if out.write_ack is not None:
                put(rx.mdata, out.write_ack)


class Mmio:
    """MMIO from the host side of an Amaranth testbench, through an :class:`AmaranthHost`.

    Each call ticks the clock until the access is done, stepping the host (so reads, writes and
    storms go on meanwhile). ``on_tick(ctx)``, if given, runs after every tick (to record pulses).
    A read answered with a tid no read on the bus has, or twice, is a protocol error of the host.
    """

    def __init__(self, host: AmaranthHost, on_tick=None):
        self.host, self.on_tick = host, on_tick

    async def tick(self, ctx) -> None:
        self.host.step(ctx)
        await ctx.tick()
        if self.on_tick is not None:
            self.on_tick(ctx)

    async def write(self, ctx, address: int, value: int, length: int = 8) -> None:
        """Write ``value`` (8 bytes, or 4 with ``length=4``) to byte ``address``; returns after the
        cycle it was on the bus."""
        sent = []
        self.host.host.mmio_write(address, value, on_sent=lambda: sent.append(1), length=length)
        while not sent:
            await self.tick(ctx)

    async def read(self, ctx, address: int, length: int = 8, *, latency: int | None = None) -> int:
        """Read byte ``address``; ``latency``, if given, is the exact number of cycles the answer
        must take (1: the next cycle)."""
        read = self.host.host.mmio_read(address, length=length)
        while not read.done:
            await self.tick(ctx)
        assert read.value is not None, f"MMIO read of 0x{address:x} not answered"
        assert latency is None or read.latency == latency, \
            f"MMIO read of 0x{address:x} answered after {read.latency} cycles, not {latency}"
        return read.value
