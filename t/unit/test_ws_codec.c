/*
 * Copyright (C) ngx_voice authors
 */


#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_ws_codec.h"


#define T_SERVER   NGX_VOICE_WS_SERVER
#define T_CLIENT   NGX_VOICE_WS_CLIENT

#define T_MAX      (1024 * 1024)


typedef struct {
    unsigned char  *p;
    size_t          len;
    size_t          cap;
} test_buf_t;


typedef struct {
    const char     *name;
    unsigned        role;
    size_t          max_msg;
    test_buf_t      in;
    size_t          detect_at;   /* bytes after which FAIL is certain */
    unsigned        code;
    const char     *text;
} test_ws_err_t;


static void test_buf_add(test_buf_t *b, const void *p, size_t n);
static void test_buf_free(test_buf_t *b);
static void test_frame(test_buf_t *b, unsigned fin, unsigned opcode,
    const void *payload, size_t len, int masked);
static void test_frame_raw(test_buf_t *b, unsigned b0, unsigned b1,
    const void *ext, size_t ext_len, const void *payload, size_t len,
    int masked);
static void test_close_frame(test_buf_t *b, unsigned code,
    const char *reason, int masked);
static void test_expect(test_buf_t *t, unsigned opcode, const void *data,
    size_t len, unsigned close_code, const void *reason, size_t reason_len);
static void test_run(unsigned role, size_t max_msg, size_t min_cap,
    const unsigned char *in, size_t len, const size_t *cuts, size_t ncuts,
    test_buf_t *out);
static void test_splits(const char *name, unsigned role, size_t max_msg,
    const test_buf_t *in, const test_buf_t *expected, size_t stride);
static void test_ws_frames(void);
static void test_ws_errors(void);
static void test_ws_err(test_ws_err_t *e);
static void test_ws_utf8(void);
static int test_utf8_ref(const unsigned char *p, size_t len);
static void test_ws_zero_copy(void);
static void test_ws_buffer(void);
static void test_ws_failed_stays(void);
static void test_ws_headers(void);
static void test_ws_mask(void);
static void test_ws_accept(void);
static void test_ws_close_codes(void);


static unsigned       test_invariant_errors;
static unsigned char  test_mask_seed;


void
test_ws_codec(void)
{
    tap_diag("ws_codec");

    test_ws_frames();
    test_ws_errors();
    test_ws_utf8();
    test_ws_zero_copy();
    test_ws_buffer();
    test_ws_failed_stays();
    test_ws_headers();
    test_ws_mask();
    test_ws_accept();
    test_ws_close_codes();

    is(test_invariant_errors, 0, "reader invariants held in every run");
}


static void
test_buf_add(test_buf_t *b, const void *p, size_t n)
{
    size_t          cap;
    unsigned char  *np;

    if (b->len + n > b->cap) {
        cap = b->cap ? b->cap : 64;

        while (cap < b->len + n) {
            cap *= 2;
        }

        np = realloc(b->p, cap);
        if (np == NULL) {
            abort();
        }

        b->p = np;
        b->cap = cap;
    }

    if (n) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}


static void
test_buf_free(test_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}


static void
test_frame_raw(test_buf_t *b, unsigned b0, unsigned b1, const void *ext,
    size_t ext_len, const void *payload, size_t len, int masked)
{
    size_t         i;
    unsigned char  h[2], key[4], c;

    h[0] = (unsigned char) b0;
    h[1] = (unsigned char) (b1 | (masked ? 0x80 : 0));

    test_buf_add(b, h, 2);
    test_buf_add(b, ext, ext_len);

    if (!masked) {
        test_buf_add(b, payload, len);
        return;
    }

    /* a different key for every frame */

    for (i = 0; i < 4; i++) {
        key[i] = (unsigned char) (test_mask_seed * 53 + i * 101 + 17);
    }

    test_mask_seed++;

    test_buf_add(b, key, 4);

    for (i = 0; i < len; i++) {
        c = ((const unsigned char *) payload)[i] ^ key[i & 3];
        test_buf_add(b, &c, 1);
    }
}


static void
test_frame(test_buf_t *b, unsigned fin, unsigned opcode, const void *payload,
    size_t len, int masked)
{
    size_t         n;
    unsigned char  h[NGX_VOICE_WS_MAX_HEADER];

    /* the header builder is tested separately; use it here */

    n = ngx_voice_ws_header(h, opcode, fin, len, NULL);

    test_frame_raw(b, h[0], h[1], h + 2, n - 2, payload, len, masked);
}


static void
test_close_frame(test_buf_t *b, unsigned code, const char *reason,
    int masked)
{
    unsigned char  p[NGX_VOICE_WS_CONTROL_MAX];
    size_t         n;

    n = strlen(reason);

    p[0] = (unsigned char) (code >> 8);
    p[1] = (unsigned char) code;
    memcpy(p + 2, reason, n);

    test_frame(b, 1, NGX_VOICE_WS_OP_CLOSE, p, n + 2, masked);
}


static void
test_expect(test_buf_t *t, unsigned opcode, const void *data, size_t len,
    unsigned close_code, const void *reason, size_t reason_len)
{
    char  s[64];
    int   n;

    n = snprintf(s, sizeof(s), "M%u:%zu:", opcode, len);
    test_buf_add(t, s, n);
    test_buf_add(t, data, len);

    n = snprintf(s, sizeof(s), ":%u:%zu:", close_code, reason_len);
    test_buf_add(t, s, n);
    test_buf_add(t, reason, reason_len);
    test_buf_add(t, "|", 1);
}


/*
 * Feeds in[] cut at cuts[] (each piece in its own heap block, so that
 * reads outside a piece are caught by valgrind/ASan) and records every
 * result as text in out: messages, then "A" (all consumed) or "F<code>".
 */

