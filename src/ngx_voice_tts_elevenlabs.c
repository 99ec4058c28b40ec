/*
 * Copyright (C) ngx_voice authors
 *
 * ElevenLabs WebSocket text-to-speech (multi-stream-input by default):
 * a context per turn opened with the voice settings, text sent in
 * word-bounded chunks ending in a space as it arrives, a flush at the end
 * of the turn, close_context on barge-in (audio that still arrives for a
 * closed context is dropped, never played), close_socket at the end of
 * the call.  Audio comes back as base64 ulaw_8000, the same bytes Twilio
 * plays: no transcoding anywhere.
 */


#include "ngx_voice_tts.h"
#include "ngx_voice_elevenlabs.h"


#define NGX_VOICE_TTS_MAX_MESSAGE  (1024 * 1024)
#define NGX_VOICE_TTS_CONTEXTS     5      /* the provider's cap */


static ngx_int_t ngx_voice_tts_el_start(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_tts_el_say(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *text, size_t len, ngx_uint_t last);
static ngx_int_t ngx_voice_tts_el_cancel(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_tts_el_finish(ngx_voice_tts_t *tts);
static void ngx_voice_tts_el_abort(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_tts_el_connect(ngx_voice_tts_t *tts);
static void ngx_voice_tts_open(ngx_voice_wsc_t *ws);
static void ngx_voice_tts_message(ngx_voice_wsc_t *ws,
    ngx_voice_ws_msg_t *msg);
static void ngx_voice_tts_closed(ngx_voice_wsc_t *ws,
    ngx_voice_leg_error_e err);
static ngx_int_t ngx_voice_tts_push(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_tts_send(ngx_voice_tts_t *tts, size_t len);
static ngx_uint_t ngx_voice_tts_el_refusal(ngx_voice_text_t *code);


ngx_voice_tts_ops_t  ngx_voice_tts_elevenlabs_ops = {
    ngx_voice_tts_el_start,
    ngx_voice_tts_el_say,
    ngx_voice_tts_el_cancel,
    ngx_voice_tts_el_finish,
    ngx_voice_tts_el_abort
};


static ngx_voice_wsc_handler_t  ngx_voice_tts_ws_handler = {
    ngx_voice_tts_open,
    ngx_voice_tts_message,
    ngx_voice_tts_closed
};


/*
 * A worker runs one handler at a time: the parsed message (16 KiB with
 * its alignment tables) and the outgoing JSON are built here, not in
 * every call's memory.
 */
static ngx_voice_el_msg_t  ngx_voice_tts_msg;
static u_char              ngx_voice_tts_buf[NGX_VOICE_TTS_TEXT_MAX * 6
                                             + 256];


static ngx_int_t
ngx_voice_tts_el_start(ngx_voice_tts_t *tts)
{
    ngx_voice_wsc_init(&tts->ws, tts->call, tts->conf->ep,
                       &ngx_voice_tts_ws_handler, tts,
                       NGX_VOICE_TTS_MAX_MESSAGE);

    return ngx_voice_tts_el_connect(tts);
}


static ngx_int_t
ngx_voice_tts_el_connect(ngx_voice_tts_t *tts)
{
    /* contexts are per socket */
    tts->contexts = 0;

    return ngx_voice_tts_connect(tts, "xi-api-key");
}


static void
ngx_voice_tts_open(ngx_voice_wsc_t *ws)
{
    ngx_voice_tts_opened(ws->data, ngx_voice_tts_push);
}


/*
 * Text of a turn, as the LLM produces it; last: the turn's text is
 * complete.  A new turn number starts a new context.
 */

static ngx_int_t
ngx_voice_tts_el_say(ngx_voice_tts_t *tts, ngx_uint_t turn, u_char *text,
    size_t len, ngx_uint_t last)
{
    if (tts->done || tts->finishing) {
        return NGX_DECLINED;
    }

    if (turn != tts->turn) {
        if (tts->turn && tts->ctx_open && !tts->flushed) {
            (void) ngx_voice_tts_el_cancel(tts);
        }

        ngx_voice_tts_new_turn(tts, turn);

        tts->ctx_len = ngx_sprintf(tts->ctx_id, "turn-%ui", turn)
                       - tts->ctx_id;
        tts->ctx_closing = 0;
    }

    return ngx_voice_tts_hold(tts, text, len, last, ngx_voice_tts_push);
}


static ngx_int_t
ngx_voice_tts_push(ngx_voice_tts_t *tts)
{
    size_t                n, len, ctx_len;
    u_char               *p, *ctx;
    unsigned              flags;
    ngx_voice_el_init_t   init;

    if (tts->ws.state != NGX_VOICE_WSC_OPEN || tts->turn == 0
        || tts->flushed)
    {
        return NGX_OK;
    }

    /* single-context messages carry no context_id */
    ctx = tts->conf->multi ? tts->ctx_id : NULL;
    ctx_len = tts->conf->multi ? tts->ctx_len : 0;

    if (!tts->ctx_open) {
        if (tts->contexts >= NGX_VOICE_TTS_CONTEXTS) {
            ngx_log_error(NGX_LOG_WARN, &tts->ws.leg.log, 0,
                          "voice: text-to-speech has %ui contexts open, "
                          "waiting", tts->contexts);
            return NGX_AGAIN;
        }

        ngx_voice_el_init_defaults(&init);
        init.schedule = tts->conf->schedule;
        init.nschedule = tts->conf->nschedule;

        len = ngx_voice_el_init(NULL, &init, ctx, ctx_len);
        (void) ngx_voice_el_init(ngx_voice_tts_buf, &init, ctx, ctx_len);

        if (ngx_voice_tts_send(tts, len) != NGX_OK) {
            return NGX_ERROR;
        }

        tts->ctx_open = 1;
        tts->contexts++;
    }

    /* whole words only, each chunk ending in a space, until the end */
    n = tts->text_len;

    if (!tts->text_last) {
        p = tts->text + n;

        while (p > tts->text && p[-1] != ' ') {
            p--;
        }

        n = p - tts->text;
    }

    if (n == 0 && !tts->text_last) {
        return NGX_OK;
    }

    if (tts->text_last && (n == 0 || tts->text[n - 1] != ' ')
        && n < NGX_VOICE_TTS_TEXT_MAX)
    {
        tts->text[n++] = ' ';
    }

    flags = tts->text_last ? NGX_VOICE_EL_FLUSH : 0;

    len = ngx_voice_el_text(NULL, tts->text, n, flags, ctx, ctx_len);
    (void) ngx_voice_el_text(ngx_voice_tts_buf, tts->text, n, flags, ctx,
                             ctx_len);

    if (ngx_voice_tts_send(tts, len) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memmove(tts->text, tts->text + n, tts->text_len - ngx_min(n,
                tts->text_len));
    tts->text_len -= ngx_min(n, tts->text_len);

    if (!tts->text_last) {
        return NGX_OK;
    }

    tts->flushed = 1;

    /*
     * A multi-stream context says isFinal only when it is closed: closing
     * it right after the flush makes isFinal follow the last audio.
     */
    if (tts->conf->multi) {
        len = ngx_voice_el_close_context(NULL, tts->ctx_id, tts->ctx_len);
        (void) ngx_voice_el_close_context(ngx_voice_tts_buf, tts->ctx_id,
                                          tts->ctx_len);

        if (ngx_voice_tts_send(tts, len) != NGX_OK) {
            return NGX_ERROR;
        }

        tts->ctx_closing = 1;

        return NGX_OK;
    }

    /*
     * Single context: the end of input makes the socket say isFinal and
     * close; the next turn gets a new socket (hence multi by default)
     */
    ngx_memcpy(ngx_voice_tts_buf, NGX_VOICE_EL_END_OF_INPUT,
               ngx_voice_el_lit_len(NGX_VOICE_EL_END_OF_INPUT));

    return ngx_voice_tts_send(tts,
                              ngx_voice_el_lit_len(NGX_VOICE_EL_END_OF_INPUT));
}


/* errors another connection would only repeat */

static ngx_uint_t
ngx_voice_tts_el_refusal(ngx_voice_text_t *code)
{
    ngx_uint_t  i;

    static const char  *refusals[] = {
        "invalid_api_key", "quota_exceeded", "voice_not_found",
        "invalid_output_format", NULL
    };

    for (i = 0; refusals[i]; i++) {
        if (code->len == ngx_strlen(refusals[i])
            && ngx_strncmp(code->data, refusals[i], code->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_voice_tts_send(ngx_voice_tts_t *tts, size_t len)
{
    if (len == 0 || len > sizeof(ngx_voice_tts_buf)) {
        ngx_log_error(NGX_LOG_ALERT, &tts->ws.leg.log, 0,
                      "voice: text-to-speech message of %uz bytes", len);
        return NGX_ERROR;
    }

    return ngx_voice_wsc_send(&tts->ws, NGX_VOICE_WS_OP_TEXT,
                              ngx_voice_tts_buf, len);
}


/* barge-in: the turn's context goes, and with it any audio still due */

static ngx_int_t
ngx_voice_tts_el_cancel(ngx_voice_tts_t *tts)
{
    size_t  len;

    if (tts->turn == 0) {
        return NGX_OK;
    }

    if (tts->ctx_open && !tts->ctx_closing
        && tts->ws.state == NGX_VOICE_WSC_OPEN)
    {
        len = ngx_voice_el_close_context(NULL, tts->ctx_id, tts->ctx_len);
        (void) ngx_voice_el_close_context(ngx_voice_tts_buf, tts->ctx_id,
                                          tts->ctx_len);
        (void) ngx_voice_tts_send(tts, len);

        if (tts->contexts) {
            tts->contexts--;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &tts->ws.leg.log, 0,
                   "voice %V: text-to-speech turn %ui cancelled",
                   &tts->call->id, tts->turn);

    tts->turn = 0;
    tts->ctx_open = 0;
    tts->text_len = 0;

    return NGX_OK;
}


static void
ngx_voice_tts_message(ngx_voice_wsc_t *ws, ngx_voice_ws_msg_t *msg)
{
    int                  rc;
    ngx_uint_t           mine;
    ngx_voice_tts_t     *tts;
    ngx_voice_el_msg_t  *m;

    tts = ws->data;
    m = &ngx_voice_tts_msg;

    if (msg->opcode != NGX_VOICE_WS_OP_TEXT) {
        return;
    }

    rc = ngx_voice_el_parse(m, msg->data, msg->len);

    if (rc != NGX_VOICE_EL_OK) {
        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: invalid message from text-to-speech "
                      "ignored: %s", m->error);
        ngx_voice_el_done(m);
        return;
    }

    /* audio of a cancelled turn may still be on its way: drop it */
    mine = tts->turn
           && (!tts->conf->multi
               || (m->context_id.len == tts->ctx_len
                   && ngx_strncmp(m->context_id.data, tts->ctx_id,
                                  tts->ctx_len)
                      == 0));

    switch (m->kind) {

    case NGX_VOICE_EL_AUDIO:
        if (!mine) {
            tts->dropped += m->audio_len;
            break;
        }

        if (tts->first_audio == 0) {
            tts->first_audio = ngx_current_msec;
        }

        tts->audio_bytes += m->audio_len;
        tts->retries = 0;

        tts->events->audio(tts, tts->turn, (u_char *) m->audio,
                           m->audio_len,
                           m->alignment.present ? &m->alignment : NULL);

        if (!m->is_final || tts->turn == 0) {
            break;
        }

        /* fall through */

    case NGX_VOICE_EL_FINAL:
        if (mine) {
            if (tts->contexts) {
                tts->contexts--;
            }

            tts->ctx_open = 0;
            tts->events->done(tts, tts->turn, 1);
        }

        break;

    case NGX_VOICE_EL_ERROR:
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "voice: text-to-speech error \"%*s\": %*s",
                      m->err_code.len, m->err_code.data,
                      m->err_message.len, m->err_message.data);

        /* the upgrade is accepted, then the account is refused */
        tts->refused = ngx_voice_tts_el_refusal(&m->err_code);
        break;

    default:
        break;
    }

    ngx_voice_el_done(m);
}


static void
ngx_voice_tts_closed(ngx_voice_wsc_t *ws, ngx_voice_leg_error_e err)
{
    ngx_voice_tts_lost(ws->data, err, ngx_voice_tts_el_connect);
}


/* the call ends: close_socket, and the client's close handshake */

static ngx_int_t
ngx_voice_tts_el_finish(ngx_voice_tts_t *tts)
{
    tts->finishing = 1;

    if (tts->ws.state == NGX_VOICE_WSC_OPEN) {
        if (tts->conf->multi) {
            ngx_memcpy(ngx_voice_tts_buf, NGX_VOICE_EL_CLOSE_SOCKET,
                       ngx_voice_el_lit_len(NGX_VOICE_EL_CLOSE_SOCKET));
            (void) ngx_voice_tts_send(tts,
                         ngx_voice_el_lit_len(NGX_VOICE_EL_CLOSE_SOCKET));
        }

        return ngx_voice_wsc_close(&tts->ws, NGX_VOICE_WS_CLOSE_NORMAL,
                                   NULL);
    }

    if (tts->ws.state == NGX_VOICE_WSC_CLOSED
        || tts->ws.state == NGX_VOICE_WSC_IDLE)
    {
        tts->done = 1;
        tts->events->closed(tts, NGX_VOICE_LEG_OK);
    }

    return NGX_OK;
}


static void
ngx_voice_tts_el_abort(ngx_voice_tts_t *tts)
{
    tts->done = 1;
    ngx_voice_wsc_abort(&tts->ws);
}
