/*
 * Copyright (C) ngx_voice authors
 *
 * Twilio Media Streams messages: the protocols.md 1.3 samples (with real
 * looking SIDs in place of the "xxx" placeholders), every rejection, and
 * the builders read back.
 */


#include <stdlib.h>
#include <cjson/cJSON.h>

#include "tap.h"
#include "ngx_voice_twilio.h"
#include "ngx_voice_base64.h"


#define T_AC   "AC0123456789abcdef0123456789abcdef"
#define T_CA   "CAfedcba9876543210FEDCBA9876543210"
#define T_MZ   "MZ18ad3ab5a668481ce02b83e7395059f0"
#define T_MZ2  "MZ28ad3ab5a668481ce02b83e7395059f0"

/* 160 bytes (i * 37 + 11) & 0xff, encoded by Python's base64 module */
#define T_AUDIO                                                               \
    "CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW+yBFao+0" \
    "2f4jSG2St9wBJktwlbrfBClOc5i94gcsUXabwOUKL1R5nsPoDTJXfKHG6xA1Wn+kye4TOF2C" \
    "p8zxFjtgharP9Bk+Y4it0vccQWaLsNX6H0RpjrPY/SJHbJG22wAlSm+Uud4DKE1yl7zhBg=="


typedef struct {
    const char  *name;
    const char  *json;
    int          rc;
    const char  *error;
} test_tw_bad_t;


static int test_parse(ngx_voice_tw_msg_t *m, const char *json);
static int test_str(ngx_voice_tw_str_t *s, const char *expected);
static void test_tw_samples(void);
static void test_tw_rejects(void);
static void test_tw_params(void);
static void test_tw_sids(void);
static void test_tw_builders(void);


