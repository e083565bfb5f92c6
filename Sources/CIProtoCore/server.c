/*
 * The listener and the workers. One listening socket is shared: every worker
 * watches it with its own libev loop and accepts what it can (the losers of a
 * wake-up get EAGAIN). A connection stays on the worker that accepted it for
 * its whole life. Only ev_async crosses threads, to ask a worker to stop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

static void set_error(char *error, size_t size, const char *format, ...) {
    if (error == NULL || size == 0)
        return;
    va_list args;
    va_start(args, format);
    vsnprintf(error, size, format, args);
    va_end(args);
}

/* ---- accepting ---- */

/* Closes a connection a limit refused, counting and reporting it. */
static void refuse(struct worker *w, int fd, const struct sockaddr_storage *peer, iproto_close_reason reason) {
    const iproto_config *cfg = &w->server->config;
    __atomic_sub_fetch(&w->server->active_connections, 1, __ATOMIC_RELAXED);
    close(fd);
    STAT_ADD(w, closed[reason], 1);
    if (cfg->on_connection != NULL) {
        char address[INET6_ADDRSTRLEN + 8];
        format_peer(peer, address, sizeof address);
        cfg->on_connection(cfg->context, NULL, w->index, IPROTO_CONN_REJECTED, address, reason);
    }
}

/* Accepts one connection and applies the connection limits. Returns false when nothing is pending or accept failed. */
static bool accept_one(struct worker *w) {
    struct iproto_server *s = w->server;
    struct sockaddr_storage peer;
    socklen_t peer_length = sizeof peer;
    int fd = accept4(s->listen_fd, (struct sockaddr *)&peer, &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
            return true;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return false;
        /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the socket stays readable, so back off instead of spinning. */
        int error = errno;
        STAT_ADD(w, accept_errors, 1);
        if (s->config.on_accept_error != NULL)
            s->config.on_accept_error(s->config.context, w->index, error);
        ev_io_stop(w->loop, &w->accept_watcher);
        if (!w->stopping) {
            ev_timer_set(&w->accept_backoff, IPROTO_ACCEPT_BACKOFF, 0);
            ev_timer_start(w->loop, &w->accept_backoff);
        }
        return false;
    }
    unsigned active = __atomic_add_fetch(&s->active_connections, 1, __ATOMIC_RELAXED);
    if (active > s->config.max_connections) {
        refuse(w, fd, &peer, IPROTO_CLOSE_OVER_LIMIT);
        return true;
    }
    iproto_address address;
    ip_key key;
    ip_address_from_sockaddr(&peer, &address);
    iproto_address_key(&address, s->config.ipv6_prefix_length, &key);
    if (s->config.max_connections_per_ip > 0 &&
        !ip_limit_acquire(&s->ip_limit, &key, s->config.max_connections_per_ip)) {
        refuse(w, fd, &peer, IPROTO_CLOSE_OVER_IP_LIMIT);
        return true;
    }
    conn_accept(w, fd, &peer, &address, &key);
    return true;
}

static void on_accept(struct ev_loop *loop, ev_io *watcher, int revents) {
    (void)loop;
    (void)revents;
    struct worker *w = watcher->data;
    for (int i = 0; i < IPROTO_ACCEPTS_PER_WAKEUP && accept_one(w); i++)
        ;
}

static void on_accept_backoff(struct ev_loop *loop, ev_timer *timer, int revents) {
    (void)revents;
    struct worker *w = timer->data;
    if (!w->stopping)
        ev_io_start(loop, &w->accept_watcher);
}

/* ---- stopping ---- */

static void on_shutdown_deadline(struct ev_loop *loop, ev_timer *timer, int revents) {
    (void)loop;
    (void)revents;
    conn_destroy_all(timer->data);
}

/*
 * Called by each worker as it stops accepting; the last one closes the
 * listening socket. A socket we bound ourselves (possibly with SO_REUSEPORT
 * beside a successor) resets the connections still queued on it when it
 * closes, so those are accepted first and shut down gracefully like the rest.
 * An inherited socket stays open in systemd and keeps its queue for the next
 * process, so nothing is taken from it.
 */
