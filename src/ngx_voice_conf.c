/*
 * Copyright (C) ngx_voice authors
 *
 * Configuration of the provider legs: secrets, endpoint URLs, the TLS
 * context shared by a location's legs, and the provider requests that
 * never change during a call (built once here, not per call).
 */


#include "ngx_voice.h"
#include "ngx_voice_leg.h"

#include <cjson/cJSON.h>
#include "ngx_voice_deepgram.h"
#include "ngx_voice_elevenlabs.h"
#include "ngx_voice_tts.h"
#include "ngx_voice_http_client.h"
#include "ngx_voice_tools.h"
#include "ngx_voice_persona.h"
#include "ngx_voice_request.h"


static ngx_int_t ngx_voice_conf_requests(ngx_conf_t *cf,
    ngx_voice_endpoint_t *first, ngx_str_t *query);
static ngx_int_t ngx_voice_conf_ssl(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);
static ngx_int_t ngx_voice_conf_stt(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);
static ngx_int_t ngx_voice_conf_tts(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);
static ngx_int_t ngx_voice_conf_tts_aura(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf, ngx_voice_tts_conf_t *tc);
static ngx_regex_t *ngx_voice_conf_compile(ngx_conf_t *cf,
    ngx_str_t *pattern);
static ngx_int_t ngx_voice_conf_merge_text(ngx_conf_t *cf,
    ngx_http_complex_value_t **cv, ngx_http_complex_value_t *prev,
    char *def);
static ngx_int_t ngx_voice_conf_tts_schedule(ngx_voice_loc_conf_t *conf,
    ngx_voice_tts_conf_t *tc);
static ngx_int_t ngx_voice_conf_llm(ngx_conf_t *cf,
    ngx_voice_loc_conf_t *conf);


/*
 * "uh-huh", "yeah", "okay, sure.": agreement while the other speaks.
 * Words are separated by at least one non-word character, so matching
 * stays linear (no nested repetition that could backtrack).
 */
static ngx_str_t  ngx_voice_backchannels = ngx_string(
    "^\\W*(?:uh[- ]?huh|mm[- ]?hmm|uh|um|ah|oh|m+|hmm+|mhm|yeah|yep|yes"
    "|okay|ok|right|sure|got it|i see|all ?right"
    "|cool)(?:\\W+(?:uh[- ]?huh|mm[- ]?hmm|uh|um|ah|oh|m+|hmm+|mhm|yeah"
    "|yep|yes|okay|ok|right|sure|got it|i see|all ?right|cool))*\\W*$");


#define NGX_VOICE_CA_BUNDLE  "/etc/ssl/certs/ca-certificates.crt"


/*
 * A secret is given as "env:NAME" (read from the master's environment at
 * configuration time), "file:/path" (first line of the file) or inline.
 * The value is never logged, only where it came from.
 */

char *
ngx_voice_conf_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char       *s, *e, *q;
    ssize_t       n;
    ngx_str_t    *field, *value, name;
    ngx_file_t    file;
    u_char        buf[4096];

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len > 4 && ngx_strncmp(value[1].data, "env:", 4) == 0) {
        s = (u_char *) getenv((char *) value[1].data + 4);

        if (s == NULL || *s == '\0') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": environment variable \"%s\" is "
                               "not set or empty", &cmd->name,
                               value[1].data + 4);
            return NGX_CONF_ERROR;
        }

        field->len = ngx_strlen(s);
        field->data = ngx_pstrdup(cf->pool, &(ngx_str_t) { field->len, s });

        return field->data ? NGX_CONF_OK : NGX_CONF_ERROR;
    }

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "file:", 5) == 0) {
        name.data = value[1].data + 5;
        name.len = value[1].len - 5;

        if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&file, sizeof(ngx_file_t));
        file.name = name;
        file.log = cf->log;
        file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

        if (file.fd == NGX_INVALID_FILE) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "\"%V\": cannot open \"%V\"", &cmd->name,
                               &name);
            return NGX_CONF_ERROR;
        }

        n = ngx_read_file(&file, buf, sizeof(buf), 0);
        ngx_close_file(file.fd);

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        s = buf;
        e = buf + n;

        for (q = s; q < e; q++) {
            if (*q == CR || *q == LF) {
                break;
            }
        }

        e = q;

        if (e == s) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%V\" is empty", &cmd->name, &name);
            return NGX_CONF_ERROR;
        }

        field->len = e - s;
        field->data = ngx_pnalloc(cf->pool, field->len);
        if (field->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(field->data, s, field->len);
        ngx_explicit_memzero(buf, sizeof(buf));

        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return "must not be empty";
    }

    *field = value[1];

    return NGX_CONF_OK;
}


