/*
 * Copyright (C) ngx_voice authors
 *
 * Requests that outlive the call (see ngx_voice_request.h).  A job owns
 * its pool: the copies of what it sends, the HTTP client and its leg
 * (which has no call: it logs on the cycle's log, naming the call's id).
 * Every step after the first runs from the job's own events, a timer
 * (the attempt's timeout, or the wait before the next attempt) and a
 * posted event (an attempt ended), never inside the client's handlers:
 * so the job can free itself there.
 *
 * Shutdown: an attempt under way has a timer the worker waits for (one
 * attempt at most); the wait before a retry is cancelable and no retry
 * is scheduled while the worker exits, so a job never keeps a worker
 * alive longer than that.  Jobs left when the process exits are logged
 * as dropped and freed.
 */


#include "ngx_voice_request.h"
#include "ngx_voice_base64.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>


#define NGX_VOICE_REQUEST_DETAIL   160     /* error body kept, bytes */


struct ngx_voice_request_s {
    ngx_voice_hc_t            hc;
    ngx_pool_t               *pool;
    ngx_voice_request_conf_t *rc;
    ngx_queue_t               queue;          /* the worker's jobs */
    ngx_log_t                 log;
    ngx_str_t                 id;             /* the call's, for logs */

    ngx_str_t                 method;
    ngx_str_t                 uri;            /* "": the endpoint's */
    ngx_voice_http_field_t    fields[NGX_VOICE_HC_MAX_FIELDS];
    ngx_uint_t                nfields;        /* with the signature's */
    ngx_str_t                 body;

    ngx_event_t               timer;          /* attempt, or the wait */
    ngx_event_t               ended;          /* posted: attempt over */

    ngx_uint_t                attempts;
    ngx_uint_t                status;         /* the last answer's */
    ngx_voice_leg_error_e     error;          /* the last attempt's */
    ngx_msec_t                retry_after;    /* the server asked */
    u_char                    detail[NGX_VOICE_REQUEST_DETAIL];
    size_t                    detail_len;

    ngx_voice_call_t         *call;           /* NULL once it ended */
    ngx_pool_cleanup_t       *cln;            /* in the call's pool */
    ngx_voice_request_done_pt done;
    void                     *data;

    u_char                    ts[NGX_TIME_T_LEN];
    u_char                    sig[sizeof("sha256=") - 1 + 64];

    unsigned                  busy:1;         /* an attempt under way */
};


static ngx_int_t ngx_voice_request_copy(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src);
static void ngx_voice_request_attempt(ngx_voice_request_t *req);
static ngx_int_t ngx_voice_request_sign(ngx_voice_request_t *req);
static void ngx_voice_request_header(ngx_voice_hc_t *hc);
static void ngx_voice_request_body(ngx_voice_hc_t *hc, u_char *p,
    size_t n);
static void ngx_voice_request_done(ngx_voice_hc_t *hc);
static void ngx_voice_request_failed(ngx_voice_hc_t *hc,
    ngx_voice_leg_error_e err);
static void ngx_voice_request_over(ngx_voice_request_t *req,
    ngx_voice_leg_error_e err);
static void ngx_voice_request_timer_handler(ngx_event_t *ev);
static void ngx_voice_request_ended_handler(ngx_event_t *ev);
static void ngx_voice_request_next(ngx_voice_request_t *req);
static u_char *ngx_voice_request_outcome(ngx_voice_request_t *req,
    u_char *buf, size_t len);
static ngx_msec_t ngx_voice_request_backoff(ngx_voice_request_t *req);
static void ngx_voice_request_finish(ngx_voice_request_t *req);
static void ngx_voice_request_free(ngx_voice_request_t *req);
static void ngx_voice_request_call_gone(void *data);
static ngx_voice_request_conf_t *ngx_voice_request_conf(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf, ngx_str_t *url, ngx_array_t *backups,
    const char *what);


