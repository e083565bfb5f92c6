// bare_responder: the performance ceiling for the iproto storage protocol.
//
// Build: mkdir -p bench/.build && cc -O2 -pthread -o bench/.build/bare_responder bench/bare_responder.c
//   (or `make -C bench`)
// Run:   bench/.build/bare_responder [--port P] [--threads N]
//
// A bare epoll TCP responder that answers STORAGE_READ / STORAGE_REPLACE the
// way iprotod's storage does on success, written for speed: no validation, no
// limits, no MessagePack library, no logging. Benchmarks compare iprotod
// against it to see how much the server framework costs. Not for production.
//
// Wire format (u32 little-endian): request  func_id, body_length, request_id + body;
//                                  response func_id, body_length, request_id, return_code + body.
// Differences from iprotod, on purpose: errors carry the body `a0` instead of
// a message; REPLACE stores the string's raw bytes, so a non-canonical header
// (say `d9 05 hello`) is echoed back as sent, where iprotod re-encodes it.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire format is little-endian and this file copies u32s as they are"
#endif

enum {
    FUNC_REPLACE = 0x00020001,
    FUNC_READ = 0x00020002,
    RC_OUT_OF_RANGE = 4,
    RC_TOO_LONG = 5,
    SLOT_COUNT = 1000,
    SLOT_MAX = 259,             // str16 header (3) + iprotod's 256-byte value limit
    MAX_BODY = 1 << 20,         // larger frames close the connection
    REQ_HDR = 12,
    RESP_HDR = 16,
    READ_CHUNK = 64 * 1024,     // free space guaranteed before each read()
};

// One spinlock per slot: critical sections are a memcpy of at most 259
// bytes, so spinning beats sleeping, and different slots never contend.
struct slot {
    atomic_int lock;
    uint16_t len;
    unsigned char data[SLOT_MAX];
};
static struct slot slots[SLOT_COUNT];

static void slot_lock(struct slot *s) {
    while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire))
        while (atomic_load_explicit(&s->lock, memory_order_relaxed)) {}
}
static void slot_unlock(struct slot *s) { atomic_store_explicit(&s->lock, 0, memory_order_release); }

struct buf {
    unsigned char *p;
    size_t len, cap;
};

struct conn {
    int fd;
    int eof;            // peer half-closed: close once the output is flushed
    struct buf in, out;
    size_t out_off;     // bytes of `out` already written
};

static void reserve(struct buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) cap *= 2;
    if (!(b->p = realloc(b->p, cap))) { perror("realloc"); abort(); }
    b->cap = cap;
}

static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

// Positive fixint, uint8 or uint16 (all iprotod clients need for 0...999);
// anything else decodes as an out-of-range index. Advances *p past it.
static uint32_t decode_index(const unsigned char **p, const unsigned char *end) {
    const unsigned char *q = *p;
    if (q >= end) return UINT32_MAX;
    if (q[0] <= 0x7f) { *p = q + 1; return q[0]; }
    if (q[0] == 0xcc && end - q >= 2) { *p = q + 2; return q[1]; }
    if (q[0] == 0xcd && end - q >= 3) { *p = q + 3; return (uint32_t)q[1] << 8 | q[2]; }
    return UINT32_MAX;
}

// Appends the reply to one request; `body` points at body_len bytes in c->in.
static void handle(struct conn *c, const unsigned char *hdr, const unsigned char *body, uint32_t body_len) {
    reserve(&c->out, RESP_HDR + SLOT_MAX);
    unsigned char *r = c->out.p + c->out.len;
    const unsigned char *p = body, *end = body + body_len;
    uint32_t func = rd32(hdr), rc = 0, len = 1;
    memcpy(r, hdr, REQ_HDR);  // func_id and request_id are echoed; body_length is overwritten
    r[RESP_HDR] = 0xc0;       // nil: REPLACE's success body and the default reply

    if (func == FUNC_READ || func == FUNC_REPLACE) {
        uint32_t idx = decode_index(&p, end);
        if (idx >= SLOT_COUNT) {
            rc = RC_OUT_OF_RANGE;
            r[RESP_HDR] = 0xa0;
        } else if (func == FUNC_READ) {
            struct slot *s = &slots[idx];
            slot_lock(s);
            len = s->len;
            memcpy(r + RESP_HDR, s->data, len);
            slot_unlock(s);
        } else {
            // Only the bounds that protect memory: the str must fit the body and the slot.
            size_t hl = 0, sl = 0, avail = (size_t)(end - p);
            if (avail >= 1 && p[0] >= 0xa0 && p[0] <= 0xbf) { hl = 1; sl = p[0] & 0x1f; }
            else if (avail >= 2 && p[0] == 0xd9) { hl = 2; sl = p[1]; }
            else if (avail >= 3 && p[0] == 0xda) { hl = 3; sl = (size_t)p[1] << 8 | p[2]; }
            if (hl == 0 || hl + sl > avail || hl + sl > SLOT_MAX) {
                rc = RC_TOO_LONG;
                r[RESP_HDR] = 0xa0;
            } else {
                struct slot *s = &slots[idx];
                slot_lock(s);
                memcpy(s->data, p, hl + sl);
                s->len = (uint16_t)(hl + sl);
                slot_unlock(s);
            }
        }
    }
    wr32(r + 4, len);
    wr32(r + 12, rc);
    c->out.len += RESP_HDR + len;
}

