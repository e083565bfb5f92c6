/*
 * The iproto C core: the only header Swift sees.
 *
 * The core owns sockets, event loops (one libev loop per worker thread),
 * per-connection buffers, framing and every transport limit. It knows nothing
 * about what a function does: for each complete request it calls
 * `on_request` once, on the worker thread that owns the connection, and the
 * callee answers with `iproto_reply` before returning.
 *
 * Wire format (all integers unsigned 32-bit little-endian):
 *   request  = func_id body_length request_id body
 *   response = func_id body_length request_id return_code body
 * A response's body_length counts the MessagePack body only.
 */
#ifndef IPROTO_CORE_H
#define IPROTO_CORE_H

#include <stddef.h>
#include <stdint.h>

#define IPROTO_REQUEST_HEADER_SIZE 12
#define IPROTO_RESPONSE_HEADER_SIZE 16

/*
 * Return codes of the protocol layer: the one table that both the core and
 * the Swift API use. Services define their own codes from 0x100 up
 * (docs/protocol.md lists them all).
 */
typedef enum iproto_return_code {
    IPROTO_RC_OK = 0,
    IPROTO_RC_UNKNOWN_FUNCTION = 1,
    IPROTO_RC_MALFORMED_BODY = 2,
    IPROTO_RC_BAD_ARGUMENTS = 3,
    IPROTO_RC_OUT_OF_RANGE = 4,
    IPROTO_RC_TOO_LONG = 5,
    IPROTO_RC_BODY_TOO_LARGE = 6,
    IPROTO_RC_RATE_LIMITED = 7,
    IPROTO_RC_SHUTTING_DOWN = 8,
    IPROTO_RC_INTERNAL_ERROR = 9,
    IPROTO_RC_PERMISSION_DENIED = 10,
} iproto_return_code;

/* Why a connection was closed; indexes iproto_stats.closed. */
typedef enum iproto_close_reason {
    IPROTO_CLOSE_PEER = 0,      /* the client closed or reset the connection */
    IPROTO_CLOSE_IDLE_TIMEOUT,  /* no progress in either direction for idle_timeout */
    IPROTO_CLOSE_READ_TIMEOUT,  /* a request started but did not complete within read_timeout */
    IPROTO_CLOSE_TOO_LARGE,     /* a request announced a body over max_body */
    IPROTO_CLOSE_OVER_LIMIT,    /* accepted past max_connections and closed at once */
    IPROTO_CLOSE_OVER_IP_LIMIT, /* accepted past max_connections_per_ip and closed at once */
    IPROTO_CLOSE_SHUTDOWN,      /* the server stopped */
    IPROTO_CLOSE_IO_ERROR,      /* a socket error other than a reset */
    IPROTO_CLOSE_REASON_COUNT
} iproto_close_reason;

/* Counters summed over all workers; each is monotonic except connections_active. */
typedef struct iproto_stats {
    uint64_t connections_accepted;
    uint64_t connections_active;
    uint64_t connections_closed[IPROTO_CLOSE_REASON_COUNT];
    uint64_t requests;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t body_too_large;      /* requests rejected for body_length > max_body */
    uint64_t output_paused;       /* times reading stopped because output reached max_output */
    uint64_t turns_yielded;       /* times a connection used up its per-turn request budget */
    uint64_t accept_errors;       /* accept() failures such as EMFILE */
    uint64_t buffered_bytes;      /* now: memory held for stashed input and unsent output (a gauge) */
    uint64_t budget_paused;       /* times reading from a connection stopped for memory_budget */
} iproto_stats;

typedef struct iproto_server iproto_server;
typedef struct iproto_conn iproto_conn;

/*
 * Per-connection scratch owned by the embedding code (the Swift side keeps
 * its rate limiter and log throttle here). Zeroed when the connection opens;
 * only touched on the connection's worker thread.
 */
typedef struct iproto_conn_slot {
    double values[4];
    uint64_t counters[4];
} iproto_conn_slot;

/* A client address as 16 bytes in network order: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
typedef struct iproto_address {
    unsigned char bytes[16];
} iproto_address;

/* Parses a numeric IPv4 or IPv6 address (no port, no brackets). Returns 0, or -1 if `text` is not one. */
int iproto_address_parse(const char *text, iproto_address *out);

/*
 * The key a client is counted under (max_connections_per_ip) and rate limited
 * by: an IPv4 address (or an IPv4-mapped IPv6 one) whole; any other IPv6
 * address cut to its first `ipv6_prefix_length` bits, since one host
 * usually holds a whole /64. A length of 0 or over 128 keeps all 128 bits.
 */
void iproto_address_key(const iproto_address *address, unsigned ipv6_prefix_length, iproto_address *key);

typedef enum iproto_conn_event {
    IPROTO_CONN_OPENED,
    IPROTO_CONN_CLOSED,
    IPROTO_CONN_REJECTED,  /* refused at accept by a connection limit (reason says which) */
} iproto_conn_event;

/*
 * Called on the worker thread when a connection opens, closes or is refused;
 * `reason` is meaningless on open. `conn` is the connection (its slot may be
 * set on open and read on close), NULL when refused.
 */
typedef void (*iproto_conn_fn)(void *context, iproto_conn *conn, unsigned worker, iproto_conn_event event,
                               const char *peer, iproto_close_reason reason);

/*
 * Called on a worker thread when accept() fails with `error` (an errno value:
 * EMFILE, ENFILE, ENOBUFS, ENOMEM); the worker then pauses accepting for
 * 100 ms, so this comes at most ten times a second per worker.
 */
