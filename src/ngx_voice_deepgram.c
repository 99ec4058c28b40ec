/*
 * Copyright (C) ngx_voice authors
 */


#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_deepgram.h"


static int ngx_voice_dg_bad(ngx_voice_dg_msg_t *m, const char *error);
static int ngx_voice_dg_results(ngx_voice_dg_msg_t *m, cJSON *root);


size_t
ngx_voice_dg_listen_query(unsigned char *dst, const ngx_voice_dg_listen_t *o)
{
    size_t            i;
    ngx_voice_out_t   out;
    ngx_voice_text_t  enc;

    if (o->extra.data != NULL
        && !ngx_voice_query_safe((const unsigned char *) o->extra.data,
                                 o->extra.len))
    {
        return 0;
    }

    out.p = dst;
    out.len = 0;

    enc = o->encoding;

    if (enc.data == NULL) {
        enc.data = "mulaw";
        enc.len = 5;
    }

    ngx_voice_out_lit(&out, "encoding=");
    ngx_voice_out_url(&out, (const unsigned char *) enc.data, enc.len);
    ngx_voice_out_quint(&out, "sample_rate",
                      o->sample_rate ? o->sample_rate : 8000);
    ngx_voice_out_quint(&out, "channels", o->channels ? o->channels : 1);
    ngx_voice_out_qparam(&out, "model", &o->model);
    ngx_voice_out_qparam(&out, "language", &o->language);
    ngx_voice_out_qbool(&out, "interim_results", o->interim_results);

    if (o->endpointing > 0) {
        ngx_voice_out_quint(&out, "endpointing", (uint64_t) o->endpointing);

    } else if (o->endpointing == NGX_VOICE_DG_ENDPOINTING_OFF) {
        ngx_voice_out_qbool(&out, "endpointing", NGX_VOICE_DG_FALSE);
    }

    if (o->utterance_end_ms) {
        ngx_voice_out_quint(&out, "utterance_end_ms", o->utterance_end_ms);
    }

    ngx_voice_out_qbool(&out, "vad_events", o->vad_events);
    ngx_voice_out_qbool(&out, "smart_format", o->smart_format);
    ngx_voice_out_qbool(&out, "punctuate", o->punctuate);

    for (i = 0; i < o->nkeyterms; i++) {
        ngx_voice_out_qparam(&out, "keyterm", &o->keyterms[i]);
    }

    if (o->extra.data != NULL && o->extra.len) {
        ngx_voice_out_lit(&out, "&");
        ngx_voice_out_raw(&out, o->extra.data, o->extra.len);
    }

    return out.len;
}


size_t
ngx_voice_dg_speak_query(unsigned char *dst, const ngx_voice_dg_speak_t *o)
{
    ngx_voice_out_t   out;
    ngx_voice_text_t  enc;

    if (o->extra.data != NULL
        && !ngx_voice_query_safe((const unsigned char *) o->extra.data,
                                 o->extra.len))
    {
        return 0;
    }

    out.p = dst;
    out.len = 0;

    enc = o->encoding;

    if (enc.data == NULL) {
        enc.data = "mulaw";
        enc.len = 5;
    }

    ngx_voice_out_lit(&out, "encoding=");
    ngx_voice_out_url(&out, (const unsigned char *) enc.data, enc.len);
    ngx_voice_out_quint(&out, "sample_rate",
                      o->sample_rate ? o->sample_rate : 8000);
    ngx_voice_out_qparam(&out, "model", &o->model);

    if (o->speed > 0) {
        ngx_voice_out_lit(&out, "&speed=");
        ngx_voice_out_double(&out, o->speed);
    }

    ngx_voice_out_qbool(&out, "mip_opt_out", o->mip_opt_out);

    if (o->extra.data != NULL && o->extra.len) {
        ngx_voice_out_lit(&out, "&");
        ngx_voice_out_raw(&out, o->extra.data, o->extra.len);
    }

    return out.len;
}


size_t
ngx_voice_dg_speak_text(unsigned char *dst, const unsigned char *text,
    size_t len)
{
    ngx_voice_out_t  out;

    out.p = dst;
    out.len = 0;

    ngx_voice_out_lit(&out, "{\"type\":\"Speak\",\"text\":\"");
    ngx_voice_out_json(&out, text, len);
    ngx_voice_out_lit(&out, "\"}");

    return out.len;
}


