/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_deepgram.h"


#define is_lit(got, glen, lit, ...)                                          \
    is_mem(got, glen, lit, sizeof(lit) - 1, __VA_ARGS__)
#define S(s)  (const unsigned char *) s, sizeof(s) - 1

/* is_str() for arrays and literals, which cannot be NULL */
#define is_text(got, exp, ...)                                                \
    is_mem(got, strlen(got), exp, strlen(exp), __VA_ARGS__)


static int test_dg(ngx_voice_dg_msg_t *m, const char *json);
static void test_dg_queries(void);
static void test_dg_messages(void);
static void test_dg_builders(void);


void
test_deepgram(void)
{
    tap_diag("deepgram");

    test_dg_queries();
    test_dg_messages();
    test_dg_builders();
}


static int
test_dg(ngx_voice_dg_msg_t *m, const char *json)
{
    return ngx_voice_dg_parse(m, (const unsigned char *) json, strlen(json));
}


static void
test_dg_queries(void)
{
    size_t                 n, w;
    unsigned char          buf[512];
    ngx_voice_text_t       kt[2];
    ngx_voice_dg_speak_t   sp;
    ngx_voice_dg_listen_t  o;

    static const char  full[] =
        "encoding=mulaw&sample_rate=8000&channels=1&model=nova-3"
        "&language=en-US&interim_results=true&endpointing=300"
        "&utterance_end_ms=1000&vad_events=true&smart_format=true"
        "&punctuate=false&keyterm=AirPods%20Pro&keyterm=caf%C3%A9%26co"
        "&mip_opt_out=true";

    memset(&o, 0, sizeof(o));

    n = ngx_voice_dg_listen_query(NULL, &o);
    w = ngx_voice_dg_listen_query(buf, &o);
    is_lit(buf, w, "encoding=mulaw&sample_rate=8000&channels=1",
           "listen defaults");
    is(n, w, "length function matches");

    kt[0].data = "AirPods Pro";
    kt[0].len = 11;
    kt[1].data = "caf\xc3\xa9&co";
    kt[1].len = 8;

    o.model.data = "nova-3";
    o.model.len = 6;
    o.language.data = "en-US";
    o.language.len = 5;
    o.interim_results = NGX_VOICE_DG_TRUE;
    o.endpointing = 300;
    o.utterance_end_ms = 1000;
    o.vad_events = NGX_VOICE_DG_TRUE;
    o.smart_format = NGX_VOICE_DG_TRUE;
    o.punctuate = NGX_VOICE_DG_FALSE;
    o.keyterms = kt;
    o.nkeyterms = 2;
    o.extra.data = "mip_opt_out=true";
    o.extra.len = 16;

    n = ngx_voice_dg_listen_query(NULL, &o);
    w = ngx_voice_dg_listen_query(buf, &o);
    is_mem(buf, w, full, sizeof(full) - 1, "listen query, all options");
    is(n, w, "length function matches, all options");

    o.endpointing = NGX_VOICE_DG_ENDPOINTING_OFF;
    o.nkeyterms = 0;
    o.extra.data = NULL;
    w = ngx_voice_dg_listen_query(buf, &o);
    buf[w] = '\0';
    ok(strstr((char *) buf, "&endpointing=false&") != NULL,
       "endpointing=false");

    o.extra.data = "a=b c";
    o.extra.len = 5;
    is(ngx_voice_dg_listen_query(NULL, &o), 0, "unsafe extra refused");

    memset(&sp, 0, sizeof(sp));
    sp.model.data = "aura-2-helena-en";
    sp.model.len = 16;
    w = ngx_voice_dg_speak_query(buf, &sp);
    is_lit(buf, w, "encoding=mulaw&sample_rate=8000&model=aura-2-helena-en",
           "speak query");

    sp.speed = 1.25;
    sp.mip_opt_out = NGX_VOICE_DG_TRUE;
    n = ngx_voice_dg_speak_query(NULL, &sp);
    w = ngx_voice_dg_speak_query(buf, &sp);
    is_lit(buf, w, "encoding=mulaw&sample_rate=8000&model=aura-2-helena-en"
           "&speed=1.25&mip_opt_out=true", "speak query with options");
    is(n, w, "speak length matches");
}


