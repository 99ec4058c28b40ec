/*
 * Copyright (C) ngx_voice authors
 */


#include <stdarg.h>
#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_sse.h"


/* is_str() for arrays and literals, which cannot be NULL */
#define is_text(got, exp, ...)                                                \
    is_mem(got, strlen(got), exp, strlen(exp), __VA_ARGS__)


#define T_TRACE    16384


typedef struct {
    char      s[T_TRACE];
    size_t    len;
} test_sse_trace_t;


static void test_sse_add(test_sse_trace_t *t, const char *fmt, ...)
    TAP_PRINTF(2, 3);
static void test_sse_run(const char *in, size_t len, size_t max_event,
    const size_t *cuts, size_t ncuts, test_sse_trace_t *t);
static void test_sse_splits(const char *name, const char *in, size_t len,
    size_t max_event, const char *expected);


static test_sse_trace_t  test_sse_whole, test_sse_got;


#define T(s)  s, sizeof(s) - 1


void
test_sse(void)
{
    tap_diag("sse");

    test_sse_splits("cerebras chunks",
        T("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":"
          "\"Sure, \"}}]}\n\ndata: [DONE]\n\n"), 4096,
        "[message|{\"choices\":[{\"index\":0,\"delta\":{\"content\":"
        "\"Sure, \"}}]}|]"
        "[message|[DONE]|]AGAIN");

    test_sse_splits("CRLF, CR, LF, no space, multi-line",
        T("data:a\r\ndata: b\rdata:  c\n\r\ndata\n\n"), 4096,
        "[message|a\nb\n c|][message||]AGAIN");

    test_sse_splits("event, id, retry, comments, BOM",
        T("\xef\xbb\xbf: keep-alive comment\nevent: error\nid: 42\n"
          "retry: 1500\nretry: x\nunknown: 1\ndata: {\"error\":1}\n\n"
          "data: next\n\n"), 4096,
        "[error|{\"error\":1}|42][message|next|42]AGAIN retry=1500");

    test_sse_splits("blank line without data dispatches nothing",
        T("event: ping\n\n\n: c\n\ndata: x\n\n"), 4096,
        "[message|x|]AGAIN");

    test_sse_splits("BOM only at the start, incomplete event dropped",
        T("\xef\xbb\xbf\xef\xbb\xbf" "data: a\n\ndata: never"), 4096,
        "AGAIN");

    test_sse_splits("partial BOM is line content",
        T("\xef\xbbxdata: a\n\ndata: b\n\n"), 4096, "[message|b|]AGAIN");

    test_sse_splits("exactly max_event",
        T("data: 0123\ndata: 45678\n\n"), 10,
        "[message|0123\n45678|]AGAIN");

    test_sse_splits("over max_event",
        T("data: 0123\ndata: 456789\n\n"), 10, "ERROR event too large");

    test_sse_splits("long comment does not count",
        T(": 0123456789012345678901234567890123456789\ndata: a\n\n"), 4,
        "[message|a|]AGAIN");

    test_sse_splits("too long event type",
        T("event: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaa\ndata: x\n\n"), 4096, "ERROR event type too long");

    test_sse_splits("id with NUL ignored",
        T("id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"), 4096,
        "[message|a|1][message|b|1]AGAIN");
}


static void
test_sse_add(test_sse_trace_t *t, const char *fmt, ...)
{
    int      n;
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(t->s + t->len, T_TRACE - t->len, fmt, args);
    va_end(args);

    if (n < 0 || (size_t) n >= T_TRACE - t->len) {
        abort();
    }

    t->len += n;
}


static void
test_sse_run(const char *in, size_t len, size_t max_event, const size_t *cuts,
    size_t ncuts, test_sse_trace_t *t)
{
    int                      rc;
    size_t                   i, start, end, off, consumed, n;
    unsigned char           *piece;
    ngx_voice_sse_event_t    ev;
    ngx_voice_sse_parser_t   p;

    t->len = 0;
    t->s[0] = '\0';
    rc = NGX_VOICE_SSE_AGAIN;

    if (ngx_voice_sse_init(&p, max_event) != 0) {
        abort();
    }

    start = 0;

    for (i = 0; i <= ncuts && rc != NGX_VOICE_SSE_ERROR; i++) {
        end = (i < ncuts) ? cuts[i] : len;
        n = end - start;

        piece = malloc(n ? n : 1);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, in + start, n);
        off = 0;

        for ( ;; ) {
            rc = ngx_voice_sse_parse(&p, piece + off, n - off, &consumed,
                                     &ev);
            off += consumed;

            if (rc != NGX_VOICE_SSE_EVENT) {
                break;
            }

            test_sse_add(t, "[%s|%.*s|%s]", ev.type, (int) ev.len, ev.data,
                         ev.id);
        }

        free(piece);
        start = end;
    }

    if (rc == NGX_VOICE_SSE_ERROR) {
        test_sse_add(t, "ERROR %s", p.error);

    } else {
        test_sse_add(t, "AGAIN");
    }

    if (p.retry) {
        test_sse_add(t, " retry=%llu", (unsigned long long) p.retry);
    }

    ngx_voice_sse_free(&p);
}


static void
test_sse_splits(const char *name, const char *in, size_t len,
    size_t max_event, const char *expected)
{
    size_t   i, bad, first_bad, cut;
    size_t  *all;

    test_sse_run(in, len, max_event, NULL, 0, &test_sse_whole);
    is_text(test_sse_whole.s, expected, "%s: whole", name);

    all = malloc((len ? len : 1) * sizeof(size_t));
    if (all == NULL) {
        abort();
    }

    for (i = 0; i + 1 < len; i++) {
        all[i] = i + 1;
    }

    test_sse_run(in, len, max_event, all, len ? len - 1 : 0, &test_sse_got);
    is_text(test_sse_got.s, test_sse_whole.s, "%s: byte by byte", name);
    free(all);

    bad = 0;
    first_bad = 0;

    for (cut = 1; cut < len; cut++) {
        test_sse_run(in, len, max_event, &cut, 1, &test_sse_got);

        if (strcmp(test_sse_got.s, test_sse_whole.s) != 0 && bad++ == 0) {
            first_bad = cut;
        }
    }

    if (!ok(bad == 0, "%s: all %zu 2-way splits", name, len ? len - 1 : 0))
    {
        tap_diag("%zu differ, first at %zu", bad, first_bad);
    }
}
