/*
 * Copyright (C) ngx_voice authors
 *
 * The HTTP/1.1 client of request/response provider legs, with a
 * keep-alive pool per endpoint.  The pool follows
 * ngx_http_upstream_keepalive_module: a pooled connection is c->idle (so
 * a graceful shutdown closes it), logs to ngx_cycle->log (the call that
 * opened it may be gone), closes on any byte, EOF or its idle timer, and
 * nothing is pooled while the worker exits.
 */


#include "ngx_voice_http_client.h"
#include "ngx_voice_zone.h"


#define NGX_VOICE_HC_HEADER_MAX    8192


typedef struct {
    ngx_queue_t               queue;
    ngx_voice_hc_pool_t      *pool;
    ngx_connection_t         *connection;
    ngx_voice_outq_t          out;
    u_char                   *rbuf;
    ngx_str_t                 peer_name;
    u_char                    peer_text[NGX_SOCKADDR_STRLEN];
} ngx_voice_hc_idle_t;


static ngx_int_t ngx_voice_hc_start(ngx_voice_hc_t *hc);
static ngx_int_t ngx_voice_hc_take(ngx_voice_hc_t *hc);
static void ngx_voice_hc_send(ngx_voice_hc_t *hc);
static void ngx_voice_hc_connected(ngx_voice_leg_t *leg);
static void ngx_voice_hc_data(ngx_voice_leg_t *leg, u_char *p, size_t n);
static void ngx_voice_hc_failed(ngx_voice_leg_t *leg,
    ngx_voice_leg_error_e err);
static void ngx_voice_hc_finish(ngx_voice_hc_t *hc, ngx_uint_t reusable);
static void ngx_voice_hc_end(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err);
static void ngx_voice_hc_park(ngx_voice_hc_t *hc);
static void ngx_voice_hc_retry_handler(ngx_event_t *ev);
static void ngx_voice_hc_idle_handler(ngx_event_t *ev);
static void ngx_voice_hc_idle_write(ngx_event_t *ev);
static void ngx_voice_hc_idle_save_session(ngx_connection_t *c);
static void ngx_voice_hc_idle_close(ngx_voice_hc_idle_t *item);


static ngx_voice_leg_handler_t  ngx_voice_hc_leg_handler = {
    ngx_voice_hc_connected,
    ngx_voice_hc_data,
    ngx_voice_hc_failed
};


ngx_voice_hc_pool_t *
ngx_voice_hc_pool_create(ngx_conf_t *cf, ngx_voice_endpoint_t *ep,
    ngx_uint_t max, ngx_msec_t timeout)
{
    ngx_uint_t            i;
    ngx_voice_hc_pool_t  *pool;
    ngx_voice_hc_idle_t  *items;

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_voice_hc_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->ep = ep;
    pool->max = max;
    pool->timeout = timeout;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->free);

    if (max == 0) {
        return pool;
    }

    /* each worker gets its own copy of these at fork */
    items = ngx_pcalloc(cf->pool, max * sizeof(ngx_voice_hc_idle_t));
    if (items == NULL) {
        return NULL;
    }

    for (i = 0; i < max; i++) {
        items[i].pool = pool;
        ngx_queue_insert_head(&pool->free, &items[i].queue);
    }

    return pool;
}


/* a pool per endpoint of a failover ring, in a ring of their own */

ngx_voice_hc_pool_t *
ngx_voice_hc_pools(ngx_conf_t *cf, ngx_voice_endpoint_t *first,
    ngx_uint_t max, ngx_msec_t timeout)
{
    ngx_voice_hc_pool_t   *pool, *head, *prev;
    ngx_voice_endpoint_t  *ep;

    ep = first;
    head = NULL;
    prev = NULL;

    do {
        pool = ngx_voice_hc_pool_create(cf, ep, max, timeout);
        if (pool == NULL) {
            return NULL;
        }

        if (prev) {
            prev->next = pool;

        } else {
            head = pool;
        }

        prev = pool;
        ep = ep->next;

    } while (ep && ep != first);

    if (first->next) {
        prev->next = head;
    }

    return head;
}


