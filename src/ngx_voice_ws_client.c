/*
 * Copyright (C) ngx_voice authors
 *
 * The WebSocket client of the STT and TTS legs.
 */


#include "ngx_voice_ws_client.h"
#include "ngx_voice_base64.h"
#include "ngx_voice_zone.h"

#include <openssl/rand.h>


#define NGX_VOICE_WSC_HEADER_MAX   4096


static void ngx_voice_wsc_connected(ngx_voice_leg_t *leg);
static void ngx_voice_wsc_data(ngx_voice_leg_t *leg, u_char *p, size_t n);
static void ngx_voice_wsc_failed(ngx_voice_leg_t *leg,
    ngx_voice_leg_error_e err);
static void ngx_voice_wsc_handshake(ngx_voice_wsc_t *ws, u_char *p,
    size_t n);
static ngx_int_t ngx_voice_wsc_check_upgrade(ngx_voice_wsc_t *ws);
static void ngx_voice_wsc_refused(ngx_voice_wsc_t *ws);
static void ngx_voice_wsc_frames(ngx_voice_wsc_t *ws, u_char *p, size_t n);
static ngx_int_t ngx_voice_wsc_frame(ngx_voice_wsc_t *ws, ngx_uint_t opcode,
    ngx_uint_t fin, u_char *data, size_t len);
static void ngx_voice_wsc_end(ngx_voice_wsc_t *ws, ngx_voice_leg_error_e err);
static void ngx_voice_wsc_close_timeout(ngx_event_t *ev);


static ngx_voice_leg_handler_t  ngx_voice_wsc_leg_handler = {
    ngx_voice_wsc_connected,
    ngx_voice_wsc_data,
    ngx_voice_wsc_failed
};


void
ngx_voice_wsc_init(ngx_voice_wsc_t *ws, ngx_voice_call_t *call,
    ngx_voice_endpoint_t *ep, ngx_voice_wsc_handler_t *handler, void *data,
    size_t max_message)
{
    ngx_memzero(ws, sizeof(ngx_voice_wsc_t));

    ngx_voice_leg_init(&ws->leg, call, ep, &ngx_voice_wsc_leg_handler, ws);

    ws->handler = handler;
    ws->data = data;
    ws->max_message = max_message;

    ws->close_timer.handler = ngx_voice_wsc_close_timeout;
    ws->close_timer.data = ws;
    ws->close_timer.log = &ws->leg.log;
}


/* extra request fields, e.g. the provider's authorization */

ngx_int_t
ngx_voice_wsc_add_field(ngx_voice_wsc_t *ws, const char *name,
    ngx_str_t *value)
{
    ngx_voice_http_field_t  *f;

    if (ws->nfields == NGX_VOICE_WSC_MAX_FIELDS) {
        return NGX_ERROR;
    }

    f = &ws->fields[ws->nfields++];
    f->name = name;
    f->name_len = ngx_strlen(name);
    f->value = (const char *) value->data;
    f->value_len = value->len;

    return NGX_OK;
}


ngx_int_t
ngx_voice_wsc_connect(ngx_voice_wsc_t *ws, ngx_str_t *uri)
{
    ws->uri = *uri;
    ws->state = NGX_VOICE_WSC_CONNECTING;
    ws->close_sent = 0;
    ws->close_received = 0;
    ws->close_code = 0;
    ws->close_reason_len = 0;
    ws->status = 0;
    ws->detail_len = 0;

    return ngx_voice_leg_open(&ws->leg);
}


