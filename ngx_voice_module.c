/*
 * Copyright (C) ngx_voice authors
 *
 * ngx_http_voice_module: a real-time voice agent inside nginx.  This file
 * holds the module definition and its directives; the work is in src/.
 */


#include "ngx_voice.h"
#include "ngx_voice_tts.h"
#include "ngx_voice_tools.h"
#include "ngx_voice_zone.h"
#include "ngx_voice_request.h"


static void *ngx_voice_create_loc_conf(ngx_conf_t *cf);
static char *ngx_voice_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_voice_pipeline(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_voice_public_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_voice_check_size(ngx_conf_t *cf, void *post, void *data);
static char *ngx_voice_check_msec(ngx_conf_t *cf, void *post, void *data);


typedef struct {
    ngx_conf_post_handler_pt  post_handler;
    size_t                    low;
    size_t                    high;
} ngx_voice_bounds_t;


static ngx_voice_bounds_t  ngx_voice_max_message_bounds = {
    ngx_voice_check_size, 1024, 16 * 1024 * 1024
};

static ngx_voice_bounds_t  ngx_voice_send_buffer_bounds = {
    ngx_voice_check_size, 2 * NGX_VOICE_OUT_BLOCK, 64 * 1024 * 1024
};

static ngx_voice_bounds_t  ngx_voice_timeout_bounds = {
    ngx_voice_check_msec, 1, 24 * 3600 * 1000
};

static ngx_voice_bounds_t  ngx_voice_echo_delay_bounds = {
    ngx_voice_check_msec, 0, 10000
};

static ngx_conf_num_bounds_t  ngx_voice_mark_every_bounds = {
    ngx_conf_check_num_bounds, 1, 100000
};

static ngx_voice_bounds_t  ngx_voice_stt_buffer_bounds = {
    ngx_voice_check_size, 0, 1024 * 1024
};


static ngx_conf_enum_t  ngx_voice_tts_providers[] = {
    { ngx_string("elevenlabs"), NGX_VOICE_TTS_ELEVENLABS },
    { ngx_string("deepgram"), NGX_VOICE_TTS_AURA },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_voice_tts_chunkings[] = {
    { ngx_string("word"), NGX_VOICE_CHUNK_WORD },
    { ngx_string("sentence"), NGX_VOICE_CHUNK_SENTENCE },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_voice_min_words_bounds = {
    ngx_conf_check_num_bounds, 0, 20
};

static ngx_conf_num_bounds_t  ngx_voice_reprompts_bounds = {
    ngx_conf_check_num_bounds, 0, 10
};

static ngx_conf_num_bounds_t  ngx_voice_max_calls_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
};

static ngx_voice_bounds_t  ngx_voice_finalize_bounds = {
    ngx_voice_check_msec, 0, 10000
};


/* max_completion_tokens is reserved against the token quota: keep small */
static ngx_conf_num_bounds_t  ngx_voice_llm_tokens_bounds = {
    ngx_conf_check_num_bounds, 1, 32768
};


static ngx_voice_conf_backups_t  ngx_voice_stt_backups = {
    offsetof(ngx_voice_loc_conf_t, stt_backups)
};

static ngx_voice_conf_backups_t  ngx_voice_tts_backups = {
    offsetof(ngx_voice_loc_conf_t, tts_backups)
};

static ngx_voice_conf_backups_t  ngx_voice_llm_backups = {
    offsetof(ngx_voice_loc_conf_t, llm_backups)
};

static ngx_voice_conf_backups_t  ngx_voice_events_backups = {
    offsetof(ngx_voice_loc_conf_t, events_backups)
};

static ngx_conf_num_bounds_t  ngx_voice_events_retries_bounds = {
    ngx_conf_check_num_bounds, 0, 10
};

static ngx_voice_bounds_t  ngx_voice_events_timeout_bounds = {
    ngx_voice_check_msec, 1, 120000
};


static ngx_conf_bitmask_t  ngx_voice_ssl_protocols[] = {
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_voice_commands[] = {

    { ngx_string("voice_pipeline"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_voice_pipeline,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, max_message_size),
      &ngx_voice_max_message_bounds },

    { ngx_string("voice_send_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, send_buffer),
      &ngx_voice_send_buffer_bounds },

    { ngx_string("voice_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, idle_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, send_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_twilio_auth_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, auth_token),
      NULL },

    { ngx_string("voice_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_public_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, public_url),
      NULL },

    { ngx_string("voice_twiml"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_voice_twiml,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_twiml_stream_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_twiml_stream_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_twiml_parameter"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_voice_twiml_parameter,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_twiml_after"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_twiml_after,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_echo_delay"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, echo_delay),
      &ngx_voice_echo_delay_bounds },

    { ngx_string("voice_echo_mark_every"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, echo_mark_every),
      &ngx_voice_mark_every_bounds },

    { ngx_string("voice_tts_provider"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_provider),
      &ngx_voice_tts_providers },

    { ngx_string("voice_tts_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_conf_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_url),
      &ngx_voice_tts_backups },

    { ngx_string("voice_tts_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_key),
      NULL },

    { ngx_string("voice_tts_voice"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_voice),
      NULL },

    { ngx_string("voice_tts_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_model),
      NULL },

    { ngx_string("voice_tts_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_ssl_name),
      NULL },

    { ngx_string("voice_tts_multi_context"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_multi),
      NULL },

    { ngx_string("voice_greeting"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, greeting),
      NULL },

    { ngx_string("voice_greeting_interruptible"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, greeting_interruptible),
      NULL },

    { ngx_string("voice_barge_in"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, barge_in),
      NULL },

    { ngx_string("voice_barge_in_min_words"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, barge_in_min_words),
      &ngx_voice_min_words_bounds },

    { ngx_string("voice_backchannel"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_regex,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, backchannel),
      NULL },

    { ngx_string("voice_tts_chunk_schedule"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_conf_schedule,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_schedule),
      NULL },

    { ngx_string("voice_tts_chunking"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, tts_chunking),
      &ngx_voice_tts_chunkings },

    { ngx_string("voice_llm_apology"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_apology),
      NULL },

    { ngx_string("voice_stt_finalize"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_finalize),
      &ngx_voice_finalize_bounds },

    { ngx_string("voice_dtmf"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, dtmf),
      NULL },

    { ngx_string("voice_dtmf_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, dtmf_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_idle_reprompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, idle_reprompt),
      NULL },

    { ngx_string("voice_idle_reprompts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, idle_reprompts),
      &ngx_voice_reprompts_bounds },

    { ngx_string("voice_reprompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, reprompt),
      NULL },

    { ngx_string("voice_goodbye"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, goodbye),
      NULL },

    { ngx_string("voice_max_duration"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, max_duration),
      NULL },

    { ngx_string("voice_end_call"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, end_call),
      NULL },

    { ngx_string("voice_hangup_phrase"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_regex,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, hangup_phrase),
      NULL },

    { ngx_string("voice_tool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_voice_tool,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_transfer_numbers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_transfer_numbers,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_transfer_announcement"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, transfer_announcement),
      NULL },

    { ngx_string("voice_persona_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, persona_url),
      NULL },

    { ngx_string("voice_persona_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, persona_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_call_record"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, call_record),
      NULL },

    { ngx_string("voice_stt_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_conf_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_url),
      &ngx_voice_stt_backups },

    { ngx_string("voice_stt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_key),
      NULL },

    { ngx_string("voice_stt_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_model),
      NULL },

    { ngx_string("voice_stt_language"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_language),
      NULL },

    { ngx_string("voice_stt_smart_format"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_smart_format),
      NULL },

    { ngx_string("voice_stt_keyterm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_keyterms),
      NULL },

    { ngx_string("voice_stt_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_ssl_name),
      NULL },

    { ngx_string("voice_stt_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_keepalive),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_stt_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, stt_buffer),
      &ngx_voice_stt_buffer_bounds },

    { ngx_string("voice_endpointing"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, endpointing),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_utterance_end"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, utterance_end),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_llm_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_conf_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_url),
      &ngx_voice_llm_backups },

    { ngx_string("voice_llm_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_key),
      NULL },

    { ngx_string("voice_llm_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_model),
      NULL },

    { ngx_string("voice_llm_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_max_tokens),
      &ngx_voice_llm_tokens_bounds },

    { ngx_string("voice_llm_temperature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_temperature_text),
      NULL },

    { ngx_string("voice_llm_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_llm_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_ssl_name),
      NULL },

    { ngx_string("voice_llm_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_voice_conf_keepalive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_keepalive),
      NULL },

    { ngx_string("voice_llm_tools"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_json_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, llm_tools),
      NULL },

    { ngx_string("voice_system_prompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, system_prompt),
      NULL },

    { ngx_string("voice_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, ssl_verify),
      NULL },

    { ngx_string("voice_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("voice_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, ssl_protocols),
      &ngx_voice_ssl_protocols },

    { ngx_string("voice_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, ssl_ciphers),
      NULL },

    { ngx_string("voice_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, connect_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_provider_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, provider_timeout),
      &ngx_voice_timeout_bounds },

    { ngx_string("voice_zone"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_voice_zone,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_max_calls"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, max_calls),
      &ngx_voice_max_calls_bounds },

    { ngx_string("voice_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE12,
      ngx_voice_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("voice_events_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_voice_conf_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, events_url),
      &ngx_voice_events_backups },

    { ngx_string("voice_events_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, events_secret),
      NULL },

    { ngx_string("voice_events_retries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, events_retries),
      &ngx_voice_events_retries_bounds },

    { ngx_string("voice_events_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, events_timeout),
      &ngx_voice_events_timeout_bounds },

    { ngx_string("voice_twilio_api_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_url,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, twilio_api_url),
      NULL },

    { ngx_string("voice_twilio_account_sid"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_voice_conf_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, twilio_account_sid),
      NULL },

    { ngx_string("voice_twilio_complete"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_voice_loc_conf_t, twilio_complete),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_voice_module_ctx = {
    ngx_voice_variables_add,               /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_voice_create_loc_conf,             /* create location configuration */
    ngx_voice_merge_loc_conf               /* merge location configuration */
};


ngx_module_t  ngx_http_voice_module = {
    NGX_MODULE_V1,
    &ngx_voice_module_ctx,                 /* module context */
    ngx_voice_commands,                    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_voice_request_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_voice_mode_t  *ngx_voice_modes[] = {
    &ngx_voice_echo_mode,
    &ngx_voice_transcribe_mode,
    &ngx_voice_announce_mode,
    &ngx_voice_agent_mode,
    NULL
};


static void *
ngx_voice_create_loc_conf(ngx_conf_t *cf)
{
    ngx_voice_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_voice_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->mode = NULL;
     *     conf->auth_token = { 0, NULL };
     *     conf->public_url = { 0, NULL };
     *     conf->status = NGX_VOICE_STATUS_OFF;
     *     conf->status_zone = NULL;
     */

    conf->max_message_size = NGX_CONF_UNSET_SIZE;
    conf->send_buffer = NGX_CONF_UNSET_SIZE;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->send_timeout = NGX_CONF_UNSET_MSEC;
    conf->echo_delay = NGX_CONF_UNSET_MSEC;
    conf->echo_mark_every = NGX_CONF_UNSET_UINT;
    conf->zone = NGX_CONF_UNSET_PTR;
    conf->max_calls = NGX_CONF_UNSET_UINT;

    ngx_voice_conf_init_providers(conf);
    ngx_voice_request_init_conf(conf);

    return conf;
}


static char *
ngx_voice_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_voice_loc_conf_t *prev = parent;
    ngx_voice_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    /* Twilio media messages are ~400 bytes; 64k leaves ample room */
    ngx_conf_merge_size_value(conf->max_message_size,
                              prev->max_message_size, 64 * 1024);

    /* about 20 s of queued μ-law audio as base64 media messages */
    ngx_conf_merge_size_value(conf->send_buffer, prev->send_buffer,
                              256 * 1024);

    /* Twilio streams 50 media messages a second, silence included */
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout, 15000);
    ngx_conf_merge_msec_value(conf->send_timeout, prev->send_timeout, 10000);

    ngx_conf_merge_str_value(conf->auth_token, prev->auth_token, "");
    ngx_conf_merge_str_value(conf->public_url, prev->public_url, "");

    ngx_conf_merge_msec_value(conf->echo_delay, prev->echo_delay, 1000);
    ngx_conf_merge_uint_value(conf->echo_mark_every, prev->echo_mark_every,
                              50);

    if (conf->mode && conf->auth_token.len == 0) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "voice_pipeline in location \"%V\" accepts "
                      "unauthenticated calls: no voice_twilio_auth_token "
                      "is set", &clcf->name);
    }

    if (ngx_voice_zone_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_voice_twiml_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_voice_request_merge_conf(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_voice_conf_merge_providers(cf, prev, conf);
}


static char *
ngx_voice_pipeline(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    if (vlcf->mode) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* the conversation is what a voice location does by default */
    if (cf->args->nelts == 1) {
        vlcf->mode = &ngx_voice_agent_mode;
        goto done;
    }

    for (i = 0; ngx_voice_modes[i]; i++) {
        if (value[1].len == ngx_voice_modes[i]->name.len
            && ngx_strncmp(value[1].data, ngx_voice_modes[i]->name.data,
                           value[1].len)
               == 0)
        {
            vlcf->mode = ngx_voice_modes[i];
            break;
        }
    }

    if (vlcf->mode == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown voice_pipeline mode \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

done:

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_voice_ws_handler;

    return NGX_CONF_OK;
}


static char *
ngx_voice_public_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t  *field, *value, host;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= sizeof("wss://") - 1
        || ngx_strncasecmp(value[1].data, (u_char *) "wss://", 6) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be \"wss://host[:port]\", "
                           "the base of the URL Twilio connects to",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    host.data = value[1].data + 6;
    host.len = value[1].len - 6;

    /* the request's own URI is appended: the base carries no path */
    if (ngx_strlchr(host.data, host.data + host.len, '/')
        || ngx_strlchr(host.data, host.data + host.len, '?'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes no path or query: the request "
                           "URI is appended to it", &cmd->name);
        return NGX_CONF_ERROR;
    }

    *field = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_voice_check_size(ngx_conf_t *cf, void *post, void *data)
{
    ngx_voice_bounds_t  *b = post;
    size_t              *sp = data;

    if (*sp < b->low || *sp > b->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "value must be between %uz and %uz",
                           b->low, b->high);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_voice_check_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_voice_bounds_t  *b = post;
    ngx_msec_t          *mp = data;

    if (*mp < b->low || *mp > b->high) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "value must be between %uzms and %uzms",
                           b->low, b->high);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
