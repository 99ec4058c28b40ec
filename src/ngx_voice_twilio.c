/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ngx_voice_twilio.h"
#include "ngx_voice_base64.h"


#define NGX_VOICE_TW_SHA1_LEN      20

#define ngx_voice_tw_lit(s)        s, (sizeof(s) - 1)


static int ngx_voice_tw_bad(ngx_voice_tw_msg_t *m, const char *error);
static void ngx_voice_tw_set(ngx_voice_tw_str_t *s, const char *p);
static const char *ngx_voice_tw_string(cJSON *obj, const char *name);
static int ngx_voice_tw_decimal(const char *s, uint64_t *value);
static int ngx_voice_tw_sequence(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_stream_sid(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_start(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_media_format(ngx_voice_tw_msg_t *m, cJSON *start);
static int ngx_voice_tw_params(ngx_voice_tw_msg_t *m, cJSON *start);
static int ngx_voice_tw_media_event(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_dtmf(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_mark_event(ngx_voice_tw_msg_t *m, cJSON *root);
static int ngx_voice_tw_stop(ngx_voice_tw_msg_t *m, cJSON *root);
static unsigned char *ngx_voice_tw_cpy(unsigned char *p, const void *s,
    size_t len);
static int ngx_voice_tw_param_cmp(const void *a, const void *b);
static int ngx_voice_tw_str_cmp(const ngx_voice_tw_str_t *a,
    const ngx_voice_tw_str_t *b);


static const char  ngx_voice_tw_media1[] =
    "{\"event\":\"media\",\"streamSid\":\"";
static const char  ngx_voice_tw_media2[] = "\",\"media\":{\"payload\":\"";
static const char  ngx_voice_tw_media3[] = "\"}}";

static const char  ngx_voice_tw_mark1[] =
    "{\"event\":\"mark\",\"streamSid\":\"";
static const char  ngx_voice_tw_mark2[] = "\",\"mark\":{\"name\":\"";
static const char  ngx_voice_tw_mark3[] = "\"}}";

static const char  ngx_voice_tw_clear1[] =
    "{\"event\":\"clear\",\"streamSid\":\"";
static const char  ngx_voice_tw_clear2[] = "\"}";


int
ngx_voice_tw_parse(ngx_voice_tw_msg_t *m, const unsigned char *json,
    size_t len)
{
    cJSON       *root;
    const char  *event, *end;

    memset(m, 0, sizeof(ngx_voice_tw_msg_t));

    ngx_voice_tw_set(&m->event_name, "");
    ngx_voice_tw_set(&m->stream_sid, "");
    ngx_voice_tw_set(&m->account_sid, "");
    ngx_voice_tw_set(&m->call_sid, "");
    ngx_voice_tw_set(&m->encoding, "");
    ngx_voice_tw_set(&m->track, "");
    ngx_voice_tw_set(&m->mark, "");
    ngx_voice_tw_set(&m->protocol, "");
    ngx_voice_tw_set(&m->version, "");

    end = NULL;

    root = cJSON_ParseWithLengthOpts((const char *) json, len, &end, 0);

    if (root == NULL) {
        m->error = "malformed JSON";
        return NGX_VOICE_TW_BAD_JSON;
    }

    m->root = root;

    /* cJSON stops after the value: only whitespace may follow it */

    if (end == NULL) {
        end = (const char *) json + len;
    }

    while (end < (const char *) json + len) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            m->error = "malformed JSON";
            return NGX_VOICE_TW_BAD_JSON;
        }

        end++;
    }

    if (!cJSON_IsObject(root)) {
        m->error = "malformed JSON";
        return NGX_VOICE_TW_BAD_JSON;
    }

    event = ngx_voice_tw_string(root, "event");

    if (event == NULL) {
        return ngx_voice_tw_bad(m, "missing event");
    }

    ngx_voice_tw_set(&m->event_name, event);

    if (strcmp(event, "media") == 0) {
        m->event = NGX_VOICE_TW_MEDIA;
        return ngx_voice_tw_media_event(m, root);
    }

    if (strcmp(event, "start") == 0) {
        m->event = NGX_VOICE_TW_START;
        return ngx_voice_tw_start(m, root);
    }

    if (strcmp(event, "connected") == 0) {
        m->event = NGX_VOICE_TW_CONNECTED;

        if (ngx_voice_tw_sequence(m, root) != NGX_VOICE_TW_OK) {
            return NGX_VOICE_TW_BAD_MESSAGE;
        }

        ngx_voice_tw_set(&m->protocol, ngx_voice_tw_string(root, "protocol"));
        ngx_voice_tw_set(&m->version, ngx_voice_tw_string(root, "version"));

        return NGX_VOICE_TW_OK;
    }

    if (strcmp(event, "dtmf") == 0) {
        m->event = NGX_VOICE_TW_DTMF;
        return ngx_voice_tw_dtmf(m, root);
    }

    if (strcmp(event, "mark") == 0) {
        m->event = NGX_VOICE_TW_MARK;
        return ngx_voice_tw_mark_event(m, root);
    }

    if (strcmp(event, "stop") == 0) {
        m->event = NGX_VOICE_TW_STOP;
        return ngx_voice_tw_stop(m, root);
    }

    /* new events may be added by Twilio: not an error */

    m->event = NGX_VOICE_TW_UNKNOWN;

    return NGX_VOICE_TW_OK;
}


void
ngx_voice_tw_done(ngx_voice_tw_msg_t *m)
{
    if (m->root) {
        cJSON_Delete(m->root);
        m->root = NULL;
    }

    m->audio = NULL;
    m->audio_len = 0;
}


int
ngx_voice_tw_sid_valid(const char *sid, size_t len, const char *prefix)
{
    size_t  i;
    char    c;

    if (len != NGX_VOICE_TW_SID_LEN
        || sid[0] != prefix[0] || sid[1] != prefix[1])
    {
        return 0;
    }

    for (i = 2; i < NGX_VOICE_TW_SID_LEN; i++) {
        c = sid[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
              || (c >= 'A' && c <= 'F')))
        {
            return 0;
        }
    }

    return 1;
}


static int
ngx_voice_tw_bad(ngx_voice_tw_msg_t *m, const char *error)
{
    m->error = error;

    return NGX_VOICE_TW_BAD_MESSAGE;
}


static void
ngx_voice_tw_set(ngx_voice_tw_str_t *s, const char *p)
{
    /* absent strings are "" rather than NULL */

    if (p == NULL) {
        p = "";
    }

    s->data = p;
    s->len = strlen(p);
}


static const char *
ngx_voice_tw_string(cJSON *obj, const char *name)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return NULL;
    }

    return item->valuestring;
}