static const test_tw_bad_t  test_tw_bad[] = {

    /* not JSON, or not an object */

    { "empty", "", 1, "malformed JSON" },
    { "truncated", "{\"event\":\"connected\"", 1, "malformed JSON" },
    { "text", "not json", 1, "malformed JSON" },
    { "array", "[{\"event\":\"connected\"}]", 1, "malformed JSON" },
    { "string", "\"connected\"", 1, "malformed JSON" },
    { "number", "42", 1, "malformed JSON" },
    { "null", "null", 1, "malformed JSON" },
    { "trailing garbage", "{\"event\":\"connected\"} x", 1,
      "malformed JSON" },
    { "two objects", "{\"event\":\"connected\"}{}", 1, "malformed JSON" },
    { "single quotes", "{'event':'connected'}", 1, "malformed JSON" },

    /* event */

    { "missing event", "{}", 2, "missing event" },
    { "event number", "{\"event\":1}", 2, "missing event" },
    { "event null", "{\"event\":null}", 2, "missing event" },
    { "event object", "{\"event\":{\"x\":1}}", 2, "missing event" },
    { "Event capitalised", "{\"Event\":\"connected\"}", 2, "missing event" },

    /* connected */

    { "connected bad sequence",
      "{\"event\":\"connected\",\"sequenceNumber\":\"x\"}", 2,
      "invalid sequenceNumber" },

    /* start */

    { "start without start",
      "{\"event\":\"start\",\"streamSid\":\"" T_MZ "\"}", 2,
      "missing start object" },
    { "start not an object",
      "{\"event\":\"start\",\"start\":\"x\"}", 2, "missing start object" },
    { "accountSid missing",
      "{\"event\":\"start\",\"start\":{\"callSid\":\"" T_CA "\","
      "\"streamSid\":\"" T_MZ "\"}}", 2, "invalid accountSid" },
    { "accountSid wrong prefix",
      "{\"event\":\"start\",\"start\":{\"accountSid\":\"" T_CA "\"}}", 2,
      "invalid accountSid" },
    { "accountSid short",
      "{\"event\":\"start\",\"start\":{\"accountSid\":"
      "\"AC0123456789abcdef0123456789abcde\"}}", 2, "invalid accountSid" },
    { "accountSid long",
      "{\"event\":\"start\",\"start\":{\"accountSid\":"
      "\"AC0123456789abcdef0123456789abcdef0\"}}", 2, "invalid accountSid" },
    { "accountSid not hex",
      "{\"event\":\"start\",\"start\":{\"accountSid\":"
      "\"AC0123456789abcdef0123456789abcdeg\"}}", 2, "invalid accountSid" },
    { "accountSid placeholder",
      "{\"event\":\"start\",\"start\":{\"accountSid\":"
      "\"ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}", 2, "invalid accountSid" },
    { "accountSid number",
      "{\"event\":\"start\",\"start\":{\"accountSid\":1}}", 2,
      "invalid accountSid" },
    { "callSid bad",
      "{\"event\":\"start\",\"start\":{\"accountSid\":\"" T_AC "\","
      "\"callSid\":\"CA123\",\"streamSid\":\"" T_MZ "\"}}", 2,
      "invalid callSid" },
    { "callSid lowercase prefix",
      "{\"event\":\"start\",\"start\":{\"accountSid\":\"" T_AC "\","
      "\"callSid\":\"cafedcba9876543210FEDCBA9876543210\"}}", 2,
      "invalid callSid" },
    { "start.streamSid missing",
      "{\"event\":\"start\",\"streamSid\":\"" T_MZ "\","
      "\"start\":{\"accountSid\":\"" T_AC "\",\"callSid\":\"" T_CA "\"}}", 2,
      "invalid streamSid" },
    { "start.streamSid bad",
      "{\"event\":\"start\",\"start\":{\"accountSid\":\"" T_AC "\","
      "\"callSid\":\"" T_CA "\",\"streamSid\":\"" T_AC "\"}}", 2,
      "invalid streamSid" },
    { "streamSid mismatch",
      "{\"event\":\"start\",\"streamSid\":\"" T_MZ2 "\","
      "\"start\":{\"accountSid\":\"" T_AC "\",\"callSid\":\"" T_CA "\","
      "\"streamSid\":\"" T_MZ "\"}}", 2, "streamSid mismatch" },
    { "top streamSid not a string",
      "{\"event\":\"start\",\"streamSid\":null,"
      "\"start\":{\"accountSid\":\"" T_AC "\",\"callSid\":\"" T_CA "\","
      "\"streamSid\":\"" T_MZ "\"}}", 2, "streamSid mismatch" },

#define T_START(fmt)                                                          \
    "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"streamSid\":\"" T_MZ    \
    "\",\"start\":{\"accountSid\":\"" T_AC "\",\"callSid\":\"" T_CA "\","     \
    "\"streamSid\":\"" T_MZ "\"" fmt "}}"

    { "mediaFormat missing", T_START(""), 2, "missing mediaFormat" },
    { "mediaFormat not an object", T_START(",\"mediaFormat\":[]"), 2,
      "missing mediaFormat" },
    { "encoding missing",
      T_START(",\"mediaFormat\":{\"sampleRate\":8000,\"channels\":1}"), 2,
      "unsupported mediaFormat: encoding" },
    { "encoding alaw",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-alaw\","
              "\"sampleRate\":8000,\"channels\":1}"), 2,
      "unsupported mediaFormat: encoding" },
    { "encoding case",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-MULAW\","
              "\"sampleRate\":8000,\"channels\":1}"), 2,
      "unsupported mediaFormat: encoding" },
    { "encoding number",
      T_START(",\"mediaFormat\":{\"encoding\":0,"
              "\"sampleRate\":8000,\"channels\":1}"), 2,
      "unsupported mediaFormat: encoding" },
    { "sampleRate 16000",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":16000,\"channels\":1}"), 2,
      "unsupported mediaFormat: sampleRate" },
    { "sampleRate string",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":\"8000\",\"channels\":1}"), 2,
      "unsupported mediaFormat: sampleRate" },
    { "sampleRate missing",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"channels\":1}"), 2,
      "unsupported mediaFormat: sampleRate" },
    { "sampleRate 8000.5",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":8000.5,\"channels\":1}"), 2,
      "unsupported mediaFormat: sampleRate" },
    { "channels 2",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":8000,\"channels\":2}"), 2,
      "unsupported mediaFormat: channels" },
    { "channels missing",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":8000}"), 2,
      "unsupported mediaFormat: channels" },
    { "channels true",
      T_START(",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
              "\"sampleRate\":8000,\"channels\":true}"), 2,
      "unsupported mediaFormat: channels" },

#define T_FMT  ",\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","            \
               "\"sampleRate\":8000,\"channels\":1}"

    { "customParameters number value",
      T_START(T_FMT ",\"customParameters\":{\"a\":\"b\",\"n\":1}"), 2,
      "customParameters value not a string" },
    { "customParameters null value",
      T_START(T_FMT ",\"customParameters\":{\"n\":null}"), 2,
      "customParameters value not a string" },
    { "customParameters object value",
      T_START(T_FMT ",\"customParameters\":{\"n\":{}}"), 2,
      "customParameters value not a string" },
    { "customParameters array",
      T_START(T_FMT ",\"customParameters\":[\"a\"]"), 2,
      "customParameters is not an object" },
    { "customParameters string",
      T_START(T_FMT ",\"customParameters\":\"a=b\""), 2,
      "customParameters is not an object" },

    /* sequenceNumber */