static ngx_voice_hc_handler_t  ngx_voice_request_hc_handler = {
    ngx_voice_request_header,
    ngx_voice_request_body,
    ngx_voice_request_done,
    ngx_voice_request_failed
};


/* this worker's jobs (each process has its own after fork) */
static ngx_queue_t  ngx_voice_requests;
static size_t       ngx_voice_request_bytes;


/*
 * Starts a job.  NULL: nothing was started (logged); otherwise its
 * outcome is reported from the job's own events, never from in here.
 */

ngx_voice_request_t *
ngx_voice_request_start(ngx_voice_request_conf_t *rc, ngx_str_t *id,
    ngx_voice_request_args_t *args)
{
    ngx_uint_t               i, n;
    ngx_pool_t              *pool;
    ngx_pool_cleanup_t      *cln;
    ngx_voice_request_t     *req;
    ngx_voice_http_field_t  *f, *from;

    n = args->nfields + (rc->secret.len ? 2 : 0);

    if (n > NGX_VOICE_HC_MAX_FIELDS) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "voice %V: %V request with %ui header fields", id,
                      &rc->what, n);
        return NULL;
    }

    if (ngx_voice_requests.next == NULL) {
        ngx_queue_init(&ngx_voice_requests);
    }

    /* what waits for a slow application is bounded, per worker */
    if (args->body.len > NGX_VOICE_REQUEST_MAX_BODY
        || ngx_voice_request_bytes + args->body.len
           > NGX_VOICE_REQUEST_MAX_BYTES)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "voice %V: %V not sent: %uz bytes, with %uz bytes "
                      "of requests pending", id, &rc->what, args->body.len,
                      ngx_voice_request_bytes);
        return NULL;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    req = ngx_pcalloc(pool, sizeof(ngx_voice_request_t));
    if (req == NULL) {
        goto failed;
    }

    req->pool = pool;
    req->rc = rc;
    req->log = *ngx_cycle->log;
    req->log.action = NULL;

    if (ngx_voice_request_copy(pool, &req->id, id) != NGX_OK
        || ngx_voice_request_copy(pool, &req->method, &args->method)
           != NGX_OK
        || ngx_voice_request_copy(pool, &req->uri, &args->uri) != NGX_OK
        || ngx_voice_request_copy(pool, &req->body, &args->body) != NGX_OK)
    {
        goto failed;
    }

    for (i = 0; i < args->nfields; i++) {
        f = &req->fields[i];
        from = &args->fields[i];

        f->name = ngx_pnalloc(pool, from->name_len + from->value_len + 1);
        if (f->name == NULL) {
            goto failed;
        }

        ngx_memcpy((u_char *) f->name, from->name, from->name_len);
        ngx_memcpy((u_char *) f->name + from->name_len, from->value,
                   from->value_len);

        f->name_len = from->name_len;
        f->value = f->name + from->name_len;
        f->value_len = from->value_len;
    }

    if (rc->secret.len) {
        /* the values are set on each attempt: a fresh timestamp */
        f = &req->fields[i];
        f[0].name = "X-Voice-Timestamp";
        f[0].name_len = sizeof("X-Voice-Timestamp") - 1;
        f[1].name = "X-Voice-Signature";
        f[1].name_len = sizeof("X-Voice-Signature") - 1;
    }

    req->nfields = n;

    ngx_voice_hc_init(&req->hc, NULL, rc->pool,
                      &ngx_voice_request_hc_handler, req);

    req->hc.leg.id = req->id;
    req->hc.leg.zone = rc->zone;

    /* the request is queued whole: its header block, then the body */
    req->hc.leg.send_buffer = NGX_VOICE_OUT_BLOCK + req->body.len;

    req->timer.handler = ngx_voice_request_timer_handler;
    req->timer.data = req;
    req->timer.log = &req->log;

    req->ended.handler = ngx_voice_request_ended_handler;
    req->ended.data = req;
    req->ended.log = &req->log;

    if (args->call && args->done) {
        /* the call's end silences the job: its pointer is cleared */
        cln = ngx_pool_cleanup_add(args->call->request->pool, 0);
        if (cln == NULL) {
            goto failed;
        }

        cln->handler = ngx_voice_request_call_gone;
        cln->data = req;

        req->cln = cln;
        req->call = args->call;
        req->done = args->done;
        req->data = args->data;
    }

    ngx_queue_insert_tail(&ngx_voice_requests, &req->queue);
    ngx_voice_request_bytes += req->body.len;

    ngx_voice_request_attempt(req);

    return req;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static ngx_int_t
