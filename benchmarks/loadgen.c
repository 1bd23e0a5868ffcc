/* Load generator for the tcposcrouter benchmark.
 *
 * Written in C because it must not be the bottleneck: it drives a byte-copying relay far above
 * any router's capacity on the one core it gets, which the benchmark shows in its output.
 *
 *   loadgen flow  HOST PORT GROUPS USERS SENDERS RATE SIZE SECONDS [batched|each]
 *       GROUPS x USERS connections register (user uI in group gJ); the first SENDERS users of
 *       each group send RATE messages per second each (open loop, paced), SIZE bytes each, for
 *       SECONDS. Every message carries its sender, a sequence number and its *intended* send
 *       time, so a late sender cannot hide latency. Every receiver checks per-sender order and
 *       records latency in a 1-microsecond histogram.
 *       "batched" (the default) writes all the messages a sender is due with one send();
 *       "each" gives every message its own send(), as sclang and Pd do.
 *   loadgen idle  HOST PORT GROUPS USERS HOLD_SECONDS
 *       GROUPS x USERS connections connect one after the other, then all register at once (a
 *       connection storm); reports the time until the last one had its reply, then holds them
 *       HOLD_SECONDS.
 *   loadgen storm HOST PORT GROUPS USERS HOLD_SECONDS
 *       the same, harder: every connect is in flight at once (non-blocking), and each
 *       connection registers as soon as it is connected, as when a venue's access point
 *       restarts and every laptop's program reconnects.
 *   loadgen rejoin HOST PORT GROUPS USERS HOLD_SECONDS
 *       as storm, then after HOLD_SECONDS every connection drops at once and connects and
 *       registers again as storm does (a venue's Wi-Fi restarting under a registered crowd);
 *       reports the time of that second storm.
 *   The environment variable LOADGEN_GROUP_PREFIX names the groups (default "g" for a flow,
 *   "s" for the others), so that several loadgens on one router keep to groups of their own.
 *
 * Prints one JSON object on stdout. Speaks OSC 1.0 length-prefix framing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 2000000 /* 1 us buckets up to 2 s; slower ones count as 2 s */
#define INBUF (1 << 20)

typedef struct {
    int fd;
    int group, user;
    int registered;
    double registered_at;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
    int32_t *next_seq; /* per sender index in its group */
} conn_t;

static conn_t *conns;
static int n_conns, groups, users, senders;
/* Group names: g0, g1, ... for a flow; s0, s1, ... for a storm, so that a storm run beside a
 * flow (benchmarks/storm.py) never joins the flow's groups. */
static const char *group_prefix = "g";
static int epfd;
static void poll_once(int timeout_ms);
static uint32_t *hist;
static uint64_t received, reordered, lost_gaps, hist_count;
static uint64_t max_backlog;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static size_t osc_string(char *dst, const char *s) {
    size_t n = strlen(s), padded = (n + 4) & ~(size_t)3;
    memset(dst, 0, padded);
    memcpy(dst, s, n);
    return padded;
}

static void queue(conn_t *c, const char *data, size_t len) {
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void flush(conn_t *c) {
    while (c->out_len) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            perror("send");
            exit(2);
        }
        memmove(c->out, c->out + n, c->out_len - n);
        c->out_len -= n;
    }
    if (c->out_len > max_backlog) max_backlog = c->out_len;
}

static void send_register(conn_t *c, int id) {
    char pkt[512], name[64], group[64];
    size_t p = 4;
    snprintf(name, sizeof name, "u%d", c->user);
    snprintf(group, sizeof group, "%s%d", group_prefix, c->group);
    p += osc_string(pkt + p, "/oscrouter/register");
    p += osc_string(pkt + p, ",ssssi");
    p += osc_string(pkt + p, name);
    p += osc_string(pkt + p, "pw");
    p += osc_string(pkt + p, group);
    p += osc_string(pkt + p, "gpw");
    uint32_t be = htonl((uint32_t)id);
    memcpy(pkt + p, &be, 4);
    p += 4;
    be = htonl((uint32_t)(p - 4));
    memcpy(pkt, &be, 4);
    queue(c, pkt, p);
    flush(c);
}

