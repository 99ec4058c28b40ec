/*
 * Copyright (C) ngx_voice authors
 *
 * The call record: who called, the conversation as the caller heard it
 * (both sides, interruptions and backchannels marked), per-turn timings,
 * degradations and usage.  Built turn by turn (on the heap, freed with
 * the call) and, with voice_call_record, written at the end of the call
 * as <dir>/<CallSid>.json.  Timings are milliseconds since "start".
 */


#ifndef _NGX_VOICE_RECORD_H_INCLUDED_
#define _NGX_VOICE_RECORD_H_INCLUDED_


#include "ngx_voice.h"


typedef struct ngx_voice_record_s  ngx_voice_record_t;


/* when each stage of a turn happened (ngx_current_msec; 0: it did not) */
typedef struct {
    ngx_msec_t                speech_end;     /* caller's last word */
    ngx_msec_t                transcript;     /* final transcript */
    ngx_msec_t                llm_request;
    ngx_msec_t                first_token;
    ngx_msec_t                first_text;     /* first text to TTS */
    ngx_msec_t                first_audio;    /* first audio from TTS */
    ngx_msec_t                first_media;    /* first media to Twilio */
    ngx_msec_t                first_heard;    /* first mark echo */
} ngx_voice_timing_t;


typedef struct {
    ngx_uint_t                turns;
    ngx_uint_t                barge_ins;
    ngx_uint_t                backchannels;
    ngx_uint_t                llm_errors;
    ngx_uint_t                llm_failovers;
    ngx_uint_t                apologies;
    ngx_uint_t                stt_reconnects;
    ngx_uint_t                tts_reconnects;
    ngx_uint_t                tts_resends;
    ngx_uint_t                llm_requests;
    ngx_uint_t                tool_calls;
    uint64_t                  prompt_tokens;
    uint64_t                  completion_tokens;
} ngx_voice_record_counts_t;


ngx_voice_record_t *ngx_voice_record_create(ngx_voice_call_t *call);
void ngx_voice_record_user(ngx_voice_record_t *rec, ngx_uint_t turn,
    u_char *text, size_t len, const char *end, ngx_uint_t backchannel,
    ngx_msec_t when);
void ngx_voice_record_bot(ngx_voice_record_t *rec, ngx_uint_t turn,
    const char *kind, u_char *heard, size_t heard_len, u_char *spoken,
    size_t spoken_len, ngx_uint_t interrupted);
void ngx_voice_record_timing(ngx_voice_record_t *rec, ngx_uint_t turn,
    ngx_voice_timing_t *t, ngx_uint_t interrupted);
void ngx_voice_record_tool(ngx_voice_record_t *rec, ngx_uint_t turn,
    u_char *name, size_t name_len, u_char *id, size_t id_len, u_char *args,
    size_t args_len, const char *outcome, ngx_uint_t status, u_char *result,
    size_t result_len, ngx_msec_t elapsed);
void ngx_voice_record_persona(ngx_voice_record_t *rec, const char *error,
    ngx_uint_t status, ngx_msec_t elapsed, ngx_uint_t system,
    ngx_uint_t greeting, ngx_str_t *voice, ngx_str_t *model,
    ngx_str_t *language, ngx_str_t *tools);
void ngx_voice_record_degraded(ngx_voice_record_t *rec, const char *fmt,
    ...);
void ngx_voice_record_finish(ngx_voice_record_t *rec, const char *reason,
    ngx_voice_record_counts_t *counts);


#endif /* _NGX_VOICE_RECORD_H_INCLUDED_ */