static void
ngx_voice_wsc_connected(ngx_voice_leg_t *leg)
{
    size_t                   len;
    u_char                  *p;
    ngx_voice_wsc_t         *ws;
    ngx_voice_http_field_t   fields[NGX_VOICE_WSC_MAX_FIELDS + 4];
    u_char                   raw[16];

    ws = leg->data;

    /* the key only has to be unpredictable to intermediaries */
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ngx_ssl_error(NGX_LOG_ERR, &leg->log, 0, "RAND_bytes() failed");
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
        return;
    }

    (void) ngx_voice_base64_encode(ws->key, raw, sizeof(raw));

    fields[0].name = "Upgrade";
    fields[0].value = "websocket";
    fields[1].name = "Connection";
    fields[1].value = "Upgrade";
    fields[2].name = "Sec-WebSocket-Key";
    fields[2].value = (char *) ws->key;
    fields[3].name = "Sec-WebSocket-Version";
    fields[3].value = "13";

    for (len = 0; len < 4; len++) {
        fields[len].name_len = ngx_strlen(fields[len].name);
        fields[len].value_len = (len == 2) ? sizeof(ws->key)
                                           : ngx_strlen(fields[len].value);
    }

    ngx_memcpy(&fields[4], ws->fields,
               ws->nfields * sizeof(ngx_voice_http_field_t));

    len = ngx_voice_http_request_len("GET", 3, (char *) ws->uri.data,
                                     ws->uri.len,
                                     (char *) leg->ep->host.data,
                                     leg->ep->host.len, fields,
                                     4 + ws->nfields, NULL, 0);

    p = (len && len <= NGX_VOICE_OUT_BLOCK)
        ? ngx_voice_outq_reserve(&leg->out, len) : NULL;

    if (p == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &leg->log, 0,
                      "cannot build the upgrade request (%uz bytes)", len);
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_PROTOCOL);
        return;
    }

    (void) ngx_voice_http_request_write(p, "GET", 3, (char *) ws->uri.data,
                                        ws->uri.len,
                                        (char *) leg->ep->host.data,
                                        leg->ep->host.len, fields,
                                        4 + ws->nfields, NULL, 0);
    ngx_voice_outq_commit(&leg->out, len);

    if (ngx_voice_http_parser_init(&ws->http, NGX_VOICE_WSC_HEADER_MAX)
        != 0)
    {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
        return;
    }

    ws->state = NGX_VOICE_WSC_HANDSHAKE;
    leg->log.action = "waiting for the WebSocket upgrade";

    /* the upgrade is bounded like the connect */
    leg->read_timeout = leg->ep->connect_timeout;
    ngx_add_timer(leg->peer.connection->read, leg->read_timeout);

    (void) ngx_voice_leg_flush(leg);
}


static void
ngx_voice_wsc_data(ngx_voice_leg_t *leg, u_char *p, size_t n)
{
    ngx_voice_wsc_t  *ws;

    ws = leg->data;

    if (ws->state == NGX_VOICE_WSC_HANDSHAKE) {
        ngx_voice_wsc_handshake(ws, p, n);
        return;
    }

    ngx_voice_wsc_frames(ws, p, n);
}


static void
ngx_voice_wsc_handshake(ngx_voice_wsc_t *ws, u_char *p, size_t n)
{
    int                      rc;
    size_t                   used, len;
    ngx_voice_http_event_t   ev;

    while (ws->state == NGX_VOICE_WSC_HANDSHAKE) {

        rc = ngx_voice_http_parse(&ws->http, p, n, &used, &ev);

        p += used;
        n -= used;

        switch (rc) {

        case NGX_VOICE_HTTP_AGAIN:
            return;

        case NGX_VOICE_HTTP_HEADER:
            break;

        case NGX_VOICE_HTTP_HEADER_DONE:
            if (ws->http.status == 101) {
                if (ngx_voice_wsc_check_upgrade(ws) != NGX_OK) {
                    return;
                }

                break;
            }

            ws->status = ws->http.status;
            break;

        case NGX_VOICE_HTTP_BODY:
            /* a refusal's body explains it: keep its start for the log */
            len = ngx_min(ev.len, sizeof(ws->detail) - ws->detail_len);
            ngx_memcpy(ws->detail + ws->detail_len, ev.data, len);
            ws->detail_len += len;
            break;

        case NGX_VOICE_HTTP_DONE:
            if (ws->status) {
                ngx_voice_wsc_refused(ws);
                return;
            }

            /* 101: the rest is frames */
            ngx_voice_http_parser_free(&ws->http);

            ws->state = NGX_VOICE_WSC_OPEN;
            ws->leg.log.action = NULL;
            ws->leg.read_timeout = 0;

            ngx_voice_ws_reader_init(&ws->reader, NGX_VOICE_WS_CLIENT,
                                     ws->max_message, 1024);

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &ws->leg.log, 0,
                           "voice %V: %V WebSocket open",
                           &ws->leg.call->id, &ws->leg.ep->provider);

            ws->handler->open(ws);

            if (n && ws->state == NGX_VOICE_WSC_OPEN) {
                ngx_voice_wsc_frames(ws, p, n);
            }

            return;

        default: /* NGX_VOICE_HTTP_ERROR */
            ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                          "invalid answer to the WebSocket upgrade: %s",
                          ws->http.error);
            ngx_voice_wsc_end(ws, NGX_VOICE_LEG_ERR_HANDSHAKE);
            return;
        }
    }
}


