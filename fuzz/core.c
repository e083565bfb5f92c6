/*
 * libFuzzer target for the C core: the input is what clients send, and the real
 * listener, connection state machine and buffers (server.c, connection.c,
 * buffer.c) serve it.
 *
 * Input: 4 settings bytes, then the client byte stream. Four zero bytes in
 * front of a fixture's .bin give what Tests/Fixtures/run.sh does: iprotod's
 * limits, one client, one write, a half-close, replies read to EOF.
 *   byte 0  bits 0-2: max_body, bits 3-5: max_output (index into the tables below)
 *   byte 1  bit 0: a second client; chunks go to one client or the other
 *           bit 1: stop the server before chunk number bits 4-7 (or at the end)
 *           bit 2: clients read only when a send would block, not after every chunk
 *           bit 3: the first client closes at the end without reading instead of half-closing
 *   byte 2  0: the stream goes in one write; else chunks of 1 to 2^(1 + bits 0-2) bytes
 *   byte 3  bit 0: max_connections 1; bit 1: max_connections_per_ip 1; bit 2: no timeouts;
 *           bit 3: an on_flush barrier (deferred sending, as with --data-dir);
 *           bit 4: the server runs after every second chunk only, so both clients'
 *           bytes can meet in one loop iteration; bit 5: the clients finish together
 *           (all of bytes 2-3 seed the chunk lengths)
 *
 * The server gets an AF_UNIX listening socket as listen_fd, and worker 0's loop
 * runs on this thread (EVRUN_NOWAIT until nothing moves) instead of on a worker
 * thread: an input runs the same way every time, no thread outlives it and
 * nothing sleeps. Timeouts are half an hour or more, so timers are armed but never fire.
 *
 * Beyond the sanitizers, each input is checked against the protocol: the
 * callback sees exactly each client's complete frames, in order and intact;
 * each client gets one reply per frame in order (the callback's, code 6 for the
 * first header over max_body and nothing after it, code 8 only once stopping),
 * no stray bytes, then EOF; no reply of the callback's leaves before an
 * on_flush that follows it (group commit); connections always come to an end;
 * no descriptor leaks (LeakSanitizer covers memory).
 */
#include <errno.h>
#include <fcntl.h>
#include <msgpuck.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

#define SETTINGS 4
#define MAX_CLIENTS 2
/* Rounds in a row in which neither the server nor a client moves a byte before the harness calls it a hang. */
#define STALL_ROUNDS 3

static const uint32_t max_bodies[8] = {65536, 0, 1, 12, 100, 1000, 4096, UINT32_MAX};
static const size_t max_outputs[8] = {1048576, 1, 16, 100, 1000, 4096, 65536, 300000};

struct frame {
    uint32_t func_id, body_length, request_id;
    const uint8_t *body;
    bool oversized;  /* body_length > max_body: answered with code 6, and the last frame served */
};

struct client {
    int fd;                     /* -1 once closed */
    uint8_t *stream;            /* everything it sends, in order */
    size_t stream_length, sent;
    struct frame *frames;       /* what the server must answer */
    size_t frame_count;
    size_t calls;               /* frames the callback has run */
    size_t flushed;             /* of those, how many on_flush has covered */
    uint8_t *received;
    size_t received_length, received_capacity;
    size_t parsed, replies;     /* complete replies received so far, and where they end */
    bool eof, aborted, refused, send_failed;
};

static struct {
    iproto_server *server;
    struct ev_loop *loop;
    struct client clients[MAX_CLIENTS];
    unsigned client_count;
    unsigned accepted;          /* connection events so far: accept order is connect order */
    bool stopped;
    bool barrier;               /* on_flush is set */
    uint32_t max_body;
} h;

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "fuzz-core: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    abort();
}

