/*
 * Copyright (C) ngx_voice authors
 *
 * Outbound provider legs on nginx's event loop.  The idioms are those of
 * ngx_http_upstream.c and ngx_event_connect.c: ngx_resolve_name() with
 * the handler possibly called synchronously, the addresses copied out of
 * the resolver, ngx_event_connect_peer() tried over every address with a
 * connect timer, SO_ERROR checked on the first write event, a pool per
 * connection, and TLS through ngx_ssl_create_connection() with SNI, the
 * verify result and the host name checked after the handshake (nginx's
 * verify callback never fails a handshake by itself).
 */


#include "ngx_voice_leg.h"


static void ngx_voice_leg_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_voice_leg_connect(ngx_voice_leg_t *leg);
static ngx_int_t ngx_voice_leg_test_connect(ngx_connection_t *c);
static void ngx_voice_leg_next(ngx_voice_leg_t *leg,
    ngx_voice_leg_error_e err);
static void ngx_voice_leg_ssl_init(ngx_voice_leg_t *leg);
static void ngx_voice_leg_ssl_done(ngx_connection_t *c);
static void ngx_voice_leg_ssl_verify(ngx_voice_leg_t *leg);
static ngx_int_t ngx_voice_leg_check_name(ngx_connection_t *c,
    ngx_voice_endpoint_t *ep);
static void ngx_voice_leg_save_session(ngx_connection_t *c);
static void ngx_voice_leg_ready(ngx_voice_leg_t *leg);
static void ngx_voice_leg_read_handler(ngx_event_t *rev);
static void ngx_voice_leg_write_handler(ngx_event_t *wev);
static void ngx_voice_leg_close_connection(ngx_voice_leg_t *leg);
static void ngx_voice_leg_done(ngx_voice_leg_t *leg);
static u_char *ngx_voice_leg_log_error(ngx_log_t *log, u_char *buf,
    size_t len);
static void ngx_voice_endpoint_cleanup(void *data);


static const char  *ngx_voice_leg_errors[] = {
    "no error",
    "DNS lookup failed",
    "connection failed",
    "TLS handshake failed",
    "certificate verification failed",
    "timed out",
    "connection closed by the provider",
    "I/O error",
    "handshake refused",
    "protocol error",
    "provider error",
    "send queue overflow",
    "worker shutting down"
};


char *
ngx_voice_endpoint_parse(ngx_conf_t *cf, ngx_voice_endpoint_t *ep,
    ngx_str_t *url, const char *provider)
{
    size_t      skip;
    ngx_url_t   u;
    in_port_t   port;

    ngx_memzero(&u, sizeof(ngx_url_t));

    if (url->len > 6 && ngx_strncasecmp(url->data, (u_char *) "wss://", 6)
                        == 0)
    {
        skip = 6; port = 443; ep->tls = 1;

    } else if (url->len > 5
               && ngx_strncasecmp(url->data, (u_char *) "ws://", 5) == 0)
    {
        skip = 5; port = 80; ep->tls = 0;

    } else if (url->len > 8
               && ngx_strncasecmp(url->data, (u_char *) "https://", 8) == 0)
    {
        skip = 8; port = 443; ep->tls = 1;

    } else if (url->len > 7
               && ngx_strncasecmp(url->data, (u_char *) "http://", 7) == 0)
    {
        skip = 7; port = 80; ep->tls = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s URL \"%V\": the scheme must be "
                           "wss://, ws://, https:// or http://",
                           provider, url);
        return NGX_CONF_ERROR;
    }

    u.url.data = url->data + skip;
    u.url.len = url->len - skip;
    u.default_port = port;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s URL \"%V\": %s",
                           provider, url, u.err ? u.err : "bad URL");
        return NGX_CONF_ERROR;
    }

    ep->provider.data = (u_char *) provider;
    ep->provider.len = ngx_strlen(provider);
    ep->url = *url;
    ep->host_name = u.host;
    ep->port = u.no_port ? port : u.port;

    if (u.no_port || u.port == port) {
        ep->host = u.host;

    } else {
        ep->host.len = u.host.len + 1 + u.port_text.len;
        ep->host.data = ngx_pnalloc(cf->pool, ep->host.len);
        if (ep->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(ep->host.data, "%V:%V", &u.host, &u.port_text);
    }

    if (u.uri.len) {
        ep->uri = u.uri;

    } else {
        ngx_str_set(&ep->uri, "/");
    }

    if (u.naddrs) {
        ep->literal = 1;
        ep->addrs = u.addrs;
        ep->naddrs = u.naddrs;
    }

    /* until merged: names and certificates are checked by default */
    ep->ssl_verify = NGX_CONF_UNSET;

    return NGX_CONF_OK;
}