int
ngx_voice_dg_parse(ngx_voice_dg_msg_t *m, const unsigned char *json,
    size_t len)
{
    double       d;
    cJSON       *root;
    const char  *t;

    memset(m, 0, sizeof(ngx_voice_dg_msg_t));

    m->type_name.data = "";
    m->transcript.data = "";
    m->request_id.data = "";
    m->model_name.data = "";
    m->description.data = "";
    m->code.data = "";
    m->last_word_end = -1;

    root = ngx_voice_json_parse(json, len);

    if (root == NULL) {
        m->error = "malformed JSON";
        return NGX_VOICE_DG_BAD_JSON;
    }

    m->root = root;

    if (!ngx_voice_json_text(root, "type", &m->type_name)) {
        return ngx_voice_dg_bad(m, "missing type");
    }

    t = m->type_name.data;

    if (strcmp(t, "Results") == 0) {
        m->type = NGX_VOICE_DG_RESULTS;
        return ngx_voice_dg_results(m, root);
    }

    if (strcmp(t, "UtteranceEnd") == 0) {
        m->type = NGX_VOICE_DG_UTTERANCE_END;
        ngx_voice_json_number(root, "last_word_end", &m->last_word_end);
        return NGX_VOICE_DG_OK;
    }

    if (strcmp(t, "SpeechStarted") == 0) {
        m->type = NGX_VOICE_DG_SPEECH_STARTED;
        ngx_voice_json_number(root, "timestamp", &m->timestamp);
        return NGX_VOICE_DG_OK;
    }

    if (strcmp(t, "Metadata") == 0) {
        m->type = NGX_VOICE_DG_METADATA;
        ngx_voice_json_text(root, "request_id", &m->request_id);
        ngx_voice_json_text(root, "model_name", &m->model_name);
        ngx_voice_json_number(root, "duration", &m->duration);
        return NGX_VOICE_DG_OK;
    }

    if (strcmp(t, "Flushed") == 0 || strcmp(t, "Cleared") == 0) {
        m->type = (t[0] == 'F') ? NGX_VOICE_DG_FLUSHED
                                : NGX_VOICE_DG_CLEARED;

        if (ngx_voice_json_number(root, "sequence_id", &d)) {
            m->sequence_id = ngx_voice_json_uint(d);
        }

        return NGX_VOICE_DG_OK;
    }

    if (strcmp(t, "Warning") == 0 || strcmp(t, "Error") == 0) {
        m->type = (t[0] == 'W') ? NGX_VOICE_DG_WARNING : NGX_VOICE_DG_ERROR;

        if (!ngx_voice_json_text(root, "description", &m->description)) {
            ngx_voice_json_text(root, "err_msg", &m->description);
        }

        if (!ngx_voice_json_text(root, "code", &m->code)) {
            ngx_voice_json_text(root, "err_code", &m->code);
        }

        return NGX_VOICE_DG_OK;
    }

    m->type = NGX_VOICE_DG_UNKNOWN;

    return NGX_VOICE_DG_OK;
}


void
ngx_voice_dg_done(ngx_voice_dg_msg_t *m)
{
    if (m->root) {
        cJSON_Delete(m->root);
        m->root = NULL;
    }
}


static int
ngx_voice_dg_bad(ngx_voice_dg_msg_t *m, const char *error)
{
    m->error = error;

    return NGX_VOICE_DG_BAD_MESSAGE;
}


static int
ngx_voice_dg_results(ngx_voice_dg_msg_t *m, cJSON *root)
{
    cJSON  *channel, *alts, *alt, *words, *meta, *last;

    m->is_final = ngx_voice_json_true(root, "is_final");
    m->speech_final = ngx_voice_json_true(root, "speech_final");
    m->from_finalize = ngx_voice_json_true(root, "from_finalize");

    ngx_voice_json_number(root, "start", &m->start);
    ngx_voice_json_number(root, "duration", &m->duration);

    meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");

    if (cJSON_IsObject(meta)) {
        ngx_voice_json_text(meta, "request_id", &m->request_id);
    }

    channel = cJSON_GetObjectItemCaseSensitive(root, "channel");

    if (!cJSON_IsObject(channel)) {
        return ngx_voice_dg_bad(m, "Results without channel");
    }

    alts = cJSON_GetObjectItemCaseSensitive(channel, "alternatives");

    if (!cJSON_IsArray(alts)) {
        return ngx_voice_dg_bad(m, "Results without alternatives");
    }

    alt = alts->child;

    if (alt == NULL) {
        return NGX_VOICE_DG_OK;      /* nothing recognized */
    }

    if (!cJSON_IsObject(alt)) {
        return ngx_voice_dg_bad(m, "invalid alternative");
    }

    if (!ngx_voice_json_text(alt, "transcript", &m->transcript)
        && cJSON_GetObjectItemCaseSensitive(alt, "transcript") != NULL)
    {
        return ngx_voice_dg_bad(m, "transcript is not a string");
    }

    ngx_voice_json_number(alt, "confidence", &m->confidence);

    words = cJSON_GetObjectItemCaseSensitive(alt, "words");

    if (cJSON_IsArray(words)) {
        m->words = (size_t) cJSON_GetArraySize(words);

        /* where speech ended: what end-of-turn latency is measured from */
        for (last = words->child; last && last->next; last = last->next) {
            /* void */
        }

        if (cJSON_IsObject(last)) {
            ngx_voice_json_number(last, "end", &m->last_word_end);
        }
    }

    return NGX_VOICE_DG_OK;
}
