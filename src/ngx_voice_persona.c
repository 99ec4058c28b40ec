/*
 * Copyright (C) ngx_voice authors
 *
 * voice_persona_url: the call's persona from the application, fetched at
 * "start" through the HTTP client (keep-alive pool, nginx's resolver and
 * TLS).  The whole fetch is bounded by voice_persona_timeout; the agent
 * starts speech-to-text and text-to-speech once it is over, so that the
 * persona's language and voice are the ones connected.
 */


#include "ngx_voice_persona.h"

#include <cjson/cJSON.h>


static void ngx_voice_persona_header(ngx_voice_hc_t *hc);
static void ngx_voice_persona_body(ngx_voice_hc_t *hc, u_char *p, size_t n);
static void ngx_voice_persona_done(ngx_voice_hc_t *hc);
static void ngx_voice_persona_failed(ngx_voice_hc_t *hc,
    ngx_voice_leg_error_e err);
static void ngx_voice_persona_timeout(ngx_event_t *ev);
static void ngx_voice_persona_finish(ngx_voice_persona_t *p,
    const char *error);
static const char *ngx_voice_persona_parse(ngx_voice_persona_t *p);
static const char *ngx_voice_persona_string(ngx_voice_persona_t *p,
    cJSON *root, const char *name, ngx_str_t *out, ngx_uint_t token);
static const char *ngx_voice_persona_tools(ngx_voice_persona_t *p,
    cJSON *allowed);


static ngx_voice_hc_handler_t  ngx_voice_persona_hc_handler = {
    ngx_voice_persona_header,
    ngx_voice_persona_body,
    ngx_voice_persona_done,
    ngx_voice_persona_failed
};


ngx_int_t
ngx_voice_persona_connect(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_str_t              none;
    ngx_voice_endpoint_t  *ep;

    if (conf->persona_url.len == 0) {
        return NGX_OK;
    }

    ngx_str_null(&none);

    ep = ngx_voice_conf_endpoints(cf, conf, &conf->persona_url, NULL,
                                  "persona", &none);
    if (ep == NULL) {
        return NGX_ERROR;
    }

    conf->persona = ngx_voice_hc_pool_create(cf, ep, 2,
                                             conf->llm_keepalive_timeout);

    return conf->persona ? NGX_OK : NGX_ERROR;
}


/*
 * GET <url>?CallSid=...&<customParameter>=... ; done is called once,
 * possibly from inside this function (an immediate connect failure);
 * NGX_ERROR: nothing was started and done is not called.
 */