void
ngx_voice_hc_init(ngx_voice_hc_t *hc, ngx_voice_call_t *call,
    ngx_voice_hc_pool_t *pool, ngx_voice_hc_handler_t *handler, void *data)
{
    ngx_memzero(hc, sizeof(ngx_voice_hc_t));

    ngx_voice_leg_init(&hc->leg, call, pool->ep, &ngx_voice_hc_leg_handler,
                       hc);

    hc->pool = pool;
    hc->handler = handler;
    hc->data = data;

    hc->retry.handler = ngx_voice_hc_retry_handler;
    hc->retry.data = hc;
    hc->retry.log = &hc->leg.log;
}


/*
 * Opens (and TLS-handshakes) a connection ahead of the first request and
 * parks it in the pool.  A request made meanwhile takes it over.
 */

ngx_int_t
ngx_voice_hc_warm(ngx_voice_hc_t *hc)
{
    ngx_voice_hc_pool_t  *pool;

    pool = hc->pool;

    if (hc->state != NGX_VOICE_HC_IDLE || pool->max == 0 || ngx_exiting
        || !ngx_queue_empty(&pool->idle))
    {
        return NGX_DECLINED;
    }

    hc->have_request = 0;
    hc->state = NGX_VOICE_HC_CONNECTING;

    return ngx_voice_leg_open(&hc->leg);
}


/*
 * Starts a request; rq's fields and body must stay valid until done() or
 * failed().  Those are never called from inside this function for a
 * pooled connection, but may be for a fresh one (an immediate DNS or
 * connect failure).  Do not start a request from inside done() or
 * failed().
 */

ngx_int_t
ngx_voice_hc_request(ngx_voice_hc_t *hc, ngx_voice_hc_request_t *rq)
{
    if (hc->state == NGX_VOICE_HC_WAITING || hc->state == NGX_VOICE_HC_BODY
        || hc->have_request)
    {
        return NGX_BUSY;
    }

    if (hc->http.buf == NULL) {
        if (ngx_voice_http_parser_init(&hc->http, NGX_VOICE_HC_HEADER_MAX)
            != 0)
        {
            return NGX_ERROR;
        }

    } else {
        ngx_voice_http_parser_reset(&hc->http);
    }

    hc->rq = *rq;
    hc->have_request = 1;
    hc->got_bytes = 0;
    hc->retried = 0;
    hc->failing = 0;
    hc->status = 0;
    hc->detail_len = 0;
    hc->requests++;

    if (hc->state == NGX_VOICE_HC_CONNECTING) {
        /* a warming connection: it carries this request when up */
        hc->on_pooled = 0;
        return NGX_OK;
    }

    return ngx_voice_hc_start(hc);
}


static ngx_int_t
ngx_voice_hc_start(ngx_voice_hc_t *hc)
{
    if (ngx_voice_hc_take(hc) == NGX_OK) {
        hc->on_pooled = 1;
        hc->reused++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &hc->leg.log, 0,
                       "voice %V: %V request on a pooled connection",
                       ngx_voice_leg_id(&hc->leg), &hc->leg.ep->provider);

        ngx_voice_hc_send(hc);
        return NGX_OK;
    }

    hc->on_pooled = 0;
    hc->state = NGX_VOICE_HC_CONNECTING;

    return ngx_voice_leg_open(&hc->leg);
}


/* the most recently parked connection: the least likely to be stale */

static ngx_int_t
ngx_voice_hc_take(ngx_voice_hc_t *hc)
{
    ngx_queue_t          *q;
    ngx_voice_hc_idle_t  *item;

    if (ngx_queue_empty(&hc->pool->idle)) {
        return NGX_DECLINED;
    }

    q = ngx_queue_head(&hc->pool->idle);
    ngx_queue_remove(q);
    ngx_queue_insert_head(&hc->pool->free, q);

    item = ngx_queue_data(q, ngx_voice_hc_idle_t, queue);

    ngx_voice_leg_attach(&hc->leg, item->connection, &item->out, item->rbuf,
                         &item->peer_name);

    item->connection = NULL;

    return NGX_OK;
}


