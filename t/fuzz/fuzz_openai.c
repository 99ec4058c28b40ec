/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the chat-completions stream chunk parser with its
 * tool-call accumulator, the error body parser and the request builder.
 *
 * The input is cut at NUL bytes into SSE data payloads fed in order to
 * one stream; limits must hold after each.  The whole input is also
 * parsed as an error body, and used as message text, tools and extra for
 * the builder, whose output must be valid JSON when it succeeds.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_openai.h"


#define FUZZ_MAX_ARGS  64


static void fuzz_check(const ngx_voice_oa_stream_t *s,
    const ngx_voice_oa_chunk_t *c, int rc);
static void fuzz_build(const uint8_t *data, size_t size);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    size_t                  start, i;
    unsigned char          *copy;
    ngx_voice_oa_chunk_t    c;
    ngx_voice_oa_error_t    e;
    ngx_voice_oa_stream_t   s;

    if (ngx_voice_oa_stream_init(&s, FUZZ_MAX_ARGS) != 0) {
        abort();
    }

    start = 0;

    for (i = 0; i <= size; i++) {
        if (i < size && data[i] != '\0') {
            continue;
        }

        /* each payload in its own exact-size block for ASan */

        copy = malloc(i - start + 1);
        if (copy == NULL) {
            abort();
        }

        memcpy(copy, data + start, i - start);

        rc = ngx_voice_oa_stream_parse(&s, &c, copy, i - start);
        fuzz_check(&s, &c, rc);
        ngx_voice_oa_chunk_done(&c);

        free(copy);

        if (rc == NGX_VOICE_OA_BAD) {
            ngx_voice_oa_stream_reset(&s);
        }

        start = i + 1;
    }

    ngx_voice_oa_stream_free(&s);

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, data, size);

    rc = ngx_voice_oa_error_parse(&e, copy, size);

    if ((rc != NGX_VOICE_OA_OK && rc != NGX_VOICE_OA_BAD)
        || strlen(e.message.data) != e.message.len
        || strlen(e.code.data) != e.code.len
        || (rc == NGX_VOICE_OA_BAD && e.error == NULL))
    {
        abort();
    }

    ngx_voice_oa_error_done(&e);
    free(copy);

    fuzz_build(data, size);

    return 0;
}


static void
fuzz_check(const ngx_voice_oa_stream_t *s, const ngx_voice_oa_chunk_t *c,
    int rc)
{
    unsigned  i;

    if (rc < NGX_VOICE_OA_OK || rc > NGX_VOICE_OA_BAD) {
        abort();
    }

    if (rc == NGX_VOICE_OA_BAD && c->error == NULL) {
        abort();
    }

    if (strlen(c->content.data) < c->content.len
        || strlen(c->err_message.data) != c->err_message.len
        || strlen(c->err_code.data) != c->err_code.len)
    {
        abort();
    }

    if (s->ncalls > NGX_VOICE_OA_MAX_CALLS) {
        abort();
    }

    for (i = 0; i < s->ncalls; i++) {
        if (s->calls[i].id_len > NGX_VOICE_OA_MAX_ID
            || s->calls[i].name_len > NGX_VOICE_OA_MAX_NAME
            || s->calls[i].args_len > FUZZ_MAX_ARGS
            || s->calls[i].args[s->calls[i].args_len] != '\0')
        {
            abort();
        }
    }
}


static void
fuzz_build(const uint8_t *data, size_t size)
{
    char                    *body, buf[512];
    size_t                   len, n;
    cJSON                   *json;
    const char              *error;
    ngx_voice_oa_call_t      call;
    ngx_voice_oa_message_t   msgs[3];
    ngx_voice_oa_request_t   rq;

    memset(&rq, 0, sizeof(ngx_voice_oa_request_t));
    memset(msgs, 0, sizeof(msgs));
    memset(&call, 0, sizeof(ngx_voice_oa_call_t));

    call.id.data = (const char *) data;
    call.id.len = size / 2;
    call.name.data = "f";
    call.name.len = 1;
    call.arguments.data = (const char *) data + size / 2;
    call.arguments.len = size - size / 2;

    msgs[0].role = "user";
    msgs[0].content.data = (const char *) data;
    msgs[0].content.len = size;
    msgs[1].role = "assistant";
    msgs[1].calls = &call;
    msgs[1].ncalls = 1;
    msgs[2].role = "tool";
    msgs[2].tool_call_id = call.id;
    msgs[2].content.data = "ok";
    msgs[2].content.len = 2;

    rq.model.data = "m";
    rq.model.len = 1;
    rq.system.data = (const char *) data;
    rq.system.len = size;
    rq.messages = msgs;
    rq.nmessages = 3;
    rq.temperature = -1;

    if (size && data[0] == '[') {
        rq.tools.data = (const char *) data;
        rq.tools.len = size;

    } else if (size && data[0] == '{') {
        rq.extra.data = (const char *) data;
        rq.extra.len = size;
    }

    body = ngx_voice_oa_request(&rq, &len, &error);

    if (body == NULL) {
        if (error == NULL) {
            abort();
        }

        return;
    }

    json = cJSON_ParseWithLength(body, len);
    if (json == NULL) {
        abort();
    }

    cJSON_Delete(json);

    n = ngx_voice_oa_request_into(&rq, buf, sizeof(buf), &error);

    if (n != 0 && (n != len || memcmp(buf, body, len) != 0)) {
        abort();
    }

    ngx_voice_oa_request_free(body);
}
