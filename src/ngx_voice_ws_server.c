/*
 * Copyright (C) ngx_voice authors
 *
 * The inbound WebSocket endpoint (RFC 6455 server) that Twilio connects
 * to: the upgrade handshake, taking over the connection the way nginx's
 * own upgrade code does (request handlers, not connection handlers), the
 * frame read loop, the owned output queue and the close handshake.
 *
 * Finalization is never done deep inside a callback: code that decides a
 * call must end calls ngx_voice_ws_finish(), which only records the
 * decision, and the top-level event handler finalizes the request on its
 * way out.  That keeps every stack frame's memory valid.
 */


#include "ngx_voice.h"
#include "ngx_voice_base64.h"
#include "ngx_voice_zone.h"


static ngx_int_t ngx_voice_ws_check_upgrade(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_voice_ws_has_token(ngx_str_t *value, const char *token,
    size_t len);
static ngx_int_t ngx_voice_ws_reject(ngx_http_request_t *r, ngx_uint_t status,
    const char *name, const char *value);
static ngx_int_t ngx_voice_ws_upgrade_required(ngx_http_request_t *r);
static ngx_int_t ngx_voice_ws_upgrade(ngx_http_request_t *r, ngx_str_t *key);
static void ngx_voice_ws_read_handler(ngx_http_request_t *r);
static void ngx_voice_ws_write_handler(ngx_http_request_t *r);
static void ngx_voice_ws_process(ngx_voice_call_t *call, u_char *p,
    size_t n);
static void ngx_voice_ws_message(ngx_voice_call_t *call,
    ngx_voice_ws_msg_t *msg);
static void ngx_voice_ws_idle(ngx_voice_call_t *call);
static void ngx_voice_ws_flush(ngx_voice_call_t *call);
static void ngx_voice_ws_cleanup(void *data);
static u_char *ngx_voice_ws_log_handler(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);


ngx_int_t
ngx_voice_ws_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              key;
    ngx_voice_loc_conf_t  *vlcf;

    ngx_str_null(&key);

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "voice: voice_pipeline cannot run in a subrequest");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_GET) {
        return ngx_voice_ws_reject(r, NGX_HTTP_NOT_ALLOWED, "Allow", "GET");
    }

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_voice_module);

    /* refuse unsigned callers before any other work */
    rc = ngx_voice_auth_check(r, vlcf);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_voice_ws_check_upgrade(r, &key);

    if (rc == NGX_HTTP_UPGRADE_REQUIRED) {
        return ngx_voice_ws_upgrade_required(r);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_voice_ws_upgrade(r, &key);
}


