/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the Twilio message parser: parse + done on an
 * exact-size copy; when a media message parses, build one from the
 * decoded audio and check it parses back to the same audio (likewise
 * for marks with a valid name).
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_twilio.h"


static void fuzz_check_str(const ngx_voice_tw_str_t *s);
static void fuzz_media(const ngx_voice_tw_msg_t *m);
static void fuzz_mark(const ngx_voice_tw_msg_t *m);


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  rc;
    unsigned             i;
    unsigned char       *in;
    ngx_voice_tw_msg_t   m;

    in = malloc(size ? size : 1);
    if (in == NULL) {
        abort();
    }

    memcpy(in, data, size);

    rc = ngx_voice_tw_parse(&m, in, size);

    /* nothing may point into the input */

    memset(in, 0, size);
    free(in);

    if (rc != NGX_VOICE_TW_OK) {
        if ((rc != NGX_VOICE_TW_BAD_JSON && rc != NGX_VOICE_TW_BAD_MESSAGE)
            || m.error == NULL)
        {
            abort();
        }

        ngx_voice_tw_done(&m);
        ngx_voice_tw_done(&m);

        return 0;
    }

    fuzz_check_str(&m.event_name);
    fuzz_check_str(&m.stream_sid);
    fuzz_check_str(&m.track);

    switch (m.event) {

    case NGX_VOICE_TW_START:
        if (!ngx_voice_tw_sid_valid(m.stream_sid.data, m.stream_sid.len, "MZ")
            || !ngx_voice_tw_sid_valid(m.call_sid.data, m.call_sid.len, "CA")
            || !ngx_voice_tw_sid_valid(m.account_sid.data, m.account_sid.len,
                                       "AC")
            || m.sample_rate != 8000 || m.channels != 1
            || m.nparams > NGX_VOICE_TW_MAX_PARAMS)
        {
            abort();
        }

        for (i = 0; i < m.nparams; i++) {
            fuzz_check_str(&m.params[i].name);
            fuzz_check_str(&m.params[i].value);
        }

        break;

    case NGX_VOICE_TW_MEDIA:
        fuzz_media(&m);
        break;

    case NGX_VOICE_TW_MARK:
        fuzz_mark(&m);
        break;

    case NGX_VOICE_TW_DTMF:
        if (m.digit == '\0' || strchr("0123456789*#ABCD", m.digit) == NULL) {
            abort();
        }

        break;

    case NGX_VOICE_TW_CONNECTED:
        fuzz_check_str(&m.protocol);
        fuzz_check_str(&m.version);
        break;

    case NGX_VOICE_TW_STOP:
    case NGX_VOICE_TW_UNKNOWN:
        break;

    default:
        abort();
    }

    ngx_voice_tw_done(&m);
    ngx_voice_tw_done(&m);

    return 0;
}


static void
fuzz_check_str(const ngx_voice_tw_str_t *s)
{
    volatile unsigned char  x;
    size_t                  i;

    if (s->data == NULL) {
        abort();
    }

    /* touch every byte: ASan checks the pointer */

    x = 0;

    for (i = 0; i < s->len; i++) {
        x ^= (unsigned char) s->data[i];
    }

    (void) x;
}


static void
fuzz_media(const ngx_voice_tw_msg_t *m)
{
    int                  rc;
    size_t               n, len;
    unsigned char       *out;
    ngx_voice_tw_msg_t   m2;

    if (!ngx_voice_tw_sid_valid(m->stream_sid.data, m->stream_sid.len, "MZ")
        || (m->audio == NULL && m->audio_len))
    {
        abort();
    }

    len = ngx_voice_tw_media_len(m->stream_sid.len, m->audio_len);

    out = malloc(len);
    if (out == NULL) {
        abort();
    }

    n = ngx_voice_tw_media(out, m->stream_sid.data, m->stream_sid.len,
                           m->audio, m->audio_len);

    if (n != len) {
        abort();
    }

    rc = ngx_voice_tw_parse(&m2, out, n);

    if (rc != NGX_VOICE_TW_OK || m2.event != NGX_VOICE_TW_MEDIA
        || m2.audio_len != m->audio_len
        || (m->audio_len && memcmp(m2.audio, m->audio, m->audio_len) != 0)
        || m2.stream_sid.len != m->stream_sid.len
        || memcmp(m2.stream_sid.data, m->stream_sid.data, m->stream_sid.len))
    {
        abort();
    }

    ngx_voice_tw_done(&m2);
    free(out);
}


static void
fuzz_mark(const ngx_voice_tw_msg_t *m)
{
    int                  rc;
    size_t               n, len;
    unsigned char       *out;
    ngx_voice_tw_msg_t   m2;

    fuzz_check_str(&m->mark);

    if (!ngx_voice_tw_mark_name_valid(m->mark.data, m->mark.len)) {
        return;
    }

    len = ngx_voice_tw_mark_len(m->stream_sid.len, m->mark.len);

    out = malloc(len);
    if (out == NULL) {
        abort();
    }

    n = ngx_voice_tw_mark(out, m->stream_sid.data, m->stream_sid.len,
                          m->mark.data, m->mark.len);

    rc = ngx_voice_tw_parse(&m2, out, n);

    if (n != len || rc != NGX_VOICE_TW_OK || m2.event != NGX_VOICE_TW_MARK
        || m2.mark.len != m->mark.len
        || memcmp(m2.mark.data, m->mark.data, m->mark.len) != 0)
    {
        abort();
    }

    ngx_voice_tw_done(&m2);
    free(out);
}
