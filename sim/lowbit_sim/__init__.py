"""The CCI-P host-memory model, the cocotb test benches and the simulator server (the [sim] extra).

Nothing here is imported by the host at import time: the driver's sim backend loads
:mod:`.simserver` when it starts a private simulator. Shared definitions come from
:mod:`lowbit.contract`."""