static ngx_int_t
ngx_voice_ws_check_upgrade(ngx_http_request_t *r, ngx_str_t *key)
{
    u_char            raw[24];
    ssize_t           n;
    ngx_str_t        *version;
    ngx_uint_t        i, nkeys, nversions, upgrade, connection;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    key->len = 0;
    version = NULL;
    nkeys = 0;
    nversions = 0;
    upgrade = 0;
    connection = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("sec-websocket-key") - 1
            && ngx_strncmp(h[i].lowcase_key, "sec-websocket-key",
                           h[i].key.len) == 0)
        {
            *key = h[i].value;
            nkeys++;

        } else if (h[i].key.len == sizeof("sec-websocket-version") - 1
                   && ngx_strncmp(h[i].lowcase_key, "sec-websocket-version",
                                  h[i].key.len) == 0)
        {
            version = &h[i].value;
            nversions++;

        } else if (h[i].key.len == sizeof("upgrade") - 1
                   && ngx_strncmp(h[i].lowcase_key, "upgrade",
                                  h[i].key.len) == 0)
        {
            upgrade |= ngx_voice_ws_has_token(&h[i].value, "websocket", 9);

        } else if (h[i].key.len == sizeof("connection") - 1
                   && ngx_strncmp(h[i].lowcase_key, "connection",
                                  h[i].key.len) == 0)
        {
            connection |= ngx_voice_ws_has_token(&h[i].value, "upgrade", 7);
        }
    }

    if (!upgrade || !connection) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: not a WebSocket upgrade request");
        return NGX_HTTP_UPGRADE_REQUIRED;
    }

    if (r->http_version != NGX_HTTP_VERSION_11) {
        /* HTTP/1.0 cannot upgrade; HTTP/2 would need RFC 8441 */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: WebSocket upgrade needs HTTP/1.1");
        return NGX_HTTP_UPGRADE_REQUIRED;
    }

    if (nversions != 1 || version->len != 2
        || ngx_strncmp(version->data, "13", 2) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: missing or unsupported Sec-WebSocket-Version");
        return ngx_voice_ws_reject(r, NGX_HTTP_BAD_REQUEST,
                                   "Sec-WebSocket-Version", "13");
    }

    /* the key must be base64 of exactly 16 bytes (RFC 6455 4.2.1) */
    n = -1;

    if (nkeys == 1 && key->len == 24) {
        n = ngx_voice_base64_decode(raw, key->data, key->len);
    }

    if (n != 16) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: missing or invalid Sec-WebSocket-Key");
        return ngx_voice_ws_reject(r, NGX_HTTP_BAD_REQUEST, NULL, NULL);
    }

    /* frames after the headers would otherwise be taken for a body */
    if (r->headers_in.content_length_n > 0 || r->headers_in.chunked) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: WebSocket upgrade request with a body");
        return ngx_voice_ws_reject(r, NGX_HTTP_BAD_REQUEST, NULL, NULL);
    }

    return NGX_OK;
}


/* is token one of the comma-separated, case-insensitive items of value */

