"""Golden model, CCI-P host-memory model, cocotb test benches and the simulator backend."""
