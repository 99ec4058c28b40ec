/*
 * Copyright (C) ngx_voice authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>

#include "tap.h"
#include "ngx_voice_openai.h"
#include "ngx_voice_http_parse.h"
#include "ngx_voice_sse.h"


#define is_lit(got, glen, lit, ...)                                          \
    is_mem(got, glen, lit, sizeof(lit) - 1, __VA_ARGS__)
#define S(s)  (const unsigned char *) s, sizeof(s) - 1

/* is_str() for arrays and literals, which cannot be NULL */
#define is_text(got, exp, ...)                                                \
    is_mem(got, strlen(got), exp, strlen(exp), __VA_ARGS__)


static int test_oa_feed(ngx_voice_oa_stream_t *s, const char *data);
static void test_oa_chunks(void);
static void test_oa_tools(void);
static void test_oa_limits(void);
static void test_oa_errors(void);
static void test_oa_request(void);
static void test_oa_pipeline(void);
static void test_oa_pipe_run(const char *in, size_t len, size_t cut,
    char *out, size_t size);


static char  test_oa_content[4096];


void
test_openai(void)
{
    tap_diag("openai");

    test_oa_chunks();
    test_oa_tools();
    test_oa_limits();
    test_oa_errors();
    test_oa_request();
    test_oa_pipeline();
}


/* feeds one payload, appends its content to test_oa_content */

static int
test_oa_feed(ngx_voice_oa_stream_t *s, const char *data)
{
    int                   rc;
    ngx_voice_oa_chunk_t  c;

    rc = ngx_voice_oa_stream_parse(s, &c, (const unsigned char *) data,
                                   strlen(data));

    if (rc == NGX_VOICE_OA_OK) {
        strncat(test_oa_content, c.content.data,
                sizeof(test_oa_content) - strlen(test_oa_content) - 1);
    }

    ngx_voice_oa_chunk_done(&c);

    return rc;
}


