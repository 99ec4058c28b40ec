/*
 * Copyright (C) ngx_voice authors
 *
 * The call's persona from the application (voice_persona_url): at
 * "start", one GET with the call's SID and customParameters as query
 * arguments, answered with JSON {system_prompt, greeting, voice, model,
 * language, tools}.  Any failure (status, timeout, bad JSON) leaves the
 * configured defaults, and the call record says why.
 */


#ifndef _NGX_VOICE_PERSONA_H_INCLUDED_
#define _NGX_VOICE_PERSONA_H_INCLUDED_


#include "ngx_voice_http_client.h"


#define NGX_VOICE_PERSONA_MAX      (16 * 1024)   /* answer, bytes */


typedef struct ngx_voice_persona_s  ngx_voice_persona_t;

typedef void (*ngx_voice_persona_done_pt)(ngx_voice_persona_t *p);


struct ngx_voice_persona_s {
    ngx_voice_hc_t            hc;
    ngx_voice_call_t         *call;
    ngx_voice_persona_done_pt done;
    void                     *data;

    ngx_event_t               timer;          /* voice_persona_timeout */
    u_char                   *body;           /* heap, while it comes */
    size_t                    len;
    ngx_str_t                 uri;
    ngx_voice_http_field_t    fields[2];
    ngx_msec_t                started;
    ngx_msec_t                elapsed;
    ngx_uint_t                status;

    /* what the application said (the call's pool); len 0: default */
    ngx_str_t                 system;
    ngx_str_t                 greeting;
    ngx_str_t                 voice;
    ngx_str_t                 model;
    ngx_str_t                 language;
    ngx_str_t                 tools;          /* the JSON the LLM gets */
    unsigned                  have_tools:1;

    const char               *error;          /* NULL: it was applied */
    unsigned                  pending:1;
};


ngx_int_t ngx_voice_persona_fetch(ngx_voice_persona_t *p,
    ngx_voice_call_t *call, ngx_voice_persona_done_pt done, void *data);
void ngx_voice_persona_cancel(ngx_voice_persona_t *p);
ngx_int_t ngx_voice_persona_connect(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);
ngx_int_t ngx_voice_persona_uri(ngx_voice_call_t *call, ngx_str_t *request,
    const char *where, ngx_str_t *value, ngx_str_t *out);


#endif /* _NGX_VOICE_PERSONA_H_INCLUDED_ */
