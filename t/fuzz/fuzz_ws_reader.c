/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the WebSocket frame reader.
 *
 * Input layout: byte 0 picks the role, max_msg and min_cap; bytes 1..8
 * are chunk sizes used in turn (0 means "all the rest"); the remainder is
 * the byte stream.  The stream is read twice, whole and in chunks, and
 * both runs must return the same messages and the same final state.
 * Each chunk lives in its own exact-size heap block so that ASan catches
 * any read past it.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_ws_codec.h"


#define FUZZ_SEEDS  8


typedef struct {
    uint64_t   hash;
    unsigned   nmsgs;
    int        rc;          /* last: AGAIN or FAIL */
    unsigned   error;
} fuzz_result_t;


static void fuzz_run(unsigned role, size_t max_msg, size_t min_cap,
    const uint8_t *in, size_t len, const uint8_t *seeds, fuzz_result_t *res);
static void fuzz_msg(fuzz_result_t *res, const ngx_voice_ws_msg_t *msg,
    size_t max_msg);
static void fuzz_hash(fuzz_result_t *res, const void *p, size_t len);


static const size_t  fuzz_max_msg[4] = { 0, 125, 1000, 65536 };
static const size_t  fuzz_min_cap[4] = { 0, 16, 256, 4096 };


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned         role;
    size_t           max_msg, min_cap;
    uint8_t          seeds[FUZZ_SEEDS], whole_seed[FUZZ_SEEDS];
    fuzz_result_t    a, b;

    if (size < 1 + FUZZ_SEEDS) {
        return 0;
    }

    role = data[0] & 1;
    max_msg = fuzz_max_msg[(data[0] >> 1) & 3];
    min_cap = fuzz_min_cap[(data[0] >> 3) & 3];

    memcpy(seeds, data + 1, FUZZ_SEEDS);
    memset(whole_seed, 0, FUZZ_SEEDS);

    data += 1 + FUZZ_SEEDS;
    size -= 1 + FUZZ_SEEDS;

    fuzz_run(role, max_msg, min_cap, data, size, whole_seed, &a);
    fuzz_run(role, max_msg, min_cap, data, size, seeds, &b);

    /* the split must not change anything */

    if (a.hash != b.hash || a.nmsgs != b.nmsgs || a.rc != b.rc
        || a.error != b.error)
    {
        abort();
    }

    return 0;
}


static void
fuzz_run(unsigned role, size_t max_msg, size_t min_cap, const uint8_t *in,
    size_t len, const uint8_t *seeds, fuzz_result_t *res)
{
    int                     rc;
    size_t                  pos, n, off, consumed, k;
    unsigned char          *chunk;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    memset(res, 0, sizeof(fuzz_result_t));
    res->hash = 14695981039346656037ULL;

    ngx_voice_ws_reader_init(&r, role, max_msg, min_cap);

    rc = NGX_VOICE_WS_AGAIN;
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
        pos += n;
        off = 0;

        for ( ;; ) {
            rc = ngx_voice_ws_read(&r, chunk + off, n - off, &consumed, &msg);

            if (consumed > n - off) {
                abort();
            }

            off += consumed;

            if (rc == NGX_VOICE_WS_MSG) {
                fuzz_msg(res, &msg, max_msg);
                continue;
            }

            if (rc == NGX_VOICE_WS_AGAIN) {
                if (off != n) {
                    abort();
                }

                break;
            }

            if (rc != NGX_VOICE_WS_FAIL || r.error_text == NULL
                || (r.error != 1002 && r.error != 1007 && r.error != 1009
                    && r.error != 1011))
            {
                abort();
            }

            /* failed stays failed */

            if (ngx_voice_ws_read(&r, chunk, n, &consumed, &msg)
                != NGX_VOICE_WS_FAIL || consumed != 0)
            {
                abort();
            }

            break;
        }

        free(chunk);

        if (r.cap > max_msg || r.len > max_msg) {
            abort();
        }

        if (rc == NGX_VOICE_WS_FAIL) {
            break;
        }
    }

    res->rc = rc;
    res->error = (rc == NGX_VOICE_WS_FAIL) ? r.error : 0;

    ngx_voice_ws_reader_free(&r);
}


static void
fuzz_msg(fuzz_result_t *res, const ngx_voice_ws_msg_t *msg, size_t max_msg)
{
    unsigned char  h[4];

    if (msg->data == NULL) {
        abort();
    }

    switch (msg->opcode) {

    case NGX_VOICE_WS_OP_TEXT:
        if (!ngx_voice_utf8_valid(msg->data, msg->len)) {
            abort();
        }

        /* fall through */

    case NGX_VOICE_WS_OP_BINARY:
        if (msg->len > max_msg) {
            abort();
        }

        break;

    case NGX_VOICE_WS_OP_CLOSE:
        if (msg->len == 0) {
            if (msg->close_code != NGX_VOICE_WS_CLOSE_NO_STATUS) {
                abort();
            }

        } else if (msg->len < 2
                   || !ngx_voice_ws_close_code_valid(msg->close_code)
                   || msg->reason != msg->data + 2
                   || msg->reason_len != msg->len - 2
                   || !ngx_voice_utf8_valid(msg->reason, msg->reason_len))
        {
            abort();
        }

        /* fall through */

    case NGX_VOICE_WS_OP_PING:
    case NGX_VOICE_WS_OP_PONG:
        if (msg->len > NGX_VOICE_WS_CONTROL_MAX) {
            abort();
        }

        break;

    default:
        abort();
    }

    h[0] = (unsigned char) msg->opcode;
    h[1] = (unsigned char) (msg->close_code >> 8);
    h[2] = (unsigned char) msg->close_code;
    h[3] = (unsigned char) msg->len;

    /* hashing reads every byte: ASan checks the data pointer */

    fuzz_hash(res, h, 4);
    fuzz_hash(res, msg->data, msg->len);

    res->nmsgs++;
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