/*
 * The tools the LLM may call, as the OpenAI-style JSON array of
 * {"type":"function","function":{name, description, parameters}}, read
 * from a file and checked now, so that a typo fails nginx -t rather than
 * every turn of every call.
 */

/*
 * Reads a configuration side file (JSON of tools, a tool's parameters)
 * whole, NUL-terminated, at most 256k; path is made absolute in place.
 */

ngx_int_t
ngx_voice_conf_read(ngx_conf_t *cf, ngx_str_t *directive, ngx_str_t *path,
    ngx_str_t *out)
{
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *path;
    file.log = cf->log;
    file.fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open \"%V\"", directive, path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 256 * 1024)
    {
        ngx_close_file(file.fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" is not a file of at most 256k",
                           directive, path);
        return NGX_ERROR;
    }

    out->len = (size_t) ngx_file_size(&fi);
    out->data = ngx_pnalloc(cf->pool, out->len + 1);
    if (out->data == NULL) {
        ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, out->data, out->len, 0);
    ngx_close_file(file.fd);

    if (n != (ssize_t) out->len) {
        return NGX_ERROR;
    }

    out->data[out->len] = '\0';

    return NGX_OK;
}


char *
ngx_voice_conf_json_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    cJSON      *root, *item, *fn, *name;
    ngx_str_t  *field, *value, path;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (ngx_voice_conf_read(cf, &cmd->name, &path, field) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    root = cJSON_ParseWithLength((char *) field->data, field->len);

    if (root == NULL || !cJSON_IsArray(root)
        || cJSON_GetArraySize(root) == 0)
    {
        cJSON_Delete(root);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%V\" must hold a JSON array of tools",
                           &cmd->name, &path);
        return NGX_CONF_ERROR;
    }

    cJSON_ArrayForEach(item, root) {
        fn = cJSON_GetObjectItemCaseSensitive(item, "function");
        name = fn ? cJSON_GetObjectItemCaseSensitive(fn, "name") : NULL;

        if (!cJSON_IsString(name) || name->valuestring[0] == '\0') {
            cJSON_Delete(root);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": every tool in \"%V\" needs "
                               "\"function\": {\"name\": ...}",
                               &cmd->name, &path);
            return NGX_CONF_ERROR;
        }
    }

    cJSON_Delete(root);

    return NGX_CONF_OK;
}


/* a provider URL: checked where it is written, used when merged */

char *
ngx_voice_conf_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t                 *field, *value, *url;
    ngx_uint_t                 i;
    ngx_array_t              **backups;
    ngx_voice_endpoint_t       ep;
    ngx_voice_conf_backups_t  *b;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* every URL is checked where it is written */
    for (i = 1; i < cf->args->nelts; i++) {
        ngx_memzero(&ep, sizeof(ngx_voice_endpoint_t));

        if (ngx_voice_endpoint_parse(cf, &ep, &value[i],
                                     (char *) cmd->name.data)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    *field = value[1];

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    /* the others are tried in turn when the first fails */
    b = cmd->post;
    backups = (ngx_array_t **) (p + b->offset);

    *backups = ngx_array_create(cf->pool, cf->args->nelts - 2,
                                sizeof(ngx_str_t));
    if (*backups == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        url = ngx_array_push(*backups);
        if (url == NULL) {
            return NGX_CONF_ERROR;
        }

        *url = value[i];
    }

    return NGX_CONF_OK;
}


/*
 * The provider's endpoints, the first then the failover ones, linked in
 * a ring through ->next (NULL when there is only one), each with its own
 * request target built by the caller.
 */

ngx_voice_endpoint_t *
ngx_voice_conf_endpoints(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf,
    ngx_str_t *url, ngx_array_t *backups, const char *provider,
    ngx_str_t *ssl_name)
{
    ngx_str_t             *urls;
    ngx_uint_t             i, n;
    ngx_voice_endpoint_t  *ep, *first, *prev;

    n = backups ? backups->nelts : 0;
    urls = backups ? backups->elts : NULL;
    first = NULL;
    prev = NULL;

    for (i = 0; i <= n; i++) {
        ep = ngx_pcalloc(cf->pool, sizeof(ngx_voice_endpoint_t));
        if (ep == NULL) {
            return NULL;
        }

        if (ngx_voice_endpoint_parse(cf, ep, i ? &urls[i - 1] : url,
                                     provider)
            != NGX_CONF_OK
            || ngx_voice_endpoint_merge(cf, ep, conf->ssl, ssl_name,
                                        conf->ssl_verify,
                                        conf->connect_timeout,
                                        conf->provider_timeout)
               != NGX_CONF_OK)
        {
            return NULL;
        }

        ep->request = ep->uri;

        if (prev) {
            prev->next = ep;

        } else {
            first = ep;
        }

        ep->first = first;
        prev = ep;
    }

    if (n) {
        prev->next = first;
    }

    return first;
}


/* "voice_llm_keepalive off | connections [idle_time]" */

char *
ngx_voice_conf_keepalive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_msec_t   t;

    if (vlcf->llm_keepalive != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        vlcf->llm_keepalive = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);

    if (n == NGX_ERROR || n > 64) {
        return "takes \"off\" or a number of connections up to 64";
    }

    vlcf->llm_keepalive = n;

    if (cf->args->nelts == 3) {
        t = ngx_parse_time(&value[2], 0);

        if (t == (ngx_msec_t) NGX_ERROR || t == 0) {
            return "has an invalid idle time";
        }

        vlcf->llm_keepalive_timeout = t;
    }

    return NGX_CONF_OK;
}


