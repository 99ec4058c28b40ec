/*
 * Copyright (C) ngx_voice authors
 */


#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_elevenlabs.h"
#include "ngx_voice_base64.h"


static void ngx_voice_el_setting(ngx_voice_out_t *o, unsigned *first,
    const char *name, double v);
static void ngx_voice_el_ctx(ngx_voice_out_t *o, const unsigned char *ctx,
    size_t ctx_len);
static int ngx_voice_el_bad(ngx_voice_el_msg_t *m, const char *error);
static int ngx_voice_el_alignment(ngx_voice_el_msg_t *m,
    ngx_voice_el_align_t *a, cJSON *obj);
static uint32_t ngx_voice_el_ms(cJSON *item);


size_t
ngx_voice_el_path(unsigned char *dst, const ngx_voice_el_url_t *u)
{
    ngx_voice_out_t   out;
    ngx_voice_text_t  fmt;

    if (u->voice_id.data == NULL || u->voice_id.len == 0) {
        return 0;
    }

    if (u->extra.data != NULL
        && !ngx_voice_query_safe((const unsigned char *) u->extra.data,
                                 u->extra.len))
    {
        return 0;
    }

    out.p = dst;
    out.len = 0;

    ngx_voice_out_lit(&out, "/v1/text-to-speech/");
    ngx_voice_out_url(&out, (const unsigned char *) u->voice_id.data,
                      u->voice_id.len);
    ngx_voice_out_lit(&out, u->multi ? "/multi-stream-input?"
                                     : "/stream-input?");

    fmt = u->output_format;

    if (fmt.data == NULL) {
        fmt.data = "ulaw_8000";
        fmt.len = 9;
    }

    ngx_voice_out_lit(&out, "output_format=");
    ngx_voice_out_url(&out, (const unsigned char *) fmt.data, fmt.len);
    ngx_voice_out_qparam(&out, "model_id", &u->model_id);

    if (u->inactivity_timeout) {
        ngx_voice_out_lit(&out, "&inactivity_timeout=");
        ngx_voice_out_uint(&out, u->inactivity_timeout);
    }

    ngx_voice_out_qbool(&out, "sync_alignment", u->sync_alignment);
    ngx_voice_out_qbool(&out, "auto_mode", u->auto_mode);
    ngx_voice_out_qbool(&out, "enable_ssml_parsing", u->enable_ssml_parsing);
    ngx_voice_out_qbool(&out, "enable_logging", u->enable_logging);
    ngx_voice_out_qparam(&out, "language_code", &u->language_code);
    ngx_voice_out_qparam(&out, "apply_text_normalization",
                       &u->apply_text_normalization);

    if (u->extra.data != NULL && u->extra.len) {
        ngx_voice_out_lit(&out, "&");
        ngx_voice_out_raw(&out, u->extra.data, u->extra.len);
    }

    return out.len;
}


void
ngx_voice_el_init_defaults(ngx_voice_el_init_t *init)
{
    init->stability = -1;
    init->similarity_boost = -1;
    init->style = -1;
    init->speed = -1;
    init->use_speaker_boost = NGX_VOICE_EL_OMIT;
    init->schedule = NULL;
    init->nschedule = 0;
}


size_t
ngx_voice_el_init(unsigned char *dst, const ngx_voice_el_init_t *init,
    const unsigned char *ctx, size_t ctx_len)
{
    size_t           i;
    unsigned         first;
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    ngx_voice_out_lit(&out, "{\"text\":\" \"");
    ngx_voice_el_ctx(&out, ctx, ctx_len);

    if (init->stability >= 0 || init->similarity_boost >= 0
        || init->style >= 0 || init->speed >= 0
        || init->use_speaker_boost == NGX_VOICE_EL_TRUE
        || init->use_speaker_boost == NGX_VOICE_EL_FALSE)
    {
        ngx_voice_out_lit(&out, ",\"voice_settings\":{");

        first = 1;
        ngx_voice_el_setting(&out, &first, "stability", init->stability);
        ngx_voice_el_setting(&out, &first, "similarity_boost",
                             init->similarity_boost);
        ngx_voice_el_setting(&out, &first, "style", init->style);

        if (init->use_speaker_boost == NGX_VOICE_EL_TRUE
            || init->use_speaker_boost == NGX_VOICE_EL_FALSE)
        {
            ngx_voice_out_lit(&out, first ? "\"" : ",\"");
            ngx_voice_out_lit(&out, "use_speaker_boost\":");
            ngx_voice_out_lit(&out,
                              init->use_speaker_boost == NGX_VOICE_EL_TRUE
                              ? "true" : "false");
            first = 0;
        }

        ngx_voice_el_setting(&out, &first, "speed", init->speed);
        ngx_voice_out_lit(&out, "}");
    }

    if (init->nschedule) {
        ngx_voice_out_lit(&out,
                          ",\"generation_config\":"
                          "{\"chunk_length_schedule\":[");

        for (i = 0; i < init->nschedule; i++) {
            if (i) {
                ngx_voice_out_lit(&out, ",");
            }

            ngx_voice_out_uint(&out, init->schedule[i]);
        }

        ngx_voice_out_lit(&out, "]}");
    }

    ngx_voice_out_lit(&out, "}");

    return out.len;
}