static void
ngx_voice_hc_connected(ngx_voice_leg_t *leg)
{
    ngx_voice_hc_t  *hc;

    hc = leg->data;

    if (hc->have_request) {
        ngx_voice_hc_send(hc);
        return;
    }

    /* warmed: ready for the first request */
    ngx_log_error(NGX_LOG_INFO, &leg->log, 0,
                  "voice: %V connection warmed in %M ms (%s)",
                  &leg->ep->provider, ngx_current_msec - leg->opened,
                  leg->peer.connection->ssl
                  ? (leg->tls_resumed ? "TLS resumed" : "TLS handshake")
                  : "plain");

    hc->state = NGX_VOICE_HC_IDLE;
    ngx_voice_hc_park(hc);
}


static void
ngx_voice_hc_send(ngx_voice_hc_t *hc)
{
    size_t                   len, n;
    u_char                  *p, *body;
    ngx_uint_t               nf;
    ngx_event_t             *rev;
    ngx_voice_leg_t         *leg;
    ngx_voice_endpoint_t    *ep;
    ngx_voice_http_field_t   fields[NGX_VOICE_HC_MAX_FIELDS + 1];
    u_char                   clen[NGX_SIZE_T_LEN];

    leg = &hc->leg;
    ep = leg->ep;

    nf = ngx_min(hc->rq.nfields, NGX_VOICE_HC_MAX_FIELDS);
    ngx_memcpy(fields, hc->rq.fields, nf * sizeof(ngx_voice_http_field_t));

    /* the body goes in blocks after the header: its length is ours */
    fields[nf].name = "Content-Length";
    fields[nf].name_len = sizeof("Content-Length") - 1;
    fields[nf].value = (char *) clen;
    fields[nf].value_len = ngx_sprintf(clen, "%uz", hc->rq.body_len) - clen;
    nf++;

    len = ngx_voice_http_request_len((char *) hc->rq.method.data,
                                     hc->rq.method.len,
                                     (char *) hc->rq.uri.data,
                                     hc->rq.uri.len, (char *) ep->host.data,
                                     ep->host.len, fields, nf, NULL, 0);

    p = (len && len <= NGX_VOICE_OUT_BLOCK)
        ? ngx_voice_outq_reserve(&leg->out, len) : NULL;

    if (p == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &leg->log, 0,
                      "cannot build the request header (%uz bytes)", len);
        ngx_voice_hc_end(hc, NGX_VOICE_LEG_ERR_PROTOCOL);
        return;
    }

    (void) ngx_voice_http_request_write(p, (char *) hc->rq.method.data,
                                        hc->rq.method.len,
                                        (char *) hc->rq.uri.data,
                                        hc->rq.uri.len,
                                        (char *) ep->host.data, ep->host.len,
                                        fields, nf, NULL, 0);
    ngx_voice_outq_commit(&leg->out, len);

    body = hc->rq.body;
    len = hc->rq.body_len;

    while (len) {
        n = ngx_min(len, NGX_VOICE_OUT_BLOCK);

        p = ngx_voice_outq_reserve(&leg->out, n);
        if (p == NULL) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                          "request body of %uz bytes exceeds "
                          "voice_send_buffer", hc->rq.body_len);
            ngx_voice_hc_end(hc, NGX_VOICE_LEG_ERR_OVERFLOW);
            return;
        }

        ngx_memcpy(p, body, n);
        ngx_voice_outq_commit(&leg->out, n);

        body += n;
        len -= n;
    }

    hc->state = NGX_VOICE_HC_WAITING;

    /* the answer's first byte, then every gap, is bounded */
    leg->read_timeout = hc->rq.timeout;
    leg->last_read = ngx_current_msec;

    rev = leg->peer.connection->read;

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    if (leg->read_timeout) {
        ngx_add_timer(rev, leg->read_timeout);
    }

    (void) ngx_voice_leg_flush(leg);
}


