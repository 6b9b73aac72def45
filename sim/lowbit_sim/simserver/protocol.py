"""The simulator server's control channel: fixed-size little-endian binary messages.

Every request is 40 bytes ``<IIQQQQ`` = (op, flags, a, b, c, d); every reply is 40 bytes
``<IIQQQQ`` = (status, op, a, b, c, d). One reply per request, in order. HELLO carries the shared
memory file descriptor as SCM_RIGHTS ancillary data. ``harness.cpp`` takes every number here from
``lowbit_protocol.h``, which the build generates from this module (``simserver.protocol_header``).
"""

from __future__ import annotations

import enum
import struct

PROTOCOL_VERSION = 1
MSG = struct.Struct("<IIQQQQ")
assert MSG.size == 40


class Op(enum.IntEnum):
    HELLO = 1  # fd attached; a = arena io base, b = arena bytes, c = lat_min | lat_max << 32, d = seed
    MMIO_READ = 2  # a = byte offset -> a = value
    MMIO_WRITE = 3  # a = byte offset, b = value
    REGION_ADD = 4  # a = io address, b = bytes
    REGION_REMOVE = 5  # a = io address
    STATUS = 6  # -> a = cycle, b = first bad byte address, c = flags (1 seen, 2 write), d = bad count
    CLEAR = 7  # forget recorded bad accesses
    RUN = 8  # a = cycles to run now -> a = cycle
    SHUTDOWN = 9
    STATS = 10  # -> a = lines read, b = lines written, c = max read lines in flight, d = almfull violations
    RESET = 11  # pulse the AFU's reset, drop memory traffic in flight


class Status(enum.IntEnum):
    OK = 0
    BAD_REQUEST = 1  # malformed, or a size outside the server's limits (below)
    MMIO_TIMEOUT = 2
    NOT_ATTACHED = 3
    BUSY = 4  # another client is attached: the only reply, then the server closes the connection
    DENIED = 5  # the client is another user (SO_PEERCRED)


# The server's limits on what a client may ask for (harness.cpp checks them; the driver keeps
# inside them).
MAX_ARENA = 1 << 40  # bytes of shared host memory
MAX_LATENCY = 1 << 20  # cycles
MAX_REGIONS = 1 << 16  # registered buffers
MAX_RUN_CYCLES = 1 << 20  # cycles in one RUN request


BAD_SEEN = 1
BAD_WRITE = 2
