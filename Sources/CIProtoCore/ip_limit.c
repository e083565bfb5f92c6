#include "ip_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ip_count {
    struct ip_count *next;
    ip_key key;
    unsigned count;
};

void ip_address_from_sockaddr(const struct sockaddr_storage *peer, iproto_address *address) {
    memset(address, 0, sizeof *address);
    if (peer->ss_family == AF_INET6) {
        memcpy(address->bytes, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    } else if (peer->ss_family == AF_INET) {
        address->bytes[10] = address->bytes[11] = 0xff;
        memcpy(address->bytes + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    }
}

static bool is_ipv4_mapped(const iproto_address *address) {
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(address->bytes, prefix, sizeof prefix) == 0;
}

int iproto_address_parse(const char *text, iproto_address *out) {
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET6, text, out->bytes) == 1)
        return 0;
    out->bytes[10] = out->bytes[11] = 0xff;
    if (inet_pton(AF_INET, text, out->bytes + 12) == 1)
        return 0;
    memset(out, 0, sizeof *out);
    return -1;
}

void iproto_address_key(const iproto_address *address, unsigned ipv6_prefix_length, iproto_address *key) {
    *key = *address;
    /* IPv4 (mapped or not) is keyed whole: a prefix under 96 bits would make all of IPv4 one client. */
    if (is_ipv4_mapped(address) || ipv6_prefix_length == 0 || ipv6_prefix_length >= 128)
        return;
    unsigned whole = ipv6_prefix_length / 8, bits = ipv6_prefix_length % 8;
    if (bits > 0)
        key->bytes[whole++] &= (unsigned char)(0xff << (8 - bits));
    memset(key->bytes + whole, 0, 16 - whole);
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