#define T_STOP(seq)                                                           \
    "{\"event\":\"stop\",\"streamSid\":\"" T_MZ "\",\"sequenceNumber\":" seq "}"

    { "sequenceNumber number", T_STOP("5"), 2, "invalid sequenceNumber" },
    { "sequenceNumber empty", T_STOP("\"\""), 2, "invalid sequenceNumber" },
    { "sequenceNumber negative", T_STOP("\"-1\""), 2,
      "invalid sequenceNumber" },
    { "sequenceNumber plus", T_STOP("\"+1\""), 2, "invalid sequenceNumber" },
    { "sequenceNumber space", T_STOP("\" 1\""), 2, "invalid sequenceNumber" },
    { "sequenceNumber hex", T_STOP("\"0x1\""), 2, "invalid sequenceNumber" },
    { "sequenceNumber 1a", T_STOP("\"1a\""), 2, "invalid sequenceNumber" },
    { "sequenceNumber fraction", T_STOP("\"1.0\""), 2,
      "invalid sequenceNumber" },
    { "sequenceNumber 2^64", T_STOP("\"18446744073709551616\""), 2,
      "invalid sequenceNumber" },
    { "sequenceNumber huge", T_STOP("\"99999999999999999999999\""), 2,
      "invalid sequenceNumber" },
    { "sequenceNumber null", T_STOP("null"), 2, "invalid sequenceNumber" },
    { "sequenceNumber in start",
      "{\"event\":\"start\",\"sequenceNumber\":1}", 2,
      "invalid sequenceNumber" },

    /* media */

#define T_MEDIA(media)                                                        \
    "{\"event\":\"media\",\"streamSid\":\"" T_MZ "\",\"media\":" media "}"

    { "media without streamSid",
      "{\"event\":\"media\",\"media\":{\"payload\":\"AAAA\"}}", 2,
      "missing streamSid" },
    { "media with bad streamSid",
      "{\"event\":\"media\",\"streamSid\":\"MZ...\","
      "\"media\":{\"payload\":\"AAAA\"}}", 2, "invalid streamSid" },
    { "media streamSid number",
      "{\"event\":\"media\",\"streamSid\":7,"
      "\"media\":{\"payload\":\"AAAA\"}}", 2, "missing streamSid" },
    { "media without media",
      "{\"event\":\"media\",\"streamSid\":\"" T_MZ "\"}", 2,
      "missing media object" },
    { "media not an object", T_MEDIA("\"AAAA\""), 2,
      "missing media object" },
    { "payload missing", T_MEDIA("{\"track\":\"inbound\"}"), 2,
      "missing media payload" },
    { "payload number", T_MEDIA("{\"payload\":0}"), 2,
      "missing media payload" },
    { "payload bad length", T_MEDIA("{\"payload\":\"AAA\"}"), 2,
      "invalid base64 payload" },
    { "payload bad char", T_MEDIA("{\"payload\":\"AA-A\"}"), 2,
      "invalid base64 payload" },
    { "payload bad padding", T_MEDIA("{\"payload\":\"A=AA\"}"), 2,
      "invalid base64 payload" },
    { "payload pad bits", T_MEDIA("{\"payload\":\"AB==\"}"), 2,
      "invalid base64 payload" },
    { "payload with newline", T_MEDIA("{\"payload\":\"AAAA\\nAAAA\"}"), 2,
      "invalid base64 payload" },
    { "payload with NUL", T_MEDIA("{\"payload\":\"AA\\u0000A\"}"), 2,
      "invalid base64 payload" },
    { "chunk number", T_MEDIA("{\"chunk\":2,\"payload\":\"AAAA\"}"), 2,
      "invalid media chunk" },
    { "chunk not decimal", T_MEDIA("{\"chunk\":\"two\",\"payload\":\"AAAA\"}"),
      2, "invalid media chunk" },
    { "timestamp number", T_MEDIA("{\"timestamp\":5,\"payload\":\"AAAA\"}"),
      2, "invalid media timestamp" },
    { "timestamp negative",
      T_MEDIA("{\"timestamp\":\"-5\",\"payload\":\"AAAA\"}"), 2,
      "invalid media timestamp" },
    { "track number", T_MEDIA("{\"track\":1,\"payload\":\"AAAA\"}"), 2,
      "invalid media track" },

    /* dtmf */