static void
test_run(unsigned role, size_t max_msg, size_t min_cap,
    const unsigned char *in, size_t len, const size_t *cuts, size_t ncuts,
    test_buf_t *out)
{
    int                     rc;
    char                    s[128];
    size_t                  i, start, end, off, consumed, plen;
    unsigned char          *piece;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    ngx_voice_ws_reader_init(&r, role, max_msg, min_cap);

    rc = NGX_VOICE_WS_AGAIN;
    start = 0;

    for (i = 0; i <= ncuts; i++) {
        end = (i < ncuts) ? cuts[i] : len;
        plen = end - start;

        piece = malloc(plen ? plen : 1);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, in + start, plen);

        off = 0;

        for ( ;; ) {
            consumed = (size_t) -1;

            rc = ngx_voice_ws_read(&r, piece + off, plen - off, &consumed,
                                   &msg);

            if (consumed > plen - off) {
                test_invariant_errors++;
                tap_diag("consumed %zu of %zu", consumed, plen - off);
                consumed = plen - off;
            }

            off += consumed;

            if (rc == NGX_VOICE_WS_MSG) {
                if ((msg.opcode == NGX_VOICE_WS_OP_TEXT
                     || msg.opcode == NGX_VOICE_WS_OP_BINARY)
                    && msg.len > max_msg)
                {
                    test_invariant_errors++;
                }

                if (msg.data == NULL
                    || (msg.opcode == NGX_VOICE_WS_OP_CLOSE && msg.len >= 2
                        && msg.reason != msg.data + 2))
                {
                    test_invariant_errors++;
                }

                test_expect(out, msg.opcode, msg.data, msg.len,
                            msg.close_code, msg.reason, msg.reason_len);
                continue;
            }

            if (rc == NGX_VOICE_WS_AGAIN) {
                if (off != plen) {
                    test_invariant_errors++;
                }

                break;
            }

            if (rc != NGX_VOICE_WS_FAIL || r.error_text == NULL) {
                test_invariant_errors++;
                tap_diag("unexpected rc %d", rc);
                rc = NGX_VOICE_WS_FAIL;
            }

            snprintf(s, sizeof(s), "F%u:%s", r.error,
                     r.error_text ? r.error_text : "");
            test_buf_add(out, s, strlen(s));

            /* once failed, always failed */

            if (ngx_voice_ws_read(&r, piece, plen, &consumed, &msg)
                != NGX_VOICE_WS_FAIL || consumed != 0)
            {
                test_invariant_errors++;
            }

            break;
        }

        free(piece);

        if (rc == NGX_VOICE_WS_FAIL) {
            break;
        }

        start = end;
    }

    if (rc != NGX_VOICE_WS_FAIL) {
        test_buf_add(out, "A", 1);
    }

    if (r.buf && r.cap > max_msg) {
        test_invariant_errors++;
    }

    ngx_voice_ws_reader_free(&r);
}


/*
 * Compares the whole-buffer result with the expected one, then with
 * byte by byte feeding, every 2-way split (every stride-th one past the
 * first and last 64 bytes) and pseudo-random 3-way splits.
 */

static void
test_splits(const char *name, unsigned role, size_t max_msg,
    const test_buf_t *in, const test_buf_t *expected, size_t stride)
{
    size_t       i, k, n, bad, first_bad, cuts[2];
    size_t      *all;
    uint32_t     seed;
    test_buf_t   whole, got;

    memset(&whole, 0, sizeof(test_buf_t));

    test_run(role, max_msg, 0, in->p, in->len, NULL, 0, &whole);

    is_mem(whole.p, whole.len, expected->p, expected->len,
           "%s: whole buffer", name);

    /* byte by byte */

    n = in->len ? in->len - 1 : 0;
    all = malloc((n ? n : 1) * sizeof(size_t));
    if (all == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        all[i] = i + 1;
    }

    memset(&got, 0, sizeof(test_buf_t));
    test_run(role, max_msg, 64, in->p, in->len, all, n, &got);
    is_mem(got.p, got.len, whole.p, whole.len, "%s: byte by byte", name);
    test_buf_free(&got);
    free(all);

    /* every 2-way split */

    bad = 0;
    first_bad = 0;
    n = 0;

    for (k = 1; k < in->len; k++) {
        if (k > 64 && k + 64 < in->len && k % stride != 0) {
            continue;
        }

        n++;
        cuts[0] = k;

        memset(&got, 0, sizeof(test_buf_t));
        test_run(role, max_msg, 0, in->p, in->len, cuts, 1, &got);

        if (got.len != whole.len || memcmp(got.p, whole.p, got.len) != 0) {
            if (bad++ == 0) {
                first_bad = k;
            }
        }

        test_buf_free(&got);
    }

    if (!ok(bad == 0, "%s: %zu 2-way splits", name, n)) {
        tap_diag("%zu differ, first at %zu", bad, first_bad);
    }

    /* 3-way splits */

    bad = 0;
    seed = 12345;

    for (i = 0; in->len > 2 && i < 100; i++) {
        seed = seed * 1103515245 + 12345;
        cuts[0] = 1 + (seed >> 8) % (in->len - 1);
        seed = seed * 1103515245 + 12345;
        cuts[1] = 1 + (seed >> 8) % (in->len - 1);

        if (cuts[0] == cuts[1]) {
            continue;
        }

        if (cuts[0] > cuts[1]) {
            k = cuts[0];
            cuts[0] = cuts[1];
            cuts[1] = k;
        }

        memset(&got, 0, sizeof(test_buf_t));
        test_run(role, max_msg, 0, in->p, in->len, cuts, 2, &got);

        if (got.len != whole.len || memcmp(got.p, whole.p, got.len) != 0) {
            bad++;
        }

        test_buf_free(&got);
    }

    is(bad, 0, "%s: 3-way splits", name);

    test_buf_free(&whole);
}


