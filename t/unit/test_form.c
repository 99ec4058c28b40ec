/*
 * Copyright (C) ngx_voice authors
 *
 * application/x-www-form-urlencoded parsing and XML escaping, and the
 * protocols.md 1.6 vector 1 end to end: a webhook body as Twilio sends
 * it, decoded, then signed.
 */


#include "tap.h"
#include "ngx_voice_form.h"
#include "ngx_voice_twilio.h"


#define T_MAX  16


static int form(const char *body, ngx_voice_form_field_t *f, size_t *n);
static int field_is(ngx_voice_form_field_t *f, const char *name,
    const char *value);
static int escaped_is(const char *src, size_t len, const char *expected);
static int encoded_is(const char *src, const char *expected);


static unsigned char  buf[1024];


void
test_form(void)
{
    int                     rc;
    size_t                  n, i;
    unsigned char           out[NGX_VOICE_TW_SIG_LEN];
    ngx_voice_form_field_t  f[T_MAX];
    ngx_voice_tw_param_t    p[T_MAX];

    tap_diag("form");

    rc = form("CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234"
              "&From=%2B12349013030&To=%2B18005551212", f, &n);
    is(rc, NGX_VOICE_FORM_OK, "webhook body: parsed");
    is(n, 5, "webhook body: 5 fields");
    ok(field_is(&f[0], "CallSid", "CA1234567890ABCDE"), "field 1");
    ok(field_is(&f[1], "Caller", "+12349013030"), "%%2B decoded as +");
    ok(field_is(&f[4], "To", "+18005551212"), "last field");

    /* protocols.md 1.6 vector 1 over the decoded fields, shuffled */

    for (i = 0; i < n; i++) {
        p[n - 1 - i].name.data = (const char *) f[i].name;
        p[n - 1 - i].name.len = f[i].name_len;
        p[n - 1 - i].value.data = (const char *) f[i].value;
        p[n - 1 - i].value.len = f[i].value_len;
    }

    rc = ngx_voice_tw_signature(out, (const unsigned char *) "12345", 5,
                                (const unsigned char *)
                                "https://mycompany.com/myapp.php?foo=1&bar=2",
                                43, p, n);
    is(rc, 0, "vector 1 from a form body: signed");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", 28,
           "vector 1 from a form body: signature");

    rc = form("Body=hello+world%21&Name=a%26b%3Dc&Empty=&Flag&&X=%e2%82%ac",
              f, &n);
    is(rc, NGX_VOICE_FORM_OK, "decoding: parsed");
    is(n, 5, "decoding: empty pairs skipped");
    ok(field_is(&f[0], "Body", "hello world!"), "'+' is a space");
    ok(field_is(&f[1], "Name", "a&b=c"), "encoded & and = in a value");
    ok(field_is(&f[2], "Empty", ""), "empty value");
    ok(field_is(&f[3], "Flag", ""), "a name without '='");
    ok(field_is(&f[4], "X", "\xe2\x82\xac"), "lowercase hex, UTF-8");

    rc = form("a=1=2&b+c=%20", f, &n);
    ok(rc == NGX_VOICE_FORM_OK && n == 2 && field_is(&f[0], "a", "1=2")
       && field_is(&f[1], "b c", " "), "split on the first '='; names decoded");

    rc = form("To=1&To=2&To=1", f, &n);
    ok(rc == NGX_VOICE_FORM_OK && n == 3 && field_is(&f[0], "To", "1")
       && field_is(&f[1], "To", "2") && field_is(&f[2], "To", "1"),
       "repeated names kept in order");

    rc = form("", f, &n);
    ok(rc == NGX_VOICE_FORM_OK && n == 0, "empty body: no fields");

    rc = form("&&&", f, &n);
    ok(rc == NGX_VOICE_FORM_OK && n == 0, "only separators: no fields");

    rc = form("a=%zz", f, &n);
    is(rc, NGX_VOICE_FORM_BAD, "bad hex is refused");
    rc = form("a=%2", f, &n);
    is(rc, NGX_VOICE_FORM_BAD, "truncated escape is refused");
    rc = form("a=b%", f, &n);
    is(rc, NGX_VOICE_FORM_BAD, "trailing '%%' is refused");
    rc = form("%4=x", f, &n);
    is(rc, NGX_VOICE_FORM_BAD, "bad escape in a name is refused");
    rc = form("a=%00", f, &n);
    ok(rc == NGX_VOICE_FORM_OK && f[0].value_len == 1 && f[0].value[0] == 0,
       "%%00 decodes to a NUL byte (escaped on output)");

    is(ngx_voice_form_count((const unsigned char *) "a&b&&c", 6), 4,
       "count: an upper bound");

    memcpy(buf, "a=1&b=2&c=3", 11);
    rc = ngx_voice_form_parse(buf, 11, f, 2, &n);
    is(rc, NGX_VOICE_FORM_TOO_MANY, "more fields than room is refused");

    /* encoding a value (a REST API form), then decoding it back */

    ok(encoded_is("Status", "Status"), "encode: plain");
    ok(encoded_is("<Response><Dial>+14155550100</Dial></Response>",
                  "%3CResponse%3E%3CDial%3E%2B14155550100%3C%2FDial%3E"
                  "%3C%2FResponse%3E"), "encode: TwiML");
    ok(encoded_is("a b&c=d*-._~", "a+b%26c%3Dd*-._%7E"),
       "encode: space, separators, the kept punctuation");
    ok(encoded_is("\xe2\x82\xac\n", "%E2%82%AC%0A"),
       "encode: UTF-8 and controls");
    ok(encoded_is("", ""), "encode: empty");

    buf[0] = 'v';
    buf[1] = '=';
    n = ngx_voice_form_encode(buf + 2, (const unsigned char *) "x=<\"'> +%",
                              9);
    rc = ngx_voice_form_parse(buf, n + 2, f, T_MAX, &i);
    ok(rc == NGX_VOICE_FORM_OK && i == 1 && field_is(&f[0], "v", "x=<\"'> +%"),
       "encode then parse: the same value");

    /* XML */

    ok(escaped_is("plain +1 555", 12, "plain +1 555"), "xml: plain text");
    ok(escaped_is("a&b<c>d\"e'f", 11, "a&amp;b&lt;c&gt;d&quot;e&apos;f"),
       "xml: the five entities");
    ok(escaped_is("a\tb\nc\rd", 7, "a&#9;b&#10;c&#13;d"),
       "xml: tab, LF, CR kept as character references");
    ok(escaped_is("a\x01\x00" "b\x1f", 5, "ab"), "xml: other controls dropped");
    ok(escaped_is("\xe2\x82\xac \xf0\x9f\x93\x9e", 8,
                  "\xe2\x82\xac \xf0\x9f\x93\x9e"), "xml: UTF-8 kept");
    ok(escaped_is("a\xff" "b", 3, "a\xef\xbf\xbd" "b"),
       "xml: an invalid byte becomes U+FFFD");
    ok(escaped_is("\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"),
       "xml: overlong encodings refused");
    ok(escaped_is("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"),
       "xml: surrogates refused");
    ok(escaped_is("\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd"),
       "xml: a truncated sequence refused");
    is(ngx_voice_xml_escape(NULL, (const unsigned char *) "<&>", 3), 13,
       "xml: length without writing");
}