#define T_DTMF(dtmf)                                                          \
    "{\"event\":\"dtmf\",\"streamSid\":\"" T_MZ "\",\"dtmf\":" dtmf "}"

    { "dtmf without dtmf", "{\"event\":\"dtmf\",\"streamSid\":\"" T_MZ "\"}",
      2, "missing dtmf object" },
    { "dtmf without streamSid", "{\"event\":\"dtmf\",\"dtmf\":{\"digit\":"
      "\"1\"}}", 2, "missing streamSid" },
    { "dtmf digit missing", T_DTMF("{\"track\":\"inbound_track\"}"), 2,
      "invalid dtmf digit" },
    { "dtmf digit empty", T_DTMF("{\"digit\":\"\"}"), 2,
      "invalid dtmf digit" },
    { "dtmf two digits", T_DTMF("{\"digit\":\"12\"}"), 2,
      "invalid dtmf digit" },
    { "dtmf digit E", T_DTMF("{\"digit\":\"E\"}"), 2, "invalid dtmf digit" },
    { "dtmf digit a", T_DTMF("{\"digit\":\"a\"}"), 2, "invalid dtmf digit" },
    { "dtmf digit number", T_DTMF("{\"digit\":1}"), 2,
      "invalid dtmf digit" },

    /* mark */

    { "mark without mark", "{\"event\":\"mark\",\"streamSid\":\"" T_MZ "\"}",
      2, "missing mark object" },
    { "mark without name",
      "{\"event\":\"mark\",\"streamSid\":\"" T_MZ "\",\"mark\":{}}", 2,
      "missing mark name" },
    { "mark name number",
      "{\"event\":\"mark\",\"streamSid\":\"" T_MZ "\",\"mark\":{\"name\":1}}",
      2, "missing mark name" },
    { "mark without streamSid",
      "{\"event\":\"mark\",\"mark\":{\"name\":\"x\"}}", 2,
      "missing streamSid" },

    /* stop */

    { "stop without streamSid", "{\"event\":\"stop\"}", 2,
      "missing streamSid" },
    { "stop placeholder streamSid",
      "{\"event\":\"stop\",\"streamSid\":\"MZ...\"}", 2,
      "invalid streamSid" },
    { "stop not an object",
      "{\"event\":\"stop\",\"streamSid\":\"" T_MZ "\",\"stop\":true}", 2,
      "stop is not an object" },

    { NULL, NULL, 0, NULL }
};


void
test_twilio(void)
{
    tap_diag("twilio");

    test_tw_samples();
    test_tw_rejects();
    test_tw_params();
    test_tw_sids();
    test_tw_builders();
}


static int
test_parse(ngx_voice_tw_msg_t *m, const char *json)
{
    int             rc;
    size_t          len;
    unsigned char  *copy;

    /* an exact-size copy without NUL: the parser must respect len */

    len = strlen(json);
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, json, len);

    rc = ngx_voice_tw_parse(m, copy, len);

    /* the message must not point into the input */

    memset(copy, 'Z', len);
    free(copy);

    return rc;
}


static int
test_str(ngx_voice_tw_str_t *s, const char *expected)
{
    size_t  n;

    n = strlen(expected);

    return s->data != NULL && s->len == n && memcmp(s->data, expected, n) == 0;
}