ngx_voice_request_copy(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return NGX_OK;
}


/* the job goes on, but tells nobody */

void
ngx_voice_request_detach(ngx_voice_request_t *req)
{
    if (req->cln) {
        req->cln->handler = NULL;
        req->cln = NULL;
    }

    req->call = NULL;
    req->done = NULL;
    req->data = NULL;
}


static void
ngx_voice_request_attempt(ngx_voice_request_t *req)
{
    ngx_int_t                rc;
    ngx_voice_hc_request_t   rq;

    req->attempts++;
    req->status = 0;
    req->error = NGX_VOICE_LEG_OK;
    req->retry_after = 0;
    req->detail_len = 0;
    req->busy = 1;

    /* the worker waits for an attempt under way, not for a retry */
    req->timer.cancelable = 0;
    ngx_add_timer(&req->timer, req->rc->timeout);

    if (req->rc->secret.len && ngx_voice_request_sign(req) != NGX_OK) {
        ngx_voice_request_over(req, NGX_VOICE_LEG_ERR_PROTOCOL);
        return;
    }

    rq.method = req->method;
    rq.uri = req->uri.len ? req->uri : req->hc.pool->ep->request;
    rq.fields = req->fields;
    rq.nfields = req->nfields;
    rq.body = req->body.data;
    rq.body_len = req->body.len;
    rq.timeout = req->rc->timeout;

    rc = ngx_voice_hc_request(&req->hc, &rq);

    if (rc != NGX_OK && req->busy) {
        /* not started: no handler will report it */
        ngx_voice_request_over(req, NGX_VOICE_LEG_ERR_CONNECT);
    }
}


/* X-Voice-Signature: sha256=hex(HMAC-SHA256(secret, timestamp.body)) */

static ngx_int_t
ngx_voice_request_sign(ngx_voice_request_t *req)
{
    u_char                  *p;
    size_t                   md_len;
    ngx_int_t                rc;
    EVP_MAC                 *mac;
    OSSL_PARAM               params[2];
    EVP_MAC_CTX             *ctx;
    ngx_voice_http_field_t  *f;
    u_char                   md[EVP_MAX_MD_SIZE];

    static char              sha256[] = "SHA256";

    f = &req->fields[req->nfields - 2];

    p = ngx_sprintf(req->ts, "%T", ngx_time());
    f[0].value = (char *) req->ts;
    f[0].value_len = p - req->ts;

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return NGX_ERROR;
    }

    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        EVP_MAC_free(mac);
        return NGX_ERROR;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 sha256, 0);
    params[1] = OSSL_PARAM_construct_end();

    rc = NGX_ERROR;

    if (EVP_MAC_init(ctx, req->rc->secret.data, req->rc->secret.len, params)
        && EVP_MAC_update(ctx, req->ts, f[0].value_len)
        && EVP_MAC_update(ctx, (u_char *) ".", 1)
        && EVP_MAC_update(ctx, req->body.data, req->body.len)
        && EVP_MAC_final(ctx, md, &md_len, sizeof(md))
        && md_len == 32)
    {
        p = ngx_cpymem(req->sig, "sha256=", sizeof("sha256=") - 1);
        p = ngx_hex_dump(p, md, md_len);

        f[1].value = (char *) req->sig;
        f[1].value_len = p - req->sig;

        rc = NGX_OK;
    }

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, &req->log, 0,
                      "voice %V: %V could not be signed", &req->id,
                      &req->rc->what);
    }

    return rc;
}