static ngx_int_t
ngx_voice_ws_has_token(ngx_str_t *value, const char *token, size_t len)
{
    u_char  *p, *end, *s, *e;

    p = value->data;
    end = p + value->len;

    while (p < end) {
        s = p;

        while (p < end && *p != ',') {
            p++;
        }

        e = p++;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }

        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }

        if ((size_t) (e - s) == len
            && ngx_strncasecmp(s, (u_char *) token, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* a response header with static strings */

ngx_table_elt_t *
ngx_voice_header_out(ngx_http_request_t *r, const char *name,
    const char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    return h;
}


static ngx_int_t
ngx_voice_ws_reject(ngx_http_request_t *r, ngx_uint_t status,
    const char *name, const char *value)
{
    if (name && ngx_voice_header_out(r, name, value) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the connection may hold frames already: do not keep it alive */
    r->keepalive = 0;

    return status;
}


/* nginx has no status line or error page for 426: send our own */

static ngx_int_t
ngx_voice_ws_upgrade_required(ngx_http_request_t *r)
{
    ngx_buf_t  *b;

    if (ngx_voice_ws_reject(r, 0, "Upgrade", "websocket") != 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) "WebSocket upgrade required\n";
    b->last = b->pos + sizeof("WebSocket upgrade required\n") - 1;
    b->memory = 1;
    b->last_buf = 1;

    r->headers_out.status = NGX_HTTP_UPGRADE_REQUIRED;
    ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    ngx_str_set(&r->headers_out.content_type, "text/plain");

    return ngx_voice_send_buf(r, b);
}


/* a whole response: the headers set, the body in one buffer */

ngx_int_t
ngx_voice_send_buf(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_int_t     rc;
    ngx_chain_t   out;

    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_voice_ws_upgrade(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_int_t              rc;
    ngx_table_elt_t       *h;
    ngx_connection_t      *c;
    ngx_voice_call_t      *call;
    ngx_pool_cleanup_t    *pcln;
    ngx_http_cleanup_t    *cln;
    ngx_voice_loc_conf_t  *vlcf;

    c = r->connection;
    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_voice_module);

    call = ngx_pcalloc(r->pool, sizeof(ngx_voice_call_t));
    if (call == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    call->request = r;
    call->connection = c;
    call->conf = vlcf;
    call->mode = vlcf->mode;
    call->started = ngx_current_msec;
    call->last_read = ngx_current_msec;

    call->id.data = call->id_buf;
    call->id.len = ngx_snprintf(call->id_buf, sizeof(call->id_buf),
                                "conn#%uA", c->number)
                   - call->id_buf;

    call->rbuf = ngx_pnalloc(r->pool, NGX_VOICE_READ_BUF);
    if (call->rbuf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_voice_ws_reader_init(&call->reader, NGX_VOICE_WS_SERVER,
                             vlcf->max_message_size, NGX_VOICE_MSG_MIN);
    ngx_voice_outq_init(&call->out, r->pool, vlcf->send_buffer);

    /* the reader's malloc()ed buffer must go whatever ends the request */
    pcln = ngx_pool_cleanup_add(r->pool, 0);
    if (pcln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pcln->handler = (ngx_pool_cleanup_pt) ngx_voice_ws_reader_free;
    pcln->data = &call->reader;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* voice_max_calls; from here the cleanup gives the slot back */
    if (ngx_voice_zone_call_open(call) != NGX_OK) {
        return ngx_voice_ws_reject(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL,
                                   NULL);
    }

    cln->handler = ngx_voice_ws_cleanup;
    cln->data = call;

    ngx_http_set_ctx(r, call, ngx_http_voice_module);

    call->log_handler = r->log_handler;
    r->log_handler = ngx_voice_ws_log_handler;

    /* 101 Switching Protocols */

    if (ngx_voice_header_out(r, "Upgrade", "websocket") == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_voice_header_out(r, "Sec-WebSocket-Accept", "");
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_VOICE_WS_ACCEPT_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_voice_ws_accept(h->value.data, key->data, key->len);
    h->value.len = NGX_VOICE_WS_ACCEPT_LEN;

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;
    r->lingering_close = 1;

    /* header_only makes the header filter flush the 101 at once */
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    call->header_pending = (r->out != NULL);

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "voice: WebSocket upgraded, "
                  "mode \"%V\"", &call->mode->name);

    /* hold the request: it now lives until the call ends */
    r->main->count++;

    r->read_event_handler = ngx_voice_ws_read_handler;
    r->write_event_handler = ngx_voice_ws_write_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* 20 ms audio frames must never wait on Nagle */
    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_voice_ws_finish(call, NGX_ERROR);
    }

    /* a live call keeps a non-cancelable timer: reloads wait for it */
    ngx_add_timer(c->read, vlcf->idle_timeout);

    /* bytes that came with the headers are the first frames */
    if (r->header_in->pos < r->header_in->last) {
        ngx_voice_ws_process(call, r->header_in->pos,
                             r->header_in->last - r->header_in->pos);
        r->header_in->pos = r->header_in->last;
    }

    /*
     * Data that arrived meanwhile raised no new edge-triggered event; the
     * read handler also sends what the first frames produced, and ends
     * the call if they broke the protocol: never from inside this handler.
     */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


static void
ngx_voice_ws_read_handler(ngx_http_request_t *r)
{
    ssize_t            n;
    ngx_event_t       *rev;
    ngx_connection_t  *c;
    ngx_voice_call_t  *call;

    c = r->connection;
    rev = c->read;
    call = ngx_http_get_module_ctx(r, ngx_http_voice_module);

    if (call->state == NGX_VOICE_CALL_DONE) {
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;

        if (call->state == NGX_VOICE_CALL_CLOSING) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "voice: no Close from the client within %M ms",
                          (ngx_msec_t) NGX_VOICE_CLOSE_TIMEOUT);
            ngx_voice_ws_finish(call, NGX_ERROR);
            ngx_voice_ws_event_done(call);
            return;
        }

        ngx_voice_ws_idle(call);
    }

    while (!call->finishing && !call->read_paused) {

        n = c->recv(c, call->rbuf, NGX_VOICE_READ_BUF);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_voice_ws_finish(call, NGX_ERROR);
            }

            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (call->close_sent && call->close_received) {
                ngx_voice_ws_finish(call, NGX_OK);

            } else {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "voice: client closed the connection "
                              "without a Close frame");
                call->peer_close_code = NGX_VOICE_WS_CLOSE_ABNORMAL;
                ngx_voice_ws_finish(call, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            }

            break;
        }

        call->last_read = ngx_current_msec;

        ngx_voice_ws_process(call, call->rbuf, n);

        /*
         * A client that sends faster than it reads what its messages
         * produce: write, and stop reading while half the queue is still
         * taken; the socket's own window then slows the client down.
         */
        if (call->out.pending >= call->out.limit / 2 && !call->finishing) {
            ngx_voice_ws_flush(call);

            if (call->out.pending >= call->out.limit / 2) {
                ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                               "voice %V: %uz bytes queued, reading paused",
                               &call->id, call->out.pending);
                call->read_paused = 1;
            }
        }
    }

    ngx_voice_ws_event_done(call);
}


static void
ngx_voice_ws_idle(ngx_voice_call_t *call)
{
    ngx_msec_t         idle;
    ngx_connection_t  *c;

    c = call->connection;
    idle = ngx_current_msec - call->last_read;

    /* the timer is armed once and moved only when it fires: cheap */
    if (idle < call->conf->idle_timeout) {
        ngx_add_timer(c->read, call->conf->idle_timeout - idle);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "voice: client silent for %M ms, closing", idle);

    ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_GOING_AWAY, "idle timeout");
}