static int
form(const char *body, ngx_voice_form_field_t *f, size_t *n)
{
    size_t  len;

    len = strlen(body);
    memcpy(buf, body, len);

    return ngx_voice_form_parse(buf, len, f, T_MAX, n);
}


static int
field_is(ngx_voice_form_field_t *f, const char *name, const char *value)
{
    return f->name_len == strlen(name)
           && memcmp(f->name, name, f->name_len) == 0
           && f->value_len == strlen(value)
           && memcmp(f->value, value, f->value_len) == 0;
}


static int
escaped_is(const char *src, size_t len, const char *expected)
{
    size_t         n, m;
    unsigned char  out[256];

    n = ngx_voice_xml_escape(NULL, (const unsigned char *) src, len);
    memset(out, '#', sizeof(out));
    m = ngx_voice_xml_escape(out, (const unsigned char *) src, len);

    if (n != m || out[m] != '#') {
        return 0;
    }

    return m == strlen(expected) && memcmp(out, expected, m) == 0;
}


static int
encoded_is(const char *src, const char *expected)
{
    size_t         len, n;
    unsigned char  out[256];

    len = ngx_voice_form_encode(NULL, (const unsigned char *) src,
                                strlen(src));
    if (len > sizeof(out)) {
        return 0;
    }

    n = ngx_voice_form_encode(out, (const unsigned char *) src, strlen(src));

    return n == len && n == strlen(expected) && memcmp(out, expected, n) == 0;
}