static void
test_ws_frames(void)
{
    size_t          i;
    test_buf_t      in, all, exp, exp_all;
    unsigned char   big[300], ext[8], huge_len[8];
    unsigned char  *huge;

    static const char  cafe[] = "caf\xc3\xa9 \xf0\x9f\x98\x80!";

    for (i = 0; i < sizeof(big); i++) {
        big[i] = (unsigned char) (i * 7 + 3);
    }

    memset(&all, 0, sizeof(test_buf_t));
    memset(&exp_all, 0, sizeof(test_buf_t));

    /* 7-bit length text */

    memset(&in, 0, sizeof(test_buf_t));
    memset(&exp, 0, sizeof(test_buf_t));
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "Hello, world", 12, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "Hello, world", 12, 0, NULL, 0);
    test_buf_add(&all, in.p, in.len);
    test_buf_add(&exp_all, exp.p, exp.len);
    test_buf_add(&exp, "A", 1);
    test_splits("text 7-bit", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* 16-bit length binary */

    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, big, 300, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, big, 300, 0, NULL, 0);
    test_buf_add(&all, in.p, in.len);
    test_buf_add(&exp_all, exp.p, exp.len);
    test_buf_add(&exp, "A", 1);
    is(in.len, 300 + 4 + 4, "16-bit frame size");
    test_splits("binary 16-bit", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* 64-bit length, non-minimal (accepted) */

    memset(ext, 0, 8);
    ext[7] = 200;
    test_frame_raw(&in, 0x82, 127, ext, 8, big, 200, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, big, 200, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("binary 64-bit non-minimal", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* 16-bit encoding of a 5 byte text, non-minimal */

    ext[0] = 0;
    ext[1] = 5;
    test_frame_raw(&in, 0x81, 126, ext, 2, "hello", 5, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "hello", 5, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("text 16-bit non-minimal", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* a real 64-bit length */

    huge = malloc(70000);
    if (huge == NULL) {
        abort();
    }

    for (i = 0; i < 70000; i++) {
        huge[i] = (unsigned char) (i ^ (i >> 8));
    }

    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, huge, 70000, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, huge, 70000, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    is(in.len, 70000 + 10 + 4, "64-bit frame size");
    memcpy(huge_len, in.p + 2, 8);
    is(huge_len[5] * 65536 + huge_len[6] * 256 + huge_len[7], 70000,
       "64-bit length field");
    test_splits("binary 64-bit", T_SERVER, T_MAX, &in, &exp, 4999);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* exactly max_msg, unfragmented then fragmented */

    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, huge, 1000, 1);
    test_frame(&in, 0, NGX_VOICE_WS_OP_BINARY, huge, 600, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, huge + 600, 400, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, huge, 1000, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, huge, 1000, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("exactly max_msg", T_SERVER, 1000, &in, &exp, 7);
    test_buf_free(&in);
    test_buf_free(&exp);

    free(huge);

    /* fragmented text, UTF-8 split across fragments, ping in between */

    test_frame(&in, 0, NGX_VOICE_WS_OP_TEXT, cafe, 4, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_PING, "p1", 2, 1);
    test_frame(&in, 0, NGX_VOICE_WS_OP_CONT, cafe + 4, 4, 1);
    test_frame(&in, 0, NGX_VOICE_WS_OP_CONT, "", 0, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_PONG, "", 0, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, cafe + 8, sizeof(cafe) - 9, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_PING, "p1", 2, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_PONG, "", 0, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, cafe, sizeof(cafe) - 1, 0,
                NULL, 0);
    test_buf_add(&all, in.p, in.len);
    test_buf_add(&exp_all, exp.p, exp.len);
    test_buf_add(&exp, "A", 1);
    test_splits("fragmented text + ping", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* fragmented binary, 16-bit fragments */

    test_frame(&in, 0, NGX_VOICE_WS_OP_BINARY, big, 130, 1);
    test_frame(&in, 0, NGX_VOICE_WS_OP_CONT, big + 130, 20, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, big + 150, 150, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, big, 300, 0, NULL, 0);
    test_buf_add(&all, in.p, in.len);
    test_buf_add(&exp_all, exp.p, exp.len);
    test_buf_add(&exp, "A", 1);
    test_splits("fragmented binary", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* close with a reason */

    test_close_frame(&in, 1000, "bye \xc3\xa9", 1);
    test_expect(&exp, NGX_VOICE_WS_OP_CLOSE, "\x03\xe8" "bye \xc3\xa9", 8,
                1000, "bye \xc3\xa9", 6);
    test_buf_add(&all, in.p, in.len);
    test_buf_add(&exp_all, exp.p, exp.len);
    test_buf_add(&exp, "A", 1);
    test_splits("close 1000 + reason", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* empty frames */

    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "", 0, 1);
    test_frame(&in, 0, NGX_VOICE_WS_OP_BINARY, "", 0, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, "", 0, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_PING, "", 0, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CLOSE, "", 0, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "", 0, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, "", 0, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_PING, "", 0, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_CLOSE, "", 0, 1005, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("empty frames", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* the longest control frame */

    test_frame(&in, 1, NGX_VOICE_WS_OP_PING, big, 125, 1);
    test_close_frame(&in, 4999, "", 1);
    test_expect(&exp, NGX_VOICE_WS_OP_PING, big, 125, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_CLOSE, "\x13\x87", 2, 4999, "", 0);
    test_buf_add(&exp, "A", 1);
    test_splits("ping of 125 bytes", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* all of the above coalesced */

    test_buf_add(&exp_all, "A", 1);
    test_splits("coalesced frames", T_SERVER, T_MAX, &all, &exp_all, 3);
    test_buf_free(&all);
    test_buf_free(&exp_all);

    /* client role: unmasked frames */

    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "{\"type\":\"x\"}", 12, 0);
    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, big, 300, 0);
    test_frame(&in, 0, NGX_VOICE_WS_OP_TEXT, cafe, 5, 0);
    test_frame(&in, 1, NGX_VOICE_WS_OP_PING, "k", 1, 0);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, cafe + 5, sizeof(cafe) - 6, 0);
    test_close_frame(&in, 1011, "NET-0001", 0);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "{\"type\":\"x\"}", 12, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_BINARY, big, 300, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_PING, "k", 1, 0, NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, cafe, sizeof(cafe) - 1, 0,
                NULL, 0);
    test_expect(&exp, NGX_VOICE_WS_OP_CLOSE, "\x03\xf3NET-0001", 10, 1011,
                "NET-0001", 8);
    test_buf_add(&exp, "A", 1);
    test_splits("client role", T_CLIENT, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* frames after a close are still parsed (the caller stops reading) */

    test_close_frame(&in, 1001, "", 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "late", 4, 1);
    test_expect(&exp, NGX_VOICE_WS_OP_CLOSE, "\x03\xe9", 2, 1001, "", 0);
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "late", 4, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("after close", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);

    /* an incomplete frame at the end: AGAIN, nothing returned */

    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "abc", 3, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "def", 3, 1);
    in.len--;
    test_expect(&exp, NGX_VOICE_WS_OP_TEXT, "abc", 3, 0, NULL, 0);
    test_buf_add(&exp, "A", 1);
    test_splits("truncated second frame", T_SERVER, T_MAX, &in, &exp, 1);
    test_buf_free(&in);
    test_buf_free(&exp);
}


static void
test_ws_errors(void)
{
    unsigned        op;
    unsigned char   ext[8], pay[200];
    test_ws_err_t   e;

    memset(pay, 'a', sizeof(pay));

#define T_ERR(nm, rl, mx, at, cd, tx)                                         \
    memset(&e, 0, sizeof(e));                                                 \
    e.name = nm; e.role = rl; e.max_msg = mx; e.detect_at = at;               \
    e.code = cd; e.text = tx

    T_ERR("RSV1", T_SERVER, T_MAX, 2, 1002, "reserved bits set");
    test_frame_raw(&e.in, 0xc1, 1, NULL, 0, "a", 1, 1);
    test_ws_err(&e);

    T_ERR("RSV2", T_SERVER, T_MAX, 2, 1002, "reserved bits set");
    test_frame_raw(&e.in, 0xa1, 1, NULL, 0, "a", 1, 1);
    test_ws_err(&e);

    T_ERR("RSV3 on ping", T_CLIENT, T_MAX, 2, 1002, "reserved bits set");
    test_frame_raw(&e.in, 0x99, 1, NULL, 0, "a", 1, 0);
    test_ws_err(&e);

    for (op = 3; op < 16; op++) {
        if (op >= 8 && op <= 10) {
            continue;
        }

        T_ERR("unknown opcode", T_SERVER, T_MAX, 2, 1002, "unknown opcode");
        test_frame_raw(&e.in, 0x80 | op, 1, NULL, 0, "a", 1, 1);
        test_ws_err(&e);
    }

    T_ERR("fragmented ping", T_SERVER, T_MAX, 2, 1002,
          "fragmented control frame");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_PING, "a", 1, 1);
    test_ws_err(&e);

    T_ERR("fragmented close", T_SERVER, T_MAX, 2, 1002,
          "fragmented control frame");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_CLOSE, "\x03\xe8", 2, 1);
    test_ws_err(&e);

    T_ERR("fragmented pong", T_CLIENT, T_MAX, 2, 1002,
          "fragmented control frame");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_PONG, "", 0, 0);
    test_ws_err(&e);

    T_ERR("ping of 126 bytes", T_SERVER, T_MAX, 2, 1002,
          "control frame too long");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PING, pay, 126, 1);
    test_ws_err(&e);

    T_ERR("close of 127 bytes (64-bit)", T_SERVER, T_MAX, 2, 1002,
          "control frame too long");
    memset(ext, 0, 8);
    ext[7] = 127;
    test_frame_raw(&e.in, 0x88, 127, ext, 8, pay, 127, 1);
    test_ws_err(&e);

    T_ERR("unmasked client frame", T_SERVER, T_MAX, 2, 1002,
          "client frame not masked");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "hi", 2, 0);
    test_ws_err(&e);

    T_ERR("unmasked client ping", T_SERVER, T_MAX, 2, 1002,
          "client frame not masked");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PING, "", 0, 0);
    test_ws_err(&e);

    T_ERR("masked server frame", T_CLIENT, T_MAX, 2, 1002,
          "server frame masked");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_BINARY, "hi", 2, 1);
    test_ws_err(&e);

    T_ERR("continuation first", T_SERVER, T_MAX, 2, 1002,
          "continuation without message");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CONT, "hi", 2, 1);
    test_ws_err(&e);

    T_ERR("continuation after a whole message", T_SERVER, T_MAX, 8 + 2, 1002,
          "continuation without message");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "hi", 2, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CONT, "hi", 2, 1);
    test_ws_err(&e);

    T_ERR("text inside fragmented text", T_SERVER, T_MAX, 8 + 2, 1002,
          "new message inside fragmented one");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, "hi", 2, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "hi", 2, 1);
    test_ws_err(&e);

    T_ERR("binary inside fragmented text after ping", T_SERVER, T_MAX,
          8 + 6 + 2, 1002, "new message inside fragmented one");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, "hi", 2, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PING, "", 0, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_BINARY, "hi", 2, 1);
    test_ws_err(&e);

    T_ERR("64-bit length with top bit", T_SERVER, T_MAX, 10, 1002,
          "invalid frame length");
    memset(ext, 0, 8);
    ext[0] = 0x80;
    ext[7] = 1;
    test_frame_raw(&e.in, 0x82, 127, ext, 8, "x", 1, 1);
    test_ws_err(&e);

    T_ERR("too big, 7-bit", T_SERVER, 100, 2, 1009, "message too big");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, pay, 101, 1);
    test_ws_err(&e);

    T_ERR("too big, 16-bit", T_SERVER, 100, 4, 1009, "message too big");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_BINARY, pay, 200, 1);
    test_ws_err(&e);

    T_ERR("too big, 64-bit", T_CLIENT, 100, 10, 1009, "message too big");
    memset(ext, 0xff, 8);
    ext[0] = 0x7f;
    test_frame_raw(&e.in, 0x82, 127, ext, 8, NULL, 0, 0);
    test_ws_err(&e);

    T_ERR("too big, fragmented", T_SERVER, 100, 6 + 60 + 2, 1009,
          "message too big");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, pay, 60, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CONT, pay, 41, 1);
    test_ws_err(&e);

    T_ERR("too big, zero max", T_SERVER, 0, 2, 1009, "message too big");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_BINARY, "x", 1, 1);
    test_ws_err(&e);

    T_ERR("invalid UTF-8, whole", T_SERVER, T_MAX, 6 + 1, 1007,
          "invalid UTF-8 in text");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "\xc0\x80", 2, 1);
    test_ws_err(&e);

    T_ERR("invalid UTF-8, detected early", T_SERVER, T_MAX, 6 + 3, 1007,
          "invalid UTF-8 in text");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, "ab\xff" "cdefghij", 11, 1);
    test_ws_err(&e);

    T_ERR("invalid UTF-8, surrogate early", T_SERVER, T_MAX, 6 + 4, 1007,
          "invalid UTF-8 in text");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "ab\xed\xa0\x80" "cdef", 9, 1);
    test_ws_err(&e);

    T_ERR("invalid UTF-8 in continuation", T_SERVER, T_MAX,
          6 + 2 + 6 + 1, 1007, "invalid UTF-8 in text");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, "\xe2\x82", 2, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CONT, "\x28", 1, 1);
    test_ws_err(&e);

    T_ERR("truncated UTF-8 at end", T_SERVER, T_MAX, 6 + 4, 1007,
          "invalid UTF-8 in text");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "ab\xe2\x82", 4, 1);
    test_ws_err(&e);

    T_ERR("truncated UTF-8 at end of fragments", T_SERVER, T_MAX,
          6 + 1 + 6 + 1, 1007, "invalid UTF-8 in text");
    test_frame(&e.in, 0, NGX_VOICE_WS_OP_TEXT, "\xf0", 1, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CONT, "\x9f", 1, 1);
    test_ws_err(&e);

    T_ERR("close payload of 1 byte", T_SERVER, T_MAX, 7, 1002,
          "close payload of 1 byte");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_CLOSE, "\x03", 1, 1);
    test_ws_err(&e);

    T_ERR("close code 1005", T_SERVER, T_MAX, 8, 1002, "invalid close code");
    test_close_frame(&e.in, 1005, "", 1);
    test_ws_err(&e);

    T_ERR("close code 1006", T_CLIENT, T_MAX, 4, 1002, "invalid close code");
    test_close_frame(&e.in, 1006, "", 0);
    test_ws_err(&e);

    T_ERR("close code 999", T_SERVER, T_MAX, 10, 1002, "invalid close code");
    test_close_frame(&e.in, 999, "xx", 1);
    test_ws_err(&e);

    T_ERR("close code 5000", T_SERVER, T_MAX, 8, 1002, "invalid close code");
    test_close_frame(&e.in, 5000, "", 1);
    test_ws_err(&e);

    T_ERR("close reason not UTF-8", T_SERVER, T_MAX, 11, 1007,
          "invalid UTF-8 in close reason");
    test_close_frame(&e.in, 1000, "a\xc3(", 1);
    test_ws_err(&e);

    /* errors after valid messages: the messages come first */

    T_ERR("error after messages", T_SERVER, T_MAX, 7 + 6 + 2, 1002,
          "reserved bits set");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "a", 1, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PONG, "", 0, 1);
    test_frame_raw(&e.in, 0x91, 0, NULL, 0, NULL, 0, 1);
    test_ws_err(&e);

    /* a 3000-byte message is refused from its header alone */

    T_ERR("too big, only the header fed", T_SERVER, 2999, 4, 1009,
          "message too big");
    memset(ext, 0, 8);
    ext[0] = 3000 >> 8;
    ext[1] = 3000 & 0xff;
    test_frame_raw(&e.in, 0x82, 126, ext, 2, NULL, 0, 1);
    test_ws_err(&e);

    /* with max_msg 0, ping and pong still pass: control frames are exempt */

    T_ERR("control frames ignore max_msg", T_SERVER, 0, 9 + 6 + 2, 1009,
          "message too big");
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PING, "abc", 3, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_PONG, "", 0, 1);
    test_frame(&e.in, 1, NGX_VOICE_WS_OP_TEXT, "x", 1, 1);
    test_ws_err(&e);
}


