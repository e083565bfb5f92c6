/* Types shared by the core's files; not part of the public header. */
#ifndef IPROTO_INTERNAL_H
#define IPROTO_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>

#include "iproto_core.h"
#include "buffer.h"
#include "ip_limit.h"

/* Bytes read per recv() into the worker's shared read buffer. */
#define IPROTO_READ_CHUNK (64 * 1024)
/* Reads per connection per wake-up, so one busy client cannot starve the others. */
#define IPROTO_READS_PER_WAKEUP 16
/*
 * Requests one connection may run per turn of the loop. A client pipelining
 * thousands at once would otherwise hold its worker for milliseconds while the
 * other connections wait; past this, the rest waits in its stash for the next turn.
 */
#define IPROTO_REQUESTS_PER_TURN 128
/* Batched replies are sent once they reach this size, even mid-batch. */
#define IPROTO_BATCH_FLUSH (64 * 1024)
/* Connections accepted per wake-up of the listening socket. */
#define IPROTO_ACCEPTS_PER_WAKEUP 64
/* Pause before accepting again after EMFILE and friends. */
#define IPROTO_ACCEPT_BACKOFF 0.1
/* After rejecting a request, how long unread input is discarded before closing. */
#define IPROTO_LINGER_TIMEOUT 2.0
/* On stop, how long a connection keeps answering new requests with SHUTTING_DOWN before it half-closes. */
#define IPROTO_DRAIN_GRACE 1.0
/*
 * The memory budget (see conn_budget_pass): connections holding at most this
 * are never paused for it, and connections paused for it resume once the
 * server-wide total is below IPROTO_BUDGET_RESUME percent of the budget,
 * checked every IPROTO_BUDGET_POLL seconds.
 */
#define IPROTO_BUDGET_FLOOR (16 * 1024)
#define IPROTO_BUDGET_RESUME 90
#define IPROTO_BUDGET_POLL 0.01

/*
 * Per-worker counters. Only the owning thread writes them (relaxed atomic
 * stores, no lock prefix); any thread may read them.
 */
struct worker_stats {
    uint64_t accepted;
    uint64_t closed[IPROTO_CLOSE_REASON_COUNT];
    uint64_t requests;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t body_too_large;
    uint64_t output_paused;
    uint64_t turns_yielded;
    uint64_t accept_errors;
    uint64_t budget_paused;
};

#define STAT_ADD(w, field, n) \
    __atomic_store_n(&(w)->stats.field, __atomic_load_n(&(w)->stats.field, __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define STAT_GET(w, field) __atomic_load_n(&(w)->stats.field, __ATOMIC_RELAXED)

struct worker {
    struct iproto_server *server;
    unsigned index;
    struct ev_loop *loop;
    pthread_t thread;
    bool thread_started;
    bool stopping;

    ev_io accept_watcher;
    ev_timer accept_backoff;
    ev_async stop_signal;
    ev_timer shutdown_deadline;

    /* Shared by this worker's connections; see connection.c for how. */
    char *read_buffer;
    size_t read_buffer_size;
    struct obuf batch;

    /*
     * With an on_flush barrier, replies are not sent as they are made: the
     * connections holding some wait in `deferred` (doubly linked), and before
     * the loop polls again `flush_watcher` runs the barrier once and sends them
     * all (group commit across every connection served in the iteration).
     */
    struct iproto_conn *deferred;
    ev_prepare flush_watcher;
    bool sending_deferred;
    /* Barriers run so far: a connection's replies made before barrier N+1 carry N (see connection.c). */
    uint64_t barrier_rounds;

    /*
     * Connections that used up their turn's request budget with complete
     * requests left in their stash. `backlog_watcher` gives each another turn
     * once per loop iteration, after the other connections' events;
     * `backlog_spinner`, an idle watcher, keeps the loop from sleeping meanwhile.
     */
    struct iproto_conn *backlog;
    ev_check backlog_watcher;
    ev_idle backlog_spinner;

    struct iproto_conn *connections;  /* doubly linked, owned by this worker */
    unsigned connection_count;

    struct worker_stats stats;

    /*
     * The memory budget, for this worker's connections: `budget_watcher` runs
     * the pass after an iteration in which they grew the server's total past
     * the budget; `budget_poll` runs while some are paused for it, to resume
     * them once the total (which other workers' clients also drain) is low
     * enough; `budget_order` is the pass's scratch array.
     */
    ev_check budget_watcher;
    ev_timer budget_poll;
    unsigned budget_paused_count;
    struct iproto_conn **budget_order;
    size_t budget_order_capacity;
};

struct iproto_server {
    iproto_config config;
    int listen_fd;
    bool listener_inherited;      /* from systemd: its accept queue is shared with a successor */
    char address[80];
    uint16_t port;
    unsigned active_connections;  /* across workers; atomic */
    unsigned acceptors_stopped;   /* workers that stopped accepting; atomic */
    struct ip_limit ip_limit;
    struct worker *workers;
    size_t buffered;              /* capacity of every connection's in and out buffers, across workers; atomic */
};

/* connection.c */
void conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer, const iproto_address *address,
                 const ip_key *key);
void conn_shutdown_all(struct worker *w);
void conn_destroy_all(struct worker *w);
void conn_send_deferred(struct ev_loop *loop, ev_prepare *watcher, int revents);
void conn_serve_backlog(struct ev_loop *loop, ev_check *watcher, int revents);
void conn_keep_polling(struct ev_loop *loop, ev_idle *watcher, int revents);
void conn_budget_pass(struct ev_loop *loop, ev_check *watcher, int revents);
void conn_budget_poll(struct ev_loop *loop, ev_timer *watcher, int revents);
void format_peer(const struct sockaddr_storage *address, char *out, size_t size);

#endif
