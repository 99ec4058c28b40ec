/*
 * Copyright (C) ngx_voice authors
 *
 * The Twilio Media Streams session on top of the WebSocket: message
 * order (connected, start, media/dtmf/mark, stop), the call's identity
 * and counters, dispatch to the location's pipeline mode, and the
 * media/mark/clear messages we send back.
 */


#include "ngx_voice.h"
#include "ngx_voice_zone.h"


static ngx_int_t ngx_voice_call_start(ngx_voice_call_t *call,
    ngx_voice_tw_msg_t *m);
static ngx_int_t ngx_voice_call_own_stream(ngx_voice_call_t *call,
    ngx_voice_tw_msg_t *m);
static void ngx_voice_call_violation(ngx_voice_call_t *call,
    ngx_voice_tw_msg_t *m, const char *what);


ngx_int_t
ngx_voice_call_text(ngx_voice_call_t *call, u_char *data, size_t len)
{
    int                  rc;
    ngx_str_t            name;
    ngx_int_t            res;
    ngx_connection_t    *c;
    ngx_voice_tw_msg_t   m;

    c = call->connection;
    res = NGX_OK;

    rc = ngx_voice_tw_parse(&m, data, len);

    if (rc == NGX_VOICE_TW_BAD_JSON) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "voice: malformed JSON from Twilio (%s), "
                      "closing with 1007", m.error);
        ngx_voice_tw_done(&m);
        return ngx_voice_ws_fail(call, NGX_VOICE_WS_CLOSE_INVALID_DATA,
                                 "malformed JSON");
    }

    if (rc != NGX_VOICE_TW_OK) {
        ngx_voice_call_violation(call, &m, m.error);
        ngx_voice_tw_done(&m);
        return NGX_ERROR;
    }

    switch (m.event) {

    case NGX_VOICE_TW_CONNECTED:
        if (call->state != NGX_VOICE_CALL_OPEN || call->connected) {
            ngx_voice_call_violation(call, &m, "unexpected \"connected\"");
            res = NGX_ERROR;
            break;
        }

        call->connected = 1;

        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "voice %V: connected, protocol \"%*s\"", &call->id,
                       m.protocol.len, m.protocol.data);
        break;

    case NGX_VOICE_TW_START:
        if (call->state != NGX_VOICE_CALL_OPEN) {
            ngx_voice_call_violation(call, &m, "second \"start\"");
            res = NGX_ERROR;
            break;
        }

        res = ngx_voice_call_start(call, &m);
        break;

    case NGX_VOICE_TW_MEDIA:
        if (ngx_voice_call_own_stream(call, &m) != NGX_OK) {
            res = NGX_ERROR;
            break;
        }

        if (m.chunk && m.chunk != call->last_chunk + 1) {
            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                           "voice %V: media chunk %uL after %uL", &call->id,
                           m.chunk, call->last_chunk);
        }

        call->last_chunk = m.chunk;
        call->media_in++;
        call->audio_in += m.audio_len;

        if (call->state == NGX_VOICE_CALL_STARTED) {
            res = call->mode->media(call, (u_char *) m.audio, m.audio_len);
        }

        break;

    case NGX_VOICE_TW_DTMF:
        if (ngx_voice_call_own_stream(call, &m) != NGX_OK) {
            res = NGX_ERROR;
            break;
        }

        call->dtmf++;

        ngx_log_error(NGX_LOG_INFO, c->log, 0, "voice: DTMF \"%c\"",
                      m.digit);

        if (call->state == NGX_VOICE_CALL_STARTED) {
            res = call->mode->dtmf(call, (u_char) m.digit);
        }

        break;

    case NGX_VOICE_TW_MARK:
        if (ngx_voice_call_own_stream(call, &m) != NGX_OK) {
            res = NGX_ERROR;
            break;
        }

        call->marks_echoed++;

        name.data = (u_char *) m.mark.data;
        name.len = m.mark.len;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "voice %V: mark \"%V\" played", &call->id, &name);

        if (call->state == NGX_VOICE_CALL_STARTED) {
            res = call->mode->mark(call, &name);
        }

        break;

    case NGX_VOICE_TW_STOP:
        if (ngx_voice_call_own_stream(call, &m) != NGX_OK) {
            res = NGX_ERROR;
            break;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "voice: Twilio stopped the stream after %ui media "
                      "messages", call->media_in);

        call->state = NGX_VOICE_CALL_STOPPED;
        res = call->mode->stop(call);
        break;

    default: /* NGX_VOICE_TW_UNKNOWN */
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "voice %V: ignoring Twilio event \"%*s\"", &call->id,
                       m.event_name.len, m.event_name.data);
        break;
    }

    if (m.sequence) {
        call->last_sequence = m.sequence;
    }

    ngx_voice_tw_done(&m);

    return res;
}


