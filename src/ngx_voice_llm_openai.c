/*
 * Copyright (C) ngx_voice authors
 *
 * OpenAI-compatible streaming chat completions over the HTTP client:
 * POST with Bearer auth and "stream": true, the answer read as SSE with
 * a bounded event size, each event's data parsed as a chunk.  Errors
 * come three ways and all end up as one typed error: a non-2xx answer
 * (flat Cerebras or wrapped OpenAI body), an "error" object or SSE event
 * mid-stream, and the transport (including voice_llm_timeout).
 */


#include "ngx_voice_llm.h"
#include "ngx_voice_zone.h"


static void ngx_voice_llm_header(ngx_voice_hc_t *hc);
static void ngx_voice_llm_body(ngx_voice_hc_t *hc, u_char *p, size_t n);
static void ngx_voice_llm_done(ngx_voice_hc_t *hc);
static void ngx_voice_llm_failed(ngx_voice_hc_t *hc,
    ngx_voice_leg_error_e err);
static ngx_int_t ngx_voice_llm_event(ngx_voice_llm_t *llm,
    ngx_voice_sse_event_t *ev);
static void ngx_voice_llm_set(ngx_voice_llm_t *llm, ngx_str_t *dst,
    ngx_uint_t slot, ngx_voice_text_t *src);
static void ngx_voice_llm_remote_error(ngx_voice_llm_t *llm,
    ngx_voice_text_t *type, ngx_voice_text_t *message,
    ngx_voice_text_t *code);
static void ngx_voice_llm_fail(ngx_voice_llm_t *llm);
static ngx_int_t ngx_voice_llm_send(ngx_voice_llm_t *llm);
static ngx_int_t ngx_voice_llm_failover(ngx_voice_llm_t *llm,
    ngx_voice_leg_error_e err);
static void ngx_voice_llm_end(ngx_voice_llm_t *llm);


static ngx_voice_hc_handler_t  ngx_voice_llm_hc_handler = {
    ngx_voice_llm_header,
    ngx_voice_llm_body,
    ngx_voice_llm_done,
    ngx_voice_llm_failed
};


