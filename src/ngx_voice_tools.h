/*
 * Copyright (C) ngx_voice authors
 *
 * Tools the LLM may call: the operator's HTTP tools (voice_tool), and
 * the built-in end_call and transfer_call.  The configuration side builds
 * the "tools" JSON the LLM is given; the run side POSTs one tool call's
 * arguments to its URL through the HTTP client and keeps the answer for
 * the LLM.  A run is never retried and never cancelled by the
 * conversation (only by the end of the call): a tool call that started
 * is executed once.
 */


#ifndef _NGX_VOICE_TOOLS_H_INCLUDED_
#define _NGX_VOICE_TOOLS_H_INCLUDED_


#include "ngx_voice_http_client.h"
#include "ngx_voice_openai.h"


#define NGX_VOICE_TOOL_RUNS        4       /* of one reply, at once */
#define NGX_VOICE_TOOL_ARGS        2048    /* arguments, bytes */
#define NGX_VOICE_TOOL_RESULT      4096    /* answer given to the LLM */


typedef struct {
    ngx_str_t                 name;
    ngx_str_t                 url;
    ngx_str_t                 description;
    ngx_str_t                 parameters;     /* JSON schema object */
    ngx_str_t                 filler;         /* said while it runs */
    ngx_msec_t                timeout;
    ngx_voice_hc_pool_t      *pool;           /* the agent location's */
} ngx_voice_tool_t;


typedef struct ngx_voice_tool_run_s  ngx_voice_tool_run_t;

/* the run is over: run->result holds what the LLM is told */
typedef void (*ngx_voice_tool_done_pt)(ngx_voice_tool_run_t *run);


struct ngx_voice_tool_run_s {
    ngx_voice_hc_t            hc;
    ngx_voice_tool_t         *tool;           /* NULL: a built-in */
    ngx_voice_call_t         *call;
    ngx_voice_tool_done_pt    done;
    void                     *data;

    u_char                    id[NGX_VOICE_OA_MAX_ID + 1];
    size_t                    id_len;
    u_char                    name[NGX_VOICE_OA_MAX_NAME + 1];
    size_t                    name_len;

    u_char                   *args;           /* heap, with the result */
    size_t                    args_len;
    u_char                   *result;
    size_t                    result_len;

    ngx_uint_t                turn;
    ngx_msec_t                started;
    ngx_msec_t                elapsed;
    ngx_uint_t                status;         /* HTTP, 0: none */
    const char               *outcome;        /* "ok", "failed", ... */
    ngx_voice_http_field_t    fields[4];

    unsigned                  busy:1;
    unsigned                  over:1;         /* result is final */
};


char *ngx_voice_tool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_voice_transfer_numbers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_voice_tools_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf);
ngx_int_t ngx_voice_tools_connect(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);

ngx_voice_tool_t *ngx_voice_tool_find(ngx_voice_loc_conf_t *conf,
    u_char *name, size_t len);
ngx_int_t ngx_voice_tool_start(ngx_voice_tool_run_t *run,
    ngx_voice_call_t *call, ngx_voice_tool_t *tool,
    ngx_voice_oa_acc_call_t *oc, ngx_voice_tool_done_pt done, void *data);
void ngx_voice_tool_answer(ngx_voice_tool_run_t *run, const char *outcome,
    const char *fmt, ...);
void ngx_voice_tool_abandon(ngx_voice_tool_run_t *run);
void ngx_voice_tool_free(ngx_voice_tool_run_t *run);
ngx_uint_t ngx_voice_transfer_allowed(ngx_voice_loc_conf_t *conf,
    u_char *number, size_t len);


#endif /* _NGX_VOICE_TOOLS_H_INCLUDED_ */