void
ngx_voice_conf_init_providers(ngx_voice_loc_conf_t *conf)
{
    conf->llm_max_tokens = NGX_CONF_UNSET_UINT;
    conf->llm_timeout = NGX_CONF_UNSET_MSEC;
    conf->llm_keepalive = NGX_CONF_UNSET_UINT;
    conf->llm_keepalive_timeout = NGX_CONF_UNSET_MSEC;
    conf->tts_provider = NGX_CONF_UNSET_UINT;
    conf->tts_multi = NGX_CONF_UNSET;
    conf->endpointing = NGX_CONF_UNSET_MSEC;
    conf->utterance_end = NGX_CONF_UNSET_MSEC;
    conf->stt_smart_format = NGX_CONF_UNSET;
    conf->stt_keyterms = NGX_CONF_UNSET_PTR;
    conf->stt_keepalive = NGX_CONF_UNSET_MSEC;
    conf->stt_buffer = NGX_CONF_UNSET_SIZE;
    conf->ssl_verify = NGX_CONF_UNSET;
    conf->ssl_protocols = 0;
    conf->connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->provider_timeout = NGX_CONF_UNSET_MSEC;

    conf->greeting_interruptible = NGX_CONF_UNSET;
    conf->barge_in = NGX_CONF_UNSET;
    conf->barge_in_min_words = NGX_CONF_UNSET_UINT;
    conf->backchannel = NGX_CONF_UNSET_PTR;
    conf->tts_schedule = NGX_CONF_UNSET_PTR;
    conf->tts_chunking = NGX_CONF_UNSET_UINT;
    conf->stt_finalize = NGX_CONF_UNSET_MSEC;
    conf->dtmf = NGX_CONF_UNSET;
    conf->dtmf_timeout = NGX_CONF_UNSET_MSEC;
    conf->idle_reprompt = NGX_CONF_UNSET_MSEC;
    conf->idle_reprompts = NGX_CONF_UNSET_UINT;
    conf->max_duration = NGX_CONF_UNSET_MSEC;
    conf->end_call = NGX_CONF_UNSET;
    conf->tools = NGX_CONF_UNSET_PTR;
    conf->transfer_numbers = NGX_CONF_UNSET_PTR;
    conf->persona_timeout = NGX_CONF_UNSET_MSEC;
    conf->hangup_phrase = NGX_CONF_UNSET_PTR;
}


/*
 * "voice_tts_chunk_schedule 50 120 160 250": how many characters
 * ElevenLabs buffers before each generation; a low first value is what
 * makes the first audio of a reply come early.
 */

char *
ngx_voice_conf_schedule(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i, *v;

    if (vlcf->tts_schedule != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts - 1 > 8) {
        return "takes at most 8 values";
    }

    vlcf->tts_schedule = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_uint_t));
    if (vlcf->tts_schedule == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);

        if (n < 50 || n > 500) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\": each must be "
                               "50 to 500 characters", &value[i]);
            return NGX_CONF_ERROR;
        }

        v = ngx_array_push(vlcf->tts_schedule);
        *v = (ngx_uint_t) n;
    }

    return NGX_CONF_OK;
}


/*
 * "voice_backchannel regex | off": compiled once with PCRE2 through
 * ngx_regex, caseless; a transcript it matches in full is a backchannel.
 */