/*
 * Settles how the endpoint is reached: nginx's resolver at run time when
 * one is configured, else the addresses looked up now (frozen until the
 * next reload, which nginx -t says).
 */

char *
ngx_voice_endpoint_merge(ngx_conf_t *cf, ngx_voice_endpoint_t *ep,
    ngx_ssl_t *ssl, ngx_str_t *ssl_name, ngx_flag_t verify,
    ngx_msec_t connect_timeout, ngx_msec_t send_timeout)
{
    ngx_url_t                  u;
    ngx_pool_cleanup_t        *cln;
    ngx_http_core_loc_conf_t  *clcf;

    if (ep->tls) {
        /* the session a worker saved goes with its configuration */
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_voice_endpoint_cleanup;
        cln->data = ep;
    }

    ep->ssl = ep->tls ? ssl : NULL;
    ep->ssl_verify = verify;
    ep->ssl_name = (ssl_name && ssl_name->len) ? *ssl_name : ep->host_name;
    ep->connect_timeout = connect_timeout;
    ep->send_timeout = send_timeout;

    if (ep->literal) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->resolver && clcf->resolver->connections.nelts) {
        ep->resolver = clcf->resolver;
        ep->resolver_timeout = clcf->resolver_timeout;
        return NGX_CONF_OK;
    }

    if (ep->naddrs) {
        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.host = ep->host_name;
    u.port = ep->port;

    if (ngx_inet_resolve_host(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V host \"%V\" not found, and no \"resolver\" "
                           "is configured to look it up at run time",
                           &ep->provider, &ep->host_name);
        return NGX_CONF_ERROR;
    }

    ep->addrs = u.addrs;
    ep->naddrs = u.naddrs;

    ngx_conf_log_error(NGX_LOG_NOTICE, cf, 0,
                       "no \"resolver\": %V host \"%V\" resolved now to %ui "
                       "address(es), kept until the next reload",
                       &ep->provider, &ep->host_name, u.naddrs);

    return NGX_CONF_OK;
}


static void
ngx_voice_endpoint_cleanup(void *data)
{
    ngx_voice_endpoint_t  *ep = data;

    if (ep->ssl_session) {
        ngx_ssl_free_session(ep->ssl_session);
        ep->ssl_session = NULL;
    }
}


void
ngx_voice_leg_init(ngx_voice_leg_t *leg, ngx_voice_call_t *call,
    ngx_voice_endpoint_t *ep, ngx_voice_leg_handler_t *handler, void *data)
{
    ngx_memzero(leg, sizeof(ngx_voice_leg_t));

    leg->ep = ep;
    leg->call = call;
    leg->handler = handler;
    leg->data = data;

    if (call) {
        /* a copy of the call's log that also names the provider */
        leg->log = *call->connection->log;
        leg->send_buffer = call->conf->send_buffer;
        leg->zone = call->conf->zone;

    } else {
        /* no call to borrow from: the owner sets leg->id for the logs */
        leg->log = *ngx_cycle->log;
        leg->send_buffer = NGX_VOICE_LEG_SEND_BUFFER;
    }

    leg->log.handler = ngx_voice_leg_log_error;
    leg->log.data = leg;
    leg->log.action = NULL;
}


/*
 * Starts connecting.  Failures are reported through handler->failed,
 * possibly before this returns (a cached DNS answer, a refused connect).
 */