static void
test_tw_samples(void)
{
    int                  rc;
    size_t               i, errors;
    unsigned char        audio[160];
    ngx_voice_tw_msg_t   m;

    for (i = 0; i < 160; i++) {
        audio[i] = (unsigned char) ((i * 37 + 11) & 0xff);
    }

    /* connected, exactly as in protocols.md */

    rc = test_parse(&m, "{\"event\":\"connected\",\"protocol\":\"Call\","
                        "\"version\":\"1.0.0\"}");
    is(rc, NGX_VOICE_TW_OK, "connected: ok");
    is(m.event, NGX_VOICE_TW_CONNECTED, "connected: event");
    ok(test_str(&m.event_name, "connected"), "connected: event name");
    ok(test_str(&m.protocol, "Call"), "connected: protocol");
    ok(test_str(&m.version, "1.0.0"), "connected: version");
    ok(test_str(&m.stream_sid, ""), "connected: no streamSid");
    is(m.sequence, 0, "connected: no sequenceNumber");
    ok(m.error == NULL, "connected: no error");
    ngx_voice_tw_done(&m);
    ok(m.root == NULL, "done clears root");
    ngx_voice_tw_done(&m);
    ok(1, "done twice is safe");

    rc = test_parse(&m, "{\"event\":\"connected\"}\r\n\t ");
    is(rc, NGX_VOICE_TW_OK, "connected: trailing whitespace ok");
    ok(test_str(&m.protocol, "") && test_str(&m.version, ""),
       "connected: protocol and version optional");
    ngx_voice_tw_done(&m);

    /* start, protocols.md layout with hex SIDs */

    rc = test_parse(&m,
        "{\n"
        "  \"event\": \"start\",\n"
        "  \"sequenceNumber\": \"1\",\n"
        "  \"start\": {\n"
        "    \"accountSid\": \"" T_AC "\",\n"
        "    \"streamSid\": \"" T_MZ "\",\n"
        "    \"callSid\": \"" T_CA "\",\n"
        "    \"tracks\": [\"inbound\"],\n"
        "    \"mediaFormat\": {\"encoding\": \"audio/x-mulaw\", "
        "\"sampleRate\": 8000, \"channels\": 1},\n"
        "    \"customParameters\": {\"tenant\": \"acme\", "
        "\"token\": \"opaque-per-call-token\"}\n"
        "  },\n"
        "  \"streamSid\": \"" T_MZ "\"\n"
        "}\n");

    is(rc, NGX_VOICE_TW_OK, "start: ok");
    is(m.event, NGX_VOICE_TW_START, "start: event");
    is(m.sequence, 1, "start: sequenceNumber");
    ok(test_str(&m.account_sid, T_AC), "start: accountSid");
    ok(test_str(&m.call_sid, T_CA), "start: callSid");
    ok(test_str(&m.stream_sid, T_MZ), "start: streamSid");
    ok(test_str(&m.encoding, "audio/x-mulaw"), "start: encoding");
    is(m.sample_rate, 8000, "start: sampleRate");
    is(m.channels, 1, "start: channels");
    is(m.nparams, 2, "start: 2 customParameters");
    ok(test_str(&m.params[0].name, "tenant")
       && test_str(&m.params[0].value, "acme"), "start: tenant=acme");
    ok(test_str(&m.params[1].name, "token")
       && test_str(&m.params[1].value, "opaque-per-call-token"),
       "start: token");
    ngx_voice_tw_done(&m);

    /* start without top-level streamSid, customParameters, sequence */

    rc = test_parse(&m, "{\"event\":\"start\",\"start\":{\"accountSid\":\""
                        T_AC "\",\"callSid\":\"" T_CA "\",\"streamSid\":\""
                        T_MZ "\",\"mediaFormat\":{\"encoding\":"
                        "\"audio/x-mulaw\",\"sampleRate\":8000.0,"
                        "\"channels\":1}}}");
    is(rc, NGX_VOICE_TW_OK, "minimal start: ok");
    is(m.nparams, 0, "minimal start: no params");
    ok(test_str(&m.stream_sid, T_MZ), "minimal start: streamSid");
    ngx_voice_tw_done(&m);

    /* the protocols.md placeholders are not valid SIDs */

    rc = test_parse(&m, "{\"event\":\"start\",\"start\":{\"accountSid\":"
                        "\"ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}");
    is(rc, NGX_VOICE_TW_BAD_MESSAGE, "placeholder SIDs refused");
    ngx_voice_tw_done(&m);

    /* media with a real 160-byte payload */

    rc = test_parse(&m,
        "{\n"
        "  \"event\": \"media\",\n"
        "  \"sequenceNumber\": \"4\",\n"
        "  \"media\": {\"track\": \"inbound\", \"chunk\": \"2\", "
        "\"timestamp\": \"5\", \"payload\": \"" T_AUDIO "\"},\n"
        "  \"streamSid\": \"" T_MZ "\"\n"
        "}");
    is(rc, NGX_VOICE_TW_OK, "media: ok");
    is(m.event, NGX_VOICE_TW_MEDIA, "media: event");
    is(m.sequence, 4, "media: sequenceNumber");
    ok(test_str(&m.stream_sid, T_MZ), "media: streamSid");
    ok(test_str(&m.track, "inbound"), "media: track");
    is(m.chunk, 2, "media: chunk");
    is(m.timestamp, 5, "media: timestamp");
    is_mem(m.audio, m.audio_len, audio, 160, "media: 160 bytes of audio");
    ngx_voice_tw_done(&m);
    ok(m.audio == NULL && m.audio_len == 0, "done clears audio");

    rc = test_parse(&m, T_MEDIA("{\"payload\":\"\"}"));
    is(rc, NGX_VOICE_TW_OK, "media: empty payload ok");
    is(m.audio_len, 0, "media: empty payload length");
    is(m.chunk, 0, "media: chunk optional");
    ok(test_str(&m.track, ""), "media: track optional");
    ngx_voice_tw_done(&m);

    rc = test_parse(&m, T_MEDIA("{\"payload\":\"/w==\",\"chunk\":"
                                "\"18446744073709551615\",\"timestamp\":"
                                "\"007\",\"track\":\"outbound\"}"));
    is(rc, NGX_VOICE_TW_OK, "media: max chunk ok");
    ok(m.chunk == UINT64_MAX, "media: chunk 2^64-1");
    is(m.timestamp, 7, "media: leading zeros");
    ok(m.audio_len == 1 && m.audio[0] == 0xff, "media: one byte 0xff");
    ok(test_str(&m.track, "outbound"), "media: outbound track");
    ngx_voice_tw_done(&m);

    /* dtmf */

    rc = test_parse(&m, "{\"event\":\"dtmf\",\"streamSid\":\"" T_MZ "\","
                        "\"sequenceNumber\":\"5\",\"dtmf\":{\"track\":"
                        "\"inbound_track\",\"digit\":\"1\"}}");
    is(rc, NGX_VOICE_TW_OK, "dtmf: ok");
    is(m.event, NGX_VOICE_TW_DTMF, "dtmf: event");
    is(m.digit, '1', "dtmf: digit");
    is(m.sequence, 5, "dtmf: sequenceNumber");
    ok(test_str(&m.track, "inbound_track"), "dtmf: track");
    ngx_voice_tw_done(&m);

    errors = 0;

    for (i = 0; i < 16; i++) {
        char  json[128];

        snprintf(json, sizeof(json), T_DTMF("{\"digit\":\"%c\"}"),
                 "0123456789*#ABCD"[i]);

        if (test_parse(&m, json) != NGX_VOICE_TW_OK
            || m.digit != "0123456789*#ABCD"[i])
        {
            errors++;
        }

        ngx_voice_tw_done(&m);
    }

    is(errors, 0, "dtmf: all 16 digits");

    /* mark */

    rc = test_parse(&m, "{\"event\":\"mark\",\"sequenceNumber\":\"4\","
                        "\"streamSid\":\"" T_MZ "\",\"mark\":{\"name\":"
                        "\"my label\"}}");
    is(rc, NGX_VOICE_TW_OK, "mark: ok");
    is(m.event, NGX_VOICE_TW_MARK, "mark: event");
    ok(test_str(&m.mark, "my label"), "mark: name");
    is(m.sequence, 4, "mark: sequenceNumber");
    ngx_voice_tw_done(&m);

    /* stop */

    rc = test_parse(&m,
        "{\n"
        "  \"event\": \"stop\",\n"
        "  \"sequenceNumber\": \"5\",\n"
        "  \"stop\": {\"accountSid\": \"" T_AC "\", \"callSid\": \""
        T_CA "\"},\n"
        "  \"streamSid\": \"" T_MZ "\"\n"
        "}");
    is(rc, NGX_VOICE_TW_OK, "stop: ok");
    is(m.event, NGX_VOICE_TW_STOP, "stop: event");
    is(m.sequence, 5, "stop: sequenceNumber");
    ok(test_str(&m.stream_sid, T_MZ), "stop: streamSid");
    ngx_voice_tw_done(&m);

    rc = test_parse(&m, "{\"event\":\"stop\",\"streamSid\":\"" T_MZ "\"}");
    is(rc, NGX_VOICE_TW_OK, "stop: stop object optional");
    ngx_voice_tw_done(&m);

    rc = test_parse(&m, T_STOP("\"18446744073709551615\""));
    is(rc, NGX_VOICE_TW_OK, "stop: sequenceNumber 2^64-1");
    ok(m.sequence == UINT64_MAX, "stop: sequenceNumber value");
    ngx_voice_tw_done(&m);

    /* unknown events are not errors */

    rc = test_parse(&m, "{\"event\":\"transcription\",\"streamSid\":7,"
                        "\"sequenceNumber\":[]}");
    is(rc, NGX_VOICE_TW_OK, "unknown event: ok");
    is(m.event, NGX_VOICE_TW_UNKNOWN, "unknown event: UNKNOWN");
    ok(test_str(&m.event_name, "transcription"), "unknown event: name");
    ngx_voice_tw_done(&m);

    rc = test_parse(&m, "{\"event\":\"\"}");
    ok(rc == NGX_VOICE_TW_OK && m.event == NGX_VOICE_TW_UNKNOWN,
       "empty event name: UNKNOWN");
    ngx_voice_tw_done(&m);

    /* done on a message that never parsed */

    memset(&m, 0, sizeof(m));
    ngx_voice_tw_done(&m);
    ok(1, "done on a zeroed message is safe");
}


