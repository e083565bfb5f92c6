#include "buffer.h"

#include <stdlib.h>
#include <string.h>

bool obuf_reserve(struct obuf *b, size_t extra) {
    if (b->capacity - b->len >= extra)
        return true;
    /* Reclaim space already sent before growing. */
    if (b->pos > 0) {
        memmove(b->data, b->data + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
        if (b->capacity - b->len >= extra)
            return true;
    }
    size_t needed = b->len + extra;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < needed)
        capacity *= 2;
    char *data = realloc(b->data, capacity);
    if (data == NULL)
        return false;
    b->data = data;
    b->capacity = capacity;
    return true;
}

bool obuf_append(struct obuf *b, const void *bytes, size_t n) {
    if (!obuf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return true;
}

void obuf_consume(struct obuf *b, size_t n) {
    b->pos += n;
    if (b->pos == b->len)
        b->pos = b->len = 0;
}

void obuf_discard_front(struct obuf *b, size_t n) {
    /* Nothing parsed: no move, and none from a buffer never allocated (memmove(NULL, ...) is undefined). */
    if (n == 0)
        return;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void obuf_shrink_if_empty(struct obuf *b, size_t keep) {
    if (b->len == 0 && b->capacity > keep)
        obuf_free(b);
}

void obuf_free(struct obuf *b) {
    free(b->data);
    b->data = NULL;
    b->pos = b->len = b->capacity = 0;
}
