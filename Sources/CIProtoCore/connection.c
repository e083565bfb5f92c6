/*
 * A connection's life, all of it on the worker thread that accepted it.
 *
 *   OPEN ──EOF / fatal request / shutdown──▶ DRAINING ──output sent──▶ closed
 *                                               │ (after a rejected request)
 *                                               ▼
 *                                           LINGERING ──EOF / deadline──▶ closed
 *
 * OPEN       reads, parses and dispatches; replies are queued in order.
 * DRAINING   nothing more is parsed; the connection closes once its output is sent.
 * LINGERING  our write side is shut; input is read and discarded until EOF or
 *            IPROTO_LINGER_TIMEOUT, so that closing with unread input does not
 *            send an RST that would destroy the reply the client has yet to read.
 *
 * Input path. Reads go into the worker's shared read buffer and complete frames
 * are dispatched straight from it. Only what is left over — one incomplete
 * frame, or frames parsed later because output is paused — is copied into the
 * connection's own `in` stash, which is then completed in place with reads of
 * at most the missing size and at most one chunk (so a body trickled byte by
 * byte is copied once, and memory follows the bytes received, not the size a
 * header announces).
 * An idle connection therefore holds no input memory.
 * A connection runs at most IPROTO_REQUESTS_PER_TURN requests per turn of the
 * loop; past that its read watcher stops and the rest of what it sent waits in
 * the stash for a turn in the next iteration (the worker's `backlog`), after
 * the other connections have had theirs.
 *
 * Output path. While a connection has no unsent output, its replies go into the
 * worker's `batch` and are sent with one send() when the read batch is done.
 * Whatever the socket does not take moves to the connection's `out`, and later
 * replies queue behind it there, which keeps them in request order. When unsent
 * output reaches max_output, parsing stops (input_paused) and the read watcher
 * is stopped until `out` drains to half of max_output.
 *
 * Memory budget. Across workers the server counts what connections hold in
 * their `in` and `out` buffers; past memory_budget the biggest holders stop
 * reading (see conn_budget_pass).
 *
 * Handlers run synchronously inside dispatch, so a connection never has work
 * in flight elsewhere and may be freed as soon as it is closed.
 *
 * Graceful stop. A stopping worker marks its OPEN connections shutting_down.
 * Complete requests already stashed are still run; every request parsed
 * after that is answered with IPROTO_RC_SHUTTING_DOWN and not run, for
 * IPROTO_DRAIN_GRACE (at most shutdown_timeout). Then the connection drains
 * and lingers like after a rejected request: the client sees EOF after its
 * last reply and knows that whatever it sent later was not run.
 */
#include <endian.h>
#include <errno.h>
#include <msgpuck.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

/* Stashed input buffers up to this size are kept for reuse; larger ones are freed once empty. */
#define IN_STASH_KEEP 4096

enum conn_state { CONN_OPEN, CONN_DRAINING, CONN_LINGERING };

/* Membership in one of a worker's lists of connections waiting for a turn. */
struct conn_link {
    struct iproto_conn *prev, *next;
    bool linked;
};

struct iproto_conn {
    struct worker *worker;
    struct iproto_conn *prev, *next;
    struct conn_link deferred;         /* in the worker's `deferred` list: replies wait for the barrier */
    struct conn_link backlog;          /* in the worker's `backlog`: stashed requests wait for a turn */
    unsigned turn_budget;              /* requests this connection may still run in this turn */
    int fd;
    enum conn_state state;
    iproto_close_reason close_reason;  /* used once DRAINING, LINGERING or broken */
    bool linger;                       /* linger after draining: the peer may still be sending */
    bool input_paused;                 /* output reached max_output; parsing waits */
    bool broken;                       /* the socket failed; close at the next safe point */
    bool shutting_down;                /* the worker is stopping: new requests get SHUTTING_DOWN */
    unsigned requests_before_stop;     /* complete requests stashed when the stop came; still run */
    ev_io read_watcher;
    ev_io write_watcher;
    ev_timer timer;
    ev_tstamp last_progress;    /* last time bytes moved in either direction */
    ev_tstamp request_started;  /* when the stashed incomplete request began; 0 if none */
    ev_tstamp linger_started;
    ev_tstamp drain_deadline;   /* shutting down: when to stop answering and half-close */
    struct obuf in;             /* unparsed input, starting at a frame boundary */
    struct obuf out;            /* replies the socket has not taken yet */
    /*
     * With a barrier: the last `unguarded` bytes of `out` are replies made
     * since barrier round `unguarded_round` began, which no barrier has
     * covered yet. They are never sent before one has (conn_send_deferred).
     */
    size_t unguarded;
    uint64_t unguarded_round;
    iproto_conn_slot slot;      /* the embedding code's per-connection state */
    iproto_address peer_address;
    ip_key peer_key;               /* peer_address cut to the configured IPv6 prefix */
    char peer[INET6_ADDRSTRLEN + 8];
    size_t held;                /* in's and out's capacity as last added to the server's total */
    bool budget_paused;         /* reading stopped for the memory budget */
};