static int connect_to(const char *host, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); exit(2); }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* A connect that is in flight: the register goes once it is connected. */
static int connect_in_flight(const char *host, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { perror("socket"); exit(2); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(2);
    }
    return fd;
}

/* One packet arrived on c. */
static void on_packet(conn_t *c, const char *pkt, size_t len, double t) {
    if (!c->registered) {
        char want[128];
        int n = snprintf(want, sizeof want, "/oscrouter/register/u%d/", c->user);
        if (len > (size_t)n && memcmp(pkt, want, n) == 0) {
            c->registered = 1;
            c->registered_at = t;
        }
        return;
    }
    if (len < 32 || memcmp(pkt, "/bench\0\0", 8) != 0) return; /* user lists and the like */
    uint32_t sender, seq;
    int64_t sent;
    memcpy(&sender, pkt + 16, 4);
    memcpy(&seq, pkt + 20, 4);
    memcpy(&sent, pkt + 24, 8);
    sender = ntohl(sender);
    seq = ntohl(seq);
    sent = (int64_t)be64toh((uint64_t)sent);
    int32_t *expected = &c->next_seq[sender];
    if ((int32_t)seq > *expected) lost_gaps += seq - *expected;
    if ((int32_t)seq < *expected) reordered++;
    else *expected = seq + 1;
    received++;
    int64_t us = (now_ns() - sent) / 1000;
    if (us < 0) us = 0;
    if (us >= HIST_US) us = HIST_US - 1;
    hist[us]++;
    hist_count++;
}

static void on_readable(conn_t *c) {
    double t = now_s();
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, INBUF - c->in_len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            perror("recv");
            exit(2);
        }
        if (n == 0) { fprintf(stderr, "connection %d closed by the server\n", (int)(c - conns)); exit(2); }
        c->in_len += n;
        size_t pos = 0;
        while (c->in_len - pos >= 4) {
            uint32_t be;
            memcpy(&be, c->in + pos, 4);
            size_t size = ntohl(be);
            if (size > INBUF - 4) { fprintf(stderr, "packet too large\n"); exit(2); }
            if (c->in_len - pos - 4 < size) break;
            on_packet(c, c->in + pos + 4, size, t);
            pos += 4 + size;
        }
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

static void make_conns(void) {
    n_conns = groups * users;
    conns = calloc(n_conns, sizeof *conns);
    epfd = epoll_create1(0);
    for (int i = 0; i < n_conns; i++) {
        conn_t *c = &conns[i];
        c->group = i / users;
        c->user = i % users;
        c->in = malloc(INBUF);
        c->next_seq = calloc(senders > 0 ? senders : 1, sizeof(int32_t));
    }
}

static void hold_for(double seconds) {
    double until = now_s() + seconds;
    while (now_s() < until) poll_once(100);
}

static void open_all(const char *host, int port) {
    make_conns();
    for (int i = 0; i < n_conns; i++) {
        conn_t *c = &conns[i];
        c->fd = connect_to(host, port);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
}

static void poll_once(int timeout_ms) {
    struct epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, timeout_ms);
    for (int i = 0; i < n; i++) on_readable(&conns[events[i].data.u32]);
}

/* Seconds from `start` to the last register reply. */
static double last_registered(double start) {
    double last = 0;
    for (int i = 0; i < n_conns; i++)
        if (conns[i].registered_at - start > last) last = conns[i].registered_at - start;
    return last;
}

static double register_all(void) {
    double start = now_s();
    for (int i = 0; i < n_conns; i++) send_register(&conns[i], 1000 + i);
    int done = 0;
    while (done < n_conns) {
        if (now_s() - start > 120) { fprintf(stderr, "registration took over 120 s\n"); exit(2); }
        for (int i = 0; i < n_conns; i++) flush(&conns[i]);
        poll_once(10);
        done = 0;
        for (int i = 0; i < n_conns; i++) done += conns[i].registered;
    }
    return last_registered(start);
}

