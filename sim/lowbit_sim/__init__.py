"""The CCI-P host-memory model, the cocotb test benches and the simulator server (the [sim] extra).

The host never imports this package: the driver's sim backend runs ``python -m lowbit_sim.simserver
--build-only`` in a child process for the executable of a private simulator. Shared definitions
come from :mod:`lowbit.contract` (and synthetic problems from :mod:`lowbit.data`)."""