static void release_listener(struct worker *w) {
    struct iproto_server *s = w->server;
    if (__atomic_add_fetch(&s->acceptors_stopped, 1, __ATOMIC_ACQ_REL) < s->config.workers)
        return;
    if (!s->listener_inherited)
        while (accept_one(w))
            ;
    close(s->listen_fd);
    s->listen_fd = -1;
}

static void on_stop(struct ev_loop *loop, ev_async *signal, int revents) {
    (void)revents;
    struct worker *w = signal->data;
    if (w->stopping)
        return;
    w->stopping = true;
    ev_io_stop(loop, &w->accept_watcher);
    ev_timer_stop(loop, &w->accept_backoff);
    release_listener(w);
    conn_shutdown_all(w);
    if (w->connection_count == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&w->shutdown_deadline, w->server->config.shutdown_timeout, 0);
    ev_timer_start(loop, &w->shutdown_deadline);
}

/* Which worker the calling thread is, for services that stage work per worker
 * until their reply barrier; -1 on every other thread. */
static _Thread_local int current_worker = -1;

int iproto_current_worker(void) { return current_worker; }

static void *worker_main(void *arg) {
    struct worker *w = arg;
    current_worker = (int)w->index;
    ev_run(w->loop, 0);
    return NULL;
}

/* ---- set-up ---- */

