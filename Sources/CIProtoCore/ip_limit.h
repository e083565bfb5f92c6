/*
 * Open connections per client key (its address, IPv6 cut to a prefix), shared
 * by all workers (one mutex, taken once per accept and once per close, never
 * per request).
 */
#ifndef IPROTO_IP_LIMIT_H
#define IPROTO_IP_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "iproto_core.h"

#define IP_LIMIT_BUCKETS 4096

/* A client's key: its address cut as iproto_address_key says. */
typedef iproto_address ip_key;

struct ip_count;

struct ip_limit {
    pthread_mutex_t lock;
    struct ip_count *buckets[IP_LIMIT_BUCKETS];
};

/* The address of `peer` as 16 bytes (all zero for families other than IPv4 and IPv6). */
void ip_address_from_sockaddr(const struct sockaddr_storage *peer, iproto_address *address);

void ip_limit_init(struct ip_limit *limit);
void ip_limit_destroy(struct ip_limit *limit);

/* Counts one more connection from `key` unless `max` are already open. */
bool ip_limit_acquire(struct ip_limit *limit, const ip_key *key, unsigned max);

/* Counts one connection from `key` as closed. */
void ip_limit_release(struct ip_limit *limit, const ip_key *key);

#endif
