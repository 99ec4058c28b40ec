/*
 * Copyright (C) ngx_voice authors
 *
 * The call record (see ngx_voice_record.h).  A cJSON tree grows by one
 * entry per turn (never per frame); at the end it is printed and, when
 * voice_call_record names a directory, written there in one go, as
 * nginx writes its logs.
 */


#include <cjson/cJSON.h>

#include "ngx_voice_record.h"
#include "ngx_voice_zone.h"
#include "ngx_voice_request.h"


#define NGX_VOICE_RECORD_MAX_DEGRADED  64


struct ngx_voice_record_s {
    ngx_voice_call_t         *call;
    ngx_msec_t                t0;             /* "start" */
    ngx_time_t                started;        /* wall clock */
    cJSON                    *root;
    cJSON                    *transcript;
    cJSON                    *turns;
    cJSON                    *degraded;
    cJSON                    *tools;          /* created on the first */
    ngx_uint_t                ndegraded;
};


static void ngx_voice_record_time(cJSON *obj, const char *name,
    time_t sec, ngx_msec_t msec);
static void ngx_voice_record_ms(ngx_voice_record_t *rec, cJSON *obj,
    const char *name, ngx_msec_t t);
static void ngx_voice_record_gap(cJSON *obj, const char *name,
    ngx_msec_t from, ngx_msec_t to);
static cJSON *ngx_voice_record_text(cJSON *obj, const char *name,
    u_char *text, size_t len);
static void ngx_voice_record_write(ngx_voice_record_t *rec, char *json);
static cJSON *ngx_voice_record_entry(ngx_voice_record_t *rec,
    const char *role, ngx_uint_t turn, const char *kind, u_char *text,
    size_t len);


ngx_voice_record_t *
ngx_voice_record_create(ngx_voice_call_t *call)
{
    u_char               name[256];
    ngx_uint_t           i;
    cJSON               *params;
    ngx_keyval_t        *kv;
    ngx_voice_record_t  *rec;

    rec = ngx_pcalloc(call->request->pool, sizeof(ngx_voice_record_t));
    if (rec == NULL) {
        return NULL;
    }

    rec->call = call;
    rec->t0 = ngx_current_msec;
    rec->started = *ngx_timeofday();

    rec->root = cJSON_CreateObject();
    if (rec->root == NULL) {
        return NULL;
    }

    (void) cJSON_AddStringToObject(rec->root, "call_sid",
                                   (char *) call->id_buf);
    (void) cJSON_AddStringToObject(rec->root, "stream_sid",
                                   (char *) call->stream_sid);
    (void) cJSON_AddStringToObject(rec->root, "account_sid",
                                   (char *) call->account_sid);

    params = cJSON_AddObjectToObject(rec->root, "params");
    kv = call->params.elts;

    /* Twilio's parameter names are short; longer ones are skipped */
    for (i = 0; params && i < call->params.nelts; i++) {
        if (kv[i].key.len >= sizeof(name)) {
            continue;
        }

        ngx_memcpy(name, kv[i].key.data, kv[i].key.len);
        name[kv[i].key.len] = '\0';

        (void) ngx_voice_record_text(params, (char *) name, kv[i].value.data,
                                     kv[i].value.len);
    }

    ngx_voice_record_time(rec->root, "started_at", rec->started.sec,
                          rec->started.msec);

    rec->transcript = cJSON_AddArrayToObject(rec->root, "transcript");
    rec->turns = cJSON_AddArrayToObject(rec->root, "turns");
    rec->degraded = cJSON_AddArrayToObject(rec->root, "degradations");

    if (rec->transcript == NULL || rec->turns == NULL
        || rec->degraded == NULL)
    {
        cJSON_Delete(rec->root);
        return NULL;
    }

    return rec;
}