static void
ngx_voice_request_header(ngx_voice_hc_t *hc)
{
    ngx_voice_request_t  *req;

    req = hc->data;
    req->status = hc->status;
}


static void
ngx_voice_request_body(ngx_voice_hc_t *hc, u_char *p, size_t n)
{
    /* a 2xx answer's body says nothing the job needs */
}


static void
ngx_voice_request_done(ngx_voice_hc_t *hc)
{
    ngx_voice_request_t  *req;

    req = hc->data;
    req->status = hc->status;

    ngx_voice_request_over(req, NGX_VOICE_LEG_OK);
}


static void
ngx_voice_request_failed(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err)
{
    size_t                len;
    ngx_int_t             n;
    const char           *v;
    ngx_voice_request_t  *req;

    req = hc->data;

    if (err != NGX_VOICE_LEG_ERR_REMOTE) {
        req->status = 0;
        ngx_voice_request_over(req, err);
        return;
    }

    req->status = hc->status;

    /* the start of the answer explains it (a printable line already) */
    req->detail_len = ngx_min(hc->detail_len, NGX_VOICE_REQUEST_DETAIL);
    ngx_memcpy(req->detail, hc->detail, req->detail_len);

    v = ngx_voice_hc_header(hc, "Retry-After", &len);

    if (v) {
        n = ngx_atoi((u_char *) v, len);

        if (n != NGX_ERROR) {
            req->retry_after = ngx_min((ngx_msec_t) n * 1000,
                                       NGX_VOICE_REQUEST_MAX_WAIT);
        }
    }

    ngx_voice_request_over(req, err);
}


/* inside the client's handlers: the rest happens in a posted event */

static void
ngx_voice_request_over(ngx_voice_request_t *req, ngx_voice_leg_error_e err)
{
    req->error = err;
    req->busy = 0;

    ngx_post_event(&req->ended, &ngx_posted_events);
}


static void
ngx_voice_request_timer_handler(ngx_event_t *ev)
{
    ngx_voice_request_t  *req;

    req = ev->data;

    if (req->ended.posted) {
        /* timers run before posted events: the attempt just ended */
        ngx_delete_posted_event(&req->ended);
        ngx_voice_request_next(req);
        return;
    }

    if (!req->busy) {
        /* the wait before the next attempt is over */
        ngx_voice_request_attempt(req);
        return;
    }

    /* the attempt as a whole took too long: its connection goes */
    ngx_voice_hc_cancel(&req->hc);

    req->busy = 0;
    req->status = 0;
    req->error = NGX_VOICE_LEG_ERR_TIMEOUT;

    ngx_voice_request_next(req);
}


static void
ngx_voice_request_ended_handler(ngx_event_t *ev)
{
    ngx_voice_request_next(ev->data);
}


/* an attempt is over: done, a retry later, or given up */

