/*
 * Copyright (C) ngx_voice authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_openai.h"


static cJSON *ngx_voice_oa_build(const ngx_voice_oa_request_t *rq,
    const char **error);
static cJSON *ngx_voice_oa_message(const char *role,
    const ngx_voice_text_t *content, const ngx_voice_oa_message_t *m);
static cJSON *ngx_voice_oa_string(const ngx_voice_text_t *t);
static int ngx_voice_oa_add_string(cJSON *obj, const char *name,
    const ngx_voice_text_t *t);
static cJSON *ngx_voice_oa_parse_value(const ngx_voice_text_t *t);
static int ngx_voice_oa_merge(cJSON *root, cJSON *extra);
static int ngx_voice_oa_bad(ngx_voice_oa_chunk_t *c, const char *error);
static int ngx_voice_oa_choice(ngx_voice_oa_stream_t *s,
    ngx_voice_oa_chunk_t *c, cJSON *choices);
static int ngx_voice_oa_fragment(ngx_voice_oa_stream_t *s,
    ngx_voice_oa_chunk_t *c, cJSON *frag);
static unsigned ngx_voice_oa_finish(const char *reason);
static void ngx_voice_oa_usage(ngx_voice_oa_stream_t *s,
    ngx_voice_oa_chunk_t *c, cJSON *root);
static void ngx_voice_oa_error_fields(cJSON *root, ngx_voice_text_t *message,
    ngx_voice_text_t *type, ngx_voice_text_t *code, ngx_voice_text_t *param,
    unsigned *status_code, char *code_buf, size_t code_size);
static void ngx_voice_oa_empty(ngx_voice_text_t *t);


char *
ngx_voice_oa_request(const ngx_voice_oa_request_t *rq, size_t *len,
    const char **error)
{
    char   *out;
    cJSON  *root;

    root = ngx_voice_oa_build(rq, error);
    if (root == NULL) {
        return NULL;
    }

    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);

    if (out == NULL) {
        *error = "out of memory";
        return NULL;
    }

    *len = strlen(out);

    return out;
}


void
ngx_voice_oa_request_free(char *body)
{
    cJSON_free(body);
}


size_t
ngx_voice_oa_request_into(const ngx_voice_oa_request_t *rq, char *dst,
    size_t size, const char **error)
{
    cJSON  *root;
    int     ok;

    root = ngx_voice_oa_build(rq, error);
    if (root == NULL) {
        return 0;
    }

    /* cJSON needs 5 bytes of slack to be sure of the fit */

    ok = size > 5 && size < 0x7fffffff
         && cJSON_PrintPreallocated(root, dst, (int) size - 5, 0);

    cJSON_Delete(root);

    if (!ok) {
        *error = "request body does not fit";
        return 0;
    }

    return strlen(dst);
}


int
ngx_voice_oa_stream_init(ngx_voice_oa_stream_t *s, size_t max_args)
{
    memset(s, 0, sizeof(ngx_voice_oa_stream_t));

    s->arena = malloc(NGX_VOICE_OA_MAX_CALLS * (max_args + 1));
    if (s->arena == NULL) {
        return -1;
    }

    s->max_args = max_args;

    ngx_voice_oa_stream_reset(s);

    return 0;
}


void
ngx_voice_oa_stream_reset(ngx_voice_oa_stream_t *s)
{
    char      *arena;
    size_t     max_args;
    unsigned   i;

    arena = s->arena;
    max_args = s->max_args;

    memset(s, 0, sizeof(ngx_voice_oa_stream_t));

    s->arena = arena;
    s->max_args = max_args;

    if (arena == NULL) {
        return;
    }

    for (i = 0; i < NGX_VOICE_OA_MAX_CALLS; i++) {
        s->calls[i].args = arena + i * (max_args + 1);
        s->calls[i].args[0] = '\0';
    }
}


void
ngx_voice_oa_stream_free(ngx_voice_oa_stream_t *s)
{
    free(s->arena);
    s->arena = NULL;

    ngx_voice_oa_stream_reset(s);
}


