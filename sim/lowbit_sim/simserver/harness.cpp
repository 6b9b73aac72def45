// lowbit simulator server: the Verilated AFU, a CCI-P host-memory model over memory shared with
// the driver, and the driver's control channel (a Unix socket with fixed-size binary messages).
//
// Process model (docs/driver.md): the driver creates a memfd for host memory and passes it with
// the HELLO message (SCM_RIGHTS); reads are served straight from that mapping, never copied over
// the socket. MMIO, region bookkeeping and status go over the socket. The clock runs freely while
// the AFU has CCI-P traffic (or had some in the last IDLE_CYCLES); otherwise the server blocks on
// the socket so an idle simulator costs no CPU.
//
// Trust (docs/driver.md, "Guarantees"): one client at a time, of this user only (SO_PEERCRED);
// a second one is answered BUSY. Every size a client sends is checked against the arena it passed
// and the limits below. The socket path is never taken from anything that is not a stale socket,
// and only the socket this process bound is removed. A private server (--parent-fd) exits when the
// driver *process* is gone: it watches the read end of a pipe whose write end only the driver
// holds (end of file = the driver exited, however it ended, whichever thread started us).
//
// Built by lowbit_sim.simserver.build_server() with `verilator --cc --exe --build` against the
// wrapper module lowbit_sim_top (plain port names, generated from lowbit_hw.ccip.CcipSignature).
// The numbers shared with Python (ops, status codes, limits, the almost-full slack, the tid width)
// are in lowbit_protocol.h, generated from lowbit.contract.simwire and lowbit.contract.ccip by the
// same build; the CCI-P rules are in ccip_rules.h, which trace_check.cpp shares for the test that
// holds this model and the Python one (lowbit_sim.ccip_host) to the same verdicts.

#include "Vlowbit_sim_top.h"
#include "ccip_rules.h"
#include "lowbit_protocol.h"
#include "verilated.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <string>
#include <vector>

#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef LINE_BITS
#define LINE_BITS 512
#endif
static constexpr int LINE_BYTES = LINE_BITS / 8;

// ------------------------------------------------------------------------------------ protocol
// Messages: lowbit/contract/simwire.py (ops, status codes and limits: lowbit_protocol.h).
struct Msg {
    uint32_t op, flags;
    uint64_t a, b, c, d;
};
struct Reply {
    uint32_t status, op;
    uint64_t a, b, c, d;
};
static_assert(sizeof(Msg) == MSG_BYTES && sizeof(Reply) == MSG_BYTES, "fixed-size messages");

// ------------------------------------------------------------------------------------ options
static constexpr uint64_t IDLE_CYCLES = 20000;   // keep clocking this long after the last traffic
static constexpr int CHUNK = 256;                // cycles between socket polls while running
static constexpr uint64_t MMIO_TIMEOUT_CYCLES = 200000;
// Read lines the host accepts in flight. It only has to stay above what an AFU keeps in flight
// (its read reorder buffer: up to 1024 lines on the woven engine), so that the AFU, not this
// model, sets the rate: at 100-400 cycles of latency one line per cycle needs ~250 in flight
// (Little's law), and a cap of 256 held any engine to about 0.9 lines per cycle.
static constexpr uint32_t RD_CAP_LINES = 2048;
static constexpr uint32_t WR_CAP_LINES = 128;
// Limits on what a client may ask for (a client's numbers are never trusted): MAX_ARENA,
// MAX_LATENCY, MAX_REGIONS, MAX_RUN_CYCLES (lowbit_protocol.h), and:
static constexpr uint64_t MAX_IO_ADDRESS = 1ull << 56;   // arena io base + size (CCI-P line addresses are 42 bits)
static constexpr int CLIENT_RCV_TIMEOUT_S = 10;          // a torn message drops the client, never hangs us

static void die(const char* what) {
    fprintf(stderr, "lowbit-simserver: %s: %s\n", what, strerror(errno));
    exit(2);
}

// Set by SIGTERM / SIGINT / SIGHUP: leave the main loop and clean up (the socket file) on the way out.
static volatile sig_atomic_t g_stop = 0;
static void on_stop_signal(int) { g_stop = 1; }

