/*
 * Copyright (C) ngx_voice authors
 *
 * The text-to-speech interface the pipeline uses: text of a turn in, as
 * it is produced, μ-law 8 kHz audio out, as it is synthesised.  One
 * socket per call; no late audio of a cancelled turn is ever played.
 * The vendor is chosen at configuration time (voice_tts_provider) and
 * the calls below dispatch to its implementation (ngx_voice_tts.c):
 *
 *   ElevenLabs WebSocket (ngx_voice_tts_elevenlabs.c): multi-stream-input,
 *   one context per turn, the context closed on barge-in.
 *
 *   Deepgram Aura WebSocket (ngx_voice_tts_aura.c): Speak text, Flush at
 *   the end of a turn, Flushed ends it; Clear on barge-in, and audio
 *   dropped until Cleared (Aura has no context ids).
 */


#ifndef _NGX_VOICE_TTS_H_INCLUDED_
#define _NGX_VOICE_TTS_H_INCLUDED_


#include "ngx_voice_ws_client.h"
#include "ngx_voice_elevenlabs.h"


#define NGX_VOICE_TTS_TEXT_MAX     2048   /* text held for one turn */

/* reconnects in a row without audio before giving up */
#define NGX_VOICE_TTS_RETRIES      3


typedef enum {
    NGX_VOICE_TTS_ELEVENLABS = 0,
    NGX_VOICE_TTS_AURA
} ngx_voice_tts_vendor_e;


typedef struct {
    ngx_uint_t                vendor;         /* ngx_voice_tts_vendor_e */
    ngx_voice_endpoint_t     *ep;
    ngx_str_t                 uri;            /* path and query */
    ngx_str_t                 key;            /* ElevenLabs: xi-api-key;
                                                 Aura: "Token ..." */
    ngx_flag_t                multi;
    unsigned                  schedule[8];    /* chunk_length_schedule */
    ngx_uint_t                nschedule;
} ngx_voice_tts_conf_t;


typedef struct ngx_voice_tts_s  ngx_voice_tts_t;


/* a vendor's implementation; start finds the common fields set */
typedef struct {
    ngx_int_t               (*start)(ngx_voice_tts_t *tts);
    ngx_int_t               (*say)(ngx_voice_tts_t *tts, ngx_uint_t turn,
                                   u_char *text, size_t len,
                                   ngx_uint_t last);
    ngx_int_t               (*cancel)(ngx_voice_tts_t *tts);
    ngx_int_t               (*finish)(ngx_voice_tts_t *tts);
    void                    (*abort)(ngx_voice_tts_t *tts);
} ngx_voice_tts_ops_t;

typedef struct {
    /* audio of a turn; align: the characters it voices and when
     * (ElevenLabs' alignment, valid during the call), NULL without */
    void                    (*audio)(ngx_voice_tts_t *tts, ngx_uint_t turn,
                                     u_char *audio, size_t len,
                                     ngx_voice_el_align_t *align);
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
    ngx_voice_tts_ops_t      *ops;
    void                     *owner;
    ngx_str_t                 voice;          /* the call's, or "" */
    ngx_str_t                 target;         /* its request, built for */
    void                     *target_ep;      /* this endpoint */

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

    /* Aura: Flushes sent on this socket, the turn's last one, text sent
     * since the last Flush, Clears not yet answered with Cleared */
    ngx_uint_t                flushes;
    ngx_uint_t                flush_seq;
    size_t                    spoken;
    ngx_uint_t                clears;

    ngx_uint_t                retries;        /* since audio last came */
    ngx_uint_t                audio_bytes;
    ngx_uint_t                dropped;        /* late audio, cancelled */
    ngx_msec_t                first_audio;    /* of the current turn */

    unsigned                  finishing:1;
    unsigned                  done:1;
    unsigned                  refused:1;      /* the account, for good */
};


ngx_int_t ngx_voice_tts_start(ngx_voice_tts_t *tts, ngx_voice_call_t *call,
    ngx_voice_tts_conf_t *conf, ngx_voice_tts_events_t *events, void *owner,
    ngx_str_t *voice);
ngx_int_t ngx_voice_tts_say(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *text, size_t len, ngx_uint_t last);
ngx_int_t ngx_voice_tts_cancel(ngx_voice_tts_t *tts);
ngx_int_t ngx_voice_tts_finish(ngx_voice_tts_t *tts);
void ngx_voice_tts_abort(ngx_voice_tts_t *tts);
void ngx_voice_tts_opened(ngx_voice_tts_t *tts,
    ngx_int_t (*push)(ngx_voice_tts_t *tts));
ngx_int_t ngx_voice_tts_connect(ngx_voice_tts_t *tts, const char *auth);
void ngx_voice_tts_new_turn(ngx_voice_tts_t *tts, ngx_uint_t turn);
ngx_int_t ngx_voice_tts_hold(ngx_voice_tts_t *tts, u_char *text, size_t len,
    ngx_uint_t last, ngx_int_t (*push)(ngx_voice_tts_t *tts));
void ngx_voice_tts_lost(ngx_voice_tts_t *tts, ngx_voice_leg_error_e err,
    ngx_int_t (*connect)(ngx_voice_tts_t *tts));


extern ngx_voice_tts_ops_t  ngx_voice_tts_elevenlabs_ops;
extern ngx_voice_tts_ops_t  ngx_voice_tts_aura_ops;


#endif /* _NGX_VOICE_TTS_H_INCLUDED_ */
