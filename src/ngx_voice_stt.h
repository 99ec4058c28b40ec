/*
 * Copyright (C) ngx_voice authors
 *
 * The speech-to-text interface the pipeline uses, and its Deepgram live
 * implementation (ngx_voice_stt_deepgram.c): caller audio in, transcript
 * events out.  The leg connects at "start", holds audio while it is not
 * open (bounded by voice_stt_buffer), reconnects with backoff when the
 * provider drops it, and sends keep-alives when audio stops flowing.
 */


#ifndef _NGX_VOICE_STT_H_INCLUDED_
#define _NGX_VOICE_STT_H_INCLUDED_


#include "ngx_voice_ws_client.h"


#define NGX_VOICE_STT_RETRIES      5


typedef struct ngx_voice_stt_s  ngx_voice_stt_t;

/* one transcript result */
typedef struct {
    ngx_str_t                 text;
    ngx_uint_t                words;
    /* where the last word ends, in bytes of the call's caller audio
     * (the count ngx_voice_stt_audio() has seen); 0: unknown */
    uint64_t                  speech_end;
    unsigned                  is_final:1;     /* the text is settled */
    unsigned                  speech_final:1; /* endpointing: turn end */
    unsigned                  from_finalize:1;
} ngx_voice_stt_result_t;

typedef struct {
    void                    (*speech_started)(ngx_voice_stt_t *stt);
    void                    (*result)(ngx_voice_stt_t *stt,
                                      ngx_voice_stt_result_t *res);
    void                    (*utterance_end)(ngx_voice_stt_t *stt);
    /* finished after ngx_voice_stt_finish(), or given up: err says */
    void                    (*closed)(ngx_voice_stt_t *stt,
                                      ngx_voice_leg_error_e err);
} ngx_voice_stt_events_t;


struct ngx_voice_stt_s {
    ngx_voice_wsc_t           ws;
    ngx_voice_call_t         *call;
    ngx_voice_stt_events_t   *events;
    void                     *owner;
    ngx_str_t                 language;       /* the call's, or "" */
    ngx_str_t                 target;         /* its request, built for */
    void                     *target_ep;      /* this endpoint */

    ngx_event_t               timer;          /* keep-alive, reconnect */
    ngx_msec_t                last_sent;

    /*
     * The last voice_stt_buffer bytes of caller audio, in stream order.
     * Positions are counted from the call's first byte: what arrives
     * while the leg is down, and what was sent but not yet covered by a
     * final result when it dropped, is replayed on the next connection.
     */
    u_char                   *ring;
    size_t                    ring_size;
    uint64_t                  ring_total;     /* bytes ever appended */
    uint64_t                  conn_base;      /* stream time 0 now */
    uint64_t                  confirmed;      /* covered by finals */
    ngx_uint_t                ring_lost;      /* bytes never sent */

    ngx_uint_t                retries;
    ngx_uint_t                failovers;
    ngx_uint_t                connects;
    ngx_uint_t                audio_sent;     /* bytes */
    ngx_uint_t                finals;

    unsigned                  finishing:1;
    unsigned                  done:1;
};


ngx_int_t ngx_voice_stt_start(ngx_voice_stt_t *stt, ngx_voice_call_t *call,
    ngx_voice_stt_events_t *events, void *owner, ngx_str_t *language);
ngx_int_t ngx_voice_stt_audio(ngx_voice_stt_t *stt, u_char *audio,
    size_t len);
ngx_int_t ngx_voice_stt_finalize(ngx_voice_stt_t *stt);
ngx_int_t ngx_voice_stt_finish(ngx_voice_stt_t *stt);
void ngx_voice_stt_abort(ngx_voice_stt_t *stt);


#endif /* _NGX_VOICE_STT_H_INCLUDED_ */