void
ngx_voice_record_user(ngx_voice_record_t *rec, ngx_uint_t turn, u_char *text,
    size_t len, const char *end, ngx_uint_t backchannel, ngx_msec_t when)
{
    cJSON  *e;

    e = ngx_voice_record_entry(rec, "user", turn,
                               backchannel ? "backchannel" : NULL, text, len);
    if (e == NULL) {
        return;
    }

    /* when the words were final: a turn answered later says so too */
    ngx_voice_record_ms(rec, e, "t_ms", when);

    if (end) {
        (void) cJSON_AddStringToObject(e, "end", end);
    }
}


void
ngx_voice_record_bot(ngx_voice_record_t *rec, ngx_uint_t turn,
    const char *kind, u_char *heard, size_t heard_len, u_char *spoken,
    size_t spoken_len, ngx_uint_t interrupted)
{
    cJSON  *e;

    e = ngx_voice_record_entry(rec, "assistant", turn, kind, heard,
                               heard_len);
    if (e == NULL) {
        return;
    }

    (void) ngx_voice_record_text(e, "spoken", spoken, spoken_len);
    (void) cJSON_AddBoolToObject(e, "interrupted", interrupted != 0);
    ngx_voice_record_ms(rec, e, "t_ms", ngx_current_msec);
}


/* a transcript entry: who, which turn, what kind, the text */

static cJSON *
ngx_voice_record_entry(ngx_voice_record_t *rec, const char *role,
    ngx_uint_t turn, const char *kind, u_char *text, size_t len)
{
    cJSON  *e;

    if (rec == NULL) {
        return NULL;
    }

    e = cJSON_CreateObject();
    if (e == NULL) {
        return NULL;
    }

    (void) cJSON_AddStringToObject(e, "role", role);
    (void) cJSON_AddNumberToObject(e, "turn", (double) turn);

    if (kind) {
        (void) cJSON_AddStringToObject(e, "kind", kind);
    }

    (void) ngx_voice_record_text(e, "text", text, len);
    (void) cJSON_AddItemToArray(rec->transcript, e);

    return e;
}


/*
 * A turn's timings into the record and one log line: from the caller's
 * last word to the first sound of the answer, stage by stage.
 */

void
ngx_voice_record_timing(ngx_voice_record_t *rec, ngx_uint_t turn,
    ngx_voice_timing_t *t, ngx_uint_t interrupted)
{
    cJSON       *e, *ms, *lat;
    ngx_msec_t   end;

    if (rec == NULL) {
        return;
    }

    ngx_voice_zone_timing(rec->call, t);

    end = t->first_heard ? t->first_heard : t->first_media;

    ngx_log_error(NGX_LOG_INFO, rec->call->connection->log, 0,
                  "voice: turn %ui timing: endpointing %M ms, LLM first "
                  "token %M ms, TTS first audio %M ms, to Twilio %M ms, "
                  "playout %M ms; end of speech to heard %M ms%s", turn,
                  t->speech_end && t->transcript
                  ? t->transcript - t->speech_end : 0,
                  t->first_token ? t->first_token - t->llm_request : 0,
                  t->first_audio && t->first_text
                  ? t->first_audio - t->first_text : 0,
                  t->first_media ? t->first_media - t->first_audio : 0,
                  t->first_heard && t->first_media
                  ? t->first_heard - t->first_media : 0,
                  end && t->speech_end ? end - t->speech_end : 0,
                  interrupted ? " (interrupted)" : "");

    e = cJSON_CreateObject();
    if (e == NULL) {
        return;
    }

    (void) cJSON_AddNumberToObject(e, "turn", (double) turn);
    (void) cJSON_AddBoolToObject(e, "interrupted", interrupted != 0);

    ms = cJSON_AddObjectToObject(e, "timings_ms");
    lat = cJSON_AddObjectToObject(e, "latency_ms");

    if (ms == NULL || lat == NULL) {
        cJSON_Delete(e);
        return;
    }

    ngx_voice_record_ms(rec, ms, "speech_end", t->speech_end);
    ngx_voice_record_ms(rec, ms, "transcript", t->transcript);
    ngx_voice_record_ms(rec, ms, "llm_request", t->llm_request);
    ngx_voice_record_ms(rec, ms, "first_token", t->first_token);
    ngx_voice_record_ms(rec, ms, "first_text_to_tts", t->first_text);
    ngx_voice_record_ms(rec, ms, "first_audio", t->first_audio);
    ngx_voice_record_ms(rec, ms, "first_media", t->first_media);
    ngx_voice_record_ms(rec, ms, "first_heard", t->first_heard);

    ngx_voice_record_gap(lat, "endpointing", t->speech_end, t->transcript);
    ngx_voice_record_gap(lat, "llm_first_token", t->llm_request,
                         t->first_token);
    ngx_voice_record_gap(lat, "tts_first_audio", t->first_text,
                         t->first_audio);
    ngx_voice_record_gap(lat, "to_twilio", t->first_audio, t->first_media);
    ngx_voice_record_gap(lat, "playout", t->first_media, t->first_heard);
    ngx_voice_record_gap(lat, "total", t->speech_end, end);

    (void) cJSON_AddItemToArray(rec->turns, e);
}