static void
test_tw_rejects(void)
{
    int                  rc;
    size_t               i;
    ngx_voice_tw_msg_t   m;

    for (i = 0; test_tw_bad[i].name; i++) {
        rc = test_parse(&m, test_tw_bad[i].json);

        if (!ok(rc == test_tw_bad[i].rc && m.error != NULL
                && strcmp(m.error, test_tw_bad[i].error) == 0,
                "reject %s: %d \"%s\"", test_tw_bad[i].name,
                test_tw_bad[i].rc, test_tw_bad[i].error))
        {
            tap_diag("got %d \"%s\"", rc, m.error ? m.error : "(null)");
        }

        ngx_voice_tw_done(&m);
        ngx_voice_tw_done(&m);
    }

    /* a NUL byte inside the length is not the end of the message */

    rc = ngx_voice_tw_parse(&m, (const unsigned char *)
                            "{\"event\":\"connected\"}\0", 22);
    is(rc, NGX_VOICE_TW_BAD_JSON, "NUL after the object refused");
    ngx_voice_tw_done(&m);

    /* only len bytes are parsed */

    rc = ngx_voice_tw_parse(&m, (const unsigned char *)
                            "{\"event\":\"connected\"}garbage", 21);
    is(rc, NGX_VOICE_TW_OK, "bytes past len ignored");
    ngx_voice_tw_done(&m);

    rc = ngx_voice_tw_parse(&m, (const unsigned char *) "{}", 0);
    is(rc, NGX_VOICE_TW_BAD_JSON, "zero length refused");
    ngx_voice_tw_done(&m);
}