static void
ngx_voice_hc_data(ngx_voice_leg_t *leg, u_char *p, size_t n)
{
    int                      rc;
    size_t                   used, len;
    ngx_voice_hc_t          *hc;
    ngx_voice_http_event_t   ev;

    hc = leg->data;

    if (hc->state != NGX_VOICE_HC_WAITING && hc->state != NGX_VOICE_HC_BODY)
    {
        ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                      "%V sent %uz bytes unasked", &leg->ep->provider, n);
        ngx_voice_hc_end(hc, NGX_VOICE_LEG_ERR_PROTOCOL);
        return;
    }

    hc->got_bytes = 1;

    for ( ;; ) {

        rc = ngx_voice_http_parse(&hc->http, p, n, &used, &ev);

        p += used;
        n -= used;

        switch (rc) {

        case NGX_VOICE_HTTP_AGAIN:
            return;

        case NGX_VOICE_HTTP_HEADER:
            break;

        case NGX_VOICE_HTTP_HEADER_DONE:
            hc->status = hc->http.status;
            hc->state = NGX_VOICE_HC_BODY;

            if (hc->status < 200 || hc->status > 299) {
                hc->failing = 1;
            }

            hc->handler->header(hc);

            if (hc->state != NGX_VOICE_HC_BODY) {
                return;
            }

            break;

        case NGX_VOICE_HTTP_BODY:
            if (hc->failing) {
                /* an error body explains it: keep its start */
                len = ngx_min(ev.len, sizeof(hc->detail) - hc->detail_len);
                ngx_memcpy(hc->detail + hc->detail_len, ev.data, len);
                hc->detail_len += len;
                break;
            }

            hc->handler->body(hc, (u_char *) ev.data, ev.len);

            if (hc->state != NGX_VOICE_HC_BODY) {
                return;
            }

            break;

        case NGX_VOICE_HTTP_DONE:
            ngx_voice_hc_finish(hc, n == 0 && hc->http.keepalive);
            return;

        default: /* NGX_VOICE_HTTP_ERROR */
            ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                          "invalid HTTP response: %s", hc->http.error);
            ngx_voice_hc_end(hc, NGX_VOICE_LEG_ERR_PROTOCOL);
            return;
        }
    }
}


/* the response is complete: the connection is pooled or closed first */

static void
ngx_voice_hc_finish(ngx_voice_hc_t *hc, ngx_uint_t reusable)
{
    size_t  i;

    hc->state = NGX_VOICE_HC_IDLE;
    hc->have_request = 0;

    if (reusable) {
        ngx_voice_hc_park(hc);

    } else {
        ngx_voice_leg_close(&hc->leg);
    }

    if (!hc->failing) {
        hc->handler->done(hc);
        return;
    }

    /* provider text goes to the log: keep it on one printable line */
    for (i = 0; i < hc->detail_len; i++) {
        if (hc->detail[i] < 0x20 || hc->detail[i] == 0x7f) {
            hc->detail[i] = ' ';
        }
    }

    ngx_voice_zone_provider_error(hc->leg.zone, &hc->leg.ep->provider,
                                  NGX_VOICE_LEG_ERR_REMOTE, hc->status);

    hc->handler->failed(hc, NGX_VOICE_LEG_ERR_REMOTE);
}


/* closes the connection and tells the owner */

static void
ngx_voice_hc_end(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err)
{
    ngx_voice_leg_close(&hc->leg);

    hc->leg.error = err;
    hc->state = NGX_VOICE_HC_IDLE;

    ngx_voice_zone_provider_error(hc->leg.zone, &hc->leg.ep->provider, err,
                                  0);

    if (!hc->have_request) {
        return;
    }

    hc->have_request = 0;
    hc->handler->failed(hc, err);
}