iproto_conn_slot *iproto_conn_state(iproto_conn *c) { return &c->slot; }

const char *iproto_conn_peer(const iproto_conn *c) { return c->peer; }

void iproto_conn_address(const iproto_conn *c, iproto_address *out) { *out = c->peer_address; }

void iproto_conn_address_key(const iproto_conn *c, iproto_address *out) { *out = c->peer_key; }

static inline uint32_t load_u32le(const char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return le32toh(v);
}

static inline void store_u32le(char *p, uint32_t v) {
    v = htole32(v);
    memcpy(p, &v, sizeof v);
}

static inline const iproto_config *conn_config(const struct iproto_conn *c) {
    return &c->worker->server->config;
}

static size_t conn_unsent(const struct iproto_conn *c) {
    /* The batch only ever holds the replies of the connection being processed. */
    return obuf_pending(&c->out) + obuf_pending(&c->worker->batch);
}

/* Whether the read watcher should run: nothing has paused the connection's input. */
static bool conn_may_read(const struct iproto_conn *c) {
    return c->state == CONN_OPEN && !c->input_paused && !c->budget_paused && !c->backlog.linked;
}

/* ---- the memory budget ---- */

static size_t server_buffered(const struct iproto_server *s) {
    return __atomic_load_n(&s->buffered, __ATOMIC_RELAXED);
}

/*
 * Brings the server's total up to date with what the connection's buffers
 * hold now: their capacity, since a buffer keeps its allocation until it is
 * emptied (obuf_shrink_if_empty) or freed. Growth past the budget schedules
 * this worker's pass. Called whenever a connection settles, and when it closes.
 */
static void conn_account(struct iproto_conn *c) {
    struct worker *w = c->worker;
    struct iproto_server *s = w->server;
    size_t now = c->in.capacity + c->out.capacity;
    if (now > c->held) {
        size_t total = __atomic_add_fetch(&s->buffered, now - c->held, __ATOMIC_RELAXED);
        if (s->config.memory_budget > 0 && total > s->config.memory_budget)
            ev_check_start(w->loop, &w->budget_watcher);
    } else if (now < c->held) {
        __atomic_sub_fetch(&s->buffered, c->held - now, __ATOMIC_RELAXED);
    }
    c->held = now;
}

static void conn_budget_pause(struct iproto_conn *c) {
    struct worker *w = c->worker;
    c->budget_paused = true;
    c->request_started = 0;  /* the server stopped reading, not the client: no read timeout meanwhile */
    w->budget_paused_count++;
    ev_io_stop(w->loop, &c->read_watcher);
    STAT_ADD(w, budget_paused, 1);
}

static void conn_budget_release(struct iproto_conn *c) {
    if (!c->budget_paused)
        return;
    c->budget_paused = false;
    c->worker->budget_paused_count--;
}

/* ---- timers ---- */

/* The moment the connection should be closed if nothing changes; 0 when never. */
static ev_tstamp conn_deadline(const struct iproto_conn *c, iproto_close_reason *reason) {
    const iproto_config *cfg = conn_config(c);
    if (c->state == CONN_LINGERING) {
        *reason = c->close_reason;
        return c->linger_started + IPROTO_LINGER_TIMEOUT;
    }
    if (c->state == CONN_OPEN && c->shutting_down) {
        *reason = IPROTO_CLOSE_SHUTDOWN;
        return c->drain_deadline;
    }
    ev_tstamp deadline = 0;
    if (cfg->idle_timeout > 0) {
        deadline = c->last_progress + cfg->idle_timeout;
        *reason = IPROTO_CLOSE_IDLE_TIMEOUT;
    }
    if (cfg->read_timeout > 0 && c->request_started > 0) {
        ev_tstamp read_deadline = c->request_started + cfg->read_timeout;
        if (deadline == 0 || read_deadline < deadline) {
            deadline = read_deadline;
            *reason = IPROTO_CLOSE_READ_TIMEOUT;
        }
    }
    return deadline;
}

/*
 * Arms the timer for the current deadline. Progress does not re-arm it (that
 * would cost a heap update per read); the timer instead re-checks when it fires.
 */
static void conn_arm_timer(struct iproto_conn *c) {
    struct ev_loop *loop = c->worker->loop;
    iproto_close_reason reason;
    ev_tstamp deadline = conn_deadline(c, &reason);
    if (deadline == 0) {
        ev_timer_stop(loop, &c->timer);
        return;
    }
    ev_tstamp delay = deadline - ev_now(loop);
    c->timer.repeat = delay > 0.001 ? delay : 0.001;
    ev_timer_again(loop, &c->timer);
}

/* ---- the worker's turn lists: deferred sending, backlog ---- */