static void
test_oa_chunks(void)
{
    int                    rc;
    ngx_voice_oa_chunk_t   c;
    ngx_voice_oa_stream_t  s;

    if (ngx_voice_oa_stream_init(&s, 1024) != 0) {
        abort();
    }

    test_oa_content[0] = '\0';

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"created\":1748552717,\"model\":\"gpt-oss-120b\","
        "\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
        "\"delta\":{\"role\":\"assistant\"}}]}"));
    is(rc, NGX_VOICE_OA_OK, "role chunk");
    is_lit(c.role.data, c.role.len, "assistant", "delta.role");
    is_lit(c.model.data, c.model.len, "gpt-oss-120b", "model");
    is(c.content.len, 0, "no content yet");
    ngx_voice_oa_chunk_done(&c);

    is(test_oa_feed(&s, "{\"id\":\"chatcmpl-1\",\"object\":"
                        "\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                        "\"delta\":{\"content\":\"Sure, \"}}]}"),
       NGX_VOICE_OA_OK, "content chunk");
    is(test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":"
                        "\"think\",\"reasoning_content\":\"more\"}}]}"),
       NGX_VOICE_OA_OK, "reasoning chunk");
    is(test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                        "\"a pair \\u00e9\"}}]}"),
       NGX_VOICE_OA_OK, "content with escape");
    is_text(test_oa_content, "Sure, a pair \xc3\xa9",
           "content joined; reasoning ignored");
    is(s.finish, NGX_VOICE_OA_FINISH_NONE, "not finished yet");

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
        "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":69,\"completion_tokens\":45,"
        "\"total_tokens\":114,\"prompt_tokens_details\":{\"cached_tokens\":"
        "7}},\"time_info\":{\"queue_time\":0.0003,\"prompt_time\":0.016,"
        "\"completion_time\":1.15,\"total_time\":1.17,\"created\":"
        "1748552717}}"));
    is(rc, NGX_VOICE_OA_OK, "final chunk");
    is(c.finish, NGX_VOICE_OA_FINISH_STOP, "finish_reason stop");
    ok(c.usage && s.have_usage, "usage seen");
    ok(s.prompt_tokens == 69 && s.completion_tokens == 45
       && s.total_tokens == 114 && s.cached_tokens == 7, "usage numbers");
    ok(s.have_time_info && s.queue_time == 0.0003 && s.prompt_time == 0.016
       && s.completion_time == 1.15 && s.total_time == 1.17
       && s.created == 1748552717, "time_info");
    ngx_voice_oa_chunk_done(&c);

    is(test_oa_feed(&s, "{\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
                        "\"completion_tokens\":2,\"total_tokens\":3}}"),
       NGX_VOICE_OA_OK, "usage on a chunk with empty choices");
    is(s.total_tokens, 3, "later usage wins");
    is(s.finish, NGX_VOICE_OA_FINISH_STOP, "finish is sticky");

    is(test_oa_feed(&s, "[DONE]"), NGX_VOICE_OA_DONE, "[DONE]");
    is(test_oa_feed(&s, " [DONE]\n"), NGX_VOICE_OA_DONE, "[DONE] with spaces");
    ok(s.done, "done flag");

    is(test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{},"
                        "\"finish_reason\":\"length\"}]}"),
       NGX_VOICE_OA_OK, "length");
    is(s.finish, NGX_VOICE_OA_FINISH_LENGTH, "finish_reason length");
    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{},"
                     "\"finish_reason\":\"content_filter\"}]}");
    is(s.finish, NGX_VOICE_OA_FINISH_CONTENT_FILTER, "content_filter");
    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{},"
                     "\"finish_reason\":\"weird\"}]}");
    is(s.finish, NGX_VOICE_OA_FINISH_OTHER, "unknown finish_reason");

    /* choice with index 0 is picked even when not first */
    test_oa_content[0] = '\0';
    test_oa_feed(&s, "{\"choices\":[{\"index\":1,\"delta\":{\"content\":"
                     "\"no\"}},{\"index\":0,\"delta\":{\"content\":"
                     "\"yes\"}}]}");
    is_text(test_oa_content, "yes", "choices[index 0]");

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"error\":{\"id\":\"e1\",\"code\":\"request_quota_exceeded\","
        "\"message\":\"Requests per minute limit exceeded\",\"param\":null,"
        "\"type\":\"too_many_requests_error\"},\"status_code\":429}"));
    is(rc, NGX_VOICE_OA_STREAM_ERROR, "mid-stream error");
    is_lit(c.err_code.data, c.err_code.len, "request_quota_exceeded",
           "error code");
    is_lit(c.err_type.data, c.err_type.len, "too_many_requests_error",
           "error type");
    is(c.status_code, 429, "status_code");
    ok(strstr(c.err_message.data, "per minute") != NULL, "error message");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S("{\"x\":"));
    ok(rc == NGX_VOICE_OA_BAD && c.error != NULL, "malformed JSON: %s",
       c.error ? c.error : "");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S("{} x"));
    is(rc, NGX_VOICE_OA_BAD, "junk after JSON");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S("{\"choices\":{}}"));
    is(rc, NGX_VOICE_OA_BAD, "choices not an array");
    ngx_voice_oa_chunk_done(&c);

    ngx_voice_oa_stream_free(&s);
}