char *
ngx_voice_conf_regex(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    ngx_str_t     *value;
    ngx_regex_t  **re;

    re = (ngx_regex_t **) (p + cmd->offset);

    if (*re != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        *re = NULL;
        return NGX_CONF_OK;
    }

    *re = ngx_voice_conf_compile(cf, &value[1]);

    return *re ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ngx_regex_t *
ngx_voice_conf_compile(ngx_conf_t *cf, ngx_str_t *pattern)
{
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_compile_t  rc;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = *pattern;
    rc.pool = cf->pool;
    rc.options = NGX_REGEX_CASELESS;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NULL;
    }

    return rc.regex;
}


/* a text directive's value for this call (variables evaluated) */

ngx_int_t
ngx_voice_conf_text(ngx_voice_call_t *call, ngx_http_complex_value_t *cv,
    ngx_str_t *text)
{
    if (cv == NULL) {
        ngx_str_null(text);
        return NGX_OK;
    }

    return ngx_http_complex_value(call->request, cv, text);
}


/* an unset text directive gets a constant default */

static ngx_int_t
ngx_voice_conf_merge_text(ngx_conf_t *cf, ngx_http_complex_value_t **cv,
    ngx_http_complex_value_t *prev, char *def)
{
    ngx_http_complex_value_t  *v;

    if (*cv) {
        return NGX_OK;
    }

    if (prev || def == NULL) {
        *cv = prev;
        return NGX_OK;
    }

    v = ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (v == NULL) {
        return NGX_ERROR;
    }

    v->value.data = (u_char *) def;
    v->value.len = ngx_strlen(def);

    *cv = v;

    return NGX_OK;
}