ngx_int_t
ngx_voice_llm_init(ngx_voice_llm_t *llm, ngx_voice_call_t *call,
    ngx_voice_llm_events_t *events, void *owner)
{
    ngx_voice_loc_conf_t  *conf;

    conf = call->conf;

    ngx_memzero(llm, sizeof(ngx_voice_llm_t));

    llm->call = call;
    llm->events = events;
    llm->owner = owner;

    /* the prompt may name the call's parameters: evaluated once */
    if (ngx_voice_conf_text(call, conf->system_prompt, &llm->system)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a persona may change these for the call */
    llm->model = conf->llm_model;
    llm->tools = conf->llm_tools_all.len ? conf->llm_tools_all
                                         : conf->llm_tools;

    ngx_voice_hc_init(&llm->hc, call, conf->llm, &ngx_voice_llm_hc_handler,
                      llm);

    if (ngx_voice_sse_init(&llm->sse, NGX_VOICE_LLM_MAX_EVENT) != 0) {
        return NGX_ERROR;
    }

    if (ngx_voice_oa_stream_init(&llm->stream, NGX_VOICE_LLM_MAX_ARGS)
        != 0)
    {
        ngx_voice_sse_free(&llm->sse);
        return NGX_ERROR;
    }

    llm->fields[0].name = "Authorization";
    llm->fields[0].value = (char *) conf->llm_auth.data;
    llm->fields[0].value_len = conf->llm_auth.len;
    llm->fields[1].name = "Content-Type";
    llm->fields[1].value = "application/json";
    llm->fields[2].name = "Accept";
    llm->fields[2].value = "text/event-stream";

    llm->fields[0].name_len = sizeof("Authorization") - 1;
    llm->fields[1].name_len = sizeof("Content-Type") - 1;
    llm->fields[1].value_len = sizeof("application/json") - 1;
    llm->fields[2].name_len = sizeof("Accept") - 1;
    llm->fields[2].value_len = sizeof("text/event-stream") - 1;

    return NGX_OK;
}


/* TCP and TLS now, in parallel with the rest of the call's start */

ngx_int_t
ngx_voice_llm_warm(ngx_voice_llm_t *llm)
{
    return ngx_voice_hc_warm(&llm->hc);
}


/*
 * Sends the conversation (the system prompt is the call's) and
 * streams the reply through the events.  A reply in progress is
 * cancelled first.
 */

ngx_int_t
ngx_voice_llm_request(ngx_voice_llm_t *llm, ngx_voice_llm_conversation_t *conv)
{
    size_t                   len;
    const char              *error;
    ngx_voice_loc_conf_t    *conf;
    ngx_voice_oa_request_t   oa;

    conf = llm->call->conf;

    if (llm->state != NGX_VOICE_LLM_IDLE) {
        ngx_voice_llm_cancel(llm);
    }

    ngx_memzero(&oa, sizeof(ngx_voice_oa_request_t));

    oa.model.data = (char *) llm->model.data;
    oa.model.len = llm->model.len;

    if (llm->system.len) {
        oa.system.data = (char *) llm->system.data;
        oa.system.len = llm->system.len;
    }

    oa.messages = conv->messages;
    oa.nmessages = conv->nmessages;
    oa.max_completion_tokens = (unsigned) conf->llm_max_tokens;
    oa.temperature = conf->llm_temperature >= 0
                     ? (double) conf->llm_temperature / 100 : -1;
    oa.include_usage = 1;

    if (llm->tools.len) {
        oa.tools.data = (char *) llm->tools.data;
        oa.tools.len = llm->tools.len;
    }

    llm->body = ngx_voice_oa_request(&oa, &len, &error);

    if (llm->body == NULL) {
        ngx_log_error(NGX_LOG_ALERT, llm->call->connection->log, 0,
                      "voice: cannot build the LLM request: %s", error);
        return NGX_ERROR;
    }

    llm->body_len = len;
    llm->failovers = 0;

    return ngx_voice_llm_send(llm);
}


/* (re)sends the request body held in llm->body */

static ngx_int_t
ngx_voice_llm_send(ngx_voice_llm_t *llm)
{
    ngx_int_t                rc;
    ngx_uint_t               sends;
    ngx_voice_hc_request_t   rq;

    ngx_voice_sse_reset(&llm->sse);
    ngx_voice_oa_stream_reset(&llm->stream);

    ngx_str_set(&rq.method, "POST");
    rq.uri = llm->hc.leg.ep->uri;
    rq.fields = llm->fields;
    rq.nfields = 3;
    rq.body = (u_char *) llm->body;
    rq.body_len = llm->body_len;
    rq.timeout = llm->call->conf->llm_timeout;

    ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));

    llm->state = NGX_VOICE_LLM_REQUESTING;
    llm->sent = ngx_current_msec;
    llm->first_token = 0;
    llm->requests++;
    llm->failed = 0;
    sends = ++llm->sends;

    rc = ngx_voice_hc_request(&llm->hc, &rq);

    if (llm->sends != sends || llm->failed) {
        /* failed at once, and handled: failed over, or reported */
        return NGX_OK;
    }

    if (rc == NGX_ERROR || rc == NGX_BUSY) {
        ngx_voice_llm_end(llm);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_voice_llm_header(ngx_voice_hc_t *hc)
{
    size_t            len;
    const char       *v, *rem, *reset;
    ngx_voice_llm_t  *llm;

    llm = hc->data;

    if (hc->status == 429) {
        v = ngx_voice_hc_header(hc, "retry-after", &len);

        if (v) {
            llm->err.retry_after.len = ngx_min(len, NGX_VOICE_LLM_ERR_TEXT);
            llm->err.retry_after.data = llm->err_text[3];
            ngx_memcpy(llm->err_text[3], v, llm->err.retry_after.len);
        }

        rem = ngx_voice_hc_header(hc, "x-ratelimit-remaining-tokens-minute",
                                  &len);
        reset = ngx_voice_hc_header(hc, "x-ratelimit-reset-tokens-minute",
                                    &len);

        ngx_log_error(NGX_LOG_WARN, &hc->leg.log, 0,
                      "voice: LLM rate limited: retry-after %s, "
                      "x-ratelimit-remaining-tokens-minute %s, "
                      "x-ratelimit-reset-tokens-minute %s",
                      v ? v : "-", rem ? rem : "-", reset ? reset : "-");
        return;
    }

    if (hc->status < 200 || hc->status > 299) {
        return;
    }

    if (!hc->http.event_stream) {
        ngx_log_error(NGX_LOG_WARN, &hc->leg.log, 0,
                      "voice: LLM answer is not text/event-stream");
    }

    llm->state = NGX_VOICE_LLM_STREAMING;
}


static void
ngx_voice_llm_body(ngx_voice_hc_t *hc, u_char *p, size_t n)
{
    int                     rc;
    size_t                  used;
    ngx_voice_llm_t        *llm;
    ngx_voice_sse_event_t   ev;

    llm = hc->data;

    while (n && llm->state == NGX_VOICE_LLM_STREAMING) {

        rc = ngx_voice_sse_parse(&llm->sse, p, n, &used, &ev);

        p += used;
        n -= used;

        if (rc == NGX_VOICE_SSE_AGAIN) {
            return;
        }

        if (rc == NGX_VOICE_SSE_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &hc->leg.log, 0,
                          "voice: invalid LLM event stream: %s",
                          llm->sse.error);
            ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));
            llm->err.leg = NGX_VOICE_LEG_ERR_PROTOCOL;
            ngx_voice_llm_fail(llm);
            return;
        }

        if (ngx_voice_llm_event(llm, &ev) != NGX_OK) {
            return;
        }
    }
}