static void
test_oa_tools(void)
{
    ngx_voice_oa_stream_t  s;

    if (ngx_voice_oa_stream_init(&s, 1024) != 0) {
        abort();
    }

    test_oa_content[0] = '\0';

    /* protocols.md section 6, plus a spoken preamble and a second call */

    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                     "\"assistant\",\"content\":null,\"tool_calls\":[{"
                     "\"index\":0,\"id\":\"call_abc\",\"type\":\"function\","
                     "\"function\":{\"name\":\"check_price\",\"arguments\":"
                     "\"\"}}]}}]}");
    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"One moment. \",\"tool_calls\":[{\"index\":0,"
                     "\"function\":{\"arguments\":\"{\\\"model\\\":\"}}]}}]}");
    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
                     "\"index\":1,\"id\":\"call_def\",\"function\":{\"name\":"
                     "\"stock\",\"arguments\":\"{}\"}}]}}]}");
    test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{"
                     "\"index\":0,\"function\":{\"arguments\":"
                     "\"\\\"airpods pro\\\"}\"}}]}}]}");
    is(test_oa_feed(&s, "{\"choices\":[{\"index\":0,\"delta\":{},"
                        "\"finish_reason\":\"tool_calls\"}]}"),
       NGX_VOICE_OA_OK, "tool_calls finish chunk");
    is(test_oa_feed(&s, "[DONE]"), NGX_VOICE_OA_DONE, "done");

    is(s.finish, NGX_VOICE_OA_FINISH_TOOL_CALLS, "finish tool_calls");
    is(s.ncalls, 2, "two calls");
    is_text(s.calls[0].id, "call_abc", "call 0 id");
    is_text(s.calls[0].name, "check_price", "call 0 name");
    is_text(s.calls[0].args, "{\"model\":\"airpods pro\"}",
           "call 0 arguments concatenated");
    is_text(s.calls[1].id, "call_def", "call 1 id");
    is_text(s.calls[1].args, "{}", "call 1 arguments");
    is_text(test_oa_content, "One moment. ", "preamble content kept apart");

    /* fragments without index: a new id starts a new call */

    ngx_voice_oa_stream_reset(&s);
    is(s.ncalls, 0, "reset");
    test_oa_feed(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":"
                     "\"a\",\"function\":{\"name\":\"f\",\"arguments\":"
                     "\"{\"}}]}}]}");
    test_oa_feed(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{"
                     "\"function\":{\"arguments\":\"}\"}}]}}]}");
    test_oa_feed(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":"
                     "\"b\",\"function\":{\"name\":\"g\"}}]}}]}");
    ok(s.ncalls == 2 && strcmp(s.calls[0].args, "{}") == 0
       && strcmp(s.calls[1].name, "g") == 0, "calls without index");

    ngx_voice_oa_stream_free(&s);
}


static void
test_oa_limits(void)
{
    int                    rc;
    char                   buf[300];
    ngx_voice_oa_chunk_t   c;
    ngx_voice_oa_stream_t  s;

    if (ngx_voice_oa_stream_init(&s, 8) != 0) {
        abort();
    }

    rc = test_oa_feed(&s, "{\"choices\":[{\"delta\":{\"tool_calls\":[{"
                          "\"index\":0,\"function\":{\"arguments\":"
                          "\"12345678\"}}]}}]}");
    is(rc, NGX_VOICE_OA_OK, "arguments up to max_args");

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
            "\"function\":"
        "{\"arguments\":\"9\"}}]}}]}"));
    ok(rc == NGX_VOICE_OA_BAD && strcmp(c.error,
       "tool call arguments too long") == 0, "arguments over max_args");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":8}]}}]}"));
    ok(rc == NGX_VOICE_OA_BAD && strcmp(c.error,
       "tool call index out of range") == 0, "index >= MAX_CALLS");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":-1}]}}]}"));
    is(rc, NGX_VOICE_OA_BAD, "negative index");
    ngx_voice_oa_chunk_done(&c);

    rc = ngx_voice_oa_stream_parse(&s, &c, S(
            "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0.5}]}}]}"));
    is(rc, NGX_VOICE_OA_BAD, "fractional index");
    ngx_voice_oa_chunk_done(&c);

    snprintf(buf, sizeof(buf), "{\"choices\":[{\"delta\":{\"tool_calls\":[{"
             "\"index\":1,\"id\":\"%0130d\"}]}}]}", 0);
    rc = ngx_voice_oa_stream_parse(&s, &c, (const unsigned char *) buf,
                                   strlen(buf));
    ok(rc == NGX_VOICE_OA_BAD && strcmp(c.error, "tool call id too long")
       == 0, "id too long");
    ngx_voice_oa_chunk_done(&c);

    ngx_voice_oa_stream_free(&s);
}


