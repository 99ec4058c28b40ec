/*
 * Copyright (C) ngx_voice authors
 *
 * "voice_pipeline transcribe": streams the caller to speech-to-text and
 * logs what was said, turn by turn.  A genuine operator feature (call
 * transcription, checking an STT account and its latency from nginx) and
 * the way the STT leg is exercised on its own.
 */


#include "ngx_voice_stt.h"


#define NGX_VOICE_TURN_MAX         4096


typedef struct {
    ngx_voice_stt_t           stt;
    u_char                   *turn;           /* final segments so far */
    size_t                    turn_len;
    ngx_uint_t                turns;
    ngx_msec_t                speech_start;
    unsigned                  stopping:1;
} ngx_voice_transcribe_t;


static ngx_int_t ngx_voice_transcribe_start(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_transcribe_media(ngx_voice_call_t *call,
    u_char *audio, size_t len);
static ngx_int_t ngx_voice_transcribe_dtmf(ngx_voice_call_t *call,
    u_char digit);
static ngx_int_t ngx_voice_transcribe_mark(ngx_voice_call_t *call,
    ngx_str_t *name);
static ngx_int_t ngx_voice_transcribe_stop(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_transcribe_closing(ngx_voice_call_t *call);
static void ngx_voice_transcribe_cleanup(ngx_voice_call_t *call);
static void ngx_voice_transcribe_speech(ngx_voice_stt_t *stt);
static void ngx_voice_transcribe_result(ngx_voice_stt_t *stt,
    ngx_str_t *text, ngx_uint_t is_final, ngx_uint_t speech_final);
static void ngx_voice_transcribe_utterance_end(ngx_voice_stt_t *stt);
static void ngx_voice_transcribe_closed(ngx_voice_stt_t *stt,
    ngx_voice_leg_error_e err);
static void ngx_voice_transcribe_turn(ngx_voice_transcribe_t *t,
    const char *why);


ngx_voice_mode_t  ngx_voice_transcribe_mode = {
    ngx_string("transcribe"),
    NGX_VOICE_NEEDS_STT,
    ngx_voice_transcribe_start,
    ngx_voice_transcribe_media,
    ngx_voice_transcribe_dtmf,
    ngx_voice_transcribe_mark,
    ngx_voice_transcribe_stop,
    ngx_voice_transcribe_closing,
    ngx_voice_transcribe_cleanup
};


static ngx_voice_stt_events_t  ngx_voice_transcribe_events = {
    ngx_voice_transcribe_speech,
    ngx_voice_transcribe_result,
    ngx_voice_transcribe_utterance_end,
    ngx_voice_transcribe_closed
};


static ngx_int_t
ngx_voice_transcribe_start(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = ngx_pcalloc(call->request->pool, sizeof(ngx_voice_transcribe_t));
    if (t == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    t->turn = ngx_pnalloc(call->request->pool, NGX_VOICE_TURN_MAX);
    if (t->turn == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    call->mode_ctx = t;

    /* failures are reported through the closed event */
    (void) ngx_voice_stt_start(&t->stt, call, &ngx_voice_transcribe_events,
                               t);

    return NGX_OK;
}


static ngx_int_t
ngx_voice_transcribe_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    return ngx_voice_stt_audio(&t->stt, audio, len);
}


static ngx_int_t
ngx_voice_transcribe_dtmf(ngx_voice_call_t *call, u_char digit)
{
    return NGX_OK;
}


static ngx_int_t
ngx_voice_transcribe_mark(ngx_voice_call_t *call, ngx_str_t *name)
{
    return NGX_OK;
}


/* the caller hung up: wait for the last words, then close */

static ngx_int_t
ngx_voice_transcribe_stop(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;
    t->stopping = 1;

    if (ngx_voice_stt_finish(&t->stt) == NGX_ERROR) {
        return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
    }

    return NGX_OK;
}


/* Twilio closes right after "stop": the last words are still coming */

static ngx_int_t
ngx_voice_transcribe_closing(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    if (t && t->stopping && !t->stt.done) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static void
ngx_voice_transcribe_cleanup(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    if (t == NULL) {
        return;
    }

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "call ended");
    }

    ngx_voice_stt_abort(&t->stt);

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: transcribed %ui turns, %ui bytes of audio sent to "
                  "speech-to-text over %ui connection(s)", t->turns,
                  t->stt.audio_sent, t->stt.connects);
}


static void
ngx_voice_transcribe_speech(ngx_voice_stt_t *stt)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;
    t->speech_start = ngx_current_msec;

    ngx_log_error(NGX_LOG_INFO, stt->call->connection->log, 0,
                  "voice: caller started speaking");
}


static void
ngx_voice_transcribe_result(ngx_voice_stt_t *stt, ngx_str_t *text,
    ngx_uint_t is_final, ngx_uint_t speech_final)
{
    size_t                   n;
    ngx_voice_transcribe_t  *t;

    t = stt->owner;

    if (!is_final) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, stt->call->connection->log, 0,
                       "voice %V: interim \"%V\"", &stt->call->id, text);
        return;
    }

    if (text->len) {
        ngx_log_error(NGX_LOG_INFO, stt->call->connection->log, 0,
                      "voice: final segment \"%V\"", text);

        n = ngx_min(text->len, NGX_VOICE_TURN_MAX - 1 - t->turn_len);

        if (t->turn_len && n) {
            t->turn[t->turn_len++] = ' ';
            n = ngx_min(n, NGX_VOICE_TURN_MAX - 1 - t->turn_len);
        }

        t->turn_len += ngx_cpymem(t->turn + t->turn_len, text->data, n)
                       - (t->turn + t->turn_len);
    }

    if (speech_final && t->turn_len) {
        ngx_voice_transcribe_turn(t, "speech_final");
    }
}


/* no speech_final came (noise kept the VAD open): end the turn here */

static void
ngx_voice_transcribe_utterance_end(ngx_voice_stt_t *stt)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "UtteranceEnd");
    }
}


static void
ngx_voice_transcribe_turn(ngx_voice_transcribe_t *t, const char *why)
{
    t->turns++;

    ngx_log_error(NGX_LOG_INFO, t->stt.call->connection->log, 0,
                  "voice: caller turn %ui (%s): \"%*s\"", t->turns, why,
                  t->turn_len, t->turn);

    t->turn_len = 0;
}


static void
ngx_voice_transcribe_closed(ngx_voice_stt_t *stt, ngx_voice_leg_error_e err)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "end of stream");
    }

    if (t->stopping) {
        (void) ngx_voice_ws_close(stt->call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
        return;
    }

    /* nothing to transcribe with: end the call rather than pretend */
    (void) ngx_voice_ws_close(stt->call, NGX_VOICE_WS_CLOSE_INTERNAL,
                              "speech-to-text unavailable");
}