static ngx_int_t
ngx_voice_llm_event(ngx_voice_llm_t *llm, ngx_voice_sse_event_t *ev)
{
    int                    rc;
    ngx_str_t              text;
    ngx_voice_oa_chunk_t   c;
    ngx_voice_oa_error_t   e;

    if (ev->type_len == 5 && ngx_strncmp(ev->type, "error", 5) == 0) {
        (void) ngx_voice_oa_error_parse(&e, (u_char *) ev->data, ev->len);

        ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));
        llm->err.status = e.status_code;
        llm->err.mid_stream = 1;
        ngx_voice_llm_remote_error(llm, &e.type, &e.message, &e.code);
        ngx_voice_oa_error_done(&e);

        ngx_voice_llm_fail(llm);
        return NGX_ERROR;
    }

    rc = ngx_voice_oa_stream_parse(&llm->stream, &c, (u_char *) ev->data,
                                   ev->len);

    switch (rc) {

    case NGX_VOICE_OA_OK:
        if (c.content.len) {
            if (llm->first_token == 0) {
                llm->first_token = ngx_current_msec;
            }

            text.data = (u_char *) c.content.data;
            text.len = c.content.len;

            llm->events->delta(llm, &text);
        }

        ngx_voice_oa_chunk_done(&c);

        return (llm->state == NGX_VOICE_LLM_STREAMING) ? NGX_OK : NGX_ERROR;

    case NGX_VOICE_OA_DONE:
        ngx_voice_oa_chunk_done(&c);
        return NGX_OK;

    case NGX_VOICE_OA_STREAM_ERROR:
        ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));
        llm->err.status = c.status_code;
        llm->err.mid_stream = 1;
        ngx_voice_llm_remote_error(llm, &c.err_type, &c.err_message,
                                   &c.err_code);
        ngx_voice_oa_chunk_done(&c);

        ngx_voice_llm_fail(llm);
        return NGX_ERROR;

    default: /* NGX_VOICE_OA_BAD */
        ngx_log_error(NGX_LOG_ERR, &llm->hc.leg.log, 0,
                      "voice: invalid LLM chunk: %s", c.error);
        ngx_voice_oa_chunk_done(&c);

        ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));
        llm->err.leg = NGX_VOICE_LEG_ERR_PROTOCOL;
        ngx_voice_llm_fail(llm);
        return NGX_ERROR;
    }
}


static void
ngx_voice_llm_done(ngx_voice_hc_t *hc)
{
    ngx_voice_llm_t  *llm;

    llm = hc->data;

    if (llm->state != NGX_VOICE_LLM_STREAMING) {
        return;
    }

    if (!llm->stream.done && llm->stream.finish == NGX_VOICE_OA_FINISH_NONE)
    {
        ngx_log_error(NGX_LOG_ERR, &hc->leg.log, 0,
                      "voice: LLM stream ended without a finish reason "
                      "or [DONE]");
        ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));
        llm->err.leg = NGX_VOICE_LEG_ERR_PROTOCOL;
        ngx_voice_zone_provider_error(hc->leg.zone, &hc->leg.ep->provider,
                                      llm->err.leg, 0);
        ngx_voice_llm_end(llm);
        llm->events->error(llm, &llm->err);
        return;
    }

    ngx_voice_llm_end(llm);
    llm->events->done(llm, llm->stream.finish);
}


static void
ngx_voice_llm_failed(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err)
{
    ngx_str_t              retry;
    ngx_voice_llm_t       *llm;
    ngx_voice_oa_error_t   e;

    llm = hc->data;

    if (llm->state == NGX_VOICE_LLM_IDLE) {
        return;
    }

    llm->failed = 1;
    retry = llm->err.retry_after;
    ngx_memzero(&llm->err, sizeof(ngx_voice_llm_error_t));

    if (err == NGX_VOICE_LEG_ERR_REMOTE) {
        llm->err.status = hc->status;

        if (hc->status == 429) {
            llm->err.retry_after = retry;
        }

        if (ngx_voice_oa_error_parse(&e, hc->detail, hc->detail_len)
            == NGX_VOICE_OA_OK)
        {
            ngx_voice_llm_remote_error(llm, &e.type, &e.message, &e.code);

        } else {
            /* not JSON: the body's start is the message */
            e.message.data = (char *) hc->detail;
            e.message.len = hc->detail_len;
            e.type.data = "";
            e.type.len = 0;
            e.code = e.type;
            ngx_voice_llm_remote_error(llm, &e.type, &e.message, &e.code);
        }

        ngx_voice_oa_error_done(&e);

    } else {
        llm->err.leg = err;

        ngx_log_error(NGX_LOG_ERR, &hc->leg.log, 0,
                      "voice: LLM request failed (%s) after %M ms",
                      ngx_voice_leg_strerror(err),
                      ngx_current_msec - llm->sent);
    }

    if (ngx_voice_llm_failover(llm, err) == NGX_OK) {
        return;
    }

    ngx_voice_llm_end(llm);
    llm->events->error(llm, &llm->err);
}