int
ngx_voice_oa_stream_parse(ngx_voice_oa_stream_t *s, ngx_voice_oa_chunk_t *c,
    const unsigned char *data, size_t len)
{
    cJSON  *root, *item;

    memset(c, 0, sizeof(ngx_voice_oa_chunk_t));

    ngx_voice_oa_empty(&c->content);
    ngx_voice_oa_empty(&c->role);
    ngx_voice_oa_empty(&c->id);
    ngx_voice_oa_empty(&c->model);
    ngx_voice_oa_empty(&c->err_message);
    ngx_voice_oa_empty(&c->err_type);
    ngx_voice_oa_empty(&c->err_code);
    ngx_voice_oa_empty(&c->err_param);

    if (s->arena == NULL) {
        return ngx_voice_oa_bad(c, "stream not initialized");
    }

    while (len && (data[len - 1] == ' ' || data[len - 1] == '\t'
                   || data[len - 1] == '\r' || data[len - 1] == '\n'))
    {
        len--;
    }

    while (len && (data[0] == ' ' || data[0] == '\t' || data[0] == '\r'
                   || data[0] == '\n'))
    {
        data++;
        len--;
    }

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = 1;
        return NGX_VOICE_OA_DONE;
    }

    root = ngx_voice_json_parse(data, len);

    if (root == NULL) {
        return ngx_voice_oa_bad(c, "malformed JSON in stream chunk");
    }

    c->root = root;

    item = cJSON_GetObjectItemCaseSensitive(root, "error");

    if (item != NULL && !cJSON_IsNull(item)) {
        ngx_voice_oa_error_fields(root, &c->err_message, &c->err_type,
                                  &c->err_code, &c->err_param,
                                  &c->status_code, c->code_buf,
                                  sizeof(c->code_buf));
        return NGX_VOICE_OA_STREAM_ERROR;
    }

    ngx_voice_json_text(root, "id", &c->id);
    ngx_voice_json_text(root, "model", &c->model);

    item = cJSON_GetObjectItemCaseSensitive(root, "choices");

    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsArray(item)) {
            return ngx_voice_oa_bad(c, "choices is not an array");
        }

        if (ngx_voice_oa_choice(s, c, item) != NGX_VOICE_OA_OK) {
            return NGX_VOICE_OA_BAD;
        }
    }

    ngx_voice_oa_usage(s, c, root);

    return NGX_VOICE_OA_OK;
}


void
ngx_voice_oa_chunk_done(ngx_voice_oa_chunk_t *c)
{
    if (c->root) {
        cJSON_Delete(c->root);
        c->root = NULL;
    }

    ngx_voice_oa_empty(&c->content);
}


int
ngx_voice_oa_error_parse(ngx_voice_oa_error_t *e, const unsigned char *body,
    size_t len)
{
    cJSON  *root;

    memset(e, 0, sizeof(ngx_voice_oa_error_t));

    ngx_voice_oa_empty(&e->message);
    ngx_voice_oa_empty(&e->type);
    ngx_voice_oa_empty(&e->code);
    ngx_voice_oa_empty(&e->param);

    root = ngx_voice_json_parse(body, len);

    if (root == NULL) {
        e->error = "error body is not a JSON object";
        return NGX_VOICE_OA_BAD;
    }

    e->root = root;

    ngx_voice_oa_error_fields(root, &e->message, &e->type, &e->code,
                              &e->param, &e->status_code, e->code_buf,
                              sizeof(e->code_buf));

    return NGX_VOICE_OA_OK;
}


void
ngx_voice_oa_error_done(ngx_voice_oa_error_t *e)
{
    if (e->root) {
        cJSON_Delete(e->root);
        e->root = NULL;
    }
}