static void
ngx_voice_request_next(ngx_voice_request_t *req)
{
    u_char                    *p;
    ngx_msec_t                 delay;
    ngx_uint_t                 status, retry;
    ngx_voice_request_conf_t  *rc;
    u_char                     outcome[NGX_VOICE_REQUEST_DETAIL + 64];

    rc = req->rc;
    status = req->status;

    if (req->timer.timer_set) {
        ngx_del_timer(&req->timer);
    }

    if (req->error == NGX_VOICE_LEG_OK) {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, &req->log, 0,
                       "voice %V: %V delivered, HTTP %ui, attempt %ui",
                       &req->id, &rc->what, status, req->attempts);

        ngx_voice_request_finish(req);
        return;
    }

    p = ngx_voice_request_outcome(req, outcome, sizeof(outcome));

    if (status && status == rc->gone_status) {
        ngx_log_error(NGX_LOG_INFO, &req->log, 0,
                      "voice %V: %V answered %*s", &req->id, &rc->what,
                      p - outcome, outcome);

        ngx_voice_request_finish(req);
        return;
    }

    /* a transport failure, an overloaded or failing server: again */
    retry = (status == 0 || status == 429 || status >= 500);

    if (!retry) {
        ngx_log_error(NGX_LOG_ERR, &req->log, 0,
                      "voice %V: %V refused with %*s, not retried",
                      &req->id, &rc->what, p - outcome, outcome);

        ngx_voice_request_finish(req);
        return;
    }

    if (req->attempts > rc->retries) {
        ngx_log_error(NGX_LOG_ERR, &req->log, 0,
                      "voice %V: %V not delivered: gave up after %ui "
                      "attempt(s), last: %*s", &req->id, &rc->what,
                      req->attempts, p - outcome, outcome);

        ngx_voice_request_finish(req);
        return;
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        ngx_log_error(NGX_LOG_ERR, &req->log, 0,
                      "voice %V: %V dropped after %ui attempt(s): the "
                      "worker is exiting, last: %*s", &req->id, &rc->what,
                      req->attempts, p - outcome, outcome);

        ngx_voice_request_finish(req);
        return;
    }

    delay = ngx_voice_request_backoff(req);

    ngx_log_error(NGX_LOG_WARN, &req->log, 0,
                  "voice %V: %V attempt %ui failed (%*s), retrying in "
                  "%M ms", &req->id, &rc->what, req->attempts,
                  p - outcome, outcome, delay);

    /* the next URL, if there are several */
    (void) ngx_voice_hc_failover(&req->hc);

    req->timer.cancelable = 1;
    ngx_add_timer(&req->timer, delay);
}


static u_char *
ngx_voice_request_outcome(ngx_voice_request_t *req, u_char *buf,
    size_t len)
{
    if (req->status == 0) {
        return ngx_snprintf(buf, len, "%s",
                            ngx_voice_leg_strerror(req->error));
    }

    if (req->detail_len == 0) {
        return ngx_snprintf(buf, len, "HTTP %ui", req->status);
    }

    return ngx_snprintf(buf, len, "HTTP %ui: %*s", req->status,
                        req->detail_len, req->detail);
}


/* 1 s, 2 s, 4 s ... up to a minute, each +-25%, or what 429/503 asked */

static ngx_msec_t
ngx_voice_request_backoff(ngx_voice_request_t *req)
{
    ngx_msec_t  base, delay;

    base = (ngx_msec_t) 1000 << ngx_min(req->attempts - 1, 6);
    base = ngx_min(base, NGX_VOICE_REQUEST_MAX_WAIT);

    /* jitter: jobs that failed together do not retry together */
    delay = base - base / 4 + (ngx_msec_t) ngx_random() % (base / 2 + 1);

    return ngx_max(delay, req->retry_after);
}


static void
ngx_voice_request_finish(ngx_voice_request_t *req)
{
    void                      *data;
    ngx_uint_t                 status;
    ngx_connection_t          *c;
    ngx_voice_call_t          *call;
    ngx_voice_request_done_pt  done;

    call = req->call;
    done = req->done;
    data = req->data;
    status = (req->error == NGX_VOICE_LEG_OK
              || req->error == NGX_VOICE_LEG_ERR_REMOTE)
             ? req->status : 0;

    /* gone before the call hears of it: it may start another one */
    ngx_voice_request_free(req);

    if (call == NULL || done == NULL || call->cleaned) {
        return;
    }

    c = call->connection;

    done(call, status, data);

    /* as at the end of the call's own events */
    ngx_voice_ws_event_done(call);
    ngx_http_run_posted_requests(c);
}


static void
ngx_voice_request_free(ngx_voice_request_t *req)
{
    if (req->timer.timer_set) {
        ngx_del_timer(&req->timer);
    }

    if (req->ended.posted) {
        ngx_delete_posted_event(&req->ended);
    }

    ngx_voice_request_detach(req);

    /* closes a connection still open, frees the parser */
    ngx_voice_hc_cancel(&req->hc);

    ngx_queue_remove(&req->queue);
    ngx_voice_request_bytes -= req->body.len;

    ngx_destroy_pool(req->pool);
}