// ------------------------------------------------------------------------------------ lines
static inline void put_line(QData& dst, const uint8_t* src) { memcpy(&dst, src, LINE_BYTES); }
template <std::size_t N>
static inline void put_line(VlWide<N>& dst, const uint8_t* src) { memcpy(&dst[0], src, LINE_BYTES); }
static inline void get_line(uint8_t* dst, const QData& src) { memcpy(dst, &src, LINE_BYTES); }
template <std::size_t N>
static inline void get_line(uint8_t* dst, const VlWide<N>& src) { memcpy(dst, &src[0], LINE_BYTES); }

// ------------------------------------------------------------------------------------ memory model
struct ReadRsp {
    uint64_t ready, seq, line;
    uint16_t mdata;
    uint8_t cl_num;
    bool bad;
};
struct WriteReq {
    uint64_t ready, seq, line;
    uint16_t mdata;
    bool bad, fence;  // a fence writes nothing: its response comes after every earlier write's
    uint8_t data[LINE_BYTES];
};
template <class T>
struct Later {
    bool operator()(const T& x, const T& y) const { return x.ready != y.ready ? x.ready > y.ready : x.seq > y.seq; }
};

struct Sim {
    VerilatedContext* ctx;
    Vlowbit_sim_top* top;
    uint64_t now = 0, last_activity = 0, seq = 0;

    // host memory
    uint8_t* mem = nullptr;
    uint64_t io_base = 0, mem_size = 0;
    Regions regions;
    bool attached = false;

    // latency model
    uint32_t lat_min = 100, lat_max = 400;
    uint64_t rng = 0x9E3779B97F4A7C15ull;

    std::priority_queue<ReadRsp, std::vector<ReadRsp>, Later<ReadRsp>> rd_q;
    std::priority_queue<WriteReq, std::vector<WriteReq>, Later<WriteReq>> wr_q;
    uint32_t rd_inflight = 0, wr_inflight = 0;
    // Write fences: a fence is due a cycle after the latest earlier write; later writes after it.
    uint64_t wr_horizon = 0, fence_due = 0;
    Slack rd_slack, wr_slack;

    // pending MMIO request towards the AFU, and the last MMIO read response
    bool mmio_pending = false, mmio_is_read = false, mmio_rsp = false;
    uint16_t mmio_addr = 0;
    uint16_t mmio_tid = 0, mmio_rsp_tid = 0;
    uint64_t mmio_data = 0, mmio_rsp_data = 0;

    // bad accesses and statistics
    bool bad_seen = false, bad_write = false;
    uint64_t bad_addr = 0, bad_count = 0;
    uint64_t lines_read = 0, lines_written = 0, max_rd_inflight = 0, almfull_violations = 0;

