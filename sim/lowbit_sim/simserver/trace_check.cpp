// Replays a CCI-P request trace through the simulator server's rules (ccip_rules.h) and prints a
// verdict per request: the C++ half of tests/test_ccip_agreement.py. One event a line on stdin:
//   B line_bytes            line size
//   M base bytes            a registered buffer (byte address, size)
//   A ch level              almost-full of channel ch (0 reads, 1 writes) from now on
//   R cl_len line           a read request      -> "1" legal / "0" not
//   W sop cl_len line       a write request     -> "1" / "0"
//   T                       an MMIO read goes out -> its tid
//   P k                     the AFU answers with the last tid + k -> "1" / "0"
#include <cstdio>
#include <cstring>

#include "ccip_rules.h"

int main() {
    Regions regions;
    Slack slack[2];
    MmioTids tids;
    uint16_t pending = 0;
    uint64_t line_bytes = 64;
    char op[8];
    while (scanf("%7s", op) == 1) {
        unsigned long long a = 0, b = 0, c = 0;
        switch (op[0]) {
        case 'B':
            if (scanf("%llu", &a) != 1) return 2;
            line_bytes = a;
            break;
        case 'M':
            if (scanf("%llu %llu", &a, &b) != 2) return 2;
            regions.list.push_back(Region{a, b});
            break;
        case 'A':
            if (scanf("%llu %llu", &a, &b) != 2 || a > 1) return 2;
            slack[a].set(b != 0);
            break;
        case 'R': {
            if (scanf("%llu %llu", &a, &b) != 2) return 2;
            bool ok = slack[0].request();  // counted whatever else is wrong with it, as the harness does
            uint32_t n = cl_len_lines((uint32_t)a);
            ok = ok && read_shape_legal((uint32_t)a, b) && regions.inside(b, n, line_bytes);
            printf("%d\n", ok ? 1 : 0);
            break;
        }
        case 'W': {
            if (scanf("%llu %llu %llu", &a, &b, &c) != 3) return 2;
            bool ok = slack[1].request();
            ok = ok && write_shape_legal((uint32_t)a, (uint32_t)b) && regions.inside(c, 1, line_bytes);
            printf("%d\n", ok ? 1 : 0);
            break;
        }
        case 'T':
            pending = tids.issue();
            printf("%u\n", pending);
            break;
        case 'P':
            if (scanf("%llu", &a) != 1) return 2;
            printf("%d\n", MmioTids::answers((uint32_t)((pending + a) & MMIO_TID_MASK), pending) ? 1 : 0);
            break;
        default:
            return 2;
        }
    }
    return 0;
}
