/*
 * Copyright (C) ngx_voice authors
 */


#include <stdint.h>
#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_http_parse.h"


/* is_str() for arrays and literals, which cannot be NULL */
#define is_text(got, exp, ...)                                                \
    is_mem(got, strlen(got), exp, strlen(exp), __VA_ARGS__)


#define T_TRACE    65536


typedef struct {
    char      s[T_TRACE];
    size_t    len;
} test_trace_t;


static void test_add(test_trace_t *t, const char *fmt, ...)
    TAP_PRINTF(2, 3);
static void test_http_run(const char *in, size_t len, unsigned head,
    size_t max_header, const size_t *cuts, size_t ncuts, test_trace_t *t);
static void test_http_splits(const char *name, const char *in, size_t len,
    unsigned head, const char *expected);
static void test_http_responses(void);
static void test_http_errors(void);
static void test_http_eof(void);
static void test_http_lookup(void);
static void test_http_request(void);


#include <stdarg.h>


static test_trace_t  test_whole, test_got;


void
test_http_parse(void)
{
    tap_diag("http_parse");

    test_http_responses();
    test_http_errors();
    test_http_eof();
    test_http_lookup();
    test_http_request();
}


static void
test_add(test_trace_t *t, const char *fmt, ...)
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


/*
 * Feeds the input cut at the given offsets (each piece in its own heap
 * block) and records the events: "H name=value|", "S status version body
 * keepalive|", body bytes between '<' and '>' with split boundaries
 * merged, "D@offset|" and "E error|"; then "eof=rc".
 */

static void
test_http_run(const char *in, size_t len, unsigned head, size_t max_header,
    const size_t *cuts, size_t ncuts, test_trace_t *t)
{
    int                       rc, in_body;
    size_t                    i, start, end, off, consumed, n;
    unsigned char            *piece;
    ngx_voice_http_event_t    ev;
    ngx_voice_http_parser_t   p;

    t->len = 0;
    t->s[0] = '\0';
    in_body = 0;
    rc = NGX_VOICE_HTTP_AGAIN;

    if (ngx_voice_http_parser_init(&p, max_header) != 0) {
        abort();
    }

    p.head = head;
    start = 0;

    for (i = 0; i <= ncuts; i++) {
        end = (i < ncuts) ? cuts[i] : len;
        n = end - start;

        piece = malloc(n ? n : 1);
        if (piece == NULL) {
            abort();
        }

        memcpy(piece, in + start, n);
        off = 0;

        for ( ;; ) {
            rc = ngx_voice_http_parse(&p, piece + off, n - off, &consumed,
                                      &ev);
            off += consumed;

            if (rc == NGX_VOICE_HTTP_BODY) {
                if (!in_body) {
                    test_add(t, "<");
                    in_body = 1;
                }

                test_add(t, "%.*s", (int) ev.len, ev.data);
                continue;
            }

            if (in_body && rc != NGX_VOICE_HTTP_AGAIN) {
                test_add(t, ">");
                in_body = 0;
            }

            if (rc == NGX_VOICE_HTTP_AGAIN) {
                break;
            }

            if (rc == NGX_VOICE_HTTP_HEADER) {
                test_add(t, "H %s=%s|", ev.name, ev.value);
                continue;
            }

            if (rc == NGX_VOICE_HTTP_HEADER_DONE) {
                test_add(t, "S %u %u %u %u \"%s\"|", p.status, p.version,
                         p.body, p.keepalive, p.reason);
                continue;
            }

            if (rc == NGX_VOICE_HTTP_DONE) {
                test_add(t, "D@%zu|", start + off);

                if (p.keepalive) {
                    continue;
                }

                break;
            }

            test_add(t, "E %s|", p.error);
            break;
        }

        free(piece);

        if (rc == NGX_VOICE_HTTP_ERROR
            || (rc == NGX_VOICE_HTTP_DONE && !p.keepalive))
        {
            break;
        }

        start = end;
    }

    if (in_body) {
        test_add(t, ">");
    }

    test_add(t, "eof=%d", ngx_voice_http_eof(&p));

    ngx_voice_http_parser_free(&p);
}