static inline uint32_t load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The callback's reply is a pure function of the frame, so the check can rebuild it: the body
 * echoed, then zeros (up to 255 KiB, from func_id's top byte) to fill sockets and max_output. */
static uint32_t reply_code(const struct frame *f) { return f->func_id & 0xf; }
static size_t reply_padding(const struct frame *f) { return (size_t)(f->func_id >> 24) * 1024; }

static size_t expected_reply(const struct frame *f, uint8_t **out) {
    size_t body = f->body_length + reply_padding(f);
    uint8_t *r = calloc(1, IPROTO_RESPONSE_HEADER_SIZE + body);
    if (r == NULL)
        fail("out of memory");
    store_u32le(r, f->func_id);
    store_u32le(r + 4, (uint32_t)body);
    store_u32le(r + 8, f->request_id);
    store_u32le(r + 12, reply_code(f));
    if (f->body_length > 0)
        memcpy(r + IPROTO_RESPONSE_HEADER_SIZE, f->body, f->body_length);
    *out = r;
    return IPROTO_RESPONSE_HEADER_SIZE + body;
}

static void on_request(void *context, iproto_conn *conn, unsigned worker, uint32_t func_id,
                       uint32_t request_id, const char *body, uint32_t body_length) {
    (void)context;
    (void)worker;
    uint64_t tag = iproto_conn_state(conn)->counters[1];
    if (tag == 0)
        fail("a request on a connection the harness did not tag");
    unsigned index = (unsigned)tag - 1;
    struct client *c = &h.clients[index];
    if (c->calls >= c->frame_count || c->frames[c->calls].oversized)
        fail("client %u: callback for frame %zu, but it sent only %zu servable frames", index, c->calls,
             c->frame_count);
    const struct frame *f = &c->frames[c->calls];
    if (func_id != f->func_id || request_id != f->request_id || body_length != f->body_length ||
        (body_length > 0 && memcmp(body, f->body, body_length) != 0))
        fail("client %u: frame %zu reached the callback altered", index, c->calls);
    c->calls++;
    uint8_t *reply;
    size_t length = expected_reply(f, &reply);
    iproto_reply(conn, func_id, request_id, reply_code(f), (const char *)reply + IPROTO_RESPONSE_HEADER_SIZE,
                 (uint32_t)(length - IPROTO_RESPONSE_HEADER_SIZE));
    free(reply);
}

static int on_flush(void *context, unsigned worker, iproto_flush_error *error) {
    (void)context;
    (void)worker;
    (void)error;
    for (unsigned i = 0; i < h.client_count; i++)
        h.clients[i].flushed = h.clients[i].calls;
    return 0;
}

static void on_connection(void *context, iproto_conn *conn, unsigned worker, iproto_conn_event event,
                          const char *peer, iproto_close_reason reason) {
    (void)context;
    (void)conn;
    (void)worker;
    (void)peer;
    (void)reason;
    if (event == IPROTO_CONN_CLOSED)
        return;
    if (h.accepted >= h.client_count)
        fail("a connection no client made");
    h.clients[h.accepted++].refused = event == IPROTO_CONN_REJECTED;
}

/* Bytes moved or connections changed: what tells the harness that the server did something. */
static uint64_t server_progress(void) {
    iproto_stats s;
    iproto_server_stats(h.server, &s);
    uint64_t p = s.connections_accepted + s.requests + s.bytes_in + s.bytes_out + h.accepted;
    for (int r = 0; r < IPROTO_CLOSE_REASON_COUNT; r++)
        p += s.connections_closed[r];
    return p;
}

/*
 * Runs the worker's loop until two passes in a row change nothing (a callback
 * may only queue work for the next pass's prepare watcher, as deferred sending
 * does); returns whether anything moved.
 */
static bool pump(void) {
    uint64_t start = server_progress();
    for (int quiet = 0; quiet < 2;) {
        uint64_t before = server_progress();
        ev_run(h.loop, EVRUN_NOWAIT);
        quiet = server_progress() == before ? quiet + 1 : 0;
    }
    return server_progress() != start;
}

/* Counts the replies completed by new bytes; one the callback made must have been flushed first. */
static void note_replies(struct client *c) {
    while (c->received_length - c->parsed >= IPROTO_RESPONSE_HEADER_SIZE) {
        size_t frame = IPROTO_RESPONSE_HEADER_SIZE + (size_t)load_u32le(c->received + c->parsed + 4);
        if (c->received_length - c->parsed < frame)
            return;
        if (h.barrier && c->replies < c->calls && c->replies >= c->flushed)
            fail("client %td: reply %zu was sent before on_flush", c - h.clients, c->replies);
        c->parsed += frame;
        c->replies++;
    }
}

/* Reads what is there; returns whether anything (bytes or EOF) arrived. */
static bool client_receive(struct client *c) {
    bool moved = false;
    while (c->fd >= 0 && !c->eof) {
        if (c->received_capacity - c->received_length < 65536) {
            c->received_capacity = c->received_capacity * 2 + 65536;
            c->received = realloc(c->received, c->received_capacity);
            if (c->received == NULL)
                fail("out of memory");
        }
        ssize_t n = recv(c->fd, c->received + c->received_length, c->received_capacity - c->received_length,
                         MSG_DONTWAIT);
        if (n > 0) {
            c->received_length += (size_t)n;
            moved = true;
        } else if (n == 0) {
            c->eof = moved = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            fail("client %td: recv: %s (the server closed with unread input, losing replies)",
                 c - h.clients, strerror(errno));
        }
    }
    note_replies(c);
    return moved;
}

static void receive_all(void) {
    for (unsigned i = 0; i < h.client_count; i++)
        client_receive(&h.clients[i]);
}

/* Sends `length` more bytes of the client's stream, letting the server and the client's reads make room. */
static void client_send(struct client *c, size_t length) {
    size_t end = c->sent + length;
    int stalled = 0;
    while (c->sent < end && !c->send_failed) {
        ssize_t n = send(c->fd, c->stream + c->sent, end - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->sent += (size_t)n;
            stalled = 0;
        } else if (errno == EPIPE || errno == ECONNRESET) {
            c->send_failed = true;  /* the server closed: refused, or done after code 6 */
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            bool moved = pump();
            moved |= client_receive(c);
            if (!moved && ++stalled >= STALL_ROUNDS)
                fail("client %td cannot send: the server neither reads nor writes", c - h.clients);
        } else if (errno != EINTR) {
            fail("client %td: send: %s", c - h.clients, strerror(errno));
        }
    }
}

/* The frames the server must answer: complete ones, up to and including the first oversized header. */
static void model_frames(struct client *c) {
    c->frames = calloc(c->stream_length / IPROTO_REQUEST_HEADER_SIZE + 1, sizeof *c->frames);
    if (c->frames == NULL)
        fail("out of memory");
    size_t offset = 0;
    while (c->stream_length - offset >= IPROTO_REQUEST_HEADER_SIZE) {
        const uint8_t *p = c->stream + offset;
        struct frame f = {load_u32le(p), load_u32le(p + 4), load_u32le(p + 8), p + IPROTO_REQUEST_HEADER_SIZE,
                          false};
        if (f.body_length > h.max_body) {
            f.oversized = true;
            c->frames[c->frame_count++] = f;
            return;
        }
        if (c->stream_length - offset - IPROTO_REQUEST_HEADER_SIZE < f.body_length)
            return;
        c->frames[c->frame_count++] = f;
        offset += IPROTO_REQUEST_HEADER_SIZE + (size_t)f.body_length;
    }
}

static bool is_message(const uint8_t *body, size_t length) {
    const char *p = (const char *)body, *end = p + length;
    if (length == 0 || mp_typeof(*p) != MP_STR || mp_check_strl(p, end) > 0)
        return false;
    uint32_t n = mp_decode_strl(&p);
    return (size_t)(end - p) == n;
}

static void check_replies(unsigned index) {
    const struct client *c = &h.clients[index];
    if (c->refused) {
        if (c->received_length > 0 || c->calls > 0)
            fail("client %u was refused but served", index);
        return;
    }
    size_t offset = 0, k = 0;
    while (c->received_length - offset >= IPROTO_RESPONSE_HEADER_SIZE) {
        const uint8_t *r = c->received + offset;
        uint32_t body_length = load_u32le(r + 4), code = load_u32le(r + 12);
        if (c->received_length - offset - IPROTO_RESPONSE_HEADER_SIZE < body_length)
            break;
        if (k >= c->frame_count)
            fail("client %u: reply %zu answers no request", index, k);
        const struct frame *f = &c->frames[k];
        if (load_u32le(r) != f->func_id || load_u32le(r + 8) != f->request_id)
            fail("client %u: reply %zu is not for request %zu", index, k, k);
        const uint8_t *body = r + IPROTO_RESPONSE_HEADER_SIZE;
        if (f->oversized) {
            if (code != IPROTO_RC_BODY_TOO_LARGE || !is_message(body, body_length))
                fail("client %u: frame %zu is over max_body but got code %u", index, k, code);
            if (offset + IPROTO_RESPONSE_HEADER_SIZE + body_length != c->received_length)
                fail("client %u: bytes after the code 6 reply", index);
        } else if (k < c->calls) {
            uint8_t *expected;
            size_t length = expected_reply(f, &expected);
            bool same = length == IPROTO_RESPONSE_HEADER_SIZE + body_length && memcmp(expected, r, length) == 0;
            free(expected);
            if (!same)
                fail("client %u: reply %zu differs from what the callback answered", index, k);
        } else if (!h.stopped || code != IPROTO_RC_SHUTTING_DOWN || !is_message(body, body_length)) {
            fail("client %u: request %zu was answered with code %u without running", index, k, code);
        }
        offset += IPROTO_RESPONSE_HEADER_SIZE + body_length;
        k++;
    }
    if (c->aborted)
        return;  /* it stopped reading midway */
    if (offset != c->received_length)
        fail("client %u: %zu stray bytes after the last reply", index, c->received_length - offset);
    /* Once stopping, an hour-long drain grace can still end early on a slow run; otherwise everything is answered. */
    if (!h.stopped && k != c->frame_count)
        fail("client %u: %zu requests but %zu replies", index, c->frame_count, k);
}

static int listen_socket(void) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    /* Abstract names vanish with the socket, so every input can bind the same one. */
    int n = snprintf(address.sun_path + 1, sizeof address.sun_path - 1, "iproto-fuzz-core-%d", (int)getpid());
    socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, MAX_CLIENTS) != 0)
        fail("listening socket: %s", strerror(errno));
    return fd;
}