static cJSON *
ngx_voice_oa_build(const ngx_voice_oa_request_t *rq, const char **error)
{
    size_t     i;
    cJSON     *root, *msgs, *item, *opts;

    *error = "out of memory";

    root = cJSON_CreateObject();
    if (root == NULL) {
        return NULL;
    }

    if (rq->model.data == NULL || rq->model.len == 0) {
        *error = "no model";
        goto failed;
    }

    if (!ngx_voice_oa_add_string(root, "model", &rq->model)) {
        goto failed;
    }

    msgs = cJSON_AddArrayToObject(root, "messages");
    if (msgs == NULL) {
        goto failed;
    }

    if (rq->system.data != NULL) {
        item = ngx_voice_oa_message("system", &rq->system, NULL);

        if (item == NULL || !cJSON_AddItemToArray(msgs, item)) {
            cJSON_Delete(item);
            goto failed;
        }
    }

    for (i = 0; i < rq->nmessages; i++) {
        if (rq->messages[i].role == NULL) {
            *error = "message without role";
            goto failed;
        }

        item = ngx_voice_oa_message(rq->messages[i].role,
                                    &rq->messages[i].content,
                                    &rq->messages[i]);

        if (item == NULL || !cJSON_AddItemToArray(msgs, item)) {
            cJSON_Delete(item);
            goto failed;
        }
    }

    if (cJSON_AddTrueToObject(root, "stream") == NULL) {
        goto failed;
    }

    if (rq->include_usage) {
        opts = cJSON_AddObjectToObject(root, "stream_options");

        if (opts == NULL
            || cJSON_AddTrueToObject(opts, "include_usage") == NULL)
        {
            goto failed;
        }
    }

    if (rq->max_completion_tokens
        && cJSON_AddNumberToObject(root, "max_completion_tokens",
                                   rq->max_completion_tokens) == NULL)
    {
        goto failed;
    }

    if (rq->temperature >= 0
        && cJSON_AddNumberToObject(root, "temperature", rq->temperature)
           == NULL)
    {
        goto failed;
    }

    if (rq->tools.data != NULL) {
        item = ngx_voice_oa_parse_value(&rq->tools);

        if (!cJSON_IsArray(item)) {
            cJSON_Delete(item);
            *error = "tools is not a JSON array";
            goto failed;
        }

        if (!cJSON_AddItemToObject(root, "tools", item)) {
            cJSON_Delete(item);
            goto failed;
        }
    }

    if (rq->tool_choice.data != NULL && rq->tool_choice.len) {
        if (rq->tool_choice.data[0] == '{') {
            item = ngx_voice_oa_parse_value(&rq->tool_choice);

            if (!cJSON_IsObject(item)) {
                cJSON_Delete(item);
                *error = "tool_choice is not a JSON object";
                goto failed;
            }

        } else {
            item = ngx_voice_oa_string(&rq->tool_choice);
        }

        if (item == NULL || !cJSON_AddItemToObject(root, "tool_choice", item))
        {
            cJSON_Delete(item);
            goto failed;
        }
    }

    if (rq->extra.data != NULL && rq->extra.len) {
        item = ngx_voice_oa_parse_value(&rq->extra);

        if (!cJSON_IsObject(item)) {
            cJSON_Delete(item);
            *error = "extra is not a JSON object";
            goto failed;
        }

        if (ngx_voice_oa_merge(root, item) != 0) {
            cJSON_Delete(item);
            goto failed;
        }

        cJSON_Delete(item);
    }

    return root;

failed:

    cJSON_Delete(root);

    return NULL;
}