static void
test_oa_errors(void)
{
    int                   rc;
    ngx_voice_oa_error_t  e;

    static const char  flat[] =
        "{\"message\":\"Wrong API Key\",\"type\":\"invalid_request_error\","
        "\"param\":\"api_key\",\"code\":\"wrong_api_key\"}";
    static const char  wrapped[] =
        "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\","
        "\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
    static const char  numeric[] =
        "{\"error\":{\"message\":\"x\",\"code\":429},\"status_code\":429}";
    static const char  detail[] = "{\"detail\":\"Not authenticated\"}";

    rc = ngx_voice_oa_error_parse(&e, (const unsigned char *) flat,
                                  sizeof(flat) - 1);
    is(rc, NGX_VOICE_OA_OK, "flat Cerebras error");
    is_lit(e.message.data, e.message.len, "Wrong API Key", "message");
    is_lit(e.type.data, e.type.len, "invalid_request_error", "type");
    is_lit(e.param.data, e.param.len, "api_key", "param");
    is_lit(e.code.data, e.code.len, "wrong_api_key", "code");
    ngx_voice_oa_error_done(&e);

    rc = ngx_voice_oa_error_parse(&e, (const unsigned char *) wrapped,
                                  sizeof(wrapped) - 1);
    is(rc, NGX_VOICE_OA_OK, "wrapped OpenAI error");
    is_lit(e.code.data, e.code.len, "rate_limit_exceeded",
           "wrapped code");
    is_lit(e.message.data, e.message.len, "Rate limit",
           "wrapped message");
    is(e.param.len, 0, "null param is empty");
    ngx_voice_oa_error_done(&e);

    rc = ngx_voice_oa_error_parse(&e, (const unsigned char *) numeric,
                                  sizeof(numeric) - 1);
    ok(rc == NGX_VOICE_OA_OK && e.status_code == 429
       && e.code.len == 3 && memcmp(e.code.data, "429", 3) == 0,
       "numeric code and status_code");
    ngx_voice_oa_error_done(&e);

    rc = ngx_voice_oa_error_parse(&e, (const unsigned char *) detail,
                                  sizeof(detail) - 1);
    is_lit(e.message.data, e.message.len, "Not authenticated",
           "detail as message");
    ngx_voice_oa_error_done(&e);

    rc = ngx_voice_oa_error_parse(&e, S("<html>"));
    ok(rc == NGX_VOICE_OA_BAD && e.error != NULL, "non-JSON error body");
    ngx_voice_oa_error_done(&e);
}