// Answers every complete frame in c->in and keeps the partial tail.
// Returns -1 if a frame is too large (the connection must close).
static int process(struct conn *c) {
    size_t pos = 0;
    int ret = 0;
    while (c->in.len - pos >= REQ_HDR) {
        const unsigned char *h = c->in.p + pos;
        uint32_t blen = rd32(h + 4);
        if (blen > MAX_BODY) { ret = -1; break; }
        if (c->in.len - pos < REQ_HDR + (size_t)blen) break;
        handle(c, h, h + REQ_HDR, blen);
        pos += REQ_HDR + (size_t)blen;
    }
    if (pos) {
        memmove(c->in.p, c->in.p + pos, c->in.len - pos);
        c->in.len -= pos;
    }
    return ret;
}

static void conn_close(struct conn *c) {
    close(c->fd);  // also removes it from the epoll set
    free(c->in.p);
    free(c->out.p);
    free(c);
}

// One write() for everything pending; whatever the socket does not take
// waits for the next EPOLLOUT edge. Returns -1 on a write error.
static int flush_out(struct conn *c) {
    size_t n = c->out.len - c->out_off;
    if (n == 0) return 0;
    ssize_t w = write(c->fd, c->out.p + c->out_off, n);
    if (w < 0) return errno == EAGAIN ? 0 : -1;  // no EINTR: workers block all signals we catch
    c->out_off += (size_t)w;
    if (c->out_off == c->out.len) c->out.len = c->out_off = 0;
    return 0;
}

// Edge-triggered, so read until the kernel buffer is drained: a short read
// means it was empty at that moment, and later data raises a new edge. Not so
// for a FIN that came with the data (`hup`): no new edge will announce it,
// so then read on until read() returns 0.
static int on_readable(struct conn *c, int hup) {
    for (;;) {
        reserve(&c->in, READ_CHUNK);
        size_t room = c->in.cap - c->in.len;
        ssize_t r = read(c->fd, c->in.p + c->in.len, room);
        if (r > 0) {
            c->in.len += (size_t)r;
            if (process(c) < 0) return -1;
            if ((size_t)r < room && !hup) return 0;
        } else if (r == 0) {
            c->eof = 1;
            return 0;
        } else {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
    }
}

static int listen_socket(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, SOMAXCONN) < 0) {
        perror("listen socket");
        exit(1);
    }
    return fd;
}

// One thread per listening socket, each with its own epoll set; the kernel
// spreads connections across the SO_REUSEPORT group, so threads share nothing
// but the slots. A NULL data.ptr marks the listener.
static void *worker(void *arg) {
    int lfd = (int)(intptr_t)arg, one = 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) { perror("epoll"); exit(1); }
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    // Both directions once, edge-triggered: no epoll_ctl per reply.
                    ev = (struct epoll_event){.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) conn_close(c);
                }
                continue;
            }
            uint32_t e = evs[i].events;
            int bad = (e & EPOLLERR) != 0;
            if (!bad && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) bad = on_readable(c, (e & (EPOLLRDHUP | EPOLLHUP)) != 0) < 0;
            // This batch's replies, or the rest on EPOLLOUT; also the replies
            // before an oversized frame, best effort, before closing.
            if (!(e & EPOLLERR) && flush_out(c) < 0) bad = 1;
            if (bad || (c->eof && c->out.len == 0)) conn_close(c);
        }
    }
    return NULL;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--port P] [--threads N]\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    long port = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) port = strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) threads = strtol(argv[++i], NULL, 10);
        else usage(argv[0]);
    }
    if (port < 0 || port > 65535 || threads < 1 || threads > 1024) usage(argv[0]);

    for (int i = 0; i < SLOT_COUNT; i++) {
        slots[i].data[0] = 0xa0;  // every slot starts as the empty string
        slots[i].len = 1;
    }
    signal(SIGPIPE, SIG_IGN);  // a peer that goes away must not kill us mid-write
    // Block the stop signals before starting threads so that they all inherit
    // the mask and only main's sigwait() sees them.
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    // The first socket picks the port; the others join its SO_REUSEPORT group.
    // All are listening before the port is announced.
    int *fds = malloc(sizeof *fds * (size_t)threads);
    fds[0] = listen_socket((uint16_t)port);
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    getsockname(fds[0], (struct sockaddr *)&a, &alen);
    for (long i = 1; i < threads; i++) fds[i] = listen_socket(ntohs(a.sin_port));
    for (long i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)fds[i]) != 0) { perror("pthread_create"); return 1; }
    }
    printf("bare_responder listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    _exit(0);  // nothing to flush or save; skip tearing down the workers
}
