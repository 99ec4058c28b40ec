/*
 * Copyright (C) ngx_voice authors
 *
 * voice_twiml: nginx answers Twilio's voice webhook itself.  Twilio POSTs
 * the call's details as a form; once its X-Twilio-Signature holds (over
 * the https:// URL and the sorted fields), the reply is TwiML that
 * connects the call to the Media Streams location, with <Parameter>s
 * from the configuration and the form ($voice_form_<field>).
 */


#include "ngx_voice.h"
#include "ngx_voice_form.h"


typedef struct {
    ngx_str_t                  name;
    ngx_http_complex_value_t   value;
} ngx_voice_twiml_param_t;


typedef struct {
    /*
     * First: $voice_call_sid and the other call variables read the
     * module's ctx as a call.  A zeroed one has no stream SID, so they
     * are simply not found in a webhook location.
     */
    ngx_voice_call_t           not_a_call;

    ngx_voice_form_field_t    *fields;
    size_t                     nfields;
} ngx_voice_twiml_ctx_t;


static ngx_int_t ngx_voice_twiml_handler(ngx_http_request_t *r);
static void ngx_voice_twiml_body(ngx_http_request_t *r);
static ngx_int_t ngx_voice_twiml_answer(ngx_http_request_t *r);
static ngx_int_t ngx_voice_twiml_is_form(ngx_http_request_t *r);
static ngx_int_t ngx_voice_twiml_read(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_voice_twiml_send(ngx_http_request_t *r,
    ngx_voice_loc_conf_t *vlcf);
static u_char *ngx_voice_twiml_escape(u_char *p, ngx_str_t *s);


#define ngx_voice_twiml_lit(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)

static u_char  ngx_voice_twiml_head[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<Response><Connect><Stream url=\"";
static u_char  ngx_voice_twiml_param1[] = "<Parameter name=\"";
static u_char  ngx_voice_twiml_param2[] = "\" value=\"";
static u_char  ngx_voice_twiml_param3[] = "\"/>";
static u_char  ngx_voice_twiml_connect_end[] = "</Stream></Connect>";
static u_char  ngx_voice_twiml_tail[] = "</Response>";


char *
ngx_voice_twiml(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (vlcf->twiml) {
        return "is duplicate";
    }

    vlcf->twiml = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_voice_twiml_handler;

    return NGX_CONF_OK;
}


char *
ngx_voice_twiml_stream_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (vlcf->twiml_stream_url) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* Twilio only streams over TLS: a wrong scheme fails every call */

    if (value[1].len <= sizeof("wss://") - 1
        || ngx_strncasecmp(value[1].data, (u_char *) "wss://",
                           sizeof("wss://") - 1)
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be a \"wss://\" URL", &cmd->name);
        return NGX_CONF_ERROR;
    }

    vlcf->twiml_stream_url = ngx_palloc(cf->pool,
                                        sizeof(ngx_http_complex_value_t));
    if (vlcf->twiml_stream_url == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = vlcf->twiml_stream_url;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_voice_twiml_parameter(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_str_t                         *value;
    ngx_voice_twiml_param_t           *p;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" needs a parameter name", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (vlcf->twiml_params == NULL) {
        vlcf->twiml_params = ngx_array_create(cf->pool, 4,
                                              sizeof(ngx_voice_twiml_param_t));
        if (vlcf->twiml_params == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(vlcf->twiml_params);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    p->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &p->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_voice_twiml_after(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_str_t  *value;

    if (vlcf->twiml_after.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* appended inside our <Response>: it must not end it early */

    if (ngx_strlcasestrn(value[1].data, value[1].data + value[1].len,
                         (u_char *) "</response", sizeof("</response") - 2)
        != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is TwiML for inside <Response>: it must "
                           "not contain \"</Response>\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    vlcf->twiml_after = value[1];

    return NGX_CONF_OK;
}


char *
ngx_voice_twiml_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (conf->twiml_stream_url == NULL) {
        conf->twiml_stream_url = prev->twiml_stream_url;
    }

    /* like add_header: a level with its own parameters inherits none */
    if (conf->twiml_params == NULL) {
        conf->twiml_params = prev->twiml_params;
    }

    ngx_conf_merge_str_value(conf->twiml_after, prev->twiml_after, "");

    if (!conf->twiml) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->mode) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "voice_twiml and voice_pipeline cannot share "
                      "location \"%V\": the webhook and the stream are "
                      "two locations", &clcf->name);
        return NGX_CONF_ERROR;
    }

    if (conf->auth_token.len == 0) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "voice_twiml in location \"%V\" answers "
                      "unauthenticated webhooks: no "
                      "voice_twilio_auth_token is set", &clcf->name);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_voice_twiml_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_voice_header_out(r, "Allow", "POST") == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    /* client_max_body_size bounds it; Twilio's forms are about 2 KB */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_voice_twiml_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_voice_twiml_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_voice_twiml_answer(r));
}


static ngx_int_t
ngx_voice_twiml_answer(ngx_http_request_t *r)
{
    size_t                   i, max;
    ngx_int_t                rc;
    ngx_str_t                body;
    ngx_voice_tw_param_t    *params;
    ngx_voice_loc_conf_t    *vlcf;
    ngx_voice_twiml_ctx_t   *ctx;

    static ngx_str_t         https = ngx_string("https://");

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_voice_module);

    if (ngx_voice_twiml_is_form(r) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "voice: the webhook body is not "
                      "application/x-www-form-urlencoded");
        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }

    if (ngx_voice_twiml_read(r, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_voice_twiml_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    max = ngx_voice_form_count(body.data, body.len);

    ctx->fields = ngx_palloc(r->pool, max * sizeof(ngx_voice_form_field_t));
    if (ctx->fields == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_voice_form_parse(body.data, body.len, ctx->fields, max,
                             &ctx->nfields)
        != NGX_VOICE_FORM_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "voice: malformed webhook form (a bad %% escape)");
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "voice twiml: %uz form fields", ctx->nfields);

    if (vlcf->auth_token.len) {

        /* a copy: signing sorts it, the variables keep the form's order */

        params = NULL;

        if (ctx->nfields) {
            params = ngx_palloc(r->pool,
                                ctx->nfields * sizeof(ngx_voice_tw_param_t));
            if (params == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        for (i = 0; i < ctx->nfields; i++) {
            params[i].name.data = (const char *) ctx->fields[i].name;
            params[i].name.len = ctx->fields[i].name_len;
            params[i].value.data = (const char *) ctx->fields[i].value;
            params[i].value.len = ctx->fields[i].value_len;
        }

        rc = ngx_voice_auth_verify(r, vlcf, &https, params, ctx->nfields);

        if (rc != NGX_OK) {
            return (rc == NGX_ERROR) ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc;
        }
    }

    ngx_http_set_ctx(r, ctx, ngx_http_voice_module);

    return ngx_voice_twiml_send(r, vlcf);
}


static ngx_int_t
ngx_voice_twiml_is_form(ngx_http_request_t *r)
{
    u_char      c;
    ngx_str_t  *ct;

    static ngx_str_t  form = ngx_string("application/x-www-form-urlencoded");

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;

    if (ct->len < form.len
        || ngx_strncasecmp(ct->data, form.data, form.len) != 0)
    {
        return NGX_DECLINED;
    }

    /* "; charset=utf-8" may follow, another type may not */

    if (ct->len > form.len) {
        c = ct->data[form.len];

        if (c != ';' && c != ' ' && c != '\t') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * The body as one writable buffer (the form is decoded in place).  A
 * body larger than client_body_buffer_size was written to a temporary
 * file; it is read back here, bounded by client_max_body_size.
 */

static ngx_int_t
ngx_voice_twiml_read(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len, size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    len = 0;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        len += ngx_buf_size(cl->buf);
    }

    body->len = len;
    body->data = ngx_pnalloc(r->pool, len ? len : 1);

    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body ? r->request_body->bufs : NULL;
         cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        if (!b->in_file) {
            continue;
        }

        size = b->file_last - b->file_pos;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "voice twiml: reading %uz body bytes from a file",
                       size);

        n = ngx_read_file(b->file, p, size, b->file_pos);

        if (n != (ssize_t) size) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "voice: the webhook body could not be read back "
                          "from \"%V\"", &b->file->name);
            return NGX_ERROR;
        }

        p += size;
    }

    body->len = p - body->data;

    return NGX_OK;
}