ngx_int_t
ngx_voice_persona_fetch(ngx_voice_persona_t *p, ngx_voice_call_t *call,
    ngx_voice_persona_done_pt done, void *data)
{
    u_char                  *d;
    size_t                   len;
    ngx_str_t               *req;
    ngx_uint_t               i;
    ngx_keyval_t            *kv;
    ngx_voice_hc_pool_t     *pool;
    ngx_voice_loc_conf_t    *conf;
    ngx_voice_hc_request_t   rq;

    conf = call->conf;
    pool = conf->persona;
    req = &pool->ep->request;
    kv = call->params.elts;

    ngx_memzero(p, sizeof(ngx_voice_persona_t));

    p->call = call;
    p->done = done;
    p->data = data;
    p->started = ngx_current_msec;

    len = req->len + sizeof("&CallSid=") - 1 + call->id.len;

    for (i = 0; i < call->params.nelts; i++) {
        len += 2 + kv[i].key.len + kv[i].value.len
               + 2 * ngx_escape_uri(NULL, kv[i].key.data, kv[i].key.len,
                                    NGX_ESCAPE_ARGS)
               + 2 * ngx_escape_uri(NULL, kv[i].value.data, kv[i].value.len,
                                    NGX_ESCAPE_ARGS);
    }

    p->uri.data = ngx_pnalloc(call->request->pool, len);
    if (p->uri.data == NULL) {
        return NGX_ERROR;
    }

    d = ngx_cpymem(p->uri.data, req->data, req->len);
    *d++ = ngx_strlchr(req->data, req->data + req->len, '?') ? '&' : '?';
    d = ngx_cpymem(d, "CallSid=", sizeof("CallSid=") - 1);
    d = ngx_cpymem(d, call->id.data, call->id.len);

    for (i = 0; i < call->params.nelts; i++) {
        *d++ = '&';
        d = (u_char *) ngx_escape_uri(d, kv[i].key.data, kv[i].key.len,
                                      NGX_ESCAPE_ARGS);
        *d++ = '=';
        d = (u_char *) ngx_escape_uri(d, kv[i].value.data, kv[i].value.len,
                                      NGX_ESCAPE_ARGS);
    }

    p->uri.len = d - p->uri.data;

    p->fields[0].name = "Accept";
    p->fields[0].name_len = sizeof("Accept") - 1;
    p->fields[0].value = "application/json";
    p->fields[0].value_len = sizeof("application/json") - 1;
    p->fields[1].name = "X-Voice-Call-Sid";
    p->fields[1].name_len = sizeof("X-Voice-Call-Sid") - 1;
    p->fields[1].value = (char *) call->id.data;
    p->fields[1].value_len = call->id.len;

    ngx_voice_hc_init(&p->hc, call, pool, &ngx_voice_persona_hc_handler, p);

    p->timer.handler = ngx_voice_persona_timeout;
    p->timer.data = p;
    p->timer.log = call->connection->log;

    ngx_str_set(&rq.method, "GET");
    rq.uri = p->uri;
    rq.fields = p->fields;
    rq.nfields = 2;
    rq.body = NULL;
    rq.body_len = 0;
    rq.timeout = conf->persona_timeout;

    p->pending = 1;

    if (ngx_voice_hc_request(&p->hc, &rq) != NGX_OK) {
        if (!p->pending) {
            /* the failure was reported already: done has run */
            return NGX_OK;
        }

        p->pending = 0;
        return NGX_ERROR;
    }

    /* a fresh connection may have failed already */
    if (p->pending) {
        ngx_add_timer(&p->timer, conf->persona_timeout);
    }

    return NGX_OK;
}


void
ngx_voice_persona_cancel(ngx_voice_persona_t *p)
{
    if (p->call == NULL) {
        return;
    }

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }

    if (p->timer.posted) {
        ngx_delete_posted_event(&p->timer);
    }

    ngx_voice_hc_cancel(&p->hc);

    if (p->body) {
        ngx_free(p->body);
        p->body = NULL;
    }

    p->pending = 0;
    p->done = NULL;
}


static void
ngx_voice_persona_header(ngx_voice_hc_t *hc)
{
    ngx_voice_persona_t  *p;

    p = hc->data;
    p->status = hc->status;
}


static void
ngx_voice_persona_body(ngx_voice_hc_t *hc, u_char *data, size_t n)
{
    ngx_voice_persona_t  *p;

    p = hc->data;

    if (!p->pending) {
        return;
    }

    if (p->body == NULL) {
        p->body = ngx_alloc(NGX_VOICE_PERSONA_MAX, &hc->leg.log);
        if (p->body == NULL) {
            p->len = NGX_VOICE_PERSONA_MAX + 1;
            return;
        }
    }

    ngx_voice_hc_collect(p->body, &p->len, NGX_VOICE_PERSONA_MAX, data, n);
}


static void
ngx_voice_persona_done(ngx_voice_hc_t *hc)
{
    ngx_voice_persona_t  *p;

    p = hc->data;

    if (!p->pending) {
        return;
    }

    if (p->len > NGX_VOICE_PERSONA_MAX) {
        ngx_voice_persona_finish(p, "the answer is too large");
        return;
    }

    ngx_voice_persona_finish(p, ngx_voice_persona_parse(p));
}


static void
ngx_voice_persona_failed(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err)
{
    ngx_voice_persona_t  *p;

    p = hc->data;

    if (!p->pending) {
        return;
    }

    if (err == NGX_VOICE_LEG_ERR_REMOTE) {
        p->status = hc->status;
        ngx_voice_persona_finish(p, "the application answered an error");
        return;
    }

    ngx_voice_persona_finish(p, err == NGX_VOICE_LEG_ERR_TIMEOUT
                                ? "timed out"
                                : "the application could not be reached");
}


