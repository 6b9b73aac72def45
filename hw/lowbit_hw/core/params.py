"""Build parameters of the training core and their checks (shared by the core's blocks)."""

from __future__ import annotations

from lowbit.contract.format import MAX_BITS, ROW_ALIGN, SUPPORTED_LINE_BITS

#: Bits of a code: ``b + 1`` for the largest ``b``.
CODE_BITS = MAX_BITS + 1
#: Code-table entries the host can write (``2^(MAX_BITS+1) - 1``); index 511 is the engine's own
#: "no feature" code, hard-wired to ``m = e = 0``, which the dot pass substitutes for padding lanes.
TABLE_ENTRIES = (1 << CODE_BITS) - 1
MASK_CODE = TABLE_ENTRIES


def _is_pow2(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1 and x & (x - 1) == 0


def check_lanes(line_bits, lanes) -> None:
    if line_bits not in SUPPORTED_LINE_BITS:
        raise ValueError(f"line_bits must be one of {SUPPORTED_LINE_BITS}, got {line_bits!r}")
    if not _is_pow2(lanes) or lanes > ROW_ALIGN:
        raise ValueError(f"lanes must be a power of two in 1..{ROW_ALIGN}, got {lanes!r}")
    if line_bits % lanes:
        raise ValueError(f"lanes ({lanes}) must divide line_bits ({line_bits})")


def check_max_features(max_features) -> None:
    if isinstance(max_features, bool) or not isinstance(max_features, int) or max_features < ROW_ALIGN \
            or max_features % ROW_ALIGN:
        raise ValueError(f"max_features must be a positive multiple of {ROW_ALIGN}, got {max_features!r}")
    if max_features >= 1 << 24:
        raise ValueError(f"max_features must fit FEATURES (24 bits), got {max_features!r}")
