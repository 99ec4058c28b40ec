/*
 * Copyright (C) ngx_voice authors
 *
 * Types shared by the nginx glue: configuration, the call (one Twilio
 * Media Streams WebSocket), its output queue and the pipeline modes.
 */


#ifndef _NGX_VOICE_H_INCLUDED_
#define _NGX_VOICE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_voice_ws_codec.h"
#include "ngx_voice_twilio.h"


#if !(NGX_HTTP_SSL)
#error ngx_voice needs nginx built with the http_ssl_module
#endif


#define NGX_VOICE_VERSION          "0.1.0"

#define NGX_VOICE_OUT_BLOCK        4096   /* output queue block size */
#define NGX_VOICE_READ_BUF         4096   /* inbound socket read buffer */
#define NGX_VOICE_MSG_MIN          1024   /* reassembly buffer kept */
#define NGX_VOICE_CLOSE_TIMEOUT    2000   /* wait for the peer's Close */

/* never on the wire: the peer went away without a Close frame */
#define NGX_VOICE_WS_CLOSE_ABNORMAL  1006

#define NGX_HTTP_UPGRADE_REQUIRED    426

/* largest μ-law chunk per outbound media message: fits one out block */
#define NGX_VOICE_MEDIA_CHUNK      1600


typedef struct ngx_voice_call_s  ngx_voice_call_t;


/* what a voice_pipeline location runs on each call */
#define NGX_VOICE_NEEDS_STT        0x01
#define NGX_VOICE_NEEDS_TTS        0x02
#define NGX_VOICE_NEEDS_LLM        0x04

/* what a voice_status location answers */
#define NGX_VOICE_STATUS_OFF       0
#define NGX_VOICE_STATUS_FULL      1
#define NGX_VOICE_STATUS_HEALTH    2

/* how the LLM's text is cut for text-to-speech */
#define NGX_VOICE_CHUNK_WORD       0
#define NGX_VOICE_CHUNK_SENTENCE   1


typedef struct {
    ngx_str_t                 name;
    ngx_uint_t                needs;           /* NGX_VOICE_NEEDS_* */
    ngx_int_t               (*start)(ngx_voice_call_t *call);
    ngx_int_t               (*media)(ngx_voice_call_t *call, u_char *audio,
                                     size_t len);
    ngx_int_t               (*dtmf)(ngx_voice_call_t *call, u_char digit);
    ngx_int_t               (*mark)(ngx_voice_call_t *call, ngx_str_t *name);
    ngx_int_t               (*stop)(ngx_voice_call_t *call);
    /* the client closes: NGX_AGAIN holds our Close until the mode's
     * last work (e.g. the final transcripts) is done; may be NULL */
    ngx_int_t               (*closing)(ngx_voice_call_t *call);
    void                    (*cleanup)(ngx_voice_call_t *call);
} ngx_voice_mode_t;