/* the call's pool goes: the job outlives it, silently */

static void
ngx_voice_request_call_gone(void *data)
{
    ngx_voice_request_t  *req = data;

    req->cln = NULL;
    req->call = NULL;
    req->done = NULL;
    req->data = NULL;
}


/* the process exits: what is left is dropped, and said so */

void
ngx_voice_request_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t          *q;
    ngx_voice_request_t  *req;

    if (ngx_voice_requests.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_voice_requests)) {
        q = ngx_queue_head(&ngx_voice_requests);
        req = ngx_queue_data(q, ngx_voice_request_t, queue);

        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "voice %V: %V dropped after %ui attempt(s): the "
                      "worker is exiting", &req->id, &req->rc->what,
                      req->attempts);

        ngx_voice_request_free(req);
    }
}


/* ---- the call record to the application ------------------------------ */

ngx_int_t
ngx_voice_events_post(ngx_voice_call_t *call, u_char *json, size_t len)
{
    ngx_voice_http_field_t     f[3];
    ngx_voice_request_args_t   args;
    ngx_voice_request_conf_t  *rc;

    rc = call->conf->events;

    if (rc == NULL) {
        return NGX_DECLINED;
    }

    f[0].name = "Content-Type";
    f[0].name_len = sizeof("Content-Type") - 1;
    f[0].value = "application/json";
    f[0].value_len = sizeof("application/json") - 1;
    f[1].name = "User-Agent";
    f[1].name_len = sizeof("User-Agent") - 1;
    f[1].value = "ngx_voice";
    f[1].value_len = sizeof("ngx_voice") - 1;
    f[2].name = "X-Voice-Call-Sid";
    f[2].name_len = sizeof("X-Voice-Call-Sid") - 1;
    f[2].value = (char *) call->id.data;
    f[2].value_len = call->id.len;

    ngx_memzero(&args, sizeof(ngx_voice_request_args_t));

    ngx_str_set(&args.method, "POST");
    args.fields = f;
    args.nfields = 3;
    args.body.data = json;
    args.body.len = len;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->connection->log, 0,
                   "voice %V: posting the call record, %uz bytes",
                   &call->id, len);

    if (ngx_voice_request_start(rc, &call->id, &args) == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* ---- Twilio's REST API: the live call -------------------------------- */

ngx_int_t
ngx_voice_twilio_update(ngx_voice_call_t *call, ngx_str_t *form,
    ngx_voice_request_done_pt done, void *data)
{
    u_char                    *p, *plain;
    size_t                     len;
    ngx_str_t                  sid, base, uri, auth, src;
    ngx_int_t                  rc;
    ngx_voice_loc_conf_t      *conf;
    ngx_voice_http_field_t     f[4];
    ngx_voice_request_args_t   args;
    ngx_voice_request_conf_t  *twilio;

    conf = call->conf;
    twilio = conf->twilio;

    if (twilio == NULL) {
        ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                      "voice %V: no Twilio REST API configured "
                      "(voice_twilio_api_url)", &call->id);
        return NGX_DECLINED;
    }

    sid = conf->twilio_account_sid;

    if (sid.len == 0) {
        sid.data = call->account_sid;
        sid.len = ngx_strlen(call->account_sid);
    }

    if (sid.len == 0 || call->id.len != NGX_VOICE_TW_SID_LEN) {
        ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                      "voice %V: the call cannot be updated through "
                      "Twilio's REST API before \"start\"", &call->id);
        return NGX_DECLINED;
    }

    /* the URL's own path, if any, prefixes Twilio's */
    base = twilio->pool->ep->uri;

    while (base.len && base.data[base.len - 1] == '/') {
        base.len--;
    }

    uri.len = base.len + sizeof("/2010-04-01/Accounts/") - 1 + sid.len
              + sizeof("/Calls/") - 1 + call->id.len + sizeof(".json") - 1;

    /* Basic base64(AccountSid:AuthToken), built and wiped here */
    src.len = sid.len + 1 + conf->auth_token.len;
    auth.len = sizeof("Basic ") - 1 + ngx_base64_encoded_length(src.len);

    plain = ngx_alloc(uri.len + src.len + auth.len, call->connection->log);
    if (plain == NULL) {
        return NGX_ERROR;
    }

    uri.data = plain;
    ngx_sprintf(uri.data, "%V/2010-04-01/Accounts/%V/Calls/%V.json", &base,
                &sid, &call->id);

    src.data = plain + uri.len;
    p = ngx_cpymem(src.data, sid.data, sid.len);
    *p++ = ':';
    ngx_memcpy(p, conf->auth_token.data, conf->auth_token.len);

    auth.data = src.data + src.len;
    p = ngx_cpymem(auth.data, "Basic ", sizeof("Basic ") - 1);

    len = auth.len - (sizeof("Basic ") - 1);
    auth.len = sizeof("Basic ") - 1;
    ngx_encode_base64(&(ngx_str_t) { len, p }, &src);
    auth.len += len;

    f[0].name = "Authorization";
    f[0].name_len = sizeof("Authorization") - 1;
    f[0].value = (char *) auth.data;
    f[0].value_len = auth.len;
    f[1].name = "Content-Type";
    f[1].name_len = sizeof("Content-Type") - 1;
    f[1].value = "application/x-www-form-urlencoded";
    f[1].value_len = sizeof("application/x-www-form-urlencoded") - 1;
    f[2].name = "Accept";
    f[2].name_len = sizeof("Accept") - 1;
    f[2].value = "application/json";
    f[2].value_len = sizeof("application/json") - 1;
    f[3].name = "User-Agent";
    f[3].name_len = sizeof("User-Agent") - 1;
    f[3].value = "ngx_voice";
    f[3].value_len = sizeof("ngx_voice") - 1;

    ngx_memzero(&args, sizeof(ngx_voice_request_args_t));

    ngx_str_set(&args.method, "POST");
    args.uri = uri;
    args.fields = f;
    args.nfields = 4;
    args.body = *form;
    args.call = call;
    args.done = done;
    args.data = data;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice %V: updating the call through Twilio's REST "
                  "API: %*s", &call->id, ngx_min(form->len, 256),
                  form->data);

    rc = (ngx_voice_request_start(twilio, &call->id, &args) != NULL)
         ? NGX_OK : NGX_ERROR;

    /* the token's copies: the job keeps its own */
    ngx_explicit_memzero(plain, uri.len + src.len + auth.len);
    ngx_free(plain);

    return rc;
}