static cJSON *
ngx_voice_oa_message(const char *role, const ngx_voice_text_t *content,
    const ngx_voice_oa_message_t *m)
{
    size_t             i;
    cJSON             *obj, *calls, *call, *fn;
    ngx_voice_text_t   r;

    obj = cJSON_CreateObject();
    if (obj == NULL) {
        return NULL;
    }

    r.data = role;
    r.len = strlen(role);

    if (!ngx_voice_oa_add_string(obj, "role", &r)
        || !ngx_voice_oa_add_string(obj, "content", content))
    {
        goto failed;
    }

    if (m == NULL) {
        return obj;
    }

    if (m->ncalls) {
        calls = cJSON_AddArrayToObject(obj, "tool_calls");
        if (calls == NULL) {
            goto failed;
        }

        for (i = 0; i < m->ncalls; i++) {
            call = cJSON_CreateObject();

            if (call == NULL || !cJSON_AddItemToArray(calls, call)) {
                cJSON_Delete(call);
                goto failed;
            }

            if (!ngx_voice_oa_add_string(call, "id", &m->calls[i].id)
                || cJSON_AddStringToObject(call, "type", "function") == NULL)
            {
                goto failed;
            }

            fn = cJSON_AddObjectToObject(call, "function");

            if (fn == NULL
                || !ngx_voice_oa_add_string(fn, "name", &m->calls[i].name)
                || !ngx_voice_oa_add_string(fn, "arguments",
                                            &m->calls[i].arguments))
            {
                goto failed;
            }
        }
    }

    if (m->tool_call_id.data != NULL
        && !ngx_voice_oa_add_string(obj, "tool_call_id", &m->tool_call_id))
    {
        goto failed;
    }

    return obj;

failed:

    cJSON_Delete(obj);

    return NULL;
}


static cJSON *
ngx_voice_oa_string(const ngx_voice_text_t *t)
{
    char   *s;
    cJSON  *item;

    /* cJSON wants NUL-terminated strings; ours are counted */

    s = malloc(t->len + 1);
    if (s == NULL) {
        return NULL;
    }

    if (t->len) {
        memcpy(s, t->data, t->len);
    }

    s[t->len] = '\0';

    item = cJSON_CreateString(s);

    free(s);

    return item;
}


static int
ngx_voice_oa_add_string(cJSON *obj, const char *name,
    const ngx_voice_text_t *t)
{
    cJSON             *item;
    ngx_voice_text_t   empty;

    if (t->data == NULL) {
        empty.data = "";
        empty.len = 0;
        t = &empty;
    }

    item = ngx_voice_oa_string(t);

    if (item == NULL || !cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return 0;
    }

    return 1;
}


static cJSON *
ngx_voice_oa_parse_value(const ngx_voice_text_t *t)
{
    cJSON       *v;
    const char  *end, *last;

    end = NULL;

    v = cJSON_ParseWithLengthOpts(t->data, t->len, &end, 0);

    if (v == NULL) {
        return NULL;
    }

    last = t->data + t->len;

    if (end == NULL) {
        end = last;
    }

    for ( /* void */ ; end < last; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(v);
            return NULL;
        }
    }

    return v;
}


static int
ngx_voice_oa_merge(cJSON *root, cJSON *extra)
{
    cJSON  *item;

    while (extra->child != NULL) {
        item = cJSON_DetachItemViaPointer(extra, extra->child);

        if (item->string == NULL) {
            cJSON_Delete(item);
            continue;
        }

        /*
         * A member given in extra replaces the built one.  Not with
         * cJSON_ReplaceItemInObject(): it frees item->string before
         * copying the key from it.
         */

        cJSON_DeleteItemFromObjectCaseSensitive(root, item->string);

        if (!cJSON_AddItemToObject(root, item->string, item)) {
            cJSON_Delete(item);
            return -1;
        }
    }

    return 0;
}


static int
ngx_voice_oa_bad(ngx_voice_oa_chunk_t *c, const char *error)
{
    c->error = error;

    return NGX_VOICE_OA_BAD;
}