typedef struct {
    ngx_voice_mode_t         *mode;            /* NULL: not a voice location */

    size_t                    max_message_size;
    size_t                    send_buffer;
    ngx_msec_t                idle_timeout;
    ngx_msec_t                send_timeout;

    ngx_str_t                 auth_token;      /* Twilio auth token */
    ngx_str_t                 public_url;      /* wss://host[:port] base */

    /* the voice webhook (voice_twiml) */
    ngx_flag_t                twiml;
    ngx_http_complex_value_t *twiml_stream_url; /* NULL: the default */
    ngx_array_t              *twiml_params;    /* ngx_voice_twiml_param_t */
    ngx_str_t                 twiml_after;     /* raw TwiML, or "" */

    ngx_msec_t                echo_delay;
    ngx_uint_t                echo_mark_every;

    /* speech-to-text (Deepgram live) */
    ngx_str_t                 stt_url;
    ngx_array_t              *stt_backups;     /* ngx_str_t: failover */
    ngx_str_t                 stt_key;
    ngx_str_t                 stt_model;
    ngx_str_t                 stt_language;
    ngx_str_t                 stt_ssl_name;
    ngx_msec_t                endpointing;
    ngx_msec_t                utterance_end;
    ngx_flag_t                stt_smart_format;
    ngx_array_t              *stt_keyterms;    /* ngx_str_t */
    ngx_msec_t                stt_keepalive;
    size_t                    stt_buffer;      /* audio held meanwhile */
    void                     *stt;             /* ngx_voice_endpoint_t */
    ngx_str_t                 stt_uri;         /* path and query */
    ngx_str_t                 stt_auth;        /* "Token ..." */

    /* the language model (OpenAI-compatible chat completions) */
    /* text-to-speech (ElevenLabs or Deepgram Aura WebSocket) */
    ngx_uint_t                tts_provider;    /* ngx_voice_tts_vendor_e */
    ngx_str_t                 tts_url;
    ngx_array_t              *tts_backups;
    ngx_str_t                 tts_key;
    ngx_str_t                 tts_voice;
    ngx_str_t                 tts_model;
    ngx_str_t                 tts_ssl_name;
    ngx_flag_t                tts_multi;
    ngx_array_t              *tts_schedule;    /* ngx_uint_t */
    ngx_http_complex_value_t *greeting;        /* may use variables */
    void                     *tts;             /* ngx_voice_tts_conf_t */

    /* the conversation (voice_pipeline agent) */
    ngx_flag_t                greeting_interruptible;
    ngx_flag_t                barge_in;
    ngx_uint_t                barge_in_min_words;  /* 0: SpeechStarted */
    ngx_regex_t              *backchannel;     /* NULL: none */
    ngx_uint_t                tts_chunking;    /* NGX_VOICE_CHUNK_* */
    ngx_str_t                 llm_apology;
    ngx_msec_t                stt_finalize;    /* 0: off */
    ngx_str_t                 call_record;     /* directory, or "" */
    ngx_flag_t                dtmf;            /* digits to the LLM */
    ngx_msec_t                dtmf_timeout;    /* a pause ends them */
    ngx_msec_t                idle_reprompt;   /* 0: off */
    ngx_uint_t                idle_reprompts;  /* then goodbye */
    ngx_str_t                 reprompt;
    ngx_str_t                 goodbye;
    ngx_msec_t                max_duration;    /* 0: off */
    ngx_flag_t                end_call;        /* the built-in tool */
    ngx_regex_t              *hangup_phrase;   /* in a reply: hang up */
    ngx_array_t              *tools;           /* ngx_voice_tool_t */
    ngx_array_t              *transfer_numbers; /* ngx_str_t */
    ngx_str_t                 transfer_announcement;
    ngx_str_t                 llm_tools_all;   /* file, ours: sent */
    ngx_str_t                 persona_url;
    ngx_msec_t                persona_timeout;
    void                     *persona;         /* ngx_voice_hc_pool_t */

    ngx_str_t                 llm_url;
    ngx_array_t              *llm_backups;
    ngx_str_t                 llm_key;
    ngx_str_t                 llm_model;
    ngx_uint_t                llm_max_tokens;
    ngx_str_t                 llm_temperature_text;
    ngx_int_t                 llm_temperature; /* hundredths, -1: unset */
    ngx_msec_t                llm_timeout;
    ngx_str_t                 llm_ssl_name;
    ngx_http_complex_value_t *system_prompt;   /* may use variables */
    ngx_str_t                 llm_tools;       /* JSON array, from a file */
    ngx_uint_t                llm_keepalive;   /* pooled connections */
    ngx_msec_t                llm_keepalive_timeout;
    void                     *llm;             /* ngx_voice_hc_pool_t */
    ngx_str_t                 llm_auth;        /* "Bearer ..." */

    /* TLS to providers */
    ngx_flag_t                ssl_verify;
    ngx_str_t                 ssl_trusted_certificate;
    ngx_uint_t                ssl_protocols;
    ngx_str_t                 ssl_ciphers;
    ngx_ssl_t                *ssl;

    ngx_msec_t                connect_timeout;
    ngx_msec_t                provider_timeout;

    /* shared-memory metrics (ngx_voice_zone.c, ngx_voice_status.c) */
    ngx_shm_zone_t           *zone;            /* voice_zone; NULL: none */
    ngx_uint_t                max_calls;       /* 0: no limit */
    ngx_uint_t                status;          /* NGX_VOICE_STATUS_* */
    ngx_shm_zone_t           *status_zone;     /* NULL: the voice_zone */

    /* requests that outlive the call (ngx_voice_request.c) */
    ngx_str_t                 events_url;
    ngx_array_t              *events_backups;
    ngx_str_t                 events_secret;   /* HMAC key, never logged */
    ngx_uint_t                events_retries;
    ngx_msec_t                events_timeout;
    void                     *events;          /* ngx_voice_request_conf_t */

    /* Twilio's REST API, the live call (auth_token is its password) */
    ngx_str_t                 twilio_api_url;
    ngx_str_t                 twilio_account_sid; /* "": the call's own */
    ngx_flag_t                twilio_complete;
    void                     *twilio;          /* ngx_voice_request_conf_t */
} ngx_voice_loc_conf_t;


