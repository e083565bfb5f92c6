#include "ip_limit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ip_count {
    struct ip_count *next;
    ip_key key;
    unsigned count;
};

void ip_key_from_sockaddr(const struct sockaddr_storage *address, ip_key *key) {
    memset(key, 0, sizeof *key);
    if (address->ss_family == AF_INET6) {
        memcpy(key->bytes, &((const struct sockaddr_in6 *)address)->sin6_addr, 16);
    } else if (address->ss_family == AF_INET) {
        key->bytes[10] = key->bytes[11] = 0xff;
        memcpy(key->bytes + 12, &((const struct sockaddr_in *)address)->sin_addr, 4);
    }
}

static unsigned bucket_of(const ip_key *key) {
    uint32_t hash = 2166136261u;  /* FNV-1a */
    for (int i = 0; i < 16; i++)
        hash = (hash ^ key->bytes[i]) * 16777619u;
    return hash % IP_LIMIT_BUCKETS;
}

void ip_limit_init(struct ip_limit *limit) {
    pthread_mutex_init(&limit->lock, NULL);
    memset(limit->buckets, 0, sizeof limit->buckets);
}

void ip_limit_destroy(struct ip_limit *limit) {
    for (unsigned i = 0; i < IP_LIMIT_BUCKETS; i++) {
        while (limit->buckets[i] != NULL) {
            struct ip_count *entry = limit->buckets[i];
            limit->buckets[i] = entry->next;
            free(entry);
        }
    }
    pthread_mutex_destroy(&limit->lock);
}

bool ip_limit_acquire(struct ip_limit *limit, const ip_key *key, unsigned max) {
    unsigned bucket = bucket_of(key);
    bool admitted = false;
    pthread_mutex_lock(&limit->lock);
    struct ip_count *entry = limit->buckets[bucket];
    while (entry != NULL && memcmp(&entry->key, key, sizeof *key) != 0)
        entry = entry->next;
    if (entry == NULL) {
        entry = calloc(1, sizeof *entry);
        if (entry != NULL) {
            entry->key = *key;
            entry->next = limit->buckets[bucket];
            limit->buckets[bucket] = entry;
        }
    }
    if (entry != NULL && entry->count < max) {
        entry->count++;
        admitted = true;
    }
    pthread_mutex_unlock(&limit->lock);
    return admitted;
}

void ip_limit_release(struct ip_limit *limit, const ip_key *key) {
    unsigned bucket = bucket_of(key);
    pthread_mutex_lock(&limit->lock);
    struct ip_count **link = &limit->buckets[bucket];
    while (*link != NULL && memcmp(&(*link)->key, key, sizeof *key) != 0)
        link = &(*link)->next;
    struct ip_count *entry = *link;
    if (entry != NULL && --entry->count == 0) {
        *link = entry->next;
        free(entry);
    }
    pthread_mutex_unlock(&limit->lock);
}