ngx_int_t
ngx_voice_leg_open(ngx_voice_leg_t *leg)
{
    ngx_uint_t             i;
    ngx_resolver_ctx_t    *ctx, temp;
    ngx_voice_endpoint_t  *ep;

    ep = leg->ep;

    if (leg->state != NGX_VOICE_LEG_IDLE
        && leg->state != NGX_VOICE_LEG_CLOSED)
    {
        return NGX_OK;
    }

    leg->error = NGX_VOICE_LEG_OK;
    leg->opened = ngx_current_msec;
    leg->naddrs = 0;
    leg->addr = 0;

    if (ep->resolver == NULL) {
        for (i = 0; i < ep->naddrs && i < NGX_VOICE_LEG_MAX_ADDRS; i++) {
            ngx_memcpy(&leg->sockaddr[i], ep->addrs[i].sockaddr,
                       ep->addrs[i].socklen);
            leg->socklen[i] = ep->addrs[i].socklen;
        }

        leg->naddrs = i;
        ngx_voice_leg_connect(leg);
        return NGX_OK;
    }

    leg->state = NGX_VOICE_LEG_RESOLVING;
    leg->log.action = "resolving";

    temp.name = ep->host_name;

    ctx = ngx_resolve_start(ep->resolver, &temp);
    if (ctx == NULL) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_DNS);
        return NGX_ERROR;
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                      "no resolver defined to resolve %V", &ep->host_name);
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_DNS);
        return NGX_ERROR;
    }

    ctx->name = ep->host_name;
    ctx->handler = ngx_voice_leg_resolved;
    ctx->data = leg;
    ctx->timeout = ep->resolver_timeout;

    /* set before: the handler may run inside ngx_resolve_name() */
    leg->resolving = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        leg->resolving = NULL;
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_DNS);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_voice_leg_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_uint_t        i, async;
    ngx_voice_leg_t  *leg;

    leg = ctx->data;
    async = ctx->async;

    leg->resolving = NULL;

    if (ctx->state) {
        ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                      "%V could not be resolved (%i: %s)", &ctx->name,
                      ctx->state, ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_DNS);
        goto done;
    }

    /* the answer belongs to the resolver: copy it */
    for (i = 0; i < ctx->naddrs && i < NGX_VOICE_LEG_MAX_ADDRS; i++) {
        ngx_memcpy(&leg->sockaddr[i], ctx->addrs[i].sockaddr,
                   ctx->addrs[i].socklen);
        leg->socklen[i] = ctx->addrs[i].socklen;
        ngx_inet_set_port(&leg->sockaddr[i].sockaddr, leg->ep->port);
    }

    leg->naddrs = i;

    ngx_resolve_name_done(ctx);

    ngx_voice_leg_connect(leg);

done:

    if (async) {
        ngx_voice_leg_done(leg);
    }
}


static void
ngx_voice_leg_connect(ngx_voice_leg_t *leg)
{
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_voice_endpoint_t  *ep;

    ep = leg->ep;

    if (leg->addr >= leg->naddrs) {
        ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                      "no address of %V could be connected", &ep->host_name);
        ngx_voice_leg_fail(leg, leg->error ? leg->error
                                           : NGX_VOICE_LEG_ERR_CONNECT);
        return;
    }

    ngx_memzero(&leg->peer, sizeof(ngx_peer_connection_t));

    leg->peer.sockaddr = &leg->sockaddr[leg->addr].sockaddr;
    leg->peer.socklen = leg->socklen[leg->addr];
    leg->peer_name.data = leg->peer_text;
    leg->peer_name.len = ngx_sock_ntop(leg->peer.sockaddr,
                                       leg->peer.socklen, leg->peer_text,
                                       NGX_SOCKADDR_STRLEN, 1);
    leg->peer.name = &leg->peer_name;
    leg->peer.get = ngx_event_get_peer;
    leg->peer.log = &leg->log;
    leg->peer.log_error = NGX_ERROR_ERR;

    leg->state = NGX_VOICE_LEG_CONNECTING;
    leg->log.action = "connecting";

    rc = ngx_event_connect_peer(&leg->peer);

    if (rc == NGX_ERROR) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_CONNECT);
        return;
    }

    if (rc == NGX_DECLINED) {
        /* refused at once; the connection is closed already */
        leg->peer.connection = NULL;
        ngx_voice_leg_next(leg, NGX_VOICE_LEG_ERR_CONNECT);
        return;
    }

    c = leg->peer.connection;

    c->data = leg;
    c->read->handler = ngx_voice_leg_read_handler;
    c->write->handler = ngx_voice_leg_write_handler;

    c->pool = ngx_create_pool(1024, &leg->log);
    if (c->pool == NULL) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_CONNECT);
        return;
    }

    c->log = &leg->log;
    c->pool->log = &leg->log;
    c->read->log = &leg->log;
    c->write->log = &leg->log;
    c->sendfile = 0;

    leg->connects++;

    ngx_voice_outq_init(&leg->out, c->pool, leg->send_buffer);

    leg->rbuf = ngx_pnalloc(c->pool, NGX_VOICE_LEG_READ_BUF);
    if (leg->rbuf == NULL) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_CONNECT);
        return;
    }

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, ep->connect_timeout);
        return;
    }

    /* connected at once (a local peer) */

    if (ngx_tcp_nodelay(c) != NGX_OK) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
        return;
    }

    if (ep->tls) {
        ngx_voice_leg_ssl_init(leg);
        return;
    }

    ngx_voice_leg_ready(leg);
}