static int
ngx_voice_oa_choice(ngx_voice_oa_stream_t *s, ngx_voice_oa_chunk_t *c,
    cJSON *choices)
{
    cJSON             *choice, *it, *delta, *frag;
    ngx_voice_text_t   t;

    choice = NULL;

    cJSON_ArrayForEach(it, choices) {
        if (!cJSON_IsObject(it)) {
            continue;
        }

        if (choice == NULL) {
            choice = it;
        }

        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(it, "index"))
            && cJSON_GetObjectItemCaseSensitive(it, "index")->valuedouble
               == 0)
        {
            choice = it;
            break;
        }
    }

    if (choice == NULL) {
        return NGX_VOICE_OA_OK;
    }

    delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");

    if (cJSON_IsObject(delta)) {
        if (ngx_voice_json_text(delta, "role", &c->role)) {
            s->role_seen = 1;
        }

        /* delta.reasoning / reasoning_content are never spoken */

        if (ngx_voice_json_text(delta, "content", &c->content)) {
            s->content_len += c->content.len;
        }

        it = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");

        if (cJSON_IsArray(it)) {
            cJSON_ArrayForEach(frag, it) {
                if (ngx_voice_oa_fragment(s, c, frag) != NGX_VOICE_OA_OK) {
                    return NGX_VOICE_OA_BAD;
                }

                c->tool_calls++;
            }

        } else if (it != NULL && !cJSON_IsNull(it)) {
            return ngx_voice_oa_bad(c, "tool_calls is not an array");
        }
    }

    if (ngx_voice_json_text(choice, "finish_reason", &t)) {
        c->finish = ngx_voice_oa_finish(t.data);
        s->finish = c->finish;
    }

    return NGX_VOICE_OA_OK;
}


static int
ngx_voice_oa_fragment(ngx_voice_oa_stream_t *s, ngx_voice_oa_chunk_t *c,
    cJSON *frag)
{
    double                    d;
    unsigned                  idx, i;
    cJSON                    *fn;
    ngx_voice_text_t          id, name, args;
    ngx_voice_oa_acc_call_t  *call;

    if (!cJSON_IsObject(frag)) {
        return ngx_voice_oa_bad(c, "tool call fragment is not an object");
    }

    ngx_voice_json_text(frag, "id", &id);

    if (ngx_voice_json_number(frag, "index", &d)) {
        if (!(d >= 0 && d < NGX_VOICE_OA_MAX_CALLS) || d != (unsigned) d) {
            return ngx_voice_oa_bad(c, "tool call index out of range");
        }

        idx = (unsigned) d;

    } else {
        /* no index: a new call when it brings a new id, else the last */

        idx = s->ncalls ? s->ncalls - 1 : 0;

        if (id.len && s->ncalls
            && (s->calls[idx].id_len != id.len
                || memcmp(s->calls[idx].id, id.data, id.len) != 0))
        {
            idx = s->ncalls;
        }

        if (idx >= NGX_VOICE_OA_MAX_CALLS) {
            return ngx_voice_oa_bad(c, "too many tool calls");
        }
    }

    for (i = s->ncalls; i <= idx; i++) {
        s->calls[i].id_len = 0;
        s->calls[i].name_len = 0;
        s->calls[i].args_len = 0;
        s->calls[i].args[0] = '\0';
    }

    if (idx >= s->ncalls) {
        s->ncalls = idx + 1;
    }

    call = &s->calls[idx];

    if (id.len) {
        if (id.len > NGX_VOICE_OA_MAX_ID) {
            return ngx_voice_oa_bad(c, "tool call id too long");
        }

        memcpy(call->id, id.data, id.len);
        call->id[id.len] = '\0';
        call->id_len = id.len;
    }

    fn = cJSON_GetObjectItemCaseSensitive(frag, "function");

    if (!cJSON_IsObject(fn)) {
        return NGX_VOICE_OA_OK;
    }

    if (ngx_voice_json_text(fn, "name", &name) && name.len) {
        if (name.len > NGX_VOICE_OA_MAX_NAME) {
            return ngx_voice_oa_bad(c, "tool call name too long");
        }

        memcpy(call->name, name.data, name.len);
        call->name[name.len] = '\0';
        call->name_len = name.len;
    }

    if (ngx_voice_json_text(fn, "arguments", &args) && args.len) {
        if (args.len > s->max_args - call->args_len) {
            return ngx_voice_oa_bad(c, "tool call arguments too long");
        }

        memcpy(call->args + call->args_len, args.data, args.len);
        call->args_len += args.len;
        call->args[call->args_len] = '\0';
    }

    return NGX_VOICE_OA_OK;
}