static void
test_oa_request(void)
{
    char                    *body, buf[2048];
    size_t                   len, n;
    const char              *error;
    ngx_voice_oa_call_t      call;
    ngx_voice_oa_message_t   msgs[4];
    ngx_voice_oa_request_t   rq;

    static const char  expected[] =
        "{\"model\":\"gpt-oss-120b\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a phone agent.\"},"
        "{\"role\":\"user\",\"content\":\"I want \\\"AirPods\\\"\\n\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":"
        "\"call_abc\",\"type\":\"function\",\"function\":{\"name\":"
        "\"check_price\",\"arguments\":\"{\\\"model\\\":\\\"x\\\"}\"}}]},"
        "{\"role\":\"tool\",\"content\":\"249\",\"tool_call_id\":"
        "\"call_abc\"},"
        "{\"role\":\"assistant\",\"content\":\"It is 249.\"}],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_completion_tokens\":256,\"temperature\":0.6,"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"check_price\"}}],\"tool_choice\":\"auto\","
        "\"reasoning_effort\":\"low\"}";

    memset(&rq, 0, sizeof(rq));
    memset(msgs, 0, sizeof(msgs));

    call.id.data = "call_abc";
    call.id.len = 8;
    call.name.data = "check_price";
    call.name.len = 11;
    call.arguments.data = "{\"model\":\"x\"}";
    call.arguments.len = 13;

    msgs[0].role = "user";
    msgs[0].content.data = "I want \"AirPods\"\n";
    msgs[0].content.len = 17;
    msgs[1].role = "assistant";
    msgs[1].calls = &call;
    msgs[1].ncalls = 1;
    msgs[2].role = "tool";
    msgs[2].content.data = "249";
    msgs[2].content.len = 3;
    msgs[2].tool_call_id = call.id;
    msgs[3].role = "assistant";
    msgs[3].content.data = "It is 249.";
    msgs[3].content.len = 10;

    rq.model.data = "gpt-oss-120b";
    rq.model.len = 12;
    rq.system.data = "You are a phone agent.";
    rq.system.len = 22;
    rq.messages = msgs;
    rq.nmessages = 4;
    rq.max_completion_tokens = 256;
    rq.temperature = 0.6;
    rq.include_usage = 1;
    rq.tools.data = "[{\"type\":\"function\",\"function\":{\"name\":"
                    "\"check_price\"}}] ";
    rq.tools.len = strlen(rq.tools.data);
    rq.tool_choice.data = "auto";
    rq.tool_choice.len = 4;
    rq.extra.data = "{\"reasoning_effort\":\"low\"}";
    rq.extra.len = strlen(rq.extra.data);

    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body != NULL, "request built");

    if (body) {
        is_mem(body, len, expected, sizeof(expected) - 1, "request body");
    }

    n = ngx_voice_oa_request_into(&rq, buf, sizeof(buf), &error);
    is_mem(buf, n, expected, sizeof(expected) - 1, "request into a buffer");

    n = ngx_voice_oa_request_into(&rq, buf, 100, &error);
    ok(n == 0 && strcmp(error, "request body does not fit") == 0,
       "too small buffer");

    ngx_voice_oa_request_free(body);

    /* extra replaces built members; object tool_choice; no temperature */

    rq.temperature = -1;
    rq.extra.data = "{\"stream\":false,\"max_completion_tokens\":64}";
    rq.extra.len = strlen(rq.extra.data);
    rq.tool_choice.data = "{\"type\":\"function\",\"function\":{\"name\":"
                          "\"check_price\"}}";
    rq.tool_choice.len = strlen(rq.tool_choice.data);
    rq.nmessages = 0;
    rq.system.data = NULL;

    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body != NULL && strstr(body, "\"stream\":false") != NULL
       && strstr(body, "\"stream\":true") == NULL
       && strstr(body, "\"max_completion_tokens\":64") != NULL
       && strstr(body, "temperature") == NULL
       && strstr(body, "\"tool_choice\":{\"type\"") != NULL
       && strstr(body, "\"messages\":[]") != NULL, "extra overrides: %s",
       body ? body : "NULL");
    ngx_voice_oa_request_free(body);

    rq.tools.data = "{\"not\":\"array\"}";
    rq.tools.len = 15;
    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body == NULL && strcmp(error, "tools is not a JSON array") == 0,
       "tools must be an array");

    rq.tools.data = NULL;
    rq.extra.data = "[1]";
    rq.extra.len = 3;
    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body == NULL && strcmp(error, "extra is not a JSON object") == 0,
       "extra must be an object");

    rq.extra.data = NULL;
    rq.tool_choice.data = "{bad";
    rq.tool_choice.len = 4;
    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body == NULL, "bad tool_choice object");

    rq.tool_choice.data = NULL;
    rq.model.len = 0;
    body = ngx_voice_oa_request(&rq, &len, &error);
    ok(body == NULL && strcmp(error, "no model") == 0, "model required");
}


/*
 * HTTP chunked framing -> SSE -> chunk parser, as the glue will chain
 * them, with chunk and event boundaries unrelated; every 2-way split of
 * the raw bytes must give the same spoken text and tool call.
 */