/* ---- configuration ---------------------------------------------------- */

void
ngx_voice_request_init_conf(ngx_voice_loc_conf_t *conf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->events_url = { 0, NULL };
     *     conf->events_backups = NULL;
     *     conf->events_secret = { 0, NULL };
     *     conf->events = NULL;
     *     conf->twilio_api_url = { 0, NULL };
     *     conf->twilio_account_sid = { 0, NULL };
     *     conf->twilio = NULL;
     */

    conf->events_retries = NGX_CONF_UNSET_UINT;
    conf->events_timeout = NGX_CONF_UNSET_MSEC;
    conf->twilio_complete = NGX_CONF_UNSET;
}


char *
ngx_voice_request_merge_conf(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf)
{
    ngx_uint_t  i;

    if (conf->events_url.data == NULL) {
        conf->events_backups = prev->events_backups;
    }

    ngx_conf_merge_str_value(conf->events_url, prev->events_url, "");
    ngx_conf_merge_str_value(conf->events_secret, prev->events_secret, "");
    ngx_conf_merge_uint_value(conf->events_retries, prev->events_retries,
                              5);
    ngx_conf_merge_msec_value(conf->events_timeout, prev->events_timeout,
                              10000);

    ngx_conf_merge_str_value(conf->twilio_api_url, prev->twilio_api_url,
                             "");
    ngx_conf_merge_str_value(conf->twilio_account_sid,
                             prev->twilio_account_sid, "");
    ngx_conf_merge_value(conf->twilio_complete, prev->twilio_complete, 0);

    if (conf->mode == NULL) {
        return NGX_CONF_OK;
    }

    /* an unsigned record could come from anyone: no key, no events */
    if (conf->events_url.len && conf->events_secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"voice_events_url\" needs "
                           "\"voice_events_secret\", the key of the "
                           "records' signature");
        return NGX_CONF_ERROR;
    }

    if (conf->twilio_account_sid.len) {
        /* the value may be a secret's: never printed */
        for (i = 2; i < conf->twilio_account_sid.len; i++) {
            if (!isxdigit(conf->twilio_account_sid.data[i])) {
                break;
            }
        }

        if (conf->twilio_account_sid.len != NGX_VOICE_TW_SID_LEN
            || ngx_strncmp(conf->twilio_account_sid.data, "AC", 2) != 0
            || i != conf->twilio_account_sid.len)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"voice_twilio_account_sid\" is not an "
                               "account SID (\"AC\" and 32 hex digits)");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * The endpoints of an agent location's requests, once its TLS context is
 * known.  Twilio's REST API is set up where something uses it, so that
 * api.twilio.com is not looked up for nothing.
 */