static void
ngx_voice_hc_failed(ngx_voice_leg_t *leg, ngx_voice_leg_error_e err)
{
    ngx_voice_hc_t  *hc;

    hc = leg->data;

    if (!hc->have_request) {
        /* a warming connection: the first request opens its own */
        ngx_log_error(NGX_LOG_WARN, &leg->log, 0,
                      "voice: warming a %V connection failed (%s)",
                      &leg->ep->provider, ngx_voice_leg_strerror(err));
        ngx_voice_zone_provider_error(leg->zone, &leg->ep->provider, err, 0);
        hc->state = NGX_VOICE_HC_IDLE;
        return;
    }

    /* a body delimited by the close ends with it */
    if (hc->state == NGX_VOICE_HC_BODY && err == NGX_VOICE_LEG_ERR_CLOSED
        && ngx_voice_http_eof(&hc->http) == NGX_VOICE_HTTP_DONE)
    {
        ngx_voice_hc_finish(hc, 0);
        return;
    }

    /*
     * the provider closed a pooled connection as we reused it: the
     * request most likely never reached it, so it goes once more on a
     * new one; not a request that must never run twice (a tool call)
     */
    if (hc->on_pooled && !hc->got_bytes && !hc->retried && !hc->once
        && (err == NGX_VOICE_LEG_ERR_CLOSED || err == NGX_VOICE_LEG_ERR_IO))
    {
        ngx_log_error(NGX_LOG_INFO, &leg->log, 0,
                      "voice: pooled %V connection was stale (%s), "
                      "retrying on a new one", &leg->ep->provider,
                      ngx_voice_leg_strerror(err));

        hc->retried = 1;
        hc->on_pooled = 0;
        hc->state = NGX_VOICE_HC_CONNECTING;

        /* not from inside the failed connection's handlers */
        ngx_post_event(&hc->retry, &ngx_posted_events);
        return;
    }

    hc->state = NGX_VOICE_HC_IDLE;
    hc->have_request = 0;

    ngx_voice_zone_provider_error(leg->zone, &leg->ep->provider, err, 0);

    hc->handler->failed(hc, err);
}


static void
ngx_voice_hc_retry_handler(ngx_event_t *ev)
{
    ngx_voice_hc_t    *hc;
    ngx_voice_call_t  *call;

    hc = ev->data;
    call = hc->leg.call;

    (void) ngx_voice_hc_start(hc);

    if (call == NULL) {
        /* a request that outlives its call: no call to flush or end */
        return;
    }

    ngx_voice_ws_event_done(call);
    ngx_http_run_posted_requests(call->connection);
}


/*
 * Moves the client to the next endpoint of the provider's ring, for the
 * request about to be retried and the ones after it.  Only between
 * requests: the failed one's connection is gone or pooled already.
 */

ngx_int_t
ngx_voice_hc_failover(ngx_voice_hc_t *hc)
{
    ngx_voice_hc_pool_t  *next;

    next = hc->pool->next;

    if (next == NULL || hc->state != NGX_VOICE_HC_IDLE) {
        return NGX_DECLINED;
    }

    ngx_voice_leg_close(&hc->leg);

    hc->pool = next;
    hc->leg.ep = next->ep;

    return NGX_OK;
}


const char *
ngx_voice_hc_header(ngx_voice_hc_t *hc, const char *name, size_t *len)
{
    if (hc->status == 0) {
        return NULL;
    }

    return ngx_voice_http_header(&hc->http, name, len);
}


/*
 * Keeps a small answer whole (a tool's, a persona): appends a body piece
 * to buf of max bytes; past max, *len is max + 1 from then on ("too
 * large"), so the owner decides once, at the end.
 */

void
ngx_voice_hc_collect(u_char *buf, size_t *len, size_t max, u_char *p,
    size_t n)
{
    if (*len > max || n > max - *len) {
        *len = max + 1;
        return;
    }

    ngx_memcpy(buf + *len, p, n);
    *len += n;
}


/* closes at once, without events: barge-in, or the call's end */

void
ngx_voice_hc_cancel(ngx_voice_hc_t *hc)
{
    if (hc->retry.posted) {
        ngx_delete_posted_event(&hc->retry);
    }

    ngx_voice_leg_close(&hc->leg);
    ngx_voice_http_parser_free(&hc->http);

    hc->state = NGX_VOICE_HC_IDLE;
    hc->have_request = 0;
}