typedef struct conn_link *(*conn_link_of)(struct iproto_conn *c);
static struct conn_link *deferred_link(struct iproto_conn *c) { return &c->deferred; }
static struct conn_link *backlog_link(struct iproto_conn *c) { return &c->backlog; }

static void list_push(struct iproto_conn **head, struct iproto_conn *c, conn_link_of link) {
    struct conn_link *l = link(c);
    if (l->linked)
        return;
    l->linked = true;
    l->prev = NULL;
    l->next = *head;
    if (*head)
        link(*head)->prev = c;
    *head = c;
}

static void list_remove(struct iproto_conn **head, struct iproto_conn *c, conn_link_of link) {
    struct conn_link *l = link(c);
    if (!l->linked)
        return;
    l->linked = false;
    if (l->prev)
        link(l->prev)->next = l->next;
    else
        *head = l->next;
    if (l->next)
        link(l->next)->prev = l->prev;
}

/* Takes the first connection of a list detached from its worker (see the turn functions). */
static struct iproto_conn *list_take(struct iproto_conn **detached, conn_link_of link) {
    struct iproto_conn *c = *detached;
    *detached = link(c)->next;
    link(c)->linked = false;
    return c;
}

/* The connection ran out of budget with requests left: stop reading and wait for the next turn. */
static void conn_backlog(struct iproto_conn *c) {
    struct worker *w = c->worker;
    ev_io_stop(w->loop, &c->read_watcher);
    list_push(&w->backlog, c, backlog_link);
    STAT_ADD(w, turns_yielded, 1);
    ev_check_start(w->loop, &w->backlog_watcher);
    ev_idle_start(w->loop, &w->backlog_spinner);
}

/* ---- closing ---- */