ngx_int_t
ngx_voice_request_connect(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_str_t                 url;
    ngx_voice_request_conf_t  *rc;

    if (conf->events_url.len) {
        rc = ngx_voice_request_conf(cf, conf, &conf->events_url,
                                    conf->events_backups, "events");
        if (rc == NULL) {
            return NGX_ERROR;
        }

        rc->secret = conf->events_secret;
        rc->retries = conf->events_retries;
        rc->timeout = conf->events_timeout;

        conf->events = rc;
    }

    if (conf->twilio_api_url.len == 0 && !conf->twilio_complete
        && conf->transfer_numbers == NULL)
    {
        return NGX_OK;
    }

    if (conf->auth_token.len == 0) {
        if (!conf->twilio_complete && conf->transfer_numbers == NULL) {
            /* only where the API is: nothing uses it here */
            return NGX_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "Twilio's REST API (voice_twilio_complete, "
                           "voice_transfer_numbers) needs "
                           "\"voice_twilio_auth_token\"");
        return NGX_ERROR;
    }

    url = conf->twilio_api_url;

    if (url.len == 0) {
        ngx_str_set(&url, "https://api.twilio.com");
    }

    rc = ngx_voice_request_conf(cf, conf, &url, NULL, "twilio");
    if (rc == NULL) {
        return NGX_ERROR;
    }

    rc->retries = NGX_VOICE_TWILIO_RETRIES;
    rc->timeout = conf->provider_timeout;

    /* 404: the call is over already, which is what it wanted, or moot */
    rc->gone_status = NGX_HTTP_NOT_FOUND;

    conf->twilio = rc;

    return NGX_OK;
}


static ngx_voice_request_conf_t *
ngx_voice_request_conf(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf,
    ngx_str_t *url, ngx_array_t *backups, const char *what)
{
    ngx_str_t                  none;
    ngx_voice_endpoint_t      *first;
    ngx_voice_request_conf_t  *rc;

    rc = ngx_pcalloc(cf->pool, sizeof(ngx_voice_request_conf_t));
    if (rc == NULL) {
        return NULL;
    }

    ngx_str_null(&none);

    first = ngx_voice_conf_endpoints(cf, conf, url, backups, what, &none);
    if (first == NULL) {
        return NULL;
    }

    /*
     * a client per endpoint, in the same failover ring; no keep-alive:
     * a request or two per call, and an idle connection would hold the
     * output blocks of a whole record
     */
    rc->pool = ngx_voice_hc_pools(cf, first, 0, 0);
    if (rc->pool == NULL) {
        return NULL;
    }

    rc->what.data = (u_char *) what;
    rc->what.len = ngx_strlen(what);
    rc->zone = conf->zone;

    return rc;
}