static void
test_tw_params(void)
{
    int                  rc;
    size_t               i, n;
    char                 json[4096];
    ngx_voice_tw_msg_t   m;

    /* NGX_VOICE_TW_MAX_PARAMS parameters fit, one more does not */

    for (n = NGX_VOICE_TW_MAX_PARAMS; n <= NGX_VOICE_TW_MAX_PARAMS + 1; n++) {
        size_t  len;

        len = snprintf(json, sizeof(json), "%s", T_START(T_FMT
                       ",\"customParameters\":{"));
        len -= 2;   /* reopen: drop the closing "}}" */

        for (i = 0; i < n; i++) {
            len += snprintf(json + len, sizeof(json) - len,
                            "%s\"p%zu\":\"v%zu\"", i ? "," : "", i, i);
        }

        snprintf(json + len, sizeof(json) - len, "}}}");

        rc = test_parse(&m, json);

        if (n == NGX_VOICE_TW_MAX_PARAMS) {
            is(rc, NGX_VOICE_TW_OK, "%zu customParameters ok", n);
            is(m.nparams, n, "%zu customParameters stored", n);
            ok(test_str(&m.params[n - 1].name, "p31")
               && test_str(&m.params[n - 1].value, "v31"),
               "last customParameter");

        } else {
            is(rc, NGX_VOICE_TW_BAD_MESSAGE, "%zu customParameters refused",
               n);
            ok(m.error && strcmp(m.error, "too many customParameters") == 0,
               "too many customParameters: error text");
        }

        ngx_voice_tw_done(&m);
    }

    /* escapes are decoded, empty values allowed */

    rc = test_parse(&m, T_START(T_FMT ",\"customParameters\":{"
                                "\"q\":\"a\\\"b\\u00e9\",\"e\":\"\"}"));
    is(rc, NGX_VOICE_TW_OK, "escaped customParameters ok");
    ok(m.nparams == 2 && test_str(&m.params[0].value, "a\"b\xc3\xa9")
       && test_str(&m.params[1].value, ""), "escapes decoded");
    ngx_voice_tw_done(&m);

    rc = test_parse(&m, T_START(T_FMT ",\"customParameters\":{}"));
    ok(rc == NGX_VOICE_TW_OK && m.nparams == 0, "empty customParameters");
    ngx_voice_tw_done(&m);
}


static void
test_tw_sids(void)
{
    ok(ngx_voice_tw_sid_valid(T_MZ, 34, "MZ"), "sid: MZ valid");
    ok(ngx_voice_tw_sid_valid(T_CA, 34, "CA"), "sid: mixed case hex");
    ok(!ngx_voice_tw_sid_valid(T_MZ, 34, "CA"), "sid: wrong prefix");
    ok(!ngx_voice_tw_sid_valid(T_MZ, 33, "MZ"), "sid: 33 chars");
    ok(!ngx_voice_tw_sid_valid(T_MZ "0", 35, "MZ"), "sid: 35 chars");
    ok(!ngx_voice_tw_sid_valid("mz18ad3ab5a668481ce02b83e7395059f0", 34,
                               "MZ"), "sid: lowercase prefix");
    ok(!ngx_voice_tw_sid_valid("MZ18ad3ab5a668481ce02b83e7395059fg", 34,
                               "MZ"), "sid: non-hex last char");
    ok(!ngx_voice_tw_sid_valid("MZ18ad3ab5a668481ce02b83e7395059f ", 34,
                               "MZ"), "sid: space");
    ok(!ngx_voice_tw_sid_valid("", 0, "MZ"), "sid: empty");
}