static ngx_int_t
ngx_voice_call_start(ngx_voice_call_t *call, ngx_voice_tw_msg_t *m)
{
    ngx_uint_t            i;
    ngx_keyval_t         *kv;
    ngx_connection_t     *c;
    ngx_http_request_t   *r;

    c = call->connection;
    r = call->request;

    ngx_memcpy(call->stream_sid, m->stream_sid.data, NGX_VOICE_TW_SID_LEN);
    ngx_memcpy(call->account_sid, m->account_sid.data, NGX_VOICE_TW_SID_LEN);
    ngx_memcpy(call->id_buf, m->call_sid.data, NGX_VOICE_TW_SID_LEN);
    call->id.len = NGX_VOICE_TW_SID_LEN;

    /* copied once per call: the parsed message dies with this handler */
    if (ngx_array_init(&call->params, r->pool, ngx_max(m->nparams, 1),
                       sizeof(ngx_keyval_t))
        != NGX_OK)
    {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    for (i = 0; i < m->nparams; i++) {
        kv = ngx_array_push(&call->params);
        if (kv == NULL) {
            ngx_voice_ws_finish(call, NGX_ERROR);
            return NGX_ERROR;
        }

        kv->key.len = m->params[i].name.len;
        kv->key.data = ngx_pnalloc(r->pool, kv->key.len);

        kv->value.len = m->params[i].value.len;
        kv->value.data = ngx_pnalloc(r->pool, kv->value.len);

        if (kv->key.data == NULL || kv->value.data == NULL) {
            ngx_voice_ws_finish(call, NGX_ERROR);
            return NGX_ERROR;
        }

        ngx_memcpy(kv->key.data, m->params[i].name.data, kv->key.len);
        ngx_memcpy(kv->value.data, m->params[i].value.data, kv->value.len);
    }

    call->state = NGX_VOICE_CALL_STARTED;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "voice: call started, stream %s, %ui custom parameters",
                  call->stream_sid, m->nparams);

    return call->mode->start(call);
}


/* messages after "start" must name the stream it announced */

static ngx_int_t
ngx_voice_call_own_stream(ngx_voice_call_t *call, ngx_voice_tw_msg_t *m)
{
    if (call->state == NGX_VOICE_CALL_OPEN) {
        ngx_voice_call_violation(call, m, "message before \"start\"");
        return NGX_ERROR;
    }

    if (call->state == NGX_VOICE_CALL_STOPPED
        && m->event != NGX_VOICE_TW_MARK)
    {
        ngx_voice_call_violation(call, m, "message after \"stop\"");
        return NGX_ERROR;
    }

    if (m->stream_sid.len != NGX_VOICE_TW_SID_LEN
        || ngx_strncmp(m->stream_sid.data, call->stream_sid,
                       NGX_VOICE_TW_SID_LEN)
           != 0)
    {
        ngx_voice_call_violation(call, m, "streamSid of another stream");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_voice_call_violation(ngx_voice_call_t *call, ngx_voice_tw_msg_t *m,
    const char *what)
{
    ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                  "voice: Twilio protocol violation in \"%*s\" message: "
                  "%s, closing with 1008", m->event_name.len,
                  m->event_name.data, what);

    (void) ngx_voice_ws_fail(call, NGX_VOICE_WS_CLOSE_POLICY,
                             "protocol violation");
}


ngx_int_t
ngx_voice_call_send_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    size_t   n, plen;
    u_char  *p;

    while (len) {
        n = ngx_min(len, NGX_VOICE_MEDIA_CHUNK);
        plen = ngx_voice_tw_media_len(NGX_VOICE_TW_SID_LEN, n);

        p = ngx_voice_ws_frame_start(call, NGX_VOICE_WS_OP_TEXT, plen);
        if (p == NULL) {
            return NGX_ERROR;
        }

        (void) ngx_voice_tw_media(p, (char *) call->stream_sid,
                                  NGX_VOICE_TW_SID_LEN, audio, n);
        (void) ngx_voice_ws_frame_end(call, plen);

        call->media_out++;
        call->audio_out += n;

        audio += n;
        len -= n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_voice_call_send_mark(ngx_voice_call_t *call, u_char *name, size_t len)
{
    size_t   plen;
    u_char  *p;

    if (!ngx_voice_tw_mark_name_valid((char *) name, len)) {
        ngx_log_error(NGX_LOG_ALERT, call->connection->log, 0,
                      "voice: invalid mark name \"%*s\"", len, name);
        return NGX_ERROR;
    }

    plen = ngx_voice_tw_mark_len(NGX_VOICE_TW_SID_LEN, len);

    p = ngx_voice_ws_frame_start(call, NGX_VOICE_WS_OP_TEXT, plen);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_voice_tw_mark(p, (char *) call->stream_sid,
                             NGX_VOICE_TW_SID_LEN, (char *) name, len);
    (void) ngx_voice_ws_frame_end(call, plen);

    call->marks_sent++;

    return NGX_OK;
}


ngx_int_t
ngx_voice_call_send_clear(ngx_voice_call_t *call)
{
    size_t   plen;
    u_char  *p;

    plen = ngx_voice_tw_clear_len(NGX_VOICE_TW_SID_LEN);

    p = ngx_voice_ws_frame_start(call, NGX_VOICE_WS_OP_TEXT, plen);
    if (p == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_voice_tw_clear(p, (char *) call->stream_sid,
                              NGX_VOICE_TW_SID_LEN);
    (void) ngx_voice_ws_frame_end(call, plen);

    call->clears++;

    return NGX_OK;
}


/* idempotent: runs on every way out (our finalize, nginx's cleanup) */

void
ngx_voice_call_cleanup(ngx_voice_call_t *call)
{
    if (call->cleaned) {
        return;
    }

    call->cleaned = 1;

    if (call->mode->cleanup) {
        call->mode->cleanup(call);
    }

    /* after the mode's cleanup: the end reason is final */
    ngx_voice_zone_call_close(call);

    ngx_voice_ws_reader_free(&call->reader);

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: call ended after %M ms: media in %ui (%ui bytes), "
                  "out %ui (%ui bytes), marks %ui sent %ui echoed, "
                  "dtmf %ui, clears %ui, close sent %ui received %ui",
                  ngx_current_msec - call->started, call->media_in,
                  call->audio_in, call->media_out, call->audio_out,
                  call->marks_sent, call->marks_echoed, call->dtmf,
                  call->clears, call->close_code, call->peer_close_code);
}