static void
ngx_voice_persona_timeout(ngx_event_t *ev)
{
    ngx_voice_call_t     *call;
    ngx_voice_persona_t  *p;

    p = ev->data;
    call = p->call;

    if (!p->pending) {
        return;
    }

    ngx_voice_hc_cancel(&p->hc);
    ngx_voice_persona_finish(p, "timed out");

    ngx_voice_ws_event_done(call);
    ngx_http_run_posted_requests(call->connection);
}


static void
ngx_voice_persona_finish(ngx_voice_persona_t *p, const char *error)
{
    ngx_log_t  *log;

    log = p->call->connection->log;

    p->pending = 0;
    p->error = error;
    p->elapsed = ngx_current_msec - p->started;

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }

    if (p->body) {
        ngx_free(p->body);
        p->body = NULL;
    }

    if (error) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "voice: persona not used (%s, status %ui, %M ms): the "
                      "configured defaults apply", error, p->status,
                      p->elapsed);

    } else {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "voice: persona applied (%M ms)", p->elapsed);
    }

    if (p->done) {
        p->done(p);
    }
}


/* all or nothing: a persona with a wrong field is not half applied */

static const char *
ngx_voice_persona_parse(ngx_voice_persona_t *p)
{
    cJSON       *root, *tools;
    const char  *err;

    if (p->status < 200 || p->status > 299) {
        return "the application answered an error";
    }

    root = cJSON_ParseWithLength((char *) p->body, p->len);

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return "the answer is not a JSON object";
    }

    err = ngx_voice_persona_string(p, root, "system_prompt", &p->system, 0);

    if (err == NULL) {
        err = ngx_voice_persona_string(p, root, "greeting", &p->greeting, 0);
    }

    if (err == NULL) {
        err = ngx_voice_persona_string(p, root, "voice", &p->voice, 1);
    }

    if (err == NULL) {
        err = ngx_voice_persona_string(p, root, "model", &p->model, 1);
    }

    if (err == NULL) {
        err = ngx_voice_persona_string(p, root, "language", &p->language, 1);
    }

    tools = cJSON_GetObjectItemCaseSensitive(root, "tools");

    if (err == NULL && tools && !cJSON_IsNull(tools)) {
        err = ngx_voice_persona_tools(p, tools);
    }

    cJSON_Delete(root);

    if (err) {
        ngx_str_null(&p->system);
        ngx_str_null(&p->greeting);
        ngx_str_null(&p->voice);
        ngx_str_null(&p->model);
        ngx_str_null(&p->language);
        p->have_tools = 0;
    }

    return err;
}


/*
 * A string field; token: it goes into a URL or a request as is
 * (a voice id, a model, a language), so only [A-Za-z0-9._:-].
 */