static ngx_int_t
ngx_voice_leg_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    /* Linux reports a failed connect() as a pending socket error */
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* this address failed: the next one, or the leg fails */

static void
ngx_voice_leg_next(ngx_voice_leg_t *leg, ngx_voice_leg_error_e err)
{
    leg->error = err;

    ngx_voice_leg_close_connection(leg);

    leg->addr++;
    ngx_voice_leg_connect(leg);
}


static void
ngx_voice_leg_ssl_init(ngx_voice_leg_t *leg)
{
    u_char                *name;
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_voice_endpoint_t  *ep;

    ep = leg->ep;
    c = leg->peer.connection;

    leg->state = NGX_VOICE_LEG_TLS;
    leg->log.action = "TLS handshaking";

    if (ngx_ssl_create_connection(ep->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TLS);
        return;
    }

    /* SNI: CDN-fronted providers refuse handshakes without it */
    if (!ep->literal || ep->ssl_name.data != ep->host_name.data) {
        name = ngx_pnalloc(c->pool, ep->ssl_name.len + 1);
        if (name == NULL) {
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TLS);
            return;
        }

        (void) ngx_cpystrn(name, ep->ssl_name.data, ep->ssl_name.len + 1);

        if (SSL_set_tlsext_host_name(c->ssl->connection, (char *) name)
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, &leg->log, 0,
                          "SSL_set_tlsext_host_name(\"%s\") failed", name);
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TLS);
            return;
        }
    }

    if (ep->ssl_session) {
        if (ngx_ssl_set_session(c, ep->ssl_session) != NGX_OK) {
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TLS);
            return;
        }
    }

    c->ssl->save_session = ngx_voice_leg_save_session;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, ep->connect_timeout);
        }

        c->ssl->handler = ngx_voice_leg_ssl_done;
        return;
    }

    /* done at once: this is inside another handler, which ends the event */
    ngx_voice_leg_ssl_verify(leg);
}


static void
ngx_voice_leg_ssl_done(ngx_connection_t *c)
{
    ngx_voice_leg_t  *leg;

    leg = c->data;

    ngx_voice_leg_ssl_verify(leg);

    /* called by nginx's handshake handler: the end of an event */
    ngx_voice_leg_done(leg);
}


static void
ngx_voice_leg_ssl_verify(ngx_voice_leg_t *leg)
{
    long                   rc;
    ngx_connection_t      *c;
    ngx_voice_endpoint_t  *ep;

    c = leg->peer.connection;
    ep = leg->ep;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (!c->ssl->handshaked) {
        if (c->write->timedout || c->read->timedout) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, NGX_ETIMEDOUT,
                          "TLS handshake timed out");
            ngx_voice_leg_next(leg, NGX_VOICE_LEG_ERR_TIMEOUT);

        } else {
            ngx_voice_leg_next(leg, NGX_VOICE_LEG_ERR_TLS);
        }

        return;
    }

    if (ep->ssl_verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                          "certificate of %V does not verify: (%l:%s)",
                          &ep->host_name, rc,
                          X509_verify_cert_error_string(rc));
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_VERIFY);
            return;
        }

        if (ngx_voice_leg_check_name(c, ep) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                          "certificate does not match \"%V\"",
                          &ep->ssl_name);
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_VERIFY);
            return;
        }
    }

    if (SSL_session_reused(c->ssl->connection)) {
        leg->tls_resumed++;

    } else {
        leg->tls_handshakes++;
    }

    c->read->handler = ngx_voice_leg_read_handler;
    c->write->handler = ngx_voice_leg_write_handler;

    ngx_voice_leg_ready(leg);
}