    uint64_t next_rand() {  // splitmix64: seeded, fast, good enough for latencies
        uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t latency() { return lat_min == lat_max ? lat_min : lat_min + next_rand() % (lat_max - lat_min + 1); }

    // Is [line, line+n) inside one registered region? (line units: LINE_BYTES)
    bool inside(uint64_t line, uint64_t n) const { return regions.inside(line, n, LINE_BYTES); }
    void record_bad(uint64_t line, bool write) {
        if (!bad_seen) {
            bad_seen = true;
            bad_addr = line * LINE_BYTES;
            bad_write = write;
        }
        bad_count++;
    }
    uint8_t* host(uint64_t line) const { return mem + (line * LINE_BYTES - io_base); }

    void drop_traffic() {
        rd_q = decltype(rd_q)();
        wr_q = decltype(wr_q)();
        rd_inflight = wr_inflight = 0;
        wr_horizon = fence_due = 0;
        rd_slack.reset();
        wr_slack.reset();
        mmio_pending = mmio_rsp = false;
    }

    void reset_afu() {
        drop_traffic();
        top->rst = 1;
        for (int i = 0; i < 8; i++) cycle();
        top->rst = 0;
        cycle();
        drop_traffic();  // anything the AFU issued while in reset is not real traffic
    }

    // One clock cycle: drive this cycle's responses, settle, sample requests, rising edge.
    void cycle() {
        top->c0_rx_rsp_valid = 0;
        top->c0_rx_mmio_wr_valid = 0;
        top->c0_rx_mmio_rd_valid = 0;
        top->c1_rx_rsp_valid = 0;
        // c0_rx carries one thing per cycle: an MMIO request, or else one read response line.
        if (mmio_pending) {
            top->c0_rx_mmio_address = mmio_addr;
            top->c0_rx_mmio_length = 1;  // 8 bytes
            top->c0_rx_mmio_tid = mmio_tid;
            if (mmio_is_read) {
                top->c0_rx_mmio_rd_valid = 1;
            } else {
                top->c0_rx_mmio_wr_valid = 1;
                uint8_t line[LINE_BYTES] = {0};
                memcpy(line, &mmio_data, 8);
                put_line(top->c0_rx_data, line);
            }
            mmio_pending = false;
            last_activity = now;
        } else if (!rd_q.empty() && rd_q.top().ready <= now) {
            const ReadRsp& r = rd_q.top();
            if (r.bad) {
                static const uint8_t zeros[LINE_BYTES] = {0};
                put_line(top->c0_rx_data, zeros);  // touches nothing: the host never had this line
            } else {
                put_line(top->c0_rx_data, host(r.line));
            }
            top->c0_rx_rsp_valid = 1;
            top->c0_rx_mdata = r.mdata;
            top->c0_rx_cl_num = r.cl_num;
            rd_q.pop();
            rd_inflight--;
            lines_read++;
        }
        if (!wr_q.empty() && wr_q.top().ready <= now) {
            const WriteReq& w = wr_q.top();
            if (!w.bad && !w.fence) memcpy(host(w.line), w.data, LINE_BYTES);  // visible at its response
            top->c1_rx_rsp_valid = 1;
            top->c1_rx_mdata = w.mdata;
            wr_q.pop();
            wr_inflight--;
            if (!w.fence) lines_written++;
        }
        bool rd_full = rd_inflight + 4 * ALMOST_FULL_SLACK >= RD_CAP_LINES;
        bool wr_full = wr_inflight + ALMOST_FULL_SLACK >= WR_CAP_LINES;
        rd_slack.set(rd_full);
        wr_slack.set(wr_full);
        top->c0_tx_almfull = rd_full;
        top->c1_tx_almfull = wr_full;

        top->clk = 0;
        top->eval();

        if (top->c0_tx_valid) {
            // A reserved cl_len is recorded as a bad access and answered with nothing.
            uint32_t cl_len = top->c0_tx_cl_len, n = cl_len_lines(cl_len);
            uint64_t line = top->c0_tx_address;
            bool bad = !attached || !read_shape_legal(cl_len, line) || !inside(line, n);
            if (bad) record_bad(line, false);
            for (uint32_t k = 0; k < n; k++)
                rd_q.push(ReadRsp{now + latency(), seq++, line + k, (uint16_t)top->c0_tx_mdata, (uint8_t)k, bad});
            rd_inflight += n;
            max_rd_inflight = std::max<uint64_t>(max_rd_inflight, rd_inflight);
            if (!rd_slack.request()) almfull_violations++;
            last_activity = now;
        }
        if (top->c1_tx_valid) {
            WriteReq w;
            w.seq = seq++;
            w.line = top->c1_tx_address;
            w.mdata = (uint16_t)top->c1_tx_mdata;
            w.fence = top->c1_tx_req_type == C1_REQ_WRFENCE;
            if (w.fence) {  // as lowbit_sim.ccip_host: no line, ordered behind every earlier write
                w.ready = fence_due = wr_horizon = std::max<uint64_t>(wr_horizon, now + lat_min - 1) + 1;
                w.bad = false;
            } else {
                w.ready = std::max<uint64_t>(now + latency(), fence_due + 1);
                wr_horizon = std::max(wr_horizon, w.ready);
                w.bad = !attached || top->c1_tx_req_type != C1_REQ_WRLINE ||
                        !write_shape_legal(top->c1_tx_sop, top->c1_tx_cl_len) || !inside(w.line, 1);
                if (w.bad) record_bad(w.line, true);
                get_line(w.data, top->c1_tx_data);
            }
            wr_q.push(w);
            wr_inflight++;
            if (!wr_slack.request()) almfull_violations++;
            last_activity = now;
        }
        if (top->c2_tx_mmio_rd_valid) {
            mmio_rsp = true;
            mmio_rsp_tid = top->c2_tx_tid;
            mmio_rsp_data = top->c2_tx_data;
        }
        if (!rd_q.empty() || !wr_q.empty()) last_activity = now;

        top->clk = 1;
        top->eval();
        now++;
    }

    bool busy() const { return attached && now - last_activity < IDLE_CYCLES; }
};

// ------------------------------------------------------------------------------------ socket
static bool recv_msg(int fd, Msg& m, int* passed_fd) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    iovec iov{&m, sizeof m};
    msghdr h{};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = cbuf;
    h.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(fd, &h, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    if (n != (ssize_t)sizeof m) return false;  // EOF, error or a torn message: drop the client
    *passed_fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(passed_fd, CMSG_DATA(c), sizeof(int));
    return true;
}

static bool send_reply(int fd, const Reply& r) {
    return send(fd, &r, sizeof r, MSG_NOSIGNAL) == (ssize_t)sizeof r;
}

struct Server {
    Sim& sim;
    int client = -1;
    bool shutdown = false;
    MmioTids tids;