static const char *
ngx_voice_persona_string(ngx_voice_persona_t *p, cJSON *root,
    const char *name, ngx_str_t *out, ngx_uint_t token)
{
    u_char  *s;
    size_t   len;
    cJSON   *item;

    item = cJSON_GetObjectItemCaseSensitive(root, name);

    if (item == NULL || cJSON_IsNull(item)) {
        return NULL;
    }

    if (!cJSON_IsString(item)) {
        return "a field is not a string";
    }

    s = (u_char *) item->valuestring;
    len = ngx_strlen(s);

    if (len == 0) {
        return NULL;
    }

    if (token) {
        if (len > 128) {
            return "a voice, model or language is too long";
        }

        for ( /* void */ ; *s; s++) {
            if (!(*s == '.' || *s == '_' || *s == ':' || *s == '-'
                  || (*s >= '0' && *s <= '9')
                  || ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z')))
            {
                return "a voice, model or language has a character "
                       "outside A-Z a-z 0-9 . _ : -";
            }
        }

        s = (u_char *) item->valuestring;
    }

    out->data = ngx_pnalloc(p->call->request->pool, len);
    if (out->data == NULL) {
        return "no memory";
    }

    ngx_memcpy(out->data, s, len);
    out->len = len;

    return NULL;
}


/* the tools the LLM is offered: those of the location the persona names */

static const char *
ngx_voice_persona_tools(ngx_voice_persona_t *p, cJSON *allowed)
{
    char                  *json;
    cJSON                 *all, *item, *next, *fn, *name, *a;
    ngx_str_t             *src;
    ngx_uint_t             keep;
    ngx_voice_loc_conf_t  *conf;

    if (!cJSON_IsArray(allowed)) {
        return "\"tools\" is not an array of names";
    }

    cJSON_ArrayForEach(a, allowed) {
        if (!cJSON_IsString(a)) {
            return "\"tools\" is not an array of names";
        }
    }

    conf = p->call->conf;
    src = conf->llm_tools_all.len ? &conf->llm_tools_all : &conf->llm_tools;

    p->have_tools = 1;

    if (src->len == 0) {
        return NULL;
    }

    all = cJSON_ParseWithLength((char *) src->data, src->len);
    if (all == NULL) {
        return "no memory";
    }

    for (item = all->child; item; item = next) {
        next = item->next;

        fn = cJSON_GetObjectItemCaseSensitive(item, "function");
        name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        keep = 0;

        cJSON_ArrayForEach(a, allowed) {
            if (cJSON_IsString(name)
                && ngx_strcmp(a->valuestring, name->valuestring) == 0)
            {
                keep = 1;
                break;
            }
        }

        if (!keep) {
            cJSON_Delete(cJSON_DetachItemViaPointer(all, item));
        }
    }

    if (cJSON_GetArraySize(all) == 0) {
        cJSON_Delete(all);
        return NULL;
    }

    json = cJSON_PrintUnformatted(all);
    cJSON_Delete(all);

    if (json == NULL) {
        return "no memory";
    }

    p->tools.len = ngx_strlen(json);
    p->tools.data = ngx_pnalloc(p->call->request->pool, p->tools.len);

    if (p->tools.data == NULL) {
        cJSON_free(json);
        return "no memory";
    }

    ngx_memcpy(p->tools.data, json, p->tools.len);
    cJSON_free(json);

    return NULL;
}


/*
 * A provider's request target with the persona's value in place: a
 * query argument ("language=", "model=") or the path segment after a
 * prefix ("/text-to-speech/").  The value is a token (checked above).
 */

ngx_int_t
ngx_voice_persona_uri(ngx_voice_call_t *call, ngx_str_t *request,
    const char *where, ngx_str_t *value, ngx_str_t *out)
{
    u_char  *start, *end, *last, *q, *d;
    size_t   wlen;

    /* out may be request: read it all before writing */
    wlen = ngx_strlen(where);
    last = request->data + request->len;
    start = NULL;

    if (where[0] == '/') {
        start = ngx_strlcasestrn(request->data, last, (u_char *) where,
                                 wlen - 1);
        if (start) {
            start += wlen;
        }

    } else {
        q = ngx_strlchr(request->data, last, '?');

        for ( /* void */ ; q && q < last; q++) {
            if ((*q == '?' || *q == '&')
                && (size_t) (last - q - 1) >= wlen
                && ngx_strncmp(q + 1, where, wlen) == 0)
            {
                /* the value starts here, empty or not */
                start = q + 1 + wlen;
                break;
            }
        }
    }

    if (start == NULL && where[0] == '/') {
        /* nowhere to put it: the configured target stays */
        *out = *request;
        return NGX_OK;
    }

    q = ngx_pnalloc(call->request->pool, request->len + wlen + 2 + value->len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    if (start == NULL) {
        d = ngx_cpymem(q, request->data, request->len);
        *d++ = ngx_strlchr(request->data, last, '?') ? '&' : '?';
        d = ngx_cpymem(d, where, wlen);
        d = ngx_cpymem(d, value->data, value->len);

    } else {
        for (end = start; end < last; end++) {
            if (*end == (u_char) (where[0] == '/' ? '/' : '&')) {
                break;
            }
        }

        d = ngx_cpymem(q, request->data, start - request->data);
        d = ngx_cpymem(d, value->data, value->len);
        d = ngx_cpymem(d, end, last - end);
    }

    out->data = q;
    out->len = d - q;

    return NGX_OK;
}