static void
ngx_voice_leg_save_session(ngx_connection_t *c)
{
    ngx_voice_leg_t  *leg;

    leg = c->data;

    ngx_voice_endpoint_save_session(leg->ep, c);
}


/*
 * The certificate must name the host: nginx's check is for DNS names;
 * an address literal (https://10.0.0.5) is matched against the
 * certificate's IP addresses instead.
 */

static ngx_int_t
ngx_voice_leg_check_name(ngx_connection_t *c, ngx_voice_endpoint_t *ep)
{
    int      rc;
    X509    *cert;
    u_char   ip[NGX_SOCKADDR_STRLEN + 1];

    if (!ep->literal || ep->ssl_name.data != ep->host_name.data) {
        return ngx_ssl_check_host(c, &ep->ssl_name);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    /* "[::1]" in a URL is "::1" in a certificate */
    if (ep->host_name.len > 2 && ep->host_name.data[0] == '[') {
        (void) ngx_cpystrn(ip, ep->host_name.data + 1,
                           ngx_min(ep->host_name.len - 1, sizeof(ip)));

    } else {
        (void) ngx_cpystrn(ip, ep->host_name.data,
                           ngx_min(ep->host_name.len + 1, sizeof(ip)));
    }

    rc = X509_check_ip_asc(cert, (char *) ip, 0);

    X509_free(cert);

    return (rc == 1) ? NGX_OK : NGX_ERROR;
}


/* the provider's next endpoint for failover, NULL when it has one */

ngx_voice_endpoint_t *
ngx_voice_endpoint_next(ngx_voice_endpoint_t *ep)
{
    return ep->next;
}


/* one TLS session per endpoint and worker, for the next connection */

void
ngx_voice_endpoint_save_session(ngx_voice_endpoint_t *ep, ngx_connection_t *c)
{
    ngx_ssl_session_t  *session;

    if (ngx_exiting) {
        return;
    }

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (ep->ssl_session) {
        ngx_ssl_free_session(ep->ssl_session);
    }

    ep->ssl_session = session;
}


static void
ngx_voice_leg_ready(ngx_voice_leg_t *leg)
{
    ngx_connection_t  *c;

    c = leg->peer.connection;

    leg->state = NGX_VOICE_LEG_OPEN;
    leg->log.action = NULL;
    leg->last_read = ngx_current_msec;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &leg->log, 0,
                   "voice %V: %V leg connected to %V", ngx_voice_leg_id(leg),
                   &leg->ep->provider, &leg->peer_name);

    leg->handler->connected(leg);

    if (leg->state == NGX_VOICE_LEG_OPEN && c->read->ready) {
        /* the provider may have spoken first, within the handshake */
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


static void
ngx_voice_leg_read_handler(ngx_event_t *rev)
{
    ssize_t            n;
    ngx_msec_t         idle;
    ngx_connection_t  *c;
    ngx_voice_leg_t   *leg;

    c = rev->data;
    leg = c->data;

    if (c->close) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_SHUTDOWN);
        goto done;
    }

    if (leg->state == NGX_VOICE_LEG_CONNECTING) {
        /* a connect failure can be reported on the read side */
        ngx_voice_leg_write_handler(c->write);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        idle = ngx_current_msec - leg->last_read;

        if (leg->read_timeout == 0) {
            goto read;
        }

        if (idle < leg->read_timeout) {
            ngx_add_timer(rev, leg->read_timeout - idle);
            goto read;
        }

        ngx_log_error(NGX_LOG_ERR, &leg->log, NGX_ETIMEDOUT,
                      "%V sent nothing for %M ms", &leg->ep->provider, idle);
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TIMEOUT);
        goto done;
    }

read:

    while (leg->state == NGX_VOICE_LEG_OPEN) {

        n = c->recv(c, leg->rbuf, NGX_VOICE_LEG_READ_BUF);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
                break;
            }

            if (leg->read_timeout && !rev->timer_set) {
                ngx_add_timer(rev, leg->read_timeout);
            }

            break;
        }

        if (n == 0) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, 0,
                          "%V closed the connection", &leg->ep->provider);
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_CLOSED);
            break;
        }

        if (n == NGX_ERROR) {
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
            break;
        }

        leg->last_read = ngx_current_msec;

        /* the handler may close or fail the leg: state says so */
        leg->handler->data(leg, leg->rbuf, n);
    }