static unsigned
ngx_voice_oa_finish(const char *reason)
{
    if (strcmp(reason, "stop") == 0) {
        return NGX_VOICE_OA_FINISH_STOP;
    }

    if (strcmp(reason, "length") == 0) {
        return NGX_VOICE_OA_FINISH_LENGTH;
    }

    if (strcmp(reason, "tool_calls") == 0
        || strcmp(reason, "function_call") == 0)
    {
        return NGX_VOICE_OA_FINISH_TOOL_CALLS;
    }

    if (strcmp(reason, "content_filter") == 0) {
        return NGX_VOICE_OA_FINISH_CONTENT_FILTER;
    }

    return NGX_VOICE_OA_FINISH_OTHER;
}


static void
ngx_voice_oa_usage(ngx_voice_oa_stream_t *s, ngx_voice_oa_chunk_t *c,
    cJSON *root)
{
    double  d;
    cJSON  *u, *details;

    u = cJSON_GetObjectItemCaseSensitive(root, "usage");

    if (cJSON_IsObject(u)) {
        s->have_usage = 1;
        c->usage = 1;

        if (ngx_voice_json_number(u, "prompt_tokens", &d)) {
            s->prompt_tokens = ngx_voice_json_uint(d);
        }

        if (ngx_voice_json_number(u, "completion_tokens", &d)) {
            s->completion_tokens = ngx_voice_json_uint(d);
        }

        if (ngx_voice_json_number(u, "total_tokens", &d)) {
            s->total_tokens = ngx_voice_json_uint(d);
        }

        details = cJSON_GetObjectItemCaseSensitive(u,
                                                   "prompt_tokens_details");

        if (cJSON_IsObject(details)
            && ngx_voice_json_number(details, "cached_tokens", &d))
        {
            s->cached_tokens = ngx_voice_json_uint(d);
        }
    }

    u = cJSON_GetObjectItemCaseSensitive(root, "time_info");

    if (cJSON_IsObject(u)) {
        s->have_time_info = 1;

        ngx_voice_json_number(u, "queue_time", &s->queue_time);
        ngx_voice_json_number(u, "prompt_time", &s->prompt_time);
        ngx_voice_json_number(u, "completion_time", &s->completion_time);
        ngx_voice_json_number(u, "total_time", &s->total_time);
        ngx_voice_json_number(u, "created", &s->created);
    }
}


static void
ngx_voice_oa_error_fields(cJSON *root, ngx_voice_text_t *message,
    ngx_voice_text_t *type, ngx_voice_text_t *code, ngx_voice_text_t *param,
    unsigned *status_code, char *code_buf, size_t code_size)
{
    double  d;
    cJSON  *err, *item;

    /* like the SDKs: body.get("error", body) */

    err = cJSON_GetObjectItemCaseSensitive(root, "error");

    if (cJSON_IsString(err) && err->valuestring != NULL) {
        message->data = err->valuestring;
        message->len = strlen(err->valuestring);
        err = root;

    } else if (!cJSON_IsObject(err)) {
        err = root;
    }

    if (message->len == 0) {
        if (!ngx_voice_json_text(err, "message", message)) {
            ngx_voice_json_text(root, "detail", message);
        }
    }

    ngx_voice_json_text(err, "type", type);
    ngx_voice_json_text(err, "param", param);

    item = cJSON_GetObjectItemCaseSensitive(err, "code");

    if (cJSON_IsString(item) && item->valuestring != NULL) {
        code->data = item->valuestring;
        code->len = strlen(item->valuestring);

    } else if (cJSON_IsNumber(item)) {
        snprintf(code_buf, code_size, "%.0f",
                 (item->valuedouble > -1e15 && item->valuedouble < 1e15)
                 ? item->valuedouble : 0.0);
        code->data = code_buf;
        code->len = strlen(code_buf);
    }

    if (ngx_voice_json_number(root, "status_code", &d) && d >= 100
        && d < 1000)
    {
        *status_code = (unsigned) d;
    }
}


static void
ngx_voice_oa_empty(ngx_voice_text_t *t)
{
    t->data = "";
    t->len = 0;
}
