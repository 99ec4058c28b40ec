/*
 * Copyright (C) ngx_voice authors
 *
 * The call's nginx variables: $voice_call_sid, $voice_stream_sid,
 * $voice_account_sid and $voice_param_<name> (a customParameter of the
 * Twilio "start" message, e.g. from TwiML <Parameter name="caller">).
 * They are empty-not-found before "start" and outside voice locations;
 * directives such as voice_system_prompt evaluate them per call.
 */


#include "ngx_voice.h"


#define NGX_VOICE_VAR_CALL_SID     0
#define NGX_VOICE_VAR_STREAM_SID   1
#define NGX_VOICE_VAR_ACCOUNT_SID  2

#define NGX_VOICE_VAR_TURNS          0
#define NGX_VOICE_VAR_INTERRUPTIONS  1
#define NGX_VOICE_VAR_DURATION       2
#define NGX_VOICE_VAR_LATENCY_MEAN   3
#define NGX_VOICE_VAR_LATENCY_MAX    4


static ngx_int_t ngx_voice_variable_sid(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_voice_variable_param(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_voice_variable_figure(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_voice_variable_end_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_voice_variables[] = {

    { ngx_string("voice_call_sid"), NULL, ngx_voice_variable_sid,
      NGX_VOICE_VAR_CALL_SID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_stream_sid"), NULL, ngx_voice_variable_sid,
      NGX_VOICE_VAR_STREAM_SID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_account_sid"), NULL, ngx_voice_variable_sid,
      NGX_VOICE_VAR_ACCOUNT_SID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_turns"), NULL, ngx_voice_variable_figure,
      NGX_VOICE_VAR_TURNS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_interruptions"), NULL, ngx_voice_variable_figure,
      NGX_VOICE_VAR_INTERRUPTIONS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_duration"), NULL, ngx_voice_variable_figure,
      NGX_VOICE_VAR_DURATION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_latency_mean"), NULL, ngx_voice_variable_figure,
      NGX_VOICE_VAR_LATENCY_MEAN, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_latency_max"), NULL, ngx_voice_variable_figure,
      NGX_VOICE_VAR_LATENCY_MAX, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_end_reason"), NULL, ngx_voice_variable_end_reason,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("voice_param_"), NULL, ngx_voice_variable_param,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    /* a field of the voice webhook's form, in voice_twiml locations */
    { ngx_string("voice_form_"), NULL, ngx_voice_twiml_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_voice_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_voice_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the call once its "start" came, else NULL */

static ngx_voice_call_t *
ngx_voice_variable_call(ngx_http_request_t *r)
{
    ngx_voice_call_t  *call;

    call = ngx_http_get_module_ctx(r->main, ngx_http_voice_module);

    if (call == NULL || call->stream_sid[0] == '\0') {
        return NULL;
    }

    return call;
}


static ngx_int_t
ngx_voice_variable_sid(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char            *sid;
    ngx_voice_call_t  *call;

    call = ngx_voice_variable_call(r);

    if (call == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_VOICE_VAR_CALL_SID:
        sid = call->id_buf;
        break;

    case NGX_VOICE_VAR_STREAM_SID:
        sid = call->stream_sid;
        break;

    default: /* NGX_VOICE_VAR_ACCOUNT_SID */
        sid = call->account_sid;
        break;
    }

    ngx_voice_variable_set(v, sid, ngx_strlen(sid));

    return NGX_OK;
}


static ngx_int_t
ngx_voice_variable_param(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t  *name = (ngx_str_t *) data;

    size_t             len;
    u_char            *p;
    ngx_uint_t         i;
    ngx_keyval_t      *kv;
    ngx_voice_call_t  *call;

    call = ngx_voice_variable_call(r);

    v->not_found = 1;

    if (call == NULL) {
        return NGX_OK;
    }

    /* nginx lowercases variable names: parameters match caselessly */
    p = name->data + sizeof("voice_param_") - 1;
    len = name->len - (sizeof("voice_param_") - 1);

    kv = call->params.elts;

    for (i = 0; i < call->params.nelts; i++) {
        if (kv[i].key.len == len
            && ngx_strncasecmp(kv[i].key.data, p, len) == 0)
        {
            ngx_voice_variable_set(v, kv[i].value.data, kv[i].value.len);
            break;
        }
    }

    return NGX_OK;
}


/*
 * The call's figures so far (final in the access log): turns, barge-ins,
 * duration in ms since the upgrade, and the mean and worst time from the
 * caller's end of speech to the first sound of the answer, in ms.
 */

static ngx_int_t
ngx_voice_variable_figure(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char            *p;
    ngx_uint_t         n;
    ngx_voice_call_t  *call;

    call = ngx_voice_variable_call(r);

    if (call == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_VOICE_VAR_TURNS:
        n = call->turns;
        break;

    case NGX_VOICE_VAR_INTERRUPTIONS:
        n = call->interruptions;
        break;

    case NGX_VOICE_VAR_DURATION:
        n = ngx_current_msec - call->started;
        break;

    case NGX_VOICE_VAR_LATENCY_MEAN:
        n = call->latency_n ? call->latency_sum / call->latency_n : 0;
        break;

    default: /* NGX_VOICE_VAR_LATENCY_MAX */
        n = call->latency_max;
        break;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_voice_variable_set(v, p, ngx_sprintf(p, "%ui", n) - p);

    return NGX_OK;
}


static ngx_int_t
ngx_voice_variable_end_reason(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_voice_call_t  *call;

    call = ngx_voice_variable_call(r);

    if (call == NULL || call->end_reason == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_voice_variable_set(v, (u_char *) call->end_reason,
                           ngx_strlen(call->end_reason));

    return NGX_OK;
}


/* a found, per-request value (the call's figures change as it runs) */

void
ngx_voice_variable_set(ngx_http_variable_value_t *v, u_char *data, size_t len)
{
    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
}