size_t
ngx_voice_el_text(unsigned char *dst, const unsigned char *text, size_t len,
    unsigned flags, const unsigned char *ctx, size_t ctx_len)
{
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    ngx_voice_out_lit(&out, "{\"text\":\"");
    ngx_voice_out_json(&out, text, len);
    ngx_voice_out_lit(&out, "\"");

    if (flags & NGX_VOICE_EL_TRY_TRIGGER) {
        ngx_voice_out_lit(&out, ",\"try_trigger_generation\":true");
    }

    if (flags & NGX_VOICE_EL_FLUSH) {
        ngx_voice_out_lit(&out, ",\"flush\":true");
    }

    ngx_voice_el_ctx(&out, ctx, ctx_len);
    ngx_voice_out_lit(&out, "}");

    return out.len;
}


size_t
ngx_voice_el_flush(unsigned char *dst, const unsigned char *ctx,
    size_t ctx_len)
{
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    if (ctx == NULL) {
        ngx_voice_out_lit(&out, "{\"text\":\" \",\"flush\":true}");
        return out.len;
    }

    ngx_voice_out_lit(&out, "{\"context_id\":\"");
    ngx_voice_out_json(&out, ctx, ctx_len);
    ngx_voice_out_lit(&out, "\",\"flush\":true}");

    return out.len;
}


size_t
ngx_voice_el_close_context(unsigned char *dst, const unsigned char *ctx,
    size_t ctx_len)
{
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    ngx_voice_out_lit(&out, "{\"context_id\":\"");
    ngx_voice_out_json(&out, ctx, ctx_len);
    ngx_voice_out_lit(&out, "\",\"close_context\":true}");

    return out.len;
}


size_t
ngx_voice_el_keepalive(unsigned char *dst, const unsigned char *ctx,
    size_t ctx_len)
{
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    if (ctx == NULL) {
        ngx_voice_out_lit(&out, "{\"text\":\" \"}");
        return out.len;
    }

    ngx_voice_out_lit(&out, "{\"text\":\"\"");
    ngx_voice_el_ctx(&out, ctx, ctx_len);
    ngx_voice_out_lit(&out, "}");

    return out.len;
}


int
ngx_voice_el_parse(ngx_voice_el_msg_t *m, const unsigned char *json,
    size_t len)
{
    double   d;
    ssize_t  n;
    cJSON   *root, *item;

    m->kind = NGX_VOICE_EL_OTHER;
    m->audio = NULL;
    m->audio_len = 0;
    m->is_final = 0;
    m->context_id.data = "";
    m->context_id.len = 0;
    m->alignment.present = 0;
    m->alignment.n = 0;
    m->alignment.total = 0;
    m->normalized.present = 0;
    m->normalized.n = 0;
    m->normalized.total = 0;
    m->err_code.data = "";
    m->err_code.len = 0;
    m->err_message.data = "";
    m->err_message.len = 0;
    m->close_code = 0;
    m->error = NULL;
    m->root = NULL;

    root = ngx_voice_json_parse(json, len);

    if (root == NULL) {
        m->error = "malformed JSON";
        return NGX_VOICE_EL_BAD_JSON;
    }

    m->root = root;

    if (!ngx_voice_json_text(root, "contextId", &m->context_id)) {
        ngx_voice_json_text(root, "context_id", &m->context_id);
    }

    m->is_final = ngx_voice_json_true(root, "isFinal")
                  || ngx_voice_json_true(root, "is_final");

    item = cJSON_GetObjectItemCaseSensitive(root, "audio");

    if (cJSON_IsString(item) && item->valuestring != NULL
        && item->valuestring[0] != '\0')
    {
        /* in place: the decoded bytes are never longer */

        n = ngx_voice_base64_decode((unsigned char *) item->valuestring,
                                    (unsigned char *) item->valuestring,
                                    strlen(item->valuestring));
        if (n < 0) {
            return ngx_voice_el_bad(m, "invalid base64 audio");
        }

        m->audio = (const unsigned char *) item->valuestring;
        m->audio_len = (size_t) n;

    } else if (item != NULL && !cJSON_IsNull(item) && !cJSON_IsString(item))
    {
        return ngx_voice_el_bad(m, "audio is not a string");
    }

    if (ngx_voice_el_alignment(m, &m->alignment,
                               cJSON_GetObjectItemCaseSensitive(root,
                                                                "alignment"))
        != NGX_VOICE_EL_OK
        || ngx_voice_el_alignment(m, &m->normalized,
                                  cJSON_GetObjectItemCaseSensitive(root,
                                                 "normalizedAlignment"))
           != NGX_VOICE_EL_OK)
    {
        return NGX_VOICE_EL_BAD_MESSAGE;
    }

    if (m->audio_len) {
        m->kind = NGX_VOICE_EL_AUDIO;
        return NGX_VOICE_EL_OK;
    }

    if (m->is_final) {
        m->kind = NGX_VOICE_EL_FINAL;
        return NGX_VOICE_EL_OK;
    }

    /* {"message":..,"error":"input_timeout_exceeded","code":1008} */

    if (ngx_voice_json_text(root, "error", &m->err_code)
        | ngx_voice_json_text(root, "message", &m->err_message))
    {
        m->kind = NGX_VOICE_EL_ERROR;

        if (ngx_voice_json_number(root, "code", &d) && d > 0 && d < 65536) {
            m->close_code = (unsigned) d;
        }
    }

    return NGX_VOICE_EL_OK;
}


