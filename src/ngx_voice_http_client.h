/*
 * Copyright (C) ngx_voice authors
 *
 * An HTTP/1.1 client over an outbound leg, for request/response
 * providers (the LLM's chat completions): one request at a time, the
 * response header, body bytes and end reported to the owner, non-2xx
 * answers turned into a failure carrying the status and the start of
 * the provider's error body.
 *
 * Connections are kept alive in a per-worker pool per endpoint, so that
 * a turn finds a connection already through TCP and TLS.  Only a fully
 * read response lets a connection go back to the pool; cancelling closes
 * it (HTTP/1.1 has no other way to abort a streamed answer).
 */


#ifndef _NGX_VOICE_HTTP_CLIENT_H_INCLUDED_
#define _NGX_VOICE_HTTP_CLIENT_H_INCLUDED_


#include "ngx_voice_leg.h"
#include "ngx_voice_http_parse.h"


#define NGX_VOICE_HC_MAX_FIELDS    8
#define NGX_VOICE_HC_DETAIL        512     /* error body kept, bytes */


/* idle connections to one endpoint, per worker (a copy after fork) */
typedef struct {
    ngx_voice_endpoint_t     *ep;
    ngx_uint_t                max;            /* 0: no pooling */
    ngx_msec_t                timeout;        /* idle time kept */
    ngx_queue_t               idle;           /* most recent first */
    ngx_queue_t               free;
    void                     *next;           /* failover ring, or NULL */
} ngx_voice_hc_pool_t;


typedef enum {
    NGX_VOICE_HC_IDLE = 0,          /* no connection, or it is pooled */
    NGX_VOICE_HC_CONNECTING,        /* resolving, TCP, TLS */
    NGX_VOICE_HC_WAITING,           /* request sent, no header yet */
    NGX_VOICE_HC_BODY,              /* header seen, body streaming */
    NGX_VOICE_HC_CLOSED
} ngx_voice_hc_state_e;


typedef struct {
    ngx_str_t                 method;
    ngx_str_t                 uri;            /* path and query */
    ngx_voice_http_field_t   *fields;         /* owner's, kept meanwhile */
    ngx_uint_t                nfields;
    u_char                   *body;           /* owner's, kept meanwhile */
    size_t                    body_len;
    ngx_msec_t                timeout;        /* first byte, then gaps */
} ngx_voice_hc_request_t;


typedef struct ngx_voice_hc_s  ngx_voice_hc_t;

typedef struct {
    /* status and fields are known: ngx_voice_hc_header() */
    void                    (*header)(ngx_voice_hc_t *hc);
    /* 2xx body bytes, de-chunked, valid during the call */
    void                    (*body)(ngx_voice_hc_t *hc, u_char *p,
                                    size_t n);
    /* the response was read in full */
    void                    (*done)(ngx_voice_hc_t *hc);
    /*
     * the request failed and its connection is gone or pooled:
     * NGX_VOICE_LEG_ERR_REMOTE with hc->status and hc->detail for a
     * non-2xx answer, otherwise the transport's error (logged already)
     */
    void                    (*failed)(ngx_voice_hc_t *hc,
                                      ngx_voice_leg_error_e err);
} ngx_voice_hc_handler_t;


struct ngx_voice_hc_s {
    ngx_voice_leg_t           leg;
    ngx_voice_hc_pool_t      *pool;
    ngx_voice_hc_handler_t   *handler;
    void                     *data;
    ngx_voice_hc_state_e      state;

    ngx_voice_hc_request_t    rq;
    ngx_voice_http_parser_t   http;

    ngx_uint_t                status;
    u_char                    detail[NGX_VOICE_HC_DETAIL];
    size_t                    detail_len;

    ngx_event_t               retry;          /* a stale pooled conn */

    ngx_uint_t                requests;
    ngx_uint_t                reused;         /* requests on pooled ones */

    unsigned                  have_request:1;
    unsigned                  on_pooled:1;    /* this request's conn */
    unsigned                  got_bytes:1;
    unsigned                  retried:1;
    unsigned                  failing:1;      /* non-2xx body */
    unsigned                  once:1;         /* never sent twice */
};


ngx_voice_hc_pool_t *ngx_voice_hc_pool_create(ngx_conf_t *cf,
    ngx_voice_endpoint_t *ep, ngx_uint_t max, ngx_msec_t timeout);

/*
 * call may be NULL for a request that outlives the call: the client then
 * logs through the cycle's log naming hc->leg.id (set it after init) and
 * its output queue is capped by hc->leg.send_buffer.
 */
ngx_voice_hc_pool_t *ngx_voice_hc_pools(ngx_conf_t *cf,
    ngx_voice_endpoint_t *first, ngx_uint_t max, ngx_msec_t timeout);

void ngx_voice_hc_init(ngx_voice_hc_t *hc, ngx_voice_call_t *call,
    ngx_voice_hc_pool_t *pool, ngx_voice_hc_handler_t *handler,
    void *data);
ngx_int_t ngx_voice_hc_warm(ngx_voice_hc_t *hc);
ngx_int_t ngx_voice_hc_failover(ngx_voice_hc_t *hc);
ngx_int_t ngx_voice_hc_request(ngx_voice_hc_t *hc,
    ngx_voice_hc_request_t *rq);
const char *ngx_voice_hc_header(ngx_voice_hc_t *hc, const char *name,
    size_t *len);
void ngx_voice_hc_cancel(ngx_voice_hc_t *hc);
void ngx_voice_hc_collect(u_char *buf, size_t *len, size_t max, u_char *p,
    size_t n);


#endif /* _NGX_VOICE_HTTP_CLIENT_H_INCLUDED_ */