/*
 * Checks an error case: the whole input and byte by byte feeding fail
 * with the expected code and text, and so does feeding only the first
 * detect_at bytes (the error is found as early as it is certain), while
 * detect_at - 1 bytes do not fail yet.
 */

static void
test_ws_err(test_ws_err_t *e)
{
    size_t      i, n, *cuts;
    char        exp[128];
    test_buf_t  got;

    snprintf(exp, sizeof(exp), "F%u:%s", e->code, e->text);

    memset(&got, 0, sizeof(test_buf_t));
    test_run(e->role, e->max_msg, 0, e->in.p, e->in.len, NULL, 0, &got);

    n = strlen(exp);
    ok(got.len >= n && memcmp(got.p + got.len - n, exp, n) == 0,
       "%s: fails with %u \"%s\"", e->name, e->code, e->text);

    if (got.len < n || memcmp(got.p + got.len - n, exp, n) != 0) {
        tap_diag("got \"%.*s\"", (int) got.len, got.p);
    }

    test_buf_free(&got);

    n = e->in.len - 1;
    cuts = malloc((n ? n : 1) * sizeof(size_t));
    if (cuts == NULL) {
        abort();
    }

    for (i = 0; i < n; i++) {
        cuts[i] = i + 1;
    }

    test_run(e->role, e->max_msg, 0, e->in.p, e->in.len, cuts, n, &got);
    n = strlen(exp);
    ok(got.len >= n && memcmp(got.p + got.len - n, exp, n) == 0,
       "%s: byte by byte", e->name);
    test_buf_free(&got);
    free(cuts);

    if (e->detect_at <= e->in.len) {
        test_run(e->role, e->max_msg, 0, e->in.p, e->detect_at, NULL, 0,
                 &got);
        ok(got.len >= n && memcmp(got.p + got.len - n, exp, n) == 0,
           "%s: detected after %zu bytes", e->name, e->detect_at);
        test_buf_free(&got);

        test_run(e->role, e->max_msg, 0, e->in.p, e->detect_at - 1, NULL, 0,
                 &got);
        ok(got.len >= 1 && got.p[got.len - 1] == 'A',
           "%s: not failed after %zu bytes", e->name, e->detect_at - 1);
        test_buf_free(&got);
    }

    test_buf_free(&e->in);
}


