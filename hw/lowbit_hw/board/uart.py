"""``UART``: 8N1 transmitter and receiver with byte streams (amaranth-stdio is not installable here)."""


from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UART", "UARTTx", "UARTRx"]


def _check_divisor(divisor):
    # The receiver samples mid-bit and needs a few cycles per bit to find the middle.
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor (clock cycles per bit) must be an int >= 4, got {divisor!r}")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter: one start bit, 8 data bits LSB first, one stop bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate, rounded).

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` while the line is idle.
    tx : Out(1)
        The serial line (idle high).
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits = Signal(10)  # stop, data[7:0], start: shifted out LSB first
        left = Signal(range(11))
        m.d.comb += self.data.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.data.valid):
                m.d.sync += [bits.eq((1 << 9) | (self.data.payload << 1)), left.eq(10),
                             timer.eq(0)]
        with m.Else():
            m.d.sync += self.tx.eq(bits[0])
            with m.If(timer == self.divisor - 1):
                m.d.sync += [timer.eq(0), bits.eq(bits >> 1), left.eq(left - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer + 1)
        # The line goes high (stop/idle) once the last bit's time is up.
        with m.If(left == 0):
            m.d.sync += self.tx.eq(1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver, sampling each bit in its middle after a 2-FF synchroniser.

    A byte is offered on the ``data`` stream: ``valid`` rises once its stop bit is sampled and holds,
    with the byte, until ``ready`` takes it (the serial bridge is always ready). A byte completing
    while the previous one is still held replaces it and sets the sticky ``overrun`` flag; a
    missing stop bit sets the sticky ``frame_error`` flag and delivers nothing.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    overrun: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor + self.divisor // 2 + 1))
        shift = Signal(8)
        count = Signal(range(10))

        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # First sample in the middle of data bit 0: 1.5 bit times after the falling edge.
                    m.d.sync += [timer.eq(self.divisor + self.divisor // 2 - 2), count.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), count.eq(count + 1)]
                    with m.If(count == 8):
                        # Stop bit: deliver the byte (stream: valid held until taken).
                        with m.If(rx):
                            m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                            with m.If(self.data.valid & ~self.data.ready):
                                m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += self.frame_error.eq(1)
                        with m.If(rx):
                            m.next = "IDLE"
                        with m.Else():
                            # Break or framing error: wait for the line to go idle again.
                            m.next = "WAIT_IDLE"
                    with m.Else():
                        m.d.sync += shift.eq(shift.shift_right(1) | (rx << 7))
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("WAIT_IDLE"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UART(wiring.Component):
    """A full-duplex 8N1 UART: :class:`UARTTx` and :class:`UARTRx` with one divisor.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (e.g. 100 MHz / 3 Mbaud -> 33; keep the rounding error under ~2%).
    """

    tx_data: In(stream.Signature(8))
    rx_data: Out(stream.Signature(8))
    tx: Out(1, init=1)
    rx: In(1, init=1)
    overrun: Out(1)
    frame_error: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.utx = utx = UARTTx(self.divisor)
        m.submodules.urx = urx = UARTRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.tx_data), utx.data)
        wiring.connect(m, urx.data, wiring.flipped(self.rx_data))
        m.d.comb += [self.tx.eq(utx.tx), urx.rx.eq(self.rx), self.overrun.eq(urx.overrun),
                     self.frame_error.eq(urx.frame_error)]
        return m