static void
test_oa_pipeline(void)
{
    size_t   cut, bad, len;
    char     whole[512], got[512];

    static const char  in[] =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "2d\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"conten\r"
        "\n4c\r\nt\":\"Hi \"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"d"
        "elta\":{\"tool_calls\":[{\"index\":0\r\n81\r\n,\"id\":\"c1\",\"f"
        "unction\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\r\n\r\nda"
        "ta: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reas"
        "on\":\"tool_calls\"\r\n13\r\n}]}\n\ndata: [DONE]\n\n\r\n0\r\n\r\n";

    len = sizeof(in) - 1;

    test_oa_pipe_run(in, len, 0, whole, sizeof(whole));
    is_text(whole, "Hi |c1|f|{}|3|done|http-done",
           "pipeline: whole input");

    bad = 0;

    for (cut = 1; cut < len; cut++) {
        test_oa_pipe_run(in, len, cut, got, sizeof(got));

        if (strcmp(got, whole) != 0) {
            bad++;
        }
    }

    is(bad, 0, "pipeline: all %zu 2-way splits", len - 1);
}


static void
test_oa_pipe_run(const char *in, size_t len, size_t cut, char *out,
    size_t size)
{
    int                       rc, src, orc;
    size_t                    i, n, off, consumed, soff, sc;
    unsigned                  done, http_done;
    ngx_voice_sse_event_t     ev;
    ngx_voice_oa_stream_t     s;
    ngx_voice_oa_chunk_t      c;
    ngx_voice_sse_parser_t    sse;
    ngx_voice_http_event_t    hev;
    ngx_voice_http_parser_t   http;
    char                      text[256];

    size_t  starts[2], ends[2];

    if (ngx_voice_http_parser_init(&http, 4096) != 0
        || ngx_voice_sse_init(&sse, 4096) != 0
        || ngx_voice_oa_stream_init(&s, 256) != 0)
    {
        abort();
    }

    text[0] = '\0';
    done = 0;
    http_done = 0;

    starts[0] = 0;
    ends[0] = cut ? cut : len;
    starts[1] = ends[0];
    ends[1] = len;

    for (i = 0; i < 2; i++) {
        off = starts[i];

        while (off < ends[i] || i == 1) {
            rc = ngx_voice_http_parse(&http, (const unsigned char *) in + off,
                                      ends[i] - off, &consumed, &hev);
            off += consumed;

            if (rc == NGX_VOICE_HTTP_BODY) {
                soff = 0;

                while (soff < hev.len) {
                    src = ngx_voice_sse_parse(&sse, hev.data + soff,
                                              hev.len - soff, &sc, &ev);
                    soff += sc;

                    if (src != NGX_VOICE_SSE_EVENT) {
                        break;
                    }

                    orc = ngx_voice_oa_stream_parse(&s, &c,
                              (const unsigned char *) ev.data, ev.len);

                    if (orc == NGX_VOICE_OA_DONE) {
                        done = 1;

                    } else if (orc == NGX_VOICE_OA_OK) {
                        n = strlen(text);
                        snprintf(text + n, sizeof(text) - n, "%.*s",
                                 (int) c.content.len, c.content.data);
                    }

                    ngx_voice_oa_chunk_done(&c);
                }

                continue;
            }

            if (rc == NGX_VOICE_HTTP_DONE) {
                http_done = 1;
                break;
            }

            if (rc == NGX_VOICE_HTTP_AGAIN || rc == NGX_VOICE_HTTP_ERROR) {
                break;
            }
        }
    }

    snprintf(out, size, "%s|%s|%s|%s|%u|%s|%s", text, s.calls[0].id,
             s.calls[0].name, s.calls[0].args, s.finish,
             done ? "done" : "", http_done ? "http-done" : "");

    ngx_voice_oa_stream_free(&s);
    ngx_voice_sse_free(&sse);
    ngx_voice_http_parser_free(&http);
}