typedef struct {
    const char  *s;
    size_t       len;
    int          valid;
} test_utf8_t;


#define T_U(s, v)  { s, sizeof(s) - 1, v }

static const test_utf8_t  test_utf8_vectors[] = {
    T_U("", 1),
    T_U("a", 1),
    T_U("\x7f", 1),
    T_U("\xc2\x80", 1),
    T_U("\xdf\xbf", 1),
    T_U("\xe0\xa0\x80", 1),
    T_U("\xe2\x82\xac", 1),
    T_U("\xed\x9f\xbf", 1),
    T_U("\xee\x80\x80", 1),
    T_U("\xef\xbf\xbf", 1),
    T_U("\xf0\x90\x80\x80", 1),
    T_U("\xf0\x9f\x98\x80", 1),
    T_U("\xf4\x8f\xbf\xbf", 1),
    T_U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1),
    T_U("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4"
        "\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", 1),
    T_U("\xc0\x80", 0),
    T_U("\xc1\xbf", 0),
    T_U("\xe0\x80\x80", 0),
    T_U("\xe0\x9f\xbf", 0),
    T_U("\xed\xa0\x80", 0),
    T_U("\xed\xbf\xbf", 0),
    T_U("\xf0\x80\x80\x80", 0),
    T_U("\xf0\x8f\xbf\xbf", 0),
    T_U("\xf4\x90\x80\x80", 0),
    T_U("\xf5\x80\x80\x80", 0),
    T_U("\xf8\x88\x80\x80\x80", 0),
    T_U("\xfe", 0),
    T_U("\xff", 0),
    T_U("\x80", 0),
    T_U("\xbf", 0),
    T_U("\xc2", 0),
    T_U("\xe2\x82", 0),
    T_U("\xf0\x9f\x98", 0),
    T_U("a\xc2", 0),
    T_U("\xc2\x41", 0),
    T_U("\xe2\x28\xa1", 0),
    T_U("\xe2\x82\x28", 0),
    T_U("\xf0\x28\x8c\xbc", 0),
    T_U("\xf0\x9f\x98\x80\x80", 0),
    T_U("abcdefgh\xc0\x80", 0),
    T_U("abcdefghijklmnopqrstuvw\xed\xa0\x80xyz", 0)
};