static void
ngx_voice_ws_process(ngx_voice_call_t *call, u_char *p, size_t n)
{
    int                  rc;
    size_t               used;
    ngx_voice_ws_msg_t   msg;

    while (n && !call->finishing) {

        if (call->reader.error) {
            /* failed connection: only the peer's Close matters, and the
             * parser cannot find it any more; drop the bytes */
            return;
        }

        rc = ngx_voice_ws_read(&call->reader, p, n, &used, &msg);

        p += used;
        n -= used;

        if (rc == NGX_VOICE_WS_AGAIN) {
            return;
        }

        if (rc == NGX_VOICE_WS_FAIL) {
            ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                          "voice: WebSocket protocol error: %s, "
                          "closing with %ui", call->reader.error_text,
                          (ngx_uint_t) call->reader.error);

            ngx_voice_ws_fail(call, call->reader.error,
                              call->reader.error_text);
            return;
        }

        ngx_voice_ws_message(call, &msg);
    }
}


static void
ngx_voice_ws_message(ngx_voice_call_t *call, ngx_voice_ws_msg_t *msg)
{
    ngx_connection_t  *c;

    c = call->connection;

    switch (msg->opcode) {

    case NGX_VOICE_WS_OP_TEXT:
        if (call->state < NGX_VOICE_CALL_CLOSING) {
            (void) ngx_voice_call_text(call, (u_char *) msg->data, msg->len);
        }

        return;

    case NGX_VOICE_WS_OP_BINARY:
        if (call->state < NGX_VOICE_CALL_CLOSING) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "voice: binary frame from Twilio (%uz bytes), "
                          "closing with 1003", msg->len);
            ngx_voice_ws_fail(call, 1003, "binary frames not accepted");
        }

        return;

    case NGX_VOICE_WS_OP_PING:
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "voice %V: ping, %uz bytes", &call->id, msg->len);

        if (!call->close_sent) {
            (void) ngx_voice_ws_send(call, NGX_VOICE_WS_OP_PONG,
                                     (u_char *) msg->data, msg->len);
        }

        return;

    case NGX_VOICE_WS_OP_PONG:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "voice %V: pong", &call->id);
        return;

    case NGX_VOICE_WS_OP_CLOSE:
        call->close_received = 1;
        call->peer_close_code = msg->close_code;

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "voice: client sent Close %ui \"%*s\"",
                      (ngx_uint_t) msg->close_code, msg->reason_len,
                      msg->reason);

        if (call->close_sent) {
            return;
        }

        if (call->mode->closing && call->state >= NGX_VOICE_CALL_STARTED
            && call->mode->closing(call) == NGX_AGAIN)
        {
            /* the mode sends our Close when done; its own timer bounds it */
            call->state = NGX_VOICE_CALL_CLOSING;
            return;
        }

        /* echo the code (RFC 6455 5.5.1); 1005 means "none sent" */
        ngx_voice_ws_close(call, msg->close_code, NULL);

        return;
    }
}


