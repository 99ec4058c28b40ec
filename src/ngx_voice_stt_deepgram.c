/*
 * Copyright (C) ngx_voice authors
 *
 * Deepgram live speech-to-text over the WebSocket client: μ-law frames
 * forwarded as binary messages (never empty), KeepAlive when audio has
 * not flowed for voice_stt_keepalive, Finalize, and CloseStream at the
 * end with a bounded wait for the last results.
 */


#include "ngx_voice_stt.h"
#include "ngx_voice_persona.h"
#include "ngx_voice_deepgram.h"


#define NGX_VOICE_STT_FINISH_WAIT  3000
#define NGX_VOICE_STT_CHUNK        3200    /* replayed audio per frame */


static ngx_int_t ngx_voice_stt_connect(ngx_voice_stt_t *stt);
static void ngx_voice_stt_open(ngx_voice_wsc_t *ws);
static void ngx_voice_stt_message(ngx_voice_wsc_t *ws,
    ngx_voice_ws_msg_t *msg);
static void ngx_voice_stt_closed(ngx_voice_wsc_t *ws,
    ngx_voice_leg_error_e err);
static void ngx_voice_stt_keep(ngx_voice_stt_t *stt, u_char *audio,
    size_t len);
static ngx_int_t ngx_voice_stt_send_text(ngx_voice_stt_t *stt,
    const char *text, size_t len);
static void ngx_voice_stt_timer(ngx_event_t *ev);


static ngx_voice_wsc_handler_t  ngx_voice_stt_ws_handler = {
    ngx_voice_stt_open,
    ngx_voice_stt_message,
    ngx_voice_stt_closed
};


ngx_int_t
ngx_voice_stt_start(ngx_voice_stt_t *stt, ngx_voice_call_t *call,
    ngx_voice_stt_events_t *events, void *owner, ngx_str_t *language)
{
    ngx_voice_loc_conf_t  *conf;

    conf = call->conf;

    ngx_memzero(stt, sizeof(ngx_voice_stt_t));

    stt->call = call;
    stt->events = events;
    stt->owner = owner;

    if (language) {
        stt->language = *language;
    }

    ngx_voice_wsc_init(&stt->ws, call, conf->stt, &ngx_voice_stt_ws_handler,
                       stt, 64 * 1024);

    /* the call's log context names the provider in every line */
    stt->ring_size = conf->stt_buffer;

    if (stt->ring_size) {
        stt->ring = ngx_alloc(stt->ring_size, call->connection->log);
        if (stt->ring == NULL) {
            return NGX_ERROR;
        }
    }

    stt->timer.handler = ngx_voice_stt_timer;
    stt->timer.data = stt;
    stt->timer.log = &stt->ws.leg.log;
    stt->timer.cancelable = 1;

    return ngx_voice_stt_connect(stt);
}