typedef void (*iproto_accept_error_fn)(void *context, unsigned worker, int error);

/*
 * Called on a worker thread for every complete request. `body` is borrowed:
 * it is valid only until the callback returns. The callee must call
 * iproto_reply exactly once for `conn` before returning, and must not keep
 * `conn`.
 */
typedef void (*iproto_request_fn)(void *context, iproto_conn *conn, unsigned worker,
                                  uint32_t func_id, uint32_t request_id,
                                  const char *body, uint32_t body_length);

/* Why a barrier failed, and the reply that replaces what it guarded. */
typedef struct iproto_flush_error {
    uint32_t return_code;  /* non-zero */
    char message[192];     /* sent as a MessagePack string; NUL-terminated */
} iproto_flush_error;

/*
 * Called on a worker thread right before it sends replies: whatever those
 * replies acknowledge can be made durable first, one sync for the whole batch
 * (group commit). Returns 0 when it succeeded. Otherwise it fills `error`,
 * and every successful reply (return code 0) the worker made since its
 * previous barrier is replaced by that error before anything is sent: a
 * reply never acknowledges what the barrier could not make durable. Error
 * replies are kept as they are.
 */
typedef int (*iproto_flush_fn)(void *context, unsigned worker, iproto_flush_error *error);

typedef struct iproto_config {
    const char *host;           /* numeric address or name to bind */
    uint16_t port;              /* 0 picks a free port */
    int listen_fd;              /* an inherited listening socket (systemd), or -1 to bind host:port */
    int reuse_port;             /* set SO_REUSEPORT so a new process can bind beside this one */
    unsigned workers;           /* worker threads, each with its own loop */
    uint32_t max_body;          /* largest accepted body_length */
    size_t max_output;          /* per-connection unsent output before reading pauses */
    unsigned max_connections;   /* open connections across all workers */
    unsigned max_connections_per_ip; /* open connections from one address key; 0 = no limit */
    unsigned ipv6_prefix_length; /* bits of an IPv6 address that make its key (see iproto_address_key) */
    double read_timeout;        /* seconds to complete a started request; 0 = none */
    double idle_timeout;        /* seconds without progress; 0 = none */
    double shutdown_timeout;    /* seconds to flush output on stop before closing anyway */
    iproto_request_fn on_request;
    iproto_conn_fn on_connection; /* optional */
    iproto_flush_fn on_flush;     /* optional */
    iproto_accept_error_fn on_accept_error; /* optional */
    void *context;              /* passed to the callbacks */
    size_t memory_budget;       /* stashed input and unsent output across all connections, in bytes,
                                   past which the biggest holders stop reading; 0 = none */
} iproto_config;

/* Binds and listens. On failure returns NULL and writes a one-line reason to `error`. */
iproto_server *iproto_server_create(const iproto_config *config, char *error, size_t error_size);

/* Starts the worker threads. Returns 0, or -1 with a reason in `error`. */
int iproto_server_start(iproto_server *server, char *error, size_t error_size);

/* The bound address as "host:port" ("[v6]:port" for IPv6). */
void iproto_server_address(const iproto_server *server, char *out, size_t out_size);
uint16_t iproto_server_port(const iproto_server *server);

/* The index of the worker whose thread calls this (0 … workers-1), or -1 on a
 * thread that is no server's worker. Handlers and reply barriers run on their
 * worker's thread, so a service can keep per-worker state without locks. */
int iproto_current_worker(void);

/*
 * Asks every worker to stop gracefully. Safe from any thread. Each connection
 * then answers the requests it had already received, answers any request that
 * arrives after the stop with IPROTO_RC_SHUTTING_DOWN without running it, and
 * once its output is sent shuts its write side and closes when the client
 * does (or after shutdown_timeout).
 */
void iproto_server_stop(iproto_server *server);

/* Blocks until every worker has exited. */
void iproto_server_wait(iproto_server *server);

/* Frees the server. It must be stopped and waited for, or never started. */
void iproto_server_destroy(iproto_server *server);

/* A consistent-enough snapshot of the counters; safe from any thread. */
void iproto_server_stats(const iproto_server *server, iproto_stats *out);

/* The connection's slot for embedding code; see iproto_conn_slot. */
iproto_conn_slot *iproto_conn_state(iproto_conn *conn);

/* The peer address as "host:port". */
const char *iproto_conn_peer(const iproto_conn *conn);

/* The peer's address (AF_UNIX peers: all zero). */
void iproto_conn_address(const iproto_conn *conn, iproto_address *out);

/* The peer's key, as iproto_address_key derives it with the configured ipv6_prefix_length. */
void iproto_conn_address_key(const iproto_conn *conn, iproto_address *out);

/* Queues a response for the request being dispatched on `conn`. */
void iproto_reply(iproto_conn *conn, uint32_t func_id, uint32_t request_id,
                  uint32_t return_code, const char *body, uint32_t body_length);

/* One stretch of a response body. */
typedef struct iproto_piece {
    const char *data;
    uint32_t length;
} iproto_piece;

/* The same with the body in `count` pieces, copied one after another into the
   response: a large binary reaches the output buffer in one copy, not first
   into the caller's buffer and then into this one. */
void iproto_reply_pieces(iproto_conn *conn, uint32_t func_id, uint32_t request_id,
                         uint32_t return_code, const iproto_piece *pieces, size_t count);

#endif