done:

    ngx_voice_leg_done(leg);
}


static void
ngx_voice_leg_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c;
    ngx_voice_leg_t   *leg;

    c = wev->data;
    leg = c->data;

    if (c->close) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_SHUTDOWN);
        goto done;
    }

    if (leg->state == NGX_VOICE_LEG_CONNECTING) {

        if (wev->timedout) {
            ngx_log_error(NGX_LOG_ERR, &leg->log, NGX_ETIMEDOUT,
                          "connect() to %V timed out", &leg->peer_name);
            ngx_voice_leg_next(leg, NGX_VOICE_LEG_ERR_TIMEOUT);
            goto done;
        }

        if (ngx_voice_leg_test_connect(c) != NGX_OK) {
            ngx_voice_leg_next(leg, NGX_VOICE_LEG_ERR_CONNECT);
            goto done;
        }

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        if (ngx_tcp_nodelay(c) != NGX_OK) {
            ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
            goto done;
        }

        if (leg->ep->tls) {
            ngx_voice_leg_ssl_init(leg);
            return;
        }

        ngx_voice_leg_ready(leg);
        goto done;
    }

    if (wev->timedout) {
        wev->timedout = 0;
        ngx_log_error(NGX_LOG_ERR, &leg->log, NGX_ETIMEDOUT,
                      "%V took no data for %M ms, %uz bytes queued",
                      &leg->ep->provider, leg->ep->send_timeout,
                      leg->out.pending);
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_TIMEOUT);
        goto done;
    }

    if (leg->state == NGX_VOICE_LEG_OPEN) {
        (void) ngx_voice_leg_flush(leg);
    }

done:

    ngx_voice_leg_done(leg);
}


/* writes what the socket takes; send_timeout while bytes wait */

