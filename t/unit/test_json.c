/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_json.h"


#define is_lit(got, glen, lit, ...)                                          \
    is_mem(got, glen, lit, sizeof(lit) - 1, __VA_ARGS__)
#define S(s)  (const unsigned char *) s, sizeof(s) - 1


static void test_escape(const char *name, const char *in, size_t len,
    const char *expected);


void
test_json(void)
{
    size_t           n;
    ngx_voice_out_t  o;
    unsigned char    buf[64];

    tap_diag("json");

    test_escape("plain", "Hello there. ", 13, "Hello there. ");
    test_escape("quotes and backslash", "a\"b\\c", 5, "a\\\"b\\\\c");
    test_escape("short escapes", "\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t");
    test_escape("other controls and DEL", "\x01\x1f\x7f", 3,
                "\\u0001\\u001f\\u007f");
    test_escape("NUL", "a\0b", 3, "a\\u0000b");
    test_escape("valid UTF-8 passes", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98"
                "\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    test_escape("invalid byte", "a\xffz", 3, "a\\ufffdz");
    test_escape("overlong", "\xc0\xaf", 2, "\\ufffd\\ufffd");
    test_escape("surrogate", "\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
    test_escape("past U+10FFFF", "\xf4\x90\x80\x80", 4,
                "\\ufffd\\ufffd\\ufffd\\ufffd");
    test_escape("truncated at end", "ab\xe2\x82", 4, "ab\\ufffd\\ufffd");
    test_escape("lone continuation", "\x80x", 2, "\\ufffdx");
    test_escape("empty", "", 0, "");

    is(ngx_voice_utf8_complete_len(S("ab\xe2\x82")),
       2, "complete prefix stops before a cut sequence");
    is(ngx_voice_utf8_complete_len(S("ab\xf0")), 2,
       "cut 4-byte lead");
    is(ngx_voice_utf8_complete_len(S("a\xc3\xa9")),
       3, "complete sequence kept");
    is(ngx_voice_utf8_complete_len(S("a\xff")), 2,
       "invalid byte is not held back");
    is(ngx_voice_utf8_complete_len(S("")), 0,
       "empty");

    o.p = NULL;
    o.len = 0;
    ngx_voice_out_url(&o, S("a b/é~"));
    is(o.len, 15, "url length counted");

    o.p = buf;
    o.len = 0;
    ngx_voice_out_url(&o, S("a b/\xc3\xa9~"));
    is_lit(buf, o.len, "a%20b%2F%C3%A9~", "percent-encoding");

    o.len = 0;
    ngx_voice_out_double(&o, 0.75);
    ngx_voice_out_lit(&o, ",");
    ngx_voice_out_uint(&o, 18446744073709551615ULL);
    is_lit(buf, o.len, "0.75,18446744073709551615", "numbers");

    ok(ngx_voice_query_safe(S("a=b&c=%20")),
       "query safe");
    ok(!ngx_voice_query_safe(S("a=b c")),
       "space is not query safe");

    n = ngx_voice_json_escape_len(S("\""));
    is(n, 2, "escape_len of a quote");
}


static void
test_escape(const char *name, const char *in, size_t len,
    const char *expected)
{
    size_t          n;
    unsigned char  *buf, *end;

    n = ngx_voice_json_escape_len((const unsigned char *) in, len);
    is(n, strlen(expected), "%s: length", name);

    buf = malloc(n + 1);
    if (buf == NULL) {
        abort();
    }

    end = ngx_voice_json_escape(buf, (const unsigned char *) in, len);
    is_mem(buf, (size_t) (end - buf), expected, strlen(expected), "%s",
           name);

    free(buf);
}