    void detach() {
        if (sim.mem) munmap(sim.mem, sim.mem_size);
        sim.mem = nullptr;
        sim.attached = false;
        sim.regions.list.clear();
        sim.reset_afu();
        sim.bad_seen = sim.bad_write = false;
        sim.bad_addr = sim.bad_count = 0;
        if (client >= 0) close(client);
        client = -1;
    }

    // Handle one message; false drops the client.
    bool handle() {
        Msg m;
        int fd = -1;
        if (!recv_msg(client, m, &fd)) return false;
        Reply r{ST_OK, m.op, 0, 0, 0, 0};
        if (fd >= 0 && m.op != OP_HELLO) {  // only HELLO carries a descriptor; never leak one
            close(fd);
            fd = -1;
        }
        switch (m.op) {
        case OP_HELLO: {
            // The arena must fit the file it maps (a larger mapping faults on first touch), the
            // limits, and the io address space without wrapping.
            struct stat st{};
            bool ok = fd >= 0 && !sim.attached && m.b != 0 && m.b <= MAX_ARENA && m.a % 4096 == 0 && m.a != 0 &&
                      m.a <= MAX_IO_ADDRESS - m.b && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= m.b &&
                      (uint32_t)(m.c >> 32) <= MAX_LATENCY;
            if (!ok) {
                if (fd >= 0) close(fd);
                r.status = ST_BAD_REQUEST;
                break;
            }
            void* p = mmap(nullptr, m.b, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (p == MAP_FAILED) {
                r.status = ST_BAD_REQUEST;
                break;
            }
            sim.mem = (uint8_t*)p;
            sim.io_base = m.a;
            sim.mem_size = m.b;
            sim.lat_min = (uint32_t)m.c;
            sim.lat_max = (uint32_t)(m.c >> 32);
            if (sim.lat_max < sim.lat_min || sim.lat_min == 0) sim.lat_min = sim.lat_max = std::max<uint32_t>(1, sim.lat_min);
            sim.rng = m.d ^ 0x9E3779B97F4A7C15ull;
            sim.attached = true;
            sim.reset_afu();
            r.a = PROTOCOL_VERSION;
            r.b = LINE_BITS;
            r.c = sim.now;
            break;
        }
        case OP_MMIO_READ:
        case OP_MMIO_WRITE: {
            if (!sim.attached) { r.status = ST_NOT_ATTACHED; break; }
            if (m.a % 8 || m.a >= MMIO_SPAN) { r.status = ST_BAD_REQUEST; break; }
            sim.mmio_pending = true;
            sim.mmio_is_read = m.op == OP_MMIO_READ;
            sim.mmio_addr = (uint16_t)(m.a >> 2);  // CCI-P MMIO addresses count 32-bit words
            sim.mmio_tid = tids.issue();
            sim.mmio_data = m.b;
            sim.mmio_rsp = false;
            sim.cycle();
            if (sim.mmio_is_read) {
                uint64_t limit = sim.now + MMIO_TIMEOUT_CYCLES;
                auto answered = [&] { return sim.mmio_rsp && MmioTids::answers(sim.mmio_rsp_tid, sim.mmio_tid); };
                while (!answered() && sim.now < limit) sim.cycle();
                if (answered()) r.a = sim.mmio_rsp_data;
                else r.status = ST_MMIO_TIMEOUT;
                sim.mmio_rsp = false;
            }
            r.c = sim.now;
            break;
        }
        case OP_REGION_ADD:
            // Written so that no sum can wrap: offset and size each within the arena.
            if (!sim.attached || m.a < sim.io_base || m.b == 0 || m.b > sim.mem_size ||
                m.a - sim.io_base > sim.mem_size - m.b || sim.regions.list.size() >= MAX_REGIONS) {
                r.status = ST_BAD_REQUEST;
                break;
            }
            sim.regions.list.push_back(Region{m.a, m.b});
            break;
        case OP_REGION_REMOVE: {
            auto& list = sim.regions.list;
            auto it = std::find_if(list.begin(), list.end(), [&](const Region& x) { return x.base == m.a; });
            if (it == list.end()) r.status = ST_BAD_REQUEST;
            else list.erase(it);
            break;
        }
        case OP_STATUS:
            r.a = sim.now;
            r.b = sim.bad_addr;
            r.c = (sim.bad_seen ? BAD_SEEN : 0) | (sim.bad_write ? BAD_WRITE : 0);
            r.d = sim.bad_count;
            break;
        case OP_CLEAR:
            sim.bad_seen = sim.bad_write = false;
            sim.bad_addr = sim.bad_count = 0;
            break;
        case OP_RUN:
            if (!sim.attached) { r.status = ST_NOT_ATTACHED; break; }
            if (m.a > MAX_RUN_CYCLES) { r.status = ST_BAD_REQUEST; break; }
            for (uint64_t i = 0; i < m.a && !g_stop; i++) sim.cycle();
            r.a = sim.now;
            break;
        case OP_STATS:
            r.a = sim.lines_read;
            r.b = sim.lines_written;
            r.c = sim.max_rd_inflight;
            r.d = sim.almfull_violations;
            break;
        case OP_SHUTDOWN:
            shutdown = true;
            break;
        default:
            r.status = ST_BAD_REQUEST;
        }
        return send_reply(client, r);
    }
};

static void usage() {
    fprintf(stderr, "usage: lowbit-simserver --socket PATH [--once] [--accept-timeout S] [--parent-fd FD] [--remove-dir]\n");
    exit(2);
}

// Claim `path` for our socket. Only a stale socket (one nobody listens on) is replaced; any other
// file, and a live socket, is left alone and refused with a message naming it.
static bool claim_path(const std::string& path) {
    struct stat st{};
    if (lstat(path.c_str(), &st) != 0) return true;  // nothing there
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "lowbit-simserver: %s exists and is not a socket; refusing to replace it\n", path.c_str());
        return false;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, path.c_str());
    bool live = connect(probe, (sockaddr*)&a, sizeof a) == 0 || errno != ECONNREFUSED;
    close(probe);
    if (live) {
        fprintf(stderr, "lowbit-simserver: %s is a socket something is listening on; refusing to replace it\n",
                path.c_str());
        return false;
    }
    unlink(path.c_str());  // a stale socket: nobody listens on it
    return true;
}