/* owned output queue of fixed blocks, recycled for the call's life */
typedef struct {
    ngx_chain_t              *out;             /* pending, oldest first */
    ngx_chain_t             **last;
    ngx_chain_t              *free;
    ngx_pool_t               *pool;
    size_t                    pending;         /* bytes not yet sent */
    size_t                    limit;           /* voice_send_buffer */
    ngx_uint_t                blocks;          /* allocated so far */
} ngx_voice_outq_t;


typedef enum {
    NGX_VOICE_CALL_OPEN = 0,      /* upgraded, waiting for "start" */
    NGX_VOICE_CALL_STARTED,       /* "start" seen: media flows */
    NGX_VOICE_CALL_STOPPED,       /* "stop" seen */
    NGX_VOICE_CALL_CLOSING,       /* our Close sent, draining */
    NGX_VOICE_CALL_DONE           /* finalized: touch nothing */
} ngx_voice_call_state_e;


struct ngx_voice_call_s {
    ngx_http_request_t       *request;
    ngx_connection_t         *connection;
    ngx_voice_loc_conf_t     *conf;
    ngx_voice_mode_t         *mode;
    void                     *mode_ctx;

    ngx_str_t                 id;              /* CallSid or "conn#N" */
    u_char                    id_buf[NGX_VOICE_TW_SID_LEN + 1];
    u_char                    stream_sid[NGX_VOICE_TW_SID_LEN + 1];
    u_char                    account_sid[NGX_VOICE_TW_SID_LEN + 1];
    ngx_array_t               params;          /* ngx_keyval_t */

    ngx_voice_call_state_e    state;

    ngx_voice_ws_reader_t     reader;
    u_char                   *rbuf;
    ngx_voice_outq_t           out;

    ngx_msec_t                started;         /* upgrade time */
    ngx_msec_t                last_read;       /* idle bookkeeping */
    ngx_msec_t                close_deadline;

    ngx_uint_t                media_in;
    ngx_uint_t                media_out;
    ngx_uint_t                audio_in;        /* bytes of μ-law */
    ngx_uint_t                audio_out;
    ngx_uint_t                marks_sent;
    ngx_uint_t                marks_echoed;
    ngx_uint_t                dtmf;
    ngx_uint_t                clears;
    uint64_t                  last_sequence;
    uint64_t                  last_chunk;

    /* the conversation's figures, for $voice_* variables (access_log) */
    ngx_uint_t                turns;
    ngx_uint_t                interruptions;
    ngx_uint_t                latency_n;       /* turns timed */
    ngx_msec_t                latency_sum;     /* end of speech to heard */
    ngx_msec_t                latency_max;
    const char               *end_reason;

    ngx_uint_t                close_code;      /* what we sent, if any */
    ngx_uint_t                peer_close_code;

    ngx_http_log_handler_pt   log_handler;     /* nginx's, chained */

    ngx_int_t                 finish_rc;       /* how to finalize */

    unsigned                  header_pending:1;
    unsigned                  finishing:1;
    unsigned                  connected:1;
    unsigned                  read_paused:1;
    unsigned                  fail_fast:1;
    unsigned                  close_sent:1;
    unsigned                  close_received:1;
    unsigned                  cleaned:1;
    unsigned                  counted:1;       /* in voice_zone's active */
};


extern ngx_module_t  ngx_http_voice_module;
extern ngx_voice_mode_t  ngx_voice_echo_mode;
extern ngx_voice_mode_t  ngx_voice_transcribe_mode;
extern ngx_voice_mode_t  ngx_voice_announce_mode;
extern ngx_voice_mode_t  ngx_voice_agent_mode;