/*
 * "Fails the WebSocket connection" (RFC 6455 7.1.7): a Close frame with
 * the reason, then the socket is closed once it is written, without
 * waiting for a peer that has already broken the protocol.
 */

ngx_int_t
ngx_voice_ws_fail(ngx_voice_call_t *call, ngx_uint_t code,
    const char *reason)
{
    call->fail_fast = 1;

    return ngx_voice_ws_close(call, code, reason);
}


/*
 * Starts the close handshake: queues a Close frame, stops sending data
 * and waits (bounded) for the peer's Close before closing the socket.
 */

ngx_int_t
ngx_voice_ws_close(ngx_voice_call_t *call, ngx_uint_t code,
    const char *reason)
{
    size_t             len, rlen;
    u_char            *p;
    ngx_connection_t  *c;

    if (call->close_sent || call->finishing) {
        return NGX_OK;
    }

    c = call->connection;

    rlen = reason ? ngx_min(ngx_strlen(reason), 123) : 0;
    len = (code == NGX_VOICE_WS_CLOSE_NO_STATUS) ? 0 : 2 + rlen;

    p = ngx_voice_ws_frame_start(call, NGX_VOICE_WS_OP_CLOSE, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        *p++ = (u_char) (code >> 8);
        *p++ = (u_char) (code & 0xff);
        ngx_memcpy(p, reason, rlen);
    }

    (void) ngx_voice_ws_frame_end(call, len);

    call->close_sent = 1;
    call->close_code = code;
    call->state = NGX_VOICE_CALL_CLOSING;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "voice %V: Close %ui sent", &call->id, code);

    if (!call->close_received && !call->fail_fast) {
        ngx_add_timer(c->read, NGX_VOICE_CLOSE_TIMEOUT);
    }

    return NGX_OK;
}


/*
 * Room for one frame with a payload of len bytes in the output queue.
 * NULL when the call is closing or ending, or when the queue is full:
 * a client that does not read is dropped rather than buffered for.
 */

u_char *
ngx_voice_ws_frame_start(ngx_voice_call_t *call, ngx_uint_t opcode,
    size_t len)
{
    size_t   hlen;
    u_char  *p;

    if (call->close_sent || call->finishing) {
        return NULL;
    }

    hlen = ngx_voice_ws_header_len(len, 0);

    p = ngx_voice_outq_reserve(&call->out, hlen + len);

    if (p == NULL) {
        if (call->out.pending + hlen + len > call->out.limit) {
            ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                          "voice: client is not reading: %uz bytes "
                          "queued, over voice_send_buffer %uz; "
                          "dropping the call", call->out.pending,
                          call->out.limit);
        }

        ngx_voice_ws_finish(call, NGX_ERROR);
        return NULL;
    }

    return p + ngx_voice_ws_header(p, opcode, 1, len, NULL);
}


ngx_int_t
ngx_voice_ws_frame_end(ngx_voice_call_t *call, size_t len)
{
    ngx_voice_outq_commit(&call->out, ngx_voice_ws_header_len(len, 0) + len);

    return NGX_OK;
}


ngx_int_t
ngx_voice_ws_send(ngx_voice_call_t *call, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    u_char  *p;

    p = ngx_voice_ws_frame_start(call, opcode, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, data, len);

    return ngx_voice_ws_frame_end(call, len);
}


