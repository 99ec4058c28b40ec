/*
 * Copyright (C) ngx_voice authors
 *
 * Deepgram Aura WebSocket text-to-speech (/v1/speak, protocols.md §5):
 * one socket per call; a turn is Speak messages with word-bounded text as
 * it arrives, then a Flush; the Flushed that answers that Flush (its
 * sequence_id) ends the turn.  Audio comes back as binary frames of raw
 * mulaw 8000, the bytes Twilio plays.  Aura has no context ids: on
 * barge-in a Clear goes out and every audio frame is dropped until its
 * Cleared comes back, since audio of the cancelled turn may still be in
 * flight.  Close, then the close handshake, at the end of the call.
 */


#include "ngx_voice_tts.h"
#include "ngx_voice_deepgram.h"


#define NGX_VOICE_AURA_MAX_MESSAGE  (1024 * 1024)

/*
 * Aura buffers at most 2000 characters between Flushes: a longer turn is
 * flushed on the way (bytes counted, never fewer than characters).
 */
#define NGX_VOICE_AURA_SPEAK_MAX    1900


static ngx_int_t ngx_voice_aura_start(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_aura_say(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *text, size_t len, ngx_uint_t last);
static ngx_int_t ngx_voice_aura_cancel(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_aura_finish(ngx_voice_tts_t *tts);
static void ngx_voice_aura_abort(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_aura_connect(ngx_voice_tts_t *tts);
static void ngx_voice_aura_open(ngx_voice_wsc_t *ws);
static void ngx_voice_aura_message(ngx_voice_wsc_t *ws,
    ngx_voice_ws_msg_t *msg);
static void ngx_voice_aura_text(ngx_voice_tts_t *tts,
    ngx_voice_ws_msg_t *msg);
static void ngx_voice_aura_closed(ngx_voice_wsc_t *ws,
    ngx_voice_leg_error_e err);
static ngx_int_t ngx_voice_aura_push(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_aura_flush(ngx_voice_tts_t *tts);
static ngx_int_t ngx_voice_aura_send(ngx_voice_tts_t *tts, size_t len);


ngx_voice_tts_ops_t  ngx_voice_tts_aura_ops = {
    ngx_voice_aura_start,
    ngx_voice_aura_say,
    ngx_voice_aura_cancel,
    ngx_voice_aura_finish,
    ngx_voice_aura_abort
};


static ngx_voice_wsc_handler_t  ngx_voice_aura_ws_handler = {
    ngx_voice_aura_open,
    ngx_voice_aura_message,
    ngx_voice_aura_closed
};


/* one handler at a time in a worker: the outgoing JSON is built here */
static u_char  ngx_voice_aura_buf[NGX_VOICE_TTS_TEXT_MAX * 6 + 64];


static ngx_int_t
ngx_voice_aura_start(ngx_voice_tts_t *tts)
{
    ngx_voice_wsc_init(&tts->ws, tts->call, tts->conf->ep,
                       &ngx_voice_aura_ws_handler, tts,
                       NGX_VOICE_AURA_MAX_MESSAGE);

    return ngx_voice_aura_connect(tts);
}


static ngx_int_t
ngx_voice_aura_connect(ngx_voice_tts_t *tts)
{
    /* sequence ids, the text buffer and Clears are per socket */
    tts->flushes = 0;
    tts->spoken = 0;
    tts->clears = 0;

    return ngx_voice_tts_connect(tts, "Authorization");
}


static void
ngx_voice_aura_open(ngx_voice_wsc_t *ws)
{
    ngx_voice_tts_opened(ws->data, ngx_voice_aura_push);
}


/*
 * Text of a turn, as the LLM produces it; last: the turn's text is
 * complete.  A new turn while the previous one's audio may still come
 * clears it first.
 */

static ngx_int_t
ngx_voice_aura_say(ngx_voice_tts_t *tts, ngx_uint_t turn, u_char *text,
    size_t len, ngx_uint_t last)
{
    if (tts->done || tts->finishing) {
        return NGX_DECLINED;
    }

    if (turn != tts->turn) {
        if (tts->turn && tts->ctx_open) {
            (void) ngx_voice_aura_cancel(tts);
        }

        ngx_voice_tts_new_turn(tts, turn);
    }

    if (tts->flushed) {
        return NGX_DECLINED;
    }

    return ngx_voice_tts_hold(tts, text, len, last, ngx_voice_aura_push);
}


static ngx_int_t
ngx_voice_aura_push(ngx_voice_tts_t *tts)
{
    size_t   n, m, len;
    u_char  *p;

    if (tts->ws.state != NGX_VOICE_WSC_OPEN || tts->turn == 0
        || tts->flushed)
    {
        return NGX_OK;
    }

    for ( ;; ) {

        /* whole words only, each chunk ending in a space, until the end */
        n = tts->text_len;

        if (!tts->text_last) {
            p = tts->text + n;

            while (p > tts->text && p[-1] != ' ') {
                p--;
            }

            n = p - tts->text;
        }

        if (n == 0) {
            break;
        }

        if (n > NGX_VOICE_AURA_SPEAK_MAX - tts->spoken) {

            if (tts->spoken) {
                /* what Aura holds is synthesised, the rest follows */
                if (ngx_voice_aura_flush(tts) != NGX_OK) {
                    return NGX_ERROR;
                }

                continue;
            }

            /* one chunk over the cap: at a space, or a character */
            m = NGX_VOICE_AURA_SPEAK_MAX;

            while (m && tts->text[m - 1] != ' ') {
                m--;
            }

            if (m == 0) {
                m = NGX_VOICE_AURA_SPEAK_MAX;

                while (m && (tts->text[m] & 0xc0) == 0x80) {
                    m--;
                }

                if (m == 0) {
                    m = NGX_VOICE_AURA_SPEAK_MAX;
                }
            }

            n = m;
        }

        len = ngx_voice_dg_speak_text(NULL, tts->text, n);

        if (len > sizeof(ngx_voice_aura_buf)) {
            len = 0;
        }

        if (len) {
            (void) ngx_voice_dg_speak_text(ngx_voice_aura_buf, tts->text, n);
        }

        if (ngx_voice_aura_send(tts, len) != NGX_OK) {
            return NGX_ERROR;
        }

        tts->ctx_open = 1;
        tts->spoken += n;

        ngx_memmove(tts->text, tts->text + n, tts->text_len - n);
        tts->text_len -= n;
    }

    if (!tts->text_last) {
        return NGX_OK;
    }

    /* the end of the turn: its Flushed says all its audio has come */
    tts->flush_seq = tts->flushes;

    if (ngx_voice_aura_flush(tts) != NGX_OK) {
        return NGX_ERROR;
    }

    tts->ctx_open = 1;
    tts->flushed = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_voice_aura_flush(ngx_voice_tts_t *tts)
{
    ngx_memcpy(ngx_voice_aura_buf, NGX_VOICE_DG_FLUSH,
               ngx_voice_dg_lit_len(NGX_VOICE_DG_FLUSH));

    if (ngx_voice_aura_send(tts, ngx_voice_dg_lit_len(NGX_VOICE_DG_FLUSH))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    tts->flushes++;
    tts->spoken = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_voice_aura_send(ngx_voice_tts_t *tts, size_t len)
{
    if (len == 0 || len > sizeof(ngx_voice_aura_buf)) {
        ngx_log_error(NGX_LOG_ALERT, &tts->ws.leg.log, 0,
                      "voice: text-to-speech message of %uz bytes", len);
        return NGX_ERROR;
    }

    return ngx_voice_wsc_send(&tts->ws, NGX_VOICE_WS_OP_TEXT,
                              ngx_voice_aura_buf, len);
}


/*
 * barge-in: Clear drops what Aura holds of the turn; audio already on its
 * way is dropped here until the Cleared
 */

static ngx_int_t
ngx_voice_aura_cancel(ngx_voice_tts_t *tts)
{
    if (tts->turn == 0) {
        return NGX_OK;
    }

    if (tts->ctx_open && tts->ws.state == NGX_VOICE_WSC_OPEN) {
        ngx_memcpy(ngx_voice_aura_buf, NGX_VOICE_DG_CLEAR,
                   ngx_voice_dg_lit_len(NGX_VOICE_DG_CLEAR));

        if (ngx_voice_aura_send(tts, ngx_voice_dg_lit_len(NGX_VOICE_DG_CLEAR))
            == NGX_OK)
        {
            tts->clears++;
            tts->spoken = 0;
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
ngx_voice_aura_message(ngx_voice_wsc_t *ws, ngx_voice_ws_msg_t *msg)
{
    ngx_voice_tts_t  *tts;

    tts = ws->data;

    if (msg->opcode == NGX_VOICE_WS_OP_TEXT) {
        ngx_voice_aura_text(tts, msg);
        return;
    }

    if (msg->opcode != NGX_VOICE_WS_OP_BINARY || msg->len == 0) {
        return;
    }

    /* audio of a cleared turn may still be on its way: drop it */
    if (tts->clears || tts->turn == 0 || !tts->ctx_open) {
        tts->dropped += msg->len;
        return;
    }

    if (tts->first_audio == 0) {
        tts->first_audio = ngx_current_msec;
    }

    tts->audio_bytes += msg->len;
    tts->retries = 0;

    tts->events->audio(tts, tts->turn, (u_char *) msg->data, msg->len,
                       NULL);
}


static void
ngx_voice_aura_text(ngx_voice_tts_t *tts, ngx_voice_ws_msg_t *msg)
{
    int                  rc;
    ngx_uint_t           turn;
    ngx_voice_wsc_t     *ws;
    ngx_voice_dg_msg_t   m;

    ws = &tts->ws;

    rc = ngx_voice_dg_parse(&m, msg->data, msg->len);

    if (rc != NGX_VOICE_DG_OK) {
        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: invalid message from text-to-speech "
                      "ignored: %s", m.error);
        ngx_voice_dg_done(&m);
        return;
    }

    switch (m.type) {

    case NGX_VOICE_DG_METADATA:
        ngx_log_error(NGX_LOG_INFO, &ws->leg.log, 0,
                      "voice: text-to-speech model \"%*s\", request %*s",
                      m.model_name.len, m.model_name.data,
                      m.request_id.len, m.request_id.data);
        break;

    case NGX_VOICE_DG_FLUSHED:
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &ws->leg.log, 0,
                       "voice %V: text-to-speech flushed %uL, turn %ui",
                       &tts->call->id, m.sequence_id, tts->turn);

        /* the turn's own Flush, not one on the way or of a cleared turn */
        if (tts->clears || tts->turn == 0 || !tts->ctx_open
            || !tts->flushed || m.sequence_id < tts->flush_seq)
        {
            break;
        }

        turn = tts->turn;
        tts->ctx_open = 0;

        ngx_voice_dg_done(&m);
        tts->events->done(tts, turn, 1);
        return;

    case NGX_VOICE_DG_CLEARED:
        if (tts->clears) {
            tts->clears--;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &ws->leg.log, 0,
                       "voice %V: text-to-speech cleared, %ui bytes "
                       "dropped so far", &tts->call->id, tts->dropped);
        break;

    case NGX_VOICE_DG_WARNING:
        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: text-to-speech warning \"%*s\": %*s",
                      m.code.len, m.code.data,
                      m.description.len, m.description.data);
        break;

    case NGX_VOICE_DG_ERROR:
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "voice: text-to-speech error \"%*s\": %*s",
                      m.code.len, m.code.data,
                      m.description.len, m.description.data);
        break;

    default:
        break;
    }

    ngx_voice_dg_done(&m);
}


static void
ngx_voice_aura_closed(ngx_voice_wsc_t *ws, ngx_voice_leg_error_e err)
{
    ngx_voice_tts_lost(ws->data, err, ngx_voice_aura_connect);
}


/* the call ends: Close, and the client's close handshake */

static ngx_int_t
ngx_voice_aura_finish(ngx_voice_tts_t *tts)
{
    tts->finishing = 1;

    if (tts->ws.state == NGX_VOICE_WSC_OPEN) {
        ngx_memcpy(ngx_voice_aura_buf, NGX_VOICE_DG_CLOSE,
                   ngx_voice_dg_lit_len(NGX_VOICE_DG_CLOSE));
        (void) ngx_voice_aura_send(tts,
                                   ngx_voice_dg_lit_len(NGX_VOICE_DG_CLOSE));

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
ngx_voice_aura_abort(ngx_voice_tts_t *tts)
{
    tts->done = 1;
    ngx_voice_wsc_abort(&tts->ws);
}
