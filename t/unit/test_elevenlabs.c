/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>
#include <cjson/cJSON.h>

#include "tap.h"
#include "ngx_voice_elevenlabs.h"


#define is_lit(got, glen, lit, ...)                                          \
    is_mem(got, glen, lit, sizeof(lit) - 1, __VA_ARGS__)
#define S(s)  (const unsigned char *) s, sizeof(s) - 1

/* is_str() for arrays and literals, which cannot be NULL */
#define is_text(got, exp, ...)                                                \
    is_mem(got, strlen(got), exp, strlen(exp), __VA_ARGS__)


static int test_el(const char *json);
static void test_el_url(void);
static void test_el_builders(void);
static void test_el_messages(void);


#define C(s)  (const unsigned char *) s, sizeof(s) - 1


static ngx_voice_el_msg_t  test_el_msg;


void
test_elevenlabs(void)
{
    tap_diag("elevenlabs");

    test_el_url();
    test_el_builders();
    test_el_messages();
}


static int
test_el(const char *json)
{
    return ngx_voice_el_parse(&test_el_msg, (const unsigned char *) json,
                              strlen(json));
}


static void
test_el_url(void)
{
    size_t              n, w;
    unsigned char       buf[512];
    ngx_voice_el_url_t  u;

    static const char  full[] =
        "/v1/text-to-speech/voice%2F1/multi-stream-input?"
        "output_format=ulaw_8000&model_id=eleven_flash_v2_5"
        "&inactivity_timeout=180&sync_alignment=true&auto_mode=false"
        "&enable_ssml_parsing=false&enable_logging=true&language_code=en"
        "&seed=1";

    memset(&u, 0, sizeof(u));
    is(ngx_voice_el_path(NULL, &u), 0, "voice id required");

    u.voice_id.data = "21m00Tcm4TlvDq8ikWAM";
    u.voice_id.len = 20;
    w = ngx_voice_el_path(buf, &u);
    is_lit(buf, w, "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input?"
           "output_format=ulaw_8000", "single-context defaults");

    u.voice_id.data = "voice/1";
    u.voice_id.len = 7;
    u.multi = 1;
    u.model_id.data = "eleven_flash_v2_5";
    u.model_id.len = 17;
    u.inactivity_timeout = 180;
    u.sync_alignment = NGX_VOICE_EL_TRUE;
    u.auto_mode = NGX_VOICE_EL_FALSE;
    u.enable_ssml_parsing = NGX_VOICE_EL_FALSE;
    u.enable_logging = NGX_VOICE_EL_TRUE;
    u.language_code.data = "en";
    u.language_code.len = 2;
    u.extra.data = "seed=1";
    u.extra.len = 6;

    n = ngx_voice_el_path(NULL, &u);
    w = ngx_voice_el_path(buf, &u);
    is_mem(buf, w, full, sizeof(full) - 1, "multi-context, all options");
    is(n, w, "length function matches");

    u.extra.data = "a#b";
    u.extra.len = 3;
    is(ngx_voice_el_path(NULL, &u), 0, "unsafe extra refused");
}


static void
test_el_builders(void)
{
    size_t               n, w;
    unsigned char        buf[512];
    ngx_voice_el_init_t  init;

    static const unsigned  sched[] = { 120, 160, 250, 290 };

    ngx_voice_el_init_defaults(&init);
    w = ngx_voice_el_init(buf, &init, NULL, 0);
    is_lit(buf, w, "{\"text\":\" \"}", "bare init");

    init.stability = 0.5;
    init.similarity_boost = 0.8;
    init.style = 0.0;
    init.use_speaker_boost = NGX_VOICE_EL_TRUE;
    init.speed = 1.0;
    init.schedule = sched;
    init.nschedule = 4;

    n = ngx_voice_el_init(NULL, &init, NULL, 0);
    w = ngx_voice_el_init(buf, &init, NULL, 0);
    is_lit(buf, w, "{\"text\":\" \",\"voice_settings\":{\"stability\":0.5,"
           "\"similarity_boost\":0.8,\"style\":0,\"use_speaker_boost\":true,"
           "\"speed\":1},\"generation_config\":{\"chunk_length_schedule\":"
           "[120,160,250,290]}}", "full init");
    is(n, w, "init length matches");

    ngx_voice_el_init_defaults(&init);
    init.speed = 1.1;
    w = ngx_voice_el_init(buf, &init, C("turn-1"));
    is_lit(buf, w, "{\"text\":\" \",\"context_id\":\"turn-1\","
           "\"voice_settings\":{\"speed\":1.1}}", "multi init");

    n = ngx_voice_el_text(NULL, C("Hello \"there\". "),
                          NGX_VOICE_EL_TRY_TRIGGER, NULL, 0);
    w = ngx_voice_el_text(buf, C("Hello \"there\". "),
                          NGX_VOICE_EL_TRY_TRIGGER, NULL, 0);
    is_lit(buf, w, "{\"text\":\"Hello \\\"there\\\". \","
           "\"try_trigger_generation\":true}", "text chunk");
    is(n, w, "text length matches");

    w = ngx_voice_el_text(buf, C("Bye. "), NGX_VOICE_EL_FLUSH, C("turn-1"));
    is_lit(buf, w, "{\"text\":\"Bye. \",\"flush\":true,\"context_id\":"
           "\"turn-1\"}", "multi text with flush");

    w = ngx_voice_el_flush(buf, NULL, 0);
    is_lit(buf, w, "{\"text\":\" \",\"flush\":true}", "single flush");
    w = ngx_voice_el_flush(buf, C("turn-1"));
    is_lit(buf, w, "{\"context_id\":\"turn-1\",\"flush\":true}",
           "multi flush");
    is(ngx_voice_el_flush(NULL, C("turn-1")), 36, "flush length");

    w = ngx_voice_el_close_context(buf, C("turn-1"));
    is_lit(buf, w, "{\"context_id\":\"turn-1\",\"close_context\":true}",
           "close_context");
    is(ngx_voice_el_close_context(NULL, C("turn-1")), 44,
       "close_context length");

    w = ngx_voice_el_keepalive(buf, NULL, 0);
    is_lit(buf, w, "{\"text\":\" \"}", "single keep-alive");
    w = ngx_voice_el_keepalive(buf, C("t\"2"));
    is_lit(buf, w, "{\"text\":\"\",\"context_id\":\"t\\\"2\"}",
           "multi keep-alive, escaped id");

    is_text(NGX_VOICE_EL_CLOSE_SOCKET, "{\"close_socket\":true}",
           "close_socket");
    is_text(NGX_VOICE_EL_END_OF_INPUT, "{\"text\":\"\"}", "end of input");
}