/* ---- the keep-alive pool -------------------------------------------- */

static void
ngx_voice_hc_park(ngx_voice_hc_t *hc)
{
    ngx_queue_t          *q;
    ngx_connection_t     *c;
    ngx_voice_leg_t      *leg;
    ngx_voice_hc_pool_t  *pool;
    ngx_voice_hc_idle_t  *item;

    pool = hc->pool;
    leg = &hc->leg;
    c = leg->peer.connection;

    if (pool->max == 0 || ngx_exiting || ngx_terminate || c == NULL
        || leg->state != NGX_VOICE_LEG_OPEN || leg->out.pending
        || c->buffered || c->error || c->read->eof || c->read->error)
    {
        ngx_voice_leg_close(leg);
        return;
    }

    if (ngx_queue_empty(&pool->free)) {
        /* full: the oldest idle connection makes room */
        q = ngx_queue_last(&pool->idle);
        item = ngx_queue_data(q, ngx_voice_hc_idle_t, queue);
        ngx_voice_hc_idle_close(item);
    }

    q = ngx_queue_head(&pool->free);
    ngx_queue_remove(q);
    ngx_queue_insert_head(&pool->idle, q);

    item = ngx_queue_data(q, ngx_voice_hc_idle_t, queue);

    item->peer_name.data = item->peer_text;
    item->peer_name.len = ngx_min(leg->peer_name.len, NGX_SOCKADDR_STRLEN);
    ngx_memcpy(item->peer_text, leg->peer_name.data, item->peer_name.len);

    c = ngx_voice_leg_detach(leg, &item->out, &item->rbuf);
    item->connection = c;

    /* the call that used it may end before the connection does */
    c->data = item;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->read->handler = ngx_voice_hc_idle_handler;
    c->write->handler = ngx_voice_hc_idle_write;

    if (c->ssl) {
        /* TLS 1.3 tickets come after the handshake, often while idle */
        c->ssl->save_session = ngx_voice_hc_idle_save_session;
    }

    /* an idle connection never keeps an exiting worker alive */
    c->read->cancelable = 1;
    ngx_add_timer(c->read, pool->timeout);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "voice: %V connection pooled", &pool->ep->provider);

    if (c->read->ready) {
        /* bytes may be waiting already: look at them there */
        ngx_post_event(c->read, &ngx_posted_events);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_voice_hc_idle_close(item);
    }
}


/*
 * Anything on an idle connection ends it: EOF, an error, an unexpected
 * byte, the idle timer or the worker's shutdown.  TLS records that carry
 * no data (session tickets after the handshake) are read and kept quiet.
 */

static void
ngx_voice_hc_idle_handler(ngx_event_t *ev)
{
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_voice_hc_idle_t  *item;
    u_char                buf[1];

    c = ev->data;
    item = c->data;

    if (c->close || ev->timedout) {
        goto close;
    }

    n = c->recv(c, buf, 1);

    if (n == NGX_AGAIN) {
        if (ngx_handle_read_event(ev, 0) != NGX_OK) {
            goto close;
        }

        return;
    }

close:

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "voice: pooled %V connection closed",
                   &item->pool->ep->provider);

    ngx_voice_hc_idle_close(item);
}


static void
ngx_voice_hc_idle_write(ngx_event_t *ev)
{
    /* nothing to write on an idle connection */
}


/* as the leg does: one session per endpoint and worker */

static void
ngx_voice_hc_idle_save_session(ngx_connection_t *c)
{
    ngx_voice_hc_idle_t  *item;

    item = c->data;

    /* TLS 1.3 tickets may arrive while the connection is parked */
    ngx_voice_endpoint_save_session(item->pool->ep, c);
}


static void
ngx_voice_hc_idle_close(ngx_voice_hc_idle_t *item)
{
    ngx_connection_t  *c;

    c = item->connection;
    item->connection = NULL;

    ngx_queue_remove(&item->queue);
    ngx_queue_insert_head(&item->pool->free, &item->queue);

    if (c == NULL) {
        return;
    }

    ngx_voice_leg_close_quietly(c);
}
