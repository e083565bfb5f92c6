/*
 * Open connections per client address, shared by all workers (one mutex,
 * taken once per accept and once per close, never per request).
 */
#ifndef IPROTO_IP_LIMIT_H
#define IPROTO_IP_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#define IP_LIMIT_BUCKETS 4096

/* An address as 16 bytes: IPv6 as is, IPv4 mapped to ::ffff:a.b.c.d. */
typedef struct ip_key {
    unsigned char bytes[16];
} ip_key;

struct ip_count;

struct ip_limit {
    pthread_mutex_t lock;
    struct ip_count *buckets[IP_LIMIT_BUCKETS];
};

void ip_key_from_sockaddr(const struct sockaddr_storage *address, ip_key *key);

void ip_limit_init(struct ip_limit *limit);
void ip_limit_destroy(struct ip_limit *limit);

/* Counts one more connection from `key` unless `max` are already open. */
bool ip_limit_acquire(struct ip_limit *limit, const ip_key *key, unsigned max);

/* Counts one connection from `key` as closed. */
void ip_limit_release(struct ip_limit *limit, const ip_key *key);

#endif
