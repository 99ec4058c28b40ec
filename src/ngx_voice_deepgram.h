/*
 * Copyright (C) ngx_voice authors
 *
 * Deepgram: live STT (/v1/listen) query builder, server message parser
 * and control messages; Aura TTS (/v1/speak) query builder, Speak
 * builder, control messages and text message parser.  nginx-free; cJSON.
 *
 * Builders take dst == NULL to return the exact length, and write that
 * many bytes otherwise (no NUL).
 */


#ifndef _NGX_VOICE_DEEPGRAM_H_INCLUDED_
#define _NGX_VOICE_DEEPGRAM_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_voice_json.h"


/* tri-state options: 0 (a zeroed struct) leaves the parameter out */
#define NGX_VOICE_DG_OMIT          0
#define NGX_VOICE_DG_TRUE          1
#define NGX_VOICE_DG_FALSE         2

/* endpointing: > 0 milliseconds, 0 omitted, this: "endpointing=false" */
#define NGX_VOICE_DG_ENDPOINTING_OFF  -1


/* client -> STT text frames (never send an empty binary frame) */
#define NGX_VOICE_DG_KEEPALIVE     "{\"type\":\"KeepAlive\"}"
#define NGX_VOICE_DG_FINALIZE      "{\"type\":\"Finalize\"}"
#define NGX_VOICE_DG_CLOSE_STREAM  "{\"type\":\"CloseStream\"}"

/* client -> Aura text frames */
#define NGX_VOICE_DG_FLUSH         "{\"type\":\"Flush\"}"
#define NGX_VOICE_DG_CLEAR         "{\"type\":\"Clear\"}"
#define NGX_VOICE_DG_CLOSE         "{\"type\":\"Close\"}"

#define ngx_voice_dg_lit_len(s)    (sizeof(s) - 1)


typedef struct {
    ngx_voice_text_t      model;          /* e.g. nova-3; NULL: omitted */
    ngx_voice_text_t      language;       /* NULL: omitted */
    ngx_voice_text_t      encoding;       /* NULL: "mulaw" */
    unsigned              sample_rate;    /* 0: 8000 */
    unsigned              channels;       /* 0: 1 */
    int                   interim_results;    /* NGX_VOICE_DG_OMIT/... */
    int                   endpointing;    /* see ENDPOINTING_OFF */
    unsigned              utterance_end_ms;   /* 0: omitted */
    int                   vad_events;
    int                   smart_format;
    int                   punctuate;
    const ngx_voice_text_t *keyterms;     /* keyterm=..., repeated */
    size_t                nkeyterms;
    ngx_voice_text_t      extra;          /* raw "a=b&c=d", appended */
} ngx_voice_dg_listen_t;


/*
 * The query string (without "?") for /v1/listen: encoding, sample_rate,
 * channels always; values percent-encoded; extra appended verbatim after
 * '&'.  Returns 0 when extra is not query-safe (ngx_voice_query_safe).
 */
size_t ngx_voice_dg_listen_query(unsigned char *dst,
    const ngx_voice_dg_listen_t *o);


typedef struct {
    ngx_voice_text_t      model;          /* e.g. aura-2-helena-en */
    ngx_voice_text_t      encoding;       /* NULL: "mulaw" */
    unsigned              sample_rate;    /* 0: 8000 */
    double                speed;          /* <= 0: omitted */
    int                   mip_opt_out;    /* tri-state */
    ngx_voice_text_t      extra;
} ngx_voice_dg_speak_t;


/* the query string for /v1/speak (no "container": raw audio on WS) */
size_t ngx_voice_dg_speak_query(unsigned char *dst,
    const ngx_voice_dg_speak_t *o);

/* {"type":"Speak","text":"..."} with JSON escaping (invalid UTF-8 →
 * U+FFFD, see ngx_voice_json_escape) */
size_t ngx_voice_dg_speak_text(unsigned char *dst, const unsigned char *text,
    size_t len);


typedef enum {
    NGX_VOICE_DG_RESULTS = 1,
    NGX_VOICE_DG_UTTERANCE_END,
    NGX_VOICE_DG_SPEECH_STARTED,
    NGX_VOICE_DG_METADATA,     /* STT end-of-stream summary, Aura start */
    NGX_VOICE_DG_FLUSHED,      /* Aura */
    NGX_VOICE_DG_CLEARED,      /* Aura */
    NGX_VOICE_DG_WARNING,
    NGX_VOICE_DG_ERROR,
    NGX_VOICE_DG_UNKNOWN       /* must be ignored */
} ngx_voice_dg_type_e;

/* parse results */
#define NGX_VOICE_DG_OK            0
#define NGX_VOICE_DG_BAD_JSON      1
#define NGX_VOICE_DG_BAD_MESSAGE   2


typedef struct {
    ngx_voice_dg_type_e   type;
    ngx_voice_text_t      type_name;      /* as sent */

    /* Results */
    unsigned              is_final;
    unsigned              speech_final;
    unsigned              from_finalize;
    double                start;          /* seconds of stream time */
    double                duration;
    ngx_voice_text_t      transcript;     /* alternatives[0]; may be "" */
    double                confidence;
    size_t                words;          /* alternatives[0].words count */

    /* UtteranceEnd; Results: the end of the last word (-1: none) */
    double                last_word_end;

    /* SpeechStarted */
    double                timestamp;

    /* Results (metadata.request_id), Metadata */
    ngx_voice_text_t      request_id;
    ngx_voice_text_t      model_name;     /* Aura Metadata */

    /* Flushed, Cleared */
    uint64_t              sequence_id;

    /* Warning, Error: description/err_msg and code/err_code */
    ngx_voice_text_t      description;
    ngx_voice_text_t      code;

    const char           *error;          /* static text on failure */
    void                 *root;
} ngx_voice_dg_msg_t;


/*
 * Parses one text message of the STT or the Aura socket.  Strings point
 * into the cJSON tree until ngx_voice_dg_done(m), which must be called
 * whatever the result.  BAD_MESSAGE: no string "type", or a Results
 * message whose channel/alternatives are not the documented shape.
 */
int ngx_voice_dg_parse(ngx_voice_dg_msg_t *m, const unsigned char *json,
    size_t len);
void ngx_voice_dg_done(ngx_voice_dg_msg_t *m);


#endif /* _NGX_VOICE_DEEPGRAM_H_INCLUDED_ */