static void
test_dg_messages(void)
{
    ngx_voice_dg_msg_t  m;

    is(test_dg(&m,
        "{\"type\":\"Results\",\"channel_index\":[0,1],\"duration\":1.02,"
        "\"start\":4.12,\"is_final\":true,\"speech_final\":true,"
        "\"from_finalize\":false,\"channel\":{\"alternatives\":[{"
        "\"transcript\":\"I want a pair of airpods\",\"confidence\":0.98,"
        "\"words\":[{\"word\":\"i\",\"start\":4.16,\"end\":4.32,"
        "\"confidence\":0.99,\"punctuated_word\":\"I\"}]}]},\"metadata\":{"
        "\"request_id\":\"8c8e\",\"model_uuid\":\"u\",\"model_info\":{"
        "\"name\":\"n\",\"version\":\"v\",\"arch\":\"a\"}}}"),
       NGX_VOICE_DG_OK, "Results parsed");
    is(m.type, NGX_VOICE_DG_RESULTS, "type Results");
    ok(m.is_final && m.speech_final && !m.from_finalize, "final flags");
    ok(m.start == 4.12 && m.duration == 1.02 && m.confidence == 0.98,
       "start, duration, confidence");
    is_lit(m.transcript.data, m.transcript.len, "I want a pair of airpods",
           "transcript");
    is(m.words, 1, "words count");
    ok(m.last_word_end == 4.32, "the last word's end");
    is_lit(m.request_id.data, m.request_id.len, "8c8e", "request_id");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Results\",\"is_final\":true,"
                   "\"from_finalize\":true,\"channel\":{\"alternatives\":[{"
                   "\"transcript\":\"\",\"confidence\":0}]}}"),
       NGX_VOICE_DG_OK, "empty from_finalize Results");
    ok(m.from_finalize && !m.speech_final && m.transcript.len == 0,
       "from_finalize with empty transcript");
    ok(m.last_word_end == -1, "no words: no end of speech");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Results\",\"is_final\":false,\"channel\":"
                   "{\"alternatives\":[]}}"), NGX_VOICE_DG_OK,
       "no alternatives");
    ok(!m.is_final && m.transcript.len == 0, "interim, nothing");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Results\"}"), NGX_VOICE_DG_BAD_MESSAGE,
       "Results without channel");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Results\",\"channel\":{\"alternatives\":[{"
                   "\"transcript\":1}]}}"), NGX_VOICE_DG_BAD_MESSAGE,
       "transcript not a string");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"UtteranceEnd\",\"channel\":[0,1],"
                   "\"last_word_end\":2.395}"), NGX_VOICE_DG_OK,
       "UtteranceEnd");
    ok(m.type == NGX_VOICE_DG_UTTERANCE_END && m.last_word_end == 2.395,
       "last_word_end");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"SpeechStarted\",\"channel\":[0],"
                   "\"timestamp\":9.54}"), NGX_VOICE_DG_OK, "SpeechStarted");
    ok(m.type == NGX_VOICE_DG_SPEECH_STARTED && m.timestamp == 9.54,
       "timestamp");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Metadata\",\"transaction_key\":"
                   "\"deprecated\",\"request_id\":\"8c8e\",\"sha256\":"
                   "\"e3b0\",\"created\":\"2024-08-29T22:37:55.202Z\","
                   "\"duration\":12.5,\"channels\":0}"), NGX_VOICE_DG_OK,
       "Metadata");
    ok(m.type == NGX_VOICE_DG_METADATA && m.duration == 12.5
       && m.request_id.len == 4, "Metadata fields");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Metadata\",\"request_id\":\"r1\","
                   "\"model_name\":\"aura-2-helena-en\",\"model_version\":"
                   "\"1\",\"model_uuid\":\"u\",\"additional_model_uuids\":"
                   "[\"x\"]}"), NGX_VOICE_DG_OK, "Aura Metadata");
    is_lit(m.model_name.data, m.model_name.len, "aura-2-helena-en",
           "model_name");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Flushed\",\"sequence_id\":3}"),
       NGX_VOICE_DG_OK, "Flushed");
    ok(m.type == NGX_VOICE_DG_FLUSHED && m.sequence_id == 3, "sequence_id");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Cleared\",\"sequence_id\":0}"),
       NGX_VOICE_DG_OK, "Cleared");
    ok(m.type == NGX_VOICE_DG_CLEARED && m.sequence_id == 0, "Cleared id");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Warning\",\"description\":\"Flush limit\","
                   "\"code\":\"W-1\"}"), NGX_VOICE_DG_OK, "Warning");
    ok(m.type == NGX_VOICE_DG_WARNING && m.code.len == 3
       && m.description.len == 11, "Warning fields");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Error\",\"err_code\":\"E\",\"err_msg\":"
                   "\"bad\"}"), NGX_VOICE_DG_OK, "Error");
    ok(m.type == NGX_VOICE_DG_ERROR && m.code.len == 1
       && m.description.len == 3, "Error err_code/err_msg");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Brand new\"}"), NGX_VOICE_DG_OK, "unknown");
    is(m.type, NGX_VOICE_DG_UNKNOWN, "unknown type is ignorable");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"no\":\"type\"}"), NGX_VOICE_DG_BAD_MESSAGE,
       "missing type");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "[1]"), NGX_VOICE_DG_BAD_JSON, "not an object");
    ngx_voice_dg_done(&m);

    is(test_dg(&m, "{\"type\":\"Results\""), NGX_VOICE_DG_BAD_JSON,
       "truncated JSON");
    ngx_voice_dg_done(&m);
}


static void
test_dg_builders(void)
{
    size_t         n, w;
    unsigned char  buf[256];

    n = ngx_voice_dg_speak_text(NULL, S("Say \"hi\"\n"));
    w = ngx_voice_dg_speak_text(buf, S("Say \"hi\"\n"));
    is_lit(buf, w, "{\"type\":\"Speak\",\"text\":\"Say \\\"hi\\\"\\n\"}",
           "Speak escaped");
    is(n, w, "Speak length matches");

    is_text(NGX_VOICE_DG_KEEPALIVE, "{\"type\":\"KeepAlive\"}", "KeepAlive");
    is_text(NGX_VOICE_DG_FINALIZE, "{\"type\":\"Finalize\"}", "Finalize");
    is_text(NGX_VOICE_DG_CLOSE_STREAM, "{\"type\":\"CloseStream\"}",
           "CloseStream");
    is_text(NGX_VOICE_DG_FLUSH, "{\"type\":\"Flush\"}", "Flush");
    is_text(NGX_VOICE_DG_CLEAR, "{\"type\":\"Clear\"}", "Clear");
    is_text(NGX_VOICE_DG_CLOSE, "{\"type\":\"Close\"}", "Close");
    is(ngx_voice_dg_lit_len(NGX_VOICE_DG_KEEPALIVE), 20, "literal length");
}