/*
 * 429, 5xx, or a transport failure before any text: the same request
 * goes at once to the next endpoint, once around the ring.  A reply cut
 * after some text is not retried (the caller may have heard it).
 */

static ngx_int_t
ngx_voice_llm_failover(ngx_voice_llm_t *llm, ngx_voice_leg_error_e err)
{
    ngx_uint_t             n;
    ngx_voice_hc_pool_t   *pool;

    if (llm->first_token) {
        return NGX_DECLINED;
    }

    if (err == NGX_VOICE_LEG_ERR_REMOTE && llm->err.status != 429
        && llm->err.status < 500)
    {
        return NGX_DECLINED;
    }

    for (n = 1, pool = llm->hc.pool->next;
         pool && pool != llm->hc.pool;
         pool = pool->next)
    {
        n++;
    }

    if (llm->failovers + 1 >= n
        || ngx_voice_hc_failover(&llm->hc) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    llm->failovers++;
    llm->failovers_total++;

    ngx_log_error(NGX_LOG_WARN, &llm->hc.leg.log, 0,
                  "voice: LLM request goes to the next endpoint");

    return ngx_voice_llm_send(llm) == NGX_OK ? NGX_OK : NGX_DECLINED;
}


/* the provider's own words, logged once and kept for the owner */

static void
ngx_voice_llm_remote_error(ngx_voice_llm_t *llm, ngx_voice_text_t *type,
    ngx_voice_text_t *message, ngx_voice_text_t *code)
{
    llm->err.leg = NGX_VOICE_LEG_ERR_REMOTE;

    ngx_voice_llm_set(llm, &llm->err.type, 0, type);
    ngx_voice_llm_set(llm, &llm->err.message, 1, message);
    ngx_voice_llm_set(llm, &llm->err.code, 2, code);

    ngx_log_error(NGX_LOG_ERR, &llm->hc.leg.log, 0,
                  "voice: LLM error%s: HTTP %ui, type \"%V\", code \"%V\": "
                  "\"%V\"%s%V", llm->err.mid_stream ? " mid-stream" : "",
                  llm->err.status, &llm->err.type, &llm->err.code,
                  &llm->err.message,
                  llm->err.retry_after.len ? ", retry-after " : "",
                  &llm->err.retry_after);
}


static void
ngx_voice_llm_set(ngx_voice_llm_t *llm, ngx_str_t *dst, ngx_uint_t slot,
    ngx_voice_text_t *src)
{
    size_t   i;
    u_char  *p;

    p = llm->err_text[slot];

    dst->data = p;
    dst->len = (src && src->data) ? ngx_min(src->len, NGX_VOICE_LLM_ERR_TEXT)
                                  : 0;

    for (i = 0; i < dst->len; i++) {
        p[i] = (u_char) src->data[i];

        if (p[i] < 0x20 || p[i] == 0x7f) {
            p[i] = ' ';
        }
    }
}


/* a failure inside the stream: its connection cannot be reused */

static void
ngx_voice_llm_fail(ngx_voice_llm_t *llm)
{
    /* the HTTP answer was fine (2xx): the stream itself failed */
    ngx_voice_zone_provider_error(llm->hc.leg.zone, &llm->hc.leg.ep->provider,
                                  llm->err.leg, llm->err.status);

    ngx_voice_hc_cancel(&llm->hc);
    ngx_voice_llm_end(llm);

    llm->events->error(llm, &llm->err);
}


static void
ngx_voice_llm_end(ngx_voice_llm_t *llm)
{
    llm->state = NGX_VOICE_LLM_IDLE;

    if (llm->body) {
        ngx_voice_oa_request_free(llm->body);
        llm->body = NULL;
    }
}


/* barge-in: the reply in progress goes, with its connection */

void
ngx_voice_llm_cancel(ngx_voice_llm_t *llm)
{
    if (llm->state != NGX_VOICE_LLM_IDLE) {
        llm->cancelled++;
    }

    ngx_voice_hc_cancel(&llm->hc);
    ngx_voice_llm_end(llm);
}


void
ngx_voice_llm_free(ngx_voice_llm_t *llm)
{
    ngx_voice_llm_cancel(llm);

    ngx_voice_sse_free(&llm->sse);
    ngx_voice_oa_stream_free(&llm->stream);
}