static int
ngx_voice_tw_decimal(const char *s, uint64_t *value)
{
    uint64_t  v, d;

    if (*s == '\0') {
        return -1;
    }

    v = 0;

    for ( /* void */ ; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }

        d = (uint64_t) (*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }

        v = v * 10 + d;
    }

    *value = v;

    return 0;
}


static int
ngx_voice_tw_sequence(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(root, "sequenceNumber");

    if (item == NULL) {
        return NGX_VOICE_TW_OK;
    }

    /* Twilio sends it as a JSON string holding a decimal number */

    if (!cJSON_IsString(item) || item->valuestring == NULL
        || ngx_voice_tw_decimal(item->valuestring, &m->sequence) != 0)
    {
        return ngx_voice_tw_bad(m, "invalid sequenceNumber");
    }

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_stream_sid(ngx_voice_tw_msg_t *m, cJSON *root)
{
    const char  *sid;

    sid = ngx_voice_tw_string(root, "streamSid");

    if (sid == NULL) {
        return ngx_voice_tw_bad(m, "missing streamSid");
    }

    ngx_voice_tw_set(&m->stream_sid, sid);

    if (!ngx_voice_tw_sid_valid(sid, m->stream_sid.len, "MZ")) {
        return ngx_voice_tw_bad(m, "invalid streamSid");
    }

    return ngx_voice_tw_sequence(m, root);
}


static int
ngx_voice_tw_start(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON       *start, *item;
    const char  *s;

    if (ngx_voice_tw_sequence(m, root) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    start = cJSON_GetObjectItemCaseSensitive(root, "start");

    if (!cJSON_IsObject(start)) {
        return ngx_voice_tw_bad(m, "missing start object");
    }

    s = ngx_voice_tw_string(start, "accountSid");

    if (s == NULL || !ngx_voice_tw_sid_valid(s, strlen(s), "AC")) {
        return ngx_voice_tw_bad(m, "invalid accountSid");
    }

    ngx_voice_tw_set(&m->account_sid, s);

    s = ngx_voice_tw_string(start, "callSid");

    if (s == NULL || !ngx_voice_tw_sid_valid(s, strlen(s), "CA")) {
        return ngx_voice_tw_bad(m, "invalid callSid");
    }

    ngx_voice_tw_set(&m->call_sid, s);

    s = ngx_voice_tw_string(start, "streamSid");

    if (s == NULL || !ngx_voice_tw_sid_valid(s, strlen(s), "MZ")) {
        return ngx_voice_tw_bad(m, "invalid streamSid");
    }

    ngx_voice_tw_set(&m->stream_sid, s);

    item = cJSON_GetObjectItemCaseSensitive(root, "streamSid");

    if (item != NULL) {
        if (!cJSON_IsString(item) || item->valuestring == NULL
            || strcmp(item->valuestring, s) != 0)
        {
            return ngx_voice_tw_bad(m, "streamSid mismatch");
        }
    }

    if (ngx_voice_tw_media_format(m, start) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    return ngx_voice_tw_params(m, start);
}


static int
ngx_voice_tw_media_format(ngx_voice_tw_msg_t *m, cJSON *start)
{
    cJSON       *fmt, *item;
    const char  *s;

    fmt = cJSON_GetObjectItemCaseSensitive(start, "mediaFormat");

    if (!cJSON_IsObject(fmt)) {
        return ngx_voice_tw_bad(m, "missing mediaFormat");
    }

    s = ngx_voice_tw_string(fmt, "encoding");

    if (s == NULL || strcmp(s, "audio/x-mulaw") != 0) {
        return ngx_voice_tw_bad(m, "unsupported mediaFormat: encoding");
    }

    ngx_voice_tw_set(&m->encoding, s);

    item = cJSON_GetObjectItemCaseSensitive(fmt, "sampleRate");

    if (!cJSON_IsNumber(item) || item->valuedouble != 8000.0) {
        return ngx_voice_tw_bad(m, "unsupported mediaFormat: sampleRate");
    }

    item = cJSON_GetObjectItemCaseSensitive(fmt, "channels");

    if (!cJSON_IsNumber(item) || item->valuedouble != 1.0) {
        return ngx_voice_tw_bad(m, "unsupported mediaFormat: channels");
    }

    m->sample_rate = 8000;
    m->channels = 1;

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_params(ngx_voice_tw_msg_t *m, cJSON *start)
{
    cJSON                 *obj, *item;
    ngx_voice_tw_param_t  *p;

    obj = cJSON_GetObjectItemCaseSensitive(start, "customParameters");

    if (obj == NULL) {
        return NGX_VOICE_TW_OK;
    }

    if (!cJSON_IsObject(obj)) {
        return ngx_voice_tw_bad(m, "customParameters is not an object");
    }

    cJSON_ArrayForEach(item, obj) {

        if (!cJSON_IsString(item) || item->valuestring == NULL
            || item->string == NULL)
        {
            return ngx_voice_tw_bad(m, "customParameters value not a string");
        }

        if (m->nparams == NGX_VOICE_TW_MAX_PARAMS) {
            return ngx_voice_tw_bad(m, "too many customParameters");
        }

        p = &m->params[m->nparams++];

        ngx_voice_tw_set(&p->name, item->string);
        ngx_voice_tw_set(&p->value, item->valuestring);
    }

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_media_event(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON   *media, *item;
    char    *payload;
    ssize_t  n;

    if (ngx_voice_tw_stream_sid(m, root) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    media = cJSON_GetObjectItemCaseSensitive(root, "media");

    if (!cJSON_IsObject(media)) {
        return ngx_voice_tw_bad(m, "missing media object");
    }

    /* chunk and timestamp are optional, but decimal strings if present */

    item = cJSON_GetObjectItemCaseSensitive(media, "chunk");

    if (item != NULL
        && (!cJSON_IsString(item) || item->valuestring == NULL
            || ngx_voice_tw_decimal(item->valuestring, &m->chunk) != 0))
    {
        return ngx_voice_tw_bad(m, "invalid media chunk");
    }

    item = cJSON_GetObjectItemCaseSensitive(media, "timestamp");

    if (item != NULL
        && (!cJSON_IsString(item) || item->valuestring == NULL
            || ngx_voice_tw_decimal(item->valuestring, &m->timestamp) != 0))
    {
        return ngx_voice_tw_bad(m, "invalid media timestamp");
    }

    item = cJSON_GetObjectItemCaseSensitive(media, "track");

    if (item != NULL) {
        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            return ngx_voice_tw_bad(m, "invalid media track");
        }

        ngx_voice_tw_set(&m->track, item->valuestring);
    }

    item = cJSON_GetObjectItemCaseSensitive(media, "payload");

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return ngx_voice_tw_bad(m, "missing media payload");
    }

    /* decoded in place: the tree owns the audio until ngx_voice_tw_done() */

    payload = item->valuestring;

    n = ngx_voice_base64_decode((unsigned char *) payload,
                                (unsigned char *) payload, strlen(payload));

    if (n < 0) {
        return ngx_voice_tw_bad(m, "invalid base64 payload");
    }

    m->audio = (const unsigned char *) payload;
    m->audio_len = (size_t) n;

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_dtmf(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON       *dtmf;
    const char  *s;

    if (ngx_voice_tw_stream_sid(m, root) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    dtmf = cJSON_GetObjectItemCaseSensitive(root, "dtmf");

    if (!cJSON_IsObject(dtmf)) {
        return ngx_voice_tw_bad(m, "missing dtmf object");
    }

    s = ngx_voice_tw_string(dtmf, "digit");

    if (s == NULL || s[0] == '\0' || s[1] != '\0'
        || strchr("0123456789*#ABCD", s[0]) == NULL)
    {
        return ngx_voice_tw_bad(m, "invalid dtmf digit");
    }

    m->digit = s[0];

    ngx_voice_tw_set(&m->track, ngx_voice_tw_string(dtmf, "track"));

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_mark_event(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON       *mark;
    const char  *s;

    if (ngx_voice_tw_stream_sid(m, root) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    mark = cJSON_GetObjectItemCaseSensitive(root, "mark");

    if (!cJSON_IsObject(mark)) {
        return ngx_voice_tw_bad(m, "missing mark object");
    }

    s = ngx_voice_tw_string(mark, "name");

    if (s == NULL) {
        return ngx_voice_tw_bad(m, "missing mark name");
    }

    ngx_voice_tw_set(&m->mark, s);

    return NGX_VOICE_TW_OK;
}


static int
ngx_voice_tw_stop(ngx_voice_tw_msg_t *m, cJSON *root)
{
    cJSON  *stop;

    if (ngx_voice_tw_stream_sid(m, root) != NGX_VOICE_TW_OK) {
        return NGX_VOICE_TW_BAD_MESSAGE;
    }

    stop = cJSON_GetObjectItemCaseSensitive(root, "stop");

    if (stop != NULL && !cJSON_IsObject(stop)) {
        return ngx_voice_tw_bad(m, "stop is not an object");
    }

    return NGX_VOICE_TW_OK;
}


static unsigned char *
ngx_voice_tw_cpy(unsigned char *p, const void *s, size_t len)
{
    memcpy(p, s, len);

    return p + len;
}


size_t
ngx_voice_tw_media_len(size_t sid_len, size_t audio_len)
{
    return sizeof(ngx_voice_tw_media1) - 1 + sid_len
           + sizeof(ngx_voice_tw_media2) - 1
           + ngx_voice_base64_encoded_len(audio_len)
           + sizeof(ngx_voice_tw_media3) - 1;
}


size_t
ngx_voice_tw_media(unsigned char *dst, const char *sid, size_t sid_len,
    const unsigned char *audio, size_t audio_len)
{
    unsigned char  *p;

    p = ngx_voice_tw_cpy(dst, ngx_voice_tw_lit(ngx_voice_tw_media1));
    p = ngx_voice_tw_cpy(p, sid, sid_len);
    p = ngx_voice_tw_cpy(p, ngx_voice_tw_lit(ngx_voice_tw_media2));
    p += ngx_voice_base64_encode(p, audio, audio_len);
    p = ngx_voice_tw_cpy(p, ngx_voice_tw_lit(ngx_voice_tw_media3));

    return p - dst;
}


size_t
ngx_voice_tw_mark_len(size_t sid_len, size_t name_len)
{
    return sizeof(ngx_voice_tw_mark1) - 1 + sid_len
           + sizeof(ngx_voice_tw_mark2) - 1 + name_len
           + sizeof(ngx_voice_tw_mark3) - 1;
}


size_t
ngx_voice_tw_mark(unsigned char *dst, const char *sid, size_t sid_len,
    const char *name, size_t name_len)
{
    unsigned char  *p;

    p = ngx_voice_tw_cpy(dst, ngx_voice_tw_lit(ngx_voice_tw_mark1));
    p = ngx_voice_tw_cpy(p, sid, sid_len);
    p = ngx_voice_tw_cpy(p, ngx_voice_tw_lit(ngx_voice_tw_mark2));
    p = ngx_voice_tw_cpy(p, name, name_len);
    p = ngx_voice_tw_cpy(p, ngx_voice_tw_lit(ngx_voice_tw_mark3));

    return p - dst;
}


size_t
ngx_voice_tw_clear_len(size_t sid_len)
{
    return sizeof(ngx_voice_tw_clear1) - 1 + sid_len
           + sizeof(ngx_voice_tw_clear2) - 1;
}


size_t
ngx_voice_tw_clear(unsigned char *dst, const char *sid, size_t sid_len)
{
    unsigned char  *p;

    p = ngx_voice_tw_cpy(dst, ngx_voice_tw_lit(ngx_voice_tw_clear1));
    p = ngx_voice_tw_cpy(p, sid, sid_len);
    p = ngx_voice_tw_cpy(p, ngx_voice_tw_lit(ngx_voice_tw_clear2));

    return p - dst;
}


int
ngx_voice_tw_mark_name_valid(const char *name, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = name[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == ':' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


int
ngx_voice_tw_signature(unsigned char *out, const unsigned char *token,
    size_t token_len, const unsigned char *url, size_t url_len,
    ngx_voice_tw_param_t *params, size_t n)
{
    int            rc;
    size_t         i, md_len;
    EVP_MAC       *mac;
    OSSL_PARAM     ossl[2];
    EVP_MAC_CTX   *ctx;
    unsigned char  md[EVP_MAX_MD_SIZE];

    static char    sha1[] = "SHA1";

    if (n > 1) {
        qsort(params, n, sizeof(ngx_voice_tw_param_t),
              ngx_voice_tw_param_cmp);
    }

    /* streamed: url and parameters are never copied into one buffer */

    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return -1;
    }

    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        EVP_MAC_free(mac);
        return -1;
    }

    ossl[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                               sha1, 0);
    ossl[1] = OSSL_PARAM_construct_end();

    rc = -1;

    /* a NULL key would mean "keep the previous key" */

    if (token == NULL) {
        token = (const unsigned char *) "";
        token_len = 0;
    }

    if (!EVP_MAC_init(ctx, token, token_len, ossl)
        || !EVP_MAC_update(ctx, url, url_len))
    {
        goto done;
    }

    for (i = 0; i < n; i++) {

        /* Twilio appends a repeated name+value pair only once */

        if (i > 0
            && ngx_voice_tw_str_cmp(&params[i].name, &params[i - 1].name)
               == 0
            && ngx_voice_tw_str_cmp(&params[i].value, &params[i - 1].value)
               == 0)
        {
            continue;
        }

        if (!EVP_MAC_update(ctx, (const unsigned char *) params[i].name.data,
                            params[i].name.len)
            || !EVP_MAC_update(ctx,
                               (const unsigned char *) params[i].value.data,
                               params[i].value.len))
        {
            goto done;
        }
    }

    if (!EVP_MAC_final(ctx, md, &md_len, sizeof(md))
        || md_len != NGX_VOICE_TW_SHA1_LEN)
    {
        goto done;
    }

    ngx_voice_base64_encode(out, md, md_len);

    rc = 0;

done:

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);

    return rc;
}


int
ngx_voice_tw_signature_ok(const unsigned char *expected,
    const unsigned char *got, size_t got_len)
{
    if (got_len != NGX_VOICE_TW_SIG_LEN) {
        return 0;
    }

    return CRYPTO_memcmp(expected, got, NGX_VOICE_TW_SIG_LEN) == 0;
}


static int
ngx_voice_tw_param_cmp(const void *a, const void *b)
{
    int                          rc;
    const ngx_voice_tw_param_t  *pa, *pb;

    pa = a;
    pb = b;

    rc = ngx_voice_tw_str_cmp(&pa->name, &pb->name);

    if (rc != 0) {
        return rc;
    }

    return ngx_voice_tw_str_cmp(&pa->value, &pb->value);
}


static int
ngx_voice_tw_str_cmp(const ngx_voice_tw_str_t *a, const ngx_voice_tw_str_t *b)
{
    int     rc;
    size_t  n;

    /* byte order; a prefix sorts first */

    n = (a->len < b->len) ? a->len : b->len;

    if (n) {
        rc = memcmp(a->data, b->data, n);

        if (rc != 0) {
            return rc;
        }
    }

    return (a->len < b->len) ? -1 : (a->len > b->len);
}