static ngx_int_t
ngx_voice_stt_connect(ngx_voice_stt_t *stt)
{
    ngx_str_t              target;
    ngx_voice_loc_conf_t  *conf;

    conf = stt->call->conf;

    stt->connects++;
    stt->ws.nfields = 0;

    if (ngx_voice_wsc_add_field(&stt->ws, "Authorization", &conf->stt_auth)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    target = stt->ws.leg.ep->request;

    /* the call's own language (a persona): once per endpoint */
    if (stt->language.len) {
        if (stt->target_ep != stt->ws.leg.ep) {
            if (ngx_voice_persona_uri(stt->call, &target, "language=",
                                      &stt->language, &stt->target)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            stt->target_ep = stt->ws.leg.ep;
        }

        target = stt->target;
    }

    return ngx_voice_wsc_connect(&stt->ws, &target);
}


static void
ngx_voice_stt_open(ngx_voice_wsc_t *ws)
{
    size_t            n, off;
    uint64_t          from, oldest;
    ngx_voice_stt_t  *stt;

    stt = ws->data;
    stt->retries = 0;

    /* what the provider has not turned into final text goes again */
    oldest = stt->ring_total > stt->ring_size
             ? stt->ring_total - stt->ring_size : 0;
    from = ngx_max(stt->confirmed, oldest);

    if (stt->confirmed < oldest) {
        stt->ring_lost += oldest - stt->confirmed;
    }

    ngx_log_error(NGX_LOG_INFO, &ws->leg.log, 0,
                  "voice: speech-to-text connected in %M ms, replaying "
                  "%uL ms of audio", ngx_current_msec - ws->leg.opened,
                  (stt->ring_total - from) / 8);

    stt->conn_base = from;

    while (from < stt->ring_total && ws->state == NGX_VOICE_WSC_OPEN) {
        off = (size_t) (from % stt->ring_size);
        n = ngx_min((size_t) (stt->ring_total - from),
                    ngx_min(stt->ring_size - off, NGX_VOICE_STT_CHUNK));

        if (ngx_voice_wsc_send(ws, NGX_VOICE_WS_OP_BINARY, stt->ring + off,
                               n)
            != NGX_OK)
        {
            return;
        }

        stt->audio_sent += n;
        from += n;
    }

    stt->last_sent = ngx_current_msec;

    if (stt->finishing) {
        (void) ngx_voice_stt_finish(stt);
        return;
    }

    ngx_add_timer(&stt->timer, stt->call->conf->stt_keepalive);
}


ngx_int_t
ngx_voice_stt_audio(ngx_voice_stt_t *stt, u_char *audio, size_t len)
{
    if (len == 0 || stt->done || stt->finishing) {
        /* an empty binary frame would end the stream */
        return NGX_OK;
    }

    ngx_voice_stt_keep(stt, audio, len);

    if (stt->ws.state != NGX_VOICE_WSC_OPEN) {
        return NGX_OK;
    }

    if (ngx_voice_wsc_send(&stt->ws, NGX_VOICE_WS_OP_BINARY, audio, len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    stt->audio_sent += len;
    stt->last_sent = ngx_current_msec;

    return NGX_OK;
}


/* every frame is kept in the ring: a copy of 160 bytes, no allocation */

static void
ngx_voice_stt_keep(ngx_voice_stt_t *stt, u_char *audio, size_t len)
{
    size_t  off, n;

    if (stt->ring_size == 0) {
        return;
    }

    if (len > stt->ring_size) {
        audio += len - stt->ring_size;
        stt->ring_total += len - stt->ring_size;
        len = stt->ring_size;
    }

    while (len) {
        off = (size_t) (stt->ring_total % stt->ring_size);
        n = ngx_min(len, stt->ring_size - off);

        ngx_memcpy(stt->ring + off, audio, n);

        stt->ring_total += n;
        audio += n;
        len -= n;
    }
}


static void
ngx_voice_stt_message(ngx_voice_wsc_t *ws, ngx_voice_ws_msg_t *msg)
{
    int                      rc;
    ngx_uint_t               level;
    ngx_voice_stt_t         *stt;
    ngx_voice_dg_msg_t       m;
    ngx_voice_stt_result_t   res;

    stt = ws->data;

    if (msg->opcode != NGX_VOICE_WS_OP_TEXT) {
        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: unexpected binary message from "
                      "speech-to-text ignored");
        return;
    }

    rc = ngx_voice_dg_parse(&m, msg->data, msg->len);

    if (rc != NGX_VOICE_DG_OK) {
        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: invalid message from speech-to-text "
                      "ignored: %s", m.error);
        ngx_voice_dg_done(&m);
        return;
    }

    switch (m.type) {

    case NGX_VOICE_DG_RESULTS:
        res.text.data = (u_char *) m.transcript.data;
        res.text.len = m.transcript.len;
        res.words = m.words;
        res.is_final = m.is_final;
        res.speech_final = m.speech_final;
        res.from_finalize = m.from_finalize;

        /* stream seconds to caller audio: 8000 bytes a second */
        res.speech_end = m.last_word_end >= 0
                         ? stt->conn_base
                           + (uint64_t) (m.last_word_end * 8000)
                         : 0;

        if (m.is_final) {
            stt->finals++;

            /* stream seconds to ring position: 8000 bytes a second */
            if (m.start >= 0 && m.duration >= 0) {
                stt->confirmed = ngx_max(stt->confirmed,
                                         stt->conn_base
                                         + (uint64_t) ((m.start + m.duration)
                                                       * 8000));
            }
        }

        stt->events->result(stt, &res);
        break;

    case NGX_VOICE_DG_SPEECH_STARTED:
        stt->events->speech_started(stt);
        break;

    case NGX_VOICE_DG_UTTERANCE_END:
        stt->events->utterance_end(stt);
        break;

    case NGX_VOICE_DG_METADATA:
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &ws->leg.log, 0,
                       "voice %V: speech-to-text metadata, request %*s",
                       &stt->call->id, m.request_id.len, m.request_id.data);
        break;

    case NGX_VOICE_DG_ERROR:
    case NGX_VOICE_DG_WARNING:
        level = (m.type == NGX_VOICE_DG_ERROR) ? NGX_LOG_ERR : NGX_LOG_WARN;

        ngx_log_error(level, &ws->leg.log, 0,
                      "voice: speech-to-text says \"%*s\": %*s",
                      m.code.len, m.code.data, m.description.len,
                      m.description.data);
        break;

    default:
        break;
    }

    ngx_voice_dg_done(&m);
}


static void
ngx_voice_stt_closed(ngx_voice_wsc_t *ws, ngx_voice_leg_error_e err)
{
    ngx_msec_t             backoff;
    ngx_voice_stt_t       *stt;
    ngx_voice_endpoint_t  *next;

    stt = ws->data;

    if (stt->timer.timer_set) {
        ngx_del_timer(&stt->timer);
    }

    if (stt->finishing || stt->done) {
        stt->done = 1;
        stt->events->closed(stt, err);
        return;
    }

    /* another endpoint of the provider, if any, for the next attempt */
    next = ngx_voice_endpoint_next(ws->leg.ep);

    if (next && err != NGX_VOICE_LEG_OK && !ngx_exiting
        && stt->failovers < NGX_VOICE_STT_RETRIES)
    {
        stt->failovers++;
        ws->leg.ep = next;

        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: speech-to-text failed (%s), trying the next "
                      "endpoint", ngx_voice_leg_strerror(err));

        if (ngx_voice_stt_connect(stt) != NGX_ERROR) {
            return;
        }
    }

    /* a refusal that will not change: wrong key, URL or certificate */
    if (err == NGX_VOICE_LEG_ERR_VERIFY
        || (err == NGX_VOICE_LEG_ERR_HANDSHAKE && ws->status >= 400
            && ws->status < 500 && ws->status != 408 && ws->status != 429))
    {
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "voice: speech-to-text refused (%s), not retrying",
                      ngx_voice_leg_strerror(err));
        stt->done = 1;
        stt->events->closed(stt, err);
        return;
    }

    /* dropped mid-call: reconnect, holding the caller's audio meanwhile */
    if (ngx_exiting || stt->retries >= NGX_VOICE_STT_RETRIES) {
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "voice: speech-to-text lost (%s), giving up after "
                      "%ui attempts", ngx_voice_leg_strerror(err),
                      stt->retries);
        stt->done = 1;
        stt->events->closed(stt, err == NGX_VOICE_LEG_OK
                                 ? NGX_VOICE_LEG_ERR_CLOSED : err);
        return;
    }

    backoff = (ngx_msec_t) 250 << stt->retries;
    stt->retries++;

    ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                  "voice: speech-to-text lost (%s), reconnecting in %M ms",
                  ngx_voice_leg_strerror(err), backoff);

    ngx_add_timer(&stt->timer, backoff);
}


