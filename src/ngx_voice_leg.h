/*
 * Copyright (C) ngx_voice authors
 *
 * An outbound provider leg: one TCP (and usually TLS) connection from a
 * call to a provider endpoint, driven by nginx's event loop: run-time
 * DNS through nginx's resolver, ngx_event_connect_peer() over every
 * address, nginx's OpenSSL layer with SNI, verification and session
 * reuse, an owned output queue and typed failures.  Protocols (WebSocket
 * client, HTTP client) sit on top of it.  A leg with no call (a request
 * that outlives it) logs through the cycle's log, naming leg->id.
 */


#ifndef _NGX_VOICE_LEG_H_INCLUDED_
#define _NGX_VOICE_LEG_H_INCLUDED_


#include "ngx_voice.h"


#define NGX_VOICE_LEG_MAX_ADDRS    8
#define NGX_VOICE_LEG_READ_BUF     8192
#define NGX_VOICE_LEG_SEND_BUFFER  (64 * 1024)   /* a leg with no call */


/* where a provider lives: parsed at configuration time */
typedef struct {
    ngx_str_t                 provider;       /* "deepgram", for logs */
    ngx_str_t                 url;            /* as configured */
    ngx_str_t                 host;           /* Host header */
    ngx_str_t                 host_name;      /* host without port */
    in_port_t                 port;
    ngx_str_t                 uri;            /* path and query */
    ngx_uint_t                tls;            /* wss:// or https:// */

    ngx_addr_t               *addrs;          /* literal or resolved */
    ngx_uint_t                naddrs;         /* at configuration */
    ngx_uint_t                literal;        /* host is an address */

    ngx_resolver_t           *resolver;       /* NULL: use addrs */
    ngx_msec_t                resolver_timeout;

    ngx_ssl_t                *ssl;
    ngx_str_t                 ssl_name;       /* SNI and verification */
    ngx_flag_t                ssl_verify;
    ngx_ssl_session_t        *ssl_session;    /* this worker's, reused */

    ngx_msec_t                connect_timeout;
    ngx_msec_t                send_timeout;

    ngx_str_t                 request;        /* the provider's target */
    void                     *next;           /* failover ring, or NULL */
    void                     *first;
} ngx_voice_endpoint_t;


typedef enum {
    NGX_VOICE_LEG_IDLE = 0,
    NGX_VOICE_LEG_RESOLVING,
    NGX_VOICE_LEG_CONNECTING,
    NGX_VOICE_LEG_TLS,
    NGX_VOICE_LEG_OPEN,
    NGX_VOICE_LEG_CLOSED
} ngx_voice_leg_state_e;


/* what went wrong, for the owner and the call record */
typedef enum {
    NGX_VOICE_LEG_OK = 0,
    NGX_VOICE_LEG_ERR_DNS,
    NGX_VOICE_LEG_ERR_CONNECT,
    NGX_VOICE_LEG_ERR_TLS,
    NGX_VOICE_LEG_ERR_VERIFY,
    NGX_VOICE_LEG_ERR_TIMEOUT,
    NGX_VOICE_LEG_ERR_CLOSED,
    NGX_VOICE_LEG_ERR_IO,
    NGX_VOICE_LEG_ERR_HANDSHAKE,
    NGX_VOICE_LEG_ERR_PROTOCOL,
    NGX_VOICE_LEG_ERR_REMOTE,
    NGX_VOICE_LEG_ERR_OVERFLOW,
    NGX_VOICE_LEG_ERR_SHUTDOWN,
    NGX_VOICE_LEG_ERR_LAST
} ngx_voice_leg_error_e;


typedef struct ngx_voice_leg_s  ngx_voice_leg_t;

typedef struct {
    /* transport (TCP, TLS) is up: start the protocol's handshake */
    void                    (*connected)(ngx_voice_leg_t *leg);
    /* bytes arrived; all of them are the owner's to keep or parse */
    void                    (*data)(ngx_voice_leg_t *leg, u_char *p,
                                    size_t n);
    /* the leg failed and is closed; logged already */
    void                    (*failed)(ngx_voice_leg_t *leg,
                                      ngx_voice_leg_error_e err);
} ngx_voice_leg_handler_t;