void
ngx_voice_el_done(ngx_voice_el_msg_t *m)
{
    if (m->root) {
        cJSON_Delete(m->root);
        m->root = NULL;
    }

    m->audio = NULL;
    m->audio_len = 0;
}


unsigned
ngx_voice_el_chars_before(const ngx_voice_el_align_t *a, uint32_t ms,
    size_t *bytes)
{
    size_t    b;
    unsigned  i;

    b = 0;

    for (i = 0; i < a->n && a->c[i].start_ms < ms; i++) {
        b += strlen(a->c[i].chr);
    }

    if (bytes) {
        *bytes = b;
    }

    return i;
}


static void
ngx_voice_el_setting(ngx_voice_out_t *o, unsigned *first, const char *name,
    double v)
{
    if (!(v >= 0)) {
        return;
    }

    ngx_voice_out_lit(o, *first ? "\"" : ",\"");
    ngx_voice_out_lit(o, name);
    ngx_voice_out_lit(o, "\":");
    ngx_voice_out_double(o, v);

    *first = 0;
}


static void
ngx_voice_el_ctx(ngx_voice_out_t *o, const unsigned char *ctx,
    size_t ctx_len)
{
    if (ctx == NULL) {
        return;
    }

    ngx_voice_out_lit(o, ",\"context_id\":\"");
    ngx_voice_out_json(o, ctx, ctx_len);
    ngx_voice_out_lit(o, "\"");
}


static int
ngx_voice_el_bad(ngx_voice_el_msg_t *m, const char *error)
{
    m->error = error;

    return NGX_VOICE_EL_BAD_MESSAGE;
}


static int
ngx_voice_el_alignment(ngx_voice_el_msg_t *m, ngx_voice_el_align_t *a,
    cJSON *obj)
{
    uint32_t   start, dur, end;
    cJSON     *chars, *starts, *durs, *c, *s, *d;

    a->present = 0;
    a->n = 0;
    a->total = 0;
    a->truncated = 0;
    a->end_ms = 0;
    a->text_len = 0;

    if (obj == NULL || cJSON_IsNull(obj)) {
        return NGX_VOICE_EL_OK;
    }

    if (!cJSON_IsObject(obj)) {
        return ngx_voice_el_bad(m, "alignment is not an object");
    }

    chars = cJSON_GetObjectItemCaseSensitive(obj, "chars");
    starts = cJSON_GetObjectItemCaseSensitive(obj, "charStartTimesMs");

    /* the spec says charsDurationsMs, the SDKs read charDurationsMs */

    durs = cJSON_GetObjectItemCaseSensitive(obj, "charDurationsMs");

    if (durs == NULL) {
        durs = cJSON_GetObjectItemCaseSensitive(obj, "charsDurationsMs");
    }

    if (!cJSON_IsArray(chars)
        || (starts != NULL && !cJSON_IsArray(starts))
        || (durs != NULL && !cJSON_IsArray(durs)))
    {
        return ngx_voice_el_bad(m, "invalid alignment arrays");
    }

    a->present = 1;

    /* walk the three lists together: cJSON arrays are linked lists */

    s = starts ? starts->child : NULL;
    d = durs ? durs->child : NULL;

    cJSON_ArrayForEach(c, chars) {
        if (!cJSON_IsString(c) || c->valuestring == NULL) {
            return ngx_voice_el_bad(m, "alignment char is not a string");
        }

        start = ngx_voice_el_ms(s);
        dur = ngx_voice_el_ms(d);

        end = (start > UINT32_MAX - dur) ? UINT32_MAX : start + dur;

        if (end > a->end_ms) {
            a->end_ms = end;
        }

        a->text_len += strlen(c->valuestring);

        if (a->n < NGX_VOICE_EL_MAX_CHARS) {
            a->c[a->n].chr = c->valuestring;
            a->c[a->n].start_ms = start;
            a->c[a->n].dur_ms = dur;
            a->n++;

        } else {
            a->truncated = 1;
        }

        a->total++;

        s = s ? s->next : NULL;
        d = d ? d->next : NULL;
    }

    return NGX_VOICE_EL_OK;
}


static uint32_t
ngx_voice_el_ms(cJSON *item)
{
    if (!cJSON_IsNumber(item) || !(item->valuedouble > 0)) {
        return 0;
    }

    if (item->valuedouble >= 4294967295.0) {
        return UINT32_MAX;
    }

    return (uint32_t) item->valuedouble;
}
