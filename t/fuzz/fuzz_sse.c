/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the Server-Sent Events parser.
 *
 * Input layout: byte 0 picks max_event; bytes 1..8 are chunk sizes used
 * in turn (0 means "all the rest"); the rest is the stream.  It is parsed
 * whole and in chunks (each its own heap block for ASan); both runs must
 * dispatch the same events and end in the same state.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_sse.h"


#define FUZZ_SEEDS  8


typedef struct {
    uint64_t   hash;
    unsigned   events;
    int        rc;
    uint64_t   retry;
} fuzz_result_t;


static void fuzz_run(size_t max_event, const uint8_t *in, size_t len,
    const uint8_t *seeds, fuzz_result_t *res);
static void fuzz_hash(fuzz_result_t *res, const void *p, size_t len);


static const size_t  fuzz_max_event[4] = { 0, 8, 100, 4096 };


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          max_event;
    uint8_t         seeds[FUZZ_SEEDS], whole[FUZZ_SEEDS];
    fuzz_result_t   a, b;

    if (size < 1 + FUZZ_SEEDS) {
        return 0;
    }

    max_event = fuzz_max_event[data[0] & 3];

    memcpy(seeds, data + 1, FUZZ_SEEDS);
    memset(whole, 0, FUZZ_SEEDS);

    data += 1 + FUZZ_SEEDS;
    size -= 1 + FUZZ_SEEDS;

    fuzz_run(max_event, data, size, whole, &a);
    fuzz_run(max_event, data, size, seeds, &b);

    if (a.hash != b.hash || a.events != b.events || a.rc != b.rc
        || a.retry != b.retry)
    {
        abort();
    }

    return 0;
}


static void
fuzz_run(size_t max_event, const uint8_t *in, size_t len,
    const uint8_t *seeds, fuzz_result_t *res)
{
    int                      rc;
    size_t                   pos, n, off, consumed, k;
    unsigned char           *chunk;
    ngx_voice_sse_event_t    ev;
    ngx_voice_sse_parser_t   p;

    memset(res, 0, sizeof(fuzz_result_t));
    res->hash = 14695981039346656037ULL;

    if (ngx_voice_sse_init(&p, max_event) != 0) {
        abort();
    }

    rc = NGX_VOICE_SSE_AGAIN;
    pos = 0;
    k = 0;

    while (pos < len && rc != NGX_VOICE_SSE_ERROR) {
        n = seeds[k++ % FUZZ_SEEDS];
        n = (n == 0 || n > len - pos) ? len - pos : n;

        chunk = malloc(n);
        if (chunk == NULL) {
            abort();
        }

        memcpy(chunk, in + pos, n);
        pos += n;
        off = 0;

        for ( ;; ) {
            rc = ngx_voice_sse_parse(&p, chunk + off, n - off, &consumed,
                                     &ev);

            if (consumed > n - off) {
                abort();
            }

            off += consumed;

            if (rc == NGX_VOICE_SSE_AGAIN) {
                if (off != n) {
                    abort();
                }

                break;
            }

            if (rc == NGX_VOICE_SSE_ERROR) {
                if (p.error == NULL) {
                    abort();
                }

                fuzz_hash(res, p.error, strlen(p.error));
                break;
            }

            /* an event: within the limit, NUL-terminated, readable */

            if (ev.len > max_event || ev.data[ev.len] != '\0'
                || ev.type_len == 0 || ev.type_len > NGX_VOICE_SSE_MAX_TYPE
                || ev.id_len > NGX_VOICE_SSE_MAX_ID
                || ev.type[ev.type_len] != '\0' || ev.id[ev.id_len] != '\0')
            {
                abort();
            }

            res->events++;
            fuzz_hash(res, ev.type, ev.type_len + 1);
            fuzz_hash(res, ev.data, ev.len + 1);
            fuzz_hash(res, ev.id, ev.id_len + 1);
        }

        free(chunk);
    }

    res->rc = rc;
    res->retry = p.retry;

    ngx_voice_sse_free(&p);
}


static void
fuzz_hash(fuzz_result_t *res, const void *p, size_t len)
{
    size_t                i;
    const unsigned char  *s;

    s = p;

    for (i = 0; i < len; i++) {
        res->hash = (res->hash ^ s[i]) * 1099511628211ULL;
    }
}
