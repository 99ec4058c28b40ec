/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the provider message parsers (Deepgram STT and
 * Aura, ElevenLabs) and the JSON-escaping builders.
 *
 * Byte 0 picks the parser; the rest is one text message, in its own
 * heap block.  The rest is also used as text for the Speak/ElevenLabs
 * builders: the output length must match the length function, and when
 * the text is valid UTF-8 without NUL the built JSON must give it back.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_deepgram.h"
#include "ngx_voice_elevenlabs.h"
#include "ngx_voice_ws_codec.h"


static void fuzz_deepgram(const unsigned char *p, size_t len);
static void fuzz_elevenlabs(const unsigned char *p, size_t len);
static void fuzz_builders(const unsigned char *p, size_t len);
static void fuzz_roundtrip(const unsigned char *json, size_t json_len,
    const char *name, const unsigned char *text, size_t len);


static ngx_voice_el_msg_t  fuzz_el;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char  *copy;

    if (size < 1) {
        return 0;
    }

    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, data + 1, size - 1);

    switch (data[0] % 3) {
    case 0:
        fuzz_deepgram(copy, size - 1);
        break;
    case 1:
        fuzz_elevenlabs(copy, size - 1);
        break;
    default:
        fuzz_builders(copy, size - 1);
        break;
    }

    free(copy);

    return 0;
}


static void
fuzz_deepgram(const unsigned char *p, size_t len)
{
    int                 rc;
    ngx_voice_dg_msg_t  m;

    rc = ngx_voice_dg_parse(&m, p, len);

    if (rc != NGX_VOICE_DG_OK && m.error == NULL) {
        abort();
    }

    if (rc == NGX_VOICE_DG_OK
        && (m.type < NGX_VOICE_DG_RESULTS || m.type > NGX_VOICE_DG_UNKNOWN
            || strlen(m.transcript.data) != m.transcript.len
            || strlen(m.request_id.data) != m.request_id.len
            || strlen(m.description.data) != m.description.len))
    {
        abort();
    }

    ngx_voice_dg_done(&m);
}


static void
fuzz_elevenlabs(const unsigned char *p, size_t len)
{
    int                    rc;
    size_t                 i, sum;
    ngx_voice_el_align_t  *a;

    rc = ngx_voice_el_parse(&fuzz_el, p, len);

    if (rc != NGX_VOICE_EL_OK && fuzz_el.error == NULL) {
        abort();
    }

    if (rc == NGX_VOICE_EL_OK) {
        if (fuzz_el.kind == NGX_VOICE_EL_AUDIO
            && (fuzz_el.audio == NULL || fuzz_el.audio_len == 0))
        {
            abort();
        }

        /* read every decoded byte: ASan checks the in-place pointer */

        sum = 0;

        for (i = 0; i < fuzz_el.audio_len; i++) {
            sum += fuzz_el.audio[i];
        }

        a = &fuzz_el.alignment;

        if (a->n > NGX_VOICE_EL_MAX_CHARS || a->n > a->total
            || (a->truncated != (a->total > NGX_VOICE_EL_MAX_CHARS)))
        {
            abort();
        }

        for (i = 0; i < a->n; i++) {
            sum += strlen(a->c[i].chr);
        }

        if (ngx_voice_el_chars_before(a, (uint32_t) sum, NULL) > a->n) {
            abort();
        }
    }

    ngx_voice_el_done(&fuzz_el);
}


static void
fuzz_builders(const unsigned char *p, size_t len)
{
    size_t          n, w;
    unsigned char  *buf;

    n = ngx_voice_dg_speak_text(NULL, p, len);
    buf = malloc(n);
    if (buf == NULL) {
        abort();
    }

    w = ngx_voice_dg_speak_text(buf, p, len);
    if (w != n) {
        abort();
    }

    fuzz_roundtrip(buf, n, "text", p, len);
    free(buf);

    n = ngx_voice_el_text(NULL, p, len, NGX_VOICE_EL_FLUSH, p, len);
    buf = malloc(n);
    if (buf == NULL) {
        abort();
    }

    w = ngx_voice_el_text(buf, p, len, NGX_VOICE_EL_FLUSH, p, len);
    if (w != n) {
        abort();
    }

    fuzz_roundtrip(buf, n, "context_id", p, len);
    free(buf);
}


static void
fuzz_roundtrip(const unsigned char *json, size_t json_len, const char *name,
    const unsigned char *text, size_t len)
{
    cJSON  *root, *item;

    root = cJSON_ParseWithLength((const char *) json, json_len);

    /* the escaper always produces valid JSON */

    if (root == NULL) {
        abort();
    }

    item = cJSON_GetObjectItemCaseSensitive(root, name);

    if (!cJSON_IsString(item)) {
        abort();
    }

    if (memchr(text, '\0', len) == NULL && ngx_voice_utf8_valid(text, len)
        && (strlen(item->valuestring) != len
            || memcmp(item->valuestring, text, len) != 0))
    {
        abort();
    }

    cJSON_Delete(root);
}
