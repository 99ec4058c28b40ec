/*
 * Copyright (C) ngx_voice authors
 *
 * Requests that outlive the call: a fire-and-forget HTTP request job on
 * a leg of its own (no call), with its own pool holding a copy of the
 * body, a timeout per attempt and bounded retries with exponential
 * backoff and jitter on transport errors, 5xx and 429.  The call never
 * waits for it and the job frees itself when it is over.  A job may tell
 * a call that is still live how it went; the call's end silences it.
 *
 * Users: the call record POSTed, signed, to the application when the
 * call ends (voice_events_url), and Twilio's REST API updating the live
 * call (ngx_voice_twilio_update).
 */


#ifndef _NGX_VOICE_REQUEST_H_INCLUDED_
#define _NGX_VOICE_REQUEST_H_INCLUDED_


#include "ngx_voice_http_client.h"


#define NGX_VOICE_REQUEST_MAX_BODY   (1024 * 1024)
#define NGX_VOICE_REQUEST_MAX_BYTES  (32 * 1024 * 1024)  /* per worker */
#define NGX_VOICE_REQUEST_MAX_WAIT   60000    /* between attempts, ms */
#define NGX_VOICE_TWILIO_RETRIES     2


typedef struct ngx_voice_request_s  ngx_voice_request_t;

/*
 * The request is over: the final HTTP status, 0 when the last attempt
 * failed in transport.  Called at most once, never from inside the
 * function that started the request, and only while the call is live.
 */
typedef void (*ngx_voice_request_done_pt)(ngx_voice_call_t *call,
    ngx_uint_t status, void *data);


/* a kind of request of a location, built at configuration */
typedef struct {
    ngx_voice_hc_pool_t      *pool;           /* endpoint ring, no keep */
    ngx_str_t                 what;           /* "events", for the logs */
    ngx_str_t                 secret;         /* "": unsigned */
    ngx_uint_t                retries;        /* after the first attempt */
    ngx_msec_t                timeout;        /* an attempt, as a whole */
    ngx_uint_t                gone_status;    /* a 4xx that is an answer */
    ngx_shm_zone_t           *zone;           /* its errors are counted */
} ngx_voice_request_conf_t;


typedef struct {
    ngx_str_t                 method;
    ngx_str_t                 uri;            /* "": each endpoint's own */
    ngx_voice_http_field_t   *fields;         /* copied */
    ngx_uint_t                nfields;
    ngx_str_t                 body;           /* copied */
    ngx_voice_call_t         *call;           /* to tell, or NULL */
    ngx_voice_request_done_pt done;
    void                     *data;
} ngx_voice_request_args_t;


ngx_voice_request_t *ngx_voice_request_start(ngx_voice_request_conf_t *rc,
    ngx_str_t *id, ngx_voice_request_args_t *args);
void ngx_voice_request_detach(ngx_voice_request_t *req);

/* the call record to voice_events_url; NGX_DECLINED: none configured */
ngx_int_t ngx_voice_events_post(ngx_voice_call_t *call, u_char *json,
    size_t len);

/*
 * POSTs form (urlencoded: ngx_voice_form_encode) to the live call's
 * resource in Twilio's REST API.  NGX_OK: done (may be NULL) will be
 * told the status if the call is still live then; NGX_DECLINED: no REST
 * API configured or no SIDs known (logged); NGX_ERROR.
 */
ngx_int_t ngx_voice_twilio_update(ngx_voice_call_t *call, ngx_str_t *form,
    ngx_voice_request_done_pt done, void *data);

/* configuration: voice_events_*, voice_twilio_* */
void ngx_voice_request_init_conf(ngx_voice_loc_conf_t *conf);
char *ngx_voice_request_merge_conf(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *prev, ngx_voice_loc_conf_t *conf);
ngx_int_t ngx_voice_request_connect(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);
void ngx_voice_request_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_VOICE_REQUEST_H_INCLUDED_ */
