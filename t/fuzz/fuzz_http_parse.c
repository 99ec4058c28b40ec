/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the HTTP/1.1 response parser.
 *
 * Input layout: byte 0 picks the header limit and the HEAD flag; bytes
 * 1..8 are chunk sizes used in turn (0 means "all the rest"); the rest is
 * the byte stream.  The stream is parsed twice, whole and in chunks (each
 * chunk in its own exact-size heap block for ASan), and both runs must
 * give the same events, body bytes, end offsets and final state.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_http_parse.h"


#define FUZZ_SEEDS  8


typedef struct {
    uint64_t   hash;
    unsigned   events;
    int        rc;
    size_t     end;        /* stream offset where parsing stopped */
    int        eof;
} fuzz_result_t;


static void fuzz_run(size_t max_header, unsigned head, const uint8_t *in,
    size_t len, const uint8_t *seeds, fuzz_result_t *res);
static void fuzz_hash(fuzz_result_t *res, const void *p, size_t len);
static void fuzz_num(fuzz_result_t *res, uint64_t v);


static const size_t  fuzz_max_header[4] = { 16, 64, 512, 8192 };


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          max_header;
    unsigned        head;
    uint8_t         seeds[FUZZ_SEEDS], whole[FUZZ_SEEDS];
    fuzz_result_t   a, b;

    if (size < 1 + FUZZ_SEEDS) {
        return 0;
    }

    max_header = fuzz_max_header[data[0] & 3];
    head = (data[0] >> 2) & 1;

    memcpy(seeds, data + 1, FUZZ_SEEDS);
    memset(whole, 0, FUZZ_SEEDS);

    data += 1 + FUZZ_SEEDS;
    size -= 1 + FUZZ_SEEDS;

    fuzz_run(max_header, head, data, size, whole, &a);
    fuzz_run(max_header, head, data, size, seeds, &b);

    if (a.hash != b.hash || a.events != b.events || a.rc != b.rc
        || a.end != b.end || a.eof != b.eof)
    {
        abort();
    }

    return 0;
}


static void
fuzz_run(size_t max_header, unsigned head, const uint8_t *in, size_t len,
    const uint8_t *seeds, fuzz_result_t *res)
{
    int                       rc;
    size_t                    pos, n, off, consumed, k, vlen;
    unsigned char            *chunk;
    const char               *v;
    ngx_voice_http_event_t    ev;
    ngx_voice_http_parser_t   p;

    memset(res, 0, sizeof(fuzz_result_t));
    res->hash = 14695981039346656037ULL;

    if (ngx_voice_http_parser_init(&p, max_header) != 0) {
        abort();
    }

    p.head = head;

    rc = NGX_VOICE_HTTP_AGAIN;
    pos = 0;
    k = 0;

    while (pos < len) {
        n = seeds[k++ % FUZZ_SEEDS];
        n = (n == 0 || n > len - pos) ? len - pos : n;

        chunk = malloc(n);
        if (chunk == NULL) {
            abort();
        }

        memcpy(chunk, in + pos, n);
        off = 0;

        for ( ;; ) {
            rc = ngx_voice_http_parse(&p, chunk + off, n - off, &consumed,
                                      &ev);

            if (consumed > n - off) {
                abort();
            }

            off += consumed;

            if (rc == NGX_VOICE_HTTP_AGAIN) {
                if (off != n) {
                    abort();
                }

                break;
            }

            if (rc == NGX_VOICE_HTTP_ERROR) {
                if (p.error == NULL) {
                    abort();
                }

                fuzz_hash(res, p.error, strlen(p.error));
                break;
            }

            if (rc == NGX_VOICE_HTTP_BODY) {
                /* split-independent: body bytes only, no boundaries */
                if (ev.len == 0 || ev.data < chunk
                    || ev.data + ev.len > chunk + n)
                {
                    abort();
                }

                fuzz_hash(res, ev.data, ev.len);
                continue;
            }

            res->events++;
            fuzz_num(res, (uint64_t) rc);

            if (rc == NGX_VOICE_HTTP_HEADER) {
                if (ev.name_len == 0 || strlen(ev.name) != ev.name_len
                    || strlen(ev.value) != ev.value_len)
                {
                    abort();
                }

                fuzz_hash(res, ev.name, ev.name_len + 1);
                fuzz_hash(res, ev.value, ev.value_len + 1);

                v = ngx_voice_http_header(&p, ev.name, &vlen);
                if (v == NULL) {
                    abort();
                }

                continue;
            }

            if (rc == NGX_VOICE_HTTP_HEADER_DONE) {
                if (p.status < 101 || p.status > 599
                    || strlen(p.reason) != p.reason_len)
                {
                    abort();
                }

                fuzz_num(res, p.status);
                fuzz_num(res, p.version);
                fuzz_num(res, p.body);
                fuzz_num(res, p.keepalive);
                fuzz_num(res, p.content_length);
                fuzz_hash(res, p.reason, p.reason_len);
                continue;
            }

            /* DONE */

            fuzz_num(res, pos + off);

            if (!p.keepalive) {
                break;
            }
        }

        free(chunk);
        pos += off;

        if (rc == NGX_VOICE_HTTP_ERROR
            || (rc == NGX_VOICE_HTTP_DONE && !p.keepalive))
        {
            break;
        }

        if (off != n) {
            abort();
        }
    }

    /* where an error was noticed depends on the split: not compared */

    res->rc = rc;
    res->end = (rc == NGX_VOICE_HTTP_ERROR) ? 0 : pos;
    res->eof = ngx_voice_http_eof(&p);

    ngx_voice_http_parser_free(&p);
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


static void
fuzz_num(fuzz_result_t *res, uint64_t v)
{
    fuzz_hash(res, &v, sizeof(uint64_t));
}