ngx_int_t
ngx_voice_leg_flush(ngx_voice_leg_t *leg)
{
    off_t              sent;
    ngx_int_t          rc;
    ngx_event_t       *wev;
    ngx_connection_t  *c;

    if (leg->state != NGX_VOICE_LEG_OPEN) {
        return NGX_ERROR;
    }

    c = leg->peer.connection;
    wev = c->write;
    sent = c->sent;

    rc = ngx_voice_outq_send(&leg->out, c);

    if (rc == NGX_ERROR) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        return NGX_OK;
    }

    if (c->sent != sent || !wev->timer_set) {
        ngx_add_timer(wev, leg->ep->send_timeout);
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_voice_leg_fail(leg, NGX_VOICE_LEG_ERR_IO);
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/* closes the leg and tells its owner, once */

void
ngx_voice_leg_fail(ngx_voice_leg_t *leg, ngx_voice_leg_error_e err)
{
    if (leg->state == NGX_VOICE_LEG_CLOSED) {
        return;
    }

    leg->error = err;

    ngx_voice_leg_close(leg);

    leg->handler->failed(leg, err);
}


/* closes without telling the owner (the owner asked for it) */

void
ngx_voice_leg_close(ngx_voice_leg_t *leg)
{
    if (leg->resolving) {
        ngx_resolve_name_done(leg->resolving);
        leg->resolving = NULL;
    }

    ngx_voice_leg_close_connection(leg);

    leg->state = NGX_VOICE_LEG_CLOSED;
    leg->log.action = NULL;
}


/*
 * Hands the open connection over, e.g. to a keep-alive pool: the leg is
 * closed, the connection (with its TLS state, output blocks and read
 * buffer, all in c->pool) is not.  The new owner sets handlers and log.
 */

ngx_connection_t *
ngx_voice_leg_detach(ngx_voice_leg_t *leg, ngx_voice_outq_t *out,
    u_char **rbuf)
{
    ngx_connection_t  *c;

    c = leg->peer.connection;

    if (c == NULL || leg->state != NGX_VOICE_LEG_OPEN) {
        return NULL;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->ssl) {
        /* the callback would take c->data for a leg */
        c->ssl->save_session = NULL;
    }

    *out = leg->out;
    *rbuf = leg->rbuf;

    /* an empty queue's tail is its own head: the copy's, not the leg's */
    if (out->out == NULL) {
        out->last = &out->out;
    }

    leg->peer.connection = NULL;
    leg->rbuf = NULL;
    leg->read_timeout = 0;
    ngx_voice_outq_init(&leg->out, NULL, 0);

    leg->state = NGX_VOICE_LEG_CLOSED;

    return c;
}


/* takes over an open connection a previous leg detached */

void
ngx_voice_leg_attach(ngx_voice_leg_t *leg, ngx_connection_t *c,
    ngx_voice_outq_t *out, u_char *rbuf, ngx_str_t *peer_name)
{
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->idle = 0;
    c->read->cancelable = 0;
    c->data = leg;
    c->read->handler = ngx_voice_leg_read_handler;
    c->write->handler = ngx_voice_leg_write_handler;

    c->log = &leg->log;
    c->pool->log = &leg->log;
    c->read->log = &leg->log;
    c->write->log = &leg->log;

    if (c->ssl) {
        c->ssl->save_session = ngx_voice_leg_save_session;
    }

    ngx_memzero(&leg->peer, sizeof(ngx_peer_connection_t));
    leg->peer.connection = c;

    leg->peer_name.len = ngx_min(peer_name->len, NGX_SOCKADDR_STRLEN);
    leg->peer_name.data = leg->peer_text;
    ngx_memcpy(leg->peer_text, peer_name->data, leg->peer_name.len);
    leg->peer.name = &leg->peer_name;

    leg->out = *out;
    leg->rbuf = rbuf;

    /* as in detach: the tail of an empty queue must be this leg's head */
    if (leg->out.out == NULL) {
        leg->out.last = &leg->out.out;
    }

    leg->resolving = NULL;
    leg->error = NGX_VOICE_LEG_OK;
    leg->opened = ngx_current_msec;
    leg->last_read = ngx_current_msec;
    leg->read_timeout = 0;
    leg->state = NGX_VOICE_LEG_OPEN;
    leg->log.action = NULL;
}


static void
ngx_voice_leg_close_connection(ngx_voice_leg_t *leg)
{
    ngx_connection_t  *c;

    c = leg->peer.connection;

    if (c == NULL) {
        return;
    }

    leg->peer.connection = NULL;
    leg->rbuf = NULL;

    ngx_voice_outq_init(&leg->out, NULL, 0);

    ngx_voice_leg_close_quietly(c);
}


/* quiet TLS close: a close that never waits cannot outlive the call */

void
ngx_voice_leg_close_quietly(ngx_connection_t *c)
{
    ngx_pool_t  *pool;

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;
        (void) ngx_ssl_shutdown(c);
    }

    pool = c->pool;

    ngx_close_connection(c);

    if (pool) {
        ngx_destroy_pool(pool);
    }
}


/*
 * The end of every handler a leg's own events run: the call flushes to
 * Twilio and ends if it must, and requests posted meanwhile run.
 */

static void
ngx_voice_leg_done(ngx_voice_leg_t *leg)
{
    ngx_connection_t  *c;

    if (leg->call == NULL) {
        /* a leg that outlives its call: the owner has no request */
        return;
    }

    c = leg->call->connection;

    ngx_voice_ws_event_done(leg->call);

    ngx_http_run_posted_requests(c);
}


const char *
ngx_voice_leg_strerror(ngx_voice_leg_error_e err)
{
    if (err >= NGX_VOICE_LEG_ERR_LAST) {
        return "unknown error";
    }

    return ngx_voice_leg_errors[err];
}


static u_char *
ngx_voice_leg_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char           *p;
    ngx_log_t        *clog;
    ngx_voice_leg_t  *leg;

    leg = log->data;
    p = buf;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
        buf = p;
    }

    p = ngx_snprintf(p, len, ", provider: %V, endpoint: %V",
                     &leg->ep->provider, &leg->ep->url);
    len -= p - buf;

    if (leg->peer_name.len) {
        buf = p;
        p = ngx_snprintf(p, len, " (%V)", &leg->peer_name);
        len -= p - buf;
    }

    if (leg->call == NULL) {
        return ngx_snprintf(p, len, ", call: %V", &leg->id);
    }

    /* then the call's own context: client, call id, request */
    clog = leg->call->connection->log;

    if (clog->handler) {
        p = clog->handler(clog, p, len);
    }

    return p;
}
