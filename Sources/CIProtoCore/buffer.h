/*
 * Growable byte buffers used for a connection's stashed input and unsent
 * output, and for a worker's batch of replies.
 *
 *   data                pos                 len                 capacity
 *    |-- already sent --|---- pending -------|----- free ---------|
 *
 * Offsets, never pointers, are kept into `data`, since appending may move it.
 * Input buffers use only len (pos stays 0): they hold bytes not yet parsed.
 */
#ifndef IPROTO_BUFFER_H
#define IPROTO_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

struct obuf {
    char *data;
    size_t pos;
    size_t len;
    size_t capacity;
};

static inline size_t obuf_pending(const struct obuf *b) { return b->len - b->pos; }

/* Makes room for `extra` more bytes after len. Returns false when out of memory. */
bool obuf_reserve(struct obuf *b, size_t extra);

/* Appends bytes; returns false when out of memory. */
bool obuf_append(struct obuf *b, const void *bytes, size_t n);

/* Marks `n` pending bytes sent; resets to empty once everything is sent. */
void obuf_consume(struct obuf *b, size_t n);

/* Drops the first `n` bytes, moving the rest to the front (input buffers). */
void obuf_discard_front(struct obuf *b, size_t n);

/* Frees the memory once the buffer is empty and larger than `keep` bytes. */
void obuf_shrink_if_empty(struct obuf *b, size_t keep);

void obuf_free(struct obuf *b);

#endif