static void
test_tw_builders(void)
{
    int                  rc;
    char                 name[70];
    size_t               n, len, errors, i;
    cJSON               *root, *media, *payload, *mark;
    unsigned char        audio[400], dst[1024];
    ngx_voice_tw_msg_t   m;

    for (i = 0; i < sizeof(audio); i++) {
        audio[i] = (unsigned char) (i * 37 + 11);
    }

    /* exact output */

    n = ngx_voice_tw_media(dst, T_MZ, 34, (const unsigned char *) "\0\1\2",
                           3);
    is_mem(dst, n, "{\"event\":\"media\",\"streamSid\":\"" T_MZ "\","
           "\"media\":{\"payload\":\"AAEC\"}}", 93, "media builder output");
    is(n, ngx_voice_tw_media_len(34, 3), "media_len equals output");

    n = ngx_voice_tw_mark(dst, T_MZ, 34, "utt-17-seg-3", 12);
    is_mem(dst, n, "{\"event\":\"mark\",\"streamSid\":\"" T_MZ "\","
           "\"mark\":{\"name\":\"utt-17-seg-3\"}}", 96,
           "mark builder output");
    is(n, ngx_voice_tw_mark_len(34, 12), "mark_len equals output");

    n = ngx_voice_tw_clear(dst, T_MZ, 34);
    is_mem(dst, n, "{\"event\":\"clear\",\"streamSid\":\"" T_MZ "\"}", 66,
           "clear builder output");
    is(n, ngx_voice_tw_clear_len(34), "clear_len equals output");

    /* every audio length: _len, cJSON view and our parser agree */

    errors = 0;

    for (len = 0; len <= sizeof(audio); len++) {
        memset(dst, '#', sizeof(dst));

        n = ngx_voice_tw_media(dst, T_MZ, 34, audio, len);

        if (n != ngx_voice_tw_media_len(34, len) || dst[n] != '#') {
            errors++;
            continue;
        }

        root = cJSON_ParseWithLength((const char *) dst, n);
        media = cJSON_GetObjectItemCaseSensitive(root, "media");
        payload = cJSON_GetObjectItemCaseSensitive(media, "payload");

        if (root == NULL || cJSON_GetArraySize(root) != 3
            || !cJSON_IsString(payload)
            || strcmp(cJSON_GetObjectItemCaseSensitive(root, "event")
                      ->valuestring, "media") != 0
            || strcmp(cJSON_GetObjectItemCaseSensitive(root, "streamSid")
                      ->valuestring, T_MZ) != 0)
        {
            errors++;
        }

        cJSON_Delete(root);

        rc = ngx_voice_tw_parse(&m, dst, n);

        if (rc != NGX_VOICE_TW_OK || m.event != NGX_VOICE_TW_MEDIA
            || m.audio_len != len
            || (len && memcmp(m.audio, audio, len) != 0)
            || !test_str(&m.stream_sid, T_MZ))
        {
            errors++;
        }

        ngx_voice_tw_done(&m);
    }

    is(errors, 0, "media built for lengths 0..400 parses back");

    /* the 160-byte payload: build, parse, compare */

    n = ngx_voice_tw_media(dst, T_MZ, 34, audio, 160);
    rc = ngx_voice_tw_parse(&m, dst, n);
    is(rc, NGX_VOICE_TW_OK, "160-byte media round trip: ok");
    is_mem(m.audio, m.audio_len, audio, 160, "160-byte media round trip");
    ok(n > 219 && memcmp(dst + n - 3 - 216, T_AUDIO, 216) == 0,
       "160-byte payload encodes to the Python base64 text");
    ngx_voice_tw_done(&m);

    /* marks of every valid name length */

    errors = 0;
    memset(name, 'a', sizeof(name));

    for (len = 1; len <= 64; len++) {
        name[len - 1] = "Az09_.:-"[len % 8];

        n = ngx_voice_tw_mark(dst, T_MZ, 34, name, len);
        root = cJSON_ParseWithLength((const char *) dst, n);
        mark = cJSON_GetObjectItemCaseSensitive(root, "mark");
        mark = cJSON_GetObjectItemCaseSensitive(mark, "name");

        if (n != ngx_voice_tw_mark_len(34, len)
            || !ngx_voice_tw_mark_name_valid(name, len)
            || !cJSON_IsString(mark)
            || strlen(mark->valuestring) != len
            || memcmp(mark->valuestring, name, len) != 0)
        {
            errors++;
        }

        cJSON_Delete(root);

        rc = ngx_voice_tw_parse(&m, dst, n);

        if (rc != NGX_VOICE_TW_OK || m.event != NGX_VOICE_TW_MARK
            || m.mark.len != len || memcmp(m.mark.data, name, len) != 0)
        {
            errors++;
        }

        ngx_voice_tw_done(&m);
    }

    is(errors, 0, "marks with names of 1..64 chars parse back");

    n = ngx_voice_tw_clear(dst, T_MZ, 34);
    root = cJSON_ParseWithLength((const char *) dst, n);
    ok(root != NULL && cJSON_GetArraySize(root) == 2
       && strcmp(cJSON_GetObjectItemCaseSensitive(root, "event")
                 ->valuestring, "clear") == 0, "clear parses with cJSON");
    cJSON_Delete(root);

    rc = ngx_voice_tw_parse(&m, dst, n);
    ok(rc == NGX_VOICE_TW_OK && m.event == NGX_VOICE_TW_UNKNOWN
       && test_str(&m.event_name, "clear"), "clear is not an inbound event");
    ngx_voice_tw_done(&m);

    /* mark names */

    ok(ngx_voice_tw_mark_name_valid("utt-17-seg-3", 12), "mark name ok");
    ok(ngx_voice_tw_mark_name_valid("A.b:c_d-9", 9), "mark name symbols");
    ok(!ngx_voice_tw_mark_name_valid("", 0), "mark name empty");
    memset(name, 'x', sizeof(name));
    ok(ngx_voice_tw_mark_name_valid(name, 64), "mark name of 64");
    ok(!ngx_voice_tw_mark_name_valid(name, 65), "mark name of 65");
    ok(!ngx_voice_tw_mark_name_valid("a b", 3), "mark name with space");
    ok(!ngx_voice_tw_mark_name_valid("a\"b", 3), "mark name with quote");
    ok(!ngx_voice_tw_mark_name_valid("a\\b", 3), "mark name with backslash");
    ok(!ngx_voice_tw_mark_name_valid("\xc3\xa9", 2), "mark name non-ASCII");
    ok(!ngx_voice_tw_mark_name_valid("a/b", 3), "mark name with slash");
}