/* Connects client `index` and has the server accept it; its connection's slot then names the client. */
static void connect_client(unsigned index, int listener) {
    struct client *c = &h.clients[index];
    struct sockaddr_un address;
    socklen_t length = sizeof address;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || getsockname(listener, (struct sockaddr *)&address, &length) != 0 ||
        connect(c->fd, (struct sockaddr *)&address, length) != 0)
        fail("connect: %s", strerror(errno));
    pump();
    if (h.accepted != index + 1)
        fail("client %u: no connection event after connecting", index);
    if (c->refused)
        return;
    /* The worker puts a new connection at the head of its list. */
    iproto_conn_slot *slot = iproto_conn_state(h.server->workers[0].connections);
    if (slot->counters[1] != 0)
        fail("client %u: its connection is not the newest", index);
    slot->counters[1] = index + 1;
}

/* Lengths and owners of the chunks, from a xorshift generator seeded by the settings. */
static uint32_t next_random(uint32_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

struct chunk {
    unsigned owner;
    size_t length;
};

static size_t split(const uint8_t *settings, size_t length, struct chunk *chunks) {
    uint32_t state = 0x9e3779b9u ^ ((uint32_t)settings[2] << 8 | settings[3]);
    size_t count = 0;
    for (size_t offset = 0; offset < length; count++) {
        size_t rest = length - offset, size = rest;
        if (settings[2] != 0) {
            size = 1 + next_random(&state) % (2u << (settings[2] & 7));
            if (size > rest)
                size = rest;
        }
        chunks[count].owner = h.client_count > 1 ? next_random(&state) & 1 : 0;
        chunks[count].length = size;
        offset += size;
    }
    return count;
}

/* Which of the first 64 descriptors are open: an input must leave them as it found them
 * (libFuzzer itself opens some between inputs, for the symbolizer). */
static uint64_t open_fds(void) {
    uint64_t mask = 0;
    for (int fd = 0; fd < 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            mask |= 1ull << fd;
    return mask;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < SETTINGS)
        return -1;  /* not an input: keep it out of the corpus */
    uint64_t fds_before = open_fds();
    const uint8_t *settings = data;
    const uint8_t *stream = data + SETTINGS;
    size_t length = size - SETTINGS;

    memset(&h, 0, sizeof h);
    h.client_count = settings[1] & 1 ? 2 : 1;
    h.max_body = max_bodies[settings[0] & 7];
    h.barrier = settings[3] & 8;
    bool stop = settings[1] & 2, read_late = settings[1] & 4, abort_first = settings[1] & 8;
    bool serve_in_pairs = settings[3] & 16, finish_together = settings[3] & 32;
    size_t stop_before = settings[1] >> 4;

    struct chunk *chunks = calloc(length + 1, sizeof *chunks);
    if (chunks == NULL)
        fail("out of memory");
    size_t chunk_count = split(settings, length, chunks);
    for (unsigned i = 0; i < h.client_count; i++) {
        h.clients[i].stream = malloc(length + 1);
        if (h.clients[i].stream == NULL)
            fail("out of memory");
    }
    for (size_t i = 0, offset = 0; i < chunk_count; offset += chunks[i++].length) {
        struct client *c = &h.clients[chunks[i].owner];
        memcpy(c->stream + c->stream_length, stream + offset, chunks[i].length);
        c->stream_length += chunks[i].length;
    }
    for (unsigned i = 0; i < h.client_count; i++)
        model_frames(&h.clients[i]);

    int listener = listen_socket();
    iproto_config config = {
        .listen_fd = listener,
        .workers = 1,
        .max_body = h.max_body,
        .max_output = max_outputs[settings[0] >> 3 & 7],
        .max_connections = settings[3] & 1 ? 1 : 16,
        .max_connections_per_ip = settings[3] & 2 ? 1 : 0,
        .read_timeout = settings[3] & 4 ? 0 : 1800,  /* shorter than idle, so a started request re-arms the timer */
        .idle_timeout = settings[3] & 4 ? 0 : 3600,
        .shutdown_timeout = 3600,
        .on_request = on_request,
        .on_connection = on_connection,
        .on_flush = h.barrier ? on_flush : NULL,
    };
    char error[256];
    h.server = iproto_server_create(&config, error, sizeof error);
    if (h.server == NULL)
        fail("iproto_server_create: %s", error);
    h.loop = h.server->workers[0].loop;
    for (unsigned i = 0; i < h.client_count; i++)
        connect_client(i, listener);

    for (size_t i = 0; i <= chunk_count; i++) {
        if (stop && !h.stopped && (i == stop_before || i == chunk_count)) {
            iproto_server_stop(h.server);
            h.stopped = true;
            pump();
        }
        if (i == chunk_count)
            break;
        client_send(&h.clients[chunks[i].owner], chunks[i].length);
        if (serve_in_pairs && i % 2 == 0 && i + 1 < chunk_count)
            continue;
        pump();
        if (!read_late)
            receive_all();
    }

    /* One at a time lets the older connection (not the list's head) close first. */
    for (unsigned i = 0; i < h.client_count; i++) {
        struct client *c = &h.clients[i];
        if (i == 0 && abort_first) {
            close(c->fd);
            c->fd = -1;
            c->aborted = true;
        } else {
            shutdown(c->fd, SHUT_WR);
        }
        if (!finish_together)
            pump();
    }
    for (int stalled = 0;;) {
        bool moved = pump();
        for (unsigned i = 0; i < h.client_count; i++)
            moved |= client_receive(&h.clients[i]);
        iproto_stats stats;
        iproto_server_stats(h.server, &stats);
        bool done = stats.connections_active == 0;
        for (unsigned i = 0; i < h.client_count; i++)
            done &= h.clients[i].fd < 0 || h.clients[i].eof;
        if (done)
            break;
        stalled = moved ? 0 : stalled + 1;
        if (stalled >= STALL_ROUNDS)
            fail("%llu connections never closed", (unsigned long long)stats.connections_active);
    }
    for (unsigned i = 0; i < h.client_count; i++)
        check_replies(i);

    iproto_server_destroy(h.server);
    for (unsigned i = 0; i < h.client_count; i++) {
        struct client *c = &h.clients[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->stream);
        free(c->frames);
        free(c->received);
    }
    free(chunks);
    if (open_fds() != fds_before)
        fail("file descriptors leaked");
    return 0;
}