static void conn_close(struct iproto_conn *c, iproto_close_reason reason) {
    struct worker *w = c->worker;
    const iproto_config *cfg = conn_config(c);
    list_remove(&w->deferred, c, deferred_link);
    list_remove(&w->backlog, c, backlog_link);
    conn_budget_release(c);
    if (cfg->on_connection != NULL)
        cfg->on_connection(cfg->context, c, w->index, IPROTO_CONN_CLOSED, c->peer, reason);
    if (cfg->max_connections_per_ip > 0)
        ip_limit_release(&w->server->ip_limit, &c->peer_key);
    ev_io_stop(w->loop, &c->read_watcher);
    ev_io_stop(w->loop, &c->write_watcher);
    ev_timer_stop(w->loop, &c->timer);
    close(c->fd);
    obuf_free(&c->in);
    obuf_free(&c->out);
    conn_account(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->connection_count--;
    __atomic_sub_fetch(&w->server->active_connections, 1, __ATOMIC_RELAXED);
    STAT_ADD(w, closed[reason], 1);
    free(c);
    if (w->stopping && w->connection_count == 0)
        ev_break(w->loop, EVBREAK_ALL);
}

/* Stops parsing; the connection closes with `reason` once its output is sent. */
static void conn_begin_drain(struct iproto_conn *c, iproto_close_reason reason, bool linger) {
    c->state = CONN_DRAINING;
    c->close_reason = reason;
    c->linger = linger;
    c->input_paused = false;
    conn_budget_release(c);
    c->request_started = 0;
    ev_io_stop(c->worker->loop, &c->read_watcher);
}

static void conn_mark_broken(struct iproto_conn *c, int error) {
    c->broken = true;
    c->close_reason = (error == ECONNRESET || error == EPIPE) ? IPROTO_CLOSE_PEER : IPROTO_CLOSE_IO_ERROR;
}

/* ---- output ---- */

/* Appends one response frame to `target`; false when out of memory. */
static bool append_reply(struct obuf *target, uint32_t func_id, uint32_t request_id, uint32_t return_code,
                         const iproto_piece *pieces, size_t count, uint32_t body_length) {
    if (!obuf_reserve(target, IPROTO_RESPONSE_HEADER_SIZE + (size_t)body_length))
        return false;
    char *p = target->data + target->len;
    store_u32le(p, func_id);
    store_u32le(p + 4, body_length);
    store_u32le(p + 8, request_id);
    store_u32le(p + 12, return_code);
    p += IPROTO_RESPONSE_HEADER_SIZE;
    for (size_t i = 0; i < count; i++) {
        if (pieces[i].length > 0)
            memcpy(p, pieces[i].data, pieces[i].length);
        p += pieces[i].length;
    }
    target->len += IPROTO_RESPONSE_HEADER_SIZE + (size_t)body_length;
    return true;
}

static bool append_reply_body(struct obuf *target, uint32_t func_id, uint32_t request_id, uint32_t return_code,
                              const char *body, uint32_t body_length) {
    iproto_piece piece = {body, body_length};
    return append_reply(target, func_id, request_id, return_code, &piece, 1, body_length);
}

void iproto_reply(iproto_conn *c, uint32_t func_id, uint32_t request_id, uint32_t return_code,
                  const char *body, uint32_t body_length) {
    iproto_piece piece = {body, body_length};
    iproto_reply_pieces(c, func_id, request_id, return_code, &piece, 1);
}

void iproto_reply_pieces(iproto_conn *c, uint32_t func_id, uint32_t request_id, uint32_t return_code,
                         const iproto_piece *pieces, size_t count) {
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += pieces[i].length;
    if (total > UINT32_MAX) {
        conn_mark_broken(c, EMSGSIZE);
        return;
    }
    uint32_t body_length = (uint32_t)total;
    /* Deferred replies wait on their connection; otherwise the worker's batch gathers them. */
    bool guarded = conn_config(c)->on_flush != NULL;
    bool keep = obuf_pending(&c->out) > 0 || guarded;
    struct obuf *target = keep ? &c->out : &c->worker->batch;
    if (!append_reply(target, func_id, request_id, return_code, pieces, count, body_length)) {
        conn_mark_broken(c, ENOMEM);
        return;
    }
    if (guarded) {
        uint64_t round = c->worker->barrier_rounds;
        if (c->unguarded_round != round)
            c->unguarded = 0;  /* a barrier has covered the earlier ones */
        c->unguarded_round = round;
        c->unguarded += IPROTO_RESPONSE_HEADER_SIZE + (size_t)body_length;
    }
}

/*
 * A barrier failed: the connection's replies it should have covered that
 * report success are replaced by the barrier's error, so that none of them
 * acknowledges what may not be durable. Error replies stay as they are.
 */
static void conn_fail_unguarded(struct iproto_conn *c, const iproto_flush_error *error) {
    if (c->unguarded == 0 || c->unguarded_round != c->worker->barrier_rounds)
        return;
    char body[sizeof error->message + 8];
    char *end = mp_encode_str(body, error->message, (uint32_t)strnlen(error->message, sizeof error->message - 1));
    struct obuf rewritten = {0};
    size_t start = c->out.len - c->unguarded;
    for (size_t offset = start; offset < c->out.len;) {
        const char *frame = c->out.data + offset;
        uint32_t length = load_u32le(frame + 4);
        bool ok = load_u32le(frame + 12) == IPROTO_RC_OK;
        bool appended = ok ? append_reply_body(&rewritten, load_u32le(frame), load_u32le(frame + 8), error->return_code,
                                               body, (uint32_t)(end - body))
                           : obuf_append(&rewritten, frame, IPROTO_RESPONSE_HEADER_SIZE + (size_t)length);
        if (!appended) {
            /* Out of memory: the replies cannot be sent as they are, so none is; the client sees the close. */
            conn_mark_broken(c, ENOMEM);
            c->out.len = start;
            break;
        }
        offset += IPROTO_RESPONSE_HEADER_SIZE + (size_t)length;
    }
    if (!c->broken) {
        c->out.len = start;
        if (!obuf_append(&c->out, rewritten.data, rewritten.len)) {
            conn_mark_broken(c, ENOMEM);
            c->out.len = start;
        }
    }
    if (c->out.len == c->out.pos)
        c->out.pos = c->out.len = 0;
    obuf_free(&rewritten);
    c->unguarded = 0;
}

/*
 * Sends what the socket takes; what it does not take stays queued on the
 * connection. With an on_flush barrier, replies are only sent by
 * conn_send_deferred: here the connection joins the deferred list, unless it
 * waits for the socket to drain (on_writable brings it back).
 */
static void conn_flush(struct iproto_conn *c) {
    struct worker *w = c->worker;
    if (conn_config(c)->on_flush != NULL && !w->sending_deferred) {
        if (obuf_pending(&c->out) > 0 && !ev_is_active(&c->write_watcher))
            list_push(&w->deferred, c, deferred_link);
        return;
    }
    struct obuf *source = obuf_pending(&c->out) > 0 ? &c->out : &w->batch;
    while (!c->broken && obuf_pending(source) > 0) {
        ssize_t n = send(c->fd, source->data + source->pos, obuf_pending(source), MSG_NOSIGNAL);
        if (n > 0) {
            obuf_consume(source, (size_t)n);
            STAT_ADD(w, bytes_out, (uint64_t)n);
            c->last_progress = ev_now(w->loop);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            conn_mark_broken(c, errno);
        }
    }
    if (source == &w->batch) {
        if (!c->broken && obuf_pending(source) > 0 &&
            !obuf_append(&c->out, source->data + source->pos, obuf_pending(source)))
            conn_mark_broken(c, ENOMEM);
        w->batch.pos = w->batch.len = 0;
    }
    if (obuf_pending(&c->out) > 0 && !c->broken) {
        ev_io_start(w->loop, &c->write_watcher);
    } else {
        ev_io_stop(w->loop, &c->write_watcher);
        obuf_shrink_if_empty(&c->out, 0);
    }
}

/* ---- input ---- */

/* Replies with an error the core produces itself; the body is the message as a MessagePack string. */
static void conn_reply_message(struct iproto_conn *c, uint32_t func_id, uint32_t request_id,
                               iproto_return_code code, const char *message) {
    char body[160];
    size_t length = strnlen(message, sizeof body - 8);
    char *end = mp_encode_str(body, message, (uint32_t)length);
    iproto_reply(c, func_id, request_id, code, body, (uint32_t)(end - body));
}

static void conn_reject_too_large(struct iproto_conn *c, uint32_t func_id, uint32_t request_id,
                                  uint32_t body_length) {
    char message[128];
    snprintf(message, sizeof message, "body_length %u exceeds the limit of %u bytes", body_length,
             conn_config(c)->max_body);
    STAT_ADD(c->worker, body_too_large, 1);
    conn_reply_message(c, func_id, request_id, IPROTO_RC_BODY_TOO_LARGE, message);
    conn_begin_drain(c, IPROTO_CLOSE_TOO_LARGE, true);
}

/*
 * Dispatches every complete frame in data[0, len) while the connection may
 * parse. Returns the bytes consumed; the rest starts at a frame boundary.
 */
static size_t conn_parse(struct iproto_conn *c, const char *data, size_t len) {
    struct worker *w = c->worker;
    const iproto_config *cfg = conn_config(c);
    size_t offset = 0;
    while (c->state == CONN_OPEN && !c->input_paused && !c->budget_paused && !c->broken &&
           len - offset >= IPROTO_REQUEST_HEADER_SIZE) {
        if (c->turn_budget == 0) {
            conn_backlog(c);
            break;
        }
        const char *header = data + offset;
        uint32_t func_id = load_u32le(header);
        uint32_t body_length = load_u32le(header + 4);
        uint32_t request_id = load_u32le(header + 8);
        if (body_length > cfg->max_body) {
            conn_reject_too_large(c, func_id, request_id, body_length);
            return len;
        }
        if (len - offset - IPROTO_REQUEST_HEADER_SIZE < body_length)
            break;
        bool run = !c->shutting_down || c->requests_before_stop > 0;
        if (run && c->shutting_down)
            c->requests_before_stop--;
        if (run)
            cfg->on_request(cfg->context, c, w->index, func_id, request_id,
                            header + IPROTO_REQUEST_HEADER_SIZE, body_length);
        else
            conn_reply_message(c, func_id, request_id, IPROTO_RC_SHUTTING_DOWN, "server is shutting down");
        offset += IPROTO_REQUEST_HEADER_SIZE + (size_t)body_length;
        c->turn_budget--;
        STAT_ADD(w, requests, 1);
        if (conn_unsent(c) >= cfg->max_output) {
            c->input_paused = true;
            ev_io_stop(w->loop, &c->read_watcher);
            STAT_ADD(w, output_paused, 1);
        } else if (obuf_pending(&w->batch) >= IPROTO_BATCH_FLUSH) {
            conn_flush(c);
        }
    }
    return offset;
}

/* After the stash changed: track when its incomplete request began, for the read timeout. */
static void conn_note_stash(struct iproto_conn *c, bool frame_completed) {
    if (c->in.len == 0 || c->input_paused || c->budget_paused || c->backlog.linked || c->state != CONN_OPEN) {
        c->request_started = 0;
        obuf_shrink_if_empty(&c->in, IN_STASH_KEEP);
        return;
    }
    if (c->request_started > 0 && !frame_completed)
        return;
    c->request_started = ev_now(c->worker->loop);
    /* Re-arm only when the read deadline comes before the armed one. */
    double read_timeout = conn_config(c)->read_timeout;
    if (read_timeout > 0 &&
        (!ev_is_active(&c->timer) || ev_timer_remaining(c->worker->loop, &c->timer) > read_timeout))
        conn_arm_timer(c);
}

static void conn_parse_stash(struct iproto_conn *c) {
    size_t consumed = conn_parse(c, c->in.data, c->in.len);
    if (c->state != CONN_OPEN)
        consumed = c->in.len;
    obuf_discard_front(&c->in, consumed);
    conn_note_stash(c, consumed > 0);
}

/* Bytes still missing from the stashed incomplete frame (its header, then its body). */
static size_t conn_stash_missing(const struct iproto_conn *c) {
    if (c->in.len < IPROTO_REQUEST_HEADER_SIZE)
        return IPROTO_REQUEST_HEADER_SIZE - c->in.len;
    size_t frame = IPROTO_REQUEST_HEADER_SIZE + (size_t)load_u32le(c->in.data + 4);
    return frame - c->in.len;
}

/* Reads once; returns bytes read, 0 at EOF, -1 when the socket has nothing now or failed. */
static ssize_t conn_read_once(struct iproto_conn *c, size_t *asked) {
    struct worker *w = c->worker;
    ssize_t n;
    if (c->in.len > 0) {
        /* Grow by at most one chunk per read: memory follows the bytes received, not the size announced. */
        size_t want = conn_stash_missing(c);
        if (want > IPROTO_READ_CHUNK)
            want = IPROTO_READ_CHUNK;
        if (!obuf_reserve(&c->in, want)) {
            conn_mark_broken(c, ENOMEM);
            return -1;
        }
        *asked = want;
        do n = recv(c->fd, c->in.data + c->in.len, want, 0); while (n < 0 && errno == EINTR);
        if (n > 0) {
            c->in.len += (size_t)n;
            conn_parse_stash(c);
        }
    } else {
        *asked = w->read_buffer_size;
        do n = recv(c->fd, w->read_buffer, w->read_buffer_size, 0); while (n < 0 && errno == EINTR);
        if (n > 0) {
            size_t consumed = conn_parse(c, w->read_buffer, (size_t)n);
            if (c->state == CONN_OPEN && consumed < (size_t)n &&
                !obuf_append(&c->in, w->read_buffer + consumed, (size_t)n - consumed))
                conn_mark_broken(c, ENOMEM);
            conn_note_stash(c, consumed > 0);
        }
    }
    if (n > 0) {
        STAT_ADD(w, bytes_in, (uint64_t)n);
        c->last_progress = ev_now(w->loop);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_mark_broken(c, errno);
    }
    return n;
}

/* Discards input after a rejected request until the peer closes. */
static void conn_discard_input(struct iproto_conn *c) {
    struct worker *w = c->worker;
    for (int i = 0; i < IPROTO_READS_PER_WAKEUP; i++) {
        ssize_t n = recv(c->fd, w->read_buffer, w->read_buffer_size, 0);
        if (n > 0) {
            STAT_ADD(w, bytes_in, (uint64_t)n);
            continue;
        }
        if (n < 0 && (errno == EINTR))
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(c, c->close_reason);
        return;
    }
}

/*
 * Brings a connection to rest after any event: sends what it can, resumes
 * paused input once output has drained (to half of max_output, or all of it
 * for the memory budget), brings the server's total up to date, and advances
 * or completes closing. `c` may be freed on return.
 */
static void conn_settle(struct iproto_conn *c) {
    const iproto_config *cfg = conn_config(c);
    struct ev_loop *loop = c->worker->loop;
    for (;;) {
        conn_flush(c);
        if (c->broken) {
            conn_close(c, c->close_reason);
            return;
        }
        bool output_drained = c->input_paused && obuf_pending(&c->out) <= cfg->max_output / 2;
        bool budget_drained = c->budget_paused && obuf_pending(&c->out) == 0;
        if (!output_drained && !budget_drained)
            break;
        if (output_drained)
            c->input_paused = false;
        if (budget_drained)
            conn_budget_release(c);
        conn_parse_stash(c);
        if (conn_may_read(c))
            ev_io_start(loop, &c->read_watcher);
    }
    if (c->state != CONN_OPEN)
        obuf_free(&c->in);
    conn_account(c);
    if (c->state == CONN_DRAINING && obuf_pending(&c->out) == 0) {
        if (!c->linger) {
            conn_close(c, c->close_reason);
            return;
        }
        shutdown(c->fd, SHUT_WR);
        c->state = CONN_LINGERING;
        c->linger_started = ev_now(loop);
        ev_io_start(loop, &c->read_watcher);
        conn_arm_timer(c);
    }
}

/* Counts the complete requests in the stash: they were received before the stop and still run. */
static unsigned stashed_requests(const struct iproto_conn *c) {
    unsigned count = 0;
    size_t offset = 0;
    while (c->in.len - offset >= IPROTO_REQUEST_HEADER_SIZE) {
        size_t frame = IPROTO_REQUEST_HEADER_SIZE + (size_t)load_u32le(c->in.data + offset + 4);
        if (c->in.len - offset < frame)
            break;
        offset += frame;
        count++;
    }
    return count;
}

/* `c` may be freed on return. */
static void conn_begin_shutdown(struct iproto_conn *c) {
    double grace = conn_config(c)->shutdown_timeout;
    if (grace > IPROTO_DRAIN_GRACE)
        grace = IPROTO_DRAIN_GRACE;
    c->shutting_down = true;
    c->requests_before_stop = stashed_requests(c);
    c->drain_deadline = ev_now(c->worker->loop) + grace;
    conn_arm_timer(c);
    conn_settle(c);
}

/* ---- event callbacks ---- */

static void on_readable(struct ev_loop *loop, ev_io *watcher, int revents) {
    (void)loop;
    (void)revents;
    struct iproto_conn *c = watcher->data;
    if (c->state == CONN_LINGERING) {
        conn_discard_input(c);
        return;
    }
    c->turn_budget = IPROTO_REQUESTS_PER_TURN;
    for (int i = 0; i < IPROTO_READS_PER_WAKEUP; i++) {
        if (!conn_may_read(c) || c->broken)
            break;
        size_t asked = 0;
        ssize_t n = conn_read_once(c, &asked);
        if (n == 0) {
            conn_begin_drain(c, IPROTO_CLOSE_PEER, false);
            break;
        }
        if (n < 0 || (size_t)n < asked)
            break;
    }
    conn_settle(c);
}

static void on_writable(struct ev_loop *loop, ev_io *watcher, int revents) {
    (void)revents;
    /* Stopped so that, with deferred sending, the flush below queues the connection; restarted if still full. */
    ev_io_stop(loop, watcher);
    conn_settle(watcher->data);
}

/*
 * Before the worker polls again: runs the barrier once for every reply made
 * since, then sends them. Sending may resume paused input, whose replies
 * join a new round (a new barrier) rather than going out unsynced.
 */
void conn_send_deferred(struct ev_loop *loop, ev_prepare *watcher, int revents) {
    (void)loop;
    (void)revents;
    struct worker *w = watcher->data;
    const iproto_config *cfg = &w->server->config;
    while (w->deferred != NULL) {
        iproto_flush_error error = {0};
        if (cfg->on_flush(cfg->context, w->index, &error) != 0) {
            if (error.return_code == IPROTO_RC_OK)
                error.return_code = IPROTO_RC_INTERNAL_ERROR;
            /* Every connection of the worker, not only this round's: one waiting for its socket holds some too. */
            for (struct iproto_conn *c = w->connections; c != NULL; c = c->next)
                conn_fail_unguarded(c, &error);
        }
        w->barrier_rounds++;
        struct iproto_conn *round = w->deferred;
        w->deferred = NULL;
        while (round != NULL) {
            struct iproto_conn *c = list_take(&round, deferred_link);
            w->sending_deferred = true;
            conn_flush(c);
            w->sending_deferred = false;
            conn_settle(c);  /* may free c */
        }
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *timer, int revents) {
    (void)revents;
    struct iproto_conn *c = timer->data;
    iproto_close_reason reason = IPROTO_CLOSE_IDLE_TIMEOUT;
    ev_tstamp deadline = conn_deadline(c, &reason);
    if (deadline == 0 || ev_now(loop) < deadline) {
        conn_arm_timer(c);
    } else if (c->state == CONN_OPEN && c->shutting_down) {
        /* The drain grace is over: send what is queued, then half-close and linger. */
        conn_begin_drain(c, IPROTO_CLOSE_SHUTDOWN, true);
        conn_settle(c);
    } else {
        conn_close(c, reason);
    }
}

/*
 * Once per loop iteration, after the other events: one more turn, with a fresh
 * budget, for each connection whose stash still holds requests. A connection
 * that uses this budget up too waits for the next iteration again.
 */
void conn_serve_backlog(struct ev_loop *loop, ev_check *watcher, int revents) {
    (void)revents;
    struct worker *w = watcher->data;
    struct iproto_conn *turn = w->backlog;
    w->backlog = NULL;
    while (turn != NULL) {
        struct iproto_conn *c = list_take(&turn, backlog_link);
        c->turn_budget = IPROTO_REQUESTS_PER_TURN;
        conn_parse_stash(c);
        if (conn_may_read(c))
            ev_io_start(loop, &c->read_watcher);
        conn_settle(c);  /* may free c */
    }
    if (w->backlog == NULL) {
        ev_check_stop(loop, watcher);
        ev_idle_stop(loop, &w->backlog_spinner);
    }
}

/*
 * The memory budget's pass, after an iteration in which this worker's
 * connections grew the server's total past memory_budget: reading stops on
 * the connections that hold the most, biggest first, until the total is
 * under the budget again.
 *
 * Pausing frees nothing by itself (only clients reading their replies do), so
 * under a sustained flood the pass pauses every candidate; the order decides
 * who stops first while clients elsewhere are draining the total meanwhile.
 * Candidates are the connections with unsent output that hold more than
 * IPROTO_BUDGET_FLOOR: those whose clients do not keep up. A connection whose
 * output is all sent holds only its stash, which the read path already bounds
 * (one chunk, or one frame); pausing it would stall a client that reads
 * everything, with no event left to resume it. The small holders, conforming
 * clients among them, keep being served: the budget never stalls the server.
 *
 * Each worker touches only its own connections and learns the total from the
 * shared atomic. When one worker's clients fill the budget, the other workers
 * pause their own big holders as soon as those grow; a connection that does not
 * grow needs no pause. What the total can pass the budget by: what this
 * worker's connections took in during the iteration before the pass (one turn
 * each at most: a chunk read and 128 replies, which a buffer doubling its
 * capacity can round up) and what connections under the floor hold.
 *
 * A paused connection keeps sending its output as its client reads. It resumes
 * once all of it is sent (conn_settle), or once the total falls below
 * IPROTO_BUDGET_RESUME percent of the budget (conn_budget_poll): the hysteresis
 * keeps connections from flapping at the line.
 */
static bool conn_budget_candidate(const struct iproto_conn *c) {
    return c->state == CONN_OPEN && !c->budget_paused && obuf_pending(&c->out) > 0 &&
           c->held > IPROTO_BUDGET_FLOOR;
}

static int conn_holds_more(const void *a, const void *b) {
    size_t x = (*(struct iproto_conn *const *)a)->held, y = (*(struct iproto_conn *const *)b)->held;
    return x > y ? -1 : x < y;
}

void conn_budget_pass(struct ev_loop *loop, ev_check *watcher, int revents) {
    (void)revents;
    struct worker *w = watcher->data;
    struct iproto_server *s = w->server;
    size_t budget = s->config.memory_budget;
    ev_check_stop(loop, watcher);
    if (server_buffered(s) <= budget)
        return;
    if (w->budget_order_capacity < w->connection_count) {
        struct iproto_conn **order = realloc(w->budget_order, w->connection_count * sizeof *order);
        if (order != NULL) {
            w->budget_order = order;
            w->budget_order_capacity = w->connection_count;
        }
    }
    size_t count = 0;
    for (struct iproto_conn *c = w->connections; c != NULL; c = c->next) {
        if (!conn_budget_candidate(c))
            continue;
        if (count < w->budget_order_capacity)
            w->budget_order[count++] = c;
        else
            conn_budget_pause(c);  /* no memory to sort them: pause in list order */
    }
    if (count > 1)
        qsort(w->budget_order, count, sizeof *w->budget_order, conn_holds_more);
    for (size_t i = 0; i < count && server_buffered(s) > budget; i++)
        conn_budget_pause(w->budget_order[i]);
    if (w->budget_paused_count > 0 && !ev_is_active(&w->budget_poll))
        ev_timer_again(loop, &w->budget_poll);
}

/* While connections are paused for the budget: resumes them all once the total is low enough. */
void conn_budget_poll(struct ev_loop *loop, ev_timer *timer, int revents) {
    (void)revents;
    struct worker *w = timer->data;
    size_t budget = w->server->config.memory_budget;
    size_t resume_below = budget - budget / 100 * (100 - IPROTO_BUDGET_RESUME);
    if (w->budget_paused_count > 0 && server_buffered(w->server) >= resume_below)
        return;
    struct iproto_conn *c = w->connections;
    while (c != NULL && w->budget_paused_count > 0) {
        struct iproto_conn *next = c->next;  /* c may be freed below */
        if (c->budget_paused) {
            conn_budget_release(c);
            conn_parse_stash(c);
            if (conn_may_read(c))
                ev_io_start(loop, &c->read_watcher);
            conn_settle(c);
        }
        c = next;
    }
    ev_timer_stop(loop, timer);
}

/* The backlog's idle watcher only keeps the loop polling without sleeping. */
void conn_keep_polling(struct ev_loop *loop, ev_idle *watcher, int revents) {
    (void)loop;
    (void)watcher;
    (void)revents;
}

/* ---- worker-facing entry points ---- */

/* "host:port", or "[v6]:port". */
void format_peer(const struct sockaddr_storage *address, char *out, size_t size) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else if (address->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(v4->sin_port));
    } else {
        snprintf(out, size, "local");
    }
}

void conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer, const iproto_address *address,
                 const ip_key *key) {
    const iproto_config *cfg = &w->server->config;
    struct iproto_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        __atomic_sub_fetch(&w->server->active_connections, 1, __ATOMIC_RELAXED);
        if (cfg->max_connections_per_ip > 0)
            ip_limit_release(&w->server->ip_limit, key);
        STAT_ADD(w, closed[IPROTO_CLOSE_IO_ERROR], 1);
        return;
    }
    c->peer_address = *address;
    c->peer_key = *key;
    format_peer(peer, c->peer, sizeof c->peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->worker = w;
    c->fd = fd;
    c->state = CONN_OPEN;
    c->last_progress = ev_now(w->loop);
    ev_io_init(&c->read_watcher, on_readable, fd, EV_READ);
    ev_io_init(&c->write_watcher, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    c->read_watcher.data = c->write_watcher.data = c->timer.data = c;
    c->next = w->connections;
    if (w->connections)
        w->connections->prev = c;
    w->connections = c;
    w->connection_count++;
    STAT_ADD(w, accepted, 1);
    ev_io_start(w->loop, &c->read_watcher);
    conn_arm_timer(c);
    if (cfg->on_connection != NULL)
        cfg->on_connection(cfg->context, c, w->index, IPROTO_CONN_OPENED, c->peer, IPROTO_CLOSE_PEER);
    if (w->stopping)
        conn_begin_shutdown(c);
}

void conn_shutdown_all(struct worker *w) {
    struct iproto_conn *c = w->connections;
    while (c != NULL) {
        struct iproto_conn *next = c->next;  /* c may be freed below */
        if (c->state == CONN_OPEN)
            conn_begin_shutdown(c);
        c = next;
    }
}

void conn_destroy_all(struct worker *w) {
    while (w->connections != NULL)
        conn_close(w->connections, IPROTO_CLOSE_SHUTDOWN);
}