static ngx_int_t
ngx_voice_wsc_check_upgrade(ngx_voice_wsc_t *ws)
{
    size_t       len;
    const char  *v;
    u_char       accept[NGX_VOICE_WS_ACCEPT_LEN];

    v = ngx_voice_http_header(&ws->http, "upgrade", &len);

    if (v == NULL || !ngx_voice_http_list_has(v, len, "websocket")) {
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "101 without \"Upgrade: websocket\"");
        goto failed;
    }

    v = ngx_voice_http_header(&ws->http, "connection", &len);

    if (v == NULL || !ngx_voice_http_list_has(v, len, "upgrade")) {
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "101 without \"Connection: upgrade\"");
        goto failed;
    }

    ngx_voice_ws_accept(accept, ws->key, sizeof(ws->key));

    v = ngx_voice_http_header(&ws->http, "sec-websocket-accept", &len);

    if (v == NULL || len != NGX_VOICE_WS_ACCEPT_LEN
        || ngx_memcmp(v, accept, NGX_VOICE_WS_ACCEPT_LEN) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                      "101 with a wrong Sec-WebSocket-Accept");
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_voice_wsc_end(ws, NGX_VOICE_LEG_ERR_HANDSHAKE);
    return NGX_ERROR;
}


/* a non-101 answer: say what the provider said, once */

static void
ngx_voice_wsc_refused(ngx_voice_wsc_t *ws)
{
    size_t       len, i;
    const char  *err;

    err = ngx_voice_http_header(&ws->http, "dg-error", &len);

    if (err == NULL) {
        err = (const char *) ws->detail;
        len = ws->detail_len;
    }

    /* provider text goes to the log: keep it on one printable line */
    len = ngx_min(len, sizeof(ws->detail));

    if (err != (const char *) ws->detail) {
        ngx_memcpy(ws->detail, err, len);
    }

    for (i = 0; i < len; i++) {
        if (ws->detail[i] < 0x20 || ws->detail[i] == 0x7f) {
            ws->detail[i] = ' ';
        }
    }

    ws->detail_len = len;

    ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                  "WebSocket upgrade refused: HTTP %ui \"%*s\"",
                  ws->status, ws->detail_len, ws->detail);

    ngx_voice_wsc_end(ws, NGX_VOICE_LEG_ERR_HANDSHAKE);
}