static void
ngx_voice_stt_timer(ngx_event_t *ev)
{
    ngx_voice_stt_t   *stt;
    ngx_voice_call_t  *call;

    stt = ev->data;
    call = stt->call;

    if (stt->ws.state == NGX_VOICE_WSC_CLOSED && !stt->done) {
        (void) ngx_voice_stt_connect(stt);
        goto done;
    }

    if (stt->ws.state == NGX_VOICE_WSC_OPEN && !stt->finishing) {

        /* Deepgram closes with NET-0001 after 10 s without a frame */
        if (ngx_current_msec - stt->last_sent >= call->conf->stt_keepalive) {
            (void) ngx_voice_stt_send_text(stt, NGX_VOICE_DG_KEEPALIVE,
                       ngx_voice_dg_lit_len(NGX_VOICE_DG_KEEPALIVE));
        }

        if (stt->ws.state == NGX_VOICE_WSC_OPEN) {
            ngx_add_timer(&stt->timer, call->conf->stt_keepalive);
        }
    }

done:

    ngx_voice_ws_event_done(call);
    ngx_http_run_posted_requests(call->connection);
}


static ngx_int_t
ngx_voice_stt_send_text(ngx_voice_stt_t *stt, const char *text, size_t len)
{
    stt->last_sent = ngx_current_msec;

    return ngx_voice_wsc_send(&stt->ws, NGX_VOICE_WS_OP_TEXT, (u_char *) text,
                              len);
}


/* forces the results of the audio sent so far */

ngx_int_t
ngx_voice_stt_finalize(ngx_voice_stt_t *stt)
{
    if (stt->ws.state != NGX_VOICE_WSC_OPEN) {
        return NGX_DECLINED;
    }

    return ngx_voice_stt_send_text(stt, NGX_VOICE_DG_FINALIZE,
                                   ngx_voice_dg_lit_len(NGX_VOICE_DG_FINALIZE));
}


/*
 * The call ends: CloseStream makes Deepgram send its last results, then
 * Metadata, then close; events->closed() says when.  Bounded by the
 * WebSocket client's close timeout.
 */

ngx_int_t
ngx_voice_stt_finish(ngx_voice_stt_t *stt)
{
    stt->finishing = 1;

    if (stt->timer.timer_set) {
        ngx_del_timer(&stt->timer);
    }

    switch (stt->ws.state) {

    case NGX_VOICE_WSC_OPEN:
        if (ngx_voice_stt_send_text(stt, NGX_VOICE_DG_CLOSE_STREAM,
                             ngx_voice_dg_lit_len(NGX_VOICE_DG_CLOSE_STREAM))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /*
         * Deepgram sends the last results, Metadata, then a Close; the
         * socket stays open for them, bounded by the client's close timer
         */
        ngx_add_timer(&stt->ws.close_timer, NGX_VOICE_STT_FINISH_WAIT);
        return NGX_AGAIN;

    case NGX_VOICE_WSC_CLOSED:
    case NGX_VOICE_WSC_IDLE:
        stt->done = 1;
        stt->events->closed(stt, NGX_VOICE_LEG_OK);
        return NGX_OK;

    default:
        /* still connecting: the audio held is sent first, then this */
        return NGX_AGAIN;
    }
}


void
ngx_voice_stt_abort(ngx_voice_stt_t *stt)
{
    if (stt->timer.timer_set) {
        ngx_del_timer(&stt->timer);
    }

    stt->done = 1;

    ngx_voice_wsc_abort(&stt->ws);

    if (stt->ring) {
        ngx_free(stt->ring);
        stt->ring = NULL;
    }
}
