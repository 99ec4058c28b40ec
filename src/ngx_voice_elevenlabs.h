/*
 * Copyright (C) ngx_voice authors
 *
 * ElevenLabs text-to-speech WebSocket (stream-input and
 * multi-stream-input): URL builder, client message builders and server
 * message parser (audio decoded in place, alignment).  nginx-free; cJSON.
 *
 * Builders take dst == NULL to return the exact length, and write that
 * many bytes otherwise (no NUL).  Strings are JSON-escaped (invalid
 * UTF-8 becomes U+FFFD, see ngx_voice_json_escape).  ctx == NULL means
 * the single-context protocol (no "context_id").
 */


#ifndef _NGX_VOICE_ELEVENLABS_H_INCLUDED_
#define _NGX_VOICE_ELEVENLABS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_voice_json.h"


#define NGX_VOICE_EL_OMIT          0
#define NGX_VOICE_EL_TRUE          1
#define NGX_VOICE_EL_FALSE         2

/* whole-socket messages */
#define NGX_VOICE_EL_CLOSE_SOCKET  "{\"close_socket\":true}"   /* multi */
#define NGX_VOICE_EL_END_OF_INPUT  "{\"text\":\"\"}"   /* single: closes */

#define ngx_voice_el_lit_len(s)    (sizeof(s) - 1)


typedef struct {
    ngx_voice_text_t      voice_id;       /* required, percent-encoded */
    unsigned              multi;          /* multi-stream-input */
    ngx_voice_text_t      model_id;       /* NULL: omitted */
    ngx_voice_text_t      output_format;  /* NULL: "ulaw_8000" */
    unsigned              inactivity_timeout; /* s; 0: omitted */
    int                   sync_alignment; /* NGX_VOICE_EL_OMIT/TRUE/FALSE */
    int                   auto_mode;
    int                   enable_ssml_parsing;
    int                   enable_logging;
    ngx_voice_text_t      language_code;  /* NULL: omitted */
    ngx_voice_text_t      apply_text_normalization;
    ngx_voice_text_t      extra;          /* raw query, appended */
} ngx_voice_el_url_t;


/*
 * "/v1/text-to-speech/{voice}/stream-input?..." (or multi-stream-input).
 * Returns 0 when voice_id is empty or extra is not query-safe.
 */
size_t ngx_voice_el_path(unsigned char *dst, const ngx_voice_el_url_t *u);


typedef struct {
    /* voice_settings: a negative value (or OMIT) leaves it out */
    double                stability;
    double                similarity_boost;
    double                style;
    double                speed;
    int                   use_speaker_boost;

    /* generation_config.chunk_length_schedule; n == 0: omitted */
    const unsigned       *schedule;
    size_t                nschedule;
} ngx_voice_el_init_t;


/* all voice settings omitted, no schedule */
void ngx_voice_el_init_defaults(ngx_voice_el_init_t *init);

/*
 * {"text":" "[,"context_id":ctx][,"voice_settings":{...}]
 *  [,"generation_config":{"chunk_length_schedule":[...]}]}: the first
 * message of a single-context socket or of a new context.
 */
size_t ngx_voice_el_init(unsigned char *dst, const ngx_voice_el_init_t *init,
    const unsigned char *ctx, size_t ctx_len);

#define NGX_VOICE_EL_TRY_TRIGGER   1   /* "try_trigger_generation":true */
#define NGX_VOICE_EL_FLUSH         2   /* "flush":true */

/* {"text":"...",["try_trigger_generation":true,]["flush":true,]
 *  ["context_id":"..."]} -- text should end with a space */
size_t ngx_voice_el_text(unsigned char *dst, const unsigned char *text,
    size_t len, unsigned flags, const unsigned char *ctx, size_t ctx_len);

/* single {"text":" ","flush":true} (a single space never closes the
 * socket, unlike ""); multi {"context_id":"..","flush":true} */
size_t ngx_voice_el_flush(unsigned char *dst, const unsigned char *ctx,
    size_t ctx_len);

/* multi only: {"context_id":"..","close_context":true} (barge-in) */
size_t ngx_voice_el_close_context(unsigned char *dst,
    const unsigned char *ctx, size_t ctx_len);

/* single {"text":" "}; multi {"text":"","context_id":".."} (resets the
 * context's timer; send its init first) */
size_t ngx_voice_el_keepalive(unsigned char *dst, const unsigned char *ctx,
    size_t ctx_len);


/* ---- server messages -------------------------------------------------- */

#define NGX_VOICE_EL_MAX_CHARS     512

/* parse results */
#define NGX_VOICE_EL_OK            0
#define NGX_VOICE_EL_BAD_JSON      1
#define NGX_VOICE_EL_BAD_MESSAGE   2

typedef enum {
    NGX_VOICE_EL_AUDIO = 1,    /* audio_len > 0; is_final may be set too */
    NGX_VOICE_EL_FINAL,        /* isFinal true, no audio */
    NGX_VOICE_EL_ERROR,        /* "error" code and/or "message" */
    NGX_VOICE_EL_OTHER         /* anything else: ignore */
} ngx_voice_el_kind_e;


typedef struct {
    const char           *chr;        /* NUL-terminated, in the tree */
    uint32_t              start_ms;   /* relative to this chunk */
    uint32_t              dur_ms;
} ngx_voice_el_char_t;


typedef struct {
    unsigned              present;
    unsigned              n;          /* entries stored in c[] */
    unsigned              total;      /* chars in the message */
    unsigned              truncated;  /* total > NGX_VOICE_EL_MAX_CHARS */
    uint32_t              end_ms;     /* max start + duration, all chars */
    size_t                text_len;   /* bytes of all chars */
    ngx_voice_el_char_t   c[NGX_VOICE_EL_MAX_CHARS];
} ngx_voice_el_align_t;


/* about 16 KiB: keep it in the leg context rather than on the stack */
typedef struct {
    ngx_voice_el_kind_e   kind;
    const unsigned char  *audio;      /* decoded in place in the tree */
    size_t                audio_len;
    unsigned              is_final;   /* isFinal or is_final true */
    ngx_voice_text_t      context_id; /* contextId or context_id, or "" */

    ngx_voice_el_align_t  alignment;      /* "alignment" */
    ngx_voice_el_align_t  normalized;     /* "normalizedAlignment" */

    ngx_voice_text_t      err_code;   /* "error", e.g.
                                         input_timeout_exceeded */
    ngx_voice_text_t      err_message;    /* "message" */
    unsigned              close_code; /* "code", e.g. 1008; 0 if absent */

    const char           *error;      /* static text on failure */
    void                 *root;
} ngx_voice_el_msg_t;


/*
 * Parses one server text message.  "audio" (null/absent/"" is no audio)
 * is base64-decoded in place into the cJSON tree.  Both alignments
 * accept charDurationsMs and charsDurationsMs.  Strings and audio stay
 * valid until ngx_voice_el_done(m), which must be called whatever the
 * result.  BAD_MESSAGE: invalid base64, or alignment arrays of the wrong
 * types.
 */
int ngx_voice_el_parse(ngx_voice_el_msg_t *m, const unsigned char *json,
    size_t len);
void ngx_voice_el_done(ngx_voice_el_msg_t *m);

/*
 * How many characters of an alignment had started before ms of this
 * chunk's audio was heard; *bytes (may be NULL) gets their byte length.
 * Counts only the stored entries (see truncated).
 */
unsigned ngx_voice_el_chars_before(const ngx_voice_el_align_t *a,
    uint32_t ms, size_t *bytes);


#endif /* _NGX_VOICE_ELEVENLABS_H_INCLUDED_ */
