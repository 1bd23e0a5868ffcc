/* The benchmark's physical-limit yardstick: a byte-copy relay in C.
 *
 * One thread, epoll, OSC 1.0 length-prefix framing only. It answers a register with the reply
 * the SuperCollider client waits for, sends the group's user list on every join and leave, and
 * from then on copies each read's complete frames, as they are, to every other member of the
 * group. Everything one epoll round produces for a connection leaves in one send(). No
 * validation, no passwords, no limits: it is not a router, it is what the machine and the
 * kernel cost, measured in the same run as the routers.
 *
 *   c_relay PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_GROUPS 8192
#define INBUF (1 << 20)

typedef struct conn conn_t;
typedef struct {
    char name[64];
    conn_t **members;
    int count, cap;
} group_t;

struct conn {
    int fd;
    group_t *group;
    char user[64];
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_cap;
    int dirty;    /* in this round's list of connections with output */
    int watching; /* EPOLLOUT requested because the kernel buffer was full */
};

static group_t groups[MAX_GROUPS];
static int n_groups, epfd;
static conn_t **dirty;
static int n_dirty, dirty_cap;

static size_t osc_string(char *dst, const char *s, size_t n) {
    size_t padded = (n + 4) & ~(size_t)3;
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
    if (!c->dirty) {
        if (n_dirty == dirty_cap) {
            dirty_cap = dirty_cap ? dirty_cap * 2 : 1024;
            dirty = realloc(dirty, dirty_cap * sizeof *dirty);
        }
        dirty[n_dirty++] = c;
        c->dirty = 1;
    }
}

static void send_user_list(group_t *g) {
    char pkt[65536];
    size_t p = 4, tags = 0;
    char tagstr[1100] = ",";
    for (int i = 0; i < g->count && i < 1000; i++) strcat(tagstr, "s"), tags++;
    p += osc_string(pkt + p, "/oscrouter/userlist", 19);
    p += osc_string(pkt + p, tagstr, strlen(tagstr));
    for (size_t i = 0; i < tags && p < sizeof pkt - 80; i++)
        p += osc_string(pkt + p, g->members[i]->user, strlen(g->members[i]->user));
    uint32_t be = htonl((uint32_t)(p - 4));
    memcpy(pkt, &be, 4);
    for (int i = 0; i < g->count; i++) queue(g->members[i], pkt, p);
}

/* The register: /oscrouter/register ,ssss[i] user password group groupPassword [id] */
static int do_register(conn_t *c, const char *pkt, size_t len) {
    const char *fields[6];
    size_t lens[6], pos = 0;
    int n = 0;
    while (pos < len && n < 6) {
        size_t l = strnlen(pkt + pos, len - pos);
        fields[n] = pkt + pos;
        lens[n++] = l;
        pos += (l + 4) & ~(size_t)3;
    }
    if (n < 6 || lens[2] >= 64 || lens[4] >= 64) return -1;
    memcpy(c->user, fields[2], lens[2]);
    c->user[lens[2]] = 0;
    uint32_t id = 0;
    if (pos + 4 <= len) memcpy(&id, pkt + pos, 4), id = ntohl(id);
    group_t *g = NULL;
    for (int i = 0; i < n_groups; i++)
        if (strlen(groups[i].name) == lens[4] && memcmp(groups[i].name, fields[4], lens[4]) == 0)
            g = &groups[i];
    if (!g) {
        if (n_groups == MAX_GROUPS) return -1;
        g = &groups[n_groups++];
        memcpy(g->name, fields[4], lens[4]);
        g->name[lens[4]] = 0;
    }
    if (g->count == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->members = realloc(g->members, g->cap * sizeof *g->members);
    }
    g->members[g->count++] = c;
    c->group = g;
    char reply[256], address[160];
    int alen = snprintf(address, sizeof address, "/oscrouter/register/%s/%u", c->user, id);
    size_t p = 4;
    p += osc_string(reply + p, address, (size_t)alen);
    p += osc_string(reply + p, ",", 1);
    uint32_t be = htonl((uint32_t)(p - 4));
    memcpy(reply, &be, 4);
    queue(c, reply, p);
    send_user_list(g);
    return 0;
}

static void drop(conn_t *c) {
    group_t *g = c->group;
    if (g) {
        for (int i = 0; i < g->count; i++)
            if (g->members[i] == c) {
                memmove(&g->members[i], &g->members[i + 1], (g->count - i - 1) * sizeof *g->members);
                g->count--;
                break;
            }
        if (g->count) send_user_list(g);
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->group = NULL;
    c->in_len = c->out_len = 0;
    /* The struct stays allocated: it may still be in this round's dirty list. */
}

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, INBUF - c->in_len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            drop(c);
            return;
        }
        if (n == 0) { drop(c); return; }
        c->in_len += n;
        size_t pos = 0, end = 0;
        while (c->in_len - pos >= 4) {
            uint32_t be;
            memcpy(&be, c->in + pos, 4);
            size_t size = ntohl(be);
            if (size == 0 || size > INBUF - 4) { drop(c); return; }
            if (c->in_len - pos - 4 < size) break;
            if (!c->group) {
                if (do_register(c, c->in + pos + 4, size) < 0) { drop(c); return; }
                pos += 4 + size;
                end = pos;
                memmove(c->in, c->in + pos, c->in_len - pos);
                c->in_len -= pos;
                pos = end = 0;
                continue;
            }
            pos += 4 + size;
            end = pos;
        }
        if (end && c->group) {
            group_t *g = c->group;
            for (int i = 0; i < g->count; i++)
                if (g->members[i] != c) queue(g->members[i], c->in, end);
        }
        memmove(c->in, c->in + end, c->in_len - end);
        c->in_len -= end;
    }
}

static void flush_one(conn_t *c) {
    while (c->out_len && c->fd >= 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                if (!c->watching) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                    c->watching = 1;
                }
                return;
            }
            drop(c);
            return;
        }
        memmove(c->out, c->out + n, c->out_len - n);
        c->out_len -= n;
    }
    if (c->watching && c->fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->watching = 0;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: c_relay PORT\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    listen(lfd, 4096);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(epfd, events, 512, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    nc->in = malloc(INBUF);
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->fd < 0) continue;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
        /* One send per connection with output, for everything this round produced. */
        for (int i = 0; i < n_dirty; i++) {
            dirty[i]->dirty = 0;
            flush_one(dirty[i]);
            if (dirty[i]->out_len && dirty[i]->fd >= 0) { /* kernel full: EPOLLOUT retries */ }
        }
        n_dirty = 0;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c && c->fd >= 0 && (events[i].events & EPOLLOUT)) flush_one(c);
        }
    }
}