static void
ngx_voice_ws_write_handler(ngx_http_request_t *r)
{
    ngx_voice_call_t  *call;

    call = ngx_http_get_module_ctx(r, ngx_http_voice_module);

    if (call->state == NGX_VOICE_CALL_DONE) {
        return;
    }

    if (r->connection->write->timedout) {
        r->connection->write->timedout = 0;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, NGX_ETIMEDOUT,
                      "voice: client took no data for %M ms "
                      "(voice_send_timeout), %uz bytes queued; "
                      "dropping the call", call->conf->send_timeout,
                      call->out.pending);

        ngx_voice_ws_finish(call, NGX_ERROR);
    }

    ngx_voice_ws_event_done(call);
}


/* writes what the socket takes; arms send_timeout while bytes remain */

static void
ngx_voice_ws_flush(ngx_voice_call_t *call)
{
    off_t                sent;
    ngx_int_t            rc;
    ngx_event_t         *wev;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = call->request;
    c = call->connection;
    wev = c->write;

    if (call->header_pending) {
        if (ngx_http_write_filter(r, NULL) == NGX_ERROR) {
            ngx_voice_ws_finish(call, NGX_ERROR);
            return;
        }

        if (r->out) {
            goto again;
        }

        call->header_pending = 0;
    }

    sent = c->sent;

    rc = ngx_voice_outq_send(&call->out, c);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "voice: writing to the client failed");
        ngx_voice_ws_finish(call, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    if (call->read_paused && call->out.pending < call->out.limit / 4) {
        call->read_paused = 0;
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (rc == NGX_OK) {
        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        if (call->close_sent && (call->close_received || call->fail_fast)) {
            ngx_voice_ws_finish(call, NGX_OK);
        }

        return;
    }

    /* send_timeout measures the time between two successful writes */
    if (c->sent != sent || !wev->timer_set) {
        ngx_add_timer(wev, call->conf->send_timeout);
    }

again:

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_voice_ws_finish(call, NGX_ERROR);
    }
}


void
ngx_voice_ws_finish(ngx_voice_call_t *call, ngx_int_t rc)
{
    if (!call->finishing) {
        call->finishing = 1;
        call->finish_rc = rc;
    }
}


/*
 * Every top-level handler that touched the call ends here: queued frames
 * go out in one write, and a decision to end the call is carried out.
 * Handlers not driven by the client connection (timers, other sockets)
 * also need the posted requests run.
 */

void
ngx_voice_ws_event_done(ngx_voice_call_t *call)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = call->request;

    if (!call->finishing && call->state != NGX_VOICE_CALL_DONE) {
        ngx_voice_ws_flush(call);
    }

    if (call->finishing && call->state != NGX_VOICE_CALL_DONE) {
        rc = call->finish_rc;

        ngx_voice_call_cleanup(call);
        call->state = NGX_VOICE_CALL_DONE;

        /*
         * After the closing handshake nothing more may come from the
         * client: the connection closes now (and the access log line is
         * written now), rather than lingering for its EOF.
         */
        if (call->close_received && call->close_sent) {
            r->lingering_close = 0;
        }

        ngx_http_finalize_request(r, rc);
    }
}


static void
ngx_voice_ws_cleanup(void *data)
{
    ngx_voice_call_t  *call = data;

    /* nginx ends the request: client abort, shutdown, or our finalize */
    ngx_voice_call_cleanup(call);
    call->state = NGX_VOICE_CALL_DONE;
}


static u_char *
ngx_voice_ws_log_handler(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char            *p;
    ngx_voice_call_t  *call;

    call = ngx_http_get_module_ctx(r, ngx_http_voice_module);

    p = ngx_snprintf(buf, len, ", call: %V", &call->id);
    len -= p - buf;

    return call->log_handler(r, sr, p, len);
}
