/*
 * Copyright (C) ngx_voice authors
 *
 * A WebSocket client (RFC 6455) over an outbound leg: the upgrade with a
 * random key and the answer's Sec-WebSocket-Accept verified, every frame
 * masked with a fresh key, ping/pong, the close handshake with the
 * provider's code and reason surfaced, and the frames that arrive with
 * the 101 kept.
 */


#ifndef _NGX_VOICE_WS_CLIENT_H_INCLUDED_
#define _NGX_VOICE_WS_CLIENT_H_INCLUDED_


#include "ngx_voice_leg.h"
#include "ngx_voice_http_parse.h"


#define NGX_VOICE_WSC_MAX_FIELDS   4


typedef enum {
    NGX_VOICE_WSC_IDLE = 0,
    NGX_VOICE_WSC_CONNECTING,       /* resolving, TCP, TLS */
    NGX_VOICE_WSC_HANDSHAKE,        /* upgrade sent, waiting for 101 */
    NGX_VOICE_WSC_OPEN,
    NGX_VOICE_WSC_CLOSING,          /* our Close sent */
    NGX_VOICE_WSC_CLOSED
} ngx_voice_wsc_state_e;


typedef struct ngx_voice_wsc_s  ngx_voice_wsc_t;

typedef struct {
    void                    (*open)(ngx_voice_wsc_t *ws);
    void                    (*message)(ngx_voice_wsc_t *ws,
                                       ngx_voice_ws_msg_t *msg);
    /* the socket is gone: err is NGX_VOICE_LEG_OK after a clean close */
    void                    (*closed)(ngx_voice_wsc_t *ws,
                                      ngx_voice_leg_error_e err);
} ngx_voice_wsc_handler_t;


struct ngx_voice_wsc_s {
    ngx_voice_leg_t           leg;
    ngx_voice_wsc_handler_t  *handler;
    void                     *data;
    ngx_voice_wsc_state_e     state;

    ngx_str_t                 uri;            /* path and query */
    ngx_voice_http_field_t    fields[NGX_VOICE_WSC_MAX_FIELDS];
    ngx_uint_t                nfields;

    u_char                    key[24];
    ngx_voice_http_parser_t   http;
    ngx_voice_ws_reader_t     reader;
    size_t                    max_message;

    ngx_uint_t                status;         /* of a refused upgrade */
    u_char                    detail[160];    /* provider's error text */
    size_t                    detail_len;

    ngx_uint_t                close_code;     /* the provider's */
    u_char                    close_reason[124];
    size_t                    close_reason_len;

    ngx_event_t               close_timer;

    unsigned                  close_sent:1;
    unsigned                  close_received:1;
};


void ngx_voice_wsc_init(ngx_voice_wsc_t *ws, ngx_voice_call_t *call,
    ngx_voice_endpoint_t *ep, ngx_voice_wsc_handler_t *handler, void *data,
    size_t max_message);
ngx_int_t ngx_voice_wsc_connect(ngx_voice_wsc_t *ws, ngx_str_t *uri);
ngx_int_t ngx_voice_wsc_add_field(ngx_voice_wsc_t *ws, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_voice_wsc_send(ngx_voice_wsc_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
ngx_int_t ngx_voice_wsc_close(ngx_voice_wsc_t *ws, ngx_uint_t code,
    const char *reason);
void ngx_voice_wsc_abort(ngx_voice_wsc_t *ws);


#endif /* _NGX_VOICE_WS_CLIENT_H_INCLUDED_ */