static void
test_ws_utf8(void)
{
    size_t          i, k, errors, len;
    unsigned        a, b, c;
    test_buf_t      in, exp, got;
    unsigned char   s[48];

    for (i = 0; i < sizeof(test_utf8_vectors) / sizeof(test_utf8_t); i++) {
        const test_utf8_t  *v = &test_utf8_vectors[i];

        is(ngx_voice_utf8_valid((const unsigned char *) v->s, v->len),
           v->valid, "utf8 vector %zu is %s", i,
           v->valid ? "valid" : "invalid");

        /* through the reader: a text frame fed whole and byte by byte */

        memset(&in, 0, sizeof(test_buf_t));
        memset(&exp, 0, sizeof(test_buf_t));
        memset(&got, 0, sizeof(test_buf_t));

        test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, v->s, v->len, 1);

        if (v->valid) {
            test_expect(&exp, NGX_VOICE_WS_OP_TEXT, v->s, v->len, 0, NULL, 0);
            test_buf_add(&exp, "A", 1);

        } else {
            test_buf_add(&exp, "F1007:invalid UTF-8 in text", 27);
        }

        test_run(T_SERVER, T_MAX, 0, in.p, in.len, NULL, 0, &got);
        is_mem(got.p, got.len, exp.p, exp.len, "utf8 vector %zu in a frame",
               i);
        test_buf_free(&got);

        /* split into one fragment per byte */

        test_buf_free(&in);

        for (k = 0; k < v->len || k == 0; k++) {
            test_frame(&in, k + 1 >= v->len,
                       k ? NGX_VOICE_WS_OP_CONT : NGX_VOICE_WS_OP_TEXT,
                       v->s + k, v->len ? 1 : 0, 1);
        }

        test_run(T_SERVER, T_MAX, 0, in.p, in.len, NULL, 0, &got);
        is_mem(got.p, got.len, exp.p, exp.len,
               "utf8 vector %zu one byte per fragment", i);

        test_buf_free(&got);
        test_buf_free(&in);
        test_buf_free(&exp);
    }

    /* exhaustive 1..3 byte sequences against a reference decoder */

    errors = 0;

    for (a = 0; a < 256; a++) {
        s[0] = (unsigned char) a;

        if (ngx_voice_utf8_valid(s, 1) != test_utf8_ref(s, 1)) {
            errors++;
        }

        for (b = 0; b < 256; b++) {
            s[1] = (unsigned char) b;

            if (ngx_voice_utf8_valid(s, 2) != test_utf8_ref(s, 2)) {
                errors++;
            }

            if (a < 0xe0 || a > 0xf4) {
                continue;
            }

            for (c = 0; c < 256; c++) {
                s[2] = (unsigned char) c;

                if (ngx_voice_utf8_valid(s, 3) != test_utf8_ref(s, 3)) {
                    errors++;
                }

                if (a < 0xf0) {
                    continue;
                }

                s[3] = 0x80;

                if (ngx_voice_utf8_valid(s, 4) != test_utf8_ref(s, 4)) {
                    errors++;
                }

                s[3] = 0xbf;

                if (ngx_voice_utf8_valid(s, 4) != test_utf8_ref(s, 4)) {
                    errors++;
                }

                s[3] = 0x7f;

                if (ngx_voice_utf8_valid(s, 4) != test_utf8_ref(s, 4)) {
                    errors++;
                }
            }
        }
    }

    is(errors, 0, "exhaustive 1-3 byte UTF-8 agrees with the reference");

    /* the ASCII fast path: a bad byte at every position and alignment */

    errors = 0;

    for (len = 1; len < 40; len++) {
        for (k = 0; k < len; k++) {
            memset(s, 'a', len);
            s[k] = 0x80;

            if (ngx_voice_utf8_valid(s, len)) {
                errors++;
            }

            if (k + 2 <= len) {
                s[k] = 0xc3;
                s[k + 1] = 0xa9;

                if (!ngx_voice_utf8_valid(s, len)) {
                    errors++;
                }
            }
        }
    }

    is(errors, 0, "bad or good bytes at every offset of ASCII runs");
}


/* a plain decoder: the code point must be in range and minimally encoded */

static int
test_utf8_ref(const unsigned char *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  cp, min;

    for (i = 0; i < len; /* void */) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 1;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 2;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 3;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (i + n >= len) {
            return 0;
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }

        i += n + 1;
    }

    return 1;
}


static void
test_ws_zero_copy(void)
{
    int                     rc;
    size_t                  consumed;
    test_buf_t              in;
    unsigned char          *piece;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    memset(&in, 0, sizeof(test_buf_t));
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "zero copy", 9, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, "second", 6, 1);

    piece = malloc(in.len);
    if (piece == NULL) {
        abort();
    }

    memcpy(piece, in.p, in.len);

    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);

    rc = ngx_voice_ws_read(&r, piece, in.len, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "zero copy: message");
    is(consumed, 6 + 9, "zero copy: consumed the first frame only");
    ok(msg.data == piece + 6, "zero copy: data points into the input");
    is_mem(msg.data, msg.len, "zero copy", 9, "zero copy: unmasked in place");
    ok(r.buf == NULL, "zero copy: no buffer allocated");

    rc = ngx_voice_ws_read(&r, piece + consumed, in.len - consumed,
                           &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "zero copy: second message");
    ok(msg.data == piece + 15 + 6, "zero copy: second in place");
    is(consumed, 12, "zero copy: consumed the second frame");

    rc = ngx_voice_ws_read(&r, piece + in.len, 0, &consumed, &msg);
    is(rc, NGX_VOICE_WS_AGAIN, "zero copy: then AGAIN");

    ngx_voice_ws_reader_free(&r);

    /* header split from a wholly present payload: still in place */

    memcpy(piece, in.p, in.len);
    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);

    rc = ngx_voice_ws_read(&r, piece, 3, &consumed, &msg);
    is(rc, NGX_VOICE_WS_AGAIN, "split header: AGAIN");
    is(consumed, 3, "split header: consumed 3");

    rc = ngx_voice_ws_read(&r, piece + 3, in.len - 3, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "split header: message");
    ok(msg.data == piece + 6, "split header: payload in place");
    is_mem(msg.data, msg.len, "zero copy", 9, "split header: data");

    ngx_voice_ws_reader_free(&r);

    /* split payload: copied to the buffer */

    memcpy(piece, in.p, in.len);
    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);

    rc = ngx_voice_ws_read(&r, piece, 10, &consumed, &msg);
    is(rc, NGX_VOICE_WS_AGAIN, "split payload: AGAIN");
    rc = ngx_voice_ws_read(&r, piece + 10, in.len - 10, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "split payload: message");
    ok(msg.data == r.buf && r.buf != NULL, "split payload: from the buffer");
    is_mem(msg.data, msg.len, "zero copy", 9, "split payload: data");
    is(consumed, 5, "split payload: consumed the rest of the frame");

    ngx_voice_ws_reader_free(&r);
    ok(r.buf == NULL && r.cap == 0, "reader_free releases the buffer");
    ngx_voice_ws_reader_free(&r);

    free(piece);
    test_buf_free(&in);
}


