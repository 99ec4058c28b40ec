/*
 * Copyright (C) ngx_voice authors
 *
 * "voice_pipeline announce": speaks voice_greeting to the caller with the
 * configured text-to-speech voice, streams the audio to Twilio as it is
 * synthesised, and closes the stream once Twilio reports (mark echo)
 * that the caller has heard all of it, so that the TwiML after
 * <Connect> runs.  Any DTMF key skips it (clear).  An announcement with
 * the operator's own voice, and the way the TTS leg is exercised alone.
 */


#include "ngx_voice_tts.h"


typedef struct {
    ngx_voice_tts_t           tts;
    ngx_uint_t                chunks;         /* media messages sent */
    ngx_msec_t                started;
    ngx_msec_t                first_audio;
    unsigned                  synthesised:1;
    unsigned                  over:1;
} ngx_voice_announce_t;


static ngx_int_t ngx_voice_announce_start(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_announce_media(ngx_voice_call_t *call,
    u_char *audio, size_t len);
static ngx_int_t ngx_voice_announce_dtmf(ngx_voice_call_t *call,
    u_char digit);
static ngx_int_t ngx_voice_announce_mark(ngx_voice_call_t *call,
    ngx_str_t *name);
static ngx_int_t ngx_voice_announce_stop(ngx_voice_call_t *call);
static void ngx_voice_announce_cleanup(ngx_voice_call_t *call);
static void ngx_voice_announce_audio(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *audio, size_t len, ngx_voice_el_align_t *align);
static void ngx_voice_announce_done(ngx_voice_tts_t *tts, ngx_uint_t turn,
    ngx_uint_t complete);
static void ngx_voice_announce_closed(ngx_voice_tts_t *tts,
    ngx_voice_leg_error_e err);


ngx_voice_mode_t  ngx_voice_announce_mode = {
    ngx_string("announce"),
    NGX_VOICE_NEEDS_TTS,
    ngx_voice_announce_start,
    ngx_voice_announce_media,
    ngx_voice_announce_dtmf,
    ngx_voice_announce_mark,
    ngx_voice_announce_stop,
    NULL,
    ngx_voice_announce_cleanup
};


static ngx_voice_tts_events_t  ngx_voice_announce_events = {
    ngx_voice_announce_audio,
    ngx_voice_announce_done,
    ngx_voice_announce_closed
};


static ngx_int_t
ngx_voice_announce_start(ngx_voice_call_t *call)
{
    ngx_str_t              text;
    ngx_voice_announce_t  *a;

    a = ngx_pcalloc(call->request->pool, sizeof(ngx_voice_announce_t));
    if (a == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    call->mode_ctx = a;
    a->started = ngx_current_msec;

    if (ngx_voice_tts_start(&a->tts, call, call->conf->tts,
                            &ngx_voice_announce_events, a, NULL)
        == NGX_ERROR)
    {
        return NGX_ERROR;
    }

    if (ngx_voice_conf_text(call, call->conf->greeting, &text) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the text goes out as soon as the socket is open */
    return ngx_voice_tts_say(&a->tts, 1, text.data, text.len, 1);
}


static ngx_int_t
ngx_voice_announce_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    return NGX_OK;
}


static void
ngx_voice_announce_audio(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *audio, size_t len, ngx_voice_el_align_t *align)
{
    ngx_voice_announce_t  *a;

    a = tts->owner;

    if (a->over) {
        return;
    }

    if (a->first_audio == 0) {
        a->first_audio = ngx_current_msec;

        ngx_log_error(NGX_LOG_INFO, tts->call->connection->log, 0,
                      "voice: announce: first audio %M ms after start",
                      a->first_audio - a->started);
    }

    /* μ-law from the TTS is what Twilio plays: straight through */
    if (ngx_voice_call_send_media(tts->call, audio, len) == NGX_OK) {
        a->chunks++;
    }
}


static void
ngx_voice_announce_done(ngx_voice_tts_t *tts, ngx_uint_t turn,
    ngx_uint_t complete)
{
    ngx_voice_announce_t  *a;

    a = tts->owner;

    if (!complete) {
        if (!a->over) {
            a->over = 1;
            (void) ngx_voice_ws_close(tts->call, NGX_VOICE_WS_CLOSE_INTERNAL,
                                      "text-to-speech unavailable");
        }

        return;
    }

    a->synthesised = 1;

    ngx_log_error(NGX_LOG_INFO, tts->call->connection->log, 0,
                  "voice: announce: synthesised, %ui bytes of audio",
                  tts->audio_bytes);

    /* Twilio echoes this mark when the caller has heard everything */
    (void) ngx_voice_call_send_mark(tts->call, (u_char *) "announce-end",
                                    sizeof("announce-end") - 1);

    (void) ngx_voice_tts_finish(tts);
}


static ngx_int_t
ngx_voice_announce_mark(ngx_voice_call_t *call, ngx_str_t *name)
{
    ngx_voice_announce_t  *a;

    a = call->mode_ctx;

    if (a->over || name->len != sizeof("announce-end") - 1
        || ngx_strncmp(name->data, "announce-end", name->len) != 0)
    {
        return NGX_OK;
    }

    a->over = 1;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: announce: heard in full after %M ms",
                  ngx_current_msec - a->started);

    return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                              "announcement played");
}


static ngx_int_t
ngx_voice_announce_dtmf(ngx_voice_call_t *call, u_char digit)
{
    ngx_voice_announce_t  *a;

    a = call->mode_ctx;

    if (a->over) {
        return NGX_OK;
    }

    a->over = 1;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: announce: skipped by DTMF \"%c\"", digit);

    /* what Twilio buffered stops now; what the TTS still makes is dropped */
    (void) ngx_voice_tts_cancel(&a->tts);
    (void) ngx_voice_call_send_clear(call);
    (void) ngx_voice_tts_finish(&a->tts);

    return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                              "announcement skipped");
}


static ngx_int_t
ngx_voice_announce_stop(ngx_voice_call_t *call)
{
    ngx_voice_announce_t  *a;

    a = call->mode_ctx;
    a->over = 1;

    ngx_voice_tts_abort(&a->tts);

    return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                              "stream stopped");
}


static void
ngx_voice_announce_closed(ngx_voice_tts_t *tts, ngx_voice_leg_error_e err)
{
    ngx_voice_announce_t  *a;

    a = tts->owner;

    if (a->synthesised || a->over) {
        return;
    }

    a->over = 1;

    (void) ngx_voice_ws_close(tts->call, NGX_VOICE_WS_CLOSE_INTERNAL,
                              "text-to-speech unavailable");
}


static void
ngx_voice_announce_cleanup(ngx_voice_call_t *call)
{
    ngx_voice_announce_t  *a;

    a = call->mode_ctx;

    if (a == NULL) {
        return;
    }

    ngx_voice_tts_abort(&a->tts);

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: announce: %ui bytes of speech in %ui media "
                  "messages, %ui bytes of late audio dropped",
                  a->tts.audio_bytes, a->chunks, a->tts.dropped);
}