static int connected_count;

/* Every connection's connect in flight at once; each registers once connected. Returns the
 * seconds from the first connect to the last register reply. */
static double storm_all(const char *host, int port) {
    double start = now_s();
    connected_count = 0;
    for (int i = 0; i < n_conns; i++) {
        conn_t *c = &conns[i];
        c->registered = 0;
        c->in_len = c->out_len = 0;
        c->fd = connect_in_flight(host, port);
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    char *sent = calloc((size_t)(n_conns > 0 ? n_conns : 1), 1);
    int done = 0;
    while (done < n_conns) {
        if (now_s() - start > 120) { fprintf(stderr, "the storm took over 120 s\n"); exit(2); }
        struct epoll_event events[256];
        int n = epoll_wait(epfd, events, 256, 10);
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            conn_t *c = &conns[i];
            if (!sent[i] && (events[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int error = 0;
                socklen_t len = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
                if (error) { fprintf(stderr, "connect: %s\n", strerror(error)); exit(2); }
                sent[i] = 1;
                connected_count++;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                send_register(c, 1000 + i);
            }
            if (events[k].events & EPOLLIN) on_readable(c);
        }
        for (int i = 0; i < n_conns; i++) if (conns[i].out_len) flush(&conns[i]);
        done = 0;
        for (int i = 0; i < n_conns; i++) done += conns[i].registered;
    }
    free(sent);
    return last_registered(start);
}


static uint64_t percentile(double q) {
    uint64_t target = (uint64_t)(q * hist_count), seen = 0;
    for (int us = 0; us < HIST_US; us++) {
        seen += hist[us];
        if (seen > target) return us;
    }
    return HIST_US;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: see the comment at the top of loadgen.c\n"); return 2; }
    const char *prefix = getenv("LOADGEN_GROUP_PREFIX");
    if (prefix != NULL && *prefix) group_prefix = prefix;
    int storm = strcmp(argv[1], "storm") == 0, rejoin = strcmp(argv[1], "rejoin") == 0;
    if ((storm || rejoin) && argc == 7) {
        groups = atoi(argv[4]); users = atoi(argv[5]); senders = 0;
        if (prefix == NULL || !*prefix) group_prefix = "s";
        double hold = atof(argv[6]);
        make_conns();
        double first = storm_all(argv[2], atoi(argv[3]));
        if (storm) {
            printf("{\"connections\": %d, \"all_registered_s\": %.4f}\n", n_conns, first);
            fflush(stdout);
            hold_for(hold);
            return 0;
        }
        printf("{\"connections\": %d, \"first_registered_s\": %.4f}\n", n_conns, first);
        fflush(stdout);
        hold_for(hold);
        for (int i = 0; i < n_conns; i++) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, conns[i].fd, NULL);
            close(conns[i].fd);
        }
        double again = storm_all(argv[2], atoi(argv[3]));
        printf("{\"connections\": %d, \"all_registered_again_s\": %.4f}\n", n_conns, again);
        fflush(stdout);
        hold_for(0.5);
        return 0;
    }
    if (strcmp(argv[1], "idle") == 0 && argc == 7) {
        groups = atoi(argv[4]); users = atoi(argv[5]); senders = 0;
        if (prefix == NULL || !*prefix) group_prefix = "s";
        double hold = atof(argv[6]);
        open_all(argv[2], atoi(argv[3]));
        double storm = register_all();
        printf("{\"connections\": %d, \"all_registered_s\": %.4f}\n", n_conns, storm);
        fflush(stdout);
        hold_for(hold);
        return 0;
    }
    if (strcmp(argv[1], "flow") != 0 || argc < 10 || argc > 11) { fprintf(stderr, "bad arguments\n"); return 2; }
    int each = argc == 11 && strcmp(argv[10], "each") == 0;
    groups = atoi(argv[4]); users = atoi(argv[5]); senders = atoi(argv[6]);
    double rate = atof(argv[7]);
    int size = atoi(argv[8]);
    double seconds = atof(argv[9]);
    if (size < 36 || size % 4) { fprintf(stderr, "SIZE must be a multiple of 4, at least 36\n"); return 2; }
    hist = calloc(HIST_US, sizeof *hist);
    open_all(argv[2], atoi(argv[3]));
    register_all();
    double settle = now_s() + 0.3; /* let the user lists pass */
    while (now_s() < settle) poll_once(10);
    /* Tell the harness: from here on the server's CPU time is the flow's. */
    printf("{\"registered\": %d}\n", n_conns);
    fflush(stdout);

    /* The message: /bench ,iihs sender seq sent_ns padding; SIZE bytes. */
    char *msg = calloc(1, size + 4);
    uint32_t be = htonl((uint32_t)size);
    memcpy(msg, &be, 4);
    osc_string(msg + 4, "/bench");
    osc_string(msg + 12, ",iihs");
    memset(msg + 4 + 32, 'x', size - 32 - 1);
    msg[4 + size - 1] = 0;

    int n_senders = groups * senders;
    double *next = malloc(n_senders * sizeof(double));
    int32_t *seq = calloc(n_senders, sizeof(int32_t));
    double interval = 1.0 / rate, start = now_s() + 0.01, end = start + seconds;
    for (int s = 0; s < n_senders; s++) next[s] = start + interval * s / n_senders;
    uint64_t sent_total = 0;
    for (;;) {
        double t = now_s();
        if (t >= end) break;
        double soonest = end;
        for (int s = 0; s < n_senders; s++) {
            int burst = 0;
            while (next[s] <= t && burst < 64) {
                conn_t *c = &conns[(s / senders) * users + s % senders];
                uint32_t v = htonl((uint32_t)(s % senders));
                memcpy(msg + 4 + 16, &v, 4);
                v = htonl((uint32_t)seq[s]++);
                memcpy(msg + 4 + 20, &v, 4);
                int64_t intended = (int64_t)(next[s] * 1e9);
                /* now_s() and now_ns() read the same clock */
                uint64_t ts = htobe64((uint64_t)intended);
                memcpy(msg + 4 + 24, &ts, 8);
                queue(c, msg, size + 4);
                if (each) flush(c);
                next[s] += interval;
                burst++;
                sent_total++;
            }
            if (next[s] < soonest) soonest = next[s];
        }
        for (int s = 0; s < n_senders; s++) flush(&conns[(s / senders) * users + s % senders]);
        double wait = soonest - now_s();
        poll_once(wait > 0.002 ? 1 : 0);
    }
    /* Drain: wait until everything expected has arrived, or 2 s of nothing new. */
    uint64_t expected = sent_total * (uint64_t)(users - 1);
    double quiet_since = now_s();
    uint64_t last_received = received;
    while (received < expected && now_s() - quiet_since < 2.0) {
        for (int s = 0; s < n_senders; s++) flush(&conns[(s / senders) * users + s % senders]);
        poll_once(10);
        if (received != last_received) { last_received = received; quiet_since = now_s(); }
    }
    printf("{\"offered_msgs_per_s\": %.1f, \"offered_deliveries_per_s\": %.1f, "
           "\"sent\": %lu, \"expected\": %lu, \"received\": %lu, \"lost\": %lu, "
           "\"reordered\": %lu, \"delivered_per_s\": %.1f, \"p50_us\": %lu, \"p99_us\": %lu, "
           "\"p999_us\": %lu, \"max_us\": %lu, \"max_send_backlog_bytes\": %lu, \"seconds\": %.3f}\n",
           rate * n_senders, rate * n_senders * (users - 1), (unsigned long)sent_total,
           (unsigned long)expected, (unsigned long)received,
           (unsigned long)(expected > received ? expected - received : 0),
           (unsigned long)reordered, received / seconds, (unsigned long)percentile(0.5),
           (unsigned long)percentile(0.99), (unsigned long)percentile(0.999),
           (unsigned long)percentile(1.0 - 1e-12), (unsigned long)max_backlog, seconds);
    return 0;
}