/*
 * A tool call: once, when it is over (or abandoned with the call).  The
 * arguments and the answer go in as JSON when they are JSON.
 */

void
ngx_voice_record_tool(ngx_voice_record_t *rec, ngx_uint_t turn,
    u_char *name, size_t name_len, u_char *id, size_t id_len, u_char *args,
    size_t args_len, const char *outcome, ngx_uint_t status, u_char *result,
    size_t result_len, ngx_msec_t elapsed)
{
    cJSON  *e, *v;

    if (rec == NULL || rec->root == NULL) {
        return;
    }

    if (rec->tools == NULL) {
        rec->tools = cJSON_AddArrayToObject(rec->root, "tool_calls");

        if (rec->tools == NULL) {
            return;
        }
    }

    e = cJSON_CreateObject();
    if (e == NULL) {
        return;
    }

    (void) cJSON_AddNumberToObject(e, "turn", (double) turn);
    (void) ngx_voice_record_text(e, "name", name, name_len);
    (void) ngx_voice_record_text(e, "id", id, id_len);

    v = cJSON_ParseWithLength((char *) args, args_len);

    if (v) {
        cJSON_AddItemToObject(e, "arguments", v);

    } else {
        (void) ngx_voice_record_text(e, "arguments", args, args_len);
    }

    (void) cJSON_AddStringToObject(e, "outcome", outcome);

    if (status) {
        (void) cJSON_AddNumberToObject(e, "status", (double) status);
    }

    v = cJSON_ParseWithLength((char *) result, result_len);

    if (v) {
        cJSON_AddItemToObject(e, "result", v);

    } else {
        (void) ngx_voice_record_text(e, "result", result, result_len);
    }

    (void) cJSON_AddNumberToObject(e, "ms", (double) elapsed);

    (void) cJSON_AddItemToArray(rec->tools, e);
}


/*
 * Where the call's persona came from: the application (and what it
 * set), or the configured defaults and why.
 */

void
ngx_voice_record_persona(ngx_voice_record_t *rec, const char *error,
    ngx_uint_t status, ngx_msec_t elapsed, ngx_uint_t system,
    ngx_uint_t greeting, ngx_str_t *voice, ngx_str_t *model,
    ngx_str_t *language, ngx_str_t *tools)
{
    cJSON  *e, *all, *item, *names, *name;

    if (rec == NULL || rec->root == NULL) {
        return;
    }

    e = cJSON_AddObjectToObject(rec->root, "persona");
    if (e == NULL) {
        return;
    }

    (void) cJSON_AddStringToObject(e, "source",
                                   error ? "defaults" : "application");

    if (error) {
        (void) cJSON_AddStringToObject(e, "error", error);
        ngx_voice_record_degraded(rec, "persona not used: %s", error);
    }

    if (status) {
        (void) cJSON_AddNumberToObject(e, "status", (double) status);
    }

    (void) cJSON_AddNumberToObject(e, "ms", (double) elapsed);

    if (error) {
        return;
    }

    (void) cJSON_AddBoolToObject(e, "system_prompt", system != 0);
    (void) cJSON_AddBoolToObject(e, "greeting", greeting != 0);

    if (voice->len) {
        (void) ngx_voice_record_text(e, "voice", voice->data, voice->len);
    }

    if (model->len) {
        (void) ngx_voice_record_text(e, "model", model->data, model->len);
    }

    if (language->len) {
        (void) ngx_voice_record_text(e, "language", language->data,
                                     language->len);
    }

    if (tools == NULL) {
        return;
    }

    names = cJSON_AddArrayToObject(e, "tools");
    all = cJSON_ParseWithLength((char *) tools->data, tools->len);

    cJSON_ArrayForEach(item, all) {
        name = cJSON_GetObjectItemCaseSensitive(
                   cJSON_GetObjectItemCaseSensitive(item, "function"), "name");

        if (names && cJSON_IsString(name)) {
            (void) cJSON_AddItemToArray(names,
                                        cJSON_CreateString(name->valuestring));
        }
    }

    cJSON_Delete(all);
}