static void
test_ws_buffer(void)
{
    int                     rc;
    size_t                  consumed, i, cap;
    test_buf_t              in;
    unsigned char          *big;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    big = malloc(100000);
    if (big == NULL) {
        abort();
    }

    for (i = 0; i < 100000; i++) {
        big[i] = (unsigned char) (i * 13);
    }

    memset(&in, 0, sizeof(test_buf_t));
    test_frame(&in, 1, NGX_VOICE_WS_OP_BINARY, big, 100000, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "small", 5, 1);

    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 1024);
    ok(r.buf == NULL && r.cap == 0, "buffer: nothing allocated at init");

    rc = ngx_voice_ws_read(&r, in.p, 5000, &consumed, &msg);
    is(rc, NGX_VOICE_WS_AGAIN, "buffer: big message, first part");
    rc = ngx_voice_ws_read(&r, in.p + 5000, in.len - 5000, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: big message");
    is_mem(msg.data, msg.len, big, 100000, "buffer: big message data");
    ok(r.cap >= 100000 && r.cap <= 2 * 100000,
       "buffer: grown geometrically (%zu)", r.cap);

    rc = ngx_voice_ws_read(&r, in.p + 5000 + consumed,
                           in.len - 5000 - consumed, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: small message after");
    is(r.cap, 1024, "buffer: shrunk back to min_cap");
    ok(r.buf != NULL, "buffer: min_cap kept allocated");

    ngx_voice_ws_reader_free(&r);
    test_buf_free(&in);

    /* 4 * min_cap is kept */

    test_frame(&in, 0, NGX_VOICE_WS_OP_BINARY, big, 1000, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, big + 1000, 2000, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "small", 5, 1);

    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 1024);

    rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: fragmented 3000");
    is_mem(msg.data, msg.len, big, 3000, "buffer: fragmented 3000 data");
    cap = r.cap;
    is(cap, 4096, "buffer: 1024 -> 2048 -> 4096");

    rc = ngx_voice_ws_read(&r, in.p + consumed, in.len - consumed,
                           &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: next message");
    is(r.cap, 4096, "buffer: 4 * min_cap not shrunk");

    ngx_voice_ws_reader_free(&r);
    test_buf_free(&in);

    /* never beyond max_msg, and min_cap is clamped to it */

    test_frame(&in, 0, NGX_VOICE_WS_OP_BINARY, big, 2500, 1);
    test_frame(&in, 1, NGX_VOICE_WS_OP_CONT, big + 2500, 2500, 1);

    ngx_voice_ws_reader_init(&r, T_SERVER, 5000, 0);
    rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: message of max_msg");
    is(r.cap, 5000, "buffer: capacity capped at max_msg");
    is_mem(msg.data, msg.len, big, 5000, "buffer: max_msg data");
    ngx_voice_ws_reader_free(&r);

    ngx_voice_ws_reader_init(&r, T_SERVER, 100, 4096);
    is(r.min_cap, 100, "min_cap clamped to max_msg");
    ngx_voice_ws_reader_free(&r);

    /* min_cap 0: the buffer is released after use */

    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);
    rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
    is(rc, NGX_VOICE_WS_MSG, "buffer: min_cap 0 message");
    rc = ngx_voice_ws_read(&r, in.p + in.len, 0, &consumed, &msg);
    is(rc, NGX_VOICE_WS_AGAIN, "buffer: min_cap 0 next read");
    ok(r.buf == NULL && r.cap == 0, "buffer: min_cap 0 released");
    ngx_voice_ws_reader_free(&r);

    test_buf_free(&in);
    free(big);
}


static void
test_ws_failed_stays(void)
{
    int                     rc;
    size_t                  consumed;
    test_buf_t              in;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    memset(&in, 0, sizeof(test_buf_t));
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "ok", 2, 0);
    test_frame(&in, 1, NGX_VOICE_WS_OP_TEXT, "ok", 2, 1);

    ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);

    rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
    is(rc, NGX_VOICE_WS_FAIL, "unmasked: FAIL");
    is(r.error, 1002, "unmasked: 1002");
    is_str(r.error_text, "client frame not masked", "unmasked: error text");

    rc = ngx_voice_ws_read(&r, in.p + 4, in.len - 4, &consumed, &msg);
    is(rc, NGX_VOICE_WS_FAIL, "valid frame after FAIL: still FAIL");
    is(consumed, 0, "valid frame after FAIL: nothing consumed");
    is(r.error, 1002, "valid frame after FAIL: error kept");

    ngx_voice_ws_reader_free(&r);
    test_buf_free(&in);
}


static void
test_ws_headers(void)
{
    int                     rc;
    size_t                  i, n, consumed, errors;
    test_buf_t              in;
    unsigned char           h[NGX_VOICE_WS_MAX_HEADER], *payload;
    ngx_voice_ws_msg_t      msg;
    ngx_voice_ws_reader_t   r;

    static const unsigned char  key[4] = { 1, 2, 3, 4 };
    static const uint64_t       lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
                                           70000 };

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_TEXT, 1, 5, NULL);
    is_mem(h, n, "\x81\x05", 2, "header: text 5 unmasked");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_BINARY, 0, 125, key);
    is_mem(h, n, "\x02\xfd\x01\x02\x03\x04", 6, "header: binary 125 masked");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_TEXT, 1, 126, NULL);
    is_mem(h, n, "\x81\x7e\x00\x7e", 4, "header: 126 uses 16 bits");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_CLOSE, 1, 65535, NULL);
    is_mem(h, n, "\x88\x7e\xff\xff", 4, "header: 65535 uses 16 bits");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_CONT, 1, 65536, key);
    is_mem(h, n, "\x80\xff\x00\x00\x00\x00\x00\x01\x00\x00\x01\x02\x03\x04",
           14, "header: 65536 uses 64 bits, masked");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_BINARY, 1,
                            0x0102030405060708ULL, NULL);
    is_mem(h, n, "\x82\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10,
           "header: 64-bit byte order");

    n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_PONG, 1, 0, NULL);
    is_mem(h, n, "\x8a\x00", 2, "header: empty pong");

    errors = 0;

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        if (ngx_voice_ws_header(h, 2, 1, lens[i], NULL)
            != ngx_voice_ws_header_len(lens[i], 0)
            || ngx_voice_ws_header(h, 2, 1, lens[i], key)
               != ngx_voice_ws_header_len(lens[i], 1))
        {
            errors++;
        }
    }

    is(errors, 0, "header_len equals what header writes");
    is(ngx_voice_ws_header_len(1ULL << 40, 1), 14, "header_len max");

    /* built frames read back by both roles */

    payload = malloc(70000);
    if (payload == NULL) {
        abort();
    }

    memset(payload, 'x', 70000);
    memset(&in, 0, sizeof(test_buf_t));

    for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {

        n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_BINARY, 1, lens[i], key);
        test_buf_add(&in, h, n);
        test_buf_add(&in, payload, (size_t) lens[i]);
        ngx_voice_ws_mask(in.p + n, (size_t) lens[i], key, 0);

        ngx_voice_ws_reader_init(&r, T_SERVER, T_MAX, 0);
        rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
        ok(rc == NGX_VOICE_WS_MSG && msg.len == lens[i]
           && consumed == in.len
           && (msg.len == 0 || msg.data[msg.len - 1] == 'x'),
           "masked frame of %zu read back", (size_t) lens[i]);
        ngx_voice_ws_reader_free(&r);
        in.len = 0;

        n = ngx_voice_ws_header(h, NGX_VOICE_WS_OP_TEXT, 1, lens[i], NULL);
        test_buf_add(&in, h, n);
        test_buf_add(&in, payload, (size_t) lens[i]);

        ngx_voice_ws_reader_init(&r, T_CLIENT, T_MAX, 0);
        rc = ngx_voice_ws_read(&r, in.p, in.len, &consumed, &msg);
        ok(rc == NGX_VOICE_WS_MSG && msg.len == lens[i]
           && msg.opcode == NGX_VOICE_WS_OP_TEXT && consumed == in.len,
           "unmasked frame of %zu read back", (size_t) lens[i]);
        ngx_voice_ws_reader_free(&r);
        in.len = 0;
    }

    test_buf_free(&in);
    free(payload);
}