static void
ngx_voice_wsc_frames(ngx_voice_wsc_t *ws, u_char *p, size_t n)
{
    int                  rc;
    size_t               used;
    ngx_voice_ws_msg_t   msg;
    u_char               code[2];

    while (n && (ws->state == NGX_VOICE_WSC_OPEN
                 || ws->state == NGX_VOICE_WSC_CLOSING))
    {
        rc = ngx_voice_ws_read(&ws->reader, p, n, &used, &msg);

        p += used;
        n -= used;

        if (rc == NGX_VOICE_WS_AGAIN) {
            return;
        }

        if (rc == NGX_VOICE_WS_FAIL) {
            ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                          "WebSocket protocol error from the provider: %s",
                          ws->reader.error_text);
            (void) ngx_voice_wsc_frame(ws, NGX_VOICE_WS_OP_CLOSE, 1, NULL, 0);
            ngx_voice_wsc_end(ws, NGX_VOICE_LEG_ERR_PROTOCOL);
            return;
        }

        switch (msg.opcode) {

        case NGX_VOICE_WS_OP_PING:
            if (!ws->close_sent) {
                (void) ngx_voice_wsc_frame(ws, NGX_VOICE_WS_OP_PONG, 1,
                                           (u_char *) msg.data, msg.len);
                (void) ngx_voice_leg_flush(&ws->leg);
            }

            break;

        case NGX_VOICE_WS_OP_PONG:
            break;

        case NGX_VOICE_WS_OP_CLOSE:
            ws->close_received = 1;
            ws->close_code = msg.close_code;
            ws->close_reason_len = ngx_min(msg.reason_len,
                                           sizeof(ws->close_reason));
            ngx_memcpy(ws->close_reason, msg.reason, ws->close_reason_len);

            if (ws->close_sent) {
                ngx_voice_wsc_end(ws, NGX_VOICE_LEG_OK);
                return;
            }

            /* the provider ends the stream: answer, surface its reason */
            if (msg.close_code == NGX_VOICE_WS_CLOSE_NORMAL) {
                ngx_log_error(NGX_LOG_INFO, &ws->leg.log, 0,
                              "provider closed the WebSocket: 1000 \"%*s\"",
                              ws->close_reason_len, ws->close_reason);

            } else {
                ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                              "provider closed the WebSocket: %ui \"%*s\"",
                              ws->close_code, ws->close_reason_len,
                              ws->close_reason);
            }

            /* echo the code (RFC 6455 5.5.1) */
            code[0] = (u_char) (msg.close_code >> 8);
            code[1] = (u_char) (msg.close_code & 0xff);

            (void) ngx_voice_wsc_frame(ws, NGX_VOICE_WS_OP_CLOSE, 1, code,
                                       msg.close_code
                                       == NGX_VOICE_WS_CLOSE_NO_STATUS
                                       ? 0 : 2);
            (void) ngx_voice_leg_flush(&ws->leg);

            ngx_voice_wsc_end(ws, msg.close_code == NGX_VOICE_WS_CLOSE_NORMAL
                                  ? NGX_VOICE_LEG_OK
                                  : NGX_VOICE_LEG_ERR_REMOTE);
            return;

        default:
            if (ws->state == NGX_VOICE_WSC_OPEN) {
                ws->handler->message(ws, &msg);
            }

            break;
        }
    }
}


/*
 * Sends one message, masked with a fresh key; a message larger than an
 * output block goes as fragments.
 */