char *
ngx_voice_conf_merge_providers(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf)
{
    if (conf->stt_url.data == NULL) {
        conf->stt_backups = prev->stt_backups;
    }

    if (conf->llm_url.data == NULL) {
        conf->llm_backups = prev->llm_backups;
    }

    if (conf->tts_url.data == NULL) {
        conf->tts_backups = prev->tts_backups;
    }

    ngx_conf_merge_str_value(conf->stt_url, prev->stt_url,
                             "wss://api.deepgram.com/v1/listen");
    ngx_conf_merge_str_value(conf->stt_key, prev->stt_key, "");
    ngx_conf_merge_str_value(conf->stt_model, prev->stt_model, "nova-3");
    ngx_conf_merge_str_value(conf->stt_language, prev->stt_language,
                             "en-US");
    ngx_conf_merge_str_value(conf->stt_ssl_name, prev->stt_ssl_name, "");

    /* the pause that ends a turn, and the fallback when noise lingers */
    ngx_conf_merge_msec_value(conf->endpointing, prev->endpointing, 300);
    ngx_conf_merge_msec_value(conf->utterance_end, prev->utterance_end,
                              1000);
    ngx_conf_merge_value(conf->stt_smart_format, prev->stt_smart_format, 1);
    ngx_conf_merge_ptr_value(conf->stt_keyterms, prev->stt_keyterms, NULL);

    /* Deepgram closes a stream after 10 s without a frame */
    ngx_conf_merge_msec_value(conf->stt_keepalive, prev->stt_keepalive,
                              4000);

    /*
     * 3 s of caller audio: what a reconnect replays (final results trail
     * the audio by well under that); 24 KiB a call
     */
    ngx_conf_merge_size_value(conf->stt_buffer, prev->stt_buffer,
                              3 * 8000);

    ngx_conf_merge_str_value(conf->llm_url, prev->llm_url,
                             "https://api.cerebras.ai/v1/chat/completions");
    ngx_conf_merge_str_value(conf->llm_key, prev->llm_key, "");
    ngx_conf_merge_str_value(conf->llm_model, prev->llm_model,
                             "gpt-oss-120b");
    ngx_conf_merge_uint_value(conf->llm_max_tokens, prev->llm_max_tokens,
                              256);
    ngx_conf_merge_str_value(conf->llm_temperature_text,
                             prev->llm_temperature_text, "");
    ngx_conf_merge_msec_value(conf->llm_timeout, prev->llm_timeout, 5000);
    ngx_conf_merge_str_value(conf->llm_ssl_name, prev->llm_ssl_name, "");
    ngx_conf_merge_str_value(conf->llm_tools, prev->llm_tools, "");

    if (ngx_voice_conf_merge_text(cf, &conf->system_prompt,
                                  prev->system_prompt,
                                  "You are a helpful phone agent. Answer in "
                                  "one or two short sentences.")
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* a turn should find a warm connection; providers keep ~60 s */
    ngx_conf_merge_uint_value(conf->llm_keepalive, prev->llm_keepalive, 4);
    ngx_conf_merge_msec_value(conf->llm_keepalive_timeout,
                              prev->llm_keepalive_timeout, 50000);

    conf->llm_temperature = -1;

    if (conf->llm_temperature_text.len) {
        conf->llm_temperature = ngx_atofp(conf->llm_temperature_text.data,
                                          conf->llm_temperature_text.len, 2);

        if (conf->llm_temperature == NGX_ERROR
            || conf->llm_temperature > 200)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid voice_llm_temperature \"%V\": "
                               "must be 0 to 2, at most two decimals",
                               &conf->llm_temperature_text);
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_value(conf->ssl_verify, prev->ssl_verify, 1);
    ngx_conf_merge_str_value(conf->ssl_trusted_certificate,
                             prev->ssl_trusted_certificate, "");
    ngx_conf_merge_bitmask_value(conf->ssl_protocols, prev->ssl_protocols,
                                 (NGX_CONF_BITMASK_SET
                                  |NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3));
    ngx_conf_merge_str_value(conf->ssl_ciphers, prev->ssl_ciphers,
                             "DEFAULT");

    ngx_conf_merge_msec_value(conf->connect_timeout, prev->connect_timeout,
                              5000);
    ngx_conf_merge_msec_value(conf->provider_timeout,
                              prev->provider_timeout, 10000);

    /* the URL and model defaults are the provider's: see conf_tts */
    ngx_conf_merge_uint_value(conf->tts_provider, prev->tts_provider,
                              NGX_VOICE_TTS_ELEVENLABS);
    ngx_conf_merge_str_value(conf->tts_url, prev->tts_url, "");
    ngx_conf_merge_str_value(conf->tts_key, prev->tts_key, "");
    ngx_conf_merge_str_value(conf->tts_voice, prev->tts_voice, "");
    ngx_conf_merge_str_value(conf->tts_model, prev->tts_model, "");
    ngx_conf_merge_str_value(conf->tts_ssl_name, prev->tts_ssl_name, "");
    ngx_conf_merge_value(conf->tts_multi, prev->tts_multi, 1);
    ngx_conf_merge_ptr_value(conf->tts_schedule, prev->tts_schedule, NULL);
    if (ngx_voice_conf_merge_text(cf, &conf->greeting, prev->greeting,
                                  NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->greeting_interruptible,
                         prev->greeting_interruptible, 1);
    ngx_conf_merge_value(conf->barge_in, prev->barge_in, 1);
    ngx_conf_merge_uint_value(conf->barge_in_min_words,
                              prev->barge_in_min_words, 1);
    ngx_conf_merge_uint_value(conf->tts_chunking, prev->tts_chunking,
                              NGX_VOICE_CHUNK_WORD);
    ngx_conf_merge_str_value(conf->llm_apology, prev->llm_apology,
                             "Sorry, I'm having trouble answering right "
                             "now. Could you say that again?");
    ngx_conf_merge_msec_value(conf->stt_finalize, prev->stt_finalize, 0);
    ngx_conf_merge_str_value(conf->call_record, prev->call_record, "");

    if (conf->call_record.len
        && ngx_conf_full_name(cf->cycle, &conf->call_record, 0) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_value(conf->dtmf, prev->dtmf, 1);
    ngx_conf_merge_msec_value(conf->dtmf_timeout, prev->dtmf_timeout, 2000);
    ngx_conf_merge_msec_value(conf->idle_reprompt, prev->idle_reprompt, 0);
    ngx_conf_merge_uint_value(conf->idle_reprompts, prev->idle_reprompts, 2);
    ngx_conf_merge_str_value(conf->reprompt, prev->reprompt,
                             "Are you still there?");
    ngx_conf_merge_str_value(conf->goodbye, prev->goodbye,
                             "Thank you for calling. Goodbye.");
    ngx_conf_merge_msec_value(conf->max_duration, prev->max_duration, 0);
    ngx_conf_merge_value(conf->end_call, prev->end_call, 0);
    ngx_conf_merge_ptr_value(conf->hangup_phrase, prev->hangup_phrase, NULL);

    ngx_conf_merge_str_value(conf->persona_url, prev->persona_url, "");
    ngx_conf_merge_msec_value(conf->persona_timeout, prev->persona_timeout,
                              2000);

    /* where the agent runs, the tools the LLM is offered */
    if (ngx_voice_tools_merge(cf, prev, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->backchannel == NGX_CONF_UNSET_PTR) {
        conf->backchannel = prev->backchannel;
    }

    if (conf->backchannel == NGX_CONF_UNSET_PTR) {
        /* what a listener says to keep the speaker going */
        conf->backchannel = ngx_voice_conf_compile(cf,
                                               &ngx_voice_backchannels);
        if (conf->backchannel == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->mode == NULL
        || !(conf->mode->needs & (NGX_VOICE_NEEDS_STT|NGX_VOICE_NEEDS_TTS)))
    {
        return NGX_CONF_OK;
    }

    if (ngx_voice_conf_ssl(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if ((conf->mode->needs & NGX_VOICE_NEEDS_TTS)
        && ngx_voice_conf_tts(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!(conf->mode->needs & NGX_VOICE_NEEDS_STT)) {
        return NGX_CONF_OK;
    }

    if (ngx_voice_conf_stt(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if ((conf->mode->needs & NGX_VOICE_NEEDS_LLM) && conf->llm_key.len == 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "voice_pipeline \"%V\" needs \"voice_llm_key\"",
                      &conf->mode->name);
        return NGX_CONF_ERROR;
    }

    /* the LLM is used where a key is given */
    if (conf->llm_key.len && ngx_voice_conf_llm(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->mode == &ngx_voice_agent_mode
        && (ngx_voice_tools_connect(cf, conf) != NGX_OK
            || ngx_voice_persona_connect(cf, conf) != NGX_OK
            || ngx_voice_request_connect(cf, conf) != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* each endpoint's request target: its own path, the provider's query */

static ngx_int_t
ngx_voice_conf_requests(ngx_conf_t *cf, ngx_voice_endpoint_t *first,
    ngx_str_t *query)
{
    u_char                *p;
    ngx_voice_endpoint_t  *ep;

    ep = first;

    do {
        p = ngx_pnalloc(cf->pool, ep->uri.len + 1 + query->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ep->request.data = p;

        p = ngx_cpymem(p, ep->uri.data, ep->uri.len);
        *p++ = ngx_strlchr(ep->uri.data, ep->uri.data + ep->uri.len, '?')
               ? '&' : '?';
        p = ngx_cpymem(p, query->data, query->len);

        ep->request.len = p - ep->request.data;
        ep = ep->next;

    } while (ep && ep != first);

    return NGX_OK;
}


/* one TLS client context per location that talks to providers */

static ngx_int_t
ngx_voice_conf_ssl(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_str_t            bundle;
    ngx_pool_cleanup_t  *cln;

    conf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (conf->ssl == NULL) {
        return NGX_ERROR;
    }

    conf->ssl->log = cf->log;

    if (ngx_ssl_create(conf->ssl, conf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(conf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = conf->ssl;

    if (ngx_ssl_ciphers(cf, conf->ssl, &conf->ssl_ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (conf->ssl_verify) {
        /* never verify against nothing: the system's CAs by default */
        if (conf->ssl_trusted_certificate.len) {
            bundle = conf->ssl_trusted_certificate;

        } else {
            ngx_str_set(&bundle, NGX_VOICE_CA_BUNDLE);
        }

        if (ngx_ssl_trusted_certificate(cf, conf->ssl, &bundle, 4)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_ssl_client_session_cache(cf, conf->ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The Deepgram leg: the endpoint, its fixed query and the Authorization
 * field.  A missing key fails nginx -t; the key is never logged.
 */

static ngx_int_t
ngx_voice_conf_stt(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_str_t              *kt, query;
    ngx_uint_t              i;
    ngx_voice_text_t       *terms;
    ngx_voice_dg_listen_t   q;

    if (conf->stt_key.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "voice_pipeline \"%V\" needs \"voice_stt_key\"",
                      &conf->mode->name);
        return NGX_ERROR;
    }

    conf->stt = ngx_voice_conf_endpoints(cf, conf, &conf->stt_url,
                                         conf->stt_backups, "deepgram",
                                         &conf->stt_ssl_name);
    if (conf->stt == NULL) {
        return NGX_ERROR;
    }

    /* μ-law 8 kHz straight from Twilio; interim results for barge-in */
    ngx_memzero(&q, sizeof(ngx_voice_dg_listen_t));

    q.model.data = (char *) conf->stt_model.data;
    q.model.len = conf->stt_model.len;
    q.language.data = (char *) conf->stt_language.data;
    q.language.len = conf->stt_language.len;
    q.interim_results = NGX_VOICE_DG_TRUE;
    q.endpointing = (int) conf->endpointing;
    q.utterance_end_ms = (unsigned) conf->utterance_end;
    q.vad_events = NGX_VOICE_DG_TRUE;
    q.smart_format = conf->stt_smart_format ? NGX_VOICE_DG_TRUE
                                            : NGX_VOICE_DG_FALSE;

    if (conf->stt_keyterms) {
        kt = conf->stt_keyterms->elts;

        terms = ngx_palloc(cf->pool, conf->stt_keyterms->nelts
                                     * sizeof(ngx_voice_text_t));
        if (terms == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < conf->stt_keyterms->nelts; i++) {
            terms[i].data = (char *) kt[i].data;
            terms[i].len = kt[i].len;
        }

        q.keyterms = terms;
        q.nkeyterms = conf->stt_keyterms->nelts;
    }

    query.len = ngx_voice_dg_listen_query(NULL, &q);
    query.data = ngx_pnalloc(cf->pool, query.len);

    if (query.len == 0 || query.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_voice_dg_listen_query(query.data, &q);

    if (ngx_voice_conf_requests(cf, conf->stt, &query) != NGX_OK) {
        return NGX_ERROR;
    }

    conf->stt_uri = ((ngx_voice_endpoint_t *) conf->stt)->request;

    conf->stt_auth.len = sizeof("Token ") - 1 + conf->stt_key.len;
    conf->stt_auth.data = ngx_pnalloc(cf->pool, conf->stt_auth.len);
    if (conf->stt_auth.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(conf->stt_auth.data, "Token %V", &conf->stt_key);

    return NGX_OK;
}


/*
 * The text-to-speech leg, by provider.  ElevenLabs: the endpoint, the
 * stream-input path with the voice, model and ulaw_8000 (Twilio's own
 * format: no transcoding), the key.  Deepgram Aura: see conf_tts_aura.
 */

static ngx_int_t
ngx_voice_conf_tts(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    size_t                 len;
    ngx_str_t              url, model;
    ngx_voice_el_url_t     u;
    ngx_voice_endpoint_t  *ep;
    ngx_voice_tts_conf_t  *tc;

    if (conf->tts_provider == NGX_VOICE_TTS_AURA) {
        if (conf->tts_key.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "voice_pipeline \"%V\" needs \"voice_tts_key\"",
                          &conf->mode->name);
            return NGX_ERROR;
        }

    } else if (conf->tts_key.len == 0 || conf->tts_voice.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "voice_pipeline \"%V\" needs \"voice_tts_key\" and "
                      "\"voice_tts_voice\"", &conf->mode->name);
        return NGX_ERROR;
    }

    if (conf->mode == &ngx_voice_announce_mode && conf->greeting == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "voice_pipeline \"announce\" needs \"voice_greeting\"");
        return NGX_ERROR;
    }

    tc = ngx_pcalloc(cf->pool, sizeof(ngx_voice_tts_conf_t));
    if (tc == NULL) {
        return NGX_ERROR;
    }

    tc->vendor = conf->tts_provider;

    if (tc->vendor == NGX_VOICE_TTS_AURA) {
        if (ngx_voice_conf_tts_aura(cf, conf, tc) != NGX_OK) {
            return NGX_ERROR;
        }

        conf->tts = tc;

        return NGX_OK;
    }

    url = conf->tts_url;

    if (url.len == 0) {
        ngx_str_set(&url, "wss://api.elevenlabs.io");
    }

    model = conf->tts_model;

    if (model.len == 0) {
        ngx_str_set(&model, "eleven_flash_v2_5");
    }

    tc->ep = ngx_voice_conf_endpoints(cf, conf, &url, conf->tts_backups,
                                      "elevenlabs", &conf->tts_ssl_name);
    if (tc->ep == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_voice_el_url_t));

    u.voice_id.data = (char *) conf->tts_voice.data;
    u.voice_id.len = conf->tts_voice.len;
    u.multi = conf->tts_multi ? 1 : 0;
    u.model_id.data = (char *) model.data;
    u.model_id.len = model.len;

    /* the longest ElevenLabs allows: quiet calls keep their socket */
    u.inactivity_timeout = 180;

    len = ngx_voice_el_path(NULL, &u);

    tc->uri.data = ngx_pnalloc(cf->pool, len);
    if (len == 0 || tc->uri.data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid \"voice_tts_voice\" \"%V\"", &conf->tts_voice);
        return NGX_ERROR;
    }

    tc->uri.len = ngx_voice_el_path(tc->uri.data, &u);

    /* the same voice path on every endpoint */
    ep = tc->ep;

    do {
        ep->request = tc->uri;
        ep = ep->next;

    } while (ep && ep != tc->ep);

    tc->key = conf->tts_key;
    tc->multi = conf->tts_multi;

    if (ngx_voice_conf_tts_schedule(conf, tc) != NGX_OK) {
        return NGX_ERROR;
    }

    conf->tts = tc;

    return NGX_OK;
}


/*
 * The Deepgram Aura leg: the endpoint (/v1/speak), its fixed query with
 * the model and mulaw 8000 (Twilio's own format, raw on the socket), and
 * the Authorization field.  The key is never logged.
 */

static ngx_int_t
ngx_voice_conf_tts_aura(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf,
    ngx_voice_tts_conf_t *tc)
{
    ngx_str_t              url, model, query;
    ngx_voice_dg_speak_t   q;

    url = conf->tts_url;

    if (url.len == 0) {
        ngx_str_set(&url, "wss://api.deepgram.com/v1/speak");
    }

    model = conf->tts_model;

    if (model.len == 0) {
        ngx_str_set(&model, "aura-2-thalia-en");
    }

    tc->ep = ngx_voice_conf_endpoints(cf, conf, &url, conf->tts_backups,
                                      "aura", &conf->tts_ssl_name);
    if (tc->ep == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&q, sizeof(ngx_voice_dg_speak_t));

    q.model.data = (char *) model.data;
    q.model.len = model.len;
    q.encoding.data = "mulaw";
    q.encoding.len = sizeof("mulaw") - 1;
    q.sample_rate = 8000;

    query.len = ngx_voice_dg_speak_query(NULL, &q);
    query.data = ngx_pnalloc(cf->pool, query.len);

    if (query.len == 0 || query.data == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_voice_dg_speak_query(query.data, &q);

    if (ngx_voice_conf_requests(cf, tc->ep, &query) != NGX_OK) {
        return NGX_ERROR;
    }

    tc->uri = tc->ep->request;

    tc->key.len = sizeof("Token ") - 1 + conf->tts_key.len;
    tc->key.data = ngx_pnalloc(cf->pool, tc->key.len);
    if (tc->key.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(tc->key.data, "Token %V", &conf->tts_key);

    return NGX_OK;
}


/*
 * The LLM leg: the endpoint, its keep-alive pool (each worker's own after
 * fork) and the Authorization field.  The key is never logged.
 */

static ngx_int_t
ngx_voice_conf_llm(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_voice_endpoint_t  *first;

    first = ngx_voice_conf_endpoints(cf, conf, &conf->llm_url,
                                     conf->llm_backups, "llm",
                                     &conf->llm_ssl_name);
    if (first == NULL) {
        return NGX_ERROR;
    }

    /* a keep-alive pool per endpoint, in the same failover ring */
    conf->llm = ngx_voice_hc_pools(cf, first, conf->llm_keepalive,
                                   conf->llm_keepalive_timeout);
    if (conf->llm == NULL) {
        return NGX_ERROR;
    }

    conf->llm_auth.len = sizeof("Bearer ") - 1 + conf->llm_key.len;
    conf->llm_auth.data = ngx_pnalloc(cf->pool, conf->llm_auth.len);
    if (conf->llm_auth.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(conf->llm_auth.data, "Bearer %V", &conf->llm_key);

    return NGX_OK;
}


/*
 * ElevenLabs waits for 120 characters by default before it speaks:
 * 50 first (its minimum) brings a reply's first audio ~70 ms of LLM
 * tokens earlier; the later values keep the prosody of longer chunks.
 */

static ngx_int_t
ngx_voice_conf_tts_schedule(ngx_voice_loc_conf_t *conf,
    ngx_voice_tts_conf_t *tc)
{
    ngx_uint_t  i, *v;

    static unsigned  def[] = { 50, 120, 160, 250 };

    if (conf->tts_schedule == NULL) {
        ngx_memcpy(tc->schedule, def, sizeof(def));
        tc->nschedule = sizeof(def) / sizeof(def[0]);
        return NGX_OK;
    }

    v = conf->tts_schedule->elts;

    for (i = 0; i < conf->tts_schedule->nelts; i++) {
        tc->schedule[i] = (unsigned) v[i];
    }

    tc->nschedule = conf->tts_schedule->nelts;

    return NGX_OK;
}
