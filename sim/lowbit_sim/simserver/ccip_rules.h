// The CCI-P rules the simulator server holds an AFU to, in one place, for harness.cpp and for
// trace_check.cpp (the entry point tests/test_ccip_agreement.py replays request traces through, to
// check that this model and the Python one, lowbit_sim.ccip_host, agree on what is legal).
// Constants come from lowbit_protocol.h, generated from the Python definitions at build time.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit_protocol.h"

// Lines of a read request for cl_len, 0 for the reserved encoding.
static inline uint32_t cl_len_lines(uint32_t cl_len) { return cl_len < 4 ? CL_LEN_LINES[cl_len] : 0; }

// A read's shape: a known cl_len and an address aligned to its length.
static inline bool read_shape_legal(uint32_t cl_len, uint64_t line) {
    uint32_t n = cl_len_lines(cl_len);
    return n != 0 && line % n == 0;
}

// A write's shape: one line, start of packet.
static inline bool write_shape_legal(uint32_t sop, uint32_t cl_len) { return sop == 1 && cl_len == 0; }

// The almost-full slack of one channel: requests counted from the cycle almost-full rose.
struct Slack {
    bool level = false;
    uint32_t after = 0;
    void set(bool full) {
        if (full != level) after = 0;
        level = full;
    }
    // Count one request; false for a request beyond the slack.
    bool request() { return !level || ++after <= ALMOST_FULL_SLACK; }
    void reset() { level = false, after = 0; }
};

// MMIO read tids: wrap at the tid width; a response is legal only with the tid of the read on the bus.
struct MmioTids {
    uint16_t next = 0;
    uint16_t issue() { return next = (uint16_t)((next + 1) & MMIO_TID_MASK); }
    static bool answers(uint32_t rsp_tid, uint16_t pending) { return rsp_tid == pending; }
};

// Host buffers registered by the driver (byte addresses); an access must lie inside one.
struct Region {
    uint64_t base, size;
};
struct Regions {
    std::vector<Region> list;
    bool inside(uint64_t line, uint64_t n, uint64_t line_bytes) const {
        uint64_t lo = line * line_bytes, hi = lo + n * line_bytes;
        for (const Region& r : list)
            if (lo >= r.base && hi <= r.base + r.size) return true;
        return false;
    }
};