// Refuse a connection with a single reply (after reading the client's first request, so it is
// never answered with a broken pipe), then close it. Bounded: waits at most 500 ms for the request.
static void refuse(int c, uint32_t status) {
    timeval tv{0, 500000};  // a torn request must not hold up the client being served
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    pollfd p{c, POLLIN, 0};
    if (poll(&p, 1, 500) > 0) {
        Msg m;
        int fd = -1;
        if (recv_msg(c, m, &fd) && fd >= 0) close(fd);
    }
    Reply r{status, 0, 0, 0, 0, 0};
    send_reply(c, r);
    close(c);
}

static bool same_user(int c) {
    ucred cred{};
    socklen_t len = sizeof cred;
    return getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == getuid();
}

int main(int argc, char** argv) {
    std::string path;
    bool once = false, remove_dir = false;
    double accept_timeout = 0;  // 0: wait forever for a client
    int parent_fd = -1;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc) path = argv[++i];
        else if (a == "--once") once = true;
        else if (a == "--accept-timeout" && i + 1 < argc) accept_timeout = atof(argv[++i]);
        else if (a == "--parent-fd" && i + 1 < argc) parent_fd = atoi(argv[++i]);
        else if (a == "--remove-dir") remove_dir = true;
        else usage();
    }
    if (path.empty()) usage();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa{};
    sa.sa_handler = on_stop_signal;  // no SA_RESTART: poll() returns EINTR and the loop sees g_stop
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);

    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) die("socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        fprintf(stderr, "lowbit-simserver: socket path %s is too long (at most %zu bytes)\n", path.c_str(),
                sizeof addr.sun_path - 1);
        return 2;
    }
    strcpy(addr.sun_path, path.c_str());
    if (!claim_path(path)) return 2;
    mode_t old = umask(0177);  // the socket is created 0600: only this user may drive the AFU
    if (bind(ls, (sockaddr*)&addr, sizeof addr) < 0) die("bind");
    umask(old);
    struct stat mine{};
    lstat(path.c_str(), &mine);  // what we created: the only file we will ever remove
    if (listen(ls, 4) < 0) die("listen");

    VerilatedContext ctx;
    ctx.commandArgs(1, argv);
    Vlowbit_sim_top top{&ctx};
    Sim sim{&ctx, &top};
    top.clk = 0;
    top.rst = 1;
    top.eval();
    sim.reset_afu();
    Server srv{sim};
    printf("READY %s line_bits=%d\n", path.c_str(), LINE_BITS);
    fflush(stdout);

    auto t0 = std::chrono::steady_clock::now();
    bool served = false;
    while (!srv.shutdown && !g_stop) {
        if (srv.client < 0 && once && served) break;
        // One poll over: the driver's lifeline, the listening socket, the client.
        pollfd p[3] = {{parent_fd, POLLIN, 0}, {ls, POLLIN, 0}, {srv.client, POLLIN, 0}};
        int timeout = srv.client >= 0 && sim.busy() ? 0 : 200;
        if (poll(p, 3, timeout) < 0 && errno != EINTR) die("poll");
        if (parent_fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) break;  // the driver is gone
        if (p[1].revents & POLLIN) {
            int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
            if (c >= 0) {
                timeval tv{CLIENT_RCV_TIMEOUT_S, 0};
                setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                if (!same_user(c)) refuse(c, ST_DENIED);
                else if (srv.client >= 0) refuse(c, ST_BUSY);
                else {
                    srv.client = c;
                    served = true;
                    continue;
                }
            }
        }
        if (srv.client < 0) {
            if (accept_timeout > 0 && !served &&
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > accept_timeout) {
                fprintf(stderr, "lowbit-simserver: no client within %.1f s, exiting\n", accept_timeout);
                break;
            }
            continue;
        }
        if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!srv.handle()) srv.detach();
        } else if (sim.busy()) {
            for (int i = 0; i < CHUNK; i++) sim.cycle();
        }
    }
    if (srv.client >= 0) close(srv.client);
    close(ls);
    struct stat now{};
    if (lstat(path.c_str(), &now) == 0 && now.st_dev == mine.st_dev && now.st_ino == mine.st_ino) {
        unlink(path.c_str());
        if (remove_dir) {  // the driver's private directory: removed only if it is now empty
            std::string dir = path;
            rmdir(dirname(&dir[0]));
        }
    }
    top.final();
    return 0;
}