static void
test_ws_mask(void)
{
    size_t          len, i, errors;
    uint64_t        off;
    unsigned char   data[64], ref[64];

    static const unsigned char  key[4] = { 0x37, 0xfa, 0x21, 0x3d };

    errors = 0;

    for (off = 0; off < 8; off++) {
        for (len = 0; len <= 40; len++) {
            for (i = 0; i < len; i++) {
                data[i] = (unsigned char) (i * 31 + off);
                ref[i] = data[i] ^ key[(off + i) & 3];
            }

            ngx_voice_ws_mask(data, len, key, off);

            if (memcmp(data, ref, len) != 0) {
                errors++;
            }
        }
    }

    is(errors, 0, "mask equals the bytewise definition at all offsets");

    /* masking in pieces equals masking at once */

    for (i = 0; i < 64; i++) {
        data[i] = (unsigned char) i;
        ref[i] = (unsigned char) i;
    }

    ngx_voice_ws_mask(ref, 64, key, 0);
    ngx_voice_ws_mask(data, 5, key, 0);
    ngx_voice_ws_mask(data + 5, 17, key, 5);
    ngx_voice_ws_mask(data + 22, 42, key, 22);
    is_mem(data, 64, ref, 64, "mask in pieces with offsets");

    ngx_voice_ws_mask(data, 64, key, 0);

    for (i = 0; i < 64 && data[i] == i; i++) { /* void */ }

    is(i, 64, "mask twice is the identity");

    ngx_voice_ws_mask(data, 3, key, (1ULL << 40) + 1);
    ok(data[0] == (0 ^ key[1]) && data[1] == (1 ^ key[2])
       && data[2] == (2 ^ key[3]), "mask with a 64-bit offset");
}


static void
test_ws_accept(void)
{
    unsigned char   out[NGX_VOICE_WS_ACCEPT_LEN + 1];
    unsigned char   key[200];

    /* RFC 6455 1.3 */

    out[NGX_VOICE_WS_ACCEPT_LEN] = '#';
    ngx_voice_ws_accept(out, (const unsigned char *) "dGhlIHNhbXBsZSBub25jZQ==",
                        24);
    is_mem(out, NGX_VOICE_WS_ACCEPT_LEN, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28,
           "accept: RFC 6455 example");
    is(out[NGX_VOICE_WS_ACCEPT_LEN], '#', "accept: writes 28 bytes only");

    memset(key, 'k', sizeof(key));
    ngx_voice_ws_accept(out, key, sizeof(key));
    is_mem(out, NGX_VOICE_WS_ACCEPT_LEN, "HXr7Nbki1tHdEVpq+a7G7IV4VJU=", 28,
           "accept: 200-byte key");
}


static void
test_ws_close_codes(void)
{
    size_t     i;
    unsigned   code, errors, exp;
    test_buf_t in, got;

    static const struct {
        unsigned  code;
        int       valid;
    } codes[] = {
        { 0, 0 }, { 999, 0 }, { 1000, 1 }, { 1001, 1 }, { 1002, 1 },
        { 1003, 1 }, { 1004, 0 }, { 1005, 0 }, { 1006, 0 }, { 1007, 1 },
        { 1008, 1 }, { 1009, 1 }, { 1010, 1 }, { 1011, 1 }, { 1012, 1 },
        { 1013, 1 }, { 1014, 1 }, { 1015, 0 }, { 1016, 0 }, { 2000, 0 },
        { 2999, 0 }, { 3000, 1 }, { 3999, 1 }, { 4000, 1 }, { 4999, 1 },
        { 5000, 0 }, { 65535, 0 }
    };

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        is(ngx_voice_ws_close_code_valid(codes[i].code), codes[i].valid,
           "close code %u %s", codes[i].code,
           codes[i].valid ? "valid" : "invalid");

        memset(&in, 0, sizeof(test_buf_t));
        memset(&got, 0, sizeof(test_buf_t));

        test_close_frame(&in, codes[i].code, "r", 1);
        test_run(T_SERVER, T_MAX, 0, in.p, in.len, NULL, 0, &got);

        ok(codes[i].valid ? (got.p[0] == 'M' && got.p[got.len - 1] == 'A')
                          : (got.len == 24
                             && memcmp(got.p, "F1002:invalid close code", 24)
                                == 0),
           "close frame with %u %s", codes[i].code,
           codes[i].valid ? "accepted" : "refused with 1002");

        test_buf_free(&in);
        test_buf_free(&got);
    }

    errors = 0;

    for (code = 0; code < 70000; code++) {
        exp = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
              || (code >= 3000 && code <= 4999);

        if ((unsigned) ngx_voice_ws_close_code_valid(code) != exp) {
            errors++;
        }
    }

    is(errors, 0, "close codes 0..69999 agree with the table");
}
