/*
 * Copyright (C) ngx_voice authors
 *
 * The language-model interface the pipeline uses, and its
 * OpenAI-compatible chat-completions implementation
 * (ngx_voice_llm_openai.c, Cerebras by default): a conversation in, a
 * streamed reply out as content deltas (never reasoning), tool calls
 * accumulated, the finish reason with usage, or a typed error.  One
 * request at a time per call; a new turn cancels the reply in progress
 * by closing its connection.
 */


#ifndef _NGX_VOICE_LLM_H_INCLUDED_
#define _NGX_VOICE_LLM_H_INCLUDED_


#include "ngx_voice_http_client.h"
#include "ngx_voice_sse.h"
#include "ngx_voice_openai.h"


#define NGX_VOICE_LLM_MAX_EVENT    (16 * 1024)  /* one SSE event's data */
#define NGX_VOICE_LLM_MAX_ARGS     2048         /* per tool call */
#define NGX_VOICE_LLM_ERR_TEXT     256


typedef struct ngx_voice_llm_s  ngx_voice_llm_t;


/* why a reply failed; strings are the provider's, bounded, printable */
typedef struct {
    ngx_voice_leg_error_e     leg;            /* REMOTE: the provider said */
    ngx_uint_t                status;         /* HTTP or stream status */
    ngx_str_t                 type;
    ngx_str_t                 message;
    ngx_str_t                 code;
    ngx_str_t                 retry_after;    /* 429 */
    unsigned                  mid_stream:1;
} ngx_voice_llm_error_t;


typedef struct {
    /* a piece of the reply's text, in order */
    void                    (*delta)(ngx_voice_llm_t *llm, ngx_str_t *text);
    /*
     * the reply is complete: finish is NGX_VOICE_OA_FINISH_*; with
     * TOOL_CALLS the calls are in llm->stream.calls[0 .. ncalls - 1];
     * usage and time_info in llm->stream
     */
    void                    (*done)(ngx_voice_llm_t *llm, ngx_uint_t finish);
    /* the reply failed; logged already */
    void                    (*error)(ngx_voice_llm_t *llm,
                                     ngx_voice_llm_error_t *err);
} ngx_voice_llm_events_t;


typedef enum {
    NGX_VOICE_LLM_IDLE = 0,
    NGX_VOICE_LLM_REQUESTING,       /* sent, waiting for the stream */
    NGX_VOICE_LLM_STREAMING
} ngx_voice_llm_state_e;


struct ngx_voice_llm_s {
    ngx_voice_hc_t            hc;
    ngx_voice_call_t         *call;
    ngx_voice_llm_events_t   *events;
    void                     *owner;
    ngx_voice_llm_state_e     state;
    ngx_str_t                 system;         /* the call's prompt */
    ngx_str_t                 model;          /* the call's */
    ngx_str_t                 tools;          /* JSON array, or "" */

    ngx_voice_sse_parser_t    sse;
    ngx_voice_oa_stream_t     stream;
    char                     *body;           /* cJSON's, this request */
    size_t                    body_len;
    ngx_uint_t                failovers;      /* this request's */
    ngx_uint_t                failovers_total;
    ngx_voice_http_field_t    fields[3];

    ngx_msec_t                sent;           /* request time */
    ngx_msec_t                first_token;    /* 0: none yet */
    ngx_uint_t                requests;
    ngx_uint_t                cancelled;

    ngx_voice_llm_error_t     err;
    ngx_uint_t                sends;          /* requests sent, failovers
                                                 included */
    unsigned                  failed:1;       /* failed() ran, this send */
    u_char                    err_text[4][NGX_VOICE_LLM_ERR_TEXT];
};


/* the caller's side of the conversation, oldest first */
typedef struct {
    ngx_voice_oa_message_t   *messages;
    ngx_uint_t                nmessages;
} ngx_voice_llm_conversation_t;


ngx_int_t ngx_voice_llm_init(ngx_voice_llm_t *llm, ngx_voice_call_t *call,
    ngx_voice_llm_events_t *events, void *owner);
ngx_int_t ngx_voice_llm_warm(ngx_voice_llm_t *llm);
ngx_int_t ngx_voice_llm_request(ngx_voice_llm_t *llm,
    ngx_voice_llm_conversation_t *conv);
void ngx_voice_llm_cancel(ngx_voice_llm_t *llm);
void ngx_voice_llm_free(ngx_voice_llm_t *llm);


#endif /* _NGX_VOICE_LLM_H_INCLUDED_ */