void
ngx_voice_record_degraded(ngx_voice_record_t *rec, const char *fmt, ...)
{
    u_char    buf[NGX_MAX_ERROR_STR], *p;
    cJSON    *e;
    va_list   args;

    if (rec == NULL || rec->ndegraded++ >= NGX_VOICE_RECORD_MAX_DEGRADED) {
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    e = cJSON_CreateObject();
    if (e == NULL) {
        return;
    }

    ngx_voice_record_ms(rec, e, "t_ms", ngx_current_msec);
    (void) ngx_voice_record_text(e, "what", buf, p - buf);

    (void) cJSON_AddItemToArray(rec->degraded, e);
}


void
ngx_voice_record_finish(ngx_voice_record_t *rec, const char *reason,
    ngx_voice_record_counts_t *n)
{
    char        *json;
    cJSON       *c, *u;
    ngx_time_t   now;

    if (rec == NULL || rec->root == NULL) {
        return;
    }

    now = *ngx_timeofday();

    ngx_voice_record_time(rec->root, "ended_at", now.sec, now.msec);
    (void) cJSON_AddNumberToObject(rec->root, "duration_ms",
                                   (double) (ngx_current_msec - rec->t0));
    (void) cJSON_AddStringToObject(rec->root, "end_reason", reason);

    c = cJSON_AddObjectToObject(rec->root, "counts");

    if (c) {
        (void) cJSON_AddNumberToObject(c, "turns", (double) n->turns);
        (void) cJSON_AddNumberToObject(c, "barge_ins",
                                       (double) n->barge_ins);
        (void) cJSON_AddNumberToObject(c, "backchannels",
                                       (double) n->backchannels);
        (void) cJSON_AddNumberToObject(c, "llm_errors",
                                       (double) n->llm_errors);
        (void) cJSON_AddNumberToObject(c, "llm_failovers",
                                       (double) n->llm_failovers);
        (void) cJSON_AddNumberToObject(c, "apologies",
                                       (double) n->apologies);
        (void) cJSON_AddNumberToObject(c, "stt_reconnects",
                                       (double) n->stt_reconnects);
        (void) cJSON_AddNumberToObject(c, "tts_reconnects",
                                       (double) n->tts_reconnects);
        (void) cJSON_AddNumberToObject(c, "tts_resends",
                                       (double) n->tts_resends);
        (void) cJSON_AddNumberToObject(c, "marks_sent",
                                       (double) rec->call->marks_sent);
        (void) cJSON_AddNumberToObject(c, "marks_echoed",
                                       (double) rec->call->marks_echoed);
        (void) cJSON_AddNumberToObject(c, "clears",
                                       (double) rec->call->clears);
        (void) cJSON_AddNumberToObject(c, "dtmf", (double) rec->call->dtmf);
        (void) cJSON_AddNumberToObject(c, "tool_calls",
                                       (double) n->tool_calls);
    }

    u = cJSON_AddObjectToObject(rec->root, "usage");

    if (u) {
        (void) cJSON_AddNumberToObject(u, "llm_requests",
                                       (double) n->llm_requests);
        (void) cJSON_AddNumberToObject(u, "prompt_tokens",
                                       (double) n->prompt_tokens);
        (void) cJSON_AddNumberToObject(u, "completion_tokens",
                                       (double) n->completion_tokens);
    }

    json = NULL;

    /* printed once: the file and the application get the same text */
    if (rec->call->conf->call_record.len || rec->call->conf->events) {
        json = cJSON_PrintUnformatted(rec->root);

        if (json) {
            if (rec->call->conf->call_record.len) {
                ngx_voice_record_write(rec, json);
            }

            /* the job copies it: the call's end does not wait */
            (void) ngx_voice_events_post(rec->call, (u_char *) json,
                                         ngx_strlen(json));
            cJSON_free(json);

        } else {
            ngx_log_error(NGX_LOG_ALERT, rec->call->connection->log, 0,
                          "voice: call record could not be printed");
        }
    }

    cJSON_Delete(rec->root);
    rec->root = NULL;
}


static void
ngx_voice_record_write(ngx_voice_record_t *rec, char *json)
{
    size_t        len;
    u_char       *path, *p;
    ssize_t       n;
    ngx_fd_t      fd;
    ngx_str_t    *dir;
    ngx_log_t    *log;

    dir = &rec->call->conf->call_record;
    log = rec->call->connection->log;

    len = dir->len + 1 + ngx_strlen(rec->call->id_buf) + sizeof(".json");

    path = ngx_pnalloc(rec->call->request->pool, len);
    if (path == NULL) {
        return;
    }

    p = ngx_sprintf(path, "%V/%s.json", dir, rec->call->id_buf);
    *p = '\0';

    fd = ngx_open_file(path, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "voice: call record not written: "
                      ngx_open_file_n " \"%s\" failed", path);
        return;
    }

    len = ngx_strlen(json);
    json[len] = '\n';

    n = ngx_write_fd(fd, json, len + 1);

    json[len] = '\0';

    if (n != (ssize_t) len + 1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "voice: call record \"%s\" incomplete", path);

    } else {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "voice: call record written to \"%s\"", path);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", path);
    }
}