static void
test_http_splits(const char *name, const char *in, size_t len,
    unsigned head, const char *expected)
{
    size_t   i, bad, first_bad, cut;
    size_t  *all;

    test_http_run(in, len, head, 8192, NULL, 0, &test_whole);
    is_text(test_whole.s, expected, "%s: whole", name);

    all = malloc((len ? len : 1) * sizeof(size_t));
    if (all == NULL) {
        abort();
    }

    for (i = 0; i + 1 < len; i++) {
        all[i] = i + 1;
    }

    test_http_run(in, len, head, 8192, all, len ? len - 1 : 0, &test_got);
    is_text(test_got.s, test_whole.s, "%s: byte by byte", name);
    free(all);

    bad = 0;
    first_bad = 0;

    for (cut = 1; cut < len; cut++) {
        test_http_run(in, len, head, 8192, &cut, 1, &test_got);

        if (strcmp(test_got.s, test_whole.s) != 0 && bad++ == 0) {
            first_bad = cut;
        }
    }

    if (!ok(bad == 0, "%s: all %zu 2-way splits", name, len ? len - 1 : 0))
    {
        tap_diag("%zu differ, first at %zu", bad, first_bad);
    }
}


#define T(s)  s, sizeof(s) - 1


static void
test_http_responses(void)
{
    test_http_splits("content-length",
        T("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          "Content-Length: 11\r\ndg-request-id: abc\r\n\r\nhello world"), 0,
        "H Content-Type=application/json|H Content-Length=11|"
        "H dg-request-id=abc|S 200 11 1 1 \"OK\"|<hello world>D@102|"
        "eof=0");

    /* SSE in chunks, an event split across chunks, extension, trailer */
    test_http_splits("chunked SSE",
        T("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
          "Transfer-Encoding: chunked\r\n\r\n"
          "11;name=\"v\"\r\ndata: {\"a\":1}\n\nda\r\n"
          "A\r\nta: [DONE]\r\n0\r\nX-Trailer: 1\r\n\r\n"), 0,
        "H Content-Type=text/event-stream|H Transfer-Encoding=chunked|"
        "S 200 11 2 1 \"OK\"|<data: {\"a\":1}\n\ndata: [DONE]>D@146|eof=0");

    test_http_splits("upgrade keeps frame bytes",
        T("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
          "\x81\x05hello"), 0,
        "H Upgrade=websocket|H Connection=Upgrade|"
        "H Sec-WebSocket-Accept=s3pPLMBiTxaQ9kYGzzhZRbK+xOo=|"
        "S 101 11 4 0 \"Switching Protocols\"|D@129|eof=0");

    test_http_splits("keep-alive back to back",
        T("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No "
          "Content\r\n\r\nHTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
          "Content-Length: 0\r\n\r\nHTTP/1.1 304 Not Modified\r\n"
          "Content-Length: 99\r\nConnection: close\r\n\r\n"), 0,
        "H Content-Length=2|S 200 11 1 1 \"OK\"|<ok>D@40|"
        "S 204 11 0 1 \"No Content\"|D@67|H Connection=keep-alive|"
        "H Content-Length=0|S 200 10 1 1 \"OK\"|D@129|H Content-Length=99|"
        "H Connection=close|S 304 11 0 0 \"Not Modified\"|D@197|eof=0");

    test_http_splits("HEAD response has no body",
        T("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), 1,
        "H Content-Length=5|S 200 11 0 1 \"OK\"|D@38|eof=0");

    test_http_splits("close-delimited, interim 100 skipped, bare LF",
        T("HTTP/1.1 100 Continue\r\nX: y\r\n\r\nHTTP/1.0 200 OK\n"
          "Server:  x  \n\nuntil close"), 0,
        "H Server=x|S 200 10 3 0 \"OK\"|<until close>eof=4");

    test_http_splits("chunked wins over Content-Length, not reusable",
        T("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
          "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 0,
        "H Content-Length=3|H Transfer-Encoding=Chunked|"
        "S 200 11 2 0 \"OK\"|<abc>D@79|eof=0");

    test_http_splits("error body, no reason, HTTP/1.0 close",
        T("HTTP/1.1 429\r\nx-ratelimit-reset-tokens-minute: 12.5\r\n"
          "Retry-After: 3\r\nContent-Length: 2\r\n\r\n{}"), 0,
        "H x-ratelimit-reset-tokens-minute=12.5|H Retry-After=3|"
        "H Content-Length=2|S 429 11 1 1 \"\"|<{}>D@92|eof=0");

    test_http_splits("chunk sizes in hex, BWS, bare LF",
        T("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "00a \t;x\n0123456789\n1F\r\n0123456789abcdef0123456789abcde"
          "\r\n0\n\n"), 0,
        "H Transfer-Encoding=chunked|S 200 11 2 1 \"OK\"|"
        "<01234567890123456789abcdef0123456789abcde>D@106|eof=0");
}


typedef struct {
    const char  *in;
    size_t       max_header;
    const char  *error;
} test_http_err_t;


static void
test_http_errors(void)
{
    size_t                    i, consumed, off;
    int                       rc;
    ngx_voice_http_event_t    ev;
    ngx_voice_http_parser_t   p;

    static const char  close204[] =
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\nX";

    static const test_http_err_t  errs[] = {
        { "HTTP/2 200 OK\r\n\r\n", 8192, "invalid status line" },
        { "HTTP/1.1 20 OK\r\n\r\n", 8192, "invalid status code" },
        { "HTTP/1.1 099 OK\r\n\r\n", 8192, "invalid status code" },
        { "HTTP/1.1 600 OK\r\n\r\n", 8192, "invalid status code" },
        { "HTTP/1.1 200OK\r\n\r\n", 8192, "invalid status code" },
        { "http/1.1 200 OK\r\n\r\n", 8192, "invalid status line" },
        { "HTTP/1.1 200 O\x01K\r\n\r\n", 8192, "invalid reason phrase" },
        { "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", 8192,
          "obsolete line folding" },
        { "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", 8192,
          "invalid header field name" },
        { "HTTP/1.1 200 OK\r\n: b\r\n\r\n", 8192,
          "invalid header field name" },
        { "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 8192,
          "invalid header field name" },
        { "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", 8192,
          "invalid header field value" },
        { "HTTP/1.1 200 OK\rX: y\r\n\r\n", 8192,
          "bare CR in response header" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 8192,
          "invalid Content-Length" },
        { "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 8192,
          "invalid Content-Length" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n"
          "\r\n", 8192, "conflicting Content-Length" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
          8192, "Content-Length overflow" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
          8192, "unsupported Transfer-Encoding" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", 8192,
          "unsupported Transfer-Encoding" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
          8192, "invalid chunk size" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
          8192, "invalid chunk size" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 x\r\n",
          8192, "invalid chunk size" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "10000000000000000\r\n", 8192, "chunk size overflow" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "1;a\x01\r\n", 8192, "invalid chunk extension" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\rx",
          8192, "bare CR in chunk size line" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "1\r\nab\r\n", 8192, "no CRLF after chunk data" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "0\r\n\rx", 8192, "bare CR in trailer section" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaa\r\n", 64, "chunk size line too long" },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "0\r\nX-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaa: b\r\n\r\n", 64, "trailer section too large" },
        { "HTTP/1.1 200 OK\r\nX: 0123456789012345678901234567890123456789"
          "\r\n\r\n", 48, "response header too large" },
    };

    for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        test_http_run(errs[i].in, strlen(errs[i].in), 0,
                      errs[i].max_header, NULL, 0, &test_whole);

        ok(strstr(test_whole.s, errs[i].error) != NULL,
           "rejects: %s (%zu)", errs[i].error, i);
    }

    /* after an error every call fails and consumes nothing */

    if (ngx_voice_http_parser_init(&p, 8192) != 0) {
        abort();
    }

    rc = ngx_voice_http_parse(&p, (const unsigned char *) "XTTP/1.1 200\r\n",
                              14, &consumed, &ev);
    is(rc, NGX_VOICE_HTTP_ERROR, "bad status line fails");
    rc = ngx_voice_http_parse(&p, (const unsigned char *) "HTTP", 4,
                              &consumed, &ev);
    ok(rc == NGX_VOICE_HTTP_ERROR && consumed == 0, "failed stays failed");
    is(p.keepalive, 0, "failed connection is not reusable");

    /* a non-reusable response ends the parser's use */

    ngx_voice_http_parser_reset(&p);
    rc = ngx_voice_http_parse(&p, (const unsigned char *) close204, 47,
                              &consumed, &ev);
    off = consumed;
    is(rc, NGX_VOICE_HTTP_HEADER, "connection: close header");
    rc = ngx_voice_http_parse(&p, (const unsigned char *) close204 + off,
                              47 - off, &consumed, &ev);
    off += consumed;
    is(rc, NGX_VOICE_HTTP_HEADER_DONE, "header done");
    rc = ngx_voice_http_parse(&p, (const unsigned char *) close204 + off,
                              47 - off, &consumed, &ev);
    ok(rc == NGX_VOICE_HTTP_DONE && consumed == 0 && !p.keepalive
       && off == 46, "done at the end of the header, not reusable");
    rc = ngx_voice_http_parse(&p, (const unsigned char *) close204 + off,
                              47 - off, &consumed, &ev);
    ok(rc == NGX_VOICE_HTTP_ERROR && strcmp(p.error,
       "data after the end of a non-reusable response") == 0,
       "data after a non-reusable response");

    ngx_voice_http_parser_reset(&p);
    rc = ngx_voice_http_parse(&p, (const unsigned char *) "HTTP", 4,
                              &consumed, &ev);
    ok(rc == NGX_VOICE_HTTP_AGAIN && consumed == 4, "reset recovers");

    ngx_voice_http_parser_free(&p);
}


static void
test_http_eof(void)
{
    test_http_run(T("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"), 0,
                  8192, NULL, 0, &test_whole);
    ok(strstr(test_whole.s, "eof=5") != NULL, "eof inside a length body");

    test_http_run(T("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n"), 0, 8192, NULL, 0, &test_whole);
    ok(strstr(test_whole.s, "eof=5") != NULL, "eof before the last chunk");

    test_http_run(T("HTTP/1.1 20"), 0, 8192, NULL, 0, &test_whole);
    is_text(test_whole.s, "eof=5", "eof inside the status line");

    test_http_run("", 0, 0, 8192, NULL, 0, &test_whole);
    is_text(test_whole.s, "eof=5", "eof before any response");

    test_http_run(T("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, 8192,
                  NULL, 0, &test_whole);
    ok(strstr(test_whole.s, "D@38|eof=0") != NULL,
       "eof of an idle keep-alive connection is clean");
}


static void
test_http_lookup(void)
{
    int                       rc;
    size_t                    off, consumed, len;
    const char               *v;
    ngx_voice_http_event_t    ev;
    ngx_voice_http_parser_t   p;

    static const char  in[] =
        "HTTP/1.1 401 Unauthorized\r\nDG-Error: Invalid credentials\r\n"
        "dg-request-id: 8c8e\r\nContent-Type: text/event-stream; x=1\r\n"
        "Connection: keep-alive, Upgrade\r\nContent-Length: 0\r\n\r\n";

    if (ngx_voice_http_parser_init(&p, 8192) != 0) {
        abort();
    }

    off = 0;

    do {
        rc = ngx_voice_http_parse(&p, (const unsigned char *) in + off,
                                  sizeof(in) - 1 - off, &consumed, &ev);
        off += consumed;
    } while (rc == NGX_VOICE_HTTP_HEADER);

    is(rc, NGX_VOICE_HTTP_HEADER_DONE, "header done");

    v = ngx_voice_http_header(&p, "dg-error", &len);
    is_mem(v, v ? len : 0, "Invalid credentials", 19, "lookup dg-error");

    v = ngx_voice_http_header(&p, "DG-REQUEST-ID", &len);
    is_mem(v, v ? len : 0, "8c8e", 4, "lookup is case-insensitive");

    ok(ngx_voice_http_header(&p, "dg-request", &len) == NULL,
       "lookup needs the whole name");

    ok(p.event_stream && p.conn_upgrade && p.conn_keepalive && p.keepalive,
       "content-type and connection tokens");
    is(p.nfields, 5, "field count");
    is_text(p.reason, "Unauthorized", "reason");

    ok(ngx_voice_http_list_has("a, B ,c", 7, "b"), "list has token");
    ok(!ngx_voice_http_list_has("ab, c", 5, "b"), "list token is whole");

    rc = ngx_voice_http_parse(&p, (const unsigned char *) in + off,
                              sizeof(in) - 1 - off, &consumed, &ev);
    ok(rc == NGX_VOICE_HTTP_DONE && consumed == 0, "then done");

    v = ngx_voice_http_header(&p, "dg-error", &len);
    ok(v != NULL, "fields valid after DONE");

    ngx_voice_http_parser_free(&p);
}


static void
test_http_request(void)
{
    size_t          len, n;
    unsigned char   buf[512];

    static const char  body[] = "{\"model\":\"gpt-oss-120b\"}";

    ngx_voice_http_field_t  f[] = {
        { "Authorization", 13, "Bearer k", 8 },
        { "Content-Type", 12, "application/json", 16 },
        { "Accept", 6, "text/event-stream", 17 },
    };

    static const char  expected[] =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.cerebras.ai\r\n"
        "Authorization: Bearer k\r\nContent-Type: application/json\r\n"
        "Accept: text/event-stream\r\nContent-Length: 24\r\n\r\n"
        "{\"model\":\"gpt-oss-120b\"}";

    len = ngx_voice_http_request_len("POST", 4, "/v1/chat/completions", 20,
                                     "api.cerebras.ai", 15, f, 3,
                                     (const unsigned char *) body, 24);
    is(len, sizeof(expected) - 1, "request length");

    n = ngx_voice_http_request_write(buf, "POST", 4, "/v1/chat/completions",
                                     20, "api.cerebras.ai", 15, f, 3,
                                     (const unsigned char *) body, 24);
    is_mem(buf, n, expected, sizeof(expected) - 1, "request bytes");

    n = ngx_voice_http_request_write(buf, "GET", 3, "/v1/listen?a=b", 14,
                                     "api.deepgram.com", 16, f, 1, NULL, 0);
    is_mem(buf, n, "GET /v1/listen?a=b HTTP/1.1\r\nHost: api.deepgram.com\r\n"
           "Authorization: Bearer k\r\n\r\n", 80, "GET without body");

    f[0].value = "x\r\nEvil: 1";
    f[0].value_len = 10;
    is(ngx_voice_http_request_len("GET", 3, "/", 1, "h", 1, f, 1, NULL, 0),
       0, "CRLF in a value is refused");

    f[0].value = "ok";
    f[0].value_len = 2;
    f[0].name = "Bad Name";
    f[0].name_len = 8;
    is(ngx_voice_http_request_len("GET", 3, "/", 1, "h", 1, f, 1, NULL, 0),
       0, "space in a name is refused");
    is(ngx_voice_http_request_len("GET", 3, "/ x", 3, "h", 1, NULL, 0, NULL,
                                  0), 0, "space in the target is refused");
    is(ngx_voice_http_request_write(buf, "G T", 3, "/", 1, "h", 1, NULL, 0,
                                    NULL, 0), 0, "bad method is refused");
}