static void
test_el_messages(void)
{
    size_t                 bytes;
    ngx_voice_el_msg_t    *m;

    m = &test_el_msg;

    /* camelCase, charDurationsMs, normalized with charsDurationsMs */

    is(test_el("{\"audio\":\"/38AAQ==\",\"isFinal\":false,"
               "\"normalizedAlignment\":{\"charStartTimesMs\":[0,3,7],"
               "\"charsDurationsMs\":[3,4,2],\"chars\":[\"H\",\"e\",\"l\"]},"
               "\"alignment\":{\"charStartTimesMs\":[0,3,7],"
               "\"charDurationsMs\":[3,4,2],\"chars\":[\"H\",\"\xc3\xa9\","
               "\"l\"]},\"contextId\":\"turn-1\"}"),
       NGX_VOICE_EL_OK, "audio message");
    is(m->kind, NGX_VOICE_EL_AUDIO, "kind audio");
    is_lit(m->audio, m->audio_len, "\xff\x7f\x00\x01",
           "audio decoded in place");
    ok((const char *) m->audio
       == cJSON_GetObjectItemCaseSensitive(m->root, "audio")->valuestring,
       "audio decoded into the tree's string");
    is(m->is_final, 0, "not final");
    is_lit(m->context_id.data, m->context_id.len, "turn-1", "contextId");
    ok(m->alignment.present && m->alignment.n == 3
       && m->alignment.total == 3 && !m->alignment.truncated,
       "alignment count");
    ok(m->alignment.c[1].start_ms == 3 && m->alignment.c[1].dur_ms == 4
       && strcmp(m->alignment.c[1].chr, "\xc3\xa9") == 0,
       "alignment entry");
    is(m->alignment.end_ms, 9, "alignment end");
    is(m->alignment.text_len, 4, "alignment text bytes");
    ok(m->normalized.present && m->normalized.n == 3
       && m->normalized.c[2].dur_ms == 2, "charsDurationsMs spelling");

    is(ngx_voice_el_chars_before(&m->alignment, 4, &bytes), 2,
       "chars started before 4 ms");
    is(bytes, 3, "their bytes");
    is(ngx_voice_el_chars_before(&m->alignment, 0, NULL), 0,
       "none before 0 ms");
    ngx_voice_el_done(m);

    is(test_el("{\"isFinal\":true,\"contextId\":\"turn-1\"}"),
       NGX_VOICE_EL_OK, "final");
    ok(m->kind == NGX_VOICE_EL_FINAL && m->is_final && m->audio_len == 0,
       "kind final");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":null,\"is_final\":true,\"context_id\":\"t2\","
               "\"alignment\":null}"), NGX_VOICE_EL_OK, "snake_case final");
    ok(m->kind == NGX_VOICE_EL_FINAL && m->context_id.len == 2
       && !m->alignment.present, "is_final / context_id");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":\"AAAA\",\"isFinal\":true}"), NGX_VOICE_EL_OK,
       "audio with final");
    ok(m->kind == NGX_VOICE_EL_AUDIO && m->is_final && m->audio_len == 3,
       "audio kind keeps is_final");
    ngx_voice_el_done(m);

    is(test_el("{\"message\":\"Have not received a new text input within "
               "the timeout of 20.0 seconds.\",\"error\":"
               "\"input_timeout_exceeded\",\"code\":1008}"),
       NGX_VOICE_EL_OK, "error message");
    ok(m->kind == NGX_VOICE_EL_ERROR && m->close_code == 1008, "kind error");
    is_lit(m->err_code.data, m->err_code.len, "input_timeout_exceeded",
           "error code");
    ok(m->err_message.len > 20, "error text");
    ngx_voice_el_done(m);

    is(test_el("{\"type\":\"flush_done\",\"context_id\":\"x\"}"),
       NGX_VOICE_EL_OK, "unknown message");
    is(m->kind, NGX_VOICE_EL_OTHER, "kind other");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":\"AAA\"}"), NGX_VOICE_EL_BAD_MESSAGE,
       "bad base64");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":5}"), NGX_VOICE_EL_BAD_MESSAGE,
       "audio not a string");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":\"AAAA\",\"alignment\":{\"chars\":\"x\"}}"),
       NGX_VOICE_EL_BAD_MESSAGE, "chars not an array");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":\"AAAA\",\"alignment\":{\"chars\":[1]}}"),
       NGX_VOICE_EL_BAD_MESSAGE, "char not a string");
    ngx_voice_el_done(m);

    is(test_el("{\"audio\":"), NGX_VOICE_EL_BAD_JSON, "truncated JSON");
    ngx_voice_el_done(m);
}