ngx_int_t
ngx_voice_wsc_send(ngx_voice_wsc_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    size_t      n, max;
    ngx_uint_t  op;

    if (ws->state != NGX_VOICE_WSC_OPEN || ws->close_sent) {
        return NGX_DECLINED;
    }

    max = NGX_VOICE_OUT_BLOCK - NGX_VOICE_WS_MAX_HEADER;
    op = opcode;

    do {
        n = ngx_min(len, max);

        if (ngx_voice_wsc_frame(ws, op, n == len, data, n) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                          "%V is not reading: %uz bytes queued",
                          &ws->leg.ep->provider, ws->leg.out.pending);
            ngx_voice_wsc_end(ws, NGX_VOICE_LEG_ERR_OVERFLOW);
            return NGX_ERROR;
        }

        op = NGX_VOICE_WS_OP_CONT;
        data += n;
        len -= n;

    } while (len);

    return (ngx_voice_leg_flush(&ws->leg) == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_voice_wsc_frame(ngx_voice_wsc_t *ws, ngx_uint_t opcode, ngx_uint_t fin,
    u_char *data, size_t len)
{
    size_t   hlen;
    u_char  *p;
    u_char   mask[4];

    if (ws->leg.state != NGX_VOICE_LEG_OPEN) {
        return NGX_ERROR;
    }

    hlen = ngx_voice_ws_header_len(len, 1);

    p = ngx_voice_outq_reserve(&ws->leg.out, hlen + len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (RAND_bytes(mask, sizeof(mask)) != 1) {
        return NGX_ERROR;
    }

    p += ngx_voice_ws_header(p, opcode, fin, len, mask);

    if (len) {
        ngx_memcpy(p, data, len);
        ngx_voice_ws_mask(p, len, mask, 0);
    }

    ngx_voice_outq_commit(&ws->leg.out, hlen + len);

    if (opcode == NGX_VOICE_WS_OP_CLOSE) {
        ws->close_sent = 1;
    }

    return NGX_OK;
}


/*
 * Starts the close handshake; the socket goes when the provider answers,
 * or after NGX_VOICE_CLOSE_TIMEOUT.  Before the socket is open, aborts.
 */

ngx_int_t
ngx_voice_wsc_close(ngx_voice_wsc_t *ws, ngx_uint_t code, const char *reason)
{
    size_t  rlen;
    u_char  payload[125];

    if (ws->state != NGX_VOICE_WSC_OPEN) {
        ngx_voice_wsc_abort(ws);
        return NGX_OK;
    }

    rlen = reason ? ngx_min(ngx_strlen(reason), 123) : 0;

    payload[0] = (u_char) (code >> 8);
    payload[1] = (u_char) (code & 0xff);
    ngx_memcpy(payload + 2, reason, rlen);

    if (ngx_voice_wsc_frame(ws, NGX_VOICE_WS_OP_CLOSE, 1, payload, 2 + rlen)
        != NGX_OK)
    {
        ngx_voice_wsc_abort(ws);
        return NGX_OK;
    }

    ws->state = NGX_VOICE_WSC_CLOSING;

    (void) ngx_voice_leg_flush(&ws->leg);

    if (ws->state == NGX_VOICE_WSC_CLOSING) {
        ngx_add_timer(&ws->close_timer, NGX_VOICE_CLOSE_TIMEOUT);
    }

    return NGX_OK;
}


static void
ngx_voice_wsc_close_timeout(ngx_event_t *ev)
{
    ngx_voice_wsc_t  *ws;

    ws = ev->data;

    ngx_log_error(NGX_LOG_INFO, &ws->leg.log, 0,
                  "no Close from %V within %M ms", &ws->leg.ep->provider,
                  (ngx_msec_t) NGX_VOICE_CLOSE_TIMEOUT);

    ngx_voice_wsc_end(ws, NGX_VOICE_LEG_OK);

    ngx_voice_ws_event_done(ws->leg.call);
    ngx_http_run_posted_requests(ws->leg.call->connection);
}


/* closes everything now, without telling the owner */

void
ngx_voice_wsc_abort(ngx_voice_wsc_t *ws)
{
    if (ws->close_timer.timer_set) {
        ngx_del_timer(&ws->close_timer);
    }

    ngx_voice_leg_close(&ws->leg);
    ngx_voice_http_parser_free(&ws->http);
    ngx_voice_ws_reader_free(&ws->reader);

    ws->state = NGX_VOICE_WSC_CLOSED;
}


static void
ngx_voice_wsc_failed(ngx_voice_leg_t *leg, ngx_voice_leg_error_e err)
{
    ngx_voice_wsc_t  *ws;

    ws = leg->data;

    /* an EOF after our Close is how a provider may end it */
    if (ws->state == NGX_VOICE_WSC_CLOSING) {
        err = NGX_VOICE_LEG_OK;
    }

    ngx_voice_wsc_end(ws, err);
}


static void
ngx_voice_wsc_end(ngx_voice_wsc_t *ws, ngx_voice_leg_error_e err)
{
    if (ws->state == NGX_VOICE_WSC_CLOSED) {
        return;
    }

    ngx_voice_wsc_abort(ws);

    ws->leg.error = err;

    /* every way a WebSocket leg ends passes here once */
    ngx_voice_zone_provider_error(ws->leg.zone, &ws->leg.ep->provider, err,
                                  ws->status);

    ws->handler->closed(ws, err);
}