struct ngx_voice_leg_s {
    ngx_voice_endpoint_t     *ep;
    ngx_voice_call_t         *call;           /* NULL: outlives any call */
    ngx_str_t                 id;             /* call NULL: for the logs */
    size_t                    send_buffer;    /* the output queue's cap */
    ngx_voice_leg_handler_t  *handler;
    void                     *data;           /* the protocol on top */

    ngx_voice_leg_state_e     state;
    ngx_peer_connection_t     peer;
    ngx_resolver_ctx_t       *resolving;

    ngx_sockaddr_t            sockaddr[NGX_VOICE_LEG_MAX_ADDRS];
    socklen_t                 socklen[NGX_VOICE_LEG_MAX_ADDRS];
    ngx_uint_t                naddrs;
    ngx_uint_t                addr;           /* the one tried now */
    ngx_str_t                 peer_name;
    u_char                    peer_text[NGX_SOCKADDR_STRLEN];

    ngx_voice_outq_t           out;
    u_char                   *rbuf;

    ngx_log_t                 log;
    ngx_msec_t                read_timeout;   /* 0: none */
    ngx_msec_t                last_read;
    ngx_msec_t                opened;         /* ngx_current_msec */

    ngx_uint_t                connects;       /* TCP connections made */
    ngx_uint_t                tls_handshakes; /* full, not resumed */
    ngx_uint_t                tls_resumed;

    ngx_voice_leg_error_e     error;
    ngx_shm_zone_t           *zone;           /* voice_zone, or NULL */
    unsigned                  in_handler:1;
};


char *ngx_voice_endpoint_parse(ngx_conf_t *cf, ngx_voice_endpoint_t *ep,
    ngx_str_t *url, const char *provider);
char *ngx_voice_endpoint_merge(ngx_conf_t *cf, ngx_voice_endpoint_t *ep,
    ngx_ssl_t *ssl, ngx_str_t *ssl_name, ngx_flag_t verify,
    ngx_msec_t connect_timeout, ngx_msec_t send_timeout);

/* ngx_voice_conf.c: the endpoints of a URL and its failover URLs */
ngx_voice_endpoint_t *ngx_voice_conf_endpoints(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf, ngx_str_t *url, ngx_array_t *backups,
    const char *provider, ngx_str_t *ssl_name);

ngx_voice_endpoint_t *ngx_voice_endpoint_next(ngx_voice_endpoint_t *ep);
void ngx_voice_endpoint_save_session(ngx_voice_endpoint_t *ep,
    ngx_connection_t *c);

/* the call a leg's log lines name */
#define ngx_voice_leg_id(leg)                                                 \
    ((leg)->call ? &(leg)->call->id : &(leg)->id)

void ngx_voice_leg_init(ngx_voice_leg_t *leg, ngx_voice_call_t *call,
    ngx_voice_endpoint_t *ep, ngx_voice_leg_handler_t *handler, void *data);
ngx_int_t ngx_voice_leg_open(ngx_voice_leg_t *leg);
ngx_int_t ngx_voice_leg_flush(ngx_voice_leg_t *leg);
void ngx_voice_leg_fail(ngx_voice_leg_t *leg, ngx_voice_leg_error_e err);
void ngx_voice_leg_close(ngx_voice_leg_t *leg);
void ngx_voice_leg_close_quietly(ngx_connection_t *c);
ngx_connection_t *ngx_voice_leg_detach(ngx_voice_leg_t *leg,
    ngx_voice_outq_t *out, u_char **rbuf);
void ngx_voice_leg_attach(ngx_voice_leg_t *leg, ngx_connection_t *c,
    ngx_voice_outq_t *out, u_char *rbuf, ngx_str_t *peer_name);
const char *ngx_voice_leg_strerror(ngx_voice_leg_error_e err);


#endif /* _NGX_VOICE_LEG_H_INCLUDED_ */
