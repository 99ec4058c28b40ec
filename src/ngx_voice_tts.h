/*
 * Copyright (C) ngx_voice authors
 *
 * The text-to-speech interface the pipeline uses, and its ElevenLabs
 * WebSocket implementation (ngx_voice_tts_elevenlabs.c): text of a turn
 * in, as it is produced, μ-law 8 kHz audio out, as it is synthesised.
 * One socket per call (multi-stream-input), one context per turn, the
 * context closed on barge-in so no late audio of that turn is played.
 */


#ifndef _NGX_VOICE_TTS_H_INCLUDED_
#define _NGX_VOICE_TTS_H_INCLUDED_


#include "ngx_voice_ws_client.h"


#define NGX_VOICE_TTS_TEXT_MAX     2048   /* text held for one turn */


typedef struct {
    ngx_voice_endpoint_t     *ep;
    ngx_str_t                 uri;            /* path and query */
    ngx_str_t                 key;            /* xi-api-key */
    ngx_str_t                 init;           /* a context's first message */
    ngx_flag_t                multi;
} ngx_voice_tts_conf_t;


typedef struct ngx_voice_tts_s  ngx_voice_tts_t;

typedef struct {
    /* audio of a turn; chars: text characters the chunk voices */
    void                    (*audio)(ngx_voice_tts_t *tts, ngx_uint_t turn,
                                     u_char *audio, size_t len,
                                     ngx_uint_t chars);
    /* the turn's audio is all delivered (complete), or lost with the
     * socket (not complete) */
    void                    (*done)(ngx_voice_tts_t *tts, ngx_uint_t turn,
                                    ngx_uint_t complete);
    /* the socket is gone for good (after finish, or given up) */
    void                    (*closed)(ngx_voice_tts_t *tts,
                                      ngx_voice_leg_error_e err);
} ngx_voice_tts_events_t;


struct ngx_voice_tts_s {
    ngx_voice_wsc_t           ws;
    ngx_voice_tts_conf_t     *conf;
    ngx_voice_call_t         *call;
    ngx_voice_tts_events_t   *events;
    void                     *owner;

    ngx_uint_t                turn;           /* the context now; 0: none */
    u_char                    ctx_id[24];
    size_t                    ctx_len;
    ngx_uint_t                contexts;       /* open on the socket */

    u_char                   *text;           /* not yet sent, this turn */
    size_t                    text_len;
    unsigned                  text_last:1;    /* the turn's text is whole */
    unsigned                  ctx_open:1;     /* init sent for the turn */
    unsigned                  flushed:1;
    unsigned                  ctx_closing:1;  /* close_context sent */

    ngx_uint_t                retries;        /* since audio last came */
    ngx_uint_t                audio_bytes;
    ngx_uint_t                dropped;        /* late audio, cancelled */
    ngx_msec_t                first_audio;    /* of the current turn */

    unsigned                  finishing:1;
    unsigned                  done:1;
};


ngx_int_t ngx_voice_tts_start(ngx_voice_tts_t *tts, ngx_voice_call_t *call,
    ngx_voice_tts_conf_t *conf, ngx_voice_tts_events_t *events, void *owner);
ngx_int_t ngx_voice_tts_say(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *text, size_t len, ngx_uint_t last);
ngx_int_t ngx_voice_tts_cancel(ngx_voice_tts_t *tts);
ngx_int_t ngx_voice_tts_finish(ngx_voice_tts_t *tts);
void ngx_voice_tts_abort(ngx_voice_tts_t *tts);


#endif /* _NGX_VOICE_TTS_H_INCLUDED_ */
