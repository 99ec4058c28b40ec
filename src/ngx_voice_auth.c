/*
 * Copyright (C) ngx_voice authors
 *
 * X-Twilio-Signature on the WebSocket upgrade.  Twilio signs the wss://
 * URL it connected to; behind a proxy that URL is not what nginx sees,
 * so voice_public_url gives its base.  Like Twilio's own helpers, the
 * URL is tried as given, and with the default port removed or added.
 * The voice webhook (voice_twiml) is checked here too, over https://
 * and its form fields.  The token and the received signature never
 * reach a log line.
 */


#include "ngx_voice.h"


static ngx_table_elt_t *ngx_voice_auth_header(ngx_http_request_t *r);
static ngx_int_t ngx_voice_auth_try(ngx_voice_loc_conf_t *vlcf,
    ngx_str_t *sig, ngx_str_t *scheme, ngx_str_t *host, ngx_str_t *port,
    ngx_str_t *uri, ngx_voice_tw_param_t *params, size_t n);


ngx_int_t
ngx_voice_auth_check(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf)
{
    static ngx_str_t  wss = ngx_string("wss://");

    return ngx_voice_auth_verify(r, vlcf, &wss, NULL, 0);
}


/* voice_public_url is "wss://host[:port]": only its host is used */

void
ngx_voice_auth_host(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf,
    ngx_str_t *host)
{
    if (vlcf->public_url.len) {
        host->data = vlcf->public_url.data + sizeof("wss://") - 1;
        host->len = vlcf->public_url.len - (sizeof("wss://") - 1);

    } else if (r->headers_in.host) {
        *host = r->headers_in.host->value;

    } else {
        *host = r->headers_in.server;
    }
}


/*
 * The one place the signed URL is rebuilt, for the upgrade (wss://, no
 * parameters) and the voice webhook (https://, its form fields): the
 * public base or the Host, then the request's URI with its query.
 */

ngx_int_t
ngx_voice_auth_verify(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf,
    ngx_str_t *scheme, ngx_voice_tw_param_t *params, size_t n)
{
    u_char           *colon;
    ngx_str_t         host, hostname, port, none, p443, *uri;
    ngx_table_elt_t  *h;

    if (vlcf->auth_token.len == 0) {
        return NGX_OK;
    }

    h = ngx_voice_auth_header(r);

    if (h == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "voice: no X-Twilio-Signature, refusing the call");
        return NGX_HTTP_FORBIDDEN;
    }

    ngx_voice_auth_host(r, vlcf, &host);

    uri = &r->unparsed_uri;

    ngx_str_null(&none);
    ngx_str_set(&p443, ":443");

    colon = (host.len && host.data[host.len - 1] != ']')
            ? ngx_strlchr(host.data, host.data + host.len, ':') : NULL;

    if (host.len && host.data[0] == '[') {
        colon = ngx_strlchr(host.data, host.data + host.len, ']');
        colon = (colon && colon + 1 < host.data + host.len
                 && colon[1] == ':') ? colon + 1 : NULL;
    }

    /* like Twilio's helpers: as given, then the default port toggled */

    if (colon) {
        hostname.data = host.data;
        hostname.len = colon - host.data;
        port.data = colon;
        port.len = host.data + host.len - colon;

        if (ngx_voice_auth_try(vlcf, &h->value, scheme, &hostname, &port,
                               uri, params, n)
            == NGX_OK
            || ngx_voice_auth_try(vlcf, &h->value, scheme, &hostname, &none,
                                  uri, params, n)
               == NGX_OK)
        {
            return NGX_OK;
        }

    } else if (ngx_voice_auth_try(vlcf, &h->value, scheme, &host, &none,
                                  uri, params, n)
               == NGX_OK
               || ngx_voice_auth_try(vlcf, &h->value, scheme, &host, &p443,
                                     uri, params, n)
                  == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "voice: X-Twilio-Signature does not match "
                  "\"%V%V%V\", refusing the call", scheme, &host, uri);

    return NGX_HTTP_FORBIDDEN;
}


static ngx_table_elt_t *
ngx_voice_auth_header(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("x-twilio-signature") - 1
            && ngx_strncmp(h[i].lowcase_key, "x-twilio-signature",
                           h[i].key.len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_voice_auth_try(ngx_voice_loc_conf_t *vlcf, ngx_str_t *sig,
    ngx_str_t *scheme, ngx_str_t *host, ngx_str_t *port, ngx_str_t *uri,
    ngx_voice_tw_param_t *params, size_t n)
{
    u_char  *url, *p;
    size_t   len;
    int      ok;
    u_char   expected[NGX_VOICE_TW_SIG_LEN];
    u_char   buf[1024];

    len = scheme->len + host->len + port->len + uri->len;

    url = (len <= sizeof(buf)) ? buf : ngx_alloc(len, ngx_cycle->log);
    if (url == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(url, scheme->data, scheme->len);
    p = ngx_cpymem(p, host->data, host->len);
    p = ngx_cpymem(p, port->data, port->len);
    p = ngx_cpymem(p, uri->data, uri->len);

    ok = ngx_voice_tw_signature(expected, vlcf->auth_token.data,
                                vlcf->auth_token.len, url, len, params, n)
         == 0
         && ngx_voice_tw_signature_ok(expected, sig->data, sig->len);

    if (url != buf) {
        ngx_free(url);
    }

    return ok ? NGX_OK : NGX_DECLINED;
}