/* ISO 8601 UTC with milliseconds */

static void
ngx_voice_record_time(cJSON *obj, const char *name, time_t sec,
    ngx_msec_t msec)
{
    u_char     buf[sizeof("1970-01-01T00:00:00.000Z")], *p;
    ngx_tm_t   tm;

    ngx_gmtime(sec, &tm);

    p = ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02d.%03MZ",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec, msec);
    *p = '\0';

    (void) cJSON_AddStringToObject(obj, name, (char *) buf);
}


/* a moment as ms since "start", or null when it did not happen */

static void
ngx_voice_record_ms(ngx_voice_record_t *rec, cJSON *obj, const char *name,
    ngx_msec_t t)
{
    if (t == 0) {
        (void) cJSON_AddNullToObject(obj, name);
        return;
    }

    (void) cJSON_AddNumberToObject(obj, name,
                                   (double) (ngx_msec_int_t) (t - rec->t0));
}


static void
ngx_voice_record_gap(cJSON *obj, const char *name, ngx_msec_t from,
    ngx_msec_t to)
{
    if (from == 0 || to == 0) {
        (void) cJSON_AddNullToObject(obj, name);
        return;
    }

    (void) cJSON_AddNumberToObject(obj, name,
                                   (double) (ngx_msec_int_t) (to - from));
}


/* cJSON wants C strings; transcripts are counted ones */

static cJSON *
ngx_voice_record_text(cJSON *obj, const char *name, u_char *text, size_t len)
{
    char   *s;
    cJSON  *item;

    s = cJSON_malloc(len + 1);
    if (s == NULL) {
        return NULL;
    }

    if (len) {
        ngx_memcpy(s, text, len);
    }

    s[len] = '\0';

    item = cJSON_AddStringToObject(obj, name, s);

    cJSON_free(s);

    return item;
}