static ngx_int_t
ngx_voice_twiml_send(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf)
{
    u_char                   *p;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_str_t                 url, host, *values;
    ngx_uint_t                i, n;
    ngx_voice_twiml_param_t  *param;

    if (vlcf->twiml_stream_url) {
        if (ngx_http_complex_value(r, vlcf->twiml_stream_url, &url)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } else {

        /* the stream next to us: same public host, path /stream */

        ngx_voice_auth_host(r, vlcf, &host);

        url.len = sizeof("wss://") - 1 + host.len + sizeof("/stream") - 1;
        url.data = ngx_pnalloc(r->pool, url.len);
        if (url.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_voice_twiml_lit(url.data, "wss://");
        p = ngx_cpymem(p, host.data, host.len);
        (void) ngx_voice_twiml_lit(p, "/stream");
    }

    n = vlcf->twiml_params ? vlcf->twiml_params->nelts : 0;
    param = n ? vlcf->twiml_params->elts : NULL;

    values = ngx_palloc(r->pool, (n ? n : 1) * sizeof(ngx_str_t));
    if (values == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = sizeof(ngx_voice_twiml_head) - 1
          + ngx_voice_xml_escape(NULL, url.data, url.len)
          + sizeof("\">") - 1
          + sizeof(ngx_voice_twiml_connect_end) - 1
          + vlcf->twiml_after.len
          + sizeof(ngx_voice_twiml_tail) - 1;

    for (i = 0; i < n; i++) {
        if (ngx_http_complex_value(r, &param[i].value, &values[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* like proxy_set_header: an empty value sends no parameter */

        if (values[i].len == 0) {
            continue;
        }

        len += sizeof(ngx_voice_twiml_param1) - 1
               + ngx_voice_xml_escape(NULL, param[i].name.data,
                                      param[i].name.len)
               + sizeof(ngx_voice_twiml_param2) - 1
               + ngx_voice_xml_escape(NULL, values[i].data, values[i].len)
               + sizeof(ngx_voice_twiml_param3) - 1;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_voice_twiml_lit(b->last, ngx_voice_twiml_head);
    p = ngx_voice_twiml_escape(p, &url);
    p = ngx_voice_twiml_lit(p, "\">");

    for (i = 0; i < n; i++) {
        if (values[i].len == 0) {
            continue;
        }

        p = ngx_voice_twiml_lit(p, ngx_voice_twiml_param1);
        p = ngx_voice_twiml_escape(p, &param[i].name);
        p = ngx_voice_twiml_lit(p, ngx_voice_twiml_param2);
        p = ngx_voice_twiml_escape(p, &values[i]);
        p = ngx_voice_twiml_lit(p, ngx_voice_twiml_param3);
    }

    p = ngx_voice_twiml_lit(p, ngx_voice_twiml_connect_end);
    p = ngx_cpymem(p, vlcf->twiml_after.data, vlcf->twiml_after.len);
    p = ngx_voice_twiml_lit(p, ngx_voice_twiml_tail);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/xml; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/xml") - 1;

    return ngx_voice_send_buf(r, b);
}


static u_char *
ngx_voice_twiml_escape(u_char *p, ngx_str_t *s)
{
    return p + ngx_voice_xml_escape(p, s->data, s->len);
}


/* $voice_form_<field>: the first field of that name, caselessly */

ngx_int_t
ngx_voice_twiml_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t  *name = (ngx_str_t *) data;

    u_char                  *p;
    size_t                   i, len;
    ngx_voice_loc_conf_t    *vlcf;
    ngx_voice_twiml_ctx_t   *ctx;
    ngx_voice_form_field_t  *f;

    v->not_found = 1;

    /* elsewhere the module's ctx is a call, not a form */

    vlcf = ngx_http_get_module_loc_conf(r->main, ngx_http_voice_module);

    if (!vlcf->twiml) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_voice_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    p = name->data + sizeof("voice_form_") - 1;
    len = name->len - (sizeof("voice_form_") - 1);

    for (i = 0; i < ctx->nfields; i++) {
        f = &ctx->fields[i];

        if (f->name_len == len && ngx_strncasecmp(f->name, p, len) == 0) {
            ngx_voice_variable_set(v, (u_char *) f->value, f->value_len);
            break;
        }
    }

    return NGX_OK;
}
