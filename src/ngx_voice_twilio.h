/*
 * Copyright (C) ngx_voice authors
 *
 * Twilio Media Streams messages: parser for what Twilio sends (cJSON)
 * and builders for what we send (media, mark, clear).  nginx-free.
 */


#ifndef _NGX_VOICE_TWILIO_H_INCLUDED_
#define _NGX_VOICE_TWILIO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_VOICE_TW_SID_LEN       34

typedef enum {
    NGX_VOICE_TW_CONNECTED = 1,
    NGX_VOICE_TW_START,
    NGX_VOICE_TW_MEDIA,
    NGX_VOICE_TW_DTMF,
    NGX_VOICE_TW_MARK,
    NGX_VOICE_TW_STOP,
    NGX_VOICE_TW_UNKNOWN
} ngx_voice_tw_event_e;

/* parse results */
#define NGX_VOICE_TW_OK            0
#define NGX_VOICE_TW_BAD_JSON      1     /* not JSON: close 1007 */
#define NGX_VOICE_TW_BAD_MESSAGE   2     /* protocol violation: close 1008 */


typedef struct {
    const char           *data;
    size_t                len;
} ngx_voice_tw_str_t;


typedef struct {
    ngx_voice_tw_str_t    name;
    ngx_voice_tw_str_t    value;
} ngx_voice_tw_param_t;


#define NGX_VOICE_TW_MAX_PARAMS    32


typedef struct {
    ngx_voice_tw_event_e  event;
    ngx_voice_tw_str_t    event_name;    /* as sent (for UNKNOWN) */
    ngx_voice_tw_str_t    stream_sid;    /* "" for connected */
    uint64_t              sequence;      /* 0 when absent */

    /* start */
    ngx_voice_tw_str_t    account_sid;
    ngx_voice_tw_str_t    call_sid;
    ngx_voice_tw_str_t    encoding;
    unsigned              sample_rate;
    unsigned              channels;
    ngx_voice_tw_param_t  params[NGX_VOICE_TW_MAX_PARAMS];
    unsigned              nparams;

    /* media: payload decoded in place into the parsed tree */
    ngx_voice_tw_str_t    track;
    uint64_t              chunk;
    uint64_t              timestamp;
    const unsigned char  *audio;
    size_t                audio_len;

    /* dtmf */
    char                  digit;

    /* mark */
    ngx_voice_tw_str_t    mark;

    /* connected */
    ngx_voice_tw_str_t    protocol;
    ngx_voice_tw_str_t    version;

    const char           *error;         /* static text on failure */
    void                 *root;          /* cJSON tree: free with _done() */
} ngx_voice_tw_msg_t;


/*
 * Parses one text message.  Strings in *m point into the parsed tree and
 * stay valid until ngx_voice_tw_done(m), which must be called whatever
 * the result.  Validates what the pipeline relies on: SID formats,
 * mediaFormat audio/x-mulaw 8000 Hz mono, string numbers, base64 audio.
 */
int ngx_voice_tw_parse(ngx_voice_tw_msg_t *m, const unsigned char *json,
    size_t len);
void ngx_voice_tw_done(ngx_voice_tw_msg_t *m);

/* ^<prefix>[0-9a-fA-F]{32}$ */
int ngx_voice_tw_sid_valid(const char *sid, size_t len, const char *prefix);

/*
 * Builders write the JSON text (no WebSocket header) into dst, which must
 * hold the matching _len() bytes, and return the length written.  Mark
 * names must be [A-Za-z0-9_.:-]{1,64} so they need no JSON escaping;
 * stream_sid must be a valid SID.
 */
size_t ngx_voice_tw_media_len(size_t sid_len, size_t audio_len);
size_t ngx_voice_tw_media(unsigned char *dst, const char *sid,
    size_t sid_len, const unsigned char *audio, size_t audio_len);
size_t ngx_voice_tw_mark_len(size_t sid_len, size_t name_len);
size_t ngx_voice_tw_mark(unsigned char *dst, const char *sid,
    size_t sid_len, const char *name, size_t name_len);
size_t ngx_voice_tw_clear_len(size_t sid_len);
size_t ngx_voice_tw_clear(unsigned char *dst, const char *sid,
    size_t sid_len);
int ngx_voice_tw_mark_name_valid(const char *name, size_t len);


/*
 * X-Twilio-Signature: base64(HMAC-SHA1(token, url + sorted name+value
 * pairs)).  params may be NULL when n == 0 (a WebSocket upgrade is a GET);
 * they are sorted by name then value in place.  Returns 28 bytes at out.
 */
#define NGX_VOICE_TW_SIG_LEN       28

int ngx_voice_tw_signature(unsigned char *out, const unsigned char *token,
    size_t token_len, const unsigned char *url, size_t url_len,
    ngx_voice_tw_param_t *params, size_t n);

/* constant time compare of a received signature: 1 match, 0 not */
int ngx_voice_tw_signature_ok(const unsigned char *expected,
    const unsigned char *got, size_t got_len);


#endif /* _NGX_VOICE_TWILIO_H_INCLUDED_ */