/* ngx_voice_conf.c: provider configuration, checked at nginx -t */
char *ngx_voice_conf_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_voice_conf_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* where a URL directive keeps the URLs after the first (failover) */
typedef struct {
    size_t                    offset;
} ngx_voice_conf_backups_t;
char *ngx_voice_conf_json_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_voice_conf_read(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *path, ngx_str_t *out);
char *ngx_voice_conf_keepalive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_voice_conf_regex(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_voice_conf_schedule(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_voice_conf_text(ngx_voice_call_t *call,
    ngx_http_complex_value_t *cv, ngx_str_t *text);
ngx_int_t ngx_voice_variables_add(ngx_conf_t *cf);
void ngx_voice_variable_set(ngx_http_variable_value_t *v, u_char *data,
    size_t len);
void ngx_voice_conf_init_providers(ngx_voice_loc_conf_t *conf);
char *ngx_voice_conf_merge_providers(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *prev, ngx_voice_loc_conf_t *conf);


/* ngx_voice_ws_server.c: the inbound RFC 6455 endpoint */
ngx_int_t ngx_voice_ws_handler(ngx_http_request_t *r);
ngx_table_elt_t *ngx_voice_header_out(ngx_http_request_t *r,
    const char *name, const char *value);
ngx_int_t ngx_voice_send_buf(ngx_http_request_t *r, ngx_buf_t *b);
ngx_int_t ngx_voice_ws_send(ngx_voice_call_t *call, ngx_uint_t opcode,
    u_char *data, size_t len);
u_char *ngx_voice_ws_frame_start(ngx_voice_call_t *call, ngx_uint_t opcode,
    size_t len);
ngx_int_t ngx_voice_ws_frame_end(ngx_voice_call_t *call, size_t len);
ngx_int_t ngx_voice_ws_close(ngx_voice_call_t *call, ngx_uint_t code,
    const char *reason);
ngx_int_t ngx_voice_ws_fail(ngx_voice_call_t *call, ngx_uint_t code,
    const char *reason);
void ngx_voice_ws_finish(ngx_voice_call_t *call, ngx_int_t rc);
void ngx_voice_ws_event_done(ngx_voice_call_t *call);

/* ngx_voice_call.c: the Twilio Media Streams session over it */
ngx_int_t ngx_voice_call_text(ngx_voice_call_t *call, u_char *data,
    size_t len);
ngx_int_t ngx_voice_call_send_media(ngx_voice_call_t *call, u_char *audio,
    size_t len);
ngx_int_t ngx_voice_call_send_mark(ngx_voice_call_t *call, u_char *name,
    size_t len);
ngx_int_t ngx_voice_call_send_clear(ngx_voice_call_t *call);
void ngx_voice_call_cleanup(ngx_voice_call_t *call);

/* ngx_voice_auth.c: X-Twilio-Signature on the upgrade */
ngx_int_t ngx_voice_auth_check(ngx_http_request_t *r,
    ngx_voice_loc_conf_t *vlcf);
ngx_int_t ngx_voice_auth_verify(ngx_http_request_t *r,
    ngx_voice_loc_conf_t *vlcf, ngx_str_t *scheme,
    ngx_voice_tw_param_t *params, size_t n);
void ngx_voice_auth_host(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf,
    ngx_str_t *host);

/* ngx_voice_twiml.c: the voice webhook answered with TwiML */
char *ngx_voice_twiml(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_voice_twiml_stream_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_voice_twiml_parameter(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_voice_twiml_after(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_voice_twiml_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf);
ngx_int_t ngx_voice_twiml_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

/* ngx_voice_outq.c */
void ngx_voice_outq_init(ngx_voice_outq_t *q, ngx_pool_t *pool, size_t limit);
u_char *ngx_voice_outq_reserve(ngx_voice_outq_t *q, size_t n);
void ngx_voice_outq_commit(ngx_voice_outq_t *q, size_t n);
ngx_int_t ngx_voice_outq_send(ngx_voice_outq_t *q, ngx_connection_t *c);


#endif /* _NGX_VOICE_H_INCLUDED_ */