static int listen_on(const iproto_config *config, char *error, size_t error_size) {
    char port[8];
    snprintf(port, sizeof port, "%u", config->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *addresses = NULL;
    int rc = getaddrinfo(config->host, port, &hints, &addresses);
    if (rc != 0) {
        set_error(error, error_size, "cannot resolve %s: %s", config->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *a = addresses; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if ((config->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
            bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(addresses);
    if (fd < 0)
        set_error(error, error_size, "cannot listen on %s:%u: %s", config->host, config->port,
                  strerror(last_errno));
    return fd;
}

/* Takes over a listening socket passed in by systemd (or any parent). */
static int adopt_listener(int fd, char *error, size_t error_size) {
    int listening = 0;
    socklen_t length = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
        set_error(error, error_size, "inherited file descriptor %d is not a listening socket", fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        set_error(error, error_size, "cannot make file descriptor %d non-blocking: %s", fd, strerror(errno));
        return -1;
    }
    return fd;
}

static void describe_address(struct iproto_server *s) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    char host[INET6_ADDRSTRLEN] = "?";
    if (getsockname(s->listen_fd, (struct sockaddr *)&address, &length) != 0)
        return;
    if (address.ss_family == AF_INET6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&address;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        s->port = ntohs(v6->sin6_port);
        snprintf(s->address, sizeof s->address, "[%s]:%u", host, s->port);
    } else {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&address;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        s->port = ntohs(v4->sin_port);
        snprintf(s->address, sizeof s->address, "%s:%u", host, s->port);
    }
}

static bool worker_init(struct worker *w, struct iproto_server *s, unsigned index) {
    w->server = s;
    w->index = index;
    w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    w->read_buffer_size = IPROTO_READ_CHUNK;
    w->read_buffer = malloc(w->read_buffer_size);
    if (w->loop == NULL || w->read_buffer == NULL)
        return false;
    ev_io_init(&w->accept_watcher, on_accept, s->listen_fd, EV_READ);
    ev_init(&w->accept_backoff, on_accept_backoff);
    ev_async_init(&w->stop_signal, on_stop);
    ev_init(&w->shutdown_deadline, on_shutdown_deadline);
    w->accept_watcher.data = w->accept_backoff.data = w->stop_signal.data = w->shutdown_deadline.data = w;
    ev_io_start(w->loop, &w->accept_watcher);
    ev_async_start(w->loop, &w->stop_signal);
    ev_check_init(&w->backlog_watcher, conn_serve_backlog);
    ev_idle_init(&w->backlog_spinner, conn_keep_polling);
    w->backlog_watcher.data = w;
    ev_check_init(&w->budget_watcher, conn_budget_pass);
    ev_init(&w->budget_poll, conn_budget_poll);
    w->budget_poll.repeat = IPROTO_BUDGET_POLL;
    w->budget_watcher.data = w->budget_poll.data = w;
    if (s->config.on_flush != NULL) {
        ev_prepare_init(&w->flush_watcher, conn_send_deferred);
        w->flush_watcher.data = w;
        ev_prepare_start(w->loop, &w->flush_watcher);
    }
    return true;
}

iproto_server *iproto_server_create(const iproto_config *config, char *error, size_t error_size) {
    if (config->workers == 0 || config->on_request == NULL || config->max_output == 0 ||
        config->max_connections == 0) {
        set_error(error, error_size, "invalid configuration: workers, max_output and max_connections must be positive");
        return NULL;
    }
    struct iproto_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        set_error(error, error_size, "out of memory");
        return NULL;
    }
    s->config = *config;
    s->config.host = NULL; /* not owned; only used to bind below */
    s->listener_inherited = config->listen_fd >= 0;
    s->listen_fd = s->listener_inherited ? adopt_listener(config->listen_fd, error, error_size)
                                         : listen_on(config, error, error_size);
    if (s->listen_fd < 0) {
        free(s);
        return NULL;
    }
    ip_limit_init(&s->ip_limit);
    describe_address(s);
    s->workers = calloc(config->workers, sizeof *s->workers);
    if (s->workers == NULL) {
        set_error(error, error_size, "out of memory");
        iproto_server_destroy(s);
        return NULL;
    }
    for (unsigned i = 0; i < config->workers; i++) {
        if (!worker_init(&s->workers[i], s, i)) {
            set_error(error, error_size, "cannot create event loop for worker %u", i);
            iproto_server_destroy(s);
            return NULL;
        }
    }
    return s;
}

int iproto_server_start(iproto_server *s, char *error, size_t error_size) {
    /* Workers run with every signal blocked, so signals reach the embedding program's threads. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int rc = 0;
    for (unsigned i = 0; i < s->config.workers && rc == 0; i++) {
        struct worker *w = &s->workers[i];
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc == 0)
            w->thread_started = true;
        else
            set_error(error, error_size, "cannot start worker %u: %s", i, strerror(rc));
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0) {
        iproto_server_stop(s);
        iproto_server_wait(s);
        return -1;
    }
    return 0;
}

void iproto_server_address(const iproto_server *s, char *out, size_t out_size) {
    snprintf(out, out_size, "%s", s->address);
}

uint16_t iproto_server_port(const iproto_server *s) { return s->port; }

void iproto_server_stop(iproto_server *s) {
    for (unsigned i = 0; i < s->config.workers; i++)
        if (s->workers[i].loop != NULL)
            ev_async_send(s->workers[i].loop, &s->workers[i].stop_signal);
}

void iproto_server_wait(iproto_server *s) {
    for (unsigned i = 0; i < s->config.workers; i++) {
        struct worker *w = &s->workers[i];
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
            w->thread_started = false;
        }
    }
}

void iproto_server_destroy(iproto_server *s) {
    if (s == NULL)
        return;
    for (unsigned i = 0; s->workers != NULL && i < s->config.workers; i++) {
        struct worker *w = &s->workers[i];
        if (w->loop == NULL)
            continue;
        conn_destroy_all(w);
        ev_loop_destroy(w->loop);
        free(w->read_buffer);
        free(w->budget_order);
        obuf_free(&w->batch);
    }
    free(s->workers);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    ip_limit_destroy(&s->ip_limit);
    free(s);
}

void iproto_server_stats(const iproto_server *s, iproto_stats *out) {
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < s->config.workers; i++) {
        const struct worker *w = &s->workers[i];
        out->connections_accepted += STAT_GET(w, accepted);
        for (int r = 0; r < IPROTO_CLOSE_REASON_COUNT; r++)
            out->connections_closed[r] += STAT_GET(w, closed[r]);
        out->requests += STAT_GET(w, requests);
        out->bytes_in += STAT_GET(w, bytes_in);
        out->bytes_out += STAT_GET(w, bytes_out);
        out->body_too_large += STAT_GET(w, body_too_large);
        out->output_paused += STAT_GET(w, output_paused);
        out->turns_yielded += STAT_GET(w, turns_yielded);
        out->accept_errors += STAT_GET(w, accept_errors);
        out->budget_paused += STAT_GET(w, budget_paused);
    }
    out->connections_active = __atomic_load_n(&s->active_connections, __ATOMIC_RELAXED);
    out->buffered_bytes = __atomic_load_n(&s->buffered, __ATOMIC_RELAXED);
}
